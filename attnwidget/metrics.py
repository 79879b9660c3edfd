"""Per-head attention metrics: ``[layer, head, query, key]`` patterns in, ``[layer, head]`` arrays out.

Every function accepts a :class:`~attnwidget.Capture` (read one layer at a time) or a NumPy array of
shape ``[layer, head, query, key]`` whose rows are probability distributions over keys.

Rows and visible keys
    With causal attention, query row ``i`` sees keys ``0..i`` (``v_i = i + 1`` visible keys); with
    bidirectional attention every row sees all ``n`` keys. Per-row values are averaged over the
    *informative* rows, those with at least two visible keys: row 0 of a causal pattern has no choice
    to make (its weight on key 0 is always 1) and is left out. When no row has two visible keys
    (``n == 1``) the single row is used, with the values: entropy 0, normalized entropy 0, sparsity 0,
    coverage 1, mean distance 0, locality 1, focus consistency 1, sink score 1, max weight 1.

The seed article's per-matrix sketches (token loops over a head-averaged matrix) are replaced by
per-head, per-row formulas computed in one fused, row-blocked pass per layer; docs/metrics.md lists them.

Memory
    A Capture is read in blocks of query rows (``attnwidget._blocks``: ``heads x rows x tokens`` at
    most ``BLOCK_ELEMENTS`` floats per read), never a whole layer: every metric is a per-row value
    (kept as ``[head, query]`` float64) or a per-key sum (``[head, key]``), accumulated block by
    block, so one call holds ``O(heads x block x n + heads x n)`` floats. All metrics take one pass
    over the rows (``focus_consistency`` accumulates its column masses during that pass and takes
    the top keys at the end). An array, already in memory, is processed one layer at a time.
"""

from __future__ import annotations

import numpy as np

from ._arrays import as_attention_array
from ._blocks import Source

__all__ = [
    "METRICS",
    "compute_metrics",
    "coverage",
    "entropy",
    "focus_consistency",
    "locality",
    "max_weight",
    "mean_distance",
    "pattern_match",
    "reference_pattern",
    "sink_score",
    "sparsity",
    "summarize_layers",
]

#: Names understood by :func:`compute_metrics` (``"pattern_match"`` also needs ``expected``).
METRICS = (
    "entropy",
    "normalized_entropy",
    "sparsity",
    "coverage",
    "mean_distance",
    "locality",
    "focus_consistency",
    "sink_score",
    "max_weight",
    "pattern_match",
)
REFERENCE_PATTERNS = ("previous", "diagonal", "first", "uniform", "local")

_BLOCK_ELEMENTS = 1 << 18  # ~1 MiB of float32 per row block: stays in cache across the fused passes
_LN2 = float(np.log(2.0))


# ---------------------------------------------------------------------------------------------------
# shared helpers (also used by heads.py)


def _is_capture(obj) -> bool:
    return hasattr(obj, "patterns") and hasattr(obj, "is_causal")


def _iter_layers(obj):
    """Yield ``(layer, patterns [head, query, key], is_causal)``, one whole layer in memory at a time.

    Kept for callers outside the package; the analysis functions read a Capture in row blocks
    (``attnwidget._blocks.Source``) instead.
    """
    if _is_capture(obj):
        for layer in range(int(obj.num_layers)):
            arr, causal = as_attention_array(obj, layers=[layer])
            yield layer, arr[0], causal
    else:
        arr, causal = as_attention_array(obj)
        for layer in range(arr.shape[0]):
            yield layer, arr[layer], causal


