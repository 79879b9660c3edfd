"""The pattern engine: every reader of attention patterns goes through here.

:class:`Engine` wraps a Capture (queries and keys: patterns are recomputed), a Capture-like object
with only ``patterns(layers)``, or a ``[layer, head, query, key]`` array, and offers two ways in:

* **The fused layer pass** (:meth:`Engine.summarize`): one pass over a layer computes each score
  once, in cache-sized tiles of ``heads x rows x visible keys`` (a causal block stops at its last
  row: no padding to ``n``), and fills, from those tiles, everything the widget and the explorer
  need: every metric, every head-role score, max-pooled heatmap tiles of each head and of the head
  mean (the grid's thumbnails are pooled from them), the column sums, and optionally the head-mean
  pattern itself, kept for rollout rows. The compiled loops are in :mod:`attnwidget._kernels`.
* **Generic row blocks** (:meth:`Engine.blocks`, :meth:`Engine.rows`, :meth:`Engine.heads`,
  :meth:`Engine.matrix`): exact float32 weights ``[head, rows, key]`` for the analyses that need the
  weights themselves (prompt parts, similar heads, pattern match, zoomed heatmap tiles). A Capture
  is read in blocks of :func:`block_rows` rows (``heads x rows x tokens <= BLOCK_ELEMENTS``), so no
  caller holds a whole layer; an array is handed out one layer at a time.

Memory of the fused pass: one tile (``TILE_ELEMENTS`` floats), the head-mean rows of one block,
per-row statistics ``[11, heads, n]`` float64 and the pooled tiles ``[heads, 512, 512]``.
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass, field

import numpy as np
import torch

from . import _kernels as K
from ._arrays import as_attention_array
from ._memory import release_free_memory
from .errors import ArgumentError

#: Floats (``heads x rows x keys``) in one generic block read from a Capture (16 MiB of float32).
#: Read at call time, so a test can lower it.
BLOCK_ELEMENTS = 1 << 22
#: Floats in one tile of the fused pass (``heads sharing a key head x rows x visible keys``): 4 MiB
#: of float32 scores; each row (``visible keys``, 32 KiB at 8192 tokens) is finished while it sits
#: in the first-level cache. Read at call time, so a test can lower it.
TILE_ELEMENTS = 1 << 22
#: At most this many rows per block of the fused pass: a causal block computes the scores of its
#: whole [rows, last row + 1] rectangle, of which the part above the diagonal is wasted (rows / 2 per
#: row, 6% of a 2048-token pass); fewer rows would mean more calls, each with its own overhead.
MAX_BLOCK_ROWS = 128
TRIM_TOKENS = 4096  # from this length each layer's pass returns its freed scratch to the system
#: Cells a side of the stored whole-sequence heatmap tiles (each head and the head mean, max-pooled):
#: the overview is drawn in about 420 CSS px, so 256 cells keep every pixel's detail; a zoomed
#: window is recomputed exactly (reduce.TILE_SIDE). Pooling into cells is the one step of the pass
#: that does not vectorise, and it costs 1 / (tokens per cell) of it.
TILE_SIDE = 256  # at most; the tokens per cell are a power of two (tile_factor), so 128 to 256 cells
THUMB_SIZE = 64  # grid thumbnails: at most this many cells a side, pooled from the tiles

_KERNEL_LOCK = threading.Lock()  # numba's workqueue layer is not thread-safe; omp is, but do not oversubscribe


def block_rows(heads: int, n: int) -> int:
    """Rows per generic block for ``heads`` heads over ``n`` keys: ``max(1, BLOCK_ELEMENTS // (heads * n))``."""
    return max(1, int(BLOCK_ELEMENTS) // max(1, int(heads) * int(n)))


def pool_factor(n: int, side: int) -> int:
    """Tokens per cell so that ``n`` tokens fit in ``side`` cells."""
    return max(1, math.ceil(n / side))


def tile_factor(n: int, side: int) -> int:
    """The stored tiles' tokens per cell: :func:`pool_factor` rounded up to a power of two (the pass
    pools cells by halving), so ``n`` tokens fit in between ``side / 2`` and ``side`` cells."""
    return 1 << (pool_factor(n, side) - 1).bit_length()


def is_capture(obj) -> bool:
    """A Capture-like source (the test of the analysis modules: ``patterns`` and ``is_causal``)."""
    return hasattr(obj, "patterns") and hasattr(obj, "is_causal")


def _recomputes(obj) -> bool:
    """An attnwidget Capture (recorded queries and keys, scores recomputed on demand)."""
    return is_capture(obj) and callable(getattr(obj, "_scores", None)) and hasattr(obj, "_records")


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
    """What one fused pass over a layer produced (see :meth:`Engine.summarize`)."""

    metrics: dict  # {name: [head] float64}
    roles: dict  # {role: [head] float64}
    tiles: np.ndarray | None  # float16 [head, T, T]: each head max-pooled to TILE_SIDE cells
    mean_tile: np.ndarray | None  # float16 [T, T]: the head mean, max-pooled
    thumbs: np.ndarray | None  # uint8 [head, s, s], each scaled to its own maximum
    mean_thumb: np.ndarray | None  # uint8 [s, s]
    colsum_mean: np.ndarray  # float64 [key]: weight received, summed over query rows, mean over heads
    last_mean: np.ndarray  # float64 [key]: the last query row, mean over heads
    means: list = field(default_factory=list)  # [(r0, r1, [r1-r0, keys] float32 or float16 head mean)]
    seconds: float = 0.0

    @property
    def nbytes(self) -> int:
        arrays = [self.tiles, self.mean_tile, self.thumbs, self.mean_thumb, self.colsum_mean, self.last_mean]
        total = sum(a.nbytes for a in arrays if a is not None)
        return total + sum(b.nbytes for _, _, b in self.means)


class Engine:
    """Row-block and fused-pass access to a Capture, a Capture-like source or a ``[L, H, n, n]`` array."""

    def __init__(self, obj):
        self.obj = obj
        self.array = None
        if _recomputes(obj):
            self.kind = "capture"
            self.is_causal = bool(obj.is_causal)
            self._shape = (int(obj.num_layers), int(obj.num_heads), int(obj.num_tokens))
        elif is_capture(obj):
            self.kind = "layers"  # a duck-typed source: one layer at a time through patterns([layer])
            self.is_causal = bool(obj.is_causal)
            self._shape = None
            if all(hasattr(obj, a) for a in ("num_layers", "num_heads", "num_tokens")):
                self._shape = (int(obj.num_layers), int(obj.num_heads), int(obj.num_tokens))
        else:
            self.kind = "array"
            self.array, self.is_causal = as_attention_array(obj)
            self._shape = tuple(int(s) for s in self.array.shape[:3])

    # -- sizes ------------------------------------------------------------------------------------
    def _sizes(self):
        if self._shape is None:  # learn the shape from the first layer
            first = self._layer(0)
            self._shape = (int(self.obj.num_layers),) + tuple(int(s) for s in first.shape[:2])
        return self._shape

    @property
    def num_layers(self) -> int:
        return int(self.obj.num_layers) if self.kind == "layers" else self._sizes()[0]

    @property
    def num_heads(self) -> int:
        return self._sizes()[1]

    @property
    def num_tokens(self) -> int:
        return self._sizes()[2]

    n = num_tokens

    @property
    def step(self) -> int:
        """Rows per generic block: :func:`block_rows` for a Capture, the whole layer otherwise."""
        if self.kind == "capture":
            return block_rows(self.num_heads, self.num_tokens)
        return max(1, self.num_tokens)

    # -- generic access ---------------------------------------------------------------------------
    def _layer(self, layer: int) -> np.ndarray:
        """One whole layer ``[head, query, key]`` (array and ``patterns``-only sources; the latter's
        last layer is kept, so the fused pass and a comparison over the same layer read it once)."""
        if self.kind == "array":
            return self.array[layer]
        held = getattr(self, "_held", None)
        if held is None or held[0] != layer:
            held = self._held = (layer, as_attention_array(self.obj, layers=[layer])[0][0])
        return held[1]

    def read(self, layer: int, r0: int, r1: int) -> np.ndarray:
        """Query rows ``r0..r1-1`` of ``layer``: float ``[head, r1 - r0, key]`` (one Capture call)."""
        if self.kind == "capture":
            return np.asarray(self.obj.head_patterns(layer, rows=slice(r0, r1)))
        return self._layer(layer)[:, r0:r1]

    def blocks(self, layer: int):
        """Yield ``(r0, r1, p [head, r1 - r0, key])`` covering every query row of ``layer`` in order."""
        if self.kind != "capture":
            p = self._layer(layer)
            if self._shape is None:
                self._shape = (int(self.obj.num_layers),) + tuple(int(s) for s in p.shape[:2])
            yield 0, p.shape[1], p
            return
        n, step = self.num_tokens, self.step
        for r0 in range(0, n, step):
            r1 = min(n, r0 + step)
            yield r0, r1, self.read(layer, r0, r1)

    def rows(self, layer: int, index):
        """Yield ``(a, b, p [head, b - a, key])``: the rows ``index[a:b]`` of ``layer``, at most
        :attr:`step` rows per Capture call (one whole-layer read for the other sources)."""
        index = np.asarray(index, dtype=np.int64)
        if self.kind != "capture":
            yield 0, index.size, self._layer(layer)[:, index]
            return
        step = self.step
        for a in range(0, index.size, step):
            b = min(index.size, a + step)
            yield a, b, np.asarray(self.obj.head_patterns(layer, rows=index[a:b]))

    def heads(self, layer: int, rows) -> np.ndarray:
        """All heads of ``layer`` for the given query rows (slice or indices): float32 ``[head, rows, key]``."""
        if self.kind == "capture":
            return self.obj.head_patterns(layer, rows=rows)
        return np.asarray(self._layer(layer)[:, rows], dtype=np.float32)

    def matrix(self, layer: int, head: int | None, rows) -> np.ndarray:
        """One head (or the head mean for ``head=None``): float32 ``[rows, key]``."""
        if self.kind == "capture":
            return self.obj.pattern(layer, head, rows=rows)
        block = self._layer(layer)
        block = block if head is None else block[head][None]
        return np.asarray(block[:, rows].mean(axis=0), dtype=np.float32)

    # -- the fused pass ---------------------------------------------------------------------------
    def summarize(self, layer: int, options: PassOptions = PassOptions(), keep_means=None,
                  on_block=None) -> LayerSummary:
        """One fused pass over ``layer``: metrics, roles, tiles, thumbnails, column sums (see module doc).

        ``keep_means``: ``None``, ``"float32"`` or ``"float16"``: also keep the head-mean pattern, block
        by block (``LayerSummary.means``), for rollout rows. ``on_block(r0, r1, mean)``: called with each
        block's head-mean rows (float32 ``[r1 - r0, keys]``, valid during the call only), so a caller
        can use the pattern without keeping it.
        """
        import time

        t0 = time.perf_counter()
        _, heads, n = self._sizes()
        run = _LayerRun(heads, n, self.is_causal, options, keep_means, self._tile_source(int(layer)))
        run.on_block = on_block
        for r0, r1 in run.row_blocks():
            run.block(r0, r1)
        out = run.result()
        del run
        # The blocks' scratch (score tiles of growing widths) leaves freed pages that glibc keeps
        # mapped: 0.45 GiB after 30 layers at 8192 tokens, none of it in use. Give them back per layer
        # where that matters (3 ms a call: 5% of a 2048-token layer, for a few MB).
        if n >= TRIM_TOKENS:
            release_free_memory()
        out.seconds = time.perf_counter() - t0
        return out

    def _tile_source(self, layer: int):
        record = self.obj._records[layer] if self.kind == "capture" else None
        if record is not None and hasattr(record, "query"):
            return _ScoreTiles(self.obj, layer, record)
        if record is not None:  # weights the model returned (the fallback recorder)
            return _ProbTiles(record.weights.float().numpy(), self.is_causal)
        return _ProbTiles(self._layer(layer), self.is_causal)


class _ScoreTiles:
    """Tiles of scores from a Capture's queries and keys: the query heads that share a key head
    (all heads without grouped-query attention) as the rows of one matmul, over the keys the block
    can see."""

    from_scores = True
    dtype = np.float32

    def __init__(self, capture, layer, record):
        if record.key.shape[1] != record.query.shape[1]:
            raise ArgumentError("the fused pass needs one key per query; this capture's layer has a cache offset")
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
        self._buffer = None

    def visible(self, r0, r1) -> int:
        """Keys the rows ``r0..r1-1`` can see (the width of their tiles)."""
        return self.capture._visible(self.record, range(r0, r1))

    def tiles(self, r0, r1):
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

    def __init__(self, layer_array, causal):
        # A causal source may still have rows that see later keys (padded rows of returned weights):
        # then every block keeps all keys, so nothing those rows attend to is dropped.
        self.array = layer_array
        self.causal = bool(causal) and not np.triu(layer_array, 1).any()
        self.dtype = np.float64 if layer_array.dtype == np.float64 else np.float32
        self.heads = self.group = layer_array.shape[0]

    def visible(self, r0, r1) -> int:
        return r1 if self.causal else self.array.shape[-1]

    def tiles(self, r0, r1):
        yield 0, np.ascontiguousarray(self.array[:, r0:r1, :self.visible(r0, r1)], dtype=self.dtype)


class _LayerRun:
    """State of one fused pass over a layer: scratch buffers, per-row statistics, pooled tiles."""

    def __init__(self, heads, n, causal, options: PassOptions, keep_means, source):
        self.heads, self.n, self.causal, self.options = heads, n, causal, options
        self.source, self.keep = source, keep_means
        threads = K.num_threads()
        self.stats = np.zeros((heads, n, K.NSTATS))
        # column sums: per thread, float32 for one block of scores (gathered into float64 after it)
        self.colsum = np.zeros((threads, heads, n), np.float32 if source.from_scores else source.dtype)
        self.colsum64 = np.zeros((heads, n))
        self.f = tile_factor(n, options.tile_side or TILE_SIDE)
        self.side = math.ceil(n / self.f)
        self.pool = bool(options.tiles)
        side = self.side if self.pool else 1
        self.tiles = np.zeros((heads, side, side), np.float32)
        self.mean_tile = np.zeros((side, side), np.float32)
        if source.from_scores:
            self.ebuf = np.empty((threads, n), np.float32)
            self.acc = np.empty((threads, n + self.f), np.int32)
            self.acc2 = np.empty((threads, n + self.f), np.int32)
            self.positions = _positions(n)
        self.pair_ptr, self.pair_key, self.pair_rows = _pairs(options.token_ids, n)
        self.means = []
        self.on_block = None
        self.last_mean = np.zeros(n)
        self._mean = np.empty(0, np.float32)
        # The kept pattern lives in one allocation per layer, its blocks are views: thousands of
        # block-sized arrays interleaved with the pass's scratch fragment the heap, which then holds
        # hundreds of MB that nothing uses (measured: +0.45 GiB at 8192 tokens).
        self._store, self._stored = None, 0
        if keep_means is not None:
            size = sum((r1 - r0) * source.visible(r0, r1) for r0, r1 in self.row_blocks())
            self._store = np.empty(size, np.float32 if keep_means == "float32" else np.float16)

    def row_blocks(self):
        """``(r0, r1)`` blocks, starting at multiples of the tile pooling factor, whose tiles (heads x
        rows x visible keys) hold about ``TILE_ELEMENTS`` floats; causal blocks grow as their rows
        see fewer keys."""
        n, f, h, r0 = self.n, self.f, self.source.group, 0
        budget = int(TILE_ELEMENTS)
        while r0 < n:
            if self.causal:  # largest m with h * m * (r0 + m) <= budget
                m = int((-r0 + math.sqrt(r0 * r0 + 4 * budget / h)) / 2)
            else:
                m = budget // (h * n)
            m = max(f, min(m, MAX_BLOCK_ROWS) // f * f)
            yield r0, min(n, r0 + m)
            r0 += m

    def block(self, r0, r1):
        o, src = self.options, self.source
        m, c, mean = r1 - r0, None, None
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
            with _KERNEL_LOCK:
                if src.from_scores:
                    K.head_rows(tile, r0, h0, src.layer_causal, self.causal, src.sinks, lo, hi, int(o.window),
                                self.pair_ptr, self.pair_key, self.f, self.pool, last, self.stats, self.colsum,
                                mean, inv_heads, self.tiles, self.mean_tile, self.ebuf, self.acc, self.acc2,
                                self.positions)
                else:
                    K.prob_rows(tile, r0, self.causal, lo, hi, int(o.window), self.pair_ptr, self.pair_key,
                                self.f, self.pool, self.stats, self.colsum, mean, inv_heads, self.tiles,
                                self.mean_tile)
        if src.from_scores:
            with _KERNEL_LOCK:
                K.flush_columns(self.colsum, self.colsum64, c)
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
        if self._stored + m * c > self._store.size:  # a source wider than planned: still correct
            return np.empty((m, c), self._store.dtype)
        view = self._store[self._stored:self._stored + m * c].reshape(m, c)
        self._stored += m * c
        return view

    def result(self) -> LayerSummary:
        from .reduce import to_uint8

        colsum = self.colsum64 if self.source.from_scores else self.colsum.sum(0)
        metrics, roles = _reduce(self.stats, colsum, self.n, self.causal, self.options, self.pair_rows)
        tiles = mean_tile = thumbs = mean_thumb = None
        if self.pool:
            if self.options.tile_dtype == "float16":
                tiles, mean_tile = _half(self.tiles), _half(self.mean_tile)
            else:
                tiles, mean_tile = self.tiles, self.mean_tile
            f2 = pool_factor(self.side, THUMB_SIZE)
            thumbs = to_uint8(K.pool2d(self.tiles, f2))
            mean_thumb = to_uint8(K.pool2d(self.mean_tile[None], f2))[0]
        return LayerSummary(metrics=metrics, roles=roles, tiles=tiles, mean_tile=mean_tile, thumbs=thumbs,
                            mean_thumb=mean_thumb, colsum_mean=colsum.mean(0), last_mean=self.last_mean,
                            means=self.means)


@functools.lru_cache(maxsize=2)
def _positions(n: int) -> np.ndarray:
    """float32 ``0 .. n - 1`` (read-only, shared by every pass over ``n`` tokens)."""
    out = np.arange(n, dtype=np.float32)
    out.flags.writeable = False
    return out


def _half(a: np.ndarray) -> np.ndarray:
    """float32 -> float16 (torch's conversion is vectorised; numpy's is several times slower)."""
    return torch.from_numpy(np.ascontiguousarray(a)).half().numpy()


@functools.lru_cache(maxsize=4)
def _pairs(token_ids, n: int):
    """``(pair_ptr [n+1], pair_key, rows)``: for each query row the earlier positions holding the same
    token (CSR, by row), and the rows that have any. No ids: no pairs (``rows`` is None)."""
    if token_ids is None:
        return np.zeros(n + 1, dtype=np.int64), np.zeros(1, dtype=np.int64), None
    ids = np.asarray(token_ids).ravel()
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]]) if ids.size else np.zeros(0, int)
    lengths = np.diff(np.r_[starts, ids.size])
    qi, kj = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for size in np.unique(lengths[lengths > 1]):  # a loop over run lengths, not over tokens
        runs = order[starts[lengths == size][:, None] + np.arange(size)]  # [runs, size] positions, ascending
        a, b = np.triu_indices(size, 1)
        qi.append(runs[:, b].ravel())
        kj.append(runs[:, a].ravel())
    qi, kj = np.concatenate(qi), np.concatenate(kj)
    by_row = np.argsort(qi, kind="stable")
    qi, kj = qi[by_row], kj[by_row]
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.add.at(ptr, qi + 1, 1)
    rows = np.unique(qi)
    return np.cumsum(ptr), np.r_[kj, 0].astype(np.int64), (rows if rows.size else None)


