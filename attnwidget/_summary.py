"""The fused pass of every layer of one capture, computed once and shared by every reader.

A :class:`Summary` holds the :class:`~attnwidget._engine.LayerSummary` of each layer already passed
over. The widget, the explorer's panels, ``compute_metrics``, ``head_roles``, the analyses and rollout
rows all ask it for layers, so a layer's patterns are computed once per capture, whoever asks first:

* :meth:`Summary.layer` computes one layer now (or waits for the thread already computing it);
* :meth:`Summary.run` computes the missing layers in order, with a ``stop`` event and a callback
  after each layer: the widget runs it on a background thread so the first view does not wait;
* the readers (:meth:`metrics`, :meth:`roles`, :meth:`thumbnails`, :meth:`tile`) return what is ready,
  with NaN or blank where a layer is pending.

The head-mean pattern of each layer (what rollout rows multiply) is kept when the summary is made
with ``keep_means=True``, in float32 when all layers fit :func:`means_budget`, else in float16 for as
many layers as fit; rollout rows recompute the others (:meth:`Summary.rollout_rows`).

Summaries of a Capture with the default options are cached on the Capture (:func:`summary_for`);
an array's are not (arrays can change in place).

Cross-attention (``[n, n_keys]``, queries and keys from two sequences) is summarised like any layer,
but has no rollout: no head-mean pattern is kept for it, and :meth:`Summary.rollout_rows` refuses
(:data:`attnwidget._engine.CROSS_ROLLOUT`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from ._engine import Engine, LayerSummary, PassOptions, check_rollout
from ._memory import available_memory, release_free_memory

if TYPE_CHECKING:
    from ._progress import ProgressBar
    from ._types import AttentionSource, StopFlag

#: Upper bound on the bytes of head-mean patterns a summary keeps for rollout rows (also at most a
#: quarter of the memory available). 30 causal layers of 8192 tokens in float16 take 1.9 GiB: 19 are
#: kept, and a rollout row recomputes the other 11 (about 1 s each), keeping peak RSS under 4 GB.
MEANS_BUDGET = int(1.25 * 2**30)


def means_budget() -> int:
    available = available_memory()
    return MEANS_BUDGET if available is None else int(min(MEANS_BUDGET, available // 4))


def layer_elements(n: int, causal: bool, n_keys: int | None = None) -> int:
    """Floats of one layer's head-mean pattern as the pass keeps it (causal: the lower triangle), for
    ``n`` query rows over ``n_keys`` keys (default ``n``)."""
    return n * (n + 1) // 2 if causal else n * (n if n_keys is None else n_keys)


class Summary:
    """Per-layer results of the fused pass over one source (see the module docstring)."""

    keep_dtype: str | None  # "float32" or "float16": the kept head means' type (None: none kept)
    keep_layers: int  # how many layers' head means are kept at most

    def __init__(self, source: AttentionSource | Engine, options: PassOptions = PassOptions(), *,
                 keep_means: bool = False) -> None:
        self.engine = source if isinstance(source, Engine) else Engine(source)
        self.options = options
        self.num_layers = self.engine.num_layers
        self._layers: dict[int, LayerSummary] = {}
        self._busy: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self.keep_dtype, self.keep_layers = None, 0
        if keep_means and not self.engine.is_cross:  # kept for rollout rows, which cross-attention has not
            per = layer_elements(self.engine.num_tokens, self.engine.is_causal)
            budget = means_budget()
            if 4 * per * self.num_layers <= budget:
                self.keep_dtype, self.keep_layers = "float32", self.num_layers
            else:
                self.keep_dtype, self.keep_layers = "float16", min(self.num_layers, budget // (2 * per))
        self.seconds = 0.0

    # -- computing --------------------------------------------------------------------------------
    @property
    def done(self) -> list[int]:
        with self._lock:
            return sorted(self._layers)

    def complete(self) -> bool:
        return len(self._layers) == self.num_layers

    def _keep_for(self, layer: int) -> str | None:
        if self.keep_dtype is None:
            return None
        kept = sum(1 for s in self._layers.values() if s.means)
        return self.keep_dtype if kept < self.keep_layers else None

    def layer(self, layer: int) -> LayerSummary:
        """The summary of ``layer``, computed now unless it is ready (or being computed elsewhere)."""
        while True:
            with self._lock:
                if layer in self._layers:
                    return self._layers[layer]
                event = self._busy.get(layer)
                if event is None:
                    event = self._busy[layer] = threading.Event()
                    keep = self._keep_for(layer)
                    break
            event.wait()  # another thread is computing it
        try:
            result = self.engine.summarize(layer, self.options, keep_means=keep)
            with self._lock:
                self._layers[layer] = result
                self.seconds += result.seconds
            return result
        finally:
            with self._lock:
                self._busy.pop(layer, None)
            event.set()

    def run(self, order: Iterable[int] | None = None, *, stop: StopFlag | None = None,
            on_layer: Callable[[int, LayerSummary], object] | None = None,
            progress: ProgressBar | None = None) -> bool:
        """Compute the missing layers (``order``: which first; default 0, 1, ...). ``on_layer(layer,
        summary)`` runs after each; ``progress`` is a tqdm-like bar updated per layer. Returns False
        when ``stop`` was set before every layer was done."""
        order = list(range(self.num_layers)) if order is None else list(order)
        for layer in order:
            if stop is not None and stop.is_set():
                return False
            if layer in self._layers:
                continue
            result = self.layer(layer)
            if progress is not None:
                progress.update(1)
            if on_layer is not None:
                on_layer(layer, result)
        return True

    def release_means(self) -> None:
        """Drop the kept head-mean patterns (the statistics stay); rollout rows then recompute them."""
        with self._lock:
            for layer, summary in list(self._layers.items()):
                if summary.means:
                    self._layers[layer] = LayerSummary(**{**summary.__dict__, "means": []})
            self.keep_dtype, self.keep_layers = None, 0
        release_free_memory()

    def eta(self) -> float | None:
        """Seconds left for the missing layers, from the time the computed ones took (None: unknown)."""
        with self._lock:
            done = len(self._layers)
            if not done:
                return None
            return self.seconds / done * (self.num_layers - done)

    # -- reading ----------------------------------------------------------------------------------
    def _stack(self, field: str, name: str) -> np.ndarray:
        heads = self.engine.num_heads
        out = np.full((self.num_layers, heads), np.nan)
        with self._lock:
            for layer, s in self._layers.items():
                out[layer] = getattr(s, field)[name]
        return out

    def metrics(self) -> dict[str, np.ndarray]:
        """``{metric: [layer, head]}`` (NaN rows for layers not computed yet)."""
        from .metrics import FUSED_METRICS

        return {name: self._stack("metrics", name) for name in FUSED_METRICS}

    def roles(self) -> dict[str, np.ndarray]:
        from .heads import ROLES

        return {name: self._stack("roles", name) for name in ROLES}

    def thumbnails(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(thumbs [L, H, sq, sk] uint8, layer means [L, sq, sk] uint8, ready [L] bool)``; blank when
        pending. Square attention has square thumbnails (``sq == sk``); a rectangle's are pooled per
        axis, each to at most ``THUMB_SIZE`` cells."""
        ready = np.zeros(self.num_layers, dtype=bool)
        first = next(iter(self._layers.values()), None)
        if first is None or first.thumbs is None:
            raise RuntimeError("no layer with tiles is ready yet")
        shape = first.thumbs.shape[-2:]
        thumbs = np.zeros((self.num_layers, self.engine.num_heads) + shape, np.uint8)
        means = np.zeros((self.num_layers,) + shape, np.uint8)
        with self._lock:
            for layer, summary in self._layers.items():
                assert summary.thumbs is not None and summary.mean_thumb is not None  # the options make tiles
                thumbs[layer], means[layer], ready[layer] = summary.thumbs, summary.mean_thumb, True
        return thumbs, means, ready

    def tile(self, layer: int, head: int | None) -> np.ndarray:
        """The whole-sequence heatmap tile of one head (or the mean): float16 ``[Tq, Tk]`` (``Tq == Tk``
        for square attention)."""
        summary = self.layer(layer)
        assert summary.tiles is not None and summary.mean_tile is not None  # the options make tiles
        return summary.mean_tile if head is None else summary.tiles[head]

    # -- rollout rows -----------------------------------------------------------------------------
    def rollout_rows(self, targets: Iterable[int], residual: float = 0.5, layers: Iterable[int] | None = None,
                     progress: ProgressBar | None = None) -> np.ndarray:
        """Rows ``targets`` of attention rollout (head mean, ``residual * I`` mixed in, rows
        renormalised), float64 ``[k, n]``: row vectors pushed from the top layer down through each
        layer's head-mean pattern, kept ones where the summary has them, recomputed (float32,
        transiently) where not. Exact to float32 rounding of the kept patterns (float16 when kept as
        such: about 1e-3 relative). Cross-attention has none: :class:`~attnwidget.errors.ArgumentError`."""
        check_rollout(self.engine)
        n = self.engine.num_tokens
        chosen = list(range(self.num_layers)) if layers is None else list(layers)
        targets = [int(t) for t in targets]
        vectors = np.zeros((len(targets), n))
        vectors[np.arange(len(targets)), targets] = 1.0
        reach = max(targets) + 1 if self.engine.is_causal else n  # causal: rows after the targets never matter
        for layer in reversed(chosen):
            with self._lock:
                summary = self._layers.get(layer)
            if summary is not None and summary.means:
                vectors = _push(vectors, summary.means, residual, reach)
            else:  # not kept: push each block of the head mean as the pass makes it, keep none of it
                out = np.zeros_like(vectors)
                fresh = self.engine.summarize(
                    layer, self.options, on_block=lambda r0, r1, mean: _push_block(vectors, out, r0, r1, mean,
                                                                                   residual, reach))
                vectors = out
                with self._lock:  # the statistics are worth keeping
                    if layer not in self._layers:
                        self._layers[layer] = fresh
                        self.seconds += fresh.seconds
            if progress is not None:
                progress.update(1)
        if self.engine.is_causal:
            for i, t in enumerate(targets):
                vectors[i, t + 1:] = 0.0
        return vectors