def _row_weights(n: int, causal: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(visible [n] int, weights [n] float64 summing to 1)`` over the informative rows."""
    visible = np.arange(1, n + 1) if causal else np.full(n, n)
    weights = (visible >= 2).astype(np.float64)
    if not weights.any():
        weights[:] = 1.0
    return visible, weights / weights.sum()


def _row_entropy(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``-sum_j x log x`` over the last axis (natural log, ``0 log 0 = 0``: zeros are raised to the
    smallest normal float before the log, and multiplied by 0). ``out``: scratch of ``x``'s shape."""
    t = np.maximum(x, np.finfo(x.dtype).tiny, out=out)
    np.log(t, out=t)
    return -np.einsum("...c,...c->...", t, x)


def _count(mask: np.ndarray) -> np.ndarray:
    """Number of True along the last axis (faster than ``mask.sum(-1)``, which widens every bool)."""
    return mask.view(np.uint8).sum(-1, dtype=np.int32)


def _check_threshold(name: str, value) -> float:
    value = float(value)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be in (0, 1]; got {value}. Attention weights lie in [0, 1].")
    return value


# ---------------------------------------------------------------------------------------------------
# reference patterns and pattern match


def reference_pattern(name: str, n: int, *, causal: bool = True, window: int = 3) -> np.ndarray:
    """A named ``[n, n]`` float64 pattern whose rows are distributions.

    ``"previous"``: row ``i`` on key ``i - 1`` (row 0 on itself); ``"diagonal"``: on key ``i``;
    ``"first"``: on key 0; ``"uniform"``: uniform over the visible keys (``0..i`` when ``causal``, all
    ``n`` otherwise); ``"local"``: uniform over keys ``max(0, i - window + 1)..i``.
    """
    _check_reference(name, window)
    return _reference_rows(name, np.arange(n), n, causal, int(window))


def _check_reference(name: str, window) -> None:
    if name not in REFERENCE_PATTERNS:
        raise ValueError(f"unknown pattern {name!r}; expected one of {', '.join(REFERENCE_PATTERNS)}.")
    if int(window) < 1:
        raise ValueError(f"window must be a positive number of tokens; got {window}.")


def _reference_rows(name: str, rows: np.ndarray, n: int, causal: bool, window: int) -> np.ndarray:
    """Rows ``rows`` of :func:`reference_pattern` (the same values), ``[len(rows), n]`` float64."""
    i = np.asarray(rows)[:, None]
    j = np.arange(n)[None, :]
    if name == "previous":
        mask = j == np.maximum(i - 1, 0)
    elif name == "diagonal":
        mask = j == i
    elif name == "first":
        mask = np.broadcast_to(j == 0, (i.shape[0], n))
    elif name == "uniform":
        mask = j <= i if causal else np.ones((i.shape[0], n), dtype=bool)
    else:
        mask = (j <= i) & (j > i - int(window))
    out = mask.astype(np.float64)
    return out / out.sum(-1, keepdims=True)


def _expected_rows(expected, shape, causal: bool, window: int):
    """Return ``(get(layer, r0, r1) -> [1 or H, r1 - r0, n] float64, is_causal_pattern)`` for ``expected``.

    Only the requested query rows are built, normalised or read (a Capture in row blocks), so the
    expected pattern costs no more memory than the attention block it is compared with.
    """
    num_layers, heads, n = shape
    if isinstance(expected, str):
        _check_reference(expected, window)
        cache = {}

        def named(layer, r0, r1):
            if (r0, r1) not in cache:  # arrays: one full block, the same for every layer
                cache.clear()
                cache[(r0, r1)] = _reference_rows(expected, np.arange(r0, r1), n, causal, window)[None]
            return cache[(r0, r1)]

        return named, causal
    if _is_capture(expected):
        if (int(expected.num_layers), int(expected.num_heads), int(expected.num_tokens)) != shape:
            raise ValueError(
                "expected capture has [layer, head, token] = "
                f"{[expected.num_layers, expected.num_heads, expected.num_tokens]}; the attention has {list(shape)}."
            )
        src, held = Source(expected), {}

        def captured(layer, r0, r1):
            if src.kind == "rows":
                return _normalize_rows(src.read(layer, r0, r1))
            if layer not in held:  # a patterns-only source: one layer read, kept while it is used
                held.clear()
                held[layer] = src._layer(layer)
            return _normalize_rows(held[layer][:, r0:r1])

        return captured, False
    if hasattr(expected, "detach"):
        expected = expected.detach().float().cpu().numpy()
    if not isinstance(expected, np.ndarray):
        raise TypeError(
            "expected must be a pattern name, an array of shape [query, key] or [layer, head, query, key], "
            f"or a Capture; got {type(expected).__name__}."
        )
    if expected.ndim == 2 and expected.shape == (n, n):
        return (lambda layer, r0, r1: _normalize_rows(expected[r0:r1])[None]), False
    if expected.ndim == 4 and expected.shape == (num_layers, heads, n, n):
        return (lambda layer, r0, r1: _normalize_rows(expected[layer, :, r0:r1])), False
    raise ValueError(
        f"expected has shape {tuple(expected.shape)}; use [query, key] = {(n, n)} or "
        f"[layer, head, query, key] = {(num_layers, heads, n, n)}, or a pattern name "
        f"({', '.join(REFERENCE_PATTERNS)})."
    )


def _normalize_rows(pattern) -> np.ndarray:
    """Rows as distributions (float64); row by row, so a block of rows gives the same values."""
    pattern = np.asarray(pattern, dtype=np.float64)
    if np.any(pattern < 0) or not np.all(np.isfinite(pattern)):
        raise ValueError("expected pattern must be finite and non-negative.")
    sums = pattern.sum(-1, keepdims=True)
    if np.any(sums <= 0):
        raise ValueError("every row of the expected pattern needs some weight; found an all-zero row.")
    # rows that already sum to 1 up to rounding are kept as they are (a pattern matches itself exactly)
    return np.where(np.abs(sums - 1.0) > 1e-6, pattern / sums, pattern)


def _kl_to_mix(x: np.ndarray, total: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``sum_j x log(2x / (x + y))`` over the last axis, with ``total = x + y``; exactly 0 when ``x == y``."""
    ratio = np.add(x, x, out=out)
    ratio /= total
    np.maximum(ratio, np.finfo(x.dtype).tiny, out=ratio)
    np.log(ratio, out=ratio)
    return np.einsum("...c,...c->...", ratio, x)


# ---------------------------------------------------------------------------------------------------
# the fused per-layer pass, fed block by block


class _LayerStats:
    """Per-row values of the requested metrics for one layer, filled by :meth:`add` block by block.

    ``add(r0, p, expected)`` takes query rows ``r0..r0+m-1`` (``p`` ``[head, m, key]``, all keys; in any
    order, each row once) and works through them in cache-sized sub-blocks; :meth:`result` turns the
    per-row values into ``{name: [head] float64}``. Memory: a few ``[head, n]`` float64 arrays plus one
    sub-block of scratch. ``expected`` (``[1 or H, m, key]``) is needed for ``"pattern_match"``;
    ``js_causal``: whether both the attention and the expected pattern are causal (only the visible
    keys are compared then).
    """

    def __init__(self, heads, n, causal, names, sparsity_threshold=0.01, coverage_threshold=0.01, top_k=3,
                 js_causal=None):
        self.heads, self.n, self.causal = heads, n, bool(causal)
        self.js_causal = self.causal if js_causal is None else bool(js_causal)
        self.visible, self.weights = _row_weights(n, causal)
        self.want = want = set(names)
        self.sparsity_threshold, self.coverage_threshold, self.top_k = sparsity_threshold, coverage_threshold, top_k
        need_entropy = bool(want & {"entropy", "normalized_entropy"})
        need_distance = bool(want & {"mean_distance", "locality"})
        self.ent = np.empty((heads, n)) if need_entropy else None
        self.below = np.empty((heads, n)) if "sparsity" in want else None
        self.above = np.empty((heads, n)) if "coverage" in want else None
        self.dist = np.empty((heads, n)) if need_distance else None
        self.peak = np.empty((heads, n)) if "max_weight" in want else None
        self.colmass = np.zeros((heads, n)) if "focus_consistency" in want else None
        self.sink = np.empty((heads, n)) if "sink_score" in want else None
        self.js = np.empty((heads, n)) if "pattern_match" in want else None
        self.keys = np.arange(n)
        self._scratch = self._flags = self._w = None

    def _buffers(self, x):
        if self._scratch is None or self._scratch.dtype != x.dtype or self._scratch.size < x.size:
            self._scratch, self._flags = np.empty(x.size, dtype=x.dtype), np.empty(x.size, dtype=bool)
        return self._scratch[: x.size].reshape(x.shape), self._flags[: x.size].reshape(x.shape)

    def add(self, r0: int, p: np.ndarray, expected: np.ndarray | None = None) -> None:
        heads, m, n = p.shape
        causal = self.causal
        if self.colmass is not None and (self._w is None or self._w.dtype != p.dtype):
            self._w = self.weights.astype(p.dtype)
        if self.sink is not None:
            self.sink[:, r0:r0 + m] = p[:, :, 0]
        if self.js is not None:
            expected = expected.astype(p.dtype, copy=False)
        keys = self.keys
        step = max(1, min(n, _BLOCK_ELEMENTS // max(1, heads * n)))
        for s0 in range(0, m, step):
            s1 = min(m, s0 + step)
            g0, g1 = r0 + s0, r0 + s1  # rows of the layer
            cols = g1 if causal else n
            x = p[:, s0:s1, :cols]
            rows = keys[g0:g1]
            buf, mask = self._buffers(x)
            if self.ent is not None:
                self.ent[:, g0:g1] = _row_entropy(x, out=buf)
            if self.below is not None:
                count = _count(np.less(x, self.sparsity_threshold, out=mask))
                # a causal row's masked keys (exact zeros, all below the threshold) are not visible
                self.below[:, g0:g1] = count - (cols - 1 - rows) if causal else count
            if self.above is not None:
                self.above[:, g0:g1] = _count(np.greater(x, self.coverage_threshold, out=mask))
            if self.dist is not None:
                offsets = np.abs(rows[:, None] - keys[None, :cols]).astype(p.dtype)
                self.dist[:, g0:g1] = np.einsum("hrc,rc->hr", x, offsets)
            if self.peak is not None:
                self.peak[:, g0:g1] = x.max(-1)
            if self.colmass is not None:
                self.colmass[:, :cols] += np.matmul(self._w[g0:g1], x)
            if self.js is not None:
                jcols = g1 if self.js_causal else n
                xj = p[:, s0:s1, :jcols]
                yj = np.broadcast_to(expected[:, s0:s1, :jcols], xj.shape)
                total = np.maximum(xj + yj, np.finfo(p.dtype).tiny)
                scratch = np.empty_like(total)
                self.js[:, g0:g1] = (_kl_to_mix(xj, total, scratch) + _kl_to_mix(yj, total, scratch)) / (2 * _LN2)

    def result(self) -> dict[str, np.ndarray]:
        want, weights, visible, n = self.want, self.weights, self.visible, self.n
        out: dict[str, np.ndarray] = {}
        if "entropy" in want:
            out["entropy"] = self.ent @ weights
        if "normalized_entropy" in want:
            logv = np.log(visible)
            norm = np.divide(self.ent, logv, out=np.zeros_like(self.ent), where=logv > 0)  # one visible key: 0
            out["normalized_entropy"] = np.clip(norm, 0.0, 1.0) @ weights
        if "sparsity" in want:
            out["sparsity"] = (self.below / visible) @ weights
        if "coverage" in want:
            out["coverage"] = (self.above / visible) @ weights
        if "mean_distance" in want:
            out["mean_distance"] = self.dist @ weights
        if "locality" in want:
            out["locality"] = (1.0 / (1.0 + self.dist)) @ weights
        if "focus_consistency" in want:
            k = min(int(self.top_k), n)
            top = np.partition(self.colmass, n - k, axis=-1)[:, n - k :]
            out["focus_consistency"] = np.clip(top.sum(-1), 0.0, 1.0)
        if "sink_score" in want:
            out["sink_score"] = self.sink @ weights
        if "max_weight" in want:
            out["max_weight"] = self.peak @ weights
        if "pattern_match" in want:
            out["pattern_match"] = 1.0 - np.clip(self.js, 0.0, 1.0) @ weights
        return out


def _layer_metrics(p, causal, names, sparsity_threshold, coverage_threshold, top_k) -> dict[str, np.ndarray]:
    """All requested metrics of one layer ``p`` [head, query, key] as ``{name: [head] float64}``."""
    heads, n, _ = p.shape
    stats = _LayerStats(heads, n, causal, [m for m in names if m != "pattern_match"], sparsity_threshold,
                        coverage_threshold, top_k)
    stats.add(0, p)
    return stats.result()


def _layer_js(p: np.ndarray, q: np.ndarray, causal: bool, weights: np.ndarray) -> np.ndarray:
    """Weighted mean over rows of the base-2 Jensen-Shannon divergence; ``p`` [H,n,n], ``q`` [1|H,n,n].

    Uses ``JSD = (KL(p || m) + KL(q || m)) / 2`` term by term, so equal rows give exactly 0.
    """
    heads, n, _ = p.shape
    stats = _LayerStats(heads, n, causal, ["pattern_match"])
    stats.weights = weights
    stats.add(0, p, q)
    return 1.0 - stats.result()["pattern_match"]


def compute_metrics(
    attn,
    names=None,
    *,
    sparsity_threshold: float = 0.01,
    coverage_threshold: float = 0.01,
    top_k: int = 3,
    expected=None,
    window: int = 3,
) -> dict[str, np.ndarray]:
    """Several metrics in one pass per layer: ``{name: [layer, head] float64}``.

    ``attn``: a Capture or a ``[layer, head, query, key]`` array. ``names``: any of :data:`METRICS`;
    default all of them, with ``"pattern_match"`` only when ``expected`` is given (see
    :func:`pattern_match` for ``expected`` and ``window``). A Capture is read in blocks of query rows
    (never a whole layer; an expected Capture too, the same rows at a time), accumulating per-row
    values and per-key sums: one pass over each layer, ``O(heads x block x n + heads x n)`` memory.
    The definitions are in the docstrings of the single-metric functions and in docs/metrics.md.
    """
    if names is None:
        names = [m for m in METRICS if m != "pattern_match" or expected is not None]
    elif isinstance(names, str):
        names = [names]
    names = list(dict.fromkeys(names))
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r}; expected any of {', '.join(METRICS)}.")
    if "pattern_match" in names and expected is None:
        raise ValueError(
            "pattern_match needs expected=: a pattern name, a [query, key] or [layer, head, query, key] array."
        )
    sparsity_threshold = _check_threshold("sparsity_threshold", sparsity_threshold)
    coverage_threshold = _check_threshold("coverage_threshold", coverage_threshold)
    if int(top_k) < 1:
        raise ValueError(f"top_k must be a positive number of keys; got {top_k}.")

    src = Source(attn)
    causal = src.is_causal
    per_layer: dict[str, list[np.ndarray]] = {m: [] for m in names}
    get_expected, expected_causal = None, False
    for layer in range(src.num_layers):
        stats = None
        for r0, r1, p in src.blocks(layer):
            if stats is None:
                heads, n = p.shape[0], p.shape[-1]
                if "pattern_match" in names and get_expected is None:
                    get_expected, expected_causal = _expected_rows(expected, (src.num_layers, heads, n), causal,
                                                                   int(window))
                stats = _LayerStats(heads, n, causal, names, sparsity_threshold, coverage_threshold, top_k,
                                    js_causal=causal and expected_causal)
            stats.add(r0, p, get_expected(layer, r0, r1) if get_expected is not None else None)
        out = stats.result()
        for m in names:
            per_layer[m].append(out[m])
    return {m: np.stack(v) if v else np.zeros((0, 0)) for m, v in per_layer.items()}


def summarize_layers(metrics: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Mean over heads of each ``[layer, head]`` metric: ``{name: [layer]}`` (NaN heads ignored)."""
    out = {}
    for name, values in metrics.items():
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2:
            raise ValueError(f"metric {name!r} has shape {values.shape}; expected [layer, head].")
        out[name] = np.nanmean(values, axis=1) if values.size else np.zeros(values.shape[0])
    return out


# ---------------------------------------------------------------------------------------------------
# single metrics


def entropy(attn, normalized: bool = False) -> np.ndarray:
    """Mean row entropy ``[layer, head]``: ``mean_i -sum_j p_ij ln p_ij`` (nats, ``0 ln 0 = 0``).

    ``normalized=True`` divides each row by ``ln v_i`` (its number of visible keys), giving [0, 1]:
    0 for a one-hot row, 1 for a row uniform over its visible keys.
    """
    name = "normalized_entropy" if normalized else "entropy"
    return compute_metrics(attn, [name])[name]


def sparsity(attn, threshold: float = 0.01) -> np.ndarray:
    """Fraction of visible weights below ``threshold``, mean over rows: ``mean_i #{j<=i: p_ij < t} / v_i``.

    Range [0, 1]. The seed used 0.01 (quality check) and 0.1 (pattern analysis); pass either.
    """
    return compute_metrics(attn, ["sparsity"], sparsity_threshold=threshold)["sparsity"]


def coverage(attn, threshold: float = 0.01) -> np.ndarray:
    """The seed's attention coverage: fraction of visible weights above ``threshold``, mean over rows.

    ``mean_i #{j visible: p_ij > t} / v_i``, in [0, 1]; equals ``1 - sparsity`` unless a weight is exactly ``t``.
    """
    return compute_metrics(attn, ["coverage"], coverage_threshold=threshold)["coverage"]


def mean_distance(attn) -> np.ndarray:
    """Mean attended distance in tokens: ``mean_i sum_j p_ij |i - j|``; 0 for a diagonal pattern."""
    return compute_metrics(attn, ["mean_distance"])["mean_distance"]


def locality(attn) -> np.ndarray:
    """The seed's locality: ``mean_i 1 / (1 + sum_j p_ij |i - j|)``, in (0, 1]; 1 for a diagonal pattern,
    1/2 for a previous-token pattern."""
    return compute_metrics(attn, ["locality"])["locality"]


def focus_consistency(attn, top_k: int = 3) -> np.ndarray:
    """How consistently the rows focus on the same few keys, in [0, 1].

    ``c_j = mean_i p_ij`` is the average row's distribution over keys (mean over informative rows);
    the score is ``sum_{j in K} c_j`` with ``K`` the ``top_k`` keys of ``c``: the mass that the average
    row puts on the keys the head attends most overall. It is 1 when every row puts all its weight on
    the same ``top_k`` keys (an attention sink) and about ``top_k / n`` when each row looks at its own
    key (previous token, diagonal). This keeps the seed's idea (how much all rows attend to the top-3
    keys) while making it a bounded mass instead of a mean of weights, and costs one pass.
    """
    return compute_metrics(attn, ["focus_consistency"], top_k=top_k)["focus_consistency"]


def pattern_match(attn, expected, *, window: int = 3) -> np.ndarray:
    """Similarity of each head to an expected pattern: ``1 - mean_i JSD_2(p_i, q_i)``, in [0, 1].

    ``JSD_2`` is the Jensen-Shannon divergence in bits, ``H(m) - (H(p) + H(q)) / 2`` with
    ``m = (p + q) / 2``: 0 for equal rows, 1 for rows with disjoint support. So the score is 1 when
    the head equals the pattern and 0 when every row attends only where the pattern has no weight.
    ``expected``: a name (``"previous"``, ``"diagonal"``, ``"first"``, ``"uniform"``, ``"local"`` with
    ``window`` keys; see :func:`reference_pattern`), a ``[query, key]`` array used for every head, a
    ``[layer, head, query, key]`` array, or another Capture. Its rows are normalised to sum to 1.
    """
    return compute_metrics(attn, ["pattern_match"], expected=expected, window=window)["pattern_match"]


def sink_score(attn) -> np.ndarray:
    """Mean weight on the first token: ``mean_i p_i0``, in [0, 1]."""
    return compute_metrics(attn, ["sink_score"])["sink_score"]


def max_weight(attn) -> np.ndarray:
    """Mean over rows of the row's largest weight, ``mean_i max_j p_ij``, in [1/n, 1].

    (The seed's single ``max`` over the matrix is always 1 for causal attention: row 0.)
    """
    return compute_metrics(attn, ["max_weight"])["max_weight"]
