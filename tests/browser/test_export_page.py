"""A page written by attnwidget.export_html, opened from file:// in offline Chromium (no kernel)."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

import pytest
from page_checks import AA, assert_readable, dom_contrast
from page_checks import view_box as geometry

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
        "model_name": cap.model_name,
    }


@pytest.fixture(scope="module")
def context():
    with file_chromium() as ctx:
        yield ctx


@pytest.fixture
def open_page(context):
    opened = []

    def _open(path: Path, scheme: str | None = None):
        page = context.new_page()
        opened.append(page)
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.errors = errors
        if scheme is not None:  # prefers-color-scheme, before the page reads it
            page.emulate_media(color_scheme=scheme)
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
    assert page.evaluate("document.scripts.length") == 4  # theme toggle, data, modules, bootstrap
    assert page.title() == MALICIOUS and page.text_content("h1") == MALICIOUS
    page.mouse.move(*heatmap_cell(page, 1, 1))
    tooltip = page.text_content(".attnwidget-heatmap .attnwidget-tooltip")
    assert "</script><script>window.__pwned=1</script>" in tooltip and "onerror" in tooltip
    assert page.evaluate("window.__pwned") is None


# ----------------------------------------------------------------------------- encoder-decoder and vision pages

ATOL = 0.5 / 255 + 1e-6  # the page's weights: 8 bits per cell, scaled to each matrix's maximum


@pytest.fixture(scope="module")
def family_pages(bundle, byte_tokenizer, tmp_path_factory):
    """A tiny T5's encoder-decoder capture and a tiny ViT's (queries sharpened, so patches differ), exported."""
    import torch
    from families import image_processor, pair
    from skimage import data

    folder = tmp_path_factory.mktemp("export-families")
    t5, _ = pair("t5")
    s2s = attnwidget.capture(t5, byte_tokenizer, "The cat sat on the mat.", target="Die Katze sass.")
    vit, _ = pair("vit")
    with torch.no_grad():
        for name, weight in vit.named_parameters():
            if name.endswith("query.weight"):
                weight.mul_(6)
    picture = attnwidget.capture(vit, image_processor(vit), data.astronaut())
    return {"s2s": s2s, "s2s_page": ex.export_html(s2s, folder / "t5.html"),
            "vit": picture, "vit_page": ex.export_html(picture, folder / "vit.html")}


def floats(page, trait: str, key: str) -> list[float]:
    """The float32 values of the wire array ``trait[key]`` in the page's model."""
    return page.evaluate("""([trait, key]) => {
        const w = window.attnwidgetModel.get(trait)[key];
        return Array.from(new Float32Array(w.buffer.buffer, w.buffer.byteOffset, w.buffer.byteLength / 4));
    }""", [trait, key])


def shape(page, trait: str, key: str) -> list[int]:
    return page.evaluate("([t, k]) => window.attnwidgetModel.get(t)[k].shape", [trait, key])


PART_TRAITS = ("part", "parts", "tokens", "key_tokens", "num_layers", "num_heads", "is_causal", "is_cross", "views",
               "layer", "head", "view", "hovered_token", "selected_tokens", "status")


