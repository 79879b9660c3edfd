"""Theme, layout and keyboard in a real JupyterLab (offline headless Chromium), on an explorer over a
small attention array (no model download: about 30 s, most of it JupyterLab and the kernel starting).

* The text reads (>= 4.5:1) in JupyterLab Light, then in JupyterLab Dark switched live through the
  command palette's command (``apputils:change-theme``), without re-running the cell, and back.
* Keys in the widget stay there: ArrowRight on the threshold slider changes the threshold in the
  kernel and focus stays on the slider; the arrows move the grid's selection and the kernel follows.
* The bqplot panels sit where the quickstart says: right of the widget when the output area is wide,
  under it when it is narrow; at a 600 px output area nothing in the widget is cut off.
"""

from __future__ import annotations

import json

import jupyter_run  # tools/jupyter_run.py (conftest puts tools/ on the path)
import pytest

from page_checks import assert_readable, overflow
from test_jupyter import Notebook

pytestmark = pytest.mark.browser

KERNEL = jupyter_run.KERNEL
CELLS = [
    "import numpy as np\n"
    "import attnwidget\n"
    "rng = np.random.default_rng(0)\n"
    'words = "The cat sat on the mat because it was tired .".split()\n'
    "n, L, H = len(words), 6, 8\n"
    "logits = rng.normal(size=(L, H, n, n)) * 2\n"
    "logits[..., np.triu(np.ones((n, n), bool), 1)] = -np.inf\n"
    "attn = np.exp(logits - logits.max(-1, keepdims=True))\n"
    "attn /= attn.sum(-1, keepdims=True)\n"
    'ex = attnwidget.show(attn, tokens=[" " + w for w in words])\n'
    "ex",
    # Echo what the kernel receives into the status line the page displays.
    "def _echo(change=None):\n"
    "    w = ex.widget\n"
    '    w.status = f"echo layer={w.layer} head={w.head} threshold={w.threshold:.2f}"\n'
    'ex.widget.observe(_echo, names=["layer", "head", "threshold"])\n'
    "_echo()",
]


@pytest.fixture
def lab(tmp_path, notebook_server):
    with notebook_server("lab", tmp_path, "theme.ipynb", CELLS) as info:
        yield info


def focused(page, selector: str) -> bool:
    return page.evaluate("sel => document.activeElement === document.querySelector(sel)", selector)


def panels_side(page) -> str:
    """Where the bqplot panels are relative to the widget: "right" or "below"."""
    where = page.evaluate("""() => {
        const widget = document.querySelector('.attnwidget').getBoundingClientRect();
        const panel = document.querySelector('.bqplot.figure').getBoundingClientRect();
        return {widgetRight: widget.right, widgetBottom: widget.bottom, widgetTop: widget.top,
                panelLeft: panel.left, panelTop: panel.top};
    }""")
    if where["panelLeft"] >= where["widgetRight"] - 1 and where["panelTop"] < where["widgetBottom"]:
        return "right"
    if where["panelTop"] >= where["widgetBottom"] - 1:
        return "below"
    return f"overlapping: {where}"


def output_width(page) -> float:
    return page.evaluate("() => document.querySelector('.jp-OutputArea-output .attnwidget')"
                         ".closest('.jp-OutputArea-output').getBoundingClientRect().width")


def shot(page, folder, name: str) -> None:
    """The explorer's output area, for a look after a failure (in the test's tmp folder)."""
    output = page.locator(".jp-OutputArea-output", has=page.locator(".attnwidget")).first
    output.scroll_into_view_if_needed()
    output.screenshot(path=str(folder / f"explorer-{name}.png"), animations="disabled")


