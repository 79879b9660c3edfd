"""Write a notebook from a short cell script, then execute it in place so its outputs are stored.

Usage: python tools/make_notebook.py SPEC.py OUT.ipynb
The spec is Python source split into cells at lines starting with `# %%` (code) or `# %% [markdown]`
(markdown, each line prefixed with `# `). Stored outputs are what nbval compares in `make test`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat


def parse(spec: str) -> list:
    cells, kind, lines = [], None, []

    def flush():
        if kind is None:
            return
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            body = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in body.splitlines())
            cells.append(nbformat.v4.new_markdown_cell(body))
        else:
            cells.append(nbformat.v4.new_code_cell(body))

    for line in spec.splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        else:
            lines.append(line)
    flush()
    return cells


def main() -> None:
    spec, out = Path(sys.argv[1]), Path(sys.argv[2])
    nb = nbformat.v4.new_notebook(cells=parse(spec.read_text()))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.write(nb, out)
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
                    "--ExecutePreprocessor.store_widget_state=False",
                    str(out)], check=True)


if __name__ == "__main__":
    main()
