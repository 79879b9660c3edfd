"""save_png / save_svg in real JupyterLab: ``await`` waits in the cell, a plain call writes its file once
the cell has finished, and a bad path raises in the cell and shows in the status line.

Its own module: the harness tests' module-scoped Chromium (one Playwright per thread) must be closed
before this module's offline Chromium for Jupyter starts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_jupyter import CELLS, KERNEL, Notebook, jupyter  # noqa: E402,F401 (a fixture)


# ---- a real kernel ---------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("jupyter", ["lab"], indirect=True)
def test_in_jupyterlab_await_waits_and_failures_raise(bundle, jupyter, jupyter_browser):
    """In JupyterLab: ``await widget.save_svg(...)`` waits in its cell for the page's answer; a plain
    ``save_png`` is written once its cell has finished; a bad path raises in the cell and the status
    line says so."""
    tmp = jupyter["tmp"]
    page = jupyter_browser.new_page()
    nb = Notebook(page, tmp, "lab")
    try:
        page.goto(jupyter["url"], timeout=30000)
        nb.wait(f"{KERNEL}?.status === 'idle' && document.querySelectorAll('.jp-CodeCell').length === {len(CELLS)}",
                "the notebook to open with an idle kernel", 60)
        nb.command("notebook:run-all-cells")
        nb.wait("!!document.querySelector('.attnwidget')?.dataset.paintedAt", "the widget painted", 60)
        nb.wait_idle("after run-all")
        svg, png, bad = tmp / "await.svg", tmp / "plain.png", tmp / "missing" / "x.png"
        nb.add_cell(f"saved = await ex.widget.save_svg({str(svg)!r})\n"
                    "import pathlib, xml.etree.ElementTree as ET\n"
                    "print('awaited', saved.exists(), ET.parse(saved).getroot().find('{http://www.w3.org/2000/svg}title').text)")
        nb.wait("() => [...document.querySelectorAll('.jp-OutputArea-output')].some(e => "
                "e.textContent.includes('awaited True SmolLM2'))", "the awaited SVG, read back in its own cell", 30)
        nb.wait_idle("after the awaited save")
        nb.add_cell(f"ex.widget.save_png({str(png)!r}, scale=2)")
        nb.wait_echo(f"saved {png}")
        assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        nb.wait_idle("after save_png")
        nb.add_cell(f"ex.widget.save_png({str(bad)!r})")
        nb.wait("() => [...document.querySelectorAll('.jp-OutputArea-output')].some(e => "
                "e.textContent.includes('SaveFolderError'))", "the SaveFolderError in the cell's output", 30)
        nb.wait_echo("attnwidget: save_png: SaveFolderError: cannot save")
    except AssertionError as error:
        nb.fail(f"assertion failed: {error}")
    finally:
        page.close()
