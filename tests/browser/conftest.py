"""Fixtures for the browser tests: bundle, local server, offline Chromium, harness page.

The page imports the built ESM bundle and renders it with a fake anywidget model
(tests/browser/harness.js); the synthetic data is built here with numpy.
"""

from __future__ import annotations

import contextlib
import http.server
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # harness_data sits beside this file; importable under any --import-mode
sys.path.insert(0, str(HERE.parents[1] / "tools"))  # the Jupyter / Chromium runner shared with benchmarks
import jupyter_run  # noqa: E402
from harness_data import make_state  # noqa: E402
from kernel_bridge import KernelBridge  # noqa: E402

ROOT = HERE.parents[1]
JS = ROOT / "js"
BUNDLE = ROOT / "attnwidget" / "static" / "widget.js"
ALLOWED_SCHEMES = ("data:", "blob:")

def pytest_configure(config):
    config.addinivalue_line("markers", "browser: runs in headless Chromium (needs /usr/bin/chromium and node)")


# ---- bundle and server ---------------------------------------------------

def _bundle_is_stale() -> bool:
    if not BUNDLE.exists():
        return True
    built = BUNDLE.stat().st_mtime
    return any(path.stat().st_mtime > built for path in (JS / "src").rglob("*.js*"))  # .js and .json


@pytest.fixture(scope="session")
def bundle() -> Path:
    """The built widget bundle; builds it (npm ci first if needed) when missing or stale."""
    if _bundle_is_stale():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm not found: install Node.js >= 20.19, then `npm --prefix js ci && npm --prefix js run build`")
        if not (JS / "node_modules").exists():
            subprocess.run([npm, "--prefix", str(JS), "ci"], check=True)
        subprocess.run([npm, "--prefix", str(JS), "run", "build"], check=True)
    return BUNDLE


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[Path, str]] = {}

    def do_GET(self):  # noqa: N802 (http.server API)
        route = self.routes.get(self.path.split("?")[0])
        if route is None:
            self.send_error(404)
            return
        path, content_type = route
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def server(bundle):
    """http://127.0.0.1:PORT serving the harness page and the bundle (a thread)."""
    routes = {
        "/": (HERE / "harness.html", "text/html; charset=utf-8"),
        "/harness.js": (HERE / "harness.js", "text/javascript; charset=utf-8"),
        "/widget.js": (bundle, "text/javascript; charset=utf-8"),
    }
    handler = type("Handler", (_Handler,), {"routes": routes})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


# ---- browser -------------------------------------------------------------

@contextlib.contextmanager
def offline_chromium(allowed, **options):
    """tools/jupyter_run.offline_chromium; a missing browser fails the test (a skipped check proves nothing)."""
    try:
        context_manager = jupyter_run.offline_chromium(allowed, **options)
        context = context_manager.__enter__()
    except RuntimeError as error:
        pytest.fail(str(error))
    try:
        yield context
    finally:
        context_manager.__exit__(None, None, None)


@pytest.fixture(scope="session")
def chromium_launcher():
    """``offline_chromium`` for test modules that need their own context (e.g. Jupyter pages)."""
    return offline_chromium


@pytest.fixture(scope="module")
def browser_context(server):
    """One offline Chromium per test module, in a throwaway profile and home."""
    def allowed(url: str) -> bool:
        return url.startswith(server + "/") or url.startswith(ALLOWED_SCHEMES)

    with offline_chromium(allowed, accept_downloads=True) as context:
        yield context


@pytest.fixture
def mount(browser_context, server):
    """mount(css=None, **state_overrides) -> a page with the widget rendered on a fake model."""
    pages = []

    def _mount(css: dict | None = None, **overrides):
        page = browser_context.new_page()
        pages.append(page)
        page.goto(server + "/")
        page.wait_for_function("window.harnessReady === true")
        if css:  # e.g. JupyterLab theme variables on <body>
            page.evaluate("""css => { for (const [name, value] of Object.entries(css))
                document.body.style.setProperty(name, value); }""", css)
        page.evaluate("state => window.mountWidget(state)", make_state(**overrides))
        return page

    yield _mount
    for page in pages:
        page.close()
    assert browser_context.blocked_requests == [], "requests left 127.0.0.1/data:/blob:"


@pytest.fixture
def mount_kernel(browser_context, server):
    """mount_kernel(widget, css=None) -> page: a real AttentionWidget behind the harness page (see
    kernel_bridge.py): the page starts from the widget's state, what it saves or sends goes to the
    widget, and the widget's changes come back. ``page.bridge`` is the KernelBridge."""
    pages = []

    def _mount(widget, css: dict | None = None):
        page = browser_context.new_page()
        pages.append(page)
        bridge = KernelBridge(widget)
        page.expose_function("__kernel", bridge.receive)
        page.goto(server + "/")
        page.wait_for_function("window.harnessReady === true")
        if css:
            page.evaluate("""css => { for (const [name, value] of Object.entries(css))
                document.body.style.setProperty(name, value); }""", css)
        page.evaluate("state => window.mountWidget(state)", bridge.sent)
        page.bridge = bridge
        return page

    yield _mount
    for page in pages:
        errors = page.evaluate("window.__kernelErrors ?? []")
        page.close()
        assert errors == [], errors
    assert browser_context.blocked_requests == [], "requests left 127.0.0.1/data:/blob:"