def row_weights(n: int, causal: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(visible [n] int, weights [n] float64 summing to 1)``: rows are averaged over the
    *informative* rows, those with at least two visible keys (all rows when none has two)."""
    visible = np.arange(1, n + 1) if causal else np.full(n, n)
    weights = (visible >= 2).astype(np.float64)
    if not weights.any():
        weights[:] = 1.0
    return visible, weights / weights.sum()


def _reduce(stats, colsum, n, causal, options: PassOptions, pair_rows):
    """Per-row statistics ``[head, row, NSTATS]`` -> ``({metric: [head]}, {role: [head]})`` (formulas:
    docs/metrics.md)."""
    stats = np.ascontiguousarray(np.moveaxis(stats, -1, 0))  # [NSTATS, head, row]: the same sums as before
    visible, w = row_weights(n, causal)
    ent, dist = stats[K.ENTROPY], stats[K.DISTANCE]
    logv = np.log(visible)
    norm = np.clip(np.divide(ent, logv, out=np.zeros_like(ent), where=logv > 0), 0.0, 1.0)
    if causal and n >= 2:  # row 0 (one visible key, key 0) is not informative: take it out
        colmass = colsum.copy()
        colmass[:, 0] -= stats[K.SINK][:, 0]
        colmass /= n - 1
    else:
        colmass = colsum / (n if n >= 2 else 1)
    k = min(int(options.top_k), n)
    top = np.partition(colmass, n - k, axis=-1)[:, n - k:]
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
    return metrics, roles


_PRELOAD: threading.Thread | None = None


def preload() -> None:
    """Load (or compile) the kernels on a daemon thread, once per process: ``capture`` calls it, so that
    while the model runs, numba reads its cache (about 0.5 s), and the first view does not wait for it."""
    global _PRELOAD
    if _PRELOAD is None:
        _PRELOAD = threading.Thread(target=warm_up, name="attnwidget-preload", daemon=True)
        _PRELOAD.start()


def warm_up() -> float:
    """Compile the fused pass's kernels now (numba caches them on disk, so this costs once per
    installation: about a minute on 2 cores) by running it on a small synthetic capture and on
    arrays; returns the seconds it took. ``make setup`` calls it, so the first ``show()`` is fast."""
    import time

    from .capture import Capture
    from ._recorder import QKRecord
    from ._summary import Summary, default_options

    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(0)
    n, heads = 40, 4
    records = [QKRecord(f"layers.{i}", torch.randn(heads, n, 8, generator=gen), torch.randn(2, n, 8, generator=gen),
                        -1, True, 0.125) for i in range(2)]
    ends = np.arange(1, n + 1)
    cap = Capture(records=records, masks=[], token_ids=np.arange(n) % 7, tokens=["x"] * n,
                  offsets=np.stack([ends - 1, ends], 1), special=np.zeros(n, bool), generated=np.zeros(n, bool),
                  partial=np.zeros(n, bool), text="x" * n, model_name="warm-up", is_causal=True, num_heads=heads)
    Summary(cap, default_options(cap), keep_means=True).run()
    logits = np.random.default_rng(0).standard_normal((2, heads, n, n))
    logits[..., np.triu(np.ones((n, n), dtype=bool), 1)] = -np.inf
    patterns = np.exp(logits - logits.max(-1, keepdims=True))
    patterns /= patterns.sum(-1, keepdims=True)
    for array in (patterns.astype(np.float32), patterns):
        Summary(array, PassOptions(token_ids=tuple(range(n)))).run()
    return time.perf_counter() - t0
