"""What the widget computes beyond one layer's tiles: rollout rows and matrices, metric grids, graphs.

Kept out of the widget class (traits and observers only); thread-safe, because the widget's worker
and background pass read it too.
"""

from __future__ import annotations

import threading

import numpy as np

from . import reduce as r
from .errors import ArgumentError


class ViewData:
    """Caches of one widget: the rollout matrix or rows, graph layouts; metric grids from the summary."""

    def __init__(self, engine, summary):
        self.engine, self.summary = engine, summary
        self._lock = threading.Lock()
        self._matrix: np.ndarray | None = None
        self._rows: dict[int, np.ndarray] = {}
        self._layouts: dict = {}

    # -- rollout ------------------------------------------------------------------------------------
    def rollout_matrix(self, capture) -> np.ndarray:
        """Attention rollout over all layers, ``[query, key]``, computed once."""
        with self._lock:
            if self._matrix is None:
                from .rollout import rollout

                self._matrix = rollout(capture)
            return self._matrix

    def cached_rollout(self, row: int) -> np.ndarray | None:
        with self._lock:
            if self._matrix is not None:
                return self._matrix[row]
            return self._rows.get(row)

    def rollout_row(self, capture, row: int, matrix_tokens: int) -> np.ndarray:
        """One rollout row: looked up in the whole matrix up to ``matrix_tokens`` tokens, else pushed
        through the head-mean patterns the summary kept (the others are recomputed), and cached."""
        if self.engine.n <= matrix_tokens:
            return self.rollout_matrix(capture)[row]
        cached = self.cached_rollout(row)
        if cached is not None:
            return cached
        if self.engine.kind == "capture":
            values = self.summary.rollout_rows([row])[0]
        else:
            from .rollout import rollout_row

            values = rollout_row(capture, row).values
        with self._lock:
            self._rows[row] = values
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
    def graph(self, layer: int, head: int | None, threshold: float, focus: int) -> dict:
        return r.graph_data(self.engine, layer, head, threshold, focus=focus, layouts=self._layouts)
