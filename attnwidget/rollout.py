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

Every function takes a :class:`~attnwidget.Capture` (read one layer at a time) or a NumPy/torch array
``[layer, head, query, key]``. Layer selection: ``layers`` (indices, default all) filtered by
``start_layer`` (the first layer index used).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._arrays import as_attention_array

__all__ = [
    "RowAttribution",
    "attention_flow",
    "attention_flow_row",
    "mixed_attention",
    "rollout",
    "rollout_row",
]

_FUSIONS = ("mean", "max", "min")


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


def _check_residual(residual) -> float:
    try:
        r = float(residual)
    except (TypeError, ValueError):
        raise TypeError(
            f"residual must be a number in [0, 1]; got {type(residual).__name__}. "
            "The paper uses 0.5."
        ) from None
    if not 0.0 <= r <= 1.0:
        raise ValueError(
            f"residual must lie in [0, 1] (weight of the identity added to each layer); got {r}. "
            "The paper uses 0.5."
        )
    return r


def _check_fusion(head_fusion) -> str:
    if head_fusion not in _FUSIONS:
        raise ValueError(
            f"head_fusion must be one of {', '.join(map(repr, _FUSIONS))}; got {head_fusion!r}."
        )
    return head_fusion


def _select_layers(num_layers: int, start_layer, layers) -> list[int]:
    if isinstance(start_layer, bool) or not isinstance(start_layer, (int, np.integer)):
        raise TypeError(f"start_layer must be an int; got {type(start_layer).__name__}.")
    if not -num_layers <= start_layer < num_layers:
        raise ValueError(
            f"start_layer={start_layer} is out of range for {num_layers} layers; "
            f"use 0..{num_layers - 1}."
        )
    start = int(start_layer) % num_layers
    if layers is None:
        chosen = list(range(num_layers))
    else:
        chosen = [int(x) for x in np.atleast_1d(np.asarray(layers)).ravel()]
        bad = [x for x in chosen if not 0 <= x < num_layers]
        if bad:
            raise ValueError(
                f"layers {bad} are out of range for {num_layers} layers; use indices 0..{num_layers - 1}."
            )
        if any(b <= a for a, b in zip(chosen, chosen[1:])):
            raise ValueError(f"layers must be strictly increasing (bottom to top); got {chosen}.")
    chosen = [x for x in chosen if x >= start]
    if not chosen:
        raise ValueError(
            f"no layer left to use: layers={layers!r} with start_layer={start_layer}. "
            "Lower start_layer or include higher layers."
        )
    return chosen


def _fuse_and_mix(arr: np.ndarray, residual: float, head_fusion: str) -> np.ndarray:
    """``arr`` float ``[H, n, n]`` (one layer) -> mixed float64 ``[n, n]``."""
    a = arr.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(
            "attention contains NaN or inf; expected finite probabilities. "
            "Check the model's dtype (float16 overflow) or the capture."
        )
    if np.any(a < 0):
        raise ValueError(
            f"attention contains negative values (min {a.min():.3g}); expected probabilities "
            "(softmax outputs). Pass attention patterns, not scores or gradients."
        )
    mixed = (1.0 - residual) * getattr(a, head_fusion)(axis=0)
    mixed[np.diag_indices(mixed.shape[-1])] += residual
    sums = mixed.sum(axis=-1, keepdims=True)
    np.divide(mixed, sums, out=mixed, where=sums > 0)
    return mixed


def _is_capture(obj) -> bool:
    return hasattr(obj, "patterns") and hasattr(obj, "is_causal")


def _mixed_and_causal(attn, residual, head_fusion, start_layer, layers):
    residual = _check_residual(residual)
    head_fusion = _check_fusion(head_fusion)
    if _is_capture(attn):
        chosen = _select_layers(int(attn.num_layers), start_layer, layers)
        parts, causal = [], bool(attn.is_causal)
        for l in chosen:  # one layer of patterns in memory at a time
            arr, causal = as_attention_array(attn, [l])
            parts.append(_fuse_and_mix(arr[0], residual, head_fusion))
        return np.stack(parts), causal
    arr, causal = as_attention_array(attn)
    if 0 in arr.shape:
        raise ValueError(
            f"attention has an empty axis: shape {tuple(arr.shape)} [layer, head, query, key]; "
            "expected at least one layer, head and token."
        )
    chosen = _select_layers(arr.shape[0], start_layer, layers)
    return np.stack([_fuse_and_mix(arr[l], residual, head_fusion) for l in chosen]), causal


def mixed_attention(attn, residual: float = 0.5, head_fusion: str = "mean", *,
                    start_layer: int = 0, layers=None) -> np.ndarray:
    """Per-layer matrices used by rollout and flow: float64 ``[L_used, query, key]``.

    ``M[l] = rownorm(residual * I + (1 - residual) * fuse_heads(attn[l]))`` for the used layers,
    bottom first. ``fuse_heads`` is the mean, max or min over heads. A row that is all zero (only
    possible with ``residual=0``) stays zero.
    """
    return _mixed_and_causal(attn, residual, head_fusion, start_layer, layers)[0]


