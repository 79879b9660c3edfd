"""Optional packages: one place that imports them and says which extra installs each.

The default install (``pip install attnwidget``) gives capture, patterns, the widget and metrics.
Parts that serve one feature each are extras (see pyproject.toml):

========== ============================ ===============================================
extra      packages                     serves
========== ============================ ===============================================
flow       numba                        the exact attention flow; compiled kernels for
                                        the pattern engine and the routes (else numpy)
cluster    scipy                        ``similar_heads`` (hierarchical clustering)
examples   gguf, the example wheels     ``load_model("smollm2")`` / ``"minilm"``
accelerate accelerate                   ``load_model(..., device_map=...)``
all        every one of the above
========== ============================ ===============================================
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from .errors import MissingExtraError

EXTRAS = {"numba": "flow", "scipy": "cluster", "gguf": "examples", "accelerate": "accelerate"}


def has(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, feature: str) -> ModuleType:
    """Import the optional ``module`` for ``feature``, or raise :class:`MissingExtraError` naming the
    ``pip install`` command that adds it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        extra = EXTRAS.get(module.partition(".")[0], "all")
        raise MissingExtraError(
            f"{feature} needs the optional package {module.partition('.')[0]!r}, which is not installed "
            f"({error}). Install it with: pip install \"attnwidget[{extra}]\"") from error