def test_theme_keys_and_layout_in_jupyterlab(bundle, lab, jupyter_browser):
    page = jupyter_browser.new_page()
    nb = Notebook(page, lab["tmp"], "lab")
    try:
        page.goto(lab["url"], timeout=30000)
        nb.wait(f"{KERNEL}?.status === 'idle' && document.querySelectorAll('.jp-CodeCell').length === {len(CELLS)}",
                "the notebook to open with an idle kernel", 60)
        nb.command("notebook:run-all-cells")
        nb.wait("document.querySelector('.attnwidget-heatmap-base') && document.querySelector('.bqplot svg rect')",
                "the widget and the bqplot figures", 60)
        nb.wait_echo("echo layer=")
        nb.wait_idle("after run-all")
        assert page.evaluate("document.body.dataset.jpThemeLight") == "true"

        # ---- light, then JupyterLab Dark switched live, then light again ----------------------
        assert page.evaluate("document.querySelector('.attnwidget').dataset.dark") == "false"
        assert_readable(page, "JupyterLab Light")
        nb.command("apputils:change-theme", {"theme": "JupyterLab Dark"})
        nb.wait("document.body.dataset.jpThemeName === 'JupyterLab Dark' && "
                "document.querySelector('.attnwidget').dataset.dark === 'true'", "the widget to turn dark", 20)
        page.wait_for_timeout(700)  # JupyterLab hides and shows the shell around a switch
        background = page.evaluate("getComputedStyle(document.querySelector('.jp-Notebook')).backgroundColor")
        assert background in ("rgb(17, 17, 17)", "rgba(0, 0, 0, 0)") or background.startswith("rgb(1"), background
        assert_readable(page, "JupyterLab Dark")
        shot(page, lab["tmp"], "dark")
        nb.command("apputils:change-theme", {"theme": "JupyterLab Light"})
        nb.wait("document.querySelector('.attnwidget').dataset.dark === 'false'", "the widget to turn light", 20)
        page.wait_for_timeout(700)
        assert_readable(page, "JupyterLab Light again")

        # ---- keys stay in the widget ------------------------------------------------------------
        page.locator(".attnwidget-tab[data-view=graph]").click()
        slider = ".attnwidget-threshold input[type=range]"
        nb.wait(f"document.querySelector('{slider}')?.offsetParent !== null", "the threshold slider", 10)
        page.locator(slider).click()  # as a user does: the click sets a value, then the arrows adjust it
        start = float(page.locator(slider).input_value())
        nb.wait_echo(f"threshold={start:.2f}")
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
        nb.wait_echo(f"threshold={start + 0.02:.2f}")
        assert focused(page, slider), page.evaluate("document.activeElement.outerHTML.slice(0, 200)")
        page.keyboard.press("ArrowLeft")
        nb.wait_echo(f"threshold={start + 0.01:.2f}")
        assert focused(page, slider)

        grid = ".attnwidget-grid-base"
        page.locator(grid).focus()
        text = page.locator(".attnwidget-status").text_content()
        layer = int(text.split("layer=")[1].split()[0])
        page.keyboard.press("End")  # the mean column
        page.keyboard.press("Home")  # head 0
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowDown")
        nb.wait_echo(f"layer={min(layer + 1, 5)} head=1")
        assert focused(page, grid)

        # ---- where the panels are, and nothing cut off at 600 px -------------------------------
        page.evaluate("window.jupyterapp.shell.collapseLeft?.()")
        page.wait_for_timeout(500)
        assert output_width(page) > 1100
        shot(page, lab["tmp"], "wide")
        assert panels_side(page) == "right", "the quickstart says the panels are on the right"
        page.evaluate("window.jupyterapp.shell.expandLeft?.()")
        page.wait_for_timeout(800)
        wide_open = output_width(page)
        side = panels_side(page)
        assert side == ("right" if wide_open >= 1000 else "below"), (wide_open, side)
        # A window narrow enough for a 600 px output area: the view wraps under the grid, the panels
        # go under the widget, and nothing sticks out of the widget.
        page.evaluate("window.jupyterapp.shell.collapseLeft?.()")
        for _ in range(3):
            extra = output_width(page) - 600
            size = page.viewport_size
            page.set_viewport_size({"width": int(size["width"] - extra), "height": size["height"]})
            page.wait_for_timeout(600)
        assert abs(output_width(page) - 600) < 4, output_width(page)
        nb.wait("JSON.parse(document.querySelector('.attnwidget').dataset.layout).width <= 600",
                "the widget to lay itself out for 600 px", 10)
        shot(page, lab["tmp"], "narrow")
        assert panels_side(page) == "below"
        assert json.loads(page.evaluate("document.querySelector('.attnwidget').dataset.layout"))["wrap"]
        for o in overflow(page):
            assert o["scrollWidth"] == o["clientWidth"] and o["right"] <= o["rootRight"] + 0.5, o
        output_scroll = page.evaluate("""() => { const o = document.querySelector('.attnwidget')
            .closest('.jp-OutputArea-output'); return [o.scrollWidth, o.clientWidth]; }""")
        assert output_scroll[0] <= output_scroll[1], output_scroll
        assert page.evaluate("window.__errors ?? []") == [] and nb.errors == []
    except AssertionError as error:
        nb.fail(f"assertion failed: {error}")
    finally:
        page.close()
