"""The harness page's plumbing, shared by conftest.py and the modules that serve another bundle
(test_compare_view.py): build a bundle when stale, serve the harness with it, mount a real widget
behind the page through :class:`kernel_bridge.KernelBridge`, and check the pages when done."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path

import jupyter_run  # tools/ (conftest puts it on the path)
import pytest
from kernel_bridge import KernelBridge

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
JS = ROOT / "js"


def _stale(bundle: Path) -> bool:
    if not bundle.exists():
        return True
    built = bundle.stat().st_mtime
    return any(path.stat().st_mtime > built for path in (JS / "src").rglob("*.js*"))  # .js and .json


def built(bundle: Path) -> Path:
    """``bundle`` (one of attnwidget/static/*.js), rebuilt first (npm ci if needed) when missing or older
    than a source; one build makes every bundle."""
    if _stale(bundle):
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm not found: install Node.js >= 20.19, then `npm --prefix js ci && npm --prefix js run build`")
        if not (JS / "node_modules").exists():
            subprocess.run([npm, "--prefix", str(JS), "ci"], check=True)
        subprocess.run([npm, "--prefix", str(JS), "run", "build"], check=True)
    return bundle


def serve_harness(bundle: Path):
    """A context manager: http://127.0.0.1:PORT serving the harness page with ``bundle`` as its
    /widget.js (tools/jupyter_run.serve_files)."""
    return jupyter_run.serve_files({"/": HERE / "harness.html", "/harness.js": HERE / "harness.js",
                                    "/widget.js": bundle})


@contextlib.contextmanager
def bridged_pages(context, url: str, *, painted: str | None = None):
    """Yields mount(widget, css=None, width=None) -> page: a real widget behind the harness page at
    ``url``; the page starts from the widget's state, what it saves or sends goes to the widget, and the
    widget's changes come back (``page.bridge``). ``painted``: a JS expression to wait for after
    mounting. On exit every page must have had no kernel errors, and nothing may have left the machine."""
    pages = []

    def mount(widget, css: dict | None = None, width: int | None = None):
        page = context.new_page()
        pages.append(page)
        if width:
            page.set_viewport_size({"width": width, "height": 900})
        bridge = KernelBridge(widget)
        page.expose_function("__kernel", bridge.receive)
        page.goto(url + "/")
        page.wait_for_function("window.harnessReady === true")
        if css:
            page.evaluate("""css => { for (const [name, value] of Object.entries(css))
                document.body.style.setProperty(name, value); }""", css)
        page.evaluate("state => window.mountWidget(state)", bridge.sent)
        page.bridge = bridge
        if painted:
            page.wait_for_function(painted)
        return page

    yield mount
    for page in pages:
        errors = page.evaluate("window.__kernelErrors ?? []")
        page.close()
        assert errors == [], errors
    assert context.blocked_requests == [], "requests left 127.0.0.1/data:/blob:"
