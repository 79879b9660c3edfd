"""Attention flow against the obvious networkx reference: one max-flow per (target, token) pair."""

import networkx as nx
import numpy as np
import pytest

from attnwidget._flow import flow_rows
from attnwidget.rollout import (
    RowAttribution,
    attention_flow,
    attention_flow_row,
    mixed_attention,
    rollout_row,
)


def random_attention(rng, layers, heads, n, causal, sparsity=0.0):
    a = rng.random((layers, heads, n, n)) ** 3
    if sparsity:
        a *= rng.random(a.shape) >= sparsity
    a[..., np.arange(n), np.arange(n)] += 1e-3
    if causal:
        a = np.tril(a)
    return (a / a.sum(-1, keepdims=True)).astype(np.float32)


def reference_flow(attn, targets, residual, fusion):
    """Paper-style reference: build the layered DiGraph with loops, one max-flow per pair."""
    M = mixed_attention(attn, residual, fusion)
    L, n, _ = M.shape
    G = nx.DiGraph()
    for layer in range(L + 1):
        for pos in range(n):
            G.add_node((layer, pos))
    for layer in range(L):
        for k in range(n):
            for i in range(n):
                if M[layer, k, i] > 0:
                    G.add_edge((layer + 1, k), (layer, i), capacity=float(M[layer, k, i]))
    out = np.zeros((len(targets), n))
    for r, t in enumerate(targets):
        for j in range(n):
            out[r, j] = nx.maximum_flow_value(G, (L, t), (0, j))
    return out


