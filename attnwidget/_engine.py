"""The pattern engine: every reader of attention patterns goes through here.

:class:`Engine` wraps a Capture (queries and keys: patterns are recomputed), a Capture-like object
with only ``patterns(layers)``, or a ``[layer, head, query, key]`` array, and offers two ways in:

* **The fused layer pass** (:meth:`Engine.summarize`): one pass over a layer computes each score
  once, in cache-sized tiles of ``heads x rows x visible keys`` (a causal block stops at its last
  row: no padding to ``n``), and fills, from those tiles, everything the widget and the explorer
  need: every metric, every head-role score, max-pooled heatmap tiles of each head and of the head
  mean (the grid's thumbnails are pooled from them), the column sums, and optionally the head-mean
  pattern itself, kept for rollout rows. Its inner loops are in :mod:`attnwidget._kernels` (compiled
  with numba when the ``flow`` extra is installed, numpy otherwise).
* **Generic row blocks** (:meth:`Engine.blocks`, :meth:`Engine.rows`, :meth:`Engine.heads`,
  :meth:`Engine.matrix`): exact float32 weights ``[head, rows, key]`` for the analyses that need the
  weights themselves (prompt parts, similar heads, pattern match, zoomed heatmap tiles). A Capture
  is read in blocks of :func:`block_rows` rows (``heads x rows x tokens <= BLOCK_ELEMENTS``), so no
  caller holds a whole layer; an array is handed out one layer at a time.

Square and rectangular attention
    Self-attention is ``[n, n]``. Cross-attention (an encoder-decoder's decoder reading the encoder's
    output) is ``[n, n_keys]``: ``n`` query rows (the target) over ``n_keys`` keys (the source), never
    causal. Every reader here returns ``[.., n_keys]`` rows; the fused pass pools its tiles per axis,
    and :attr:`Engine.is_cross` marks the sources whose position-based metrics and roles are NaN
    (:data:`POSITIONAL`) and which have no rollout (:func:`check_rollout`). The fused pass itself is
    in :mod:`attnwidget._fused`.

Memory of the fused pass: one tile (``TILE_ELEMENTS`` floats), the head-mean rows of one block,
per-row statistics ``[heads, n, 11]`` float64 and the pooled tiles ``[heads, 256, 256]`` at most.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeGuard

import numpy as np
import torch

from ._arrays import as_attention_array
from ._fused import (  # noqa: F401 (re-exported: the engine's public names)
    _KERNEL_LOCK,
    POSITIONAL,
    POSITIONAL_PATTERNS,
    LayerSummary,
    PassOptions,
    _LayerRun,
    _ProbTiles,
    _RowTiles,
    _ScoreTiles,
    pool_factor,
    row_weights,
    tile_factor,
)
from ._memory import release_free_memory
from .errors import ArgumentError

if TYPE_CHECKING:
    from ._types import AttentionSource, CaptureLike, Rows

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
TRIM_TOKENS = 4096  # from TRIM_TOKENS^2 query-key pairs a layer's pass returns its freed scratch to the system
#: Cells a side of the stored whole-sequence heatmap tiles (each head and the head mean, max-pooled):
#: the overview is drawn in about 420 CSS px, so 256 cells keep every pixel's detail; a zoomed
#: window is recomputed exactly (reduce.TILE_SIDE). Pooling into cells is the one step of the pass
#: that does not vectorise, and it costs 1 / (tokens per cell) of it.
TILE_SIDE = 256  # at most; the tokens per cell are a power of two (tile_factor), so 128 to 256 cells
THUMB_SIZE = 64  # grid thumbnails: at most this many cells a side, pooled from the tiles

#: The refusal of rollout (and attention flow) for cross-attention.
CROSS_ROLLOUT = ("cross-attention has no rollout on its own: rollout chains one part's [token, token] layers, and "
                 "cross-attention's are [target, source] (decoder queries over encoder keys); the encoder's and "
                 "decoder's self-attention each have one, and attnwidget does not invent one across parts")


def block_rows(heads: int, n: int) -> int:
    """Rows per generic block for ``heads`` heads over ``n`` keys: ``max(1, BLOCK_ELEMENTS // (heads * n))``."""
    return max(1, int(BLOCK_ELEMENTS) // max(1, int(heads) * int(n)))


def is_capture(obj: object) -> TypeGuard[CaptureLike]:
    """A Capture-like source (the test of the analysis modules: ``patterns`` and ``is_causal``)."""
    return hasattr(obj, "patterns") and hasattr(obj, "is_causal")


def _recomputes(obj: object) -> TypeGuard[CaptureLike]:
    """A source read in blocks of rows: an attnwidget Capture (recorded queries and keys, scores
    recomputed on demand) or a measure over one (:func:`_row_source`)."""
    return is_capture(obj) and (
        (callable(getattr(obj, "_scores", None)) and hasattr(obj, "_records")) or _row_source(obj))


def _row_source(obj: object) -> bool:
    """A source that computes rows on demand and has its own layer measure for the head-mean slot
    (``mean_rows(layer, rows)``; :class:`attnwidget.contributions.ContributionSource`): the fused pass
    reads its rows in blocks and takes its mean rows for the mean tile, kept means and rollout."""
    return (callable(getattr(obj, "head_patterns", None)) and callable(getattr(obj, "pattern", None))
            and callable(getattr(obj, "mean_rows", None)))


def check_rollout(source: Engine | np.ndarray) -> None:
    """Refuse rollout and attention flow over cross-attention (:data:`CROSS_ROLLOUT`): ``source`` is an
    :class:`Engine` or an attention array ``[layer, head, query, key]``. Rollout multiplies a layer's
    ``[query, key]`` matrix into the next one's keys, which needs both to count the same tokens."""
    if isinstance(source, Engine):
        cross, n, n_keys = source.is_cross, source.num_tokens, source.n_keys
    else:
        n, n_keys = np.shape(source)[-2:]
        cross = n != n_keys
    if cross:
        raise ArgumentError(f"{CROSS_ROLLOUT} (this attention is [query, key] = [{n}, {n_keys}], queries and "
                            "keys from two sequences)")


class Engine:
    """Row-block and fused-pass access to a Capture, a Capture-like source or a ``[L, H, n, n_keys]`` array.

    Sizes: :attr:`num_layers`, :attr:`num_heads`, :attr:`num_tokens` (alias ``n``: query rows) and
    :attr:`n_keys` (keys: ``n`` for self-attention); :attr:`is_cross`: the queries and keys are two
    sequences (a rectangle, or a source that says ``is_cross``)."""

    def __init__(self, obj: AttentionSource) -> None:
        self.obj: Any = obj  # read duck-typed (patterns, head_patterns, num_layers ...) by kind
        self.array: np.ndarray | None = None
        self._shape: tuple[int, ...] | None
        if _recomputes(obj):
            self.kind = "capture"
            self.is_causal = bool(obj.is_causal)
            self._shape = _declared_shape(obj)
        elif is_capture(obj):
            self.kind = "layers"  # a duck-typed source: one layer at a time through patterns([layer])
            self.is_causal = bool(obj.is_causal)
            self._shape = None
            if all(hasattr(obj, a) for a in ("num_layers", "num_heads", "num_tokens")):
                self._shape = _declared_shape(obj)
        else:
            self.kind = "array"
            self.array, self.is_causal = as_attention_array(obj)
            self._shape = tuple(int(s) for s in self.array.shape)
        self._declared_cross = getattr(obj, "is_cross", False) is True

    # -- sizes ------------------------------------------------------------------------------------
    def _sizes(self) -> tuple[int, ...]:
        """``(layers, heads, query rows, keys)``."""
        if self._shape is None:  # learn the shape from the first layer
            self._layer(0)
        assert self._shape is not None  # _layer set it
        return self._shape

    @property
    def num_layers(self) -> int:
        return int(self.obj.num_layers) if self.kind == "layers" else self._sizes()[0]

    @property
    def num_heads(self) -> int:
        return self._sizes()[1]

    @property
    def num_tokens(self) -> int:
        """Query positions (the rows of a pattern)."""
        return self._sizes()[2]

    n = num_tokens

    @property
    def n_keys(self) -> int:
        """Key positions (the columns of a pattern): ``num_tokens`` except for cross-attention."""
        return self._sizes()[3]

    num_keys = n_keys

    @property
    def is_cross(self) -> bool:
        """The queries and keys are two sequences (cross-attention): the pattern is not square, or the
        source says so (``is_cross = True``, for a square cross-attention). Then the positional metrics
        and roles are NaN (:data:`POSITIONAL`) and there is no rollout (:func:`check_rollout`)."""
        return self._declared_cross or self.num_tokens != self.n_keys

    @property
    def step(self) -> int:
        """Rows per generic block: :func:`block_rows` for a Capture, the whole layer otherwise."""
        if self.kind == "capture":
            return block_rows(self.num_heads, self.n_keys)
        return max(1, self.num_tokens)

    # -- generic access ---------------------------------------------------------------------------
    def _layer(self, layer: int) -> np.ndarray:
        """One whole layer ``[head, query, key]`` (array and ``patterns``-only sources; the latter's
        last layer is kept, so the fused pass and a comparison over the same layer read it once)."""
        if self.array is not None:  # kind "array"
            return self.array[layer]
        held = getattr(self, "_held", None)
        if held is None or held[0] != layer:
            held = self._held = (layer, as_attention_array(self.obj, layers=[layer])[0][0])
            # what the source gives is its shape (a duck source may not declare its keys)
            self._shape = (int(self.obj.num_layers),) + tuple(int(s) for s in held[1].shape)
        return held[1]

    def read(self, layer: int, r0: int, r1: int) -> np.ndarray:
        """Query rows ``r0..r1-1`` of ``layer``: float ``[head, r1 - r0, n_keys]`` (one Capture call)."""
        if self.kind == "capture":
            return np.asarray(self.obj.head_patterns(layer, rows=slice(r0, r1)))
        return self._layer(layer)[:, r0:r1]

    def blocks(self, layer: int) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(r0, r1, p [head, r1 - r0, n_keys])`` covering every query row of ``layer`` in order."""
        if self.kind != "capture":
            p = self._layer(layer)
            yield 0, p.shape[1], p
            return
        n, step = self.num_tokens, self.step
        for r0 in range(0, n, step):
            r1 = min(n, r0 + step)
            yield r0, r1, self.read(layer, r0, r1)

    def rows(self, layer: int, index: np.ndarray | list[int]) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(a, b, p [head, b - a, n_keys])``: the rows ``index[a:b]`` of ``layer``, at most
        :attr:`step` rows per Capture call (one whole-layer read for the other sources)."""
        index = np.asarray(index, dtype=np.int64)
        if self.kind != "capture":
            yield 0, index.size, self._layer(layer)[:, index]
            return
        step = self.step
        for a in range(0, index.size, step):
            b = min(index.size, a + step)
            yield a, b, np.asarray(self.obj.head_patterns(layer, rows=index[a:b]))

    def heads(self, layer: int, rows: Rows) -> np.ndarray:
        """All heads of ``layer`` for the given query rows (slice or indices): float32 ``[head, rows, n_keys]``."""
        if self.kind == "capture":
            return self.obj.head_patterns(layer, rows=rows)
        return np.asarray(self._layer(layer)[:, rows], dtype=np.float32)

    def fuse(self, p: np.ndarray, head_fusion: str, layer: int, r0: int, r1: int) -> np.ndarray | None:
        """Rows ``r0..r1-1`` of ``layer`` as a source with its own layer measure (:func:`_row_source`)
        fuses them for ``head_fusion="mean"``: its ``mean_rows``, float64; None for every other source
        and fusion, whose callers take the mean, max or min of the heads' rows ``p`` themselves."""
        if head_fusion == "mean" and _row_source(self.obj):
            return np.asarray(self.obj.mean_rows(layer, slice(r0, r1)), dtype=np.float64)
        return None

    def matrix(self, layer: int, head: int | None, rows: Rows) -> np.ndarray:
        """One head (or the head mean for ``head=None``): float32 ``[rows, n_keys]``."""
        if self.kind == "capture":
            return self.obj.pattern(layer, head, rows=rows)
        block = self._layer(layer)
        block = block if head is None else block[head][None]
        return np.asarray(block[:, rows].mean(axis=0), dtype=np.float32)

    # -- the fused pass ---------------------------------------------------------------------------
    def summarize(self, layer: int, options: PassOptions = PassOptions(), keep_means: str | None = None,
                  on_block: Callable[[int, int, np.ndarray], object] | None = None) -> LayerSummary:
        """One fused pass over ``layer``: metrics, roles, tiles, thumbnails, column sums (see module doc).

        ``keep_means``: ``None``, ``"float32"`` or ``"float16"``: also keep the head-mean pattern, block
        by block (``LayerSummary.means``), for rollout rows. ``on_block(r0, r1, mean)``: called with each
        block's head-mean rows (float32 ``[r1 - r0, keys]``, valid during the call only), so a caller
        can use the pattern without keeping it. A rectangular source (cross-attention) gives per-row
        statistics over its ``n_keys`` keys, ``n_keys`` column sums and tiles pooled per axis; its
        :data:`POSITIONAL` metrics and roles are NaN.
        """
        import time

        t0 = time.perf_counter()
        source = self._tile_source(int(layer))
        _, heads, n, n_keys = self._sizes()
        if self.is_causal and n != n_keys:
            raise ArgumentError(f"causal attention has one key per query; this source says it is causal but "
                                f"its layer {layer} is [query, key] = [{n}, {n_keys}]")
        run = _LayerRun(heads, n, n_keys, self.is_causal, self.is_cross, options, keep_means, source,
                        budget=TILE_ELEMENTS, side=options.tile_side or TILE_SIDE, thumb=THUMB_SIZE,
                        max_rows=MAX_BLOCK_ROWS)
        run.on_block = on_block
        for r0, r1 in run.row_blocks():
            run.block(r0, r1)
        out = run.result()
        del run
        # The blocks' scratch (score tiles of growing widths) leaves freed pages that glibc keeps
        # mapped: 0.45 GiB after 30 layers at 8192 tokens, none of it in use. Give them back per layer
        # where that matters (3 ms a call: 5% of a 2048-token layer, for a few MB).
        if n * n_keys >= TRIM_TOKENS * TRIM_TOKENS:
            release_free_memory()
        out.seconds = time.perf_counter() - t0
        return out

    def _tile_source(self, layer: int) -> _ScoreTiles | _ProbTiles | _RowTiles:
        if _row_source(self.obj):
            return _RowTiles(self.obj, layer)
        record = self.obj._records[layer] if self.kind == "capture" else None
        if record is not None and hasattr(record, "query"):
            return _ScoreTiles(self.obj, layer, record)
        if record is not None:  # weights the model returned (the fallback recorder)
            return _ProbTiles(record.weights.float().numpy(), self.is_causal)
        return _ProbTiles(self._layer(layer), self.is_causal)


def _declared_shape(obj: Any) -> tuple[int, int, int, int]:
    """``(layers, heads, query rows, keys)`` as a Capture(-like) source declares them (keys: ``num_keys``,
    else one per query)."""
    n = int(obj.num_tokens)
    return int(obj.num_layers), int(obj.num_heads), n, int(getattr(obj, "num_keys", n))


_PRELOAD: threading.Thread | None = None


def preload() -> None:
    """Load (or compile) the kernels on a daemon thread, once per process: ``capture`` calls it, so that
    while the model runs, numba is imported and reads its cache (about 0.5 s), and the first view does
    not wait for it. With the numpy backend the thread finds nothing to do."""
    global _PRELOAD
    if _PRELOAD is None:
        _PRELOAD = threading.Thread(target=warm_up, name="attnwidget-preload", daemon=True)
        _PRELOAD.start()


def warm_up() -> float:
    """Compile the fused pass's kernels now (numba caches them on disk, so this costs once per
    installation: about a minute on 2 cores) by running it on a small synthetic capture and on
    arrays; returns the seconds it took. ``make setup`` calls it, so the first ``show()`` is fast.
    Without numba (the numpy backend: nothing to compile) it returns 0.0 at once."""
    import time

    from . import _kernels
    from .capture import Capture
    from ._recorder import QKRecord
    from ._summary import Summary, default_options

    t0 = time.perf_counter()
    if not _kernels.backend().COMPILED:
        return 0.0
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
