"""The built widget bundle in headless Chromium, rendered on a fake anywidget model."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from harness_data import MALICIOUS_IMG, MALICIOUS_SCRIPT, wire
from page_checks import view_box as geometry

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.browser

VIEWS = {"heatmap": "heatmap", "lines": "lines", "graph": "graph", "rollout": "strip"}



def heatmap_cell(page, query: int, key: int) -> tuple[float, float]:
    g = geometry(page, "heatmap")
    return (g["x"] + g["left"] + (key - g["col0"] + 0.5) * g["cellW"],
            g["y"] + g["top"] + (query - g["row0"] + 0.5) * g["cellH"])


def grid_cell(page, layer: int, column: int) -> tuple[float, float]:
    g = geometry(page, "grid")
    return g["x"] + g["columns"][column] + g["cell"] / 2 + 0.5, g["y"] + g["rows"][layer] + g["cell"] / 2 + 0.5


def calls(page) -> dict:
    return page.evaluate("window.__model.calls")


def painted(page, view: str, layer: str = "base") -> dict:
    return page.evaluate("sel => window.paintedPixels(sel)", f".attnwidget-{view}-{layer}")


@pytest.mark.parametrize("view", list(VIEWS))
def test_each_view_paints(mount, view):
    page = mount(view=view)
    result = painted(page, VIEWS[view])
    assert result["painted"] > 2000, result
    assert result["colors"] > 5, result
    grid = painted(page, "grid")
    assert grid["painted"] > 2000 and grid["colors"] > 20, grid


def test_heatmap_hover_sets_hovered_token_and_tooltip(mount):
    page = mount()
    page.mouse.move(*heatmap_cell(page, 10, 2))
    assert ["hovered_token", 10] in calls(page)["set"]
    assert calls(page)["save"] >= 1
    tooltip = page.locator(".attnwidget-heatmap .attnwidget-tooltip")
    assert tooltip.is_visible()
    assert "query 10:  slept" in tooltip.text_content()
    assert "key 2:  cat" in tooltip.text_content()
    assert "weight 0." in tooltip.text_content()
    overlay = painted(page, "heatmap", "overlay")
    assert overlay["painted"] > 100  # crosshair and row/column bands
    page.mouse.click(*heatmap_cell(page, 10, 2))
    assert calls(page)["set"][-1] == ["selected_tokens", [10]]
    page.mouse.move(2, 2)
    assert calls(page)["set"][-1] == ["hovered_token", None]
    assert not tooltip.is_visible()


def test_heatmap_masks_causal_upper_triangle(mount):
    page = mount()
    page.mouse.move(*heatmap_cell(page, 1, 9))
    assert "masked (causal)" in page.locator(".attnwidget-heatmap .attnwidget-tooltip").text_content()


def test_heatmap_wheel_zoom_requests_a_tile(mount):
    page = mount()
    page.mouse.move(*heatmap_cell(page, 6, 6))
    page.mouse.wheel(0, -400)
    page.wait_for_function("window.__model.calls.send.length > 0")
    request = calls(page)["send"][-1]
    assert request["type"] == "tile_request"
    assert request["rows"] < 12 and request["cols"] < 12
    assert geometry(page, "heatmap")["rows"] == request["rows"]
    # The kernel answers with a tile message carrying binary buffers.
    page.evaluate("""() => {
        const bytes = new Uint8Array(16).fill(200);
        window.__model.emit("msg:custom", {type: "tile", row0: 4, col0: 4, n_rows: 4, n_cols: 4,
            dtype: "uint8", shape: [4, 4]}, [new DataView(bytes.buffer)]);
    }""")
    assert painted(page, "heatmap")["painted"] > 2000
    # Drag up-left by two cells: the window pans by two tokens and is requested on release.
    before = geometry(page, "heatmap")
    x, y = heatmap_cell(page, before["row0"] + 3, before["col0"] + 3)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 2 * before["cellW"], y + 2 * before["cellH"], steps=4)
    page.mouse.up()
    after = calls(page)["send"][-1]
    assert (after["row0"], after["col0"]) == (max(0, before["row0"] - 2), max(0, before["col0"] - 2))
    assert after != request


def test_grid_click_selects_layer_and_head(mount):
    page = mount()
    page.mouse.click(*grid_cell(page, 2, 1))
    assert ["layer", 2] in calls(page)["set"] and ["head", 1] in calls(page)["set"]
    assert "layer 2 · head 1" in page.locator(".attnwidget-grid .attnwidget-tooltip").text_content()
    page.mouse.click(*grid_cell(page, 1, 4))  # the layer-mean column
    assert calls(page)["set"][-2:] == [["layer", 1], ["head", None]]
    assert calls(page)["save"] == 2


def test_tabs_threshold_and_kernel_updates(mount):
    page = mount()
    page.get_by_role("button", name="graph").click()
    assert ["view", "graph"] in calls(page)["set"]
    assert page.locator(".attnwidget-graph").count() == 1
    assert page.locator(".attnwidget-heatmap").count() == 0
    page.locator(".attnwidget-threshold input").fill("0.5")
    assert ["threshold", 0.5] in calls(page)["set"]
    page.evaluate("window.__model.kernelSet('hovered_token', 3)")
    assert painted(page, "graph", "overlay")["painted"] > 1000  # highlight drawn from outside
    page.evaluate("window.__model.kernelSet('status', 'computing layer 2')")
    assert page.locator(".attnwidget-status").text_content() == "computing layer 2"


def test_lines_hover_reports_token_and_direction(mount):
    page = mount(view="lines")
    g = geometry(page, "lines")
    y = g["y"] + g["top"] + 4.5 * g["lineHeight"]
    page.mouse.move(g["x"] + g["rightEdge"] + 20.5, y)
    assert ["hovered_token", 4] in calls(page)["set"]
    assert calls(page)["send"][-1] == {"type": "lines_hover", "token": 4, "direction": "to"}


def test_hostile_tokens_render_as_text(mount):
    page = mount(status=MALICIOUS_IMG)
    page.mouse.move(*heatmap_cell(page, 7, 3))
    text = page.locator(".attnwidget-heatmap .attnwidget-tooltip").text_content()
    assert MALICIOUS_IMG in text and MALICIOUS_SCRIPT in text
    assert page.locator(".attnwidget-status").text_content() == MALICIOUS_IMG
    page.evaluate("window.__model.kernelSet('view', 'rollout')")
    g = geometry(page, "strip")
    page.mouse.move(g["x"] + g["left"] + 7.5 * g["width"] / g["count"], g["y"] + g["top"] + 10.5)
    assert MALICIOUS_SCRIPT in page.locator(".attnwidget-strip .attnwidget-tooltip").text_content()
    assert page.evaluate("document.querySelectorAll('img, script:not([src])').length") == 0
    assert page.evaluate("window.__pwned") is None


def test_png_export_downloads(mount):
    page = mount(view="rollout")
    with page.expect_download() as download:
        page.get_by_role("button", name="PNG").click()
    assert download.value.suggested_filename == "attention-rollout-L0-H0.png"


@pytest.mark.parametrize("which, view", [("current", "heatmap"), ("current", "graph"), ("grid", "grid")])
def test_png_request_answers_with_png_bytes(mount, which, view):
    """save_png's message: the page answers {type: png, request_id} with the PNG as buffers[0]."""
    page = mount(view="heatmap" if which == "grid" else view)
    page.evaluate("""which => window.__model.emit("msg:custom",
        {type: "png_request", request_id: 7, view: which}, [])""", which)
    page.wait_for_function("window.__model.calls.send.some(m => m.type === 'png')", timeout=5000)
    sent = calls(page)
    index = next(i for i, m in enumerate(sent["send"]) if m["type"] == "png")
    assert sent["send"][index] == {"type": "png", "request_id": 7}
    assert len(sent["buffers"][index]) == 1
    data = bytes(sent["buffers"][index][0])
    assert data.startswith(PNG_SIGNATURE), data[:16]
    width, height = struct.unpack(">II", data[16:24])  # IHDR
    size = page.evaluate("sel => { const c = document.querySelector(sel); return [c.width, c.height]; }",
                         f".attnwidget-{view}-base")
    assert [width, height] == size


