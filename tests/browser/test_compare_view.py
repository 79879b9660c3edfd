"""The comparison view (attnwidget.compare) in the page, with the real ComparisonWidget behind it
(kernel_bridge.py): the panels render on one colour scale, a layer picked in one panel's grid changes
every panel and the kernel's trait, the difference panel appears for two panels with as many tokens,
hover and click flow both ways, and the keyboard drives it.

The harness page (harness.html / harness.js) imports "/widget.js"; this module's server answers that
path with the comparison bundle (attnwidget/static/compare.js), so the same fake model hosts it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the hand-built captures
from widget_captures import make_capture  # noqa: E402

from attnwidget.compare import ComparisonWidget  # noqa: E402
from harness_server import bridged_pages, built, serve_harness  # noqa: E402
from page_checks import settle  # noqa: E402

pytestmark = pytest.mark.browser

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
COMPARE_BUNDLE = ROOT / "attnwidget" / "static" / "compare.js"
DARK = {"--jp-layout-color0": "#111111", "--jp-ui-font-color1": "rgba(255,255,255,0.87)",
        "--jp-ui-font-color2": "rgba(255,255,255,0.54)", "--jp-border-color1": "#616161"}

A = ["▁The", "▁cat", "▁sat", "▁on", "▁the", "▁mat", "."]
B = ["▁The", "▁dog", "▁sat", "▁on", "▁the", "▁log", "."]
C = ["▁A", "▁bird", "▁sang", "."]


# ---- a server whose /widget.js is the comparison bundle ---------------------------------------------

@pytest.fixture(scope="module")
def compare_server():
    with serve_harness(built(COMPARE_BUNDLE)) as url:
        yield url


@pytest.fixture(scope="module")
def compare_context(compare_server, chromium_launcher):
    """One offline Chromium for the module (Playwright's sync API allows one at a time): this machine's
    servers only (the harness server, and JupyterLab for the last test), data: and blob:."""
    def allowed(url: str) -> bool:
        return url.startswith(("http://127.0.0.1:", "ws://127.0.0.1:", "data:", "blob:"))

    with chromium_launcher(allowed) as context:
        yield context


@pytest.fixture
def mount_compare(compare_context, compare_server):
    """mount_compare(widget, css=None, width=None) -> a page showing the widget, wired to it."""
    with bridged_pages(compare_context, compare_server,
                       painted="document.querySelector('.attnwidget-compare')?.dataset.paintedAt") as mount:
        yield mount


# ---- helpers ------------------------------------------------------------------------------------------


def push(page) -> None:
    """What Python changed reaches the page, as a kernel update would."""
    page.evaluate("changes => window.__model.kernelUpdate(changes)", page.bridge.changes()["state"])


def panel(name: str) -> str:
    return f'.attnwidget-compare-panel[data-panel="{name}"]'


def titles(page) -> dict:
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('.attnwidget-view[data-panel]')]
        .map((box) => [box.dataset.panel, box.dataset.title]))""")


def painted(page, selector: str) -> dict:
    return page.evaluate("s => window.paintedPixels(s)", selector)


def click_grid_cell(page, name: str, layer: int, head: int | None) -> None:
    box = page.locator(f"{panel(name)} .attnwidget-grid")
    g = page.evaluate("b => JSON.parse(b.dataset.geometry)", box.element_handle())
    col = g["heads"] if head is None else head
    page.locator(f"{panel(name)} .attnwidget-grid-base").click(
        position={"x": g["columns"][col] + g["cell"] / 2, "y": g["rows"][layer] + g["cell"] / 2})


def cell_point(page, name: str, row: int, col: int) -> dict:
    box = page.locator(f'.attnwidget-view[data-panel="{name}"]')
    g = page.evaluate("b => JSON.parse(b.dataset.geometry)", box.element_handle())
    return {"x": g["left"] + (col + 0.5) * g["cellW"], "y": g["top"] + (row + 0.5) * g["cellH"]}


@pytest.fixture(scope="module")
def captures():
    return {"cat": make_capture(A, causal=True, layers=3, heads=4, seed=1),
            "dog": make_capture(B, causal=True, layers=3, heads=4, seed=2),
            "bird": make_capture(C, causal=True, layers=3, heads=4, seed=3)}


@pytest.fixture
def widget(captures):
    w = ComparisonWidget(captures)
    yield w
    w.close()


# ---- tests --------------------------------------------------------------------------------------------

