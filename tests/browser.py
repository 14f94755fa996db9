"""Helpers of the browser tests: the system's Chromium driven by Playwright, pages served on loopback.

Playwright's own browser download does not work offline, so the tests drive the system's Chromium
(Debian/Ubuntu package ``chromium``, which ``scripts/setup`` installs when run as root). Where no
Chromium is found the browser tests are skipped, with the reason. Set ``COURSE_CHROMIUM`` to use
another Chromium or Chrome binary.

axe-core, the accessibility engine, comes from the npm registry at install time (pinned in
``tests/browser/package.json`` and its lock file; ``scripts/setup`` runs ``npm ci`` there) and is
injected into the page from disk: nothing is fetched at run time.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
AXE_JS = ROOT / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"

# What works as root on a machine with no network and no display (see the README's tests section):
# without the background-networking flags Chromium keeps trying to reach Google's servers.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
DESKTOP = {"width": 1300, "height": 900}
PHONE = {"width": 390, "height": 844}

# Generous timeouts: the machine may be slow or busy. Tests wait on conditions, never on the clock.
TIMEOUT_MS = 120_000


def chromium_path() -> str | None:
    candidates = [os.environ.get("COURSE_CHROMIUM"), shutil.which("chromium"),
                  shutil.which("chromium-browser"), shutil.which("google-chrome")]
    return next((c for c in candidates if c and Path(c).is_file()), None)


def require_browser() -> str:
    """The Chromium to drive, or skip the test with the reason."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("Playwright is not installed (pip install -r requirements.txt)")
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium on this machine (Debian/Ubuntu: apt-get install chromium; "
                    "scripts/setup does it when run as root), or set COURSE_CHROMIUM")
    return path


@contextlib.contextmanager
def launched_chromium() -> Iterator:
    """A headless Chromium (Playwright ``Browser``) that is closed afterwards."""
    from playwright.sync_api import sync_playwright

    path = require_browser()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS,
                                             headless=True, timeout=TIMEOUT_MS)
        try:
            yield browser
        finally:
            browser.close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def handle(self):
        with contextlib.suppress(ConnectionError):  # the browser may drop a connection it no longer needs
            super().handle()


@contextlib.contextmanager
def served(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 (a free port); yield its base URL, ending with '/'."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


def keep_local(context, base_url: str, record: list[str]) -> None:
    """Let the pages of ``context`` load only from ``base_url``; abort and record any other request."""

    def route(route):
        url = route.request.url
        if url.startswith(base_url) or url.startswith(("data:", "blob:", "about:")):
            route.continue_()
        else:
            record.append(url)
            route.abort()

    context.route("**/*", route)
