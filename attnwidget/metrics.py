"""Per-head attention metrics: ``[layer, head, query, key]`` patterns in, ``[layer, head]`` arrays out.

Every function accepts a :class:`~attnwidget.Capture` or a NumPy array of shape
``[layer, head, query, key]`` whose rows are probability distributions over keys.

Rows and visible keys
    With causal attention, query row ``i`` sees keys ``0..i`` (``v_i = i + 1`` visible keys); with
    bidirectional attention every row sees all ``n`` keys. Per-row values are averaged over the
    *informative* rows, those with at least two visible keys: row 0 of a causal pattern has no choice
    to make (its weight on key 0 is always 1) and is left out. When no row has two visible keys
    (``n == 1``) the single row is used, with the values: entropy 0, normalized entropy 0, sparsity 0,
    coverage 1, mean distance 0, locality 1, focus consistency 1, sink score 1, max weight 1.

How they are computed
    All metrics but ``pattern_match`` come from the pattern engine's fused pass
    (:mod:`attnwidget._engine`): one pass per layer, in cache-sized tiles, computes each score once and
    every per-row statistic from it, so all metrics and head roles together cost about one
    ``QK^T + softmax`` pass. For a Capture the pass is done once and shared (the widget, the explorer,
    the report and later calls read the same results). ``pattern_match`` compares with an expected
    pattern block by block. docs/metrics.md lists the formulas.

Cross-attention
    A ``[query, key]`` rectangle (an encoder-decoder's decoder reading the encoder: queries and keys
    from two sequences, never causal) has ``n_keys`` visible keys in every row. What describes a row's
    distribution or key 0 is computed as above (entropy, normalized entropy, sparsity, coverage, max
    weight, focus consistency over the ``n_keys`` columns, sink score); what compares query position
    ``i`` with key position ``j`` (mean distance, locality, and ``pattern_match`` with a positional
    reference: ``"previous"``, ``"diagonal"``, ``"local"``) is NaN, since ``i`` and ``j`` count tokens
    of different sequences. The rule is written once, in :data:`POSITIONAL` and
    :data:`POSITIONAL_PATTERNS` (``attnwidget._fused``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeGuard

import numpy as np

from ._engine import POSITIONAL, POSITIONAL_PATTERNS, Engine, is_capture, row_weights  # noqa: F401
from ._progress import make_bar
from ._summary import default_options, estimate_seconds, summary_for
from .errors import ArgumentError, ArgumentTypeError

if TYPE_CHECKING:
    from ._types import AttentionSource, CaptureLike, Progress

    #: ``expected`` of :func:`pattern_match`: a pattern name, a ``[query, key]`` or ``[layer, head, query,
    #: key]`` array or tensor, or another attention source of the same shape.
    Expected = str | np.ndarray | AttentionSource
    #: Rows ``r0..r1-1`` of the expected pattern of one layer: ``[1 or heads, r1 - r0, keys]`` float64.
    ExpectedRows = Callable[[int, int, int], np.ndarray]

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

#: The metrics the pattern engine's fused pass computes (all but ``pattern_match``).
FUSED_METRICS = METRICS[:-1]
_LN2 = float(np.log(2.0))


# ---------------------------------------------------------------------------------------------------
# shared helpers (also used by heads.py)


def _is_capture(obj: object) -> TypeGuard[CaptureLike]:
    return is_capture(obj)


def _row_entropy(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``-sum_j x log x`` over the last axis (natural log, ``0 log 0 = 0``: zeros are raised to the
    smallest normal float before the log, and multiplied by 0). ``out``: scratch of ``x``'s shape."""
    t = np.maximum(x, np.finfo(x.dtype).tiny, out=out)
    np.log(t, out=t)
    return -np.einsum("...c,...c->...", t, x)