def test_the_panels_render_on_one_scale(mount_compare, widget):
    page = mount_compare(widget)
    for name in ("cat", "dog", "bird"):
        assert page.locator(panel(name)).count() == 1
        assert painted(page, f'.attnwidget-view[data-panel="{name}"] canvas')["colors"] > 8
        assert painted(page, f"{panel(name)} .attnwidget-grid-base")["colors"] > 8
    # one colour bar, whose top is the kernel's shared max
    bar = page.locator(".attnwidget-compare-colorbar")
    assert bar.count() == 1
    assert float(bar.get_attribute("data-max")) == pytest.approx(widget.shared_max, rel=1e-6)
    assert "one scale for every panel" in bar.get_attribute("data-title")
    assert titles(page) == {"cat": "layer 1, mean of heads", "dog": "layer 1, mean of heads",
                            "bird": "layer 1, mean of heads", "difference": "dog − cat: layer 1, mean of heads"}
    # token text is text: a token holding markup is drawn, never parsed
    assert page.locator(".attnwidget-compare script, .attnwidget-compare img").count() == 0


def test_a_layer_picked_in_one_panel_changes_every_panel_and_the_trait(mount_compare, widget):
    page = mount_compare(widget)
    click_grid_cell(page, "dog", 2, 3)
    settle(page)
    assert (widget.layer, widget.head) == (2, 3)
    page.wait_for_function("document.querySelector('.attnwidget-compare').dataset.layer === '2'")
    assert set(titles(page).values()) == {"layer 2, head 3", "dog − cat: layer 2, head 3"}
    assert page.locator('select[data-control="layer"]').input_value() == "2"
    # from Python back to the page
    widget.layer, widget.head = 0, None
    push(page)
    assert set(titles(page).values()) == {"layer 0, mean of heads", "dog − cat: layer 0, mean of heads"}
    assert page.locator('select[data-control="head"]').input_value() == "mean"
    # the toolbar's select, from the keyboard
    page.locator('select[data-control="layer"]').focus()
    page.keyboard.press("ArrowDown")
    settle(page)
    push(page)
    assert widget.layer == 1
    # a panel's grid from the keyboard: the arrows move the shared layer and head
    page.locator(f"{panel('bird')} .attnwidget-grid-base").focus()
    page.keyboard.press("ArrowUp")
    settle(page)
    page.keyboard.press("Home")
    settle(page)
    push(page)
    assert (widget.layer, widget.head) == (0, 0)
    assert set(titles(page).values()) == {"layer 0, head 0", "dog − cat: layer 0, head 0"}


def test_the_difference_panel_appears_for_equal_lengths(mount_compare, widget, captures):
    page = mount_compare(widget)
    assert widget.difference == ["cat", "dog"]
    box = page.locator(".attnwidget-compare-difference-panel")
    assert box.count() == 1
    assert painted(page, '.attnwidget-view[data-panel="difference"] canvas')["colors"] > 8
    assert page.locator(".attnwidget-compare-difference-colorbar").count() == 1
    # the cell the page shows is b - a, on the diverging map: red where dog attends more, blue where less
    diff = widget.difference_matrix()
    expected = captures["dog"].pattern(1) - captures["cat"].pattern(1)
    np.testing.assert_allclose(diff, expected, atol=1e-6)
    q, k = np.unravel_index(np.argmax(diff), diff.shape)
    q2, k2 = np.unravel_index(np.argmin(diff), diff.shape)
    rgb = page.evaluate("""([p, r]) => {
        const c = document.querySelector('.attnwidget-view[data-panel="difference"] .attnwidget-compare-difference-base');
        const d = devicePixelRatio;
        const px = (q) => Array.from(c.getContext('2d').getImageData(Math.round(q.x * d), Math.round(q.y * d), 1, 1).data);
        return [px(p), px(r)];
    }""", [cell_point(page, "difference", int(q), int(k)), cell_point(page, "difference", int(q2), int(k2))])
    (r1, g1, b1, _), (r2, g2, b2, _) = rgb
    assert r1 > b1 and b2 > r2, rgb
    # the bird has fewer tokens: it cannot be subtracted; choosing "(none)" removes the panel
    disabled = page.evaluate("""() => [...document.querySelector('select[data-control="difference-a"]').options]
        .filter((o) => o.disabled).map((o) => o.value)""")
    assert disabled == ["bird"]
    page.locator('select[data-control="difference-a"]').select_option("")
    settle(page)
    push(page)
    assert widget.difference is None
    assert page.locator(".attnwidget-compare-difference-panel").count() == 0
    page.locator('select[data-control="difference-a"]').select_option("dog")
    settle(page)
    push(page)
    assert widget.difference == ["dog", "cat"]
    assert page.locator(".attnwidget-compare-difference-panel").count() == 1
    assert "cat − dog" in page.locator(".attnwidget-compare-difference-panel").get_attribute("aria-label")


