"""The documentation site builds offline with ``mkdocs build --strict`` and covers the package.

One build (about 20 s on 2 cores) into a temporary folder, then: every name of ``attnwidget.__all__``
has a heading in the API reference made by mkdocstrings (an element with class ``doc-heading`` whose
id is the object's path), and every notebook in ``notebooks/`` has a page showing its stored outputs.
Skipped when the ``docs`` extra (mkdocs, mkdocs-material, mkdocstrings, mkdocs-jupyter) is absent.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

import attnwidget

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))



def test_the_docs_extra_is_installed():
    """make test installs it (the dev extra includes docs): a missing package fails, never skips."""
    import importlib.util

    missing = [m for m in ("mkdocs", "material", "mkdocstrings_handlers.python", "mkdocs_jupyter")
               if importlib.util.find_spec(m.split(".")[0]) is None]
    assert not missing, f"the docs extra is not installed ({missing}): pip install -e '.[docs]'"


class _Page(HTMLParser):
    """The ids of mkdocstrings' headings and the page's text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.heading_ids: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "doc-heading" in (attrs.get("class") or "").split() and attrs.get("id"):
            self.heading_ids.add(attrs["id"])

    def handle_data(self, data):
        self.text.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _squash(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    assert not re.search(r"^(WARNING|ERROR)\b", result.stderr, re.M), result.stderr
    return out


def test_api_reference_has_every_public_name(site):
    ids: set[str] = set()
    for page in (site / "api").rglob("index.html"):
        ids |= _parse(page).heading_ids
    assert ids, "no mkdocstrings heading in the API reference"
    missing = []
    for name in attnwidget.__all__:
        # attnwidget.NAME, or the object under its module (attnwidget.capture.capture: the package
        # re-exports some functions under their module's name; attnwidget.explorer.show: loaded lazily)
        pattern = re.compile(rf"attnwidget(\.[a-z_][a-z0-9_]*)?\.{re.escape(name)}")
        if not any(pattern.fullmatch(i) for i in ids):
            missing.append(name)
    assert not missing, f"names of attnwidget.__all__ without a heading in the API reference: {missing}"


def _stored_output_lines(notebook: Path) -> list[str]:
    lines = []
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        for output in cell.get("outputs", []):
            text = output.get("text") or output.get("data", {}).get("text/plain", "")
            text = "".join(text) if isinstance(text, list) else text
            lines += [_squash(line) for line in text.splitlines() if len(line.strip()) >= 8]
    return lines


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_notebook_rendered_with_stored_outputs(site, notebook):
    page = site / "notebooks" / notebook.stem / "index.html"
    assert page.is_file(), f"no page for {notebook.name}"
    text = _squash(html.unescape("".join(_parse(page).text)))
    stored = _stored_output_lines(notebook)
    assert stored, f"{notebook.name} has no stored outputs to show"
    missing = [line for line in stored if line not in text]
    assert not missing, f"{notebook.name}: stored outputs missing from its page, e.g. {missing[:3]}"
    assert (page.parent / notebook.name).is_file(), "the .ipynb is offered for download beside its page"


def test_notebooks_are_in_the_nav(site):
    home = (site / "index.html").read_text(encoding="utf-8")
    unlisted = [n.name for n in NOTEBOOKS if f'href="notebooks/{n.stem}/"' not in home]
    assert not unlisted, f"notebooks missing from the navigation: {unlisted}"
