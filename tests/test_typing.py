"""Typing (issue 14): mypy passes over the package, and every public function and method is annotated.

The mypy configuration is mypy.ini (at the repository root); attnwidget ships ``py.typed``, so the
annotations are part of the API that users' type checkers read.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import attnwidget

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(attnwidget.__file__).resolve().parent


def test_package_is_marked_typed():
    assert (PACKAGE / "py.typed").is_file()


def test_mypy_passes():
    """``python -m mypy`` with mypy.ini (files = attnwidget): no error. A cold run takes about a minute
    on 2 cores; later runs read .mypy_cache and take seconds."""
    pytest.importorskip("mypy", reason="mypy is not installed (pip install 'mypy>=1.11')")
    result = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "mypy.ini")],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    report = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, f"mypy found errors:\n{report}"
    assert "Success" in report, report


# ------------------------------------------------------------------------------- annotations


def _public_modules() -> list:
    """attnwidget and its submodules whose names do not start with an underscore."""
    modules = [attnwidget]
    for info in pkgutil.iter_modules([str(PACKAGE)]):
        if not info.name.startswith("_"):
            modules.append(importlib.import_module(f"attnwidget.{info.name}"))
    return modules


def _ours(obj: object) -> bool:
    return (getattr(obj, "__module__", None) or "").startswith("attnwidget")


def _public_names(module) -> list[str]:
    """A module's ``__all__``, else the public names it defines itself (not those it imports)."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [name for name, value in vars(module).items()
            if not name.startswith("_") and (inspect.isfunction(value) or inspect.isclass(value))
            and getattr(value, "__module__", None) == module.__name__]


def _members(cls: type) -> list[tuple[str, object]]:
    """The public methods and properties of ``cls`` defined by attnwidget (its own or its mixins', not
    those of traitlets, ipywidgets or the built-ins), with its ``__init__``."""
    found: dict[str, object] = {}
    for base in reversed(inspect.getmro(cls)):
        if not _ours(base):
            continue
        for name, value in vars(base).items():
            if name.startswith("_") and name != "__init__":
                continue
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if isinstance(value, property):
                value = value.fget
            if inspect.isfunction(value) and _ours(value):
                found[name] = value
    return sorted(found.items())


def _callables() -> dict[str, object]:
    """Every public function and every public method, property or constructor of a public class, by
    qualified name."""
    out: dict[str, object] = {}
    for module in _public_modules():
        for name in _public_names(module):
            value = getattr(module, name)
            if inspect.isclass(value) and _ours(value):
                for member, fn in _members(value):
                    out[f"{value.__module__}.{value.__qualname__}.{member}"] = fn
            elif inspect.isfunction(value) and _ours(value):
                out[f"{value.__module__}.{value.__qualname__}"] = value
    return out


def _missing(fn) -> list[str]:
    """What ``fn`` leaves unannotated: parameters (not ``self`` / ``cls``) and ``return``."""
    signature = inspect.signature(fn)
    missing = []
    for i, (name, param) in enumerate(signature.parameters.items()):
        if i == 0 and name in ("self", "cls"):
            continue
        if param.annotation is inspect.Parameter.empty:
            missing.append(name)
    if signature.return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


def test_walk_finds_the_public_api():
    found = _callables()
    for name in ("attnwidget.capture.capture", "attnwidget.capture.Capture.pattern", "attnwidget.capture.Capture.load",
                 "attnwidget.metrics.compute_metrics", "attnwidget.rollout.rollout",
                 "attnwidget.widget.AttentionWidget.__init__", "attnwidget.widget.AttentionWidget.wait",
                 "attnwidget.widget.AttentionWidget.save_png", "attnwidget.report.AttentionReport.to_dict",
                 "attnwidget.heads.HeadRoles.shape"):
        assert name in found, name
    assert len(found) > 150


def test_public_api_is_annotated():
    unannotated = {name: missing for name, fn in _callables().items() if (missing := _missing(fn))}
    assert not unannotated, "public functions without annotations (parameter or return):\n" + "\n".join(
        f"  {name}: {', '.join(missing)}" for name, missing in sorted(unannotated.items()))


def test_missing_annotations_are_found():
    """The check itself: an unannotated parameter or return is reported."""
    def bare(self, x, *args, y: int = 0, **kwargs):
        return x

    def full(x: int, *args: int, **kwargs: str) -> int:
        return x

    assert _missing(bare) == ["x", "args", "kwargs", "return"]
    assert _missing(full) == []
