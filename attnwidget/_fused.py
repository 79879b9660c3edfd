"""The fused layer pass of the pattern engine (:meth:`attnwidget._engine.Engine.summarize`).

One pass over a layer, in cache-sized tiles of ``heads x rows x visible keys``, turns each score into
a weight once and fills from it every per-row statistic (the kernels of :mod:`attnwidget._kernels`,
compiled with numba or in numpy, whichever :func:`attnwidget._kernels.backend` picks), the column
sums, the max-pooled heatmap tiles and, on request, the head-mean pattern. :func:`_reduce` turns
the per-row statistics into the metrics and head roles.

Square and rectangular attention
    Self-attention is ``n x n``. Cross-attention (an encoder-decoder's decoder reading the encoder)
    is ``n x n_keys``: its queries and keys are two sequences, it is never causal, and the tiles are
    pooled per axis (``fr`` query rows by ``fc`` keys a cell), so a ``12 x 300`` layer keeps its 12
    rows and about 150 key cells. What compares a query's position with a key's is not defined there
    (:data:`POSITIONAL`): those metrics and roles are NaN.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import torch

from . import _kernels as K
from .errors import ArgumentError

if TYPE_CHECKING:
    from ._recorder import QKRecord
    from .capture import Capture

    #: What a fused pass reads a layer from, tile by tile.
    TileSource = Union["_ScoreTiles", "_ProbTiles", "_RowTiles"]

_KERNEL_LOCK = threading.Lock()  # numba's workqueue layer is not thread-safe; omp is, but do not oversubscribe

#: The metrics and head roles whose formula relates query position ``i`` to key position ``j`` of
#: the same sequence: mean distance and locality (``|i - j|``), previous token (key ``i - 1``),
#: local (``|i - j| < window``), duplicate and induction (earlier positions of query ``i``'s own
#: token, and the keys right after them). Where the queries and keys are two sequences
#: (cross-attention, :attr:`Engine.is_cross`) ``i`` and ``j`` count different tokens, so these are
#: NaN. Everything else is a property of each row's distribution over its keys (entropy, normalised
#: entropy, sparsity, coverage, max weight), of the column mass (focus consistency) or of key 0
#: (sink score, sink role), and is computed for any ``[query, key]`` rectangle. This set is the
#: one place the rule is written; metrics.py and heads.py refer to it.
POSITIONAL = frozenset({"mean_distance", "locality", "previous", "local", "duplicate", "induction"})
#: Reference patterns of ``pattern_match`` placed by the query's position (row ``i`` on key ``i - 1``,
#: on key ``i``, on keys ``i - window + 1 .. i``): NaN for cross-attention, like :data:`POSITIONAL`.
#: ``"first"`` (key 0) and ``"uniform"`` (all keys) and given arrays or captures are compared.
POSITIONAL_PATTERNS = frozenset({"previous", "diagonal", "local"})


def pool_factor(n: int, side: int) -> int:
    """Tokens per cell so that ``n`` tokens fit in ``side`` cells."""
    return max(1, math.ceil(n / side))


def tile_factor(n: int, side: int) -> int:
    """The stored tiles' tokens per cell: :func:`pool_factor` rounded up to a power of two (the pass
    pools cells by halving), so ``n`` tokens fit in between ``side / 2`` and ``side`` cells."""
    return 1 << (pool_factor(n, side) - 1).bit_length()


@dataclass(frozen=True)
class PassOptions:
    """What the fused pass computes. The defaults are the metric and role defaults of the package."""

    sparsity_threshold: float = 0.01
    coverage_threshold: float = 0.01
    top_k: int = 3
    window: int = 3
    token_ids: tuple | None = None  # duplicate / induction roles: which tokens repeat (None: NaN)
    tiles: bool = True  # heatmap tiles and thumbnails
    tile_side: int = 0  # cells a side of the heatmap tiles (0: TILE_SIDE)
    tile_dtype: str = "float16"  # the stored tiles' type (the widget sends float16; export re-quantises float32)


@dataclass
class LayerSummary:
    """What one fused pass over a layer produced (see :meth:`Engine.summarize`).

    Shapes: ``n`` query rows, ``n_keys`` keys (``n`` for self-attention); the tiles have
    ``Tq = ceil(n / fr)`` rows and ``Tk = ceil(n_keys / fc)`` columns, each factor a power of two
    chosen per axis (:func:`tile_factor`; the same for square attention)."""

    metrics: dict  # {name: [head] float64}
    roles: dict  # {role: [head] float64}
    tiles: np.ndarray | None  # float16 [head, Tq, Tk]: each head max-pooled to at most TILE_SIDE cells an axis
    mean_tile: np.ndarray | None  # float16 [Tq, Tk]: the head mean, max-pooled
    thumbs: np.ndarray | None  # uint8 [head, sq, sk], each scaled to its own maximum
    mean_thumb: np.ndarray | None  # uint8 [sq, sk]
    colsum_mean: np.ndarray  # float64 [n_keys]: weight received, summed over query rows, mean over heads
    last_mean: np.ndarray  # float64 [n_keys]: the last query row, mean over heads
    means: list = field(default_factory=list)  # [(r0, r1, [r1-r0, keys] float32 or float16 head mean)]
    seconds: float = 0.0

    @property
    def nbytes(self) -> int:
        arrays = [self.tiles, self.mean_tile, self.thumbs, self.mean_thumb, self.colsum_mean, self.last_mean]
        total = sum(a.nbytes for a in arrays if a is not None)
        return total + sum(b.nbytes for _, _, b in self.means)


class _ScoreTiles:
    """Tiles of scores from a Capture's queries and keys: the query heads that share a key head
    (all heads without grouped-query attention) as the rows of one matmul, over the keys the block
    can see."""

    from_scores = True
    dtype = np.float32

    def __init__(self, capture: Capture, layer: int, record: QKRecord) -> None:
        if record.causal and record.key.shape[1] != record.query.shape[1]:
            raise ArgumentError("the fused pass needs one key per query for causal attention; this capture's "
                                f"layer {layer} has {record.query.shape[1]} queries and {record.key.shape[1]} "
                                "keys (a cache offset)")
        self.capture, self.layer, self.record = capture, layer, record
        self.heads = record.query.shape[0]
        groups = self.heads // record.key.shape[0]
        self.group = groups if groups > 1 else self.heads
        # The kernel's loop bounds stand in for the causal mask only when there is no mask tensor;
        # with one (padding, sliding windows), rows are softmaxed over every key, mask added, as eager
        # does (a fully masked padding row is uniform over all keys).
        self.layer_causal = bool(record.causal) and record.mask < 0
        self.sinks = (np.full(self.heads, -np.inf, np.float32) if record.sinks is None
                      else record.sinks.float().numpy().astype(np.float32))
        self._buffer: torch.Tensor | None = None

    def visible(self, r0: int, r1: int) -> int:
        """Keys the rows ``r0..r1-1`` can see (the width of their tiles)."""
        return self.capture._visible(self.record, range(r0, r1))

    def tiles(self, r0: int, r1: int) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(h0, scores [group, r1 - r0, visible])``: views of one reused buffer, each consumed
        before the next is computed."""
        rows = range(r0, r1)
        visible = self.visible(r0, r1)
        need = self.group * (r1 - r0) * visible
        if self._buffer is None or self._buffer.numel() < need:
            self._buffer = torch.empty(need)
        out = self._buffer[:need].view(self.group, r1 - r0, visible)
        for h0 in range(0, self.heads, self.group):
            with torch.no_grad():  # future keys: the kernel stops each row at its position (layer_causal)
                self.capture._scores(self.layer, range(h0, h0 + self.group), rows, visible, out=out,
                                     mask_future=not self.layer_causal)
            yield h0, out.numpy()


