"""Rollout against a deliberately naive implementation of the paper's formula, plus API and errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnwidget.rollout import RowAttribution, mixed_attention, rollout, rollout_row


def random_attention(rng, layers, heads, n, causal, sparsity=0.0):
    """Row-stochastic ``[L, H, n, n]`` float32 attention (causal: zero strict upper triangle)."""
    a = rng.random((layers, heads, n, n)) ** 3
    if sparsity:
        a *= rng.random(a.shape) >= sparsity
    a[..., np.arange(n), np.arange(n)] += 1e-3  # no empty rows
    if causal:
        a = np.tril(a)
    return (a / a.sum(-1, keepdims=True)).astype(np.float32)


def naive_rollout(attn, residual=0.5, fusion="mean", start_layer=0):
    """The paper's recipe written out with loops: fuse, add identity, renormalise, multiply."""
    L, H, n, _ = attn.shape
    joint = None
    for layer in range(start_layer, L):
        fused = np.zeros((n, n))
        for i in range(n):
            for j in range(n):
                values = [float(attn[layer, h, i, j]) for h in range(H)]
                fused[i, j] = {"mean": sum(values) / H, "max": max(values), "min": min(values)}[fusion]
        aug = residual * np.eye(n) + (1 - residual) * fused
        for i in range(n):
            aug[i] = aug[i] / aug[i].sum()
        joint = aug if joint is None else aug @ joint
    return joint


class FakeCapture:
    """Duck-typed Capture: records which layers were asked for."""

    def __init__(self, arr, is_causal):
        self._arr = arr
        self.is_causal = is_causal
        self.num_layers = arr.shape[0]
        self.requests = []

    def patterns(self, layers=None):
        self.requests.append(None if layers is None else list(layers))
        return self._arr if layers is None else self._arr[list(layers)]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    layers=st.integers(1, 5),
    heads=st.integers(1, 4),
    n=st.integers(1, 7),
    causal=st.booleans(),
    fusion=st.sampled_from(["mean", "max", "min"]),
    residual=st.sampled_from([0.0, 0.25, 0.5, 0.9, 1.0]),
    data=st.data(),
)
def test_rollout_matches_naive_formula(seed, layers, heads, n, causal, fusion, residual, data):
    rng = np.random.default_rng(seed)
    attn = random_attention(rng, layers, heads, n, causal)
    start = data.draw(st.integers(0, layers - 1))
    got = rollout(attn, residual=residual, head_fusion=fusion, start_layer=start)
    want = naive_rollout(attn, residual, fusion, start)
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-9)
    if causal and n > 1:
        assert np.all(got[np.triu_indices(n, 1)] == 0.0)
    row = data.draw(st.integers(-n, n - 1))
    r = rollout_row(attn, row, residual=residual, head_fusion=fusion, start_layer=start)
    np.testing.assert_allclose(r.values, want[row], atol=1e-6)
    assert r.row == row % n


def test_causal_upper_triangle_is_exactly_zero_on_a_long_stack():
    rng = np.random.default_rng(0)
    attn = random_attention(rng, 24, 3, 40, causal=True)
    for fusion in ("mean", "max", "min"):
        R = rollout(attn, head_fusion=fusion)
        assert R.dtype == np.float64 and R.shape == (40, 40)
        assert np.count_nonzero(np.triu(R, 1)) == 0
        np.testing.assert_allclose(R.sum(1), 1.0, atol=1e-12)


def test_layers_and_start_layer_select_the_same_stack():
    rng = np.random.default_rng(1)
    attn = random_attention(rng, 6, 2, 5, causal=False)
    a = rollout(attn, start_layer=2)
    b = rollout(attn, layers=[2, 3, 4, 5])
    c = rollout(attn[2:])
    np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(a, c)
    d = rollout(attn, layers=[0, 3, 5], start_layer=3)
    np.testing.assert_allclose(d, rollout(attn[[3, 5]]))
    np.testing.assert_allclose(rollout(attn, start_layer=-1), rollout(attn[5:]))