def _push(vectors: np.ndarray, blocks: Iterable[tuple[int, int, np.ndarray]], residual: float,
          reach: int) -> np.ndarray:
    """``V @ M`` for ``M = rownorm(residual * I + (1 - residual) * A)``, ``A`` given as row blocks."""
    out = np.zeros_like(vectors)
    for r0, r1, block in blocks:
        _push_block(vectors, out, r0, r1, block, residual, reach)
    return out


def _push_block(vectors: np.ndarray, out: np.ndarray, r0: int, r1: int, block: np.ndarray, residual: float,
                reach: int) -> None:
    """Add rows ``r0..r1-1`` of ``M`` (their head means ``block``) to ``out += V @ M``."""
    import torch

    if r0 >= reach:
        return
    part = vectors[:, r0:r1]
    if not part.any():
        return
    a = torch.from_numpy(np.ascontiguousarray(block)).double().numpy()
    denom = (1.0 - residual) * a.sum(-1) + residual
    weighted = np.divide(part, denom, out=np.zeros_like(part), where=denom > 0)
    out[:, :a.shape[1]] += (1.0 - residual) * (weighted @ a)
    out[:, r0:r1] += residual * weighted


_CACHE_LOCK = threading.Lock()


def summary_for(obj: AttentionSource, options: PassOptions | None = None, *, keep_means: bool = False) -> Summary:
    """The shared :class:`Summary` of a Capture (cached on it per options), or a new one for an array."""
    options = options or default_options(obj)
    if not (hasattr(obj, "_records") or getattr(obj, "caches_summaries", False)):
        return Summary(obj, options, keep_means=keep_means)
    with _CACHE_LOCK:
        cache = obj.__dict__.setdefault("_summaries", {})
        summary = cache.get(options)
        wants_means = keep_means and not (summary is None or summary.engine.is_cross)  # cross: none to keep
        if summary is None or (wants_means and summary.keep_dtype is None):
            fresh = Summary(obj, options, keep_means=keep_means)
            if summary is not None:  # upgrade: keep the statistics already computed
                fresh._layers.update({k: v for k, v in summary._layers.items()})
                fresh.seconds = summary.seconds
            summary = cache[options] = fresh
        return summary


def default_options(obj: object, **overrides: Any) -> PassOptions:
    """The package's default metric and role options, with the capture's token ids for the repeat roles."""
    ids = getattr(obj, "token_ids", None)
    token_ids = None if ids is None else tuple(int(i) for i in np.asarray(ids).ravel())
    return PassOptions(**{"token_ids": token_ids, **overrides})


def estimate_seconds(engine: Engine, layers: int | None = None) -> float:
    """A rough size-based estimate of a fused pass (2-core laptop speed), for progress decisions."""
    n, heads = engine.num_tokens, engine.num_heads
    layers = engine.num_layers if layers is None else layers
    elements = layers * heads * (layer_elements(n, engine.is_causal, engine.n_keys))
    return elements * 1.8e-9 + layers * 0.002