def test_a_difference_panel_is_absent_without_equal_lengths(mount_compare, captures):
    w = ComparisonWidget({"cat": captures["cat"], "bird": captures["bird"]})
    try:
        page = mount_compare(w)
        assert w.difference is None and w.pairs == []
        assert page.locator(".attnwidget-compare-difference-panel").count() == 0
        assert "needs two panels" in page.locator(".attnwidget-compare-difference-note").text_content()
    finally:
        w.close()


def test_hover_and_click_flow_both_ways(mount_compare, widget):
    page = mount_compare(widget)
    heat = page.locator('.attnwidget-view[data-panel="bird"] canvas').first
    heat.hover(position=cell_point(page, "bird", 2, 1))
    settle(page)
    assert (widget.hovered_panel, widget.hovered_token) == ("bird", 2)
    assert "bird · query 2 “▁sang”" in page.locator(".attnwidget-compare-readout").text_content()
    heat.click(position=cell_point(page, "bird", 2, 1))
    settle(page)
    assert (widget.selected_panel, widget.selected_token) == ("bird", 2)
    # Python hovers a row of another panel: the page's read-out follows
    widget.hover("cat", 5)
    push(page)
    assert "cat · query 5 “▁mat”" in page.locator(".attnwidget-compare-readout").text_content()


def test_the_heatmap_keyboard(mount_compare, widget):
    page = mount_compare(widget)
    page.locator('.attnwidget-view[data-panel="cat"] canvas').first.focus()
    page.keyboard.press("ArrowDown")
    settle(page)
    assert (widget.hovered_panel, widget.hovered_token) == ("cat", 0)
    page.keyboard.press("End")
    settle(page)
    assert widget.hovered_token == 6
    page.keyboard.press("Enter")
    settle(page)
    assert (widget.selected_panel, widget.selected_token) == ("cat", 6)
    page.keyboard.press("Escape")
    settle(page)
    assert widget.hovered_panel is None and widget.hovered_token is None
    # the keys never reached the document (JupyterLab's shortcuts listen there)
    leaked = page.evaluate("""() => { let n = 0; document.addEventListener('keydown', () => n++);
        document.querySelector('.attnwidget-view[data-panel="cat"] canvas').dispatchEvent(
            new KeyboardEvent('keydown', {key: 'ArrowDown', bubbles: true}));
        return n; }""")
    assert leaked == 0


def test_a_refused_value_from_the_page_is_reported(mount_compare, widget):
    page = mount_compare(widget)
    page.evaluate("() => { window.__model.set('layer', 99); window.__model.save_changes(); }")
    settle(page)
    push(page)
    assert widget.layer == 1
    assert "layer 99 is out of range" in page.locator(".attnwidget-compare-status").text_content()


@pytest.mark.parametrize("dark", [False, True])
def test_text_is_readable_in_either_theme(mount_compare, widget, dark):
    page = mount_compare(widget, css=DARK if dark else None)
    if dark:
        page.evaluate("() => { document.body.style.background = '#111111'; }")
    contrast = page.evaluate("""() => {
        const lum = (c) => { const [r, g, b] = c.match(/[\\d.]+/g).map(Number).slice(0, 3).map((v) => {
            const s = v / 255; return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4; });
            return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
        const bg = lum(getComputedStyle(document.body).backgroundColor);
        const out = {};
        for (const sel of ['.attnwidget-compare-panel-title', '.attnwidget-compare-status',
                           '.attnwidget-compare-layer-label']) {
            const fg = getComputedStyle(document.querySelector(sel)).color;
            const parts = fg.match(/[\\d.]+/g).map(Number);
            const alpha = parts.length > 3 ? parts[3] : 1;
            // blend a translucent text colour over the page background
            const bgRGB = getComputedStyle(document.body).backgroundColor.match(/[\\d.]+/g).map(Number);
            const mixed = `rgb(${parts.slice(0, 3).map((v, i) => v * alpha + bgRGB[i] * (1 - alpha)).join(',')})`;
            const l = lum(mixed);
            out[sel] = (Math.max(l, bg) + 0.05) / (Math.min(l, bg) + 0.05);
        }
        return out;
    }""")
    assert all(v >= 4.5 for v in contrast.values()), contrast
    assert page.locator(".attnwidget-compare").get_attribute("data-theme") == ("dark" if dark else "light")


