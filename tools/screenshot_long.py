"""Screenshot of the text view on the long_context tutorial, in a real JupyterLab (docs/images/long_context.png).

Usage: .venv/bin/python tools/screenshot_long.py [OUT.png]
Runs notebooks/long_context.ipynb in JupyterLab with headless offline Chromium (tools/jupyter_run.py),
waits for every cell, then photographs the explorer's output area: the text view coloured by layer 7,
head 7's attention from the question's "Reykjavik" (the cell that selects it), on the log scale.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import jupyter_run

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "images" / "long_context.png"
    with tempfile.TemporaryDirectory(prefix="attnwidget-shot-") as tmp:
        tmp = Path(tmp)
        root = tmp / "root"
        root.mkdir()
        shutil.copy(ROOT / "notebooks" / "long_context.ipynb", root / "long_context.ipynb")
        with jupyter_run.jupyter_server("lab", root, tmp / "state", tmp / "lab.log", notebook="long_context.ipynb") as lab:
            allowed = ("http://127.0.0.1:", "ws://127.0.0.1:", "data:", "blob:")
            with jupyter_run.offline_chromium(lambda url: url.startswith(allowed),
                                              viewport={"width": 1600, "height": 1100}) as context:
                page = context.new_page()
                page.goto(lab["url"], timeout=60000)
                idle = f"{jupyter_run.KERNEL}?.status === 'idle'"
                page.wait_for_function(f"{idle} && document.querySelectorAll('.jp-CodeCell').length > 5",
                                       timeout=120000, polling=200)
                page.evaluate("window.jupyterapp.shell.collapseLeft?.()")
                page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
                page.wait_for_function("() => document.body.innerText.includes('the text view now shows')",
                                       timeout=600000, polling=500)
                page.wait_for_function(idle, timeout=60000, polling=200)
                # Back to the head that finds the needle, and scroll the text view to the needle.
                page.evaluate("""async () => {
                    const app = window.jupyterapp;
                    const notebook = app.shell.currentWidget.content;
                    notebook.activeCellIndex = notebook.widgets.length - 1;
                    await app.commands.execute("notebook:insert-cell-below");
                    notebook.activeCell.model.sharedModel.setSource(
                        "widget.text_source = 'attention'\\nwidget.layer, widget.head = layer, head\\n"
                        + "widget.selected_tokens = [focus]\\nprint('shot ready')");
                    await app.commands.execute("notebook:run-cell");
                }""")
                page.wait_for_function("() => document.body.innerText.includes('shot ready')", timeout=60000)
                page.wait_for_function(idle, timeout=60000, polling=200)
                page.evaluate("""() => {
                    const scroll = document.querySelector('.attnwidget-text-scroll');
                    scroll.scrollTop = scroll.scrollHeight * 236 / 2230 - 60;
                    scroll.dispatchEvent(new Event('scroll'));
                }""")
                page.wait_for_timeout(1000)
                output = page.locator(".jp-OutputArea-output", has=page.locator(".attnwidget")).first
                output.scroll_into_view_if_needed()
                out.parent.mkdir(parents=True, exist_ok=True)
                output.screenshot(path=str(out), animations="disabled")
                page.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