def test_graph_skips_nan_positions(mount):
    """Tokens outside the kernel's graph window arrive with NaN positions: not drawn, never hit."""
    n = 12
    rng = np.random.default_rng(3)
    pos = rng.uniform(-0.9, 0.9, (n, 2)).astype(np.float32)
    pos[:6] = np.nan
    edges = np.array([[q, k] for q in range(6, n) for k in range(6, q + 1)], dtype=np.uint32)
    weights = rng.uniform(0.2, 1.0, len(edges)).astype(np.float32)
    page = mount(view="graph", graph_data={"pos": wire(pos), "edges": wire(edges), "weights": wire(weights)})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    assert painted(page, "graph")["painted"] > 500
    g = geometry(page, "graph")
    points = g["points"]
    assert points[:12] == [None] * 12  # NaN serialises as null
    # Hover a placed node: it is reported; the (0, 0) corner (where NaN could collapse) hits nothing.
    page.mouse.move(g["x"] + points[2 * 8] + 0.5, g["y"] + points[2 * 8 + 1] + 0.5)
    assert calls(page)["set"][-1] == ["hovered_token", 8]
    page.mouse.move(g["x"] + 1.5, g["y"] + 1.5)
    assert calls(page)["set"][-1] == ["hovered_token", None]
    # The kernel hovering a token outside the window draws no highlight (and no dimming veil).
    page.evaluate("window.__model.kernelSet('hovered_token', 2)")
    assert painted(page, "graph", "overlay")["painted"] == 0
    page.evaluate("window.__model.kernelSet('hovered_token', 9)")
    assert painted(page, "graph", "overlay")["painted"] > 1000
    assert errors == []


