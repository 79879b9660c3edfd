"""attnwidget.flow_routes: information-flow routes (Ferrando & Voita 2024) on a case worked out by hand,
on a tiny random Llama with grouped-query attention and on SmolLM2 (faithful to the model's own sums)."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
import torch

import attnwidget
from attnwidget import routes
from attnwidget._recorder import QKRecord
from attnwidget.capture import Capture
from attnwidget.errors import ArgumentError, ArgumentTypeError, OutOfRangeError
from helpers import tiny_model

# ----------------------------------------------------------------------------- the hand-built case
# Two layers, three tokens, one head, hidden size 2, out_proj = identity (so f(x_j) = v_j). Query i's
# weights are chosen directly: with keys e_j and scaling 1, query log(w_i) gives softmax = w_i (causal
# attention renormalises over keys <= i: row 0 of layer 1 is [1, 0, 0] there, [0.5, 0.5, 0] otherwise).
WEIGHTS = [
    [[1.0, 0, 0], [0.5, 0.5, 0], [0.25, 0.5, 0.25]],  # layer 0
    [[0.5, 0.5, 0], [0.5, 0.5, 0], [0.5, 0.25, 0.25]],  # layer 1
]
VALUES = [[[2.0, 2], [0, 4], [-4, 0]], [[4.0, 0], [0, 4], [0, -4]]]
BIASES = [[1.0, 0], None]
RESIDUAL = [[[2.0, 0], [0, 2], [1, -1]],  # entering layer 0
            [[4.0, 4], [3, 5], [1, 1]],  # entering layer 1
            [[7.0, 6], [1, 1], [5, 1]]]  # leaving layer 1


def hand_capture(residual: bool = True, causal: bool = True) -> Capture:
    records = []
    for weights, values, bias in zip(WEIGHTS, VALUES, BIASES):
        query = torch.log(torch.tensor(weights).clamp(min=1e-30))[None]  # [1 head, 3, 3]
        records.append(QKRecord(f"layers.{len(records)}", query, torch.eye(3)[None], -1, causal, 1.0,
                                value=torch.tensor(values)[None], out_proj=torch.eye(2)[None],
                                out_bias=None if bias is None else torch.tensor(bias)))
    ends = np.arange(1, 4)
    return Capture(records=records, masks=[], token_ids=np.arange(3), tokens=["a", "b", "c"],
                   offsets=np.stack([ends - 1, ends], 1), special=np.zeros(3, bool), generated=np.zeros(3, bool),
                   partial=np.zeros(3, bool), text="abc", model_name="hand", is_causal=causal, num_heads=1,
                   residual=torch.tensor(RESIDUAL) if residual else None)


def edges(graph) -> dict:
    return {(u, v): d["importance"] for u, v, d in graph.edges(data=True)}


def test_hand_case_with_residual():
    # Worked by hand (L1 norms; prox(z, y) = ||y|| - ||y - z||, clipped at 0, then normalised):
    # block 1, token 2: mid = [1,1] + 0.5[4,0] + 0.25[0,4] + 0.25[0,-4] = [3,1], ||mid|| = 4.
    #   prox: x [1,1] -> 4-2 = 2; c0 [2,0] -> 4-2 = 2; c1 [0,1] -> 4-3 = 1; c2 [0,-1] -> 4-5 < 0 -> 0.
    #   imp: x 0.4, c0 0.4, c1 0.2 (pruned at 0.25), c2 0. Self edge: residual 0.4 + attention 0.
    #   FFN: out = [5,1], ffn = [2,0]: prox(ffn) = 6-4 = 2, prox(mid) = 6-2 = 4 -> 1/3 and 2/3.
    # block 0, token 0: mid = [2,0] + [2,2] + b [1,0] = [5,2] (7); x -> 7-5 = 2, c0 -> 7-3 = 4: 1/3 + 2/3.
    #   FFN: out = [4,4] (8), ffn = [-1,2]: prox 8-7 = 1, mid 8-3 = 5 -> 1/6 (pruned), 5/6.
    # block 0, token 2: mid = [1,-1] + [0.5,0.5] + [0,2] + [-1,0] + [1,0] = [1.5,1.5] (3);
    #   x -> 3-3 = 0; c0 -> 3-2 = 1; c1 -> 3-2 = 1; c2 -> 3-4 < 0: c0 0.5, c1 0.5, self edge 0 (absent).
    #   FFN: out = [1,1] (2), ffn = [-0.5,-0.5]: prox 2-3 < 0 -> 0, mid 2-1 = 1 -> 0 (absent), 1.
    graph = attnwidget.flow_routes(hand_capture(), threshold=0.25)
    expected = {
        (("mid", 1, 2), ("ffn", 1, 2)): 1 / 3, (("ffn", 1, 2), ("res", 2, 2)): 1 / 3,
        (("mid", 1, 2), ("res", 2, 2)): 2 / 3,
        (("res", 1, 0), ("mid", 1, 2)): 0.4, (("res", 1, 2), ("mid", 1, 2)): 0.4,
        (("mid", 0, 0), ("res", 1, 0)): 5 / 6, (("res", 0, 0), ("mid", 0, 0)): 1.0,
        (("mid", 0, 2), ("res", 1, 2)): 1.0,
        (("res", 0, 0), ("mid", 0, 2)): 0.5, (("res", 0, 1), ("mid", 0, 2)): 0.5,
    }
    found = edges(graph)
    assert found.keys() == expected.keys()
    for key, value in expected.items():
        assert found[key] == pytest.approx(value, abs=1e-6), key
    # pruned: token 1's edge into block 1 (0.2), both FFNs of block 0, token 2's own state entering block 0
    assert set(graph.nodes) == {n for e in expected for n in e}
    for absent in [("res", 1, 1), ("ffn", 0, 0), ("ffn", 0, 2), ("res", 0, 2), ("mid", 1, 0), ("mid", 0, 1)]:
        assert absent not in graph

    merged = graph.edges[("res", 0, 0), ("mid", 0, 0)]
    assert merged["kind"] == "attention+residual"
    assert (merged["attention"], merged["residual"]) == pytest.approx((2 / 3, 1 / 3))
    assert merged["heads"] == pytest.approx([2 / 3]) and merged["head"] == 0
    own = graph.edges[("res", 1, 2), ("mid", 1, 2)]
    assert (own["kind"], own["head"], own["heads"]) == ("residual", None, None)
    assert (own["attention"], own["residual"]) == pytest.approx((0.0, 0.4))
    assert graph.edges[("res", 1, 0), ("mid", 1, 2)]["kind"] == "attention"
    assert graph.edges[("mid", 1, 2), ("ffn", 1, 2)]["kind"] == "ffn"
    assert graph.edges[("mid", 1, 2), ("res", 2, 2)]["kind"] == "residual"
    assert graph.nodes[("mid", 1, 2)] == dict(kind="mid", layer=1, token=2, label="c", row=3)
    assert graph.nodes[("res", 0, 1)]["row"] == 0 and graph.nodes[("ffn", 1, 2)]["row"] == 3
    assert graph.graph == dict(target=2, threshold=0.25, num_layers=2, num_tokens=3, tokens=["a", "b", "c"],
                               uses_residual=True, model_name="hand")

    # a lower threshold keeps token 1's edge into block 1 and the FFN of token 0 (1/6)
    low = edges(attnwidget.flow_routes(hand_capture(), threshold=0.1))
    assert low[("res", 1, 1), ("mid", 1, 2)] == pytest.approx(0.2)
    assert low[("ffn", 0, 0), ("res", 1, 0)] == pytest.approx(1 / 6)


def test_hand_case_values_only():
    # No residual: the whole is the attention output. Block 1, token 2: a = [2,0] + [0,1] + [0,-1] = [2,0];
    # prox c0 = 2-0 = 2, c1 = 2-3 < 0, c2 = 2-3 < 0: only token 0, importance 1.
    # Block 0, token 0: a = [2,2] + b [1,0] = [3,2] (5); c0 -> 5-1 = 4: importance 1 (b_O is no part).
    graph = attnwidget.flow_routes(hand_capture(residual=False), threshold=0.0)
    assert edges(graph) == {(("res", 1, 0), ("res", 2, 2)): pytest.approx(1.0),
                            (("res", 0, 0), ("res", 1, 0)): pytest.approx(1.0)}
    edge = graph.edges[("res", 0, 0), ("res", 1, 0)]
    assert (edge["kind"], edge["layer"], edge["residual"], edge["head"]) == ("attention", 0, 0.0, 0)
    assert graph.graph["uses_residual"] is False
    assert {d["kind"] for _, d in graph.nodes(data=True)} == {"res"}


def test_hand_case_bidirectional():
    # Not causal: the default target is token 0, and it reads a later key.
    # block 1, token 0: mid = [4,4] + 0.5[4,0] + 0.5[0,4] = [6,6] (12); x [4,4] -> 12-4 = 8;
    #   c0 [2,0] -> 12-10 = 2; c1 [0,2] -> 12-10 = 2: x 2/3, c0 1/6, c1 1/6 (key 1 is after token 0).
    #   FFN: out = [7,6] (13), ffn = [1,0]: 13-12 = 1, mid 13-1 = 12 -> 1/13, 12/13.
    # block 0, token 0: as in the causal case (1/3 + 2/3; FFN 1/6, 5/6).
    # block 0, token 1: mid = [0,2] + 0.5[2,2] + 0.5[0,4] + b [1,0] = [2,5] (7); x [0,2] -> 7-5 = 2;
    #   c0 [1,1] -> 7-5 = 2; c1 [0,2] -> 7-5 = 2: 1/3 each. FFN: out = [3,5] (8), ffn = [1,0] -> 1/8, 7/8.
    graph = attnwidget.flow_routes(hand_capture(causal=False))
    assert graph.graph["target"] == 0
    expected = {
        (("mid", 1, 0), ("ffn", 1, 0)): 1 / 13, (("ffn", 1, 0), ("res", 2, 0)): 1 / 13,
        (("mid", 1, 0), ("res", 2, 0)): 12 / 13,
        (("res", 1, 0), ("mid", 1, 0)): 5 / 6, (("res", 1, 1), ("mid", 1, 0)): 1 / 6,
        (("mid", 0, 0), ("ffn", 0, 0)): 1 / 6, (("ffn", 0, 0), ("res", 1, 0)): 1 / 6,
        (("mid", 0, 0), ("res", 1, 0)): 5 / 6, (("res", 0, 0), ("mid", 0, 0)): 1.0,
        (("mid", 0, 1), ("ffn", 0, 1)): 1 / 8, (("ffn", 0, 1), ("res", 1, 1)): 1 / 8,
        (("mid", 0, 1), ("res", 1, 1)): 7 / 8,
        (("res", 0, 0), ("mid", 0, 1)): 1 / 3, (("res", 0, 1), ("mid", 0, 1)): 2 / 3,
    }
    found = edges(graph)
    assert found.keys() == expected.keys()
    for key, value in expected.items():
        assert found[key] == pytest.approx(value, abs=1e-6), key
    own = graph.edges[("res", 1, 0), ("mid", 1, 0)]
    assert (own["kind"], own["attention"], own["residual"]) == ("attention+residual", pytest.approx(1 / 6),
                                                                pytest.approx(2 / 3))
    assert nx.is_directed_acyclic_graph(graph)


# ----------------------------------------------------------------------------- real models


def check_contract(graph, cap, target: int) -> None:
    """Non-empty, a DAG, every node reaches the target, attributes of the documented types."""
    top = ("res", cap.num_layers, target)
    assert graph.number_of_edges() > 0 and nx.is_directed_acyclic_graph(graph)
    assert set(nx.ancestors(graph, top)) | {top} == set(graph.nodes)
    for (kind, layer, token), data in graph.nodes(data=True):
        assert data == dict(kind=kind, layer=layer, token=token, label=cap.tokens[token],
                            row=2 * layer + (kind != "res"))
    for u, v, d in graph.edges(data=True):
        assert d["kind"] in ("attention", "residual", "attention+residual", "ffn")
        assert type(d["layer"]) is int and d["layer"] == u[1]
        assert all(type(d[k]) is float for k in ("importance", "attention", "residual"))
        assert 0 < d["importance"] <= 1 + 1e-5 and d["importance"] >= graph.graph["threshold"]
        if d["kind"] in ("residual", "ffn"):
            assert d["head"] is None and d["heads"] is None
        else:
            assert type(d["head"]) is int and len(d["heads"]) == cap.num_heads
            assert sum(d["heads"]) == pytest.approx(d["attention"], abs=1e-6)
            assert d["heads"][d["head"]] == max(d["heads"])
        assert d["importance"] == pytest.approx(d["attention"] + d["residual"], abs=1e-6) or d["kind"] == "ffn"


def dense_reference(cap, layer: int):
    """Plain float64 reference with every part stored: importances ``[query, key]`` of the keys (heads
    summed), ``[query]`` of the residual in ``mid``, and ``[2, query]`` of ``(ffn, mid)`` in ``out``."""
    def proximity(z, y):
        return (y.abs().sum(-1) - (y - z).abs().sum(-1)).clamp(min=0)

    parts = torch.from_numpy(cap.head_patterns(layer)).double()[..., None] * cap.head_outputs(layer).double()[:, None]
    bias = cap._records[layer].out_bias
    x, out = cap.residual[layer].double(), cap.residual[layer + 1].double()
    mid = x + parts.sum((0, 2)) + (0 if bias is None else bias.double())
    keys, own = proximity(parts, mid[None, :, None]).sum(0), proximity(x, mid)
    total = keys.sum(1) + own
    ffn = torch.stack([proximity(out - mid, out), proximity(mid, out)])
    return keys / total[:, None], own / total, ffn / ffn.sum(0)


def test_tiny_llama_matches_dense_reference(byte_tokenizer):
    cap = attnwidget.capture(tiny_model("llama"), byte_tokenizer, "The cat sat on the mat.", values=True,
                             residual=True)
    reference = [dense_reference(cap, l) for l in range(cap.num_layers)]
    for threshold in (0.0, 0.05):
        graph = attnwidget.flow_routes(cap, threshold=threshold)
        for u, v, d in graph.edges(data=True):
            keys, own, ffn = reference[d["layer"]]
            i = v[2]
            expected = (keys[i, u[2]] + (own[i] if u[2] == i else 0) if v[0] == "mid" else
                        ffn[0, i] if "ffn" in (u[0], v[0]) else ffn[1, i])
            assert d["importance"] == pytest.approx(float(expected), abs=1e-5), (u, v)
        for node in [n for n in graph if n[0] == "mid"]:  # every key at or above the threshold is there
            keys, own, _ = reference[node[1]]
            row = keys[node[2]].clone()
            row[node[2]] += own[node[2]]
            wanted = {j for j in range(cap.num_tokens) if row[j] >= threshold + 1e-4 and row[j] > 1e-4}
            assert wanted <= {u[2] for u in graph.predecessors(node)}


def test_tiny_llama_with_gqa(byte_tokenizer):
    model = tiny_model("llama")
    ids = torch.tensor([byte_tokenizer("The cat sat on the mat.")["input_ids"]])
    with torch.no_grad():
        before = model(ids).logits.clone()
    cap = attnwidget.capture(model, byte_tokenizer, "The cat sat on the mat.", values=True, residual=True)
    graph = attnwidget.flow_routes(cap)
    check_contract(graph, cap, cap.num_tokens - 1)
    assert graph.graph["uses_residual"] and graph.graph["target"] == cap.num_tokens - 1
    assert attnwidget.flow_routes(cap, target=-2).graph["target"] == cap.num_tokens - 2
    assert attnwidget.flow_routes(cap, threshold=0.0).number_of_edges() >= graph.number_of_edges()
    values_only = attnwidget.capture(model, byte_tokenizer, "The cat sat on the mat.", values=True)
    check_contract(attnwidget.flow_routes(values_only), values_only, values_only.num_tokens - 1)
    assert model.config._attn_implementation == "sdpa"
    with torch.no_grad():
        assert torch.equal(before, model(ids).logits)


SHORT = "The cat sat on the mat because it was warm and the sun shone on it."


@pytest.fixture(scope="module")
def smollm2_capture(smollm2):
    model, tokenizer = smollm2
    return attnwidget.capture(model, tokenizer, SHORT, values=True, residual=True)


def test_smollm2_routes(smollm2_capture):
    cap = smollm2_capture
    assert 12 <= cap.num_tokens <= 30
    graph = attnwidget.flow_routes(cap)
    check_contract(graph, cap, cap.num_tokens - 1)


def test_smollm2_decomposition_is_faithful(smollm2, smollm2_capture):
    """x^l + sum_{h,j} alpha f_h(x_j) + b_O is the model's own state after attention, and adding the MLP's
    output to it gives the next residual state."""
    model, cap = smollm2[0], smollm2_capture
    seen: dict = {}
    hooks = [module.register_forward_hook(lambda m, args, out, key=(part, l): seen.__setitem__(
                 key, (out[0] if isinstance(out, tuple) else out)[0].detach().float()))
             for l, layer in enumerate(model.model.layers) for part, module in (("attn", layer.self_attn),
                                                                                  ("mlp", layer.mlp))]
    try:
        with torch.no_grad():
            model(torch.from_numpy(cap.token_ids)[None])
    finally:
        for hook in hooks:
            hook.remove()
    rows = list(range(cap.num_tokens))
    for l in range(cap.num_layers):
        _, total = routes._attention_block(cap, l, rows, cap.head_outputs(l))
        mid = cap.residual[l] + total
        real = cap.residual[l] + seen["attn", l]
        assert (mid - real).norm() <= 1e-4 * real.norm(), l
        after = mid + seen["mlp", l]
        assert (after - cap.residual[l + 1]).norm() <= 1e-4 * cap.residual[l + 1].norm(), l


# ----------------------------------------------------------------------------- bad input


def test_errors():
    with pytest.raises(ArgumentError, match=r"capture\(\.\.\., values=True\)"):
        attnwidget.flow_routes(Capture.from_attentions(np.full((1, 1, 2, 2), 0.5, np.float32)))
    with pytest.raises(ArgumentTypeError, match="Capture"):
        attnwidget.flow_routes(np.zeros((2, 1, 3, 3)))
    cap = hand_capture()
    with pytest.raises(OutOfRangeError, match="target 3 is out of range"):
        attnwidget.flow_routes(cap, target=3)
    with pytest.raises(OutOfRangeError):
        attnwidget.flow_routes(cap, target=-4)
    with pytest.raises(ArgumentTypeError, match="target must be an int"):
        attnwidget.flow_routes(cap, target=1.0)
    for bad in (1.0, -0.1, 2):
        with pytest.raises(ArgumentError, match=r"threshold must lie in"):
            attnwidget.flow_routes(cap, threshold=bad)
    for bad in (math.nan, "0.1", True):
        with pytest.raises((ArgumentError, ArgumentTypeError), match="threshold"):
            attnwidget.flow_routes(cap, threshold=bad)
    cap.residual = cap.residual[:2]
    with pytest.raises(ArgumentError, match="capture.residual has shape"):
        attnwidget.flow_routes(cap)
