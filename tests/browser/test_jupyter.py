"""Round trip in a real JupyterLab and Notebook 7, offline in headless Chromium, with SmolLM2.

A notebook shows ``attnwidget.show(model, tok, text)`` and installs a Python observer that echoes
``hovered_token``, ``layer`` and ``head`` into ``ex.widget.status`` (displayed by the page), so the
page showing ``echo ...`` proves that the kernel received what the browser set. Recipe:
/work/shared/BROWSER.md (flags, isolated Jupyter dirs, news pop-up off, kernel idle, shutdown).

Set ``ATTNWIDGET_UPDATE_SCREENSHOT=1`` to rewrite docs/images/explorer.png and explorer-dark.png; otherwise the screenshot
goes to the test's tmp dir.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jupyter_run  # tools/jupyter_run.py (conftest puts tools/ on the path)
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEXT = "The cat sat on the mat because it was tired."
SCREENSHOT = ROOT / "docs" / "images" / "explorer.png"
SCREENSHOT_DARK = ROOT / "docs" / "images" / "explorer-dark.png"
CELLS = [
    # (a) the explorer
    "import attnwidget\n"
    'model, tok = attnwidget.load_model("smollm2")\n'
    f"ex = attnwidget.show(model, tok, {TEXT!r})\n"
    "ex",
    # (b) echo what the kernel receives into the status line the page displays
    "def _echo(change=None):\n"
    "    w = ex.widget\n"
    '    w.status = f"echo hovered={w.hovered_token} layer={w.layer} head={w.head}"\n'
    "\n"
    'ex.widget.observe(_echo, names=["hovered_token", "layer", "head"])\n'
    "_echo()\n"
    "print(len(ex.widget.tokens), ex.widget.num_layers, ex.widget.num_heads)",
]
KERNEL = jupyter_run.KERNEL
ECHO = ".attnwidget-status"


# ---- Jupyter server --------------------------------------------------------------------------

@pytest.fixture(params=list(jupyter_run.APPS))
def jupyter(request, tmp_path, notebook_server):
    """A JupyterLab or Notebook 7 server on 127.0.0.1 with isolated state; yields its details."""
    with notebook_server(request.param, tmp_path, "explorer.ipynb", CELLS) as info:
        yield info


# ---- page helpers ----------------------------------------------------------------------------

class Notebook:
    """A notebook page plus helpers that fail with a screenshot and the page's visible text."""

    def __init__(self, page, tmp: Path, app: str):
        self.page, self.tmp, self.app = page, tmp, app
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def fail(self, message: str):
        shot = self.tmp / f"failure-{self.app}.png"
        try:
            self.page.screenshot(path=str(shot), full_page=True)
            text = self.page.inner_text("body", timeout=2000)
        except Exception as error:  # noqa: BLE001
            text = f"(no page text: {error})"
        pytest.fail(f"[{self.app}] {message}\nscreenshot: {shot}\npage errors: {self.errors[-5:]}\n"
                    f"visible text:\n{text[-4000:]}", pytrace=False)

    def wait(self, expression: str, what: str, timeout: float = 30, arg=None):
        try:
            self.page.wait_for_function(expression, arg=arg, timeout=timeout * 1000, polling=100)
            return
        except Exception as error:  # noqa: BLE001 (Playwright's TimeoutError, a closed page, ...)
            reason = type(error).__name__
        self.fail(f"timed out after {timeout:g} s waiting for {what} ({reason})")

    def wait_idle(self, what: str, timeout: float = 60):
        self.wait(f"{KERNEL}?.status === 'idle'", f"an idle kernel ({what})", timeout)

    def wait_echo(self, text: str, timeout: float = 15):
        self.wait("text => [...document.querySelectorAll('.attnwidget-status')].some(e => e.textContent.includes(text))",
                  f"the status line to show {text!r}", timeout, arg=text)

    def command(self, name: str, args: dict | None = None):
        self.page.evaluate("([name, args]) => window.jupyterapp.commands.execute(name, args)", [name, args or {}])

    def geometry(self, view: str) -> dict:
        """The view's published geometry and its canvas' viewport offset (after scrolling it into view)."""
        info = self.page.evaluate("""name => {
            const box = document.querySelector(`.attnwidget-${name}`);
            box.scrollIntoView({block: "center", inline: "nearest"});
            const rect = box.querySelector("canvas").getBoundingClientRect();
            return {geometry: box.dataset.geometry, x: rect.x, y: rect.y};
        }""", view)
        return {**json.loads(info["geometry"]), "x": info["x"], "y": info["y"]}

    def add_cell(self, source: str):
        """Append a code cell at the end through the notebook UI's commands and run it."""
        self.page.evaluate("""async source => {
            const app = window.jupyterapp;
            const notebook = app.shell.currentWidget.content;
            notebook.activeCellIndex = notebook.widgets.length - 1;
            await app.commands.execute("notebook:insert-cell-below");
            notebook.activeCell.model.sharedModel.setSource(source);
            await app.commands.execute("notebook:run-cell");
        }""", source)