# (layers, heads, n, causal, fusion, residual, sparsity, targets)
CASES = [
    (1, 1, 1, False, "mean", 0.5, 0.0, [0]),
    (1, 2, 1, True, "max", 0.0, 0.0, [0]),
    (3, 2, 1, False, "min", 0.5, 0.0, [0]),
    (1, 2, 5, False, "mean", 0.5, 0.0, [0, 4]),
    (1, 3, 6, True, "mean", 0.2, 0.0, [5, 2]),
    (2, 2, 2, True, "mean", 0.5, 0.0, [1]),
    (2, 3, 4, False, "max", 0.5, 0.0, [0]),
    (3, 2, 5, True, "min", 0.5, 0.0, [4, 0]),
    (4, 2, 6, True, "mean", 0.0, 0.5, [5]),
    (4, 2, 6, False, "mean", 0.0, 0.6, [1, 3]),
    (5, 3, 7, True, "max", 0.3, 0.0, [6]),
    (5, 2, 7, False, "min", 0.9, 0.0, [2]),
    (3, 4, 8, True, "mean", 0.5, 0.0, [7, 3]),
    (3, 2, 8, False, "max", 0.0, 0.7, [0]),
    (6, 2, 5, True, "mean", 0.0, 0.6, [4]),
    (6, 1, 6, False, "mean", 0.1, 0.3, [5]),
    (2, 2, 8, True, "min", 0.0, 0.0, [7, 6, 1]),
    (4, 3, 7, False, "mean", 1.0, 0.0, [3]),
    (4, 2, 7, True, "mean", 1.0, 0.0, [6]),
    (7, 2, 6, True, "max", 0.0, 0.5, [5, 2]),
    (5, 2, 8, False, "mean", 0.5, 0.8, [0, 7]),
    (8, 1, 6, True, "mean", 0.0, 0.4, [5]),
    (3, 3, 9, True, "mean", 0.5, 0.0, [8]),
    (4, 1, 9, False, "min", 0.0, 0.5, [4]),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_flow_matches_networkx_reference(case):
    layers, heads, n, causal, fusion, residual, sparsity, targets = CASES[case]
    rng = np.random.default_rng(100 + case)
    attn = random_attention(rng, layers, heads, n, causal, sparsity)
    got = attention_flow(attn, targets, residual=residual, head_fusion=fusion)
    want = reference_flow(attn, targets, residual, fusion)
    assert got.shape == (len(targets), n) and got.dtype == np.float64
    np.testing.assert_allclose(got, want, atol=1e-9)


@pytest.mark.parametrize("seed", [2, 8, 16])
def test_multi_phase_searches_are_exercised_and_exact(seed):
    """Zero residual and peaked (Dirichlet) attention need several Dinic phases, i.e. augmenting
    paths that undo earlier flow, not just the first layering."""
    rng = np.random.default_rng(seed)
    a = rng.dirichlet(np.full(12, 0.2), size=(6, 1, 12))
    attn = np.tril(a) / np.tril(a).sum(-1, keepdims=True)
    M = mixed_attention(attn, 0.0, "mean")
    got, phases = flow_rows(M, [11], return_phases=True)
    assert phases.max() >= 4
    np.testing.assert_allclose(got, reference_flow(attn, [11], 0.0, "mean"), atol=1e-9)


def test_one_layer_flow_is_the_edge_capacity():
    rng = np.random.default_rng(8)
    attn = random_attention(rng, 1, 3, 6, causal=True)
    M = mixed_attention(attn)
    np.testing.assert_allclose(attention_flow(attn, [5, 3]), M[0, [5, 3]], atol=1e-15)


def test_flow_bounds_rollout_and_causality():
    """Rollout's proportional routing is a feasible flow, so flow >= rollout; flow <= 1."""
    rng = np.random.default_rng(9)
    for causal in (True, False):
        attn = random_attention(rng, 12, 3, 24, causal=causal)
        f = attention_flow_row(attn)
        r = rollout_row(attn)
        assert f.row == r.row
        assert np.all(f.values >= r.values - 1e-12)
        assert np.all(f.values <= 1 + 1e-12)
        if causal:
            g = attention_flow(attn, [10])[0]
            assert np.all(g[11:] == 0.0)


def test_default_target_is_reported():
    rng = np.random.default_rng(10)
    causal = random_attention(rng, 2, 2, 5, causal=True)
    enc = random_attention(rng, 2, 2, 5, causal=False)
    r = attention_flow_row(causal)
    assert isinstance(r, RowAttribution) and r.method == "attention_flow"
    assert r.row == 4 and "last token" in r.reason
    np.testing.assert_allclose(r.values, attention_flow(causal)[0])
    np.testing.assert_allclose(attention_flow(causal, -1), attention_flow(causal, [4]))
    r = attention_flow_row(enc)
    assert r.row == 0 and "first token" in r.reason
    np.testing.assert_allclose(r.values, attention_flow(enc)[0])


def test_start_layer_matches_sliced_input():
    rng = np.random.default_rng(11)
    attn = random_attention(rng, 5, 2, 6, causal=True)
    np.testing.assert_allclose(attention_flow(attn, start_layer=2), attention_flow(attn[2:]))


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda a: attention_flow("attention"), TypeError, "Capture, a NumPy array or tensor"),
        (lambda a: attention_flow(a, [4]), ValueError, "row 4 is out of range: there are 4 tokens"),
        (lambda a: attention_flow(a, 1.5), TypeError, "targets must be None, an int or a sequence"),
        (lambda a: attention_flow(a, ["x"]), TypeError, "row must be an int"),
        (lambda a: attention_flow(a, residual=-0.1), ValueError, "must lie in [0.0, 1.0]; got -0.1"),
        (lambda a: attention_flow(a, head_fusion="median"), ValueError, "head_fusion"),
        (lambda a: attention_flow(a, start_layer=9), ValueError, "out of range"),
        (lambda a: attention_flow_row(a, 9), ValueError, "row 9 is out of range: there are 4 tokens"),
    ],
)
def test_bad_input_errors(call, exc, words):
    attn = random_attention(np.random.default_rng(12), 3, 2, 4, causal=False)
    with pytest.raises(exc) as info:
        call(attn)
    assert words in str(info.value)