def test_seq2seq_page_switches_parts_offline(open_page, family_pages):
    import numpy as np

    s2s = family_pages["s2s"]
    ns, nt, H = s2s.encoder.num_tokens, s2s.decoder.num_tokens, s2s.cross.num_heads
    page = open_page(family_pages["s2s_page"])
    # the part selector (the page's theme toggle has radios too)
    assert page.locator(".attnwidget").get_by_role("radio").count() == 3
    assert page.get_by_role("radio", name="cross-attention").get_attribute("aria-checked") == "true"
    # Cross-attention opens as a rectangle: target rows over source columns, the embedded weights.
    g = geometry(page, "heatmap")
    assert g["cross"] and g["total"] == {"rows": nt, "cols": ns} and g["cellW"] == pytest.approx(g["cellH"])
    assert shape(page, "heatmap_data", "matrix") == [nt, ns]
    np.testing.assert_allclose(np.reshape(floats(page, "heatmap_data", "matrix"), (nt, ns)), s2s.cross.pattern(1),
                               atol=ATOL)
    assert pixels(page, "heatmap")["painted"] > 2000
    assert not page.get_by_role("button", name="graph").is_visible()
    assert not page.get_by_role("button", name="rollout").is_visible()
    page.mouse.move(*heatmap_cell(page, 2, ns - 1))
    tooltip = page.text_content(".attnwidget-heatmap .attnwidget-tooltip")
    assert f"target 2: {s2s.decoder.tokens[2]}" in tooltip and f"source {ns - 1}:" in tooltip
    assert model(page, "hovered_token") == 2 and shape(page, "lines_data", "weights") == [H, ns]

    # The encoder: every trait as the live widget sets it on the same switch.
    page.get_by_role("radio", name="encoder").click()
    widget = attnwidget.AttentionWidget(s2s, background=False)
    widget.part = "encoder"
    for name in PART_TRAITS:
        assert model(page, name) == ex.page_side(widget, name), name
    widget.close()
    g = geometry(page, "heatmap")
    assert not g["cross"] and g["total"] == {"rows": ns, "cols": ns}
    assert page.text_content(".attnwidget-status").startswith("encoder: layer 1, mean of heads")
    np.testing.assert_allclose(np.reshape(floats(page, "heatmap_data", "matrix"), (ns, ns)), s2s.encoder.pattern(1),
                               atol=ATOL)
    page.click(".attnwidget-tab[data-view=rollout]")
    assert pixels(page, "strip")["painted"] > 500
    np.testing.assert_allclose(floats(page, "rollout_data", "values"), attnwidget.rollout(s2s.encoder)[0], atol=2e-3)

    # Back to cross-attention, which has no rollout: the view falls back to the heatmap, as live.
    page.get_by_role("radio", name="encoder").focus()
    page.keyboard.press("ArrowLeft")  # the radio group wraps: encoder -> cross-attention
    assert (model(page, "part"), model(page, "view")) == ("cross", "heatmap")
    assert model(page, "tokens") == s2s.decoder.tokens and model(page, "key_tokens") == s2s.encoder.tokens

    # Lines: target tokens on the left, source tokens on the right.
    page.click(".attnwidget-tab[data-view=lines]")
    g = geometry(page, "lines")
    assert (g["left"], g["right"]) == (nt, ns)
    quiet = pixels(page, "lines")
    page.mouse.move(g["x"] + g["rightEdge"] + 20.5, g["y"] + g["top"] + (ns - 2.5) * g["lineHeight"])
    lines = model(page, "lines_data")
    assert (lines["direction"], lines["token"]) == ("to", ns - 3) and shape(page, "lines_data", "weights") == [H, nt]
    assert model(page, "hovered_token") is None  # a source token is no query
    assert f"source {ns - 3}:" in page.text_content(".attnwidget-lines .attnwidget-tooltip")
    column = np.reshape(floats(page, "lines_data", "weights"), (H, nt))
    np.testing.assert_allclose(column, s2s.cross.head_patterns(1)[:, :, ns - 3], atol=ATOL)
    page.mouse.move(g["x"] + 20.5, g["y"] + g["top"] + 3.5 * g["lineHeight"])
    lines = model(page, "lines_data")
    assert (lines["direction"], lines["token"]) == ("from", 3) and model(page, "hovered_token") == 3
    row = np.reshape(floats(page, "lines_data", "weights"), (H, ns))
    np.testing.assert_allclose(row, s2s.cross.head_patterns(1)[:, 3], atol=ATOL)
    assert pixels(page, "lines")["hash"] != quiet["hash"]
    page.mouse.down()
    page.mouse.up()
    assert model(page, "selected_tokens") == [3]
    # Text: the source coloured by the selected target token's row (the pointer left the lines).
    page.click(".attnwidget-tab[data-view=text]")
    text = model(page, "text_data")
    assert text["note"].startswith("cross-attention of target token 3 over the source")
    assert shape(page, "text_data", "values") == [ns]


def image_points(page, layer: str, points) -> list[tuple[int, ...]]:
    """RGBA at canvas-relative CSS points of the image view's base or overlay canvas."""
    return [tuple(p) for p in page.evaluate("""([layer, points]) => {
        const ctx = document.querySelector(`.attnwidget-image-${layer}`).getContext('2d');
        return points.map(([x, y]) => Array.from(ctx.getImageData(Math.round(x * devicePixelRatio),
            Math.round(y * devicePixelRatio), 1, 1).data));
    }""", [layer, [list(p) for p in points]])]


