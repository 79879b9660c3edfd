"""Information-flow routes (Ferrando & Voita 2024, "Information Flow Routes: Automatically Interpreting
Language Models at Scale"): the contribution graph that Meta's llm-transparency-tool draws.

A pre-LN block adds two sums to the residual stream, ``mid = x + attn(x)`` and ``out = mid + ffn(mid)``.
Each sum is split into parts, each part gets an importance (the paper's proximity), and the routes to
one target token keep the parts whose importance reaches a threshold. See :func:`flow_routes`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import _kernels
from ._checks import check_index, check_number
from .errors import ArgumentError, ArgumentTypeError, UnsupportedAttentionError

if TYPE_CHECKING:
    import networkx as nx

    from .capture import Capture

__all__ = ["flow_routes"]

#: float32 elements of one block of weights, ``[heads, rows, keys]`` (16 MiB).
BLOCK_ELEMENTS = 1 << 22

NEEDS_VALUES = ("flow_routes needs the values and the output projection of each layer: capture with "
                "capture(..., values=True), and add residual=True for the full graph (residual and FFN nodes).")


def flow_routes(capture: Capture, target: int | None = None, threshold: float = 0.04) -> nx.DiGraph:
    """The information-flow routes to one token (Ferrando & Voita 2024, "Information Flow Routes:
    Automatically Interpreting Language Models at Scale"; the graph of llm-transparency-tool): a
    :class:`networkx.DiGraph`, a DAG whose edges point up the layers to the target.

    ``capture``: a :class:`~attnwidget.Capture` from ``capture(model, tokenizer, text, values=True)``,
    with ``residual=True`` for the full graph. ``target``: the token whose output the routes explain
    (default: the last token of a causal capture, token 0 otherwise; negative counts from the end).
    ``threshold`` in ``[0, 1)``: edges whose importance is below it are dropped (so are edges of
    importance 0).

    **Importance** of a part ``z_k`` of a sum ``y = sum_m z_m`` (the paper's proximity, L1 norms)::

        imp(z_k, y) = max(||y||_1 - ||y - z_k||_1, 0) / sum_m max(||y||_1 - ||y - z_m||_1, 0)

    Parts that do not bring ``y`` closer get 0 (the paper's ``max(., 0)``; llm-transparency-tool clips
    at 1e-5 instead, which gives every part a tiny share). If no part has positive proximity, all get 0.

    **With the residual stream** (``capture(..., residual=True)``), for block ``l`` and token ``i``
    (``x_i^l``: the state entering block ``l``; ``alpha_ij^h``: the weights; ``f_h(x_j) = (x_j W_V^h +
    b_V^h) W_O^h``; ``b_O``: the output projection's bias):

    * attention: ``mid_i = x_i^l + sum_{h,j} c_hj + b_O`` with parts ``c_hj = alpha_ij^h f_h(x_j)`` (every
      head ``h`` and visible key ``j``) and ``x_i^l`` (``b_O`` is in the whole, not a part). Edge
      ``("res", l, j) -> ("mid", l, i)``: ``sum_h imp(c_hj, mid_i)``. The residual edge
      ``("res", l, i) -> ("mid", l, i)``: ``imp(x_i^l, mid_i)``; it joins the same nodes as the self edge
      ``j = i``, so the two are one edge whose importance is their sum.
    * FFN: ``out_i = x_i^{l+1} = mid_i + ffn_i`` with ``ffn_i = x_i^{l+1} - mid_i``. Edges
      ``("mid", l, i) -> ("ffn", l, i)`` and ``("ffn", l, i) -> ("res", l+1, i)``: ``imp(ffn_i, out_i)``;
      ``("mid", l, i) -> ("res", l+1, i)``: ``imp(mid_i, out_i)``.

    **Without it** (values only) there is no residual or FFN term: edges ``("res", l, j) -> ("res", l+1,
    i)`` carry ``sum_h imp(c_hj, a_i)`` in the attention output ``a_i = sum_{h,j} c_hj + b_O`` alone.

    **Routes** are built top-down as in the paper: from ``("res", L, target)``, each layer computes the
    incoming importances of the nodes already in the graph only, and keeps the edges at or above the
    threshold; so every node has a path to the target. Cost per layer: ``frontier x keys x heads x
    hidden`` in one pass that stores no part (compiled with the ``flow`` extra, in numpy chunks
    otherwise), plus the layer's ``f_h(x_j)`` (memory: ``heads x keys x hidden`` floats and blocks of
    weights of :data:`BLOCK_ELEMENTS`). ``threshold=0`` keeps every
    positive edge: up to ``layers x tokens^2`` edges, slow beyond a few hundred tokens.

    Nodes are ``(kind, layer, token)``: ``("res", l, i)`` the state entering block ``l`` (``l = L``: the
    model's output before the final norm), ``("mid", l, i)`` the state after block ``l``'s attention,
    ``("ffn", l, i)`` block ``l``'s FFN. Node attributes: ``kind``, ``layer``, ``token``, ``label`` (the
    token's string) and ``row`` (for a bottom-up layered drawing: ``2 * layer`` for ``res``,
    ``2 * layer + 1`` for ``mid`` and ``ffn``).

    Edge attributes: ``kind``: ``"attention"``, ``"residual"`` (``x_i -> mid_i`` and ``mid_i -> out_i``),
    ``"attention+residual"`` (the merged self edge; a merged edge whose attention term is 0 is
    ``"residual"``) or ``"ffn"``; ``layer``: the block; ``importance``; ``attention`` and ``residual``: the
    two terms (``importance`` is their sum; 0.0 where absent, both 0.0 on FFN edges); ``heads``: the ``H``
    per-head importances ``imp(c_hj)`` (``None`` on residual and FFN edges); ``head``: the head with the
    largest of them (``None`` there too).

    ``G.graph``: ``target``, ``threshold``, ``num_layers``, ``num_tokens``, ``tokens``, ``uses_residual``
    and ``model_name``.

    The decomposition assumes a pre-LN block that adds the output projection's result to the residual
    stream as it is, then the FFN's (Llama, Mistral, Qwen2/3, GPT-2, SmolLM2, ViT, CLIP). The capture checks
    it for every block (``capture.residual_checks``: the block's output was its input + the attention
    output + the output of the last linear layer it ran, to float rounding), and a capture where a block
    fails is refused: post-LN blocks (BERT, RoBERTa), norms or scales after the attention (Gemma 2, BEiT's
    layer scale) and mixture-of-experts FFNs. Without the residual stream (values only), routes through
    the attention outputs are built for any model. In parallel blocks (GPT-J, GPT-NeoX; not checked apart)
    ``mid_i`` is a partial sum: the FFN reads ``x_i``, not ``mid_i``.
    """
    import networkx as nx

    from ._recorder import QKRecord
    from .capture import Capture

    if not isinstance(capture, Capture) or capture.is_cross:
        raise ArgumentTypeError(f"flow_routes takes the Capture of one sequence (attnwidget.capture(...)); got "
                                f"{'cross-attention' if isinstance(capture, Capture) else type(capture).__name__}.")
    if not capture.has_values:
        raise ArgumentError(NEEDS_VALUES)
    n, layers = capture.num_tokens, capture.num_layers
    if target is None:
        target = n - 1 if capture.is_causal else 0
    target = check_index(target, n, "target", "tokens")
    threshold = check_number(threshold, "threshold")
    if not 0.0 <= threshold < 1.0:
        raise ArgumentError(f"threshold must lie in [0, 1) (importances of the parts of a sum add up to 1); "
                            f"got {threshold}.")
    residual = capture.residual
    first = capture._records[0]
    assert isinstance(first, QKRecord) and first.out_proj is not None  # has_values: every layer has both
    hidden = first.out_proj.shape[-1]
    if residual is not None and tuple(residual.shape) != (layers + 1, n, hidden):
        raise ArgumentError(f"capture.residual has shape {tuple(residual.shape)}; flow_routes expects "
                            f"[layers + 1, tokens, hidden] = {(layers + 1, n, hidden)}.")
    checks = getattr(capture, "residual_checks", None)
    if residual is not None and checks is not None and not all(checks):
        bad = [layer for layer, ok in enumerate(checks) if not ok]
        raise UnsupportedAttentionError(
            f"flow_routes splits each block as mid = x + attention output and out = mid + FFN output; in "
            f"{capture.model_name}, block{'s' if len(bad) > 1 else ''} {', '.join(map(str, bad[:5]))}"
            f"{' ...' if len(bad) > 5 else ''} did not compute its output that way (a norm after the sum, as "
            "post-LN BERT does, a norm or scale after the attention, as Gemma 2 and BEiT do, or a "
            "mixture-of-experts FFN), so these routes would not be what the model computes; attnwidget "
            "refuses rather than answer wrongly. Capture with values=True alone (without residual=True) for "
            "routes through the attention outputs."
        )
    graph = nx.DiGraph(target=target, threshold=threshold, num_layers=layers, num_tokens=n,
                       tokens=list(capture.tokens), uses_residual=residual is not None,
                       model_name=capture.model_name)
    _add_node(graph, ("res", layers, target))
    frontier = [target]
    with torch.no_grad():
        for layer in reversed(range(layers)):
            if not frontier:
                break
            frontier = _layer_routes(graph, capture, layer, frontier, threshold)
    return graph


def _layer_routes(graph: nx.DiGraph, capture: Capture, layer: int, frontier: list[int],
                  threshold: float) -> list[int]:
    """Add block ``layer``'s edges into the frontier tokens' ``("res", layer + 1, i)`` nodes; return the
    tokens whose ``("res", layer, j)`` node joined the graph."""
    residual = capture.residual
    top = ("res", layer + 1)
    sources = set()
    for rows, heads, own, ffn in _importances(capture, layer, frontier, residual):
        for b, i in enumerate(rows):
            if residual is None:
                into = top + (i,)
            else:
                assert ffn is not None  # yielded with the residual stream
                into = ("mid", layer, i)
                ffn_edge: dict[str, Any] = dict(kind="ffn", layer=layer, importance=float(ffn[0, b]), attention=0.0,
                                                residual=0.0, head=None, heads=None)
                if _kept(ffn_edge["importance"], threshold):
                    _add_node(graph, into)
                    _add_node(graph, ("ffn", layer, i))
                    graph.add_edge(into, ("ffn", layer, i), **ffn_edge)
                    graph.add_edge(("ffn", layer, i), top + (i,), **ffn_edge)
                if _kept(float(ffn[1, b]), threshold):
                    _add_node(graph, into)
                    graph.add_edge(into, top + (i,), **_edge(layer, None, float(ffn[1, b])))
                if into not in graph:
                    continue
            token = heads[:, b].sum(0, dtype=np.float64)
            if own is not None:
                token[i] += own[b]
            for j in np.flatnonzero((token > 0) & (token >= threshold)).tolist():
                _add_node(graph, ("res", layer, j))
                graph.add_edge(("res", layer, j), into,
                               **_edge(layer, heads[:, b, j], float(own[b]) if own is not None and j == i else 0.0))
                sources.add(j)
    return sorted(sources)


def _kept(importance: float, threshold: float) -> bool:
    return importance > 0.0 and importance >= threshold


def _edge(layer: int, heads: np.ndarray | None, residual: float) -> dict[str, Any]:
    """Attributes of an attention, residual or merged edge (``heads``: per-head importances or None)."""
    attention = 0.0 if heads is None else float(heads.sum(dtype=np.float64))
    kind = "attention+residual" if attention > 0 and residual > 0 else "residual" if residual > 0 else "attention"
    shown = heads if kind != "residual" else None
    return dict(kind=kind, layer=layer, importance=attention + residual, attention=attention, residual=residual,
                head=int(np.argmax(shown)) if shown is not None else None,
                heads=[float(v) for v in shown] if shown is not None else None)


def _add_node(graph: nx.DiGraph, key: tuple[str, int, int]) -> None:
    if key not in graph:
        kind, layer, token = key
        graph.add_node(key, kind=kind, layer=layer, token=token, label=graph.graph["tokens"][token],
                       row=2 * layer + (kind != "res"))


def _importances(capture: Capture, layer: int, rows: list[int], residual: torch.Tensor | None
                 ) -> Iterator[tuple[list[int], np.ndarray, np.ndarray | None, np.ndarray | None]]:
    """Per block of frontier rows: ``(rows, heads [H, B, k], own [B] | None, ffn [2, B] | None)``, numpy
    importances of the parts ``c_hj`` (keys ``0..k-1``), of ``x_i`` in ``mid_i``, and of ``(ffn_i, mid_i)``
    in ``out_i``. Without ``residual`` the whole is the attention output and ``own``, ``ffn`` are None."""
    outputs = capture.head_outputs(layer).contiguous()
    step = max(1, BLOCK_ELEMENTS // (outputs.shape[0] * outputs.shape[1]))
    for start in range(0, len(rows), step):
        block = rows[start:start + step]
        alpha, total = _attention_block(capture, layer, block, outputs)
        if residual is None:
            whole = total
        else:
            x = residual[layer, block]
            whole = x + total
        proximity = torch.empty(alpha.shape, dtype=torch.float32)
        _kernels.backend().part_proximity(whole.contiguous().numpy(), alpha.contiguous().numpy(), outputs.numpy(),
                                          proximity.numpy())
        own = None if residual is None else _proximity(x, whole)
        scale = _reciprocal(proximity.sum(dim=(0, 2)) + (0.0 if own is None else own))
        heads = (proximity * scale[None, :, None]).numpy()
        if residual is None:
            yield block, heads, None, None
            continue
        assert own is not None  # computed above, with the residual stream
        out = residual[layer + 1, block]
        ffn = _shares(_proximity(torch.stack([out - whole, whole]), out))
        yield block, heads, (own * scale).numpy(), ffn.numpy()


def _attention_block(capture: Capture, layer: int, rows: list[int],
                     outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(alpha [H, B, k], attention output [B, D])`` of query ``rows`` (``outputs``: the layer's head
    outputs ``f_h(x_j)``, ``[H, keys, D]``): the weights on the keys they can see (``k``: all keys, or up to
    the last row for causal attention) and ``sum_{h,j} alpha_ij^h f_h(x_j) + b_O``."""
    keys = max(rows) + 1 if capture.is_causal else outputs.shape[1]
    alpha = torch.from_numpy(capture.head_patterns(layer, rows=list(rows)))[..., :keys]
    total = torch.bmm(alpha, outputs[:, :keys]).sum(0)
    bias = getattr(capture._records[layer], "out_bias", None)
    return alpha, total if bias is None else total + bias.float()


def _proximity(parts: torch.Tensor, whole: torch.Tensor) -> torch.Tensor:
    """``max(||y||_1 - ||y - z||_1, 0)`` over the last dimension (``parts`` broadcast against ``whole``),
    summed per dimension as the kernels' ``part_proximity`` does."""
    return (whole.abs() - (whole - parts).abs()).sum(-1).clamp(min=0.0)


def _reciprocal(total: torch.Tensor) -> torch.Tensor:
    """``1 / total`` where ``total > 0``, else 0 (a sum none of whose parts brings it closer)."""
    return torch.where(total > 0, 1.0 / total.clamp(min=torch.finfo(total.dtype).tiny), 0.0)


def _shares(proximity: torch.Tensor) -> torch.Tensor:
    """Proximities ``[P, B]`` normalised over the parts."""
    return proximity * _reciprocal(proximity.sum(0))
