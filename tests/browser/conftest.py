"""Fixtures for the browser tests: bundle, local server, offline Chromium, harness page.

The page imports the built ESM bundle and renders it with a fake anywidget model
(tests/browser/harness.js); the synthetic data is built here with numpy.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # harness_data sits beside this file; importable under any --import-mode
sys.path.insert(0, str(HERE.parents[1] / "tools"))  # the Jupyter / Chromium runner shared with benchmarks
import jupyter_run  # noqa: E402
from harness_data import make_state  # noqa: E402
from harness_server import bridged_pages, built, serve_harness  # noqa: E402

ROOT = HERE.parents[1]
BUNDLE = ROOT / "attnwidget" / "static" / "widget.js"
ALLOWED_SCHEMES = ("data:", "blob:")

def pytest_configure(config):
    config.addinivalue_line("markers", "browser: runs in headless Chromium (needs /usr/bin/chromium and node)")


# ---- bundle and server ---------------------------------------------------

@pytest.fixture(scope="session")
def bundle() -> Path:
    """The built widget bundle; builds it (npm ci first if needed) when missing or stale."""
    return built(BUNDLE)


@pytest.fixture(scope="session")
def server(bundle):
    """http://127.0.0.1:PORT serving the harness page and the bundle (a thread)."""
    with serve_harness(bundle) as url:
        yield url


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


@contextlib.contextmanager
def _notebook_server(app: str, tmp_path: Path, name: str, cells: list[str]):
    """A Jupyter server of ``app`` ("lab" or "notebook") on 127.0.0.1 with isolated state, its root
    holding the notebook ``name`` made of ``cells``; yields jupyter_run's details plus ``tmp``."""
    root = tmp_path / "root"
    root.mkdir()
    (root / name).write_text(json.dumps(jupyter_run.notebook_json(cells)))
    try:
        server = jupyter_run.jupyter_server(app, root, tmp_path / "state", tmp_path / f"{app}.log", notebook=name)
        info = server.__enter__()
    except RuntimeError as error:  # a server that cannot start fails the test: a skip proves nothing
        pytest.fail(str(error))
    try:
        yield {**info, "tmp": tmp_path}
    finally:
        server.__exit__(None, None, None)


@pytest.fixture(scope="session")
def notebook_server():
    """notebook_server(app, tmp_path, name, cells): a context manager for a real Jupyter server."""
    return _notebook_server


@pytest.fixture(scope="module")
def jupyter_browser(chromium_launcher):
    """Offline Chromium for Jupyter pages: only 127.0.0.1 (http and ws), data: and blob: may load."""
    def allowed(url: str) -> bool:
        return url.startswith(("http://127.0.0.1:", "ws://127.0.0.1:", "data:", "blob:"))

    with chromium_launcher(allowed, viewport={"width": 1500, "height": 1000}) as context:
        yield context


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
    with bridged_pages(browser_context, server) as mount:
        yield mount