# ---- the test --------------------------------------------------------------------------------

def test_explorer_round_trip(bundle, jupyter, jupyter_browser):
    app, tmp = jupyter["app"], jupyter["tmp"]
    page = jupyter_browser.new_page()
    nb = Notebook(page, tmp, app)
    try:
        page.goto(jupyter["url"], timeout=30000)
        nb.wait(f"{KERNEL}?.status === 'idle' && document.querySelectorAll('.jp-CodeCell').length === {len(CELLS)}",
                "the notebook to open with an idle kernel", 60)
        page.evaluate("window.jupyterapp.shell.collapseLeft?.()")  # Lab's file browser: room for the explorer
        nb.command("notebook:run-all-cells")
        nb.wait("document.querySelector('.attnwidget-heatmap-base') && document.querySelector('.attnwidget-grid-base')"
                " && document.querySelector('.bqplot svg rect')", "the widget canvases and the bqplot figures", 60)
        nb.wait_echo("echo hovered=None layer=")
        nb.wait_idle("after run-all")
        sizes = page.evaluate("""() => [...document.querySelectorAll('.jp-OutputArea-output pre')]
            .map(e => e.textContent.trim()).filter(t => /^\\d+ \\d+ \\d+$/.test(t))""")
        if not sizes:
            nb.fail("cell (b) printed no 'tokens layers heads' line")
        n, layers, heads = (int(v) for v in sizes[-1].split())

        # Hover a heatmap cell: the kernel's echo names its query row.
        query = n // 2
        g = nb.geometry("heatmap")
        x = g["x"] + g["left"] + (1 - g["col0"] + 0.5) * g["cellW"]
        y = g["y"] + g["top"] + (query - g["row0"] + 0.5) * g["cellH"]
        page.mouse.move(x, y)
        nb.wait_echo(f"echo hovered={query} layer=")

        # Click a grid cell: layer and head reach the kernel.
        layer, head = 3, 2
        g = nb.geometry("grid")
        page.mouse.click(g["x"] + g["columns"][head] + g["cell"] / 2 + 0.5,
                         g["y"] + g["rows"][layer] + g["cell"] / 2 + 0.5)
        nb.wait_echo(f"layer={layer} head={head}")

        # Click a bqplot GridHeatMap cell for another layer/head.
        target = _bqplot_cell(nb, layers, heads, avoid=(layer, head))
        page.mouse.click(target["x"], target["y"])
        nb.wait_echo(f"layer={target['layer']} head={target['head']}")

        # Hover again so the screenshot shows the crosshair and the lines.
        g = nb.geometry("heatmap")
        page.mouse.move(g["x"] + g["left"] + (2 - g["col0"] + 0.5) * g["cellW"],
                        g["y"] + g["top"] + (query - g["row0"] + 0.5) * g["cellH"])
        nb.wait_echo(f"echo hovered={query} layer={target['layer']} head={target['head']}")
        nb.wait_idle("after the interactions")
        _screenshot(nb, tmp)

        if app == "lab":
            path = tmp / "export.png"
            nb.add_cell(f"ex.widget.save_png({str(path)!r})")
            nb.wait_echo(f"saved {path}")
            nb.wait_idle("after save_png")
            nb.add_cell(f"import pathlib\nprint('png head', pathlib.Path({str(path)!r}).read_bytes()[:8])")
            nb.wait("() => [...document.querySelectorAll('.jp-OutputArea-output')].some(e => "
                    "e.textContent.includes('png head'))", "the later cell's output", 30)
            assert path.read_bytes().startswith(PNG_SIGNATURE), path.read_bytes()[:16]
            printed = page.evaluate("() => [...document.querySelectorAll('.jp-OutputArea-output')]"
                                    ".map(e => e.textContent).filter(t => t.includes('png head')).join('')")
            assert repr(PNG_SIGNATURE) in printed, printed

        left = [url for url in nb.requests if not url.startswith(("http://127.0.0.1:", "data:", "blob:"))]
        assert left == [], f"requests left 127.0.0.1/data:/blob: {left}"
        assert jupyter_browser.blocked_requests == [], jupyter_browser.blocked_requests
    except AssertionError as error:
        nb.fail(f"assertion failed: {error}")
    finally:
        page.close()