class _ProbTiles:
    """Tiles of probabilities (an array, a patterns-only source, or weights a model returned)."""

    from_scores = False

    def __init__(self, layer_array: np.ndarray, causal: bool) -> None:
        # A causal source may still have rows that see later keys (padded rows of returned weights):
        # then every block keeps all keys, so nothing those rows attend to is dropped.
        self.array = layer_array
        self.causal = bool(causal) and not np.triu(layer_array, 1).any()
        self.dtype = np.float64 if layer_array.dtype == np.float64 else np.float32
        self.heads = self.group = layer_array.shape[0]

    def visible(self, r0: int, r1: int) -> int:
        return r1 if self.causal else self.array.shape[-1]

    def tiles(self, r0: int, r1: int) -> Iterator[tuple[int, np.ndarray]]:
        yield 0, np.ascontiguousarray(self.array[:, r0:r1, :self.visible(r0, r1)], dtype=self.dtype)


class _RowTiles:
    """Tiles of a row source's per-head rows (:func:`attnwidget._engine._row_source`, e.g. contributions),
    with the source's own layer measure as the head-mean rows (``own_mean``)."""

    from_scores = False
    dtype = np.float32

    def __init__(self, source: Any, layer: int) -> None:  # a row source (duck-typed: head_patterns, mean_rows)
        self.source, self.layer = source, layer
        self.heads = self.group = int(source.num_heads)
        self.causal = bool(source.is_causal)
        self.n_keys = int(getattr(source, "num_keys", source.num_tokens))

    def visible(self, r0: int, r1: int) -> int:
        return r1 if self.causal else self.n_keys

    def tiles(self, r0: int, r1: int) -> Iterator[tuple[int, np.ndarray]]:
        rows = np.asarray(self.source.head_patterns(self.layer, rows=slice(r0, r1)), dtype=np.float32)
        yield 0, np.ascontiguousarray(rows[..., :self.visible(r0, r1)])

    def own_mean(self, r0: int, r1: int) -> np.ndarray:
        return np.asarray(self.source.mean_rows(self.layer, slice(r0, r1)), dtype=np.float32)


