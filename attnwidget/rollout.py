"""Attention rollout and attention flow (Abnar & Zuidema 2020, "Quantifying Attention Flow in
Transformers"), for encoders and causal decoders.

Both methods start from the same per-layer matrices (:func:`mixed_attention`): for layer ``l`` the
heads are fused into one ``[query, key]`` matrix ``A_l`` (mean, max or min over heads), the residual
stream is modelled by ``A'_l = residual * I + (1 - residual) * A_l``, and each row of ``A'_l`` is
renormalised to sum to 1.

* **Rollout** multiplies them from the first used layer upward: ``R = A'_top @ ... @ A'_start``.
  ``R[i, j]`` is how much input token ``j`` reaches position ``i`` of the top layer. Rows sum to 1;
  causal attention gives an exactly zero upper triangle.
* **Attention flow** treats the matrices as capacities of a layered graph and takes a maximum flow
  from a top-layer position to each input token (exact; see :mod:`attnwidget._flow`).

Every function takes a :class:`~attnwidget.Capture` or a NumPy/torch array ``[layer, head, query, key]``.
Layer selection: ``layers`` (indices, default all) filtered by ``start_layer`` (the first layer index used).
Self-attention only: cross-attention (queries and keys from two sequences, ``query != key``) has no
rollout on its own, and every function here refuses it with an
:class:`~attnwidget.errors.ArgumentError` (``attnwidget._engine.CROSS_ROLLOUT``).

Memory and time with a Capture
    The Capture is read through the pattern engine (``attnwidget._engine``), so nothing of size
    ``layers x tokens^2`` is built except where a function says so. :func:`rollout_row` /
    :func:`rollout_rows` (head mean) push row vectors down the layers through each layer's head-mean
    pattern, from the engine's fused pass (about one ``QK^T + softmax`` pass in all; the patterns the
    widget's background pass kept are reused, see ``attnwidget._summary``): ``O(k x n)`` besides one
    block. :func:`rollout` keeps two ``[n, n]`` float64 matrices (``16 n^2`` bytes: 1 GiB at 8192
    tokens), :func:`mixed_attention` returns ``[L, n, n]`` float64 (``8 L n^2`` bytes) and attention
    flow needs those dense capacities (it refuses above :data:`FLOW_MAX_BYTES` or the memory available).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard, cast

import numpy as np

from ._arrays import as_attention_array
from ._checks import check_index, check_layer, check_layers, check_number, check_weights
from ._engine import Engine, _recomputes, check_rollout
from ._memory import available_memory
from ._progress import make_bar
from .errors import ArgumentError, ArgumentTypeError, MemoryBudgetError

if TYPE_CHECKING:
    from ._progress import ProgressBar
    from ._types import AttentionSource, CaptureLike, Indices, Layers, Progress
    from .capture import Capture

__all__ = [
    "FLOW_MAX_BYTES",
    "RowAttribution",
    "attention_flow",
    "attention_flow_row",
    "mixed_attention",
    "rollout",
    "rollout_row",
    "rollout_rows",
]

_FUSIONS = ("mean", "max", "min")

#: Attention flow on a Capture refuses a network whose dense arrays would need more bytes than this
#: (or than the memory available, where the system says): about :data:`FLOW_BYTES_PER_ENTRY` bytes per
#: entry of the ``[L, n, n]`` capacities (the float64 capacities, the solver's float64 flow and its
#: reachability masks). 8 GiB is 30 layers at about 3300 tokens.
FLOW_MAX_BYTES = 8 << 30
FLOW_BYTES_PER_ENTRY = 24


@dataclass(frozen=True)
class RowAttribution:
    """One row of rollout or attention flow, with the row it belongs to.

    Attributes:
        values: float64 ``[key]``, one value per input token.
        row: the top-layer query position the values explain (non-negative index).
        reason: why that row was used, in words (e.g. "last token (causal model)...").
        method: ``"rollout"`` or ``"attention_flow"``.
    """

    values: np.ndarray
    row: int
    reason: str
    method: str


# ----------------------------------------------------------------------------- input checks


def _check_residual(residual: object) -> float:
    return check_number(residual, "residual", 0.0, 1.0,
                        "It is the weight of the identity added to each layer; the paper uses 0.5.")


def _check_fusion(head_fusion: object) -> str:
    if head_fusion not in _FUSIONS:
        raise ArgumentError(
            f"head_fusion must be one of {', '.join(map(repr, _FUSIONS))}; got {head_fusion!r}."
        )
    return head_fusion


def _select_layers(num_layers: int, start_layer: object, layers: Layers) -> list[int]:
    start = check_layer(start_layer, num_layers, "start_layer")
    chosen = check_layers(layers, num_layers)
    if any(b <= a for a, b in zip(chosen, chosen[1:])):
        raise ArgumentError(f"layers must be strictly increasing (bottom to top); got {chosen}.")
    chosen = [x for x in chosen if x >= start]
    if not chosen:
        raise ArgumentError(
            f"no layer left to use: layers={layers!r} with start_layer={start_layer}. "
            "Lower start_layer or include higher layers."
        )
    return chosen


def _fuse_and_mix(arr: np.ndarray, residual: float, head_fusion: str, r0: int = 0,
                  fused: np.ndarray | None = None) -> np.ndarray:
    """``arr`` float ``[H, m, n]``: query rows ``r0..r0+m-1`` of one layer -> those rows of the mixed
    float64 matrix, ``[m, n]``. Row by row, so blocks of rows give the rows of the whole matrix.
    ``fused``: the rows already fused over heads (:meth:`Engine.fuse`), else fused here."""
    a = arr.astype(np.float64)
    check_weights(a, where=f" (query rows {r0}..{r0 + a.shape[1] - 1})")
    mixed = (1.0 - residual) * (getattr(a, head_fusion)(axis=0) if fused is None else np.array(fused, np.float64))
    m = mixed.shape[0]
    mixed[np.arange(m), r0 + np.arange(m)] += residual
    sums = mixed.sum(axis=-1, keepdims=True)
    np.divide(mixed, sums, out=mixed, where=sums > 0)
    return mixed


def _check_discard(discard_ratio: object) -> float:
    value = check_number(discard_ratio, "discard_ratio", 0.0, 1.0,
                         "It is the fraction of each layer's lowest fused weights set to 0 (ViT rollout uses ~0.9).")
    if value >= 1.0:
        raise ArgumentError("discard_ratio must be below 1: discarding every weight leaves nothing to roll out.")
    return value


def _discard(fused: np.ndarray, ratio: float) -> np.ndarray:
    """Zero the ``floor(ratio x size)`` smallest entries of one layer's fused ``[query, key]`` matrix
    (in place), never entry ``[0, 0]`` (the [CLS] token's attention to itself): the ViT rollout recipe
    (Gildenblat's vit-explain), which filters the many small weights that wash the map out."""
    count = int(fused.size * ratio)
    if count:
        flat = fused.reshape(-1)
        flat[np.argpartition(flat[1:], count - 1)[:count] + 1] = 0.0
    return fused


def _layer_mixed(src: Engine, layer: int, residual: float, head_fusion: str, ratio: float) -> np.ndarray:
    """One layer's whole mixed matrix (float64 ``[n, n]``) with the lowest ``ratio`` of its fused weights
    discarded first (the threshold is over the whole layer, so the layer is assembled before mixing)."""
    n = src.num_tokens
    fused = np.empty((n, src.n_keys))
    for r0, r1, p in src.blocks(layer):
        a = np.asarray(p, dtype=np.float64)
        check_weights(a, where=f" (query rows {r0}..{r1 - 1})")
        own = src.fuse(a, head_fusion, layer, r0, r1)
        fused[r0:r1] = getattr(a, head_fusion)(axis=0) if own is None else own
    mixed = (1.0 - residual) * _discard(fused, ratio)
    mixed[np.arange(n), np.arange(n)] += residual
    sums = mixed.sum(axis=-1, keepdims=True)
    np.divide(mixed, sums, out=mixed, where=sums > 0)
    return mixed


MEASURES = ("attention", "contribution")


def measured(attn: AttentionSource, measure: str) -> AttentionSource:
    """``attn`` itself for ``measure="attention"``; for ``"contribution"``, its value-weighted
    contributions read like attention (:class:`attnwidget.contributions.ContributionSource`; the
    capture needs ``values=True``)."""
    from ._checks import check_choice

    if check_choice(measure, MEASURES, "measure") == "attention":
        return attn
    from .contributions import ContributionSource

    if isinstance(attn, ContributionSource):
        return attn
    if not hasattr(attn, "_records"):
        raise ArgumentError("measure='contribution' needs a Capture recorded with values=True (capture(model, "
                            f"tokenizer, text, values=True)); got {type(attn).__name__}, which holds no values.")
    return ContributionSource(cast("Capture", attn))  # it holds _records: a Capture


def _is_capture(obj: object) -> TypeGuard[CaptureLike]:
    return hasattr(obj, "patterns") and hasattr(obj, "is_causal")


def _mixed_and_causal(attn: AttentionSource, residual: float, head_fusion: str, start_layer: int, layers: Layers,
                      bar: ProgressBar | None = None, discard_ratio: float = 0.0) -> tuple[np.ndarray, bool]:
    residual = _check_residual(residual)
    head_fusion = _check_fusion(head_fusion)
    if _check_discard(discard_ratio) > 0:
        src = Engine(attn)
        check_rollout(src)
        chosen = _select_layers(src.num_layers, start_layer, layers)
        return np.stack([_layer_mixed(src, l, residual, head_fusion, discard_ratio) for l in chosen]), src.is_causal
    if _recomputes(attn):  # a Capture: each layer's rows in blocks, straight into M
        src = Engine(attn)
        check_rollout(src)
        chosen = _select_layers(src.num_layers, start_layer, layers)
        n = src.num_tokens
        M = np.empty((len(chosen), n, n))
        for i, l in enumerate(chosen):
            for r0, r1, p in src.blocks(l):
                M[i, r0:r1] = _fuse_and_mix(p, residual, head_fusion, r0, src.fuse(p, head_fusion, l, r0, r1))
            if bar is not None:
                bar.update(1)
        return M, src.is_causal
    if _is_capture(attn):
        chosen = _select_layers(int(attn.num_layers), start_layer, layers)
        parts, causal = [], bool(attn.is_causal)
        for l in chosen:  # one layer of patterns in memory at a time
            arr, causal = as_attention_array(attn, [l])
            check_rollout(arr)
            parts.append(_fuse_and_mix(arr[0], residual, head_fusion))
        return np.stack(parts), causal
    arr, causal = as_attention_array(attn)
    check_rollout(arr)
    chosen = _select_layers(arr.shape[0], start_layer, layers)
    return np.stack([_fuse_and_mix(arr[l], residual, head_fusion) for l in chosen]), causal


def _blocks_setup(attn: AttentionSource, residual: float, head_fusion: str, start_layer: int,
                  layers: Layers) -> tuple[Engine, list[int], float, str]:
    """``(source, chosen layers, residual, head_fusion)`` after the same checks as the dense path."""
    residual = _check_residual(residual)
    head_fusion = _check_fusion(head_fusion)
    src = Engine(attn)
    check_rollout(src)
    chosen = _select_layers(src.num_layers, start_layer, layers)
    return src, chosen, residual, head_fusion


def mixed_attention(attn: AttentionSource, residual: float = 0.5, head_fusion: str = "mean", *,
                    start_layer: int = 0, layers: Layers = None, discard_ratio: float = 0.0) -> np.ndarray:
    """Per-layer matrices used by rollout and flow: float64 ``[L_used, query, key]``.

    ``M[l] = rownorm(residual * I + (1 - residual) * fuse_heads(attn[l]))`` for the used layers,
    bottom first. ``fuse_heads`` is the mean, max or min over heads. A row that is all zero (only
    possible with ``residual=0``) stays zero. ``discard_ratio``: before mixing, the lowest fraction
    of each layer's fused weights is set to 0 (never ``[0, 0]``), as the usual ViT rollout recipe does.

    Memory: the result is dense, ``8 x L_used x n^2`` bytes (30 layers at 8192 tokens: 16 GiB). A
    Capture is read in blocks of rows straight into it (no further ``[heads, n, n]`` copy); for long
    inputs use :func:`rollout_row` / :func:`rollout_rows`, which never build it.
    """
    return _mixed_and_causal(attn, residual, head_fusion, start_layer, layers, discard_ratio=discard_ratio)[0]


# ----------------------------------------------------------------------------- rollout


def rollout(attn: AttentionSource, *, residual: float = 0.5, head_fusion: str = "mean", start_layer: int = 0,
            layers: Layers = None, progress: Progress = None, discard_ratio: float = 0.0,
            measure: str = "attention") -> np.ndarray:
    """Attention rollout: float64 ``[query, key]`` = ``M[top] @ ... @ M[start]``.

    ``R[i, j]`` is the share of input token ``j`` in position ``i`` after the used layers, with the
    matrices of :func:`mixed_attention`. Rows sum to 1. For causal attention the strict upper
    triangle is exactly zero. For vision transformers the usual recipe fuses heads with ``"max"`` (or
    ``"min"``) and discards the lowest weights: ``head_fusion="max", discard_ratio=0.9``.

    A Capture (any length) never builds ``mixed_attention``'s ``[L, n, n]``: ``R`` is updated layer by
    layer, ``R_new[rows] = M_l[rows] @ R`` for blocks of rows of ``M_l`` mixed on the fly, so it holds
    two ``[n, n]`` float64 matrices (``16 n^2`` bytes: 1 GiB at 8192 tokens) plus one block. Where a
    block of ``M_l`` and ``R`` are lower triangular (causal attention) only the triangle is multiplied.
    For one or a few rows, :func:`rollout_row` / :func:`rollout_rows` cost ``O(k x n)`` instead.
    An array is processed as before, from the stacked ``mixed_attention``. ``progress``: a
    ``tqdm.auto`` bar over the layers (None: automatic, for inputs estimated to take over about 2 s).

    ``measure="contribution"`` rolls out value-weighted contributions instead of weights (a capture
    made with ``values=True``): each layer's ``||sum_h alpha_ij^h f_h(x_j)||`` (Kobayashi et al. 2020)
    normalised per row, in place of the head mean (:class:`attnwidget.contributions.ContributionSource`).
    """
    attn = measured(attn, measure)
    if _check_discard(discard_ratio) > 0:  # each layer assembled whole: the threshold spans the layer
        src, chosen, residual, head_fusion = _blocks_setup(attn, residual, head_fusion, start_layer, layers)
        R = None
        for l in chosen:
            M = _layer_mixed(src, l, residual, head_fusion, discard_ratio)
            R = M if R is None else M @ R
        assert R is not None  # at least one layer is chosen
        return np.tril(R) if src.is_causal else R
    if _recomputes(attn):
        src, chosen, residual, head_fusion = _blocks_setup(attn, residual, head_fusion, start_layer, layers)
        seconds = len(chosen) * src.num_tokens ** 3 * 2.5e-11  # dense products dominate
        bar = make_bar(len(chosen), "attnwidget rollout", progress, seconds)
        try:
            return _rollout_blocks(src, chosen, residual, head_fusion, bar)
        finally:
            bar.close()
    M, causal = _mixed_and_causal(attn, residual, head_fusion, start_layer, layers)
    R = M[0].copy()
    for l in range(1, M.shape[0]):
        R = M[l] @ R
    if causal:
        R = np.tril(R)
    return R


def _rollout_blocks(src: Engine, chosen: list[int], residual: float, head_fusion: str,
                    bar: ProgressBar) -> np.ndarray:
    """Full rollout from row blocks: two ``[n, n]`` float64 matrices, never ``[L, n, n]``."""
    n = src.num_tokens
    R, lower = None, True  # lower: R is exactly zero above the diagonal
    for l in chosen:
        new = np.empty((n, n)) if R is None else np.zeros((n, n))
        new_lower = True
        for r0, r1, p in src.blocks(l):
            A = _fuse_and_mix(p, residual, head_fusion, r0, src.fuse(p, head_fusion, l, r0, r1))
            block_lower = not A[:, r1:].any()
            if R is None:
                new[r0:r1] = A
            elif block_lower and lower:  # zero above the diagonal in A's rows and in R: the triangle only
                new[r0:r1, :r1] = A[:, :r1] @ R[:r1, :r1]
            else:
                new[r0:r1] = A @ R
                block_lower = False
            new_lower &= block_lower
        R, lower = new, new_lower
        bar.update(1)
    assert R is not None  # at least one layer is chosen
    if src.is_causal:
        R = np.tril(R)
    return R


def _default_row(n: int, causal: bool, row: object) -> tuple[int, str]:
    if row is None:
        if causal:
            return n - 1, (
                f"last token (causal model: position {n - 1} is the only one that sees the whole input)"
            )
        return 0, "first token (encoder: the [CLS]-style position that summarises the input)"
    r = check_index(row, n, "row", "tokens", "Use None for the natural row (the last token of a causal model).")
    return r, f"row {r} chosen by the caller"


def _rows_arg(n: int, causal: bool, rows: Any, name: str = "rows") -> tuple[list[int], list[str]]:  # checked here
    """Query rows (or flow targets, named ``name`` in errors) as non-negative ints with reasons."""
    if rows is None or (isinstance(rows, (int, np.integer)) and not isinstance(rows, bool)):
        r, reason = _default_row(n, causal, rows)
        return [r], [reason]
    wrong = f"{name} must be None, an int or a sequence of ints; got {type(rows).__name__}."
    if isinstance(rows, (str, bytes)):
        raise ArgumentTypeError(wrong)
    try:
        items = list(np.asarray(rows).ravel()) if isinstance(rows, np.ndarray) else list(rows)
    except TypeError:
        raise ArgumentTypeError(wrong) from None
    out, reasons = [], []
    for item in items:
        r, reason = _default_row(n, causal, item)
        out.append(r)
        reasons.append(reason)
    return out, reasons


def _propagate_rows(src: Engine, chosen: list[int], residual: float, head_fusion: str,
                    targets: list[int], progress: Progress = None, discard_ratio: float = 0.0) -> np.ndarray:
    """``[k, n]``: ``e_t @ M[top] @ ... @ M[start]`` for each target ``t``, one layer at a time.

    ``V_new = sum over row blocks b of V[:, b] @ M_l[b, :]``: each block of ``M_l`` is mixed on the
    fly from the source's rows, and blocks where every vector is zero are not read at all (for a
    causal row ``t`` the rows after ``t`` are never needed). Memory ``O(k x n + heads x block x n)``.
    """
    n = src.num_tokens
    if discard_ratio > 0:  # each layer whole (its threshold spans the layer), then v <- v @ M_l
        V = np.zeros((len(targets), n))
        V[np.arange(len(targets)), targets] = 1.0
        for l in reversed(chosen):
            V = V @ _layer_mixed(src, l, residual, head_fusion, discard_ratio)
        return V
    if src.kind == "capture" and head_fusion == "mean":
        # The engine's fused pass gives each layer's head mean (kept by the widget, or made now).
        from ._summary import estimate_seconds, summary_for

        summary = summary_for(src.obj)
        bar = make_bar(len(chosen), "attnwidget rollout rows", progress, estimate_seconds(src, len(chosen)))
        try:
            V = summary.rollout_rows(targets, residual, layers=chosen, progress=bar)
        finally:
            bar.close()
        check_weights(V, "rollout rows", " (a layer's patterns are not finite)")
        return V
    V = np.zeros((len(targets), n))
    V[np.arange(len(targets)), targets] = 1.0
    step = src.step
    for l in reversed(chosen):
        new = np.zeros_like(V)
        for r0 in range(0, n, step):
            r1 = min(n, r0 + step)
            vb = V[:, r0:r1]
            if not vb.any():
                continue
            p = src.read(l, r0, r1)
            A = _fuse_and_mix(p, residual, head_fusion, r0, src.fuse(p, head_fusion, l, r0, r1))
            c = n if A[:, r1:].any() else r1  # causal rows: nothing beyond the diagonal block
            new[:, :c] += vb @ A[:, :c]
        V = new
    if src.is_causal:
        for i, t in enumerate(targets):
            V[i, t + 1:] = 0.0
    return V


def rollout_rows(attn: AttentionSource, rows: Indices | None = None, *, residual: float = 0.5,
                 head_fusion: str = "mean", start_layer: int = 0, layers: Layers = None, progress: Progress = None,
                 discard_ratio: float = 0.0, measure: str = "attention") -> np.ndarray:
    """Several rows of :func:`rollout` in one pass: float64 ``[len(rows), key]``.

    ``rows``: an int, a sequence of ints (negative counts from the end) or ``None`` for the natural row
    (last token for causal attention, first for encoders; see :func:`rollout_row`). The rows are row
    vectors propagated from the top layer down, ``v <- v @ M_l``, with each ``M_l`` (as in
    :func:`mixed_attention`) mixed block by block from the Capture's rows: exact, and it never builds
    ``[L, n, n]``. Memory ``O(len(rows) x n + heads x block x n)``; time about one reading of the used
    layers (a causal row ``t`` reads only rows ``0..t``). ``measure``: as for :func:`rollout`.
    """
    attn = measured(attn, measure)
    src, chosen, residual, head_fusion = _blocks_setup(attn, residual, head_fusion, start_layer, layers)
    targets, _ = _rows_arg(src.num_tokens, src.is_causal, rows)
    return _propagate_rows(src, chosen, residual, head_fusion, targets, progress, _check_discard(discard_ratio))


def rollout_row(attn: AttentionSource, row: int | None = None, *, residual: float = 0.5, head_fusion: str = "mean",
                start_layer: int = 0, layers: Layers = None, progress: Progress = None, discard_ratio: float = 0.0,
                measure: str = "attention") -> RowAttribution:
    """One row of :func:`rollout` (cheaper: a vector times ``L`` matrices), and which row it is.

    ``row=None`` picks the last token for causal attention and the first (CLS) token for encoders;
    ``RowAttribution.reason`` says which and why. As :func:`rollout_rows`, it never builds
    ``[L, n, n]``: a Capture's layers are read in blocks of rows and mixed on the fly. ``measure``: as
    for :func:`rollout`.
    """
    attn = measured(attn, measure)
    src, chosen, residual, head_fusion = _blocks_setup(attn, residual, head_fusion, start_layer, layers)
    r, reason = _default_row(src.num_tokens, src.is_causal, row)
    v = _propagate_rows(src, chosen, residual, head_fusion, [r], progress, _check_discard(discard_ratio))[0]
    return RowAttribution(values=v, row=r, reason=reason, method="rollout")


# ----------------------------------------------------------------------------- flow


def _check_flow_size(attn: AttentionSource, start_layer: int, layers: Layers) -> None:
    """Refuse attention flow on a Capture whose dense network would not fit (before reading anything)."""
    if not _recomputes(attn):
        return
    check_rollout(Engine(attn))
    declared: Any = attn  # a Capture, or a measure over one: its declared sizes
    num_layers, n = int(declared.num_layers), int(declared.num_tokens)
    chosen = _select_layers(num_layers, start_layer, layers)
    need = FLOW_BYTES_PER_ENTRY * len(chosen) * n * n
    available = available_memory()
    limit = FLOW_MAX_BYTES if available is None else min(FLOW_MAX_BYTES, available)
    if need > limit:
        gib = 1 << 30
        what = "attnwidget.rollout.FLOW_MAX_BYTES" if limit == FLOW_MAX_BYTES else "the available memory"
        raise MemoryBudgetError(
            f"attention flow over {len(chosen)} layers x {n} tokens needs its dense [layer, query, key] "
            f"network: about {need / gib:.1f} GiB ({FLOW_BYTES_PER_ENTRY} bytes x {len(chosen)} x {n}^2), "
            f"more than {what} ({limit / gib:.1f} GiB). Use fewer layers (layers=..., start_layer=...), "
            "capture fewer tokens, or use rollout_row / rollout_rows, which need no dense matrices."
        )


def _flow_seconds(n: int, layers: int, targets: int) -> float:
    """Rough time of the exact flow on a 2-core laptop (3.6 s for 512 tokens x 30 layers, about n^3)."""
    return 3.6 * (n / 512) ** 3 * layers / 30 * targets


def _flow(attn: AttentionSource, targets: Indices | None, residual: float, head_fusion: str, start_layer: int,
          layers: Layers, progress: Progress, default_only: bool = False) -> tuple[np.ndarray, list[int], list[str]]:
    _check_flow_size(attn, start_layer, layers)
    from ._flow import flow_rows  # without numba: MissingExtraError, before the dense network is built
    try:  # sizes for the progress bar; bad input is reported by _mixed_and_causal below
        engine = Engine(attn)
        n, chosen = engine.num_tokens, _select_layers(engine.num_layers, start_layer, layers)
        count = 1 if default_only or targets is None or isinstance(targets, (int, np.integer)) else len(targets)
        total, seconds = len(chosen) + count * n, _flow_seconds(n, len(chosen), count)
    except Exception:  # noqa: BLE001
        total, seconds, progress = 0, 0.0, False
    bar = make_bar(total, "attnwidget attention flow", progress, seconds, unit="step")
    try:
        M, causal = _mixed_and_causal(attn, residual, head_fusion, start_layer, layers, bar)
        if default_only:
            r, reason = _default_row(M.shape[-1], causal, targets)
            rows, reasons = [r], [reason]
        else:
            rows, reasons = _rows_arg(M.shape[-1], causal, targets, name="targets")
        return flow_rows(M, rows, progress=bar), rows, reasons
    finally:
        bar.close()


def attention_flow(attn: AttentionSource, targets: Indices | None = None, *, residual: float = 0.5,
                   head_fusion: str = "mean", start_layer: int = 0, layers: Layers = None,
                   progress: Progress = None) -> np.ndarray:
    """Exact attention flow: float64 ``[len(targets), key]``.

    Entry ``[r, j]`` is the maximum flow from node ``(L, targets[r])`` (top of the used layers) to
    input node ``(0, j)`` in the layered graph whose edge ``(l+1, k) -> (l, i)`` has capacity
    ``M[l, k, i]`` (:func:`mixed_attention`). Values lie in ``[0, 1]`` and are not normalised (the
    paper's plotting code divides each row by its sum; do that yourself for display if wanted).

    ``targets``: an int, a sequence of ints (negative counts from the end) or ``None`` for the last
    token (causal) or the first token (encoder); :func:`attention_flow_row` says which it used.
    Exact to float64 rounding (see :mod:`attnwidget._flow` for the algorithm and the argument).

    The flow needs the dense capacities: for a Capture whose network would take more than
    :data:`FLOW_MAX_BYTES` (or the available memory), it raises a ``MemoryError`` naming the size;
    use fewer layers (``layers=``, ``start_layer=``), fewer tokens, or :func:`rollout_row`. Its time
    grows about as ``n^3`` per target (4 s at 512 tokens x 30 layers, 4 min at 2048 on 2 cores):
    ``progress`` shows a ``tqdm.auto`` bar with the time left (None: automatic, past about 2 s).

    The solver is compiled with numba, an optional package: without it this raises
    :class:`~attnwidget.errors.MissingExtraError` (an ``ImportError``) naming
    ``pip install "attnwidget[flow]"``.
    """
    return _flow(attn, targets, residual, head_fusion, start_layer, layers, progress)[0]


def attention_flow_row(attn: AttentionSource, row: int | None = None, *, residual: float = 0.5,
                       head_fusion: str = "mean", start_layer: int = 0,
                       layers: Layers = None, progress: Progress = None) -> RowAttribution:
    """One row of :func:`attention_flow` together with the row used and why (as :func:`rollout_row`)."""
    values, rows, reasons = _flow(attn, row, residual, head_fusion, start_layer, layers, progress,
                                  default_only=True)
    return RowAttribution(values=values[0], row=rows[0], reason=reasons[0], method="attention_flow")
