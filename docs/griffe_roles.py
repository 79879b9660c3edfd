"""Griffe extension for the docs site: reST markup in attnwidget's docstrings, read as Markdown.

The docstrings mix Markdown-friendly prose (``double backticks`` are Markdown code too) with two
reST/numpydoc habits that Markdown would garble:

* Sphinx roles, :func:`rollout_row`, :class:`~attnwidget.Capture`, ... become links to the API
  reference. The target is resolved the way Sphinx would (the object, then its parents, then the
  package) and emitted as an *optional* autorefs reference: it links where the target is documented
  and reads as plain code where it is not (a private module, networkx), without a warning.
* reST simple tables (``=====  =====`` borders) become Markdown tables.
* numpydoc-style definition blocks without a section header (a term on its own line, its
  description indented by four spaces below it) become Markdown definition lists (``def_list``).

Loaded by mkdocstrings (``mkdocs.yml``: ``handlers.python.options.extensions``); the source files are
not changed.
"""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:py:)?(func|meth|class|exc|data|attr|mod|obj|const):`(~?)([^`]+)`")
INDENT = "    "
BULLET = re.compile(r"^(?:[*+-]|\d+[.)])\s")


def _lookup(collection, path: str):
    try:
        return collection.get_member(path)
    except (KeyError, ValueError, AttributeError):
        return None


def _canonical(found) -> str | None:
    try:
        return found.canonical_path if found.is_alias else found.path
    except Exception:  # an alias to something griffe did not load (numpy, networkx)
        return found.target_path if found.is_alias else None


def resolve(obj, target: str, collection) -> str:
    """The canonical path of ``target`` as seen from ``obj`` (Sphinx's search order), else ``target``."""
    scope = obj
    while scope is not None:
        first, _, rest = target.partition(".")
        if first in scope.members:
            found = scope.members[first]
            try:
                for part in rest.split(".") if rest else ():
                    found = found.members[part]
            except (KeyError, AttributeError, Exception):  # noqa: BLE001 (unresolvable alias)
                found = None
            if found is not None:
                return _canonical(found) or target
        scope = scope.parent
    found = _lookup(collection, target)
    if found is not None:
        return _canonical(found) or target
    return target


def _roles(text: str, obj, collection) -> str:
    def replace(match: re.Match) -> str:
        role, short, target = match.groups()
        target = target.strip()
        title = target.rsplit(".", 1)[-1] if short else target
        if role in ("func", "meth"):
            title += "()"
        identifier = resolve(obj, target, collection)
        return f'<autoref identifier="{identifier}" optional>`{title}`</autoref>'

    return ROLE.sub(replace, text)


def _definitions(text: str) -> str:
    """``term`` followed by lines indented by four spaces -> a Markdown definition list entry."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    in_fence = False
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        previous = out[-1] if out else ""
        term_like = (
            not in_fence
            and line.strip()
            and not line.startswith(" ")
            and not line.rstrip().endswith(":")
            and not BULLET.match(line)
            and nxt.startswith(INDENT)
            and nxt.strip()
            and (not previous.strip() or previous.startswith(INDENT) or previous.startswith(":   "))
        )
        if term_like:
            if previous.strip():
                out.append("")  # entries need a blank line between them
            out.append(line)
            out.append(":   " + nxt[len(INDENT):])
            i += 2
            while i < len(lines) and lines[i].startswith(INDENT) and lines[i].strip():
                out.append(lines[i])
                i += 1
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


BORDER = re.compile(r"^( *)=+(?: +=+)+ *$")


def _cells(line: str, starts: list[int]) -> list[str]:
    """Split a table row at the columns' starts; text running past a border ends at the next space."""
    cells, begin = [], 0
    for start in starts[1:]:
        cut = start
        while 0 < cut < len(line) and line[cut - 1] != " ":
            cut += 1
        cells.append(line[begin:cut].strip())
        begin = cut
    cells.append(line[begin:].strip())
    return cells


def _tables(text: str) -> str:
    """reST simple tables (border, header, border, rows, border) -> Markdown tables.

    A row whose first cell is empty continues the row above (the continuation lines of a cell).
    """
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = BORDER.match(lines[i])
        borders = [j for j in range(i, len(lines)) if BORDER.match(lines[j]) and lines[j] == lines[i]][:3]
        if not match or len(borders) < 3 or borders[0] != i:
            out.append(lines[i])
            i += 1
            continue
        indent = len(match.group(1))
        starts = [m.start() - indent for m in re.finditer(r"=+", lines[i])]
        rows: list[list[str]] = []
        for k in range(i + 1, borders[2]):
            if k == borders[1] or not lines[k].strip():
                continue
            cells = _cells(lines[k][indent:], starts)
            if rows and not cells[0] and k > borders[1]:
                rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells)]
            else:
                rows.append(cells)
        out.append("| " + " | ".join(rows[0]) + " |")
        out.append("|" + " --- |" * len(starts))
        out.extend("| " + " | ".join(row) + " |" for row in rows[1:])
        i = borders[2] + 1
    return "\n".join(out)


def _literal_blocks(text: str) -> str:
    """reST's ``para::`` before an indented block: Markdown shows the block as code; keep one colon."""
    return re.sub(r"::\n\n(?=    )", ":\n\n", text)


class RestMarkup(griffe.Extension):
    """Rewrite each docstring of the package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs) -> None:
        collection = loader.modules_collection
        seen: set[int] = set()

        def visit(obj) -> None:
            if obj.is_alias or id(obj) in seen:
                return
            seen.add(id(obj))
            if obj.docstring is not None:
                value = _tables(obj.docstring.value)
                value = _literal_blocks(value)
                value = _definitions(value)
                obj.docstring.value = _roles(value, obj, collection)
            for member in obj.members.values():
                visit(member)

        visit(pkg)
