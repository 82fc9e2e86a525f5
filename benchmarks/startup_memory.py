"""Cold start of `portal run` and the memory of one worker after the demo pages.

Measured against a bare Flask app started the same way in the same run, so the figures
are ratios that survive a noisy, shared machine. Run from the repository root:

    .venv/bin/python benchmarks/startup_memory.py [rounds]
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
PORTAL = Path(sys.executable).parent / "portal"
DEMO_PAGES = [
    "/",
    "/organisation/widgets/my-place",
    "/people/",
    "/people/me",
    "/admin/users",
    "/admin/users/1",
    "/admin/roles",
    "/admin/units",
    "/admin/settings",
    "/admin/plugins",
    "/admin/audit/",
    "/organisation/",
    "/organisation/team",
    "/account/password",
    "/api/v1/openapi.json",
]
BARE_FLASK = (
    "import sys; from flask import Flask\n"
    "app = Flask(__name__)\n"
    "app.get('/healthz')(lambda: 'ok')\n"
    "app.run(port=int(sys.argv[1]))\n"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(port: int, process: subprocess.Popen, limit: float = 60.0) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as reply:
                if reply.status == 200:
                    return time.perf_counter()
        except OSError:
            time.sleep(0.01)
    raise RuntimeError("server did not come up")


def start(command: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, int, float]:
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen(
        [*command, str(port)] if command[0] == sys.executable else [*command, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    up = wait_until_up(port, process)
    return process, port, up - started


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=10)


def browse_demo(port: int) -> None:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    base = f"http://127.0.0.1:{port}"
    login_page = opener.open(base + "/login").read().decode()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login_page).group(1)
    data = urllib.parse.urlencode(
        {"username": "admin", "password": "demo-pass-2026", "csrf_token": token}
    ).encode()
    opener.open(base + "/login", data=data).read()
    for page in DEMO_PAGES:
        with opener.open(base + page) as reply:
            assert reply.status == 200, page
            reply.read()


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    workdir = Path(tempfile.mkdtemp(prefix="salesloop-bench-"))
    env = {
        **os.environ,
        "PORTAL_DATABASE_URL": f"sqlite:///{workdir}/bench.db",
        "PORTAL_SECRET_KEY": "benchmark",
        "PORTAL_QUIET_MIGRATIONS": "1",
        "PORTAL_LOG_LEVEL": "WARNING",
    }
    subprocess.run([str(PORTAL), "demo"], env=env, check=True, capture_output=True, cwd=ROOT)
    portal_starts, flask_starts, portal_rss, flask_rss = [], [], [], []
    for _ in range(rounds):
        process, _port, seconds = start([sys.executable, "-c", BARE_FLASK], env)
        flask_starts.append(seconds)
        flask_rss.append(psutil.Process(process.pid).memory_info().rss)
        stop(process)
        process, port, seconds = start([str(PORTAL), "run", "--no-reload"], env)
        portal_starts.append(seconds)
        browse_demo(port)
        portal_rss.append(psutil.Process(process.pid).memory_info().rss)
        stop(process)
    mib = 1024 * 1024
    portal_start, flask_start = statistics.median(portal_starts), statistics.median(flask_starts)
    portal_mem, flask_mem = statistics.median(portal_rss) / mib, statistics.median(flask_rss) / mib
    print(f"rounds: {rounds}")
    print(
        f"cold start to first answer: portal run {portal_start:.2f} s, bare Flask "
        f"{flask_start:.2f} s, ratio {portal_start / flask_start:.1f}x"
    )
    print(
        f"RSS of one worker after {len(DEMO_PAGES)} demo pages: portal {portal_mem:.1f} MiB, "
        f"bare Flask idle {flask_mem:.1f} MiB, ratio {portal_mem / flask_mem:.1f}x"
    )


if __name__ == "__main__":
    main()
