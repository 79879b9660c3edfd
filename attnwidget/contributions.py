"""Beyond raw weights: the query-key view of one score, and value-weighted contributions.

* :func:`query_key` takes one cell of one head apart: the query and key vectors the layer used (after
  rotary embedding; with grouped-query attention the key head the query head reads), their
  elementwise products, the score ``sum(products) x scaling`` (plus T5's position bias, then
  soft-capping, as the model computes it) before the mask and the softmax, and the weight.
* :func:`contributions` is the norm of what each key adds to each query's output (Kobayashi et al.
  2020, "Attention is Not Only a Weight"): ``||alpha_ij^h f_h(x_j)||`` for head ``h``, and
  ``||sum_h alpha_ij^h f_h(x_j)||`` for the layer, with ``f_h(x) = (x W_V^h + b_V^h) W_O^h`` the head's
  value mapped through its slice of the output projection. It needs ``capture(..., values=True)``.
  Rows are computed in blocks, so memory stays linear in tokens; the layer norm uses each key's
  ``[heads, heads]`` Gram matrix ``G_j`` of ``f_h(x_j)`` (float64): ``||sum_h a_h f_h||^2 = a^T G_j a``,
  never a ``[query, key, hidden]`` tensor.
* :class:`ContributionSource` shows contributions wherever attention shows (the pattern engine, the
  widget's ``measure="contribution"``, rollout), rows normalised to sum to 1.

Formulas: docs/metrics.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from ._checks import check_head, check_index, check_layer
from ._recorder import QKRecord
from .errors import ArgumentError, UnsupportedAttentionError

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._types import Layers, Rows
    from .capture import Capture

    #: Where a block's weights come from: ``weights(layer, heads or None for all, rows) -> [heads, rows, keys]``.
    WeightsFn = Callable[[int, torch.Tensor | None, torch.Tensor], torch.Tensor]

__all__ = ["ContributionSource", "QueryKey", "contributions", "head_outputs", "query_key"]

#: float64 elements of one block of the layer norm (``rows x keys x heads``): 32 MiB.
BLOCK_ELEMENTS = 1 << 22

NEEDS_QK = ("{what} needs the queries and keys a layer used; this capture holds attention weights only (from "
            "method='weights', a model that returns weights, or Capture.from_attentions). Capture the model with "
            "method='auto' (the default) on a model whose attention goes through transformers' AttentionInterface.")
NEEDS_VALUES = ("{what} needs the values and the output projection of each layer: capture with "
                "capture(model, tokenizer, text, values=True).")


def _record(capture: Capture, layer: int, what: str, values: bool = False) -> QKRecord:
    record = capture._records[layer]
    if not isinstance(record, QKRecord):  # weights only (WeightsRecord)
        raise UnsupportedAttentionError(NEEDS_QK.format(what=what))
    if values and (getattr(record, "value", None) is None or getattr(record, "out_proj", None) is None):
        raise ArgumentError(NEEDS_VALUES.format(what=what))
    return record


# ---------------------------------------------------------------------------------------------------
# the query-key view


@dataclass(frozen=True, repr=False)
class QueryKey:
    """One score taken apart (see :func:`query_key`). Vectors are float32 ``[head_dim]``.

    ``q``, ``k``: the query and key vectors (after rotary embedding); ``products``: ``q * k``;
    ``scaling``: the layer's factor (usually ``head_dim ** -0.5``); ``score``: what the softmax receives
    for this cell before the mask, ``sum(products) * scaling`` plus ``bias`` (T5's relative position
    bias, or BEiT's, which arrives as a per-head mask; 0 without one), soft-capped when the model caps; ``masked``: the mask hides the key from the
    query (its weight is 0, or nearly, whatever the score); ``weight``: the attention weight, equal to
    ``capture.pattern(layer, head)[query, key]``. ``key_head`` is the key head the query head reads
    (grouped-query attention shares one among several query heads).
    """

    layer: int
    head: int
    key_head: int
    query: int
    key: int
    query_token: str
    key_token: str
    q: np.ndarray
    k: np.ndarray
    products: np.ndarray
    scaling: float
    bias: float
    softcap: float | None
    score: float
    masked: bool
    weight: float

    def top_dimensions(self, count: int = 5) -> list[tuple[int, float]]:
        """The ``count`` dimensions whose products move the score most: ``[(dimension, product)]``."""
        order = np.argsort(-np.abs(self.products))[:count]
        return [(int(i), float(self.products[i])) for i in order]

    def __repr__(self) -> str:
        return (f"QueryKey(layer={self.layer}, head={self.head}, query={self.query} {self.query_token!r}, "
                f"key={self.key} {self.key_token!r}, score={self.score:.4g}, weight={self.weight:.4g})")

    def __str__(self) -> str:
        dims = ", ".join(f"{i}: {p:+.3g}" for i, p in self.top_dimensions())
        raw = float(self.products.sum(dtype=np.float64))
        extra = f" + bias {self.bias:.4g}" if self.bias else ""
        capped = f", soft-capped at {self.softcap:g}" if self.softcap is not None else ""
        return (f"layer {self.layer}, head {self.head} (key head {self.key_head}): query {self.query} "
                f"{self.query_token!r} -> key {self.key} {self.key_token!r}\n"
                f"  q.k = {raw:.4g} x scaling {self.scaling:.4g}{extra}{capped} = score {self.score:.4g}"
                f"{' (masked)' if self.masked else ''}; weight {self.weight:.4g}\n"
                f"  largest products by dimension: {dims}")


def query_key(capture: Capture, layer: int, head: int, query: int, key: int) -> QueryKey:
    """Take apart the score of ``query`` on ``key`` in one head (see :class:`QueryKey`). Needs recorded
    queries and keys (any capture of a model recorded the default way)."""
    layer = check_layer(layer, capture.num_layers)
    checked = check_head(head, capture.num_heads)
    if checked is None:
        raise ArgumentError("query_key takes one head: the score belongs to a head (got None, the mean of heads).")
    head = checked
    query = check_index(query, capture.num_tokens, "query", "query tokens")
    key = check_index(key, capture.num_keys, "key", "key tokens")
    record = _record(capture, layer, "query_key")
    groups = record.query.shape[0] // record.key.shape[0]
    q = record.query[head, query].float()
    k = record.key[head // groups, key].float()
    rows = torch.tensor([query])
    with torch.no_grad():
        raw = capture._scores(layer, torch.tensor([head]), rows, capture.num_keys, masked=False)[0, 0, key]
        masked = capture._scores(layer, torch.tensor([head]), rows, capture.num_keys)[0, 0, key]
    bias = 0.0
    if record.bias >= 0:
        from ._position_bias import relative_bias

        bias = float(relative_bias(capture._biases[record.bias], rows, capture.num_keys, [head])[0, 0, key])
    if record.mask >= 0 and capture._masks[record.mask].dim() == 3:
        # a per-head additive term that arrives as the mask (BEiT's relative position bias) is a bias of
        # the score, not a mask: the softmax of the scores over the visible keys is then the pattern
        term = capture._masks[record.mask][head, query, key]
        if term.dtype.is_floating_point and math.isfinite(float(term)):
            bias += float(term)
            raw = raw + term.float()
    # the block of rows pattern() computes this row in, so the weight is bit for bit pattern()'s
    from .capture import ROW_BLOCK_ELEMENTS

    block = max(1, ROW_BLOCK_ELEMENTS // max(1, capture.num_keys))
    start = query // block * block
    weight = float(capture.pattern(layer, head, rows=slice(start, min(capture.num_tokens, start + block)))[query - start, key])
    hidden = not math.isfinite(float(masked)) or float(masked) <= torch.finfo(torch.float32).min / 2 or (
        bool(record.causal) and record.mask < 0 and key > query + capture.num_keys - capture.num_tokens)
    return QueryKey(layer=layer, head=head, key_head=head // groups, query=query, key=key,
                    query_token=capture.tokens[query], key_token=capture.key_tokens[key],
                    q=q.numpy().copy(), k=k.numpy().copy(), products=(q * k).numpy(), scaling=float(record.scaling),
                    bias=bias, softcap=record.softcap, score=float(raw), masked=bool(hidden), weight=weight)


# ---------------------------------------------------------------------------------------------------
# value-weighted contributions


def has_values(capture: Capture) -> bool:
    """The capture recorded values and output projections (``capture(..., values=True)``)."""
    return all(getattr(r, "value", None) is not None and getattr(r, "out_proj", None) is not None
               for r in capture._records) and bool(capture._records)


def head_outputs(capture: Capture, layer: int) -> torch.Tensor:
    """``f_h(x_j)`` for every head and key of ``layer``: float32 ``[heads, keys, hidden]`` (the head's value
    of key ``j`` mapped through its slice of the output projection). ``heads x keys x hidden`` floats."""
    layer = check_layer(layer, capture.num_layers)
    record = _record(capture, layer, "head_outputs", values=True)
    assert record.value is not None and record.out_proj is not None  # _record(values=True) checked both
    groups = record.query.shape[0] // record.value.shape[0]
    value = record.value.float()
    if groups > 1:
        value = value.repeat_interleave(groups, dim=0)
    return torch.bmm(value, record.out_proj.float())


def _gram(outputs: torch.Tensor) -> torch.Tensor:
    """``G[j] = [<f_h(x_j), f_g(x_j)>]_{h,g}``: float64 ``[keys, heads, heads]``."""
    per_key = outputs.double().transpose(0, 1)  # [keys, heads, hidden]
    return torch.bmm(per_key, per_key.transpose(1, 2))


#: Layers whose key terms (norms and Gram matrices) are kept per capture, most recent first.
TERMS_KEPT = 4


def _terms(capture: Capture, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(||f_h(x_j)|| float32 [heads, keys], Gram float64 [keys, heads, heads])`` of ``layer``, cached on
    the capture for the last :data:`TERMS_KEPT` layers (``keys x heads^2`` floats each)."""
    cache = capture.__dict__.setdefault("_contribution_terms", {})
    hit = cache.get(layer)
    if hit is None:
        with torch.no_grad():
            outputs = head_outputs(capture, layer)
            hit = (outputs.norm(dim=-1), _gram(outputs))
        cache[layer] = hit
        while len(cache) > TERMS_KEPT:
            cache.pop(next(iter(cache)))
    return hit


def _block(capture: Capture, layer: int, head: int | Literal["all"] | None, chunk: torch.Tensor,
           terms: tuple[torch.Tensor, torch.Tensor], weights: WeightsFn | None = None) -> torch.Tensor:
    """Contributions of the rows ``chunk``: ``[rows, keys]`` for a head or the layer (``head=None``), or
    ``[heads, rows, keys]`` for ``head="all"`` (every head's own). ``weights(layer, chunk)``: where the
    heads' weights come from (default: computed from the capture)."""
    norms, gram = terms
    if head == "all":
        return (weights or capture._weights)(layer, None, chunk) * norms[:, None, :]
    if head is not None and weights is None:
        return capture._weights(layer, torch.tensor([head]), chunk)[0] * norms[head]
    if head is not None and weights is not None:
        return weights(layer, None, chunk)[head] * norms[head]
    # alpha^T G_j alpha for every (row, key): one multiply-add per pair of heads over [rows, keys], in
    # float64 (8x faster than a batched [heads x heads] product per key, which is too small to pay off)
    alpha = (weights or capture._weights)(layer, None, chunk).double()  # [heads, rows, keys]
    squared = torch.zeros(alpha.shape[1:], dtype=torch.float64)
    for h in range(alpha.shape[0]):
        inner = alpha[h] * gram[:, h, h]
        for g in range(h + 1, alpha.shape[0]):
            inner.addcmul_(alpha[g], gram[:, h, g], value=2.0)
        squared.addcmul_(alpha[h], inner)
    return squared.clamp_(min=0.0).sqrt_().float()


def _normalized(rows: np.ndarray) -> np.ndarray:
    sums = rows.sum(axis=-1, keepdims=True, dtype=np.float64)
    return np.divide(rows, sums, out=rows, where=sums > 0)


def contributions(capture: Capture, layer: int, head: int | None = None, rows: Rows = None, *,
                  normalize: bool = False) -> np.ndarray:
    """Value-weighted contributions of one layer: float32 ``[rows, keys]`` (see the module docstring).

    ``head``: a head, ``||alpha_ij^h f_h(x_j)||``; ``None``: the layer, ``||sum_h alpha_ij^h f_h(x_j)||``.
    ``rows``: query rows (a slice, an int or a list; default all). ``normalize``: each row divided by its
    sum (rows that are all zero stay zero), the form rollout over contributions uses. Needs
    ``capture(..., values=True)``."""
    layer = check_layer(layer, capture.num_layers)
    head = check_head(head, capture.num_heads)
    return _rows(capture, layer, head, rows, normalize)


def _rows(capture: Capture, layer: int, head: int | Literal["all"] | None, rows: Rows, normalize: bool,
          weights: WeightsFn | None = None) -> np.ndarray:
    _record(capture, layer, "contributions", values=True)
    row_index = capture._rows(rows)
    terms = _terms(capture, layer)
    heads, keys = capture.num_heads, capture.num_keys
    shape = ((heads,) if head == "all" else ()) + (len(row_index), keys)
    out = np.empty(shape, dtype=np.float32)
    block = max(1, BLOCK_ELEMENTS // max(1, keys * (1 if isinstance(head, int) else heads)))
    with torch.no_grad():
        for start in range(0, len(row_index), block):
            chunk = row_index[start:start + block]
            out[..., start:start + len(chunk), :] = _block(capture, layer, head, chunk, terms, weights).numpy()
    return _normalized(out) if normalize else out


class ContributionSource:
    """Contributions of a capture read like attention: every reader of the pattern engine (the fused
    pass, the widget's views with ``measure="contribution"``, rollout, the metrics and analyses) takes
    it where it takes a Capture. Each row is normalised to sum to 1, so colour scales, thresholds and
    rollout read it as they read weights: a head's row is its share of ``||alpha f_h(x_j)||``; the
    layer's (the "mean of heads" slot, :meth:`mean_rows`) is the share of ``||sum_h alpha f_h(x_j)||``,
    the layer measure of Kobayashi et al. 2020 (not the mean of the heads' rows). Rollout over it is Abnar
    & Zuidema's rollout of these row-normalised layer contributions, ``residual * I + (1 - residual) *
    N_l`` with rows renormalised (chaining contribution measures across layers as GlobEnc and ALTI do)."""

    caches_summaries = True  # the pattern engine's summaries are cached on it, as on a Capture

    # the capture's own, copied by __init__ (where the capture has them)
    num_layers: int
    num_heads: int
    num_tokens: int
    num_keys: int
    is_causal: bool
    is_cross: bool
    tokens: list[str]
    key_tokens: list[str]
    token_ids: np.ndarray
    model_name: str
    text: str | None
    offsets: np.ndarray
    special: np.ndarray
    image: np.ndarray | None
    patch_grid: tuple[int, int] | None
    patch_start: int
    layer_names: list[str]

    def __init__(self, capture: Capture) -> None:
        if not has_values(capture):
            raise ArgumentError(NEEDS_VALUES.format(what="measure='contribution'"))
        self.capture = capture
        # (layer, rows key, weights): the fused pass asks for a block's heads, then its mean
        self._last: tuple[tuple[int, int, int, int], torch.Tensor, torch.Tensor] | None = None
        for name in ("num_layers", "num_heads", "num_tokens", "num_keys", "is_causal", "is_cross", "tokens",
                     "key_tokens", "token_ids", "model_name", "text", "offsets", "special", "image", "patch_grid",
                     "patch_start", "layer_names"):
            if hasattr(capture, name):
                setattr(self, name, getattr(capture, name))

    def __repr__(self) -> str:
        return f"<ContributionSource of {self.capture!r}>"

    def _weights(self, layer: int, heads: torch.Tensor | None, chunk: torch.Tensor) -> torch.Tensor:
        """The capture's weights of every head for ``chunk``, the last block kept: the fused pass reads a
        block's heads and then its layer measure, which need the same weights."""
        key = (layer, len(chunk), int(chunk[0]) if len(chunk) else -1, int(chunk[-1]) if len(chunk) else -1)
        last = self._last  # one read: another thread (the widget's pass and its worker) may replace it
        if last is None or last[0] != key or not torch.equal(last[1], chunk):
            last = self._last = (key, chunk.clone(), self.capture._weights(layer, None, chunk))
        return last[2]

    def head_patterns(self, layer: int, rows: Rows = None) -> np.ndarray:
        """Every head's normalised contributions: float32 ``[head, rows, keys]``."""
        return _rows(self.capture, check_layer(layer, self.num_layers), "all", rows, True, self._weights)

    def pattern(self, layer: int, head: int | None = None, rows: Rows = None) -> np.ndarray:
        """One head's normalised contributions, or the layer's (``head=None``): float32 ``[rows, keys]``."""
        layer, head = check_layer(layer, self.num_layers), check_head(head, self.num_heads)
        return _rows(self.capture, layer, head, rows, True, self._weights)

    def mean_rows(self, layer: int, rows: Rows = None) -> np.ndarray:
        """The layer measure for the head-mean slot of the pattern engine: :meth:`pattern` with ``head=None``."""
        return self.pattern(layer, None, rows)

    def patterns(self, layers: Layers = None) -> np.ndarray:
        """``[layer, head, query, key]`` of the given layers (all by default); prefer :meth:`pattern` with rows."""
        from ._checks import check_layers

        return np.stack([self.head_patterns(l) for l in check_layers(layers, self.num_layers)])
