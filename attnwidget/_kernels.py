"""The inner loops of the pattern engine: what they compute (this module), and which backend runs them.

Two backends implement the same functions with the same signatures and the same in-place outputs:
:mod:`attnwidget._kernels_numba` (compiled, parallel; installed with ``pip install "attnwidget[flow]"``)
and :mod:`attnwidget._kernels_numpy` (whole-tile array operations; always available). :func:`backend`
picks one the first time a pass needs it, so ``import attnwidget`` imports neither numba nor llvmlite.
This module holds what both share: the contract below and the :data:`STAT` indices.

A *tile* is ``[heads, m, c]``: every head of one layer, query rows ``r0 .. r0 + m - 1``, and the ``c``
keys those rows can see (for causal attention the block's last row plus one: no padding to ``n``;
for cross-attention every key of the other sequence, ``c`` unrelated to the number of rows).

``head_rows`` works on a *group* of ``fr`` rows (the rows of one heatmap-tile row) with every head of
the tile; the heatmap tiles pool ``fr`` rows by ``fc`` keys per cell (equal for square attention, set
per axis for a rectangle so both axes keep their detail). It turns each row into probabilities and
writes, per head and row, the statistics every metric and head role is built from (the indices
below), adds the row to the column sums and to the head mean (kept for rollout), and max-pools the
group into the heatmap tiles of each head and of the mean.

Scores or probabilities
    ``head_rows`` takes scores (``q k^T * scaling + mask`` as eager attention computes them) and
    softmaxes each row over its visible keys, plus a learned sink logit where the model has one.
    Entropy then comes from the scores, ``H = log(z) * sum(p) - sum(e * x) / z`` with ``x = s - max``
    and ``e = exp(x)``: no logarithm per weight. ``prob_rows`` takes probabilities (an array the user
    passed, weights a model returned) and computes ``-sum p log p``; it is generic over the float type.

Visible keys
    Row ``i`` (global index) is softmaxed over keys ``0..i`` when the layer is causal without a mask
    tensor (``layer_causal``), else over all ``c`` keys (the mask is in the scores); its statistics
    count keys ``0..i`` when the attention is causal (``causal``), else the softmaxed keys. The two
    differ for a causal capture with padding: the mask is in the scores, the statistics stop at ``i``.

Statistics of row ``i`` (weights ``p_j`` over its counted keys ``j < ci``)
    ENTROPY ``-sum p log p``; PEAK ``max p``; BELOW / ABOVE how many ``p_j`` are below ``lo`` / above
    ``hi`` (sparsity and coverage thresholds); DISTANCE ``sum p_j |i - j|``; SINK ``p_0``; PREVIOUS
    ``p_{i-1}`` (0 for row 0, or where key ``i - 1`` is not counted); LOCAL the weight on keys
    ``1 <= j`` with ``|i - j| < window`` (only ``j <= i`` when causal; key 0 is the sink's);
    DUPLICATE / INDUCTION the weight on the earlier positions of row ``i``'s own token / on the keys
    right after them (``pair_ptr [n + 1]`` / ``pair_key``: those positions per row, CSR); TOTAL
    ``sum p`` (below 1 when a sink logit or uncounted keys take a share).

Column sums, head mean, tiles
    Each counted weight is added to ``colsum[thread, head, j]`` (one buffer per thread of the backend,
    :func:`num_threads` of them; ``flush_columns`` gathers them into float64 after each block of rows);
    ``inv_heads`` times every softmaxed weight to ``mean [m, c]`` (zeroed by the caller; the groups of
    heads that share a key head are separate calls, made one after another). When ``pool``, each
    head's weights are max-pooled into ``tiles [head, Tq, Tk]`` (cell ``(a, b)``: rows ``a fr ..``,
    keys ``b fc ..``; ``fc`` a power of two) and, when ``last`` (the mean is complete), the mean into
    ``mean_tile [Tq, Tk]``. ``pool2d`` max-pools whole matrices (thumbnails, a source's own mean).
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

# Row statistics: index into the last axis of the float64 ``[head, row, NSTATS]`` array (a row's
# statistics are contiguous: one cache line written per row).
ENTROPY, PEAK, BELOW, ABOVE, DISTANCE, SINK, PREVIOUS, LOCAL, DUPLICATE, INDUCTION, TOTAL = range(11)
NSTATS = 11
STAT = ("entropy", "peak", "below", "above", "distance", "sink", "previous", "local", "duplicate", "induction",
        "total")

#: The backends, by name: the module that implements each.
BACKENDS = {"numba": "._kernels_numba", "numpy": "._kernels_numpy"}
#: Environment variable read when the backend is first chosen: ``numba``, ``numpy`` or unset (numba
#: when it can be imported, numpy otherwise).
ENV = "ATTNWIDGET_KERNELS"

_LOCK = threading.Lock()
_chosen: ModuleType | None = None
_forced: ModuleType | None = None


def load(name: str) -> ModuleType:
    """The backend module ``name`` (``"numba"`` or ``"numpy"``); numba's raises
    :class:`~attnwidget.errors.MissingExtraError` when numba is not installed."""
    if name not in BACKENDS:
        from .errors import ArgumentError

        raise ArgumentError(f"unknown kernel backend {name!r}; expected one of {sorted(BACKENDS)}")
    if name == "numba":
        from ._optional import require

        require("numba", "the compiled pattern-engine kernels")
    return importlib.import_module(BACKENDS[name], __package__)


def backend() -> ModuleType:
    """The backend that runs the kernels: the one forced by :func:`use_backend`, else the one chosen
    once per process (:data:`ENV`, else numba when it imports, else numpy). A pass takes it once and
    uses it for all its calls, since the backends size their per-thread buffers differently."""
    global _chosen
    if _forced is not None:
        return _forced
    if _chosen is None:
        with _LOCK:
            if _chosen is None:
                wanted = os.environ.get(ENV, "").strip().lower()
                if wanted:
                    _chosen = load(wanted)
                else:
                    try:
                        _chosen = load("numba")
                    except ImportError:  # not installed, or installed but unusable here
                        _chosen = load("numpy")
    return _chosen


@contextmanager
def use_backend(name: str) -> Iterator[ModuleType]:
    """Run the passes started inside the ``with`` block on backend ``name`` (tests, benchmarks). Not
    per thread: a pass another thread starts meanwhile uses it too."""
    global _forced
    was, _forced = _forced, load(name)
    try:
        yield _forced
    finally:
        _forced = was
