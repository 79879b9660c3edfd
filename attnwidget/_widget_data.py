"""What the widget computes beyond one layer's tiles: rollout rows and matrices, metric grids, graphs.

Kept out of the widget class (traits and observers only); thread-safe, because the widget's worker
and background pass read it too. Rollout is cached per set of options (``(head_fusion,
discard_ratio)``, see :data:`MEAN`): changing the widget's ``rollout_fusion`` or ``discard_ratio``
computes anew, and going back to options used recently costs nothing.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from . import reduce as r
from .errors import ArgumentError

if TYPE_CHECKING:
    from ._summary import Summary
    from ._types import AttentionSource


#: The rollout options ``(head_fusion, discard_ratio)`` with a fast path: the head means the background
#: pass kept (``Summary.rollout_rows``). Any other options read every head of every layer again.
MEAN = ("mean", 0.0)
#: How many sets of rollout options keep their matrix or rows (the least recently used go first).
KEEP_OPTIONS = 4


class ViewData:
    """Caches of one widget: the rollout matrix or rows (per options), graph layouts; metric grids
    from the summary."""

    def __init__(self, engine: r.Engine, summary: Summary) -> None:
        self.engine, self.summary = engine, summary
        self._lock = threading.Lock()
        self._matrices: dict[tuple[str, float], np.ndarray] = {}  # options -> [query, key]
        self._rows: dict[tuple[str, float], dict[int, np.ndarray]] = {}  # options -> row -> [key]
        self._recent: list[tuple[str, float]] = []  # options, least recently used first
        self._layouts: dict[tuple[int, int | None, int, int], np.ndarray] = {}

    # -- rollout ------------------------------------------------------------------------------------
    def _touch(self, options: tuple[str, float]) -> None:
        """Mark ``options`` used (call with the lock held); forget the least recently used beyond
        :data:`KEEP_OPTIONS`."""
        if options in self._recent:
            self._recent.remove(options)
        self._recent.append(options)
        for old in self._recent[:-KEEP_OPTIONS]:
            self._matrices.pop(old, None)
            self._rows.pop(old, None)
        del self._recent[:-KEEP_OPTIONS]

    def rollout_matrix(self, capture: AttentionSource, options: tuple[str, float] = MEAN) -> np.ndarray:
        """Attention rollout over all layers, ``[query, key]``, computed once per ``options``
        (``(head_fusion, discard_ratio)``)."""
        with self._lock:
            matrix = self._matrices.get(options)
            if matrix is None:
                from .rollout import rollout

                fusion, discard = options
                matrix = self._matrices[options] = rollout(capture, head_fusion=fusion, discard_ratio=discard)
            self._touch(options)
            return matrix

    def cached_rollout(self, row: int, options: tuple[str, float] = MEAN) -> np.ndarray | None:
        """The rollout row of ``row`` with ``options`` if it is computed, else None."""
        with self._lock:
            matrix = self._matrices.get(options)
            if matrix is not None:
                return matrix[row]
            return self._rows.get(options, {}).get(row)

    def rollout_row(self, capture: AttentionSource, row: int, matrix_tokens: int,
                    options: tuple[str, float] = MEAN) -> np.ndarray:
        """One rollout row with ``options``: looked up in the whole matrix up to ``matrix_tokens`` tokens,
        else (head mean, nothing discarded) pushed through the head-mean patterns the summary kept (the
        others are recomputed), or (other options) computed by ``attnwidget.rollout_row``; cached."""
        if self.engine.n <= matrix_tokens:
            return self.rollout_matrix(capture, options)[row]
        cached = self.cached_rollout(row, options)
        if cached is not None:
            return cached
        if options == MEAN and self.engine.kind == "capture":
            values = self.summary.rollout_rows([row])[0]
        else:
            from .rollout import rollout_row

            fusion, discard = options
            # progress=False: this runs on the widget's worker, whose bar would land in any cell
            values = rollout_row(capture, row, head_fusion=fusion, discard_ratio=discard, progress=False).values
        with self._lock:
            self._rows.setdefault(options, {})[row] = values
            self._touch(options)
        return values

    # -- metric grids -------------------------------------------------------------------------------
    def metric_grid(self, name: str) -> np.ndarray:
        """``[layer, head]`` values of a metric or head role (NaN for layers not passed over yet)."""
        from .heads import ROLES
        from .metrics import FUSED_METRICS

        if name in FUSED_METRICS:
            return self.summary.metrics()[name]
        if name in ROLES:
            return self.summary.roles()[name]
        raise ArgumentError(f"unknown metric or role {name!r}; choose from {sorted(FUSED_METRICS + ROLES)}")

    # -- graph --------------------------------------------------------------------------------------
    def graph(self, layer: int, head: int | None, threshold: float, focus: int) -> dict[str, Any]:
        return r.graph_data(self.engine, layer, head, threshold, focus=focus, layouts=self._layouts)