def _check_threshold(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 < value <= 1.0:
        raise ArgumentError(f"{name} must be in (0, 1]; got {value}. Attention weights lie in [0, 1].")
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


def _check_reference(name: str, window: int) -> None:
    if name not in REFERENCE_PATTERNS:
        raise ArgumentError(f"unknown pattern {name!r}; expected one of {', '.join(REFERENCE_PATTERNS)}.")
    if int(window) < 1:
        raise ArgumentError(f"window must be a positive number of tokens; got {window}.")


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


def _expected_rows(expected: Expected, shape: tuple[int, int, int, int], causal: bool,
                   window: int) -> tuple[ExpectedRows, bool]:
    """Return ``(get(layer, r0, r1) -> [1 or H, r1 - r0, n_keys] float64, is_causal_pattern)`` for
    ``expected``; ``shape`` is the attention's ``(layers, heads, n, n_keys)``.

    Only the requested query rows are built, normalised or read (a Capture in row blocks), so the
    expected pattern costs no more memory than the attention block it is compared with.
    """
    num_layers, heads, n, n_keys = shape
    if isinstance(expected, str):
        _check_reference(expected, window)
        name = expected
        cache: dict[tuple[int, int], np.ndarray] = {}

        def named(layer: int, r0: int, r1: int) -> np.ndarray:
            if (r0, r1) not in cache:  # arrays: one full block, the same for every layer
                cache.clear()
                cache[(r0, r1)] = _reference_rows(name, np.arange(r0, r1), n_keys, causal, window)[None]
            return cache[(r0, r1)]

        return named, causal
    if _is_capture(expected):
        src = Engine(expected)
        held: dict[int, np.ndarray] = {}
        declared: Any = expected  # a Capture-like source: its declared sizes
        sizes = (int(declared.num_layers), int(declared.num_heads), int(declared.num_tokens))
        if n == n_keys and sizes != shape[:3]:  # self-attention: said in tokens, as before
            raise ArgumentError(
                f"expected capture has [layer, head, token] = {list(sizes)}; the attention has {list(shape[:3])}."
            )
        if (src.num_layers, src.num_heads, src.num_tokens, src.n_keys) != shape:
            raise ArgumentError(
                "expected capture has [layer, head, query, key] = "
                f"{[src.num_layers, src.num_heads, src.num_tokens, src.n_keys]}; the attention has {list(shape)}."
            )

        def captured(layer: int, r0: int, r1: int) -> np.ndarray:
            if src.kind == "capture":
                return _normalize_rows(src.read(layer, r0, r1))
            if layer not in held:  # a patterns-only source: one layer read, kept while it is used
                held.clear()
                held[layer] = src._layer(layer)
            return _normalize_rows(held[layer][:, r0:r1])

        return captured, False
    if hasattr(expected, "detach"):
        expected = expected.detach().float().cpu().numpy()
    if not isinstance(expected, np.ndarray):
        raise ArgumentTypeError(
            "expected must be a pattern name, an array of shape [query, key] or [layer, head, query, key], "
            f"or a Capture; got {type(expected).__name__}."
        )
    if expected.ndim == 2 and expected.shape == (n, n_keys):
        return (lambda layer, r0, r1: _normalize_rows(expected[r0:r1])[None]), False
    if expected.ndim == 4 and expected.shape == (num_layers, heads, n, n_keys):
        return (lambda layer, r0, r1: _normalize_rows(expected[layer, :, r0:r1])), False
    raise ArgumentError(
        f"expected has shape {tuple(expected.shape)}; use [query, key] = {(n, n_keys)} or "
        f"[layer, head, query, key] = {(num_layers, heads, n, n_keys)}, or a pattern name "
        f"({', '.join(REFERENCE_PATTERNS)})."
    )


def _normalize_rows(pattern: np.ndarray) -> np.ndarray:
    """Rows as distributions (float64); row by row, so a block of rows gives the same values."""
    pattern = np.asarray(pattern, dtype=np.float64)
    if np.any(pattern < 0) or not np.all(np.isfinite(pattern)):
        raise ArgumentError("expected pattern must be finite and non-negative.")
    sums = pattern.sum(-1, keepdims=True)
    if np.any(sums <= 0):
        raise ArgumentError("every row of the expected pattern needs some weight; found an all-zero row.")
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
# pattern match: compared block by block with the expected pattern


class _PatternMatch:
    """``1 - mean_i JSD_2(p_i, q_i)`` per head, one layer at a time (informative rows, visible keys);
    NaN for a positional reference on cross-attention (:data:`POSITIONAL_PATTERNS`)."""

    def __init__(self, src: Engine, expected: Expected, window: int) -> None:
        self.src, self.expected, self.window = src, expected, int(window)
        self.get_expected: ExpectedRows | None = None
        self.expected_causal: bool | None = None
        if isinstance(expected, str):
            _check_reference(expected, window)

    def layer(self, layer: int) -> np.ndarray:
        src, causal = self.src, self.src.is_causal
        if isinstance(self.expected, str) and self.expected in POSITIONAL_PATTERNS and src.is_cross:
            return np.full(src.num_heads, np.nan)  # row i on key i (or i - 1, ...): no such key across sequences
        per_row = None
        for r0, r1, p in src.blocks(layer):
            heads, m, n = p.shape
            if per_row is None:
                per_row = np.empty((heads, src.num_tokens))
                if self.get_expected is None:
                    self.get_expected, self.expected_causal = _expected_rows(
                        self.expected, (src.num_layers, heads, src.num_tokens, n), causal, self.window)
            assert self.get_expected is not None  # set at the first block above
            q = self.get_expected(layer, r0, r1).astype(p.dtype, copy=False)
            # Both causal: keys after the block's last row are 0 in both, and so are each row's later
            # keys inside the block, where they add exactly 0: the block's keys suffice.
            cols = r1 if causal and self.expected_causal else n
            x = p[:, :, :cols]
            y = np.broadcast_to(q[:, :, :cols], x.shape)
            total = np.maximum(x + y, np.finfo(p.dtype).tiny)
            scratch = np.empty_like(total)
            per_row[:, r0:r1] = (_kl_to_mix(x, total, scratch) + _kl_to_mix(y, total, scratch)) / (2 * _LN2)
        assert per_row is not None  # every layer has a block of rows
        _, weights = row_weights(per_row.shape[1], causal, src.n_keys)
        return 1.0 - np.clip(per_row, 0.0, 1.0) @ weights


def compute_metrics(
    attn: AttentionSource,
    names: str | Iterable[str] | None = None,
    *,
    sparsity_threshold: float = 0.01,
    coverage_threshold: float = 0.01,
    top_k: int = 3,
    expected: Expected | None = None,
    window: int = 3,
    progress: Progress = None,
) -> dict[str, np.ndarray]:
    """Several metrics in one pass per layer: ``{name: [layer, head] float64}``.

    ``attn``: a Capture or a ``[layer, head, query, key]`` array. ``names``: any of :data:`METRICS`;
    default all of them, with ``"pattern_match"`` only when ``expected`` is given (see
    :func:`pattern_match` for ``expected`` and ``window``). A Capture's patterns are recomputed once, in
    the pattern engine's fused pass, and the result is shared with every later call and the widget.
    ``progress``: a ``tqdm.auto`` bar for long inputs (None: when the pass is estimated to take over
    about 2 s; True / False: always / never). The definitions are in the docstrings of the
    single-metric functions and in docs/metrics.md.
    """
    if names is None:
        names = [m for m in METRICS if m != "pattern_match" or expected is not None]
    elif isinstance(names, str):
        names = [names]
    names = list(dict.fromkeys(names))
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise ArgumentError(f"unknown metric {unknown[0]!r}; expected any of {', '.join(METRICS)}.")
    if "pattern_match" in names and expected is None:
        raise ArgumentError(
            "pattern_match needs expected=: a pattern name, a [query, key] or [layer, head, query, key] array."
        )
    sparsity_threshold = _check_threshold("sparsity_threshold", sparsity_threshold)
    coverage_threshold = _check_threshold("coverage_threshold", coverage_threshold)
    if int(top_k) < 1:
        raise ArgumentError(f"top_k must be a positive number of keys; got {top_k}.")

    fused = [m for m in names if m != "pattern_match"]
    out: dict[str, np.ndarray] = {}
    summary = None
    if fused:
        defaults = (sparsity_threshold, coverage_threshold, int(top_k)) == (0.01, 0.01, 3)
        options = default_options(attn) if defaults else default_options(
            attn, sparsity_threshold=sparsity_threshold, coverage_threshold=coverage_threshold,
            top_k=int(top_k), tiles=False)
        summary = summary_for(attn, options)
    engine = summary.engine if summary is not None else Engine(attn)
    match = _PatternMatch(engine, expected, window) if "pattern_match" in names and expected is not None else None
    todo = engine.num_layers - len(summary.done) if summary is not None else engine.num_layers
    bar = make_bar(todo, "attnwidget metrics", progress, estimate_seconds(engine, todo))
    matched: list[np.ndarray] = []
    try:
        for layer in range(engine.num_layers):  # a layer at a time: a patterns-only source is read once
            if summary is not None and layer not in summary.done:
                summary.layer(layer)
                bar.update(1)
            if match is not None:
                matched.append(match.layer(layer))
    finally:
        bar.close()
    if summary is not None:
        values = summary.metrics()
        out.update({m: values[m] for m in fused})
    if match is not None:
        out["pattern_match"] = np.stack(matched) if matched else np.zeros((0, 0))
    return {m: out[m] for m in names}


def summarize_layers(metrics: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Mean over heads of each ``[layer, head]`` metric: ``{name: [layer]}`` (NaN heads ignored)."""
    out: dict[str, np.ndarray] = {}
    for name, values in metrics.items():
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2:
            raise ArgumentError(f"metric {name!r} has shape {values.shape}; expected [layer, head].")
        out[name] = np.nanmean(values, axis=1) if values.size else np.zeros(values.shape[0])
    return out


# ---------------------------------------------------------------------------------------------------
# single metrics


def entropy(attn: AttentionSource, normalized: bool = False) -> np.ndarray:
    """Mean row entropy ``[layer, head]``: ``mean_i -sum_j p_ij ln p_ij`` (nats, ``0 ln 0 = 0``).

    ``normalized=True`` divides each row by ``ln v_i`` (its number of visible keys), giving [0, 1]:
    0 for a one-hot row, 1 for a row uniform over its visible keys.
    """
    name = "normalized_entropy" if normalized else "entropy"
    return compute_metrics(attn, [name])[name]


def sparsity(attn: AttentionSource, threshold: float = 0.01) -> np.ndarray:
    """Fraction of visible weights below ``threshold``, mean over rows: ``mean_i #{j<=i: p_ij < t} / v_i``.

    Range [0, 1]. The seed used 0.01 (quality check) and 0.1 (pattern analysis); pass either.
    """
    return compute_metrics(attn, ["sparsity"], sparsity_threshold=threshold)["sparsity"]


def coverage(attn: AttentionSource, threshold: float = 0.01) -> np.ndarray:
    """The seed's attention coverage: fraction of visible weights above ``threshold``, mean over rows.

    ``mean_i #{j visible: p_ij > t} / v_i``, in [0, 1]; equals ``1 - sparsity`` unless a weight is exactly ``t``.
    """
    return compute_metrics(attn, ["coverage"], coverage_threshold=threshold)["coverage"]


def mean_distance(attn: AttentionSource) -> np.ndarray:
    """Mean attended distance in tokens: ``mean_i sum_j p_ij |i - j|``; 0 for a diagonal pattern.

    NaN for cross-attention (query ``i`` and key ``j`` are positions in two sequences; :data:`POSITIONAL`)."""
    return compute_metrics(attn, ["mean_distance"])["mean_distance"]


def locality(attn: AttentionSource) -> np.ndarray:
    """The seed's locality: ``mean_i 1 / (1 + sum_j p_ij |i - j|)``, in (0, 1]; 1 for a diagonal pattern,
    1/2 for a previous-token pattern. NaN for cross-attention, like :func:`mean_distance`."""
    return compute_metrics(attn, ["locality"])["locality"]


def focus_consistency(attn: AttentionSource, top_k: int = 3) -> np.ndarray:
    """How consistently the rows focus on the same few keys, in [0, 1].

    ``c_j = mean_i p_ij`` is the average row's distribution over keys (mean over informative rows);
    the score is ``sum_{j in K} c_j`` with ``K`` the ``top_k`` keys of ``c``: the mass that the average
    row puts on the keys the head attends most overall. It is 1 when every row puts all its weight on
    the same ``top_k`` keys (an attention sink) and about ``top_k / n`` when each row looks at its own
    key (previous token, diagonal). This keeps the seed's idea (how much all rows attend to the top-3
    keys) while making it a bounded mass instead of a mean of weights, and costs one pass.
    """
    return compute_metrics(attn, ["focus_consistency"], top_k=top_k)["focus_consistency"]


def pattern_match(attn: AttentionSource, expected: Expected, *, window: int = 3) -> np.ndarray:
    """Similarity of each head to an expected pattern: ``1 - mean_i JSD_2(p_i, q_i)``, in [0, 1].

    ``JSD_2`` is the Jensen-Shannon divergence in bits, ``H(m) - (H(p) + H(q)) / 2`` with
    ``m = (p + q) / 2``: 0 for equal rows, 1 for rows with disjoint support. So the score is 1 when
    the head equals the pattern and 0 when every row attends only where the pattern has no weight.
    ``expected``: a name (``"previous"``, ``"diagonal"``, ``"first"``, ``"uniform"``, ``"local"`` with
    ``window`` keys; see :func:`reference_pattern`), a ``[query, key]`` array used for every head, a
    ``[layer, head, query, key]`` array, or another Capture. Its rows are normalised to sum to 1.
    For cross-attention (``[query, key]`` of two sequences) the positional names ``"previous"``,
    ``"diagonal"`` and ``"local"`` give NaN (:data:`POSITIONAL_PATTERNS`); ``"first"``, ``"uniform"`` (over
    all keys), arrays of the attention's shape and captures are compared.
    """
    return compute_metrics(attn, ["pattern_match"], expected=expected, window=window)["pattern_match"]


def sink_score(attn: AttentionSource) -> np.ndarray:
    """Mean weight on the first token: ``mean_i p_i0``, in [0, 1]."""
    return compute_metrics(attn, ["sink_score"])["sink_score"]


def max_weight(attn: AttentionSource) -> np.ndarray:
    """Mean over rows of the row's largest weight, ``mean_i max_j p_ij``, in [1/n, 1].

    (The seed's single ``max`` over the matrix is always 1 for causal attention: row 0.)
    """
    return compute_metrics(attn, ["max_weight"])["max_weight"]
