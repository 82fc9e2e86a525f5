"""Every user-facing string exists in English and Simplified Chinese (zh_CN).

The catalogs are checked against the code (nothing untranslated, nothing stale), and the
running portal is checked for choosing the language: the person's stored choice, then the
session's, then the browser's Accept-Language, then English. How to mark, extract and
translate strings: docs/i18n.md.
"""

from __future__ import annotations

import gettext
import re
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
LOCALE = "zh_CN"
ENGLISH_BROWSER = "en-US,en;q=0.9"
CHINESE_BROWSER = "zh-CN,zh;q=0.9"

# The core, then every built-in plugin package: each keeps its own catalog.
SOURCES = ["portal"] + sorted(
    str(init.parent.relative_to(ROOT)) for init in ROOT.glob("plugins/*/__init__.py")
)


def _po_path(source: str) -> Path:
    return ROOT / source / "translations" / LOCALE / "LC_MESSAGES" / "messages.po"


def _commands(source: str) -> str:
    """The commands that bring ``source``'s catalog up to date (as in docs/i18n.md)."""
    translations = f"{source}/translations"
    po = f"{translations}/{LOCALE}/LC_MESSAGES/messages.po"
    create_or_update = (
        f".venv/bin/pybabel update -N -i {translations}/messages.pot -d {translations}"
        if _po_path(source).exists()
        else f".venv/bin/pybabel init -i {translations}/messages.pot -d {translations} -l {LOCALE}"
    )
    return (
        "From the repository root:\n"
        f"  .venv/bin/pybabel extract -F babel.cfg --add-location=file --project=Salesloop"
        f" -o {translations}/messages.pot {source}\n"
        f"  {create_or_update}\n"
        f"  (translate every new or changed entry in {po}; no fuzzy entries)\n"
        f"  .venv/bin/pybabel compile -d {translations}\n"
        "See docs/i18n.md."
    )


def _read_po(source: str) -> Catalog:
    with _po_path(source).open("rb") as handle:
        return read_po(handle)


def _extract(source: str) -> dict[tuple[str, str | None], list[str]]:
    """Messages in ``source`` with the method map (and keywords) of babel.cfg:
    (msgid, context) -> where it is used."""
    with (ROOT / "babel.cfg").open() as handle:
        method_map, options_map = parse_mapping_cfg(handle, "babel.cfg")
    # babel.cfg declares the lazy keywords (_l ...); Babel >= 2.18 merges them per
    # pattern, older versions ignore them, so pass them for every file as well.
    keywords = dict(DEFAULT_KEYWORDS)
    for options in options_map.values():
        keywords.update(options.get("keywords", {}))
    found: dict[tuple[str, str | None], list[str]] = {}
    for filename, lineno, message, _comments, context in extract_from_dir(
        str(ROOT / source), method_map, options_map, keywords=keywords
    ):
        msgid = message[0] if isinstance(message, tuple) else message
        if msgid:
            found.setdefault((msgid, context), []).append(f"{source}/{filename}:{lineno}")
    return found


def _translated(message: Any) -> bool:
    strings = message.string if isinstance(message.string, tuple) else (message.string,)
    return not message.fuzzy and all(s.strip() for s in strings)


def _messages(catalog: Catalog) -> Iterator[Any]:
    return (message for message in catalog if message.id)


# -- the catalogs ----------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_every_message_in_the_code_is_in_each_catalog(source: str) -> None:
    found = _extract(source)
    if not found:
        return  # a plugin without user-facing text needs no catalog
    assert _po_path(source).exists(), (
        f"{source} has {len(found)} messages but no {LOCALE} catalog.\n{_commands(source)}"
    )
    catalog = _read_po(source)
    missing = []
    for (msgid, context), places in sorted(found.items()):
        message = catalog.get(msgid, context=context)
        if message is None or not _translated(message):
            missing.append(f"  {msgid!r}  ({', '.join(places[:3])})")
    assert not missing, (
        f"{len(missing)} message(s) of {source} have no {LOCALE} translation in "
        f"{_po_path(source).relative_to(ROOT)}:\n" + "\n".join(missing) + "\n" + _commands(source)
    )


