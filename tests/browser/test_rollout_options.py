"""The rollout options in the page (head fusion select, discard ratio box), with the real widget behind
it (kernel_bridge.py): the controls drive the kernel's rollout_fusion and discard_ratio, whose rows
redraw the rollout strip and the image overlay, and the kernel's values come back to the controls."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the hand-built captures
from widget_captures import make_capture, make_seq2seq, make_vision  # noqa: E402

import attnwidget  # noqa: E402
from attnwidget.widget import AttentionWidget  # noqa: E402
from page_checks import settle  # noqa: E402

pytestmark = pytest.mark.browser

WORDS = "The cat sat on the mat and the dog sat on the log".split()
DARK = {"--jp-layout-color0": "hsl(0, 0%, 7%)", "--jp-ui-font-color1": "rgba(255,255,255,0.87)",
        "--jp-ui-font-color2": "rgba(255,255,255,0.54)", "--jp-border-color1": "#616161"}
GROUP = ".attnwidget-rollout-options"



def push(page) -> None:
    """What the kernel changed (Python set a trait) reaches the page, as a kernel update would."""
    page.evaluate("changes => window.__model.kernelUpdate(changes)", page.bridge.changes()["state"])


def canvas(page, name: str) -> str:
    return page.evaluate("name => document.querySelector(`.attnwidget-${name}-base`).toDataURL()", name)


def decode(wire: dict) -> np.ndarray:
    return np.frombuffer(wire["buffer"], dtype=wire["dtype"]).reshape(wire["shape"])


def status(page) -> str:
    return page.locator(".attnwidget-status").text_content()


@pytest.fixture(scope="module")
def causal():
    return make_capture([f"▁{w}" for w in WORDS], causal=True, layers=3, heads=4, seed=11)


@pytest.fixture
def strip_widget(causal):
    widget = AttentionWidget(causal, view="rollout", background=False)
    yield widget
    widget.close()


def test_the_fusion_control_redraws_the_strip_and_sets_the_trait(mount_kernel, strip_widget, causal):
    page = mount_kernel(strip_widget)
    group = page.get_by_role("group", name="rollout options")
    assert group.is_visible()
    fusion = page.get_by_label("rollout head fusion")
    discard = page.get_by_label("rollout discard ratio", exact=False)
    assert fusion.input_value() == "mean" and discard.input_value() == "0"
    assert status(page) == "layer 1, mean of heads; strip: rollout (mean of heads)"
    n = causal.num_tokens
    before = canvas(page, "strip")

    fusion.select_option("max")
    settle(page)
    assert strip_widget.rollout_fusion == "max"
    assert page.evaluate("window.__model.get('rollout_data').options") == ["max", 0]
    np.testing.assert_allclose(decode(strip_widget.rollout_data["values"]),
                               attnwidget.rollout_row(causal, n - 1, head_fusion="max").values, atol=1e-6)
    after_max = canvas(page, "strip")
    assert after_max != before
    assert status(page) == "layer 1, mean of heads; strip: rollout (max of heads)"

    discard.fill("0.9")
    discard.press("Enter")
    settle(page)
    assert strip_widget.discard_ratio == 0.9
    np.testing.assert_allclose(decode(strip_widget.rollout_data["values"]),
                               attnwidget.rollout_row(causal, n - 1, head_fusion="max", discard_ratio=0.9).values,
                               atol=1e-6)
    assert canvas(page, "strip") not in (before, after_max)
    assert status(page) == "layer 1, mean of heads; strip: rollout (max of heads, lowest 90% discarded)"


def test_the_controls_work_from_the_keyboard(mount_kernel, strip_widget):
    page = mount_kernel(strip_widget)
    fusion = page.get_by_label("rollout head fusion")
    fusion.focus()
    page.keyboard.press("ArrowDown")  # mean -> max
    settle(page)
    assert strip_widget.rollout_fusion == "max"
    page.keyboard.press("Tab")  # on to the discard box
    assert page.evaluate("document.activeElement.classList.contains('attnwidget-discard-ratio')")
    page.keyboard.press("ArrowUp")  # 0 -> 0.05
    settle(page)
    assert strip_widget.discard_ratio == pytest.approx(0.05)
    page.keyboard.press("ArrowUp")
    settle(page)
    assert strip_widget.discard_ratio == pytest.approx(0.1)


def test_the_kernels_values_come_back_to_the_controls(mount_kernel, strip_widget):
    page = mount_kernel(strip_widget)
    before = canvas(page, "strip")
    with strip_widget.hold_trait_notifications():
        strip_widget.rollout_fusion, strip_widget.discard_ratio = "min", 0.5
    push(page)
    assert page.get_by_label("rollout head fusion").input_value() == "min"
    assert page.get_by_label("rollout discard ratio", exact=False).input_value() == "0.5"
    assert canvas(page, "strip") != before  # the rows the kernel pushed with the new options
    assert status(page).endswith("strip: rollout (min of heads, lowest 50% discarded)")


def test_a_refused_ratio_is_reported_and_the_box_shows_the_kernels_value(mount_kernel, strip_widget):
    page = mount_kernel(strip_widget)
    discard = page.get_by_label("rollout discard ratio", exact=False)
    discard.fill("0.5")
    discard.press("Enter")
    settle(page)
    assert strip_widget.discard_ratio == 0.5
    discard.fill("1.5")
    discard.press("Enter")
    settle(page)
    assert strip_widget.discard_ratio == 0.5  # never sticks
    assert discard.input_value() == "0.5"  # the kernel sent its value back
    line = page.locator(".attnwidget-status")
    assert "discard_ratio must lie in [0.0, 1.0]; got 1.5" in line.text_content()
    assert line.get_attribute("role") == "alert"
    discard.fill("")  # nothing to send: the box shows the kernel's value again
    discard.press("Enter")
    settle(page)
    assert discard.input_value() == "0.5" and strip_widget.discard_ratio == 0.5
    discard.fill("0.25")  # a good value clears the error
    discard.press("Enter")
    settle(page)
    assert strip_widget.discard_ratio == 0.25 and strip_widget.error == ""
    assert line.get_attribute("role") is None


def test_the_options_show_only_where_rollout_shows(mount_kernel, causal):
    widget = AttentionWidget(causal, background=False)  # heatmap of attention
    page = mount_kernel(widget)
    group = page.locator(GROUP)
    assert not group.is_visible()
    page.get_by_label("heatmap of").select_option("rollout")
    settle(page)
    assert widget.heatmap_kind == "rollout" and group.is_visible()
    before = canvas(page, "heatmap")
    page.get_by_label("rollout head fusion").select_option("min")
    settle(page)
    assert widget.heatmap_data["title"] == "rollout (min of heads) over all layers"
    assert canvas(page, "heatmap") != before
    page.locator(".attnwidget-tab[data-view='text']").click()
    settle(page)
    assert not group.is_visible()  # coloured by attention
    page.get_by_label("text colour source").select_option("rollout")
    settle(page)
    assert group.is_visible()
    np.testing.assert_allclose(decode(widget.text_data["values"]),
                               attnwidget.rollout_row(causal, None, head_fusion="min").values, atol=1e-6)
    page.locator(".attnwidget-tab[data-view='graph']").click()
    settle(page)
    assert not group.is_visible()
    widget.close()


def test_cross_attention_shows_no_rollout_options(mount_kernel):
    widget = AttentionWidget(make_seq2seq(), background=False)  # opens on cross
    page = mount_kernel(widget)
    assert not page.locator(GROUP).is_visible()
    page.get_by_role("radio", name="encoder").click()
    settle(page)
    page.locator(".attnwidget-tab[data-view='rollout']").click()
    settle(page)
    assert page.locator(GROUP).is_visible()
    page.get_by_label("rollout head fusion").select_option("max")
    settle(page)
    assert widget.rollout_fusion == "max"
    page.get_by_role("radio", name="cross-attention").click()
    settle(page)
    assert widget.part == "cross" and not page.locator(GROUP).is_visible()
    widget.close()


def test_the_fusion_control_changes_the_image_overlay(mount_kernel):
    vit = make_vision()
    widget = AttentionWidget(vit, background=False, text_source="rollout")
    page = mount_kernel(widget)
    assert page.locator(GROUP).is_visible()
    before = canvas(page, "image")
    page.get_by_label("rollout head fusion").select_option("max")
    discard = page.get_by_label("rollout discard ratio", exact=False)
    discard.fill("0.9")
    discard.press("Enter")
    settle(page)
    assert (widget.rollout_fusion, widget.discard_ratio) == ("max", 0.9)
    rows, cols = vit.patch_grid
    expected = attnwidget.rollout_row(vit, 0, head_fusion="max", discard_ratio=0.9).values
    np.testing.assert_allclose(decode(widget.image_data["values"]), expected[1:1 + rows * cols].reshape(rows, cols),
                               atol=1e-6)
    assert page.evaluate("window.__model.get('image_data').note").startswith(
        "rollout (max of heads, lowest 90% discarded) of token 0")
    assert canvas(page, "image") != before
    widget.close()


@pytest.mark.parametrize("dark", [False, True])
def test_the_controls_follow_the_theme(mount_kernel, strip_widget, dark):
    page = mount_kernel(strip_widget, css=DARK if dark else None)
    colours = page.evaluate("""() => ['.attnwidget-rollout-fusion', '.attnwidget-discard-ratio'].map((s) => {
        const style = getComputedStyle(document.querySelector(s));
        return [style.color, style.backgroundColor, style.colorScheme];
    })""")

    def brightness(css: str) -> float:
        values = [float(v) for v in css[css.index("(") + 1:css.index(")")].replace(",", " ").split()[:3]]
        return sum(values) / 3

    for color, background, scheme in colours:
        if dark:
            assert brightness(color) > 180 and brightness(background) < 60 and scheme == "dark", colours
        else:
            assert brightness(color) < 90 and brightness(background) > 200 and scheme == "light", colours
