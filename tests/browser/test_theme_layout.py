"""Theme, layout and keyboard of the widget in headless Chromium (harness page; a real widget behind it
where Python has to follow). The same checks in a real JupyterLab, with its Dark theme switched live,
are in test_jupyter_theme.py.

* Themes: text reads on its background (WCAG AA, >= 4.5:1) in light and dark, for the token labels
  (drawn on the canvases), the tabs, the controls and the status line; a theme switch (JupyterLab's
  body attributes) repaints without re-rendering.
* Layout: the widget fills the width up to 1400 px; at 600 px nothing sticks out (the root's scroll
  width is its client width) and the view wraps under the grid; each view keeps one box across tabs;
  a resize lays it out again.
* Keyboard: the grid and the heatmap take focus (with a visible ring); the arrows move the selection and
  the Python traits follow; ArrowRight on the threshold slider changes the threshold, keeps focus,
  and never reaches the document (where JupyterLab listens for its shortcuts).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from harness_data import make_state
from page_checks import AA, assert_readable, dom_contrast, overflow, settle

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (widget_captures)
from widget_captures import make_capture  # noqa: E402

from attnwidget.widget import AttentionWidget  # noqa: E402

pytestmark = pytest.mark.browser

VIEWS = ["heatmap", "text", "lines", "graph", "rollout"]
# JupyterLab Dark's variables (theme-dark-extension/index.css), set as JupyterLab sets them: on the
# page, with its body attributes.
DARK = {"--jp-layout-color0": "#111", "--jp-ui-font-color1": "rgba(255,255,255,.87)",
        "--jp-ui-font-color2": "rgba(255,255,255,.54)", "--jp-border-color1": "#616161",
        "--jp-brand-color1": "#2196f3", "--jp-warn-color1": "#ff9800", "--jp-error-color1": "#f44336",
        "background-color": "#111"}
WORDS = "The cat sat on the mat and the dog sat on the log".split()


def layout(page) -> dict:
    return json.loads(page.evaluate("document.querySelector('.attnwidget').dataset.layout"))


def box(page, selector: str) -> dict:
    return page.evaluate("""sel => { const r = document.querySelector(sel).getBoundingClientRect();
        return {x: r.x, y: r.y, width: r.width, height: r.height, right: r.right, bottom: r.bottom}; }""", selector)


def geometry(page, view: str) -> dict:
    return json.loads(page.evaluate(f"document.querySelector('.attnwidget-{view}').dataset.geometry"))



def switch_theme(page, css: dict | None, light: bool, name: str) -> None:
    """Switch the page's theme as JupyterLab does: its CSS (variables on the page), then the body's
    data-jp-theme-light / data-jp-theme-name, which the widget observes."""
    page.evaluate("""([css, light, name]) => {
        document.body.removeAttribute("style");
        for (const [k, v] of Object.entries(css ?? {})) document.body.style.setProperty(k, v);
        document.body.dataset.jpThemeLight = String(light);
        document.body.dataset.jpThemeName = name;
    }""", [css, light, name])
    page.wait_for_function("dark => document.querySelector('.attnwidget').dataset.dark === String(dark)",
                           arg=not light, timeout=5000)


# ---- themes ----------------------------------------------------------------------------------

def test_text_reads_in_light_and_after_a_live_switch_to_dark_and_back(mount):
    page = mount(status="ready · 12 tokens")
    root = ".attnwidget"
    assert page.evaluate(f"document.querySelector('{root}').dataset.dark") == "false"
    assert_readable(page, "light")
    before = page.evaluate("document.querySelector('.attnwidget-heatmap-base').toDataURL()")

    switch_theme(page, DARK, light=False, name="JupyterLab Dark")
    assert page.evaluate(f"document.querySelector('{root}').dataset.theme") == "JupyterLab Dark"
    assert_readable(page, "dark")
    # Repainted, not re-rendered: the same model, the canvases redrawn (weight 0 is now the dark end).
    assert page.evaluate("window.__model.calls.save") == 0
    assert page.evaluate("document.querySelector('.attnwidget-heatmap-base').toDataURL()") != before
    color = page.evaluate("getComputedStyle(document.querySelector('.attnwidget-tab[aria-pressed=false]')).color")
    assert color.startswith("rgba(255, 255, 255") or color.startswith("rgb(2"), color

    switch_theme(page, None, light=True, name="JupyterLab Light")
    assert_readable(page, "light again")


def test_the_status_line_reads_on_dark_even_when_it_reports_an_error(mount):
    page = mount(css=DARK, error="the kernel refused: threshold must be in [0, 1]")
    texts = dom_contrast(page, ".attnwidget-status")
    assert texts and texts[0]["text"].startswith("attnwidget: the kernel refused"), texts
    assert texts[0]["ratio"] >= AA, texts


def test_the_theme_is_read_after_the_element_is_attached(server, browser_context):
    """anywidget renders into a detached element: the theme comes from the page, and the element's own
    variables (a themed container) once it is attached."""
    page = browser_context.new_page()
    try:
        page.goto(server + "/")
        page.wait_for_function("window.harnessReady === true")
        dark = page.evaluate("""async state => {
            window.mountWidget(state);  // makes the harness' fake model (window.__model)
            window.__cleanup();
            const { default: widget } = await import("/widget.js");
            const themed = document.createElement("div");  // a dark container, as an output area could be
            for (const [k, v] of Object.entries({"--jp-layout-color0": "#111",
                "--jp-ui-font-color1": "rgba(255,255,255,.87)", "--jp-ui-font-color2": "rgba(255,255,255,.54)"}))
                themed.style.setProperty(k, v);
            themed.style.background = "#111";
            document.body.append(themed);
            const el = document.createElement("div");  // detached, as anywidget renders
            const cleanup = widget.render({ model: window.__model, el });
            const atRender = el.querySelector(".attnwidget").dataset.dark;
            themed.append(el);
            await new Promise((resolve) => setTimeout(resolve, 300));
            const after = el.querySelector(".attnwidget").dataset.dark;
            const color = getComputedStyle(el.querySelector(".attnwidget-tab[aria-pressed=false]")).color;
            cleanup();
            return { atRender, after, color };
        }""", make_state())
        assert dark["atRender"] == "false" and dark["after"] == "true", dark
        assert dark["color"].startswith("rgba(255, 255, 255"), dark
    finally:
        page.close()


def test_the_theme_observer_is_disconnected_on_cleanup(mount):
    page = mount()
    page.evaluate("window.__cleanup()")
    assert page.evaluate("document.querySelectorAll('.attnwidget').length") == 0
    # A theme switch after cleanup finds nothing to repaint and throws nothing.
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.evaluate("document.body.dataset.jpThemeLight = 'false'; document.body.dataset.jpThemeName = 'x'")
    page.wait_for_timeout(800)
    assert errors == []


# ---- layout ----------------------------------------------------------------------------------

@pytest.mark.parametrize("width", [600, 900, 1800])
def test_the_widget_fills_the_width_and_nothing_is_cut_off(mount, width):
    page = mount(css={"width": f"{width}px"})
    if width > 1184:
        page.set_viewport_size({"width": width + 40, "height": 900})
        page.wait_for_function("w => JSON.parse(document.querySelector('.attnwidget').dataset.layout).width === w",
                               arg=1400, timeout=5000)
    plan = layout(page)
    root = box(page, ".attnwidget")
    assert root["width"] == min(width, 1400), (root, plan)
    assert plan["width"] <= root["width"] and plan["width"] > root["width"] - 8, plan
    assert plan["wrap"] == (width < 700), plan
    grid, view = box(page, ".attnwidget-grid-box"), box(page, ".attnwidget-view-box")
    if plan["wrap"]:
        assert view["y"] >= grid["bottom"], (grid, view)  # the view wraps under the grid
    else:
        assert view["x"] >= grid["right"] and abs(view["y"] - grid["y"]) < 1, (grid, view)
    sizes = set()
    for name in VIEWS:
        page.locator(f".attnwidget-tab[data-view={name}]").click()
        page.wait_for_function("n => window.__model.get('view') === n && document.querySelector("
                               "`.attnwidget-view-box .attnwidget-view`)?.dataset.view", arg=name)
        shown = box(page, ".attnwidget-view-box")
        sizes.add((shown["x"], shown["y"], shown["width"]))
        canvas = box(page, ".attnwidget-view-box .attnwidget-view")
        assert canvas["right"] <= shown["right"] + 0.5, (name, canvas, shown)
        for o in overflow(page):
            assert o["scrollWidth"] == o["clientWidth"] and o["right"] <= o["rootRight"] + 0.5, (name, width, o)
    assert len(sizes) == 1, sizes  # one view box for every tab: nothing jumps


def test_a_resize_lays_the_widget_out_again(mount):
    page = mount()
    wide = layout(page)
    assert not wide["wrap"] and wide["viewWidth"] >= 700, wide
    page.evaluate("document.body.style.width = '600px'")
    page.wait_for_function("JSON.parse(document.querySelector('.attnwidget').dataset.layout).width === 600",
                           timeout=5000)
    assert layout(page)["wrap"]
    for o in overflow(page):
        assert o["scrollWidth"] == o["clientWidth"], o
    heatmap = geometry(page, "heatmap")
    assert heatmap["width"] <= 600 - 100, heatmap  # room left for the labels and the colour bar
    page.evaluate("document.body.style.width = ''")
    page.wait_for_function("!JSON.parse(document.querySelector('.attnwidget').dataset.layout).wrap", timeout=5000)


# ---- keyboard --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def causal():
    return make_capture([f"▁{w}" for w in WORDS], causal=True, layers=3, heads=4, seed=11)


@pytest.fixture
def widget(causal):
    w = AttentionWidget(causal, layer=1, head=1, background=False)
    yield w
    w.close()


def tab_to(page, selector: str, limit: int = 30) -> None:
    """Press Tab until `selector` has focus (the way a keyboard user gets there)."""
    for _ in range(limit):
        if page.evaluate("sel => document.activeElement === document.querySelector(sel)", selector):
            return
        page.keyboard.press("Tab")
    pytest.fail(f"Tab never reached {selector}")


def count_document_keys(page) -> None:
    """Count keydowns that reach the document (JupyterLab listens there, in the bubbling phase)."""
    page.evaluate("window.__documentKeys = 0; document.addEventListener('keydown', () => { window.__documentKeys += 1; })")


def test_arrow_keys_move_the_grid_selection_and_python_follows(mount_kernel, widget):
    page = mount_kernel(widget)
    grid = ".attnwidget-grid-base"
    assert page.get_attribute(grid, "tabindex") == "0"
    assert "arrow keys" in page.get_attribute(grid, "aria-label").lower()
    tab_to(page, grid)
    count_document_keys(page)
    assert page.evaluate("sel => getComputedStyle(document.querySelector(sel)).outlineStyle", grid) == "solid"
    page.keyboard.press("ArrowRight")
    settle(page)
    assert (widget.layer, widget.head) == (1, 2)
    page.keyboard.press("ArrowDown")
    settle(page)
    assert (widget.layer, widget.head) == (2, 2)
    page.keyboard.press("End")  # the mean column
    settle(page)
    assert (widget.layer, widget.head) == (2, None)
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("PageUp")
    settle(page)
    assert (widget.layer, widget.head) == (0, 3)
    # The page drew it (the kernel's heatmap follows), focus stayed, nothing reached the document.
    assert page.evaluate("window.__model.get('layer')") == 0 and page.evaluate("window.__model.get('head')") == 3
    assert page.evaluate("sel => document.activeElement === document.querySelector(sel)", grid)
    assert page.evaluate("window.__documentKeys") == 0
    assert "layer 0, head 3" in page.locator(".attnwidget-live").text_content()


def test_heatmap_cells_from_the_keyboard(mount_kernel, widget):
    page = mount_kernel(widget)
    heatmap = ".attnwidget-heatmap-base"
    tab_to(page, heatmap)
    assert page.get_attribute(heatmap, "aria-label").startswith("Attention heatmap")
    page.keyboard.press("ArrowDown")  # the cursor appears at the first cell
    settle(page)
    assert widget.hovered_token == 0
    for _ in range(3):
        page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowLeft")
    settle(page)
    assert widget.hovered_token == 3
    tooltip = page.locator(".attnwidget-heatmap .attnwidget-tooltip").text_content()
    assert f"query 3: ▁{WORDS[3]}" in tooltip and "key 0" in tooltip, tooltip
    page.keyboard.press("Enter")
    settle(page)
    assert widget.selected_tokens == [3]
    page.keyboard.press("Escape")  # the cursor goes; the hovered token with it
    settle(page)
    assert widget.hovered_token is None and widget.selected_tokens == [3]
    page.keyboard.press("Escape")  # no cursor: the selection is cleared
    settle(page)
    assert widget.selected_tokens == []
    assert page.evaluate("sel => document.activeElement === document.querySelector(sel)", heatmap)


def test_arrow_right_on_the_slider_changes_the_threshold_and_keeps_focus(mount_kernel, causal):
    w = AttentionWidget(causal, view="graph", threshold=0.1, background=False)
    try:
        page = mount_kernel(w)
        slider = ".attnwidget-threshold input[type=range]"
        assert page.get_attribute(slider, "aria-label").startswith("edge threshold")
        tab_to(page, slider)
        count_document_keys(page)
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
        settle(page)
        assert w.threshold == pytest.approx(0.12)
        assert page.evaluate("sel => document.activeElement === document.querySelector(sel)", slider)
        assert page.evaluate("window.__documentKeys") == 0  # JupyterLab's shortcuts never see it
        assert page.locator(".attnwidget-threshold span").text_content() == "threshold 0.12"
    finally:
        w.close()


def test_controls_and_canvases_are_named(mount):
    page = mount()
    names = page.evaluate("""() => [...document.querySelectorAll('.attnwidget button, .attnwidget select, '
        + '.attnwidget input, .attnwidget canvas[tabindex]')].filter(e => e.getClientRects().length)
        .map(e => [e.tagName, e.getAttribute('aria-label') || e.textContent.trim()])""")
    assert names and all(name for _, name in names), names
    assert page.get_attribute(".attnwidget-toolbar", "aria-label")