@pytest.mark.parametrize("source", SOURCES)
def test_compiled_catalogs_match_their_po_files(source: str) -> None:
    po_path = _po_path(source)
    if not po_path.exists():
        pytest.skip(f"{source} has no catalog")
    compiled = BytesIO()
    write_mo(compiled, _read_po(source))  # fuzzy entries left out, as pybabel compile does
    compiled.seek(0)
    expected = gettext.GNUTranslations(compiled)._catalog  # type: ignore[attr-defined]
    mo_path = po_path.with_suffix(".mo")
    assert mo_path.exists(), f"{mo_path.relative_to(ROOT)} is missing.\n{_commands(source)}"
    with mo_path.open("rb") as handle:
        committed = gettext.GNUTranslations(handle)._catalog  # type: ignore[attr-defined]
    stale = sorted(
        repr(key)
        for key in set(expected) | set(committed)
        if expected.get(key) != committed.get(key)
    )
    assert not stale, (
        f"{mo_path.relative_to(ROOT)} is stale for: {', '.join(stale[:10])}\n"
        f"Recompile: .venv/bin/pybabel compile -d {source}/translations"
    )


PLACEHOLDER = re.compile(r"%\((\w+)\)[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]")


@pytest.mark.parametrize("source", SOURCES)
def test_placeholders_survive_translation(source: str) -> None:
    if not _po_path(source).exists():
        pytest.skip(f"{source} has no catalog")
    problems = []
    for message in _messages(_read_po(source)):
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = {match.group(0) for text in ids for match in PLACEHOLDER.finditer(text)}
        values = {match.group(1): 1 for match in PLACEHOLDER.finditer(" ".join(ids))}
        for text in strings:
            if not text:
                continue  # untranslated: reported by the test above
            got = {match.group(0) for match in PLACEHOLDER.finditer(text)}
            if got != wanted:
                problems.append(f"  {message.id!r}: expects {sorted(wanted)}, has {sorted(got)}")
                continue
            try:  # templates always %-format, so a stray % would break the page
                ids[0] % values
            except (ValueError, TypeError, KeyError):
                continue  # the English text is never formatted either
            try:
                text % values
            except (ValueError, TypeError, KeyError) as error:
                problems.append(f"  {message.id!r}: {text!r} does not format ({error})")
    assert not problems, "Placeholders differ between English and Chinese:\n" + "\n".join(problems)


def test_a_message_in_several_catalogs_has_one_translation() -> None:
    """Flask-Babel merges every catalog into one dictionary (the last folder wins), so a
    plugin translating a shared message differently would change the core's text too."""
    seen: dict[str, tuple[str, Any]] = {}
    clashes = []
    for source in SOURCES:
        if not _po_path(source).exists():
            continue
        for message in _messages(_read_po(source)):
            key = repr((message.context, message.id))
            if key in seen and seen[key][1] != message.string:
                clashes.append(
                    f"  {message.id!r}: {seen[key][0]} says {seen[key][1]!r},"
                    f" {source} says {message.string!r}"
                )
            seen.setdefault(key, (source, message.string))
    assert not clashes, "Translate shared messages alike:\n" + "\n".join(clashes)


# -- choosing the language ---------------------------------------------------------------


def _lang(html: str) -> str | None:
    match = re.search(r'<html lang="([^"]*)"', html)
    return match.group(1) if match else None


def _h1(html: str) -> str:
    match = re.search(r"<h1[^>]*>(.*?)</h1>", html, re.S)
    assert match, "the page has no <h1>"
    return match.group(1).strip()


def _page(client: Any, path: str, accept: str | None = ENGLISH_BROWSER) -> str:
    headers = {"Accept-Language": accept} if accept else {}
    response = client.get(path, headers=headers)
    assert response.status_code == 200, f"GET {path}: {response.status_code}"
    return response.get_data(as_text=True)


def _stored_locale(app: Any, user_id: int) -> str | None:
    from portal.auth.models import User
    from portal.extensions import db

    with app.app_context():
        return db.session.get(User, user_id).locale


