"""Exact values on hand-built patterns, properties on random ones, and error messages for metrics.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnwidget import metrics as m

ALL = [name for name in m.METRICS if name != "pattern_match"]


# ----------------------------------------------------------------------------- helpers


class FakeCapture:
    """The Capture surface the metrics use: patterns(layers), is_causal, sizes, token_ids."""

    def __init__(self, arr, is_causal=True, token_ids=None):
        self._arr = np.asarray(arr, dtype=np.float32)
        self.is_causal = is_causal
        self.num_layers, self.num_heads, self.num_tokens = self._arr.shape[:3]
        self.token_ids = token_ids
        self.calls = []

    def patterns(self, layers=None):
        self.calls.append(None if layers is None else list(layers))
        return self._arr if layers is None else self._arr[list(layers)]


def heads(*patterns) -> np.ndarray:
    """Stack [q, k] patterns as the heads of one layer: [1, H, q, k] float64."""
    return np.stack(patterns)[None].astype(np.float64)


def random_causal(rng, layers, n_heads, n, scale=3.0, causal=True, dtype=np.float32):
    logits = rng.standard_normal((layers, n_heads, n, n)) * scale
    if causal:
        logits[..., np.triu(np.ones((n, n), dtype=bool), 1)] = -np.inf
    logits -= logits.max(-1, keepdims=True)
    p = np.exp(logits)
    return (p / p.sum(-1, keepdims=True)).astype(dtype)


def naive(p: np.ndarray, causal: bool) -> dict[str, float]:
    """Reference values for one [n, n] head, row by row (token loops are fine in a test)."""
    n = p.shape[0]
    rows = [i for i in range(n) if (i + 1 if causal else n) >= 2] or [0]
    vals = {k: [] for k in ("entropy", "normalized_entropy", "sparsity", "coverage", "mean_distance", "locality", "sink_score", "max_weight")}
    for i in rows:
        vis = p[i, : i + 1] if causal else p[i]
        h = -sum(x * math.log(x) for x in vis if x > 0)
        vals["entropy"].append(h)
        vals["normalized_entropy"].append(h / math.log(len(vis)) if len(vis) > 1 else 0.0)
        vals["sparsity"].append(sum(x < 0.01 for x in vis) / len(vis))
        vals["coverage"].append(sum(x > 0.01 for x in vis) / len(vis))
        d = sum(x * abs(i - j) for j, x in enumerate(vis))
        vals["mean_distance"].append(d)
        vals["locality"].append(1 / (1 + d))
        vals["sink_score"].append(vis[0])
        vals["max_weight"].append(max(vis))
    out = {k: float(np.mean(v)) for k, v in vals.items()}
    col = np.mean([p[i] for i in rows], axis=0)
    out["focus_consistency"] = float(np.sort(col)[-3:].sum())
    return out


# ----------------------------------------------------------------------------- hand-built patterns

N = 6
UNIFORM = m.reference_pattern("uniform", N)
DIAGONAL = m.reference_pattern("diagonal", N)
PREVIOUS = m.reference_pattern("previous", N)
FIRST = m.reference_pattern("first", N)
H = sum(1 / k for k in range(2, N + 1)) / (N - 1)  # mean over rows 1..5 of 1/(i+1)


def test_reference_patterns_by_hand():
    assert PREVIOUS[0, 0] == 1 and PREVIOUS[3, 2] == 1 and PREVIOUS.sum() == N
    assert np.array_equal(DIAGONAL, np.eye(N))
    assert np.all(FIRST[:, 0] == 1)
    assert UNIFORM[2].tolist() == [1 / 3, 1 / 3, 1 / 3, 0, 0, 0]
    local = m.reference_pattern("local", N, window=2)
    assert local[0].tolist() == [1, 0, 0, 0, 0, 0] and local[4].tolist() == [0, 0, 0, 0.5, 0.5, 0]
    assert np.all(m.reference_pattern("uniform", 3, causal=False) == 1 / 3)


def test_uniform_causal():
    got = m.compute_metrics(heads(UNIFORM))
    rows = range(1, N)  # row 0 has one visible key and is left out
    assert got["entropy"][0, 0] == pytest.approx(np.mean([math.log(i + 1) for i in rows]))
    assert got["normalized_entropy"][0, 0] == pytest.approx(1.0)
    assert got["sparsity"][0, 0] == 0.0
    assert got["coverage"][0, 0] == 1.0
    assert got["mean_distance"][0, 0] == pytest.approx(np.mean([i / 2 for i in rows]))  # mean of 0..i is i/2
    assert got["locality"][0, 0] == pytest.approx(np.mean([1 / (1 + i / 2) for i in rows]))
    assert got["sink_score"][0, 0] == pytest.approx(H)
    assert got["max_weight"][0, 0] == pytest.approx(H)
    # column mass of key j: (1/5) * sum_{i>=max(j,1)} 1/(i+1); keys 0, 1, 2 are the top 3
    col = [sum(1 / (i + 1) for i in range(max(j, 1), N)) / (N - 1) for j in range(N)]
    assert got["focus_consistency"][0, 0] == pytest.approx(col[0] + col[1] + col[2])
    # rows 1..5 have weights 1/2, 1/3, 1/4, 1/5, 1/6: the last three are below 0.3
    assert m.sparsity(heads(UNIFORM), threshold=0.3)[0, 0] == pytest.approx(np.mean([0, 0, 1, 1, 1]))


def test_one_hot_first_token():
    got = m.compute_metrics(heads(FIRST))
    assert got["entropy"][0, 0] == 0.0 and got["normalized_entropy"][0, 0] == 0.0
    assert got["sparsity"][0, 0] == pytest.approx(np.mean([i / (i + 1) for i in range(1, N)]))
    assert got["coverage"][0, 0] == pytest.approx(H)
    assert got["mean_distance"][0, 0] == pytest.approx(np.mean(range(1, N)))  # 3
    assert got["locality"][0, 0] == pytest.approx(H)  # 1/(1+i)
    assert got["focus_consistency"][0, 0] == 1.0
    assert got["sink_score"][0, 0] == 1.0 and got["max_weight"][0, 0] == 1.0


def test_diagonal_identity():
    got = m.compute_metrics(heads(DIAGONAL))
    assert got["entropy"][0, 0] == 0.0
    assert got["sparsity"][0, 0] == pytest.approx(np.mean([i / (i + 1) for i in range(1, N)]))
    assert got["mean_distance"][0, 0] == 0.0 and got["locality"][0, 0] == 1.0
    assert got["focus_consistency"][0, 0] == pytest.approx(3 / 5)  # rows 1..5 on keys 1..5, 1/5 each
    assert got["sink_score"][0, 0] == 0.0 and got["max_weight"][0, 0] == 1.0


def test_previous_token():
    got = m.compute_metrics(heads(PREVIOUS))
    assert got["entropy"][0, 0] == 0.0
    assert got["mean_distance"][0, 0] == 1.0
    assert got["locality"][0, 0] == 0.5
    assert got["sink_score"][0, 0] == pytest.approx(1 / 5)  # only row 1 looks at key 0
    assert got["focus_consistency"][0, 0] == pytest.approx(3 / 5)


def test_bidirectional_uniform_uses_every_row():
    p = np.full((1, 1, 4, 4), 0.25)
    got = m.compute_metrics(p)
    assert got["entropy"][0, 0] == pytest.approx(math.log(4))
    assert got["normalized_entropy"][0, 0] == pytest.approx(1.0)
    assert got["mean_distance"][0, 0] == pytest.approx((1.5 + 1 + 1 + 1.5) / 4)
    assert got["sink_score"][0, 0] == 0.25 and got["focus_consistency"][0, 0] == 0.75


def test_single_token_rows_have_defined_values():
    got = m.compute_metrics(np.ones((2, 3, 1, 1), dtype=np.float32), expected="uniform")
    expect = dict(entropy=0, normalized_entropy=0, sparsity=0, coverage=1, mean_distance=0, locality=1,
                  focus_consistency=1, sink_score=1, max_weight=1, pattern_match=1)
    for name, value in expect.items():
        assert got[name].shape == (2, 3) and np.all(got[name] == value), name


def test_pattern_match_by_hand():
    p = heads(PREVIOUS, DIAGONAL, UNIFORM)
    assert m.pattern_match(p, "previous")[0].tolist() == [1.0, 0.0, pytest.approx(m.pattern_match(heads(UNIFORM), PREVIOUS)[0, 0])]
    # uniform over 2 keys vs one-hot: JSD = H(3/4, 1/4) - 1/2 bits
    two = np.array([[1.0, 0.0], [0.5, 0.5]])
    jsd = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)) - 0.5
    assert m.pattern_match(two[None, None], "first")[0, 0] == pytest.approx(1 - jsd)
    assert m.pattern_match(p, "local", window=1)[0, 1] == 1.0  # a window of 1 is the diagonal
    per_head = np.stack([PREVIOUS, DIAGONAL, UNIFORM])[None]
    assert np.all(m.pattern_match(p, per_head) == 1.0)


def test_single_metric_functions_agree_with_compute_metrics():
    p = random_causal(np.random.default_rng(1), 2, 3, 7)
    got = m.compute_metrics(p, expected="previous")
    assert np.array_equal(m.entropy(p), got["entropy"])
    assert np.array_equal(m.entropy(p, normalized=True), got["normalized_entropy"])
    for fn in (m.sparsity, m.coverage, m.mean_distance, m.locality, m.focus_consistency, m.sink_score, m.max_weight):
        assert np.array_equal(fn(p), got[fn.__name__]), fn.__name__
    assert np.array_equal(m.pattern_match(p, "previous"), got["pattern_match"])
    assert set(m.compute_metrics(p)) == set(ALL)


@pytest.mark.parametrize("causal", [True, False])
def test_against_row_by_row_reference(causal):
    rng = np.random.default_rng(7)
    p = random_causal(rng, 2, 2, 9, scale=2.5, causal=causal, dtype=np.float64)
    got = m.compute_metrics(p)
    for layer in range(2):
        for head in range(2):
            ref = naive(p[layer, head], causal)
            for name, value in ref.items():
                assert got[name][layer, head] == pytest.approx(value, rel=1e-9, abs=1e-12), name


def test_seed_locality_formula_on_bidirectional_input():
    p = random_causal(np.random.default_rng(3), 1, 1, 8, causal=False, dtype=np.float64)[0, 0]
    seed = np.mean([1 / (1 + np.sum(np.abs(np.arange(8) - i) * p[i])) for i in range(8)])
    assert m.locality(p[None, None])[0, 0] == pytest.approx(seed)


def test_capture_is_read_one_layer_at_a_time():
    p = random_causal(np.random.default_rng(2), 3, 2, 6)
    cap = FakeCapture(p)
    got = m.compute_metrics(cap, expected="uniform")
    assert cap.calls == [[0], [1], [2]]
    want = m.compute_metrics(p, expected="uniform")
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-12)
    assert m.pattern_match(cap, cap).tolist() == np.ones((3, 2)).tolist()


def test_float32_close_to_float64_and_torch_accepted():
    import torch
    p = random_causal(np.random.default_rng(4), 1, 2, 40, dtype=np.float64)
    a, b = m.compute_metrics(p), m.compute_metrics(torch.from_numpy(p.astype(np.float32)))
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=2e-4, atol=2e-5)


def test_summarize_layers():
    got = m.summarize_layers({"x": np.array([[1.0, 3.0], [np.nan, 4.0]])})
    assert got["x"].tolist() == [2.0, 4.0]


def test_long_sequence_row_blocks_match_reference():
    # more rows than one block holds: the blocked pass must equal the whole-matrix computation
    n = 300
    p = random_causal(np.random.default_rng(5), 1, 4, n, dtype=np.float64)
    got = m.compute_metrics(p)
    x = p[0]
    rows = np.arange(1, n)
    ent = -np.sum(np.where(x > 0, x * np.log(np.where(x > 0, x, 1)), 0), -1)[:, rows]
    np.testing.assert_allclose(got["entropy"][0], ent.mean(-1), rtol=1e-10)
    dist = np.einsum("hij,ij->hi", x, np.abs(np.arange(n)[:, None] - np.arange(n)))[:, rows]
    np.testing.assert_allclose(got["mean_distance"][0], dist.mean(-1), rtol=1e-10)


# ----------------------------------------------------------------------------- properties

shapes = st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 12), st.integers(0, 2**32 - 1))


@settings(max_examples=40, deadline=None)
@given(shapes, st.booleans(), st.floats(0.1, 8.0))
def test_ranges(shape, causal, scale):
    layers, n_heads, n, seed = shape
    p = random_causal(np.random.default_rng(seed), layers, n_heads, n, scale=scale, causal=causal)
    got = m.compute_metrics(p, expected="local")
    for name, value in got.items():
        assert value.shape == (layers, n_heads) and value.dtype == np.float64 and np.all(np.isfinite(value)), name
    for name in ("normalized_entropy", "sparsity", "coverage", "locality", "focus_consistency", "sink_score", "max_weight", "pattern_match"):
        assert np.all((got[name] >= 0) & (got[name] <= 1 + 1e-6)), name
    assert np.all(got["entropy"] >= -1e-6) and np.all(got["entropy"] <= math.log(n) + 1e-5)
    assert np.all(got["mean_distance"] >= 0) and np.all(got["mean_distance"] <= n - 1 + 1e-4)
    assert np.all(got["max_weight"] >= 1 / n - 1e-6)


@settings(max_examples=30, deadline=None)
@given(shapes, st.booleans())
def test_permuting_heads_and_layer_independence(shape, causal):
    layers, n_heads, n, seed = shape
    rng = np.random.default_rng(seed)
    p = random_causal(rng, layers, n_heads, n, causal=causal)
    perm = rng.permutation(n_heads)
    base = m.compute_metrics(p, expected="previous")
    permuted = m.compute_metrics(p[:, perm], expected="previous")
    # equal up to float32 summation order (a copied array may be reduced with other SIMD alignment)
    for name in base:
        np.testing.assert_allclose(permuted[name], base[name][:, perm], rtol=1e-6, atol=1e-7, err_msg=name)
    for layer in range(layers):
        one = m.compute_metrics(p[layer : layer + 1], expected="previous")
        for name in base:
            np.testing.assert_allclose(one[name][0], base[name][layer], rtol=1e-6, atol=1e-7, err_msg=name)


@settings(max_examples=30, deadline=None)
@given(shapes, st.booleans())
def test_pattern_match_with_itself_is_one(shape, causal):
    layers, n_heads, n, seed = shape
    p = random_causal(np.random.default_rng(seed), layers, n_heads, n, causal=causal, dtype=np.float64)
    assert np.all(m.pattern_match(p, p) == 1.0)


# ----------------------------------------------------------------------------- errors


def test_errors_name_the_problem():
    p = heads(UNIFORM)
    with pytest.raises(TypeError, match="Capture, a NumPy array or tensor"):
        m.entropy([[1.0]])
    with pytest.raises(ValueError, match=r"\[layer, head, query, key\]"):
        m.entropy(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="unknown metric 'nope'"):
        m.compute_metrics(p, ["nope"])
    with pytest.raises(ValueError, match="pattern_match needs expected"):
        m.compute_metrics(p, ["pattern_match"])
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\]"):
        m.sparsity(p, threshold=0)
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\]"):
        m.coverage(p, threshold=1.5)
    with pytest.raises(ValueError, match="top_k must be a positive"):
        m.focus_consistency(p, top_k=0)
    with pytest.raises(ValueError, match="unknown pattern 'diag'"):
        m.pattern_match(p, "diag")
    with pytest.raises(ValueError, match=r"expected has shape \(3, 3\)"):
        m.pattern_match(p, np.eye(3))
    with pytest.raises(ValueError, match="all-zero row"):
        m.pattern_match(p, np.zeros((N, N)))
    with pytest.raises(TypeError, match="expected must be a pattern name"):
        m.pattern_match(p, [[1.0]])
    with pytest.raises(ValueError, match="window must be a positive"):
        m.reference_pattern("local", 4, window=0)
    with pytest.raises(ValueError, match=r"expected \[layer, head\]"):
        m.summarize_layers({"x": np.ones(3)})
