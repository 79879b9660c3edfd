"""Fixtures for the browser tests: bundle, local server, offline Chromium, harness page.

The page imports the built ESM bundle and renders it with a fake anywidget model
(tests/browser/harness.js); the synthetic data is built here with numpy.
"""

from __future__ import annotations

import base64
import functools
import http.server
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "js"
BUNDLE = ROOT / "attnwidget" / "static" / "widget.js"
HERE = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("ATTNWIDGET_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ALLOWED_SCHEMES = ("data:", "blob:")

MALICIOUS_IMG = "<img src=x onerror=window.__pwned=1>"
MALICIOUS_SCRIPT = "</script><script>window.__pwned=1</script>"


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: runs in headless Chromium (needs /usr/bin/chromium and node)")


# ---- bundle and server ---------------------------------------------------

def _bundle_is_stale() -> bool:
    if not BUNDLE.exists():
        return True
    built = BUNDLE.stat().st_mtime
    return any(path.stat().st_mtime > built for path in (JS / "src").rglob("*.js"))


@pytest.fixture(scope="session")
def bundle() -> Path:
    """The built widget bundle; builds it (npm ci first if needed) when missing or stale."""
    if _bundle_is_stale():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm not found: build the bundle with `npm --prefix js ci && npm --prefix js run build`")
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

@pytest.fixture(scope="module")
def browser_context(server):
    """One offline Chromium per test module, in a throwaway profile and home."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="attnwidget-chromium-") as home:
        env = {**os.environ, "HOME": home, "XDG_CACHE_HOME": f"{home}/cache", "XDG_CONFIG_HOME": f"{home}/config"}
        with sync_api.sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                f"{home}/profile", executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
                env=env, accept_downloads=True, viewport={"width": 1200, "height": 900},
            )
            context.blocked_requests = []

            def allowed(url: str) -> bool:
                return url.startswith(server + "/") or url.startswith(ALLOWED_SCHEMES)

            # Record every request that would leave the machine, and refuse it.
            context.on("request", lambda request: allowed(request.url) or context.blocked_requests.append(request.url))
            context.route("**/*", lambda route: route.continue_() if allowed(route.request.url) else route.abort())
            try:
                yield context
            finally:
                context.close()


# ---- synthetic data --------------------------------------------------------

def wire(array: np.ndarray) -> dict:
    """A numpy array as the harness' marker for a wire dict (base64 bytes)."""
    array = np.ascontiguousarray(array)
    return {"__wire": True, "b64": base64.b64encode(array.tobytes()).decode("ascii"),
            "dtype": str(array.dtype), "shape": list(array.shape)}


@functools.lru_cache(maxsize=1)
def _patterns(layers=3, heads=4, n=12):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(layers, heads, n, n)) * 2.0
    logits[..., np.triu(np.ones((n, n), bool), 1)] = -np.inf
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    return (weights / weights.sum(-1, keepdims=True)).astype(np.float32)


def make_state(**overrides) -> dict:
    """Widget state: 12 tokens (two of them hostile), 3 layers x 4 heads, every data trait filled."""
    patterns = _patterns()
    layers, heads, n, _ = patterns.shape
    rng = np.random.default_rng(1)
    tokens = ["⟨bos⟩", "The", " cat", MALICIOUS_IMG, " on", " the", " mat", MALICIOUS_SCRIPT,
              " and", "\n", " slept", "."]
    mean = patterns[0].mean(0)
    edges = np.argwhere(mean > 0.12).astype(np.uint32)
    state = {
        "tokens": tokens, "num_layers": layers, "num_heads": heads, "is_causal": True,
        "layer": 0, "head": 0, "view": "heatmap", "hovered_token": None, "selected_tokens": [],
        "threshold": 0.0, "status": "ready",
        "grid_data": {"thumbs": wire(np.round(patterns * 255).astype(np.uint8)),
                      "layer_mean": wire(np.round(patterns.mean(1) * 255).astype(np.uint8)),
                      "color_by": wire(rng.random((layers, heads)).astype(np.float32)), "size": n},
        "heatmap_data": {"matrix": wire(np.round(patterns[0, 0] * 255).astype(np.uint8)),
                         "row0": 0, "col0": 0, "n_rows": n, "n_cols": n},
        "lines_data": {"weights": wire(patterns[0, :, 5, :].astype(np.float16)), "token": 5,
                       "direction": "from", "heads": list(range(heads))},
        "graph_data": {"pos": wire(rng.uniform(-1, 1, (n, 2)).astype(np.float32)), "edges": wire(edges),
                       "weights": wire(mean[edges[:, 0], edges[:, 1]].astype(np.float32))},
        "rollout_data": {"values": wire(mean[-1].astype(np.float32)),
                         "flow": wire(np.sqrt(mean[-1]).astype(np.float32)), "row": n - 1},
    }
    state.update(overrides)
    return state


@pytest.fixture
def mount(browser_context, server):
    """mount(**state_overrides) -> a page with the widget rendered on a fake model."""
    pages = []

    def _mount(**overrides):
        page = browser_context.new_page()
        pages.append(page)
        page.goto(server + "/")
        page.wait_for_function("window.harnessReady === true")
        page.evaluate("state => window.mountWidget(state)", make_state(**overrides))
        return page

    yield _mount
    for page in pages:
        page.close()
    assert browser_context.blocked_requests == [], "requests left 127.0.0.1/data:/blob:"