@pytest.mark.parametrize(
    ("accept", "lang", "heading", "label"),
    [
        (CHINESE_BROWSER, "zh-CN", "登录", "用户名"),
        ("zh", "zh-CN", "登录", "用户名"),
        # zh_CN is the only Chinese the portal has: Traditional Chinese browsers get it.
        ("zh-TW,zh;q=0.9,en;q=0.8", "zh-CN", "登录", "用户名"),
        # The first language the portal supports, in the browser's order of preference.
        ("fr-FR,fr;q=0.9,zh-CN;q=0.8,en;q=0.7", "zh-CN", "登录", "用户名"),
        (ENGLISH_BROWSER, "en", "Log in", "Username"),
        ("de-DE,de;q=0.9", "en", "Log in", "Username"),
        (None, "en", "Log in", "Username"),
    ],
)
def test_the_login_page_speaks_the_browsers_language(
    client: Any, accept: str | None, lang: str, heading: str, label: str
) -> None:
    html = _page(client, "/login", accept)
    assert _lang(html) == lang
    assert _h1(html) == heading
    assert f">{label}</label>" in html  # a lazily translated form label


def test_plugin_strings_come_from_the_plugins_own_catalog(
    client: Any, make_person: Any, login: Any
) -> None:
    make_person("li", roles=["salesperson"])
    login(client, "li")
    html = _page(client, "/organisation/", CHINESE_BROWSER)
    assert _lang(html) == "zh-CN"
    assert _h1(html) == "组织架构"  # plugins/organisation/translations
    assert "首页" in html  # the core's navigation, portal/translations


def test_a_persons_choice_wins_over_the_browser_and_survives_login(
    app: Any, client: Any, make_person: Any, login: Any
) -> None:
    li = make_person("li", roles=["salesperson"], display_name="Li Na")
    login(client, "li")
    assert _lang(_page(client, "/")) == "en"

    response = client.post("/account/language", data={"locale": "zh_CN", "next": "/people/"})
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/people/")
    assert _stored_locale(app, li) == "zh_CN"

    html = _page(client, "/", ENGLISH_BROWSER)
    assert _lang(html) == "zh-CN"
    assert _h1(html) == "欢迎，Li Na"

    client.post("/logout")
    later = app.test_client()  # another browser, still asking for English
    assert _h1(_page(later, "/login", ENGLISH_BROWSER)) == "Log in"  # not known yet
    login(later, "li")
    html = _page(later, "/", ENGLISH_BROWSER)
    assert _lang(html) == "zh-CN"
    assert _h1(html) == "欢迎，Li Na"

    later.post("/account/language", data={"locale": "en"})
    assert _stored_locale(app, li) == "en"
    assert _lang(_page(later, "/", CHINESE_BROWSER)) == "en"


@pytest.mark.parametrize("locale", ["fr", "de_DE", "", None])
def test_an_unsupported_language_answers_400_and_changes_nothing(
    app: Any, client: Any, make_person: Any, login: Any, locale: str | None
) -> None:
    li = make_person("li", roles=["salesperson"])
    login(client, "li")
    client.post("/account/language", data={"locale": "zh_CN"})

    response = client.post(
        "/account/language",
        data={} if locale is None else {"locale": locale},
        headers={"Accept-Language": ENGLISH_BROWSER},
    )
    assert response.status_code == 400
    assert "不支持该语言。" in response.get_data(as_text=True)  # in the language in force
    assert _stored_locale(app, li) == "zh_CN"
    assert _lang(_page(client, "/", ENGLISH_BROWSER)) == "zh-CN"


def test_a_visitors_choice_lasts_the_session_and_carries_over_login(
    client: Any, make_person: Any, login: Any
) -> None:
    make_person("li", roles=["salesperson"])
    response = client.post("/account/language", data={"locale": "zh_CN", "next": "/login"})
    assert response.status_code == 303
    assert _lang(_page(client, "/login", ENGLISH_BROWSER)) == "zh-CN"

    login(client, "li")  # the person has stored no choice: the session's stays
    assert _lang(_page(client, "/", ENGLISH_BROWSER)) == "zh-CN"

    assert client.post("/account/language", data={"locale": "xx"}).status_code == 400
    assert _lang(_page(client, "/", ENGLISH_BROWSER)) == "zh-CN"