def _bqplot_cell(nb: Notebook, layers: int, heads: int, avoid: tuple[int, int]) -> dict:
    """Centre of the GridHeatMap rect of a (layer, head) other than ``avoid``.

    bqplot draws one ``g.heatmaprow`` per entry of ``row`` (here ``arange(layers)``), in data order,
    each holding one ``rect.heatmapcell`` per entry of ``column`` (heads)."""
    layer, head = (avoid[0] + 7) % layers, (avoid[1] + 3) % heads
    found = nb.page.evaluate("""([layer, head]) => {
        const figure = [...document.querySelectorAll('.bqplot.figure')]
            .find(f => f.querySelector('rect.heatmapcell'));
        if (!figure) return {error: "no bqplot figure with heatmap cells"};
        const rows = figure.querySelectorAll('g.heatmaprow');
        const cells = rows[layer]?.querySelectorAll('rect.heatmapcell') ?? [];
        if (!cells[head]) return {error: `${rows.length} rows, ${cells.length} cells in row ${layer}`};
        cells[head].scrollIntoView({block: "center"});
        const b = cells[head].getBoundingClientRect();
        return {x: b.x + b.width / 2, y: b.y + b.height / 2, rows: rows.length, columns: cells.length};
    }""", [layer, head])
    if "error" in found or (found["rows"], found["columns"]) != (layers, heads):
        nb.fail(f"expected a {layers} x {heads} bqplot GridHeatMap: {found}")
    return {"layer": layer, "head": head, "x": found["x"], "y": found["y"]}


def _screenshot(nb: Notebook, tmp: Path) -> None:
    """The explorer's whole output area (widget + bqplot panels); in JupyterLab also in JupyterLab Dark,
    switched live (the README shows both)."""
    output = nb.page.locator(".jp-OutputArea-output", has=nb.page.locator(".attnwidget")).first
    output.scroll_into_view_if_needed()
    update = os.environ.get("ATTNWIDGET_UPDATE_SCREENSHOT") == "1" and nb.app == "lab"
    path = SCREENSHOT if update else tmp / f"explorer-{nb.app}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    output.screenshot(path=str(path), animations="disabled")
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    if nb.app != "lab":
        return
    nb.command("apputils:change-theme", {"theme": "JupyterLab Dark"})
    nb.wait("document.querySelector('.attnwidget')?.dataset.dark === 'true'", "the widget to turn dark", 20)
    nb.page.wait_for_timeout(700)  # JupyterLab hides and shows the shell around a switch
    dark = SCREENSHOT_DARK if update else tmp / "explorer-lab-dark.png"
    output.scroll_into_view_if_needed()
    output.screenshot(path=str(dark), animations="disabled")
    assert dark.read_bytes().startswith(PNG_SIGNATURE)
    nb.command("apputils:change-theme", {"theme": "JupyterLab Light"})
    nb.wait("document.querySelector('.attnwidget')?.dataset.dark === 'false'", "the widget to turn light", 20)