def test_mixed_attention_definition():
    rng = np.random.default_rng(2)
    attn = random_attention(rng, 3, 4, 6, causal=True)
    M = mixed_attention(attn, 0.3, "max")
    assert M.shape == (3, 6, 6) and M.dtype == np.float64
    fused = attn.astype(np.float64).max(1)
    expect = 0.3 * np.eye(6) + 0.7 * fused
    expect /= expect.sum(-1, keepdims=True)
    np.testing.assert_allclose(M, expect, atol=1e-12)
    np.testing.assert_allclose(mixed_attention(attn, start_layer=1), mixed_attention(attn[1:]))


def test_default_rows_say_which_and_why():
    rng = np.random.default_rng(3)
    causal = random_attention(rng, 2, 2, 5, causal=True)
    enc = random_attention(rng, 2, 2, 5, causal=False)
    r = rollout_row(causal)
    assert isinstance(r, RowAttribution) and r.method == "rollout"
    assert r.row == 4 and "last token" in r.reason
    np.testing.assert_allclose(r.values, rollout(causal)[4])
    r = rollout_row(enc)
    assert r.row == 0 and "first token" in r.reason
    np.testing.assert_allclose(r.values, rollout(enc)[0])
    r = rollout_row(enc, -2)
    assert r.row == 3 and "caller" in r.reason


def test_capture_is_read_one_layer_at_a_time():
    rng = np.random.default_rng(4)
    attn = random_attention(rng, 4, 2, 5, causal=True)
    cap = FakeCapture(attn, is_causal=True)
    np.testing.assert_allclose(rollout(cap, start_layer=1), rollout(attn, start_layer=1))
    assert cap.requests == [[1], [2], [3]]
    assert rollout_row(cap).row == 4


def test_torch_tensor_input():
    import torch
    rng = np.random.default_rng(5)
    attn = random_attention(rng, 2, 2, 4, causal=False)
    np.testing.assert_allclose(rollout(torch.from_numpy(attn)), rollout(attn))


def test_one_token_one_layer():
    attn = np.ones((1, 1, 1, 1), dtype=np.float32)
    assert rollout(attn).tolist() == [[1.0]]
    assert rollout_row(attn).values.tolist() == [1.0]


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda a: rollout([[1.0]]), TypeError, "Capture, a NumPy array or tensor"),
        (lambda a: rollout(a[0]), ValueError, "[layer, head, query, key]"),
        (lambda a: rollout(a, residual=1.5), ValueError, "must lie in [0.0, 1.0]; got 1.5"),
        (lambda a: rollout(a, residual="half"), TypeError, "residual"),
        (lambda a: rollout(a, head_fusion="sum"), ValueError, "'mean', 'max', 'min'"),
        (lambda a: rollout(a, start_layer=3), ValueError, "start_layer 3 is out of range: there are 3 layers"),
        (lambda a: rollout(a, start_layer=1.0), TypeError, "start_layer must be an int"),
        (lambda a: rollout(a, layers=[0, 7]), ValueError, "out of range"),
        (lambda a: rollout(a, layers=[2, 1]), ValueError, "strictly increasing"),
        (lambda a: rollout(a, layers=[0], start_layer=1), ValueError, "no layer left"),
        (lambda a: rollout(-a), ValueError, "negative"),
        (lambda a: rollout(a * np.nan), ValueError, "non-finite weight (nan)"),
        (lambda a: rollout_row(a, 4), ValueError, "row 4 is out of range: there are 4 tokens"),
        (lambda a: rollout_row(a, "last"), TypeError, "row must be an int"),
        (lambda a: rollout(a[:, :0]), ValueError, "empty axis"),
    ],
)
def test_bad_input_errors(call, exc, words):
    attn = random_attention(np.random.default_rng(6), 3, 2, 4, causal=False)
    with pytest.raises(exc) as info:
        call(attn)
    assert words in str(info.value)
