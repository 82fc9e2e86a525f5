"""P3.1.2 import in a real browser: the upload form (CSRF on, strict CSP), then the
status page whose progress block polls itself with htmx until the import is done."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from portal.testing import SCREENSHOTS, log_in_page

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = pytest.mark.browser

TIMEOUT = 8000


def test_p3_1_2_import_page_uploads_and_the_progress_updates_itself(
    live_server: Any, org: Any, page: Any, tmp_path: Path
) -> None:
    from plugins.sales import imports

    page.set_default_timeout(TIMEOUT)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    log_in_page(page, live_server, "li")
    page.goto(live_server.url + "/sales/imports/")
    csv_file = tmp_path / "客户.csv"
    csv_file.write_bytes("客户名称,电话\n上海浏览器测试有限公司,13800138111\n".encode("gbk"))
    page.locator("#file").set_input_files(str(csv_file))
    page.get_by_role("button", name=re.compile("Upload and check")).click()
    expect(page).to_have_url(re.compile(r"/sales/imports/\d+$"))
    status = page.get_by_test_id("import-status")
    expect(status).to_have_attribute("data-status", "queued")
    import_id = int(page.url.rsplit("/", 1)[1])

    # The server's thread is off in tests: run the import, the page notices by itself.
    with live_server.app.app_context():
        imports.run_import(import_id, locale="en")
    expect(status).to_have_attribute("data-status", "done", timeout=TIMEOUT)
    expect(page.get_by_test_id("import-done")).to_contain_text("1 prospect was added")
    bar = page.locator("#import-status .progress-bar")
    track = page.locator("#import-status .progress")
    bar_box, track_box = bar.bounding_box(), track.bounding_box()
    assert bar_box and track_box and abs(bar_box["width"] - track_box["width"]) < 2
    assert not [p for p in problems if "Content Security Policy" in p], problems
    page.screenshot(path=str(SCREENSHOTS / "sales-import-done.png"), full_page=True)

    # A file the import refuses comes back on the form with its message.
    page.goto(live_server.url + "/sales/imports/")
    bad = tmp_path / "setup.csv"
    bad.write_bytes(b"MZ\x90\x00\x03\x00\x00\x00" * 50)
    page.locator("#file").set_input_files(str(bad))
    page.get_by_role("button", name=re.compile("Upload and check")).click()
    expect(page.locator(".invalid-feedback")).to_contain_text("not a text file")