def test_vision_page_hover_a_patch_offline(open_page, family_pages):
    import numpy as np

    cap = family_pages["vit"]
    (rows, cols), start = cap.patch_grid, cap.patch_start
    page = open_page(family_pages["vit_page"])
    assert model(page, "view") == "image" and "image" in model(page, "views")
    g = geometry(page, "image")
    assert (g["rows"], g["cols"], g["patchStart"]) == (rows, cols, start)

    def centre(r, c):
        return g["left"] + (c + 0.5) * g["width"] / cols, g["top"] + (r + 0.5) * g["height"] / rows

    centres = [centre(r, c) for r in range(rows) for c in range(cols)]
    before = image_points(page, "base", centres)
    assert len(set(before)) > 4  # the picture under the colour map
    assert model(page, "image_data")["token"] == 0  # an encoder's natural row: [CLS]

    def expected(token, layer=1):
        row = cap.pattern(layer)[token]
        patches = row[start:start + rows * cols].reshape(rows, cols)
        return patches, np.concatenate([row[:start], row[start + rows * cols:]])

    seen = []
    for r, c in ((1, 2), (3, 0)):
        x, y = centre(r, c)
        page.mouse.move(g["x"] + x, g["y"] + y)
        token = start + r * cols + c
        assert model(page, "hovered_token") == token and model(page, "image_data")["token"] == token
        assert shape(page, "image_data", "values") == [rows, cols]
        patches, others = expected(token)
        np.testing.assert_allclose(np.reshape(floats(page, "image_data", "values"), (rows, cols)), patches, atol=ATOL)
        np.testing.assert_allclose(floats(page, "image_data", "others"), others, atol=ATOL)
        assert image_points(page, "overlay", [(x, y)])[0][3] > 0  # the hovered patch is outlined
        assert f"token {token}: patch {r},{c}" in page.text_content(".attnwidget-image .attnwidget-tooltip")
        seen.append(image_points(page, "base", centres))
    assert seen[0] != before and seen[1] != seen[0]  # the overlay follows the hovered token

    x, y = centre(3, 0)
    page.mouse.click(g["x"] + x, g["y"] + y)
    assert model(page, "selected_tokens") == [start + 3 * cols]
    # Another head, then the rollout row: cut from the embedded data like the kernel cuts its rows.
    page.mouse.move(*grid_cell(page, 0, 2))
    page.mouse.down()
    page.mouse.up()
    assert (model(page, "layer"), model(page, "head")) == (0, 2)
    token = start + 3 * cols  # off the picture now: the focus is the selected patch
    np.testing.assert_allclose(np.reshape(floats(page, "image_data", "values"), (rows, cols)),
                               cap.head_patterns(0)[2, token, start:].reshape(rows, cols), atol=ATOL)
    page.click(".attnwidget-tab[data-view=image]")
    page.select_option(".attnwidget-text-source select", "rollout")
    data = model(page, "image_data")
    assert data["source"] == "rollout" and data["token"] == token and "rollout" in data["note"]
    np.testing.assert_allclose(np.reshape(floats(page, "image_data", "values"), (rows, cols)),
                               attnwidget.rollout(cap)[token, start:].reshape(rows, cols), atol=2e-3)


# ---- one coherent theme: prefers-color-scheme, the toggle (issue 12) -------------------------------

PAGE_TEXT = "h1, .attnwidget-meta, #attnwidget-note, #attnwidget-theme legend, #attnwidget-theme label"


def page_theme(page) -> dict:
    """The page's background (the body's, as the eye sees it), its luminance, and the theme flags."""
    return page.evaluate("""() => {
        const m = /rgba?\\(([^)]*)\\)/.exec(getComputedStyle(document.body).backgroundColor);
        const rgb = m[1].split(/[\\s,/]+/).filter(Boolean).slice(0, 3).map(Number);
        const lin = (c) => { const s = c / 255; return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4; };
        const root = document.querySelector(".attnwidget");
        return { rgb, luminance: 0.2126 * lin(rgb[0]) + 0.7152 * lin(rgb[1]) + 0.0722 * lin(rgb[2]),
                 light: document.body.dataset.jpThemeLight, choice: document.documentElement.dataset.theme,
                 checked: document.querySelector('input[name="attnwidget-theme"]:checked')?.value,
                 rootBackground: root ? getComputedStyle(root).backgroundColor : null };
    }""")


