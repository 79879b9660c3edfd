"""A page written by attnwidget.export_html, opened from file:// in offline Chromium (no kernel)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import pytest

import attnwidget
from attnwidget import export as ex

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("ATTNWIDGET_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOCAL = ("file:", "data:", "blob:")
MALICIOUS = "</script><script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">"
TEXT = "The cat sat on the mat. The dog sat on the log. The cat sat again."


@contextlib.contextmanager
def file_chromium():
    """Persistent Chromium in a throwaway profile/home; records every request, refuses non-local ones."""
    from playwright import sync_api

    if not Path(CHROMIUM).exists():  # a missing browser fails loudly: a skipped check proves nothing
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium (make setup does it as root)")
    with tempfile.TemporaryDirectory(prefix="attnwidget-export-") as home:
        env = {**os.environ, "HOME": home, "XDG_CACHE_HOME": f"{home}/cache", "XDG_CONFIG_HOME": f"{home}/config"}
        with sync_api.sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                f"{home}/profile", executable_path=CHROMIUM, headless=True, args=FLAGS, env=env,
                viewport={"width": 1200, "height": 1000})
            context.requests = []
            context.on("request", lambda request: context.requests.append(request.url))
            context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(LOCAL)
                          else route.abort())
            try:
                yield context
            finally:
                context.close()


@pytest.fixture(scope="module")
def pages(bundle, byte_tokenizer, tmp_path_factory):
    """Exported pages: plain, malicious tokens, and pooled heatmaps (side 8) with a full-resolution layer."""
    from helpers import tiny_model

    folder = tmp_path_factory.mktemp("export")
    cap = attnwidget.capture(tiny_model("llama"), byte_tokenizer, TEXT)
    tokens = [MALICIOUS if i % 3 == 1 else t for i, t in enumerate(cap.tokens)]
    return {
        "plain": ex.export_html(cap, folder / "plain.html"),
        "malicious": ex.export_html(attnwidget.AttentionWidget(cap, tokens=tokens), folder / "malicious.html",
                                    title=MALICIOUS),
        "pooled": ex.export_html(cap, folder / "pooled.html", heatmap_side=8, layer=1),
        "n": cap.num_tokens,
    }


@pytest.fixture(scope="module")
def context():
    with file_chromium() as ctx:
        yield ctx


@pytest.fixture
def open_page(context):
    opened = []

    def _open(path: Path):
        page = context.new_page()
        opened.append(page)
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.errors = errors
        page.goto(path.as_uri())
        page.wait_for_selector("html[data-attnwidget]", state="attached")  # no eval: the page's CSP forbids it
        assert page.evaluate("document.documentElement.dataset.attnwidget") == "ready", \
            page.text_content("#attnwidget-error")
        return page

    yield _open
    for page in opened:
        assert page.errors == [], page.errors
        page.close()
    outside = [url for url in context.requests if not url.startswith(LOCAL)]
    assert outside == [], f"the page made network requests: {outside}"


PIXELS = """sel => {
  const canvas = document.querySelector(sel);
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0, hash = 0;
  const colors = new Set();
  for (let i = 0; i < data.length; i += 4) {
    const white = data[i] > 250 && data[i + 1] > 250 && data[i + 2] > 250;
    if (data[i + 3] > 0 && !white) { painted += 1; if (colors.size < 64) colors.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]); }
    hash = (hash * 31 + data[i] + 7 * data[i + 1] + 13 * data[i + 2] + data[i + 3]) | 0;
  }
  return { painted, colors: colors.size, hash };
}"""


def pixels(page, view: str, layer: str = "base") -> dict:
    return page.evaluate(PIXELS, f".attnwidget-{view}-{layer}")


def geometry(page, view: str) -> dict:
    info = page.evaluate("""name => {
        const box = document.querySelector(`.attnwidget-${name}`);
        const rect = box.querySelector("canvas").getBoundingClientRect();
        return {geometry: box.dataset.geometry, x: rect.x, y: rect.y};
    }""", view)
    return {**json.loads(info["geometry"]), "x": info["x"], "y": info["y"]}


def heatmap_cell(page, query: int, key: int) -> tuple[float, float]:
    g = geometry(page, "heatmap")
    return (g["x"] + g["left"] + (key - g["col0"] + 0.5) * g["cellW"] + 0.5,
            g["y"] + g["top"] + (query - g["row0"] + 0.5) * g["cellH"] + 0.5)


def grid_cell(page, layer: int, column: int) -> tuple[float, float]:
    g = geometry(page, "grid")
    return g["x"] + g["columns"][column] + g["cell"] / 2 + 0.5, g["y"] + g["rows"][layer] + g["cell"] / 2 + 0.5


def model(page, name: str):
    return page.evaluate("name => window.attnwidgetModel.get(name)", name)


def test_views_paint_offline(open_page, pages):
    page = open_page(pages["plain"])
    grid, heat = pixels(page, "grid"), pixels(page, "heatmap")
    assert grid["painted"] > 2000 and grid["colors"] > 20, grid
    assert heat["painted"] > 2000 and heat["colors"] > 5, heat
    assert "Embedded:" in page.text_content("#attnwidget-note")
    assert page.text_content(".attnwidget-status").startswith("layer 1, mean of heads")
    for tab, view in (("lines", "lines"), ("rollout", "strip"), ("graph", "graph"), ("text", "text")):
        page.click(f".attnwidget-tab[data-view={tab}]")
        result = pixels(page, view)
        assert result["painted"] > 500, (tab, result)
    # the text view is coloured from the embedded data: the last token's row in the layer mean
    text = model(page, "text_data")
    assert text["source"] == "attention" and text["note"].startswith("attention of token ")
    page.select_option(".attnwidget-text-source select", "rollout")
    assert model(page, "text_data")["source"] == "rollout"


def test_hover_and_grid_click(open_page, pages):
    page = open_page(pages["plain"])
    n = pages["n"]
    page.mouse.move(*heatmap_cell(page, n - 2, 3))
    tooltip = page.locator(".attnwidget-heatmap .attnwidget-tooltip")
    assert tooltip.is_visible() and f"query {n - 2}:" in tooltip.text_content()
    assert "weight 0." in tooltip.text_content()
    assert model(page, "hovered_token") == n - 2
    lines = model(page, "lines_data")
    assert lines["token"] == n - 2 and lines["heads"] == [0, 1, 2, 3]  # lines computed in the page

    before = pixels(page, "heatmap")
    page.mouse.move(*grid_cell(page, 2, 1))
    page.mouse.down()
    page.mouse.up()
    assert (model(page, "layer"), model(page, "head")) == (2, 1)
    after = pixels(page, "heatmap")
    assert after["hash"] != before["hash"] and after["painted"] > 2000
    assert page.text_content(".attnwidget-status").startswith("layer 2, head 1")

    page.click(".attnwidget-tab[data-view=lines]")
    g = geometry(page, "lines")
    quiet = pixels(page, "lines")
    page.mouse.move(g["x"] + g["leftEdge"] - 10, g["y"] + g["top"] + 2.5 * g["lineHeight"])
    moved = pixels(page, "lines")
    assert model(page, "lines_data")["token"] == 2 and model(page, "lines_data")["heads"] == [1]
    assert moved["hash"] != quiet["hash"]
    page.mouse.move(g["x"] + g["rightEdge"] + 10, g["y"] + g["top"] + 1.5 * g["lineHeight"])
    assert model(page, "lines_data")["direction"] == "to" and model(page, "lines_data")["token"] == 1


def test_pooled_page_zoom_and_other_layers(open_page, pages):
    page = open_page(pages["pooled"])
    n = pages["n"]
    heat = model(page, "heatmap_data")
    assert heat["n_rows"] == n  # layer 1 is embedded at full resolution
    page.mouse.move(*grid_cell(page, 0, 0))
    page.mouse.down()
    page.mouse.up()
    assert model(page, "layer") == 0
    assert page.evaluate("window.attnwidgetModel.get('heatmap_data').matrix.shape[0]") < n  # pooled
    page.mouse.move(*heatmap_cell(page, n - 1, 0))
    assert model(page, "lines_data")["token"] == n - 1  # block-resolution lines from the pooled layer
    assert "max-pooled" in page.text_content("#attnwidget-note")
    page.mouse.move(*grid_cell(page, 1, 0))  # back to the full-resolution layer: zoom gets answered tiles
    page.mouse.down()
    page.mouse.up()
    page.mouse.move(*heatmap_cell(page, n // 2, n // 2))
    page.mouse.wheel(0, -400)
    page.wait_for_timeout(100)
    sent = page.evaluate("window.attnwidgetModel.sent.filter(m => m.type === 'tile_request')")
    assert sent and sent[-1]["rows"] < n
    g = geometry(page, "heatmap")
    assert g["rows"] < n and g["cellH"] > 420 / n


def test_malicious_tokens_render_as_text(open_page, pages):
    page = open_page(pages["malicious"])
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("document.querySelectorAll('img, iframe').length") == 0
    assert page.evaluate("document.scripts.length") == 3
    assert page.title() == MALICIOUS and page.text_content("h1") == MALICIOUS
    page.mouse.move(*heatmap_cell(page, 1, 1))
    tooltip = page.text_content(".attnwidget-heatmap .attnwidget-tooltip")
    assert "</script><script>window.__pwned=1</script>" in tooltip and "onerror" in tooltip
    assert page.evaluate("window.__pwned") is None
