"""An encoder-decoder capture in the page, with the real widget behind it (kernel_bridge.py): the part
selector, the rectangular cross-attention heatmap, lines and text."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the hand-built captures
from widget_captures import SOURCE, TARGET, make_seq2seq  # noqa: E402

from attnwidget.widget import AttentionWidget  # noqa: E402
from page_checks import settle, view_box  # noqa: E402

pytestmark = pytest.mark.browser


def cell(g: dict, row: int, col: int) -> tuple[float, float]:
    return (g["x"] + g["left"] + (col - g["col0"] + 0.5) * g["cellW"],
            g["y"] + g["top"] + (row - g["row0"] + 0.5) * g["cellH"])


@pytest.fixture
def s2s_widget():
    widget = AttentionWidget(make_seq2seq(), part="encoder", background=False)
    yield widget
    widget.close()


def test_the_part_selector_switches_the_kernels_part(mount_kernel, s2s_widget):
    page = mount_kernel(s2s_widget)
    radios = page.get_by_role("radio")
    assert radios.count() == 3
    assert page.get_by_role("radio", name="encoder").get_attribute("aria-checked") == "true"
    g = view_box(page, "heatmap")
    # A square plot as wide as the layout allows (the widget fills the page's width; layout.js).
    side = g["width"]
    assert g["total"] == {"rows": 8, "cols": 8} and g["height"] == side >= 420

    page.get_by_role("radio", name="cross-attention").click()
    settle(page)
    assert s2s_widget.part == "cross" and page.evaluate("window.__model.get('part')") == "cross"
    assert page.get_by_role("radio", name="cross-attention").get_attribute("aria-checked") == "true"
    assert page.get_by_role("radio", name="encoder").get_attribute("aria-checked") == "false"
    # The heatmap is a rectangle: 6 target rows over 8 source columns, square cells.
    g = view_box(page, "heatmap")
    assert g["cross"] and g["total"] == {"rows": len(TARGET), "cols": len(SOURCE)}
    # (The flatter plot grows into the view box's height: at least as wide as the square was.)
    assert g["width"] >= side and g["height"] == round(g["width"] * 6 / 8)
    assert g["cellW"] == pytest.approx(g["cellH"], rel=0.01)
    assert (g["rows"], g["cols"]) == (6, 8)
    css = page.evaluate("""() => { const c = document.querySelector('.attnwidget-heatmap-base');
        return [parseFloat(c.style.width), parseFloat(c.style.height)]; }""")
    assert css[0] > css[1]
    assert page.evaluate("sel => window.paintedPixels(sel)", ".attnwidget-heatmap-base")["painted"] > 20000
    # Row labels are target tokens, column labels source tokens; the hovered row reaches the kernel.
    page.mouse.move(*cell(g, 2, 7))
    settle(page)
    tooltip = page.locator(".attnwidget-heatmap .attnwidget-tooltip").text_content()
    assert f"target 2: {TARGET[2]}" in tooltip and f"source 7: {SOURCE[7]}" in tooltip
    assert s2s_widget.hovered_token == 2
    # Cross-attention offers no graph and no rollout: their tabs are hidden, rollout options disabled.
    assert page.get_by_role("button", name="heatmap").is_visible()
    assert not page.get_by_role("button", name="graph").is_visible()
    assert not page.get_by_role("button", name="rollout").is_visible()
    disabled = page.evaluate("""() => [...document.querySelectorAll('.attnwidget-heatmap-kind option')]
        .filter(o => o.disabled).map(o => o.value)""")
    assert disabled == ["rollout"]

    # Keyboard: the arrow keys move through the radio group and switch the part.
    page.get_by_role("radio", name="cross-attention").focus()
    page.keyboard.press("ArrowLeft")
    settle(page)
    assert s2s_widget.part == "decoder"
    assert page.evaluate("document.activeElement.dataset.part") == "decoder"
    g = view_box(page, "heatmap")
    assert g["total"] == {"rows": 6, "cols": 6} and not g["cross"]
    assert page.get_by_role("button", name="rollout").is_visible()


def test_cross_lines_join_target_tokens_to_source_tokens(mount_kernel, s2s_widget):
    s2s_widget.part = "cross"
    page = mount_kernel(s2s_widget)
    page.get_by_role("button", name="lines").click()
    settle(page)
    g = view_box(page, "lines")
    assert (g["left"], g["right"]) == (len(TARGET), len(SOURCE))
    # A source token on the right: its column (every target token reading it); no hovered target token.
    page.mouse.move(g["x"] + g["rightEdge"] + 20.5, g["y"] + g["top"] + 7.5 * g["lineHeight"])
    settle(page)
    assert s2s_widget.lines_data["direction"] == "to" and s2s_widget.lines_data["token"] == 7
    assert s2s_widget.hovered_token is None and s2s_widget.error == ""
    tooltip = page.locator(".attnwidget-lines .attnwidget-tooltip").text_content()
    assert tooltip == f"source 7: {SOURCE[7]}"
    # A target token on the left: its row over the source.
    page.mouse.move(g["x"] + 20.5, g["y"] + g["top"] + 3.5 * g["lineHeight"])
    settle(page)
    assert s2s_widget.hovered_token == 3 and s2s_widget.lines_data["direction"] == "from"
    assert page.evaluate("window.__model.get('lines_data').token") == 3
    assert page.evaluate("sel => window.paintedPixels(sel)", ".attnwidget-lines-base")["painted"] > 3000


def test_cross_text_colours_the_source_by_the_hovered_target(mount_kernel, s2s_widget):
    s2s_widget.part = "cross"
    page = mount_kernel(s2s_widget)
    page.get_by_role("button", name="text").click()
    settle(page)
    g = view_box(page, "text")
    boxes = {int(k): v for k, v in g["boxes"].items()}
    assert sorted(boxes) == list(range(len(TARGET) + len(SOURCE)))
    first_source, last_target = boxes[len(TARGET)], boxes[len(TARGET) - 1]
    assert first_source[1] >= last_target[1] + 2 * g["lineHeight"] - 1  # a blank line between the texts

    def source_colours():
        out = []
        for j in range(len(SOURCE)):
            x, y, w, _ = boxes[len(TARGET) + j]
            out.append(tuple(page.evaluate("""([x, y]) => Array.from(document.querySelector('.attnwidget-text-base')
                .getContext('2d').getImageData(Math.round(x * devicePixelRatio), Math.round(y * devicePixelRatio), 1, 1)
                .data)""", [x + w / 2, y + 1])))
        return out

    before = source_colours()
    assert len(set(before)) > 2  # coloured by weight
    x, y, w, h = boxes[3]
    page.mouse.move(g["x"] + x + w / 2, g["y"] + y + h / 2)
    settle(page)
    assert s2s_widget.hovered_token == 3 and s2s_widget.text_data["token"] == 3
    assert "target 3" in page.locator(".attnwidget-text .attnwidget-tooltip").text_content()
    after = source_colours()
    assert after != before
    # Hovering a source token shows its weight and focuses no target token.
    x, y, w, h = boxes[len(TARGET) + 2]
    page.mouse.move(g["x"] + x + w / 2, g["y"] + y + h / 2)
    settle(page)
    assert s2s_widget.hovered_token is None
    assert f"source 2: {SOURCE[2]}" in page.locator(".attnwidget-text .attnwidget-tooltip").text_content()