def assert_theme(page, dark: bool, where: str) -> None:
    """The page is dark (or light) throughout, and the widget has repainted to match: tabs, status,
    toolbar and the labels drawn on the canvases read at >= 4.5:1, and so does the page's own text."""
    # The page's CSS follows a scheme change at once; the flag is set by a matchMedia listener, which
    # runs a task later. Wait for it (bounded) rather than read it in between.
    want = "false" if dark else "true"
    deadline = time.monotonic() + 3
    theme = page_theme(page)
    while theme["light"] != want and time.monotonic() < deadline:
        page.wait_for_timeout(50)
        theme = page_theme(page)
    assert theme["light"] == want, (where, theme)
    assert (theme["luminance"] < 0.05) if dark else (theme["luminance"] > 0.9), (where, theme)
    deadline = time.monotonic() + 3  # the widget reads the theme again 0, 150 and 600 ms after a switch
    while True:
        try:
            assert_readable(page, where)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            page.wait_for_timeout(100)
    texts = dom_contrast(page, PAGE_TEXT)
    assert len(texts) >= 6, texts
    low = [t for t in texts if t["ratio"] < AA]
    assert not low, f"{where}: page text below {AA}:1: {low}"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_page_follows_prefers_color_scheme(open_page, pages, scheme):
    page = open_page(pages["plain"], scheme=scheme)
    assert page_theme(page)["checked"] == "auto"
    assert_theme(page, scheme == "dark", f"exported page, prefers-color-scheme: {scheme}")


def test_the_toggle_switches_light_and_dark_from_the_keyboard(open_page, pages):
    page = open_page(pages["plain"], scheme="dark")
    assert_theme(page, True, "auto on a dark system")
    page.focus('#attnwidget-theme input[value="auto"]')  # a radio group: arrows move and choose
    page.keyboard.press("ArrowLeft")
    assert page_theme(page)["checked"] == "dark" and page_theme(page)["choice"] == "dark"
    page.keyboard.press("ArrowLeft")
    theme = page_theme(page)
    assert theme["checked"] == "light" and theme["choice"] == "light"
    assert_theme(page, False, "toggled to light on a dark system")
    assert page.evaluate("document.activeElement.value") == "light"  # focus stays on the toggle
    page.keyboard.press("ArrowRight")
    assert_theme(page, True, "toggled to dark")
    page.keyboard.press("ArrowLeft")
    assert_theme(page, False, "toggled back to light")
    # Remembered for the page session (a reload keeps it), whatever the system prefers ...
    page.reload()
    page.wait_for_selector("html[data-attnwidget]", state="attached")
    assert page_theme(page)["checked"] == "light"
    assert_theme(page, False, "light after a reload")
    # ... and auto follows the system again, live.
    page.check('#attnwidget-theme input[value="auto"]')
    assert_theme(page, True, "auto again on a dark system")
    page.emulate_media(color_scheme="light")
    assert_theme(page, False, "auto, the system switched to light")


def test_the_toggle_is_not_shared_with_other_pages(open_page, pages):
    first = open_page(pages["plain"], scheme="light")
    first.check('#attnwidget-theme input[value="dark"]')
    assert page_theme(first)["light"] == "false"
    other = open_page(pages["plain"], scheme="light")  # a new tab: a new session, the system's scheme
    assert page_theme(other)["checked"] == "auto" and page_theme(other)["light"] == "true"


def test_figure_titles_name_the_model(open_page, pages):
    page = open_page(pages["plain"])
    name = pages["model_name"]
    assert name and model(page, "model_name") == name
    for view in ("heatmap", "grid"):
        title = page.get_attribute(f".attnwidget-{view}", "data-title")
        assert title.startswith(f"{name} · "), (view, title)