def test_a_live_theme_switch_redraws(mount_compare, widget):
    page = mount_compare(widget)
    assert page.locator(".attnwidget-compare").get_attribute("data-theme") == "light"
    page.evaluate("""css => { for (const [name, value] of Object.entries(css)) document.body.style.setProperty(name, value);
        document.body.dataset.jpThemeLight = 'false'; document.body.dataset.jpThemeName = 'JupyterLab Dark'; }""", DARK)
    page.wait_for_function("document.querySelector('.attnwidget-compare').dataset.theme === 'dark'")
    assert painted(page, '.attnwidget-view[data-panel="cat"] canvas')["colors"] > 8


def test_nothing_is_cut_off_at_600_px(mount_compare, widget):
    page = mount_compare(widget, width=600)
    widths = page.evaluate("""() => { const r = document.querySelector('.attnwidget-compare');
        return [r.scrollWidth, r.clientWidth, document.documentElement.scrollWidth, document.documentElement.clientWidth]; }""")
    assert widths[0] <= widths[1] and widths[2] <= widths[3], widths


# ---- in a real JupyterLab -----------------------------------------------------------------------------

JUPYTER_CELLS = [
    "import attnwidget\n"
    'model, tok = attnwidget.load_model("smollm2")\n'
    'comparison = attnwidget.compare_templates(model, tok, {"close": "When does the museum close?",\n'
    '                                                       "open": "When does the museum open?"})\n'
    "comparison",
    "w = comparison.widget\n"
    "def _echo(change=None):\n"
    '    w.status = f"echo layer={w.layer} head={w.head} hovered={w.hovered_panel}:{w.hovered_token}"\n'
    'w.observe(_echo, names=["layer", "head", "hovered_panel", "hovered_token"])\n'
    "_echo()",
]


@pytest.mark.slow
def test_the_view_in_jupyterlab(compare_context, tmp_path, notebook_server):
    """compare_templates' result, last in a cell, displays the view in JupyterLab (anywidget loads
    compare.js); a grid click and a hover reach the kernel; a live switch to JupyterLab Dark redraws it."""
    import json

    import jupyter_run

    kernel = jupyter_run.KERNEL
    with notebook_server("lab", tmp_path, "compare.ipynb", JUPYTER_CELLS) as info:
        context = compare_context
        page = context.new_page()
        try:
            page.set_viewport_size({"width": 1500, "height": 1000})
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(info["url"], timeout=30000)

            def echo(text: str, timeout: float = 30):
                page.wait_for_function(
                    "t => [...document.querySelectorAll('.attnwidget-compare-status')].some(e => e.textContent.includes(t))",
                    arg=text, timeout=timeout * 1000)

            page.wait_for_function(f"{kernel}?.status === 'idle' && document.querySelectorAll('.jp-CodeCell').length === 2",
                                   timeout=60000)
            page.evaluate("window.jupyterapp.shell.collapseLeft?.()")
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.wait_for_function("document.querySelectorAll('.attnwidget-compare-panel .attnwidget-grid-base').length === 2",
                                   timeout=120000)
            echo("echo layer=15 head=None hovered=None:None", 120)
            # a grid cell of the second panel: every panel and the kernel follow
            grid = page.locator(f"{panel('open')} .attnwidget-grid")
            grid.scroll_into_view_if_needed()
            g = json.loads(grid.get_attribute("data-geometry"))
            page.locator(f"{panel('open')} .attnwidget-grid-base").click(
                position={"x": g["columns"][4] + g["cell"] / 2, "y": g["rows"][3] + g["cell"] / 2})
            echo("echo layer=3 head=4")
            page.wait_for_function("""() => [...document.querySelectorAll('.attnwidget-view[data-panel]')]
                .every((b) => b.dataset.title.endsWith('layer 3, head 4'))""", timeout=30000)
            # a hover on the first panel's heatmap
            heat = page.locator('.attnwidget-view[data-panel="close"]')
            heat.scroll_into_view_if_needed()
            h = json.loads(heat.get_attribute("data-geometry"))
            page.locator('.attnwidget-view[data-panel="close"] canvas').first.hover(
                position={"x": h["left"] + 0.5 * h["cellW"], "y": h["top"] + 2.5 * h["cellH"]})
            echo("hovered=close:2")
            # JupyterLab Dark, switched live: the view redraws in the dark theme
            page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
            page.wait_for_function("document.querySelector('.attnwidget-compare').dataset.theme === 'dark'", timeout=30000)
            page.screenshot(path=str(tmp_path / "compare-lab-dark.png"))
            assert errors == [], errors
            assert context.blocked_requests == [], context.blocked_requests
        finally:
            page.close()