# ----------------------------------------------------------------------------- rollout


def rollout(attn, *, residual: float = 0.5, head_fusion: str = "mean", start_layer: int = 0,
            layers=None) -> np.ndarray:
    """Attention rollout: float64 ``[query, key]`` = ``M[top] @ ... @ M[start]``.

    ``R[i, j]`` is the share of input token ``j`` in position ``i`` after the used layers, with the
    matrices of :func:`mixed_attention`. Rows sum to 1. For causal attention the strict upper
    triangle is exactly zero.
    """
    M, causal = _mixed_and_causal(attn, residual, head_fusion, start_layer, layers)
    R = M[0].copy()
    for l in range(1, M.shape[0]):
        R = M[l] @ R
    if causal:
        R = np.tril(R)
    return R


def _default_row(n: int, causal: bool, row) -> tuple[int, str]:
    if row is None:
        if causal:
            return n - 1, (
                f"last token (causal model: position {n - 1} is the only one that sees the whole input)"
            )
        return 0, "first token (encoder: the [CLS]-style position that summarises the input)"
    if isinstance(row, bool) or not isinstance(row, (int, np.integer)):
        raise TypeError(f"row must be an int or None; got {type(row).__name__}.")
    if not -n <= row < n:
        raise ValueError(f"row={row} is out of range for {n} tokens; use 0..{n - 1} (or -1 for the last).")
    r = int(row) % n
    return r, f"row {r} chosen by the caller"


def rollout_row(attn, row: int | None = None, *, residual: float = 0.5, head_fusion: str = "mean",
                start_layer: int = 0, layers=None) -> RowAttribution:
    """One row of :func:`rollout` (cheaper: a vector times ``L`` matrices), and which row it is.

    ``row=None`` picks the last token for causal attention and the first (CLS) token for encoders;
    ``RowAttribution.reason`` says which and why.
    """
    M, causal = _mixed_and_causal(attn, residual, head_fusion, start_layer, layers)
    n = M.shape[-1]
    r, reason = _default_row(n, causal, row)
    v = np.zeros(n)
    v[r] = 1.0
    for l in range(M.shape[0] - 1, -1, -1):
        v = v @ M[l]
    if causal:
        v[r + 1:] = 0.0
    return RowAttribution(values=v, row=r, reason=reason, method="rollout")


# ----------------------------------------------------------------------------- flow


def _targets(n: int, causal: bool, targets) -> tuple[list[int], list[str]]:
    if targets is None:
        r, reason = _default_row(n, causal, None)
        return [r], [reason]
    if isinstance(targets, (int, np.integer)) and not isinstance(targets, bool):
        targets = [targets]
    try:
        items = list(targets)
    except TypeError:
        raise TypeError(
            f"targets must be None, an int or a sequence of ints; got {type(targets).__name__}."
        ) from None
    out, reasons = [], []
    for t in items:
        r, reason = _default_row(n, causal, t)
        out.append(r)
        reasons.append(reason)
    return out, reasons


def attention_flow(attn, targets=None, *, residual: float = 0.5, head_fusion: str = "mean",
                   start_layer: int = 0, layers=None) -> np.ndarray:
    """Exact attention flow: float64 ``[len(targets), key]``.

    Entry ``[r, j]`` is the maximum flow from node ``(L, targets[r])`` (top of the used layers) to
    input node ``(0, j)`` in the layered graph whose edge ``(l+1, k) -> (l, i)`` has capacity
    ``M[l, k, i]`` (:func:`mixed_attention`). Values lie in ``[0, 1]`` and are not normalised (the
    paper's plotting code divides each row by its sum; do that yourself for display if wanted).

    ``targets``: an int, a sequence of ints (negative counts from the end) or ``None`` for the last
    token (causal) or the first token (encoder); :func:`attention_flow_row` says which it used.
    Exact to float64 rounding (see :mod:`attnwidget._flow` for the algorithm and the argument).
    """
    M, causal = _mixed_and_causal(attn, residual, head_fusion, start_layer, layers)
    rows, _ = _targets(M.shape[-1], causal, targets)
    from ._flow import flow_rows

    return flow_rows(M, rows)


def attention_flow_row(attn, row: int | None = None, *, residual: float = 0.5,
                       head_fusion: str = "mean", start_layer: int = 0,
                       layers=None) -> RowAttribution:
    """One row of :func:`attention_flow` together with the row used and why (as :func:`rollout_row`)."""
    M, causal = _mixed_and_causal(attn, residual, head_fusion, start_layer, layers)
    r, reason = _default_row(M.shape[-1], causal, row)
    from ._flow import flow_rows

    return RowAttribution(values=flow_rows(M, [r])[0], row=r, reason=reason,
                          method="attention_flow")