def test_cleanup_removes_listeners_and_elements(mount):
    page = mount()
    assert page.evaluate("window.__model.listenerCount()") > 10
    page.mouse.move(*heatmap_cell(page, 5, 5))
    page.evaluate("window.__model.kernelSet('view', 'graph')")
    page.evaluate("window.__cleanup()")
    assert page.evaluate("window.__model.listenerCount()") == 0
    assert page.evaluate("document.getElementById('root').childElementCount") == 0


@pytest.mark.parametrize("dark", [False, True])
def test_theme_variables_pick_the_scale(mount, dark):
    """Weight 0 fades into the background: light on a light theme, dark on a dark one."""
    css = {"--jp-layout-color0": "hsl(0, 0%, 7%)", "--jp-ui-font-color1": "rgba(255,255,255,0.87)"} if dark else None
    page = mount(css=css)
    g = geometry(page, "heatmap")
    # Cell (query 11, key 6) of layer 0 head 0 has weight 0.000 (below the diagonal, not masked).
    x, y = g["left"] + 6.5 * g["cellW"], g["top"] + 11.5 * g["cellH"]
    rgb = page.evaluate("""([x, y]) => Array.from(document.querySelector('.attnwidget-heatmap-base')
        .getContext('2d').getImageData(Math.round(x * devicePixelRatio), Math.round(y * devicePixelRatio), 1, 1).data)""",
        [x, y])
    brightness = sum(rgb[:3]) / 3
    assert (brightness < 60) if dark else (brightness > 180), rgb


def test_heatmap_kind_selector(mount):
    page = mount()  # the fake state has no heatmap_kind: the selector stays hidden (static pages)
    assert not page.locator(".attnwidget-heatmap-kind").is_visible()
    page = mount(heatmap_kind="attention")
    selector = page.locator(".attnwidget-heatmap-kind select")
    assert selector.is_visible()
    selector.select_option("rollout")
    assert ["heatmap_kind", "rollout"] in calls(page)["set"]
    page.evaluate("window.__model.kernelSet('heatmap_kind', 'attention')")
    assert selector.input_value() == "attention"
    page.get_by_role("button", name="lines").click()  # only the heatmap tab offers it
    assert not page.locator(".attnwidget-heatmap-kind").is_visible()


def test_a_kernel_error_shows_in_red_until_cleared(mount):
    page = mount()
    page.evaluate("window.__model.kernelSet('status', 'layer 1, mean of heads')")
    page.evaluate("window.__model.kernelSet('error', \"the page set layer: OutOfRangeError: layer 99 is out of range\")")
    status = page.locator(".attnwidget-status")
    assert status.text_content() == "attnwidget: the page set layer: OutOfRangeError: layer 99 is out of range"
    assert status.get_attribute("role") == "alert"
    red = page.evaluate("getComputedStyle(document.querySelector('.attnwidget-status')).color")
    assert red == "rgb(211, 47, 47)"
    page.evaluate("window.__model.kernelSet('error', '')")
    assert status.text_content() == "layer 1, mean of heads" and status.get_attribute("role") is None
