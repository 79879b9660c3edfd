"""The views beyond weights in the page, with the real widget behind it (kernel_bridge.py): the query-key
bars follow a heatmap click, the routes view draws labelled nodes and names an edge's head, the measure
selector switches the kernel's measure, and all of it reads in light and dark themes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: helpers (tiny models)
from harness_data import MALICIOUS_IMG  # noqa: E402
from helpers import tiny_model  # noqa: E402
from page_checks import AA, canvas_contrast, dom_contrast, settle, view_box  # noqa: E402
from test_theme_layout import DARK  # noqa: E402

import attnwidget  # noqa: E402
from attnwidget.widget import AttentionWidget  # noqa: E402

pytestmark = pytest.mark.browser

TEXT = "The cat sat on the mat. The dog sat"


def decode(wire: dict) -> np.ndarray:
    return np.frombuffer(wire["buffer"], dtype=wire["dtype"]).reshape(wire["shape"])


@pytest.fixture(scope="module")
def cap(byte_tokenizer):
    return attnwidget.capture(tiny_model("llama"), byte_tokenizer, TEXT, values=True, residual=True)


@pytest.fixture
def widget(cap):
    w = AttentionWidget(cap, layer=1, head=2, background=False)
    yield w
    w.close()


def test_the_query_key_bars_follow_a_heatmap_click(mount_kernel, widget, cap):
    page = mount_kernel(widget)
    g = view_box(page, "heatmap")
    page.mouse.click(g["x"] + g["left"] + (2 + 0.5) * g["cellW"], g["y"] + g["top"] + (7 + 0.5) * g["cellH"])
    settle(page)
    assert widget.query_key_cell == [7, 2] and widget.selected_tokens == [7]
    # Enter on the keyboard cursor does what a click does: the query token and the query-key cell.
    page.locator(".attnwidget-heatmap-base").focus()
    page.keyboard.press("ArrowDown")  # the cursor appears on the hovered query's diagonal, (7, 7) ...
    page.keyboard.press("ArrowDown")  # ... and moves to (8, 7)
    page.keyboard.press("Enter")
    settle(page)
    assert widget.query_key_cell == [8, 7] and widget.selected_tokens == [7, 8]
    widget.query_key_cell, widget.selected_tokens = [7, 2], [7]
    page.get_by_role("button", name="query-key").click()
    settle(page)
    qk = view_box(page, "query-key")
    assert (qk["layer"], qk["head"], qk["query"], qk["key"]) == (1, 2, 7, 2)
    np.testing.assert_allclose(qk["q"], cap.query_key(1, 2, 7, 2).q, rtol=1e-6)
    caption = page.evaluate("document.querySelector('.attnwidget-query-key').dataset.caption")
    assert caption.startswith("q·k = ") and " × scaling 0.25 = score " in caption and "→ weight" in caption
    bars = page.evaluate("document.querySelector('.attnwidget-query-key-base').toDataURL()")
    assert page.evaluate("sel => window.paintedPixels(sel)", ".attnwidget-query-key-base")["colors"] > 4
    # The keyboard moves the cell: down is the next query token; the kernel sends its bars.
    page.locator(".attnwidget-query-key-base").focus()
    page.keyboard.press("ArrowDown")
    settle(page)
    assert widget.query_key_cell == [8, 2]
    qk = view_box(page, "query-key")
    assert qk["query"] == 8
    np.testing.assert_allclose(qk["q"], cap.query_key(1, 2, 8, 2).q, rtol=1e-6)
    assert page.evaluate("document.querySelector('.attnwidget-query-key-base').toDataURL()") != bars
    # Hovering a dimension names its three values.
    page.mouse.move(qk["x"] + qk["left"] + 3.5 * qk["width"] / qk["size"], qk["y"] + qk["top"] + 10)
    tip = page.locator(".attnwidget-query-key .attnwidget-tooltip").text_content()
    assert tip.startswith("dimension 3\nq ") and "q × k" in tip


def test_the_routes_view_draws_labelled_nodes_and_names_an_edges_head(mount_kernel, widget, cap):
    widget.tokens = [MALICIOUS_IMG] + list(cap.tokens[1:])  # token strings reach the page as text only
    page = mount_kernel(widget)
    page.get_by_role("button", name="routes").click()
    settle(page)
    graph = attnwidget.flow_routes(cap)
    g = view_box(page, "routes")
    assert (g["nodes"], g["edges"], g["target"]) == (graph.number_of_nodes(), graph.number_of_edges(), 9)
    assert page.evaluate("sel => window.paintedPixels(sel)", ".attnwidget-routes-base")["colors"] > 4
    # Token labels along the bottom, as text; the target's is pressed.
    labels = page.evaluate("""() => [...document.querySelectorAll('.attnwidget-routes-token')].map(b =>
        [Number(b.dataset.token), b.querySelector('.attnwidget-routes-token-text').textContent,
         b.getAttribute('aria-pressed')])""")
    assert len(labels) == cap.num_tokens
    shown = {token: (text, pressed) for token, text, pressed in labels}
    assert shown[1] == (" cat", "false") and shown[9] == (" sat", "true")
    assert shown[0][0].startswith("<img")  # the hostile string, as text
    assert page.evaluate("window.__pwned") is None
    assert page.locator(".attnwidget-routes img").count() == 0
    caption = page.locator(".attnwidget-routes-caption").text_content()
    assert caption.startswith('routes into token 9 " sat" · threshold 0.04')
    # Hover an attention edge at its midpoint (where its curve passes): the tooltip names layer and head.
    data = widget.routes_data
    heads, layers, kinds = (decode(data["edges"][k]) for k in ("head", "layer", "kind"))
    source, target = decode(data["edges"]["source"]), decode(data["edges"]["target"])
    points = np.asarray(g["points"]).reshape(-1, 2)
    edge = max((e for e in range(len(heads)) if data["edge_kinds"][kinds[e]] == "attention" and heads[e] >= 0
                and layers[e] != widget.layer), key=lambda e: abs(points[source[e], 0] - points[target[e], 0]))
    mid = (points[source[edge]] + points[target[edge]]) / 2
    page.mouse.move(g["x"] + mid[0] - g["scrollLeft"], g["y"] + mid[1])
    assert page.evaluate("document.querySelector('.attnwidget-routes').dataset.hoveredEdge") == str(edge)
    tip = page.locator(".attnwidget-routes .attnwidget-tooltip").text_content()
    assert tip.startswith(f"attention: layer {layers[edge]}, head {heads[edge]} (importance ")
    assert page.evaluate("sel => window.paintedPixels(sel)", ".attnwidget-routes-overlay")["painted"] > 20  # highlighted
    # A click selects the edge's layer and head in the kernel, so every view follows.
    page.mouse.click(g["x"] + mid[0] - g["scrollLeft"], g["y"] + mid[1])
    settle(page)
    assert (widget.layer, widget.head) == (int(layers[edge]), int(heads[edge]))
    assert page.evaluate("[window.__model.get('layer'), window.__model.get('head')]") == [widget.layer, widget.head]
    # A click on a token label traces the routes into that token.
    page.locator(".attnwidget-routes-token[data-token='4']").click()
    settle(page)
    assert widget.routes_target == 4 and view_box(page, "routes")["target"] == 4
    assert page.locator(".attnwidget-routes-token[data-token='4']").get_attribute("aria-pressed") == "true"
    assert page.locator(".attnwidget-routes-caption").text_content().startswith('routes into token 4 " the"')


def test_the_measure_selector_switches_the_kernels_measure(mount_kernel, widget):
    page = mount_kernel(widget)
    measure = page.get_by_role("radio", name="contribution")
    assert page.get_by_role("radiogroup", name="what the views measure").is_visible()
    assert page.get_by_role("radio", name="attention").get_attribute("aria-checked") == "true"
    measure.click()
    settle(page)
    assert widget.measure == "contribution" and (widget.layer, widget.head) == (1, 2)
    assert measure.get_attribute("aria-checked") == "true"
    title = page.evaluate("document.querySelector('.attnwidget-heatmap').dataset.title")
    assert "layer 1, head 2 · contribution ||αf(x)|| (row share)" in title
    assert "contribution" in page.evaluate("document.querySelector('.attnwidget-grid').dataset.title")
    option = page.locator(".attnwidget-heatmap-kind option[value='attention']")
    assert option.text_content() == "contribution (layer, head)"  # what "attention" of the heatmap now is
    assert page.locator(".attnwidget-status").text_content() == widget.status
    page.keyboard.press("ArrowLeft")  # a radio group: the arrows move and choose
    settle(page)
    assert widget.measure == "attention"


@pytest.mark.parametrize("dark", [False, True])
def test_the_new_views_read_in_light_and_dark(mount_kernel, widget, dark):
    widget.layer, widget.head = 1, None
    page = mount_kernel(widget, css=DARK if dark else None)
    where = "dark" if dark else "light"
    assert page.evaluate("document.querySelector('.attnwidget').dataset.dark") == str(dark).lower()
    texts = dom_contrast(page, ".attnwidget-measure")
    assert len(texts) == 2 and all(t["ratio"] >= AA for t in texts), (where, texts)
    page.get_by_role("button", name="routes").click()
    settle(page)
    texts = dom_contrast(page, ".attnwidget-routes-caption, .attnwidget-routes-token, .attnwidget-routes-legend span, "
                               ".attnwidget-routes-threshold > span")
    assert len(texts) >= 10 and not [t for t in texts if t["ratio"] < AA], (where, [t for t in texts if t["ratio"] < AA])
    g = view_box(page, "routes")
    rows = canvas_contrast(page, ".attnwidget-routes-base", {"x": 0, "y": 0, "width": g["gutter"] - 2,
                                                             "height": g["plotHeight"]})
    assert rows["inked"] > 50 and rows["ratio"] >= AA, (where, rows)
    page.get_by_role("button", name="query-key").click()
    settle(page)
    assert widget.query_key_data["head"] == 0 and "head 0" in widget.query_key_data["note"]
    g = view_box(page, "query-key")
    title = canvas_contrast(page, ".attnwidget-query-key-base", {"x": 0, "y": 0, "width": g["width"], "height": 52})
    assert title["inked"] > 100 and title["ratio"] >= AA, (where, title)
    ticks = canvas_contrast(page, ".attnwidget-query-key-base", {"x": 0, "y": g["top"], "width": g["left"] - 4,
                                                                  "height": g["height"]})
    assert ticks["inked"] > 30 and ticks["ratio"] >= AA, (where, ticks)
