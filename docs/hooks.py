"""MkDocs hooks for the docs site (mkdocs.yml: ``hooks``).

The tutorial notebooks live in ``notebooks/``, outside ``docs_dir``, where nbval checks them. This hook
adds each ``notebooks/*.ipynb`` to the build as the page ``notebooks/NAME.ipynb``, read in place (no copy
in git, no symlink), before mkdocs-jupyter turns notebook files into pages; mkdocs-jupyter then renders
their stored outputs (``execute: false``). A notebook missing from the nav is a warning, so
``mkdocs build --strict`` fails rather than leave it unlisted.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

log = logging.getLogger("mkdocs.hooks.notebooks")


def _notebooks(config) -> list[Path]:
    root = Path(config.config_file_path).resolve().parent
    return sorted((root / "notebooks").glob("*.ipynb"))


def _nav_paths(items) -> set[str]:
    paths: set[str] = set()
    for item in items or ():
        value = next(iter(item.values())) if isinstance(item, dict) else item
        if isinstance(value, list):
            paths |= _nav_paths(value)
        elif isinstance(value, str):
            paths.add(value)
    return paths


@event_priority(100)  # before mkdocs-jupyter's on_files, which wraps the .ipynb files it is given
def on_files(files: Files, config) -> Files:
    listed = _nav_paths(config.nav)
    for notebook in _notebooks(config):
        uri = f"notebooks/{notebook.name}"
        if files.get_file_from_path(uri) is None:
            # A real File whose src_dir is the repository root (not File.generated: mkdocs-jupyter's
            # wrapper recomputes abs_src_path from src_dir, which a generated file lacks).
            files.append(File(uri, str(notebook.parent.parent), config.site_dir, config.use_directory_urls))
        if config.nav is not None and uri not in listed:
            log.warning("%s is not in mkdocs.yml's nav (section Notebooks)", uri)
    return files


def on_serve(server, config, builder):
    """``mkdocs serve`` rebuilds when a notebook changes."""
    for notebook in _notebooks(config):
        server.watch(str(notebook))
    return server