class _LayerRun:
    """State of one fused pass over a layer: scratch buffers, per-row statistics, pooled tiles.

    ``n`` query rows over ``n_keys`` keys; ``cross``: the queries and keys are two sequences (no
    repeat pairs, :data:`POSITIONAL` values NaN). ``budget``: floats of one tile; ``side``: at most this
    many tile cells an axis; ``thumb``: at most this many thumbnail cells an axis; ``max_rows``: rows
    of one block at most (the engine's constants, read when the pass starts)."""

    def __init__(self, heads: int, n: int, n_keys: int, causal: bool, cross: bool, options: PassOptions,
                 keep_means: str | None, source: TileSource, *, budget: int, side: int, thumb: int,
                 max_rows: int) -> None:
        self.heads, self.n, self.n_keys, self.causal, self.cross = heads, n, n_keys, causal, cross
        self.options, self.source, self.keep = options, source, keep_means
        self.budget, self.thumb, self.max_rows = int(budget), int(thumb), int(max_rows)
        self.kernels = K.backend()  # one backend for the whole pass: they size the per-thread buffers differently
        threads = self.kernels.num_threads()
        self.stats = np.zeros((heads, n, K.NSTATS))
        # column sums: per thread, float32 for one block of scores (gathered into float64 after it)
        self.colsum = np.zeros((threads, heads, n_keys), np.float32 if source.from_scores else source.dtype)
        self.colsum64 = np.zeros((heads, n_keys))
        # tokens per tile cell, per axis (equal for square attention)
        self.fr, self.fc = tile_factor(n, side), tile_factor(n_keys, side)
        self.pool = bool(options.tiles)
        shape = (math.ceil(n / self.fr), math.ceil(n_keys / self.fc)) if self.pool else (1, 1)
        self.tiles = np.zeros((heads,) + shape, np.float32)
        self.mean_tile = np.zeros(shape, np.float32)
        if source.from_scores:
            self.ebuf = np.empty((threads, n_keys), np.float32)
            self.acc = np.empty((threads, n_keys + self.fc), np.int32)
            self.acc2 = np.empty((threads, n_keys + self.fc), np.int32)
            self.positions = _positions(n_keys)
        # repeat pairs index keys by query position: only where they are one sequence
        self.pair_ptr, self.pair_key, self.pair_rows = _pairs(None if cross else options.token_ids, n)
        self.means: list[tuple[int, int, np.ndarray]] = []
        self.on_block: Callable[[int, int, np.ndarray], object] | None = None
        self.last_mean = np.zeros(n_keys)
        self._mean = np.empty(0, np.float32)
        # The kept pattern lives in one allocation per layer, its blocks are views: thousands of
        # block-sized arrays interleaved with the pass's scratch fragment the heap, which then holds
        # hundreds of MB that nothing uses (measured: +0.45 GiB at 8192 tokens).
        self._store: np.ndarray | None = None
        self._stored = 0
        if keep_means is not None:
            size = sum((r1 - r0) * source.visible(r0, r1) for r0, r1 in self.row_blocks())
            self._store = np.empty(size, np.float32 if keep_means == "float32" else np.float16)

    def row_blocks(self) -> Iterator[tuple[int, int]]:
        """``(r0, r1)`` blocks, starting at multiples of the row pooling factor, whose tiles (heads x
        rows x visible keys) hold about ``budget`` floats; causal blocks grow as their rows see fewer
        keys."""
        n, f, h, r0 = self.n, self.fr, self.source.group, 0
        budget = self.budget
        while r0 < n:
            if self.causal:  # largest m with h * m * (r0 + m) <= budget
                m = int((-r0 + math.sqrt(r0 * r0 + 4 * budget / h)) / 2)
            else:
                m = budget // (h * self.n_keys)
            m = max(f, min(m, self.max_rows) // f * f)
            yield r0, min(n, r0 + m)
            r0 += m

    def block(self, r0: int, r1: int) -> None:
        o, src = self.options, self.source
        m, c = r1 - r0, 0
        mean: np.ndarray | None = None
        for h0, tile in src.tiles(r0, r1):
            if mean is None:
                c = tile.shape[2]
                if self.keep == "float32":  # the kept pattern is written in place: no copy
                    mean = self._take(m, c)
                    mean[:] = 0
                else:
                    if self._mean.size < m * c:
                        self._mean = np.empty(m * c, np.float32)
                    mean = self._mean[: m * c].reshape(m, c)
                    mean[:] = 0
            lo, hi = tile.dtype.type(o.sparsity_threshold), tile.dtype.type(o.coverage_threshold)
            inv_heads = tile.dtype.type(1.0 / self.heads)
            last = h0 + tile.shape[0] == self.heads
            kernels = self.kernels
            with _KERNEL_LOCK:
                if isinstance(src, _ScoreTiles):
                    kernels.head_rows(tile, r0, h0, src.layer_causal, self.causal, src.sinks, lo, hi, int(o.window),
                                      self.pair_ptr, self.pair_key, self.fr, self.fc, self.pool, last, self.stats,
                                      self.colsum, mean, inv_heads, self.tiles, self.mean_tile, self.ebuf, self.acc,
                                      self.acc2, self.positions)
                else:
                    kernels.prob_rows(tile, r0, self.causal, lo, hi, int(o.window), self.pair_ptr, self.pair_key,
                                      self.fr, self.fc, self.pool, self.stats, self.colsum, mean, inv_heads,
                                      self.tiles, self.mean_tile)
        assert mean is not None  # every block has a tile
        if src.from_scores:
            with _KERNEL_LOCK:
                self.kernels.flush_columns(self.colsum, self.colsum64, c)
        own_mean = getattr(src, "own_mean", None)
        if own_mean is not None:  # the source's layer measure replaces the heads' mean, and its tile cells
            mean[:] = own_mean(r0, r1)[:, :c]
            if self.pool:
                a0, a1 = r0 // self.fr, -(-r1 // self.fr)
                self.mean_tile[a0:a1] = 0
                cells = self.kernels.pool2d(np.ascontiguousarray(mean, dtype=np.float32)[None], self.fr, self.fc)[0]
                self.mean_tile[a0:a1, :cells.shape[1]] = cells
        if r1 == self.n:
            self.last_mean[:c] = mean[-1]
        if self.on_block is not None:
            self.on_block(r0, r1, mean)
        if self.keep == "float32":
            self.means.append((r0, r1, mean))
        elif self.keep is not None:
            kept = self._take(m, c)
            torch.from_numpy(kept).copy_(torch.from_numpy(mean))  # float32 -> float16, vectorised
            self.means.append((r0, r1, kept))

    def _take(self, m: int, c: int) -> np.ndarray:
        """The next ``[m, c]`` view of the layer's kept-pattern store (a fresh array if it is full)."""
        store = self._store
        assert store is not None  # only a pass that keeps the means takes from the store
        if self._stored + m * c > store.size:  # a source wider than planned: still correct
            return np.empty((m, c), store.dtype)
        view = store[self._stored:self._stored + m * c].reshape(m, c)
        self._stored += m * c
        return view

    def result(self) -> LayerSummary:
        from .reduce import to_uint8

        colsum = self.colsum64 if self.source.from_scores else self.colsum.sum(0)
        metrics, roles = _reduce(self.stats, colsum, self.n, self.n_keys, self.causal, self.cross, self.options,
                                 self.pair_rows)
        tiles = mean_tile = thumbs = mean_thumb = None
        if self.pool:
            if self.options.tile_dtype == "float16":
                tiles, mean_tile = _half(self.tiles), _half(self.mean_tile)
            else:
                tiles, mean_tile = self.tiles, self.mean_tile
            rows, cols = self.mean_tile.shape
            fr, fc = pool_factor(rows, self.thumb), pool_factor(cols, self.thumb)
            thumbs = to_uint8(self.kernels.pool2d(self.tiles, fr, fc))
            mean_thumb = to_uint8(self.kernels.pool2d(self.mean_tile[None], fr, fc))[0]
        return LayerSummary(metrics=metrics, roles=roles, tiles=tiles, mean_tile=mean_tile, thumbs=thumbs,
                            mean_thumb=mean_thumb, colsum_mean=colsum.mean(0), last_mean=self.last_mean,
                            means=self.means)


@functools.lru_cache(maxsize=2)
def _positions(n: int) -> np.ndarray:
    """float32 ``0 .. n - 1`` (read-only, shared by every pass over ``n`` keys)."""
    out = np.arange(n, dtype=np.float32)
    out.flags.writeable = False
    return out


def _half(a: np.ndarray) -> np.ndarray:
    """float32 -> float16 (torch's conversion is vectorised; numpy's is several times slower)."""
    return torch.from_numpy(np.ascontiguousarray(a)).half().numpy()


@functools.lru_cache(maxsize=4)
def _pairs(token_ids: tuple[int, ...] | None, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(pair_ptr [n+1], pair_key, rows)``: for each query row the earlier positions holding the same
    token (CSR, by row), and the rows that have any. No ids: no pairs (``rows`` is None)."""
    if token_ids is None:
        return np.zeros(n + 1, dtype=np.int64), np.zeros(1, dtype=np.int64), None
    ids = np.asarray(token_ids).ravel()
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]]) if ids.size else np.zeros(0, int)
    lengths = np.diff(np.r_[starts, ids.size])
    qi_parts, kj_parts = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for size in np.unique(lengths[lengths > 1]):  # a loop over run lengths, not over tokens
        runs = order[starts[lengths == size][:, None] + np.arange(size)]  # [runs, size] positions, ascending
        a, b = np.triu_indices(size, 1)
        qi_parts.append(runs[:, b].ravel())
        kj_parts.append(runs[:, a].ravel())
    qi, kj = np.concatenate(qi_parts), np.concatenate(kj_parts)
    by_row = np.argsort(qi, kind="stable")
    qi, kj = qi[by_row], kj[by_row]
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.add.at(ptr, qi + 1, 1)
    rows = np.unique(qi)
    return np.cumsum(ptr), np.r_[kj, 0].astype(np.int64), (rows if rows.size else None)


def row_weights(n: int, causal: bool, n_keys: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(visible [n] int, weights [n] float64 summing to 1)`` for ``n`` query rows over ``n_keys`` keys
    (default ``n``): rows are averaged over the *informative* rows, those with at least two visible
    keys (all rows when none has two). Causal rows see keys ``0..i``, others all ``n_keys``."""
    visible = np.arange(1, n + 1) if causal else np.full(n, n if n_keys is None else n_keys)
    weights = (visible >= 2).astype(np.float64)
    if not weights.any():
        weights[:] = 1.0
    return visible, weights / weights.sum()


def _reduce(stats: np.ndarray, colsum: np.ndarray, n: int, n_keys: int, causal: bool, cross: bool,
            options: PassOptions, pair_rows: np.ndarray | None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per-row statistics ``[head, row, NSTATS]`` and column sums ``[head, key]`` -> ``({metric: [head]},
    {role: [head]})`` (formulas: docs/metrics.md); ``cross``: :data:`POSITIONAL` ones are NaN."""
    stats = np.ascontiguousarray(np.moveaxis(stats, -1, 0))  # [NSTATS, head, row]: the same sums as before
    visible, w = row_weights(n, causal, n_keys)
    ent, dist = stats[K.ENTROPY], stats[K.DISTANCE]
    logv = np.log(visible)
    norm = np.clip(np.divide(ent, logv, out=np.zeros_like(ent), where=logv > 0), 0.0, 1.0)
    if causal and n >= 2:  # row 0 (one visible key, key 0) is not informative: take it out
        colmass = colsum.copy()
        colmass[:, 0] -= stats[K.SINK][:, 0]
        colmass /= n - 1
    else:  # every row is informative (or none is, and every row counts)
        colmass = colsum / (n if n >= 2 else 1)
    k = min(int(options.top_k), n_keys)
    top = np.partition(colmass, n_keys - k, axis=-1)[:, n_keys - k:]
    metrics = {
        "entropy": ent @ w,
        "normalized_entropy": norm @ w,
        "sparsity": (stats[K.BELOW] / visible) @ w,
        "coverage": (stats[K.ABOVE] / visible) @ w,
        "mean_distance": dist @ w,
        "locality": (1.0 / (1.0 + dist)) @ w,
        "focus_consistency": np.clip(top.sum(-1), 0.0, 1.0),
        "sink_score": stats[K.SINK] @ w,
        "max_weight": stats[K.PEAK] @ w,
    }
    heads = stats.shape[1]
    nan = np.full(heads, np.nan)
    roles = {
        "previous": stats[K.PREVIOUS][:, 1:].mean(-1) if n > 1 else nan,
        "duplicate": stats[K.DUPLICATE][:, pair_rows].mean(-1) if pair_rows is not None else nan,
        "induction": stats[K.INDUCTION][:, pair_rows].mean(-1) if pair_rows is not None else nan,
        "sink": metrics["sink_score"],
        "local": stats[K.LOCAL] @ w,
        "broad": metrics["normalized_entropy"],
    }
    if cross:
        for values in (metrics, roles):
            for name in POSITIONAL.intersection(values):
                values[name] = nan.copy()
    return metrics, roles
