"""Head roles, induction tokens, head distances and similar-head clustering on hand-built patterns."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import attnwidget
from attnwidget import heads as hd
from attnwidget.metrics import reference_pattern
from test_metrics import FakeCapture, random_causal

N = 6
PREVIOUS = reference_pattern("previous", N)
DIAGONAL = reference_pattern("diagonal", N)
FIRST = reference_pattern("first", N)
UNIFORM = reference_pattern("uniform", N)


def one_hot(keys) -> np.ndarray:
    """[n, n] pattern with row i entirely on key keys[i]."""
    keys = np.asarray(keys)
    out = np.zeros((keys.size, keys.size))
    out[np.arange(keys.size), keys] = 1.0
    return out


# A repeated random sequence: BOS, then 4 tokens, then the same 4 again (offset 1, period 4, n = 9).
T, OFF, NR = 4, 1, 9
IDS = np.array([99, 10, 11, 12, 13, 10, 11, 12, 13])
SECOND = np.arange(OFF + T, NR)  # query rows 5..8, whose token occurred before
INDUCTION = one_hot([0, 0, 0, 0, 0] + list(SECOND - T + 1))  # rows 5..8 -> keys 2..5, others -> BOS
DUPLICATE = one_hot([0, 0, 0, 0, 0] + list(SECOND - T))  # rows 5..8 -> keys 1..4
REPEATED = np.stack([INDUCTION, DUPLICATE, reference_pattern("previous", NR), reference_pattern("uniform", NR)])[None]


def test_roles_on_hand_built_patterns():
    roles = hd.head_roles(np.stack([PREVIOUS, DIAGONAL, FIRST, UNIFORM])[None])
    rows = range(1, N)
    assert roles.previous[0].tolist() == [1.0, 0.0, pytest.approx(1 / 5), pytest.approx(np.mean([1 / (i + 1) for i in rows]))]
    assert roles.sink[0].tolist() == [pytest.approx(1 / 5), 0.0, 1.0, pytest.approx(np.mean([1 / (i + 1) for i in rows]))]
    # local (window 3, key 0 excluded): previous loses only row 1's key 0; uniform keeps min(3, i) of i+1 keys
    assert roles.local[0].tolist() == [pytest.approx(4 / 5), 1.0, 0.0, pytest.approx(np.mean([min(3, i) / (i + 1) for i in rows]))]
    assert roles.broad[0].tolist() == [0.0, 0.0, 0.0, pytest.approx(1.0)]
    assert np.all(np.isnan(roles.induction)) and np.all(np.isnan(roles.duplicate))  # no token information


def test_induction_and_duplicate_from_period_token_ids_or_capture():
    by_period = hd.head_roles(REPEATED, period=T, offset=OFF)
    by_ids = hd.head_roles(REPEATED, token_ids=IDS)
    by_capture = hd.head_roles(FakeCapture(REPEATED, token_ids=IDS))
    for roles in (by_period, by_ids, by_capture):
        np.testing.assert_allclose(roles.induction[0], [1, 0, 0, np.mean(1 / (SECOND + 1))])
        np.testing.assert_allclose(roles.duplicate[0], [0, 1, 0, np.mean(1 / (SECOND + 1))])
    assert by_period.previous[0, 2] == 1.0
    # with three copies every earlier copy counts: row 9 (token 10) has copies at 1 and 5
    three = hd.head_roles(np.full((1, 1, 13, 13), 1 / 13), period=T, offset=OFF)
    assert three.duplicate[0, 0] == pytest.approx(np.mean([1 / 13] * 4 + [2 / 13] * 4))


def test_bidirectional_local_window_is_symmetric():
    p = np.full((1, 1, 5, 5), 0.2)
    roles = hd.head_roles(p, window=2)
    # keys within distance 1 of the query, key 0 excluded: rows 0..4 keep 1, 2, 3, 3, 2 keys
    assert roles.local[0, 0] == pytest.approx(np.mean([1, 2, 3, 3, 2]) * 0.2)


def test_top_dominant_and_repr():
    roles = hd.head_roles(np.concatenate([REPEATED, REPEATED[:, ::-1]]), period=T, offset=OFF)
    assert roles.top("induction", 2) == [(0, 0, 1.0), (1, 3, 1.0)]
    assert roles.top("previous", 2) == [(0, 2, 1.0), (1, 1, 1.0)]
    dom = roles.dominant()
    assert dom[0].tolist() == ["induction", "duplicate", "previous", "local"]  # uniform over <=9 keys is local
    assert dom[1].tolist() == ["local", "previous", "duplicate", "induction"]
    wide = hd.head_roles(np.full((1, 2, 40, 40), 1 / 40))
    assert wide.dominant().tolist() == [["broad", "broad"]]
    sink = hd.head_roles(one_hot([0] * N)[None, None])
    assert sink.dominant()[0, 0] == "sink"
    text = repr(roles)
    assert text.startswith("HeadRoles(2 layers x 4 heads; best: previous") and len(text) < 300
    assert hd.head_roles(np.stack([UNIFORM])[None]).top("induction") == []  # NaN scores are skipped


def test_induction_tokens_with_a_fake_tokenizer():
    class Tok:
        all_special_ids = [0, 1, 2]
        bos_token_id = 1

        def __len__(self):
            return 50

    toks = hd.induction_tokens(Tok(), seq_len=10, repeats=3, seed=5)
    assert toks.offset == 1 and toks.period == 10 and toks.token_ids.dtype == np.int64
    ids = toks.token_ids
    assert ids.shape == (31,) and ids[0] == 1
    assert np.array_equal(ids[1:11], ids[11:21]) and np.array_equal(ids[1:11], ids[21:31])
    assert len(set(ids[1:11].tolist())) == 10 and not set(ids[1:].tolist()) & {0, 1, 2}
    assert np.array_equal(hd.induction_tokens(Tok(), 10, 3, seed=5).token_ids, ids)
    assert not np.array_equal(hd.induction_tokens(Tok(), 10, 3, seed=6).token_ids, ids)
    Tok.bos_token_id = None
    assert hd.induction_tokens(Tok(), 4).offset == 0


def test_head_roles_on_a_model_captures_induction_tokens(monkeypatch):
    class Tok:
        all_special_ids = [0]
        bos_token_id = 0

        def __len__(self):
            return 100

    class Model:
        config = object()

        def __call__(self, *args):
            raise AssertionError("the capture runs the model")

    seen = {}

    def fake_capture(model, tokenizer, inputs):
        seen["inputs"] = np.asarray(inputs)
        n = len(inputs)
        return FakeCapture(reference_pattern("uniform", n)[None, None], token_ids=np.asarray(inputs))

    monkeypatch.setattr(attnwidget, "capture", fake_capture, raising=False)
    roles = hd.head_roles(Model(), Tok(), seq_len=8, seed=1)
    assert np.array_equal(seen["inputs"], hd.induction_tokens(Tok(), 8, seed=1).token_ids)
    assert roles.induction[0, 0] == pytest.approx(np.mean(1 / (np.arange(9, 17) + 1)))
    with pytest.raises(TypeError, match="needs its tokenizer"):
        hd.head_roles(Model())


# ----------------------------------------------------------------------------- distances and clusters


def test_head_distances_by_hand():
    two = np.stack([reference_pattern("uniform", 2), reference_pattern("first", 2), reference_pattern("diagonal", 2)])[None]
    d = hd.head_distances(two)
    # only row 1 counts: (1/2, 1/2) vs (1, 0): JSD = H(3/4, 1/4) - 1/2 bits; disjoint rows: 1
    jsd = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)) - 0.5
    assert d[0, 1] == pytest.approx(math.sqrt(jsd), rel=1e-6) and d[0, 2] == pytest.approx(math.sqrt(jsd), rel=1e-6)
    assert d[1, 2] == 1.0 and np.all(np.diag(d) == 0)
    tv = hd.head_distances(two, "tv")
    assert tv[0, 1] == 0.5 and tv[1, 2] == 1.0


def naive_js(p, rows):
    """[L*H, L*H] mean over ``rows`` of the JS distance in bits, pair by pair (loops are fine in a test)."""
    flat = p.reshape(-1, p.shape[-2], p.shape[-1]).astype(np.float64)

    def h(x):
        x = x[x > 0]
        return -np.sum(x * np.log2(x))

    out = np.zeros((len(flat), len(flat)))
    for a in range(len(flat)):
        for b in range(len(flat)):
            out[a, b] = np.mean([math.sqrt(max(0.0, h((flat[a, i] + flat[b, i]) / 2) - (h(flat[a, i]) + h(flat[b, i])) / 2)) for i in rows])
    return out


def test_head_distances_capture_and_row_sampling():
    p = random_causal(np.random.default_rng(0), 3, 2, 10)
    d = hd.head_distances(p, max_rows=None)
    np.testing.assert_allclose(d, naive_js(p, range(1, 10)), atol=2e-3)  # float32 entropies, then sqrt
    np.testing.assert_allclose(hd.head_distances(FakeCapture(p)), d, rtol=1e-12)
    # max_rows=3 of rows 1..9: evenly spaced rows 1, 5, 9
    np.testing.assert_allclose(hd.head_distances(p, max_rows=3), naive_js(p, [1, 5, 9]), atol=2e-3)
    np.testing.assert_allclose(hd.head_distances(p.astype(np.float64), max_rows=3), naive_js(p, [1, 5, 9]), atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(2, 9), st.integers(0, 2**32 - 1), st.sampled_from(["js", "tv"]))
def test_distance_properties(layers, n_heads, n, seed, metric):
    rng = np.random.default_rng(seed)
    p = random_causal(rng, layers, n_heads, n)
    d = hd.head_distances(p, metric)
    assert d.shape == (layers * n_heads,) * 2
    assert np.array_equal(d, d.T) and np.all(np.diag(d) == 0)
    assert np.all((d >= 0) & (d <= 1))
    perm = rng.permutation(n_heads)
    idx = (np.arange(layers)[:, None] * n_heads + perm[None]).ravel()
    np.testing.assert_allclose(hd.head_distances(p[:, perm], metric), d[np.ix_(idx, idx)], rtol=1e-5, atol=1e-6)


def test_similar_heads_groups_identical_patterns():
    group_a = [PREVIOUS, PREVIOUS, FIRST]
    group_b = [DIAGONAL, DIAGONAL, DIAGONAL]
    p = np.stack([np.stack(group_a), np.stack(group_b)])  # [2 layers, 3 heads]
    res = hd.similar_heads(p)
    assert res.labels.shape == (2, 3) and res.num_clusters == 3
    assert res.labels[0, 0] == res.labels[0, 1] and len({res.labels[0, 0], res.labels[0, 2], res.labels[1, 0]}) == 3
    assert len(set(res.labels[1].tolist())) == 1
    assert sorted(map(tuple, res.order.tolist())) == [(l, h) for l in range(2) for h in range(3)]
    pos = {tuple(x): i for i, x in enumerate(res.order.tolist())}
    assert abs(pos[(0, 0)] - pos[(0, 1)]) == 1  # identical heads are neighbours in the leaf order
    assert hd.similar_heads(p, n_clusters=2).num_clusters == 2
    assert hd.similar_heads(p, threshold=1.5).num_clusters == 1
    assert hd.similar_heads(p, distances=res.distances).labels.tolist() == res.labels.tolist()
    assert hd.similar_heads(FIRST[None, None]).labels.tolist() == [[1]]
    assert repr(res) == "SimilarHeads(2 layers x 3 heads in 3 clusters)"


# ----------------------------------------------------------------------------- errors


def test_errors_name_the_problem():
    roles = hd.head_roles(REPEATED)
    with pytest.raises(ValueError, match="unknown role 'copy'"):
        roles.top("copy")
    with pytest.raises(ValueError, match="leaves no repeated token"):
        hd.head_roles(REPEATED, period=NR)
    with pytest.raises(ValueError, match="token_ids has 3 ids; the attention has 9 tokens"):
        hd.head_roles(REPEATED, token_ids=[1, 2, 3])
    with pytest.raises(ValueError, match="window must be a positive"):
        hd.head_roles(REPEATED, window=0)
    with pytest.raises(TypeError, match="Capture, a NumPy array or tensor"):
        hd.head_roles("text")
    with pytest.raises(ValueError, match="unknown metric 'kl'"):
        hd.head_distances(REPEATED, "kl")
    with pytest.raises(ValueError, match="max_rows must be a positive"):
        hd.head_distances(REPEATED, max_rows=0)
    with pytest.raises(ValueError, match="not both"):
        hd.similar_heads(REPEATED, n_clusters=2, threshold=0.5)
    with pytest.raises(ValueError, match=r"expected \(4, 4\)"):
        hd.similar_heads(REPEATED, distances=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="seq_len >= 2 and repeats >= 2"):
        hd.induction_tokens(object(), seq_len=5, repeats=1)


def test_head_roles_on_a_tiny_model_with_the_real_capture(byte_tokenizer):
    from helpers import tiny_model

    model = tiny_model("llama")
    roles = hd.head_roles(model, byte_tokenizer, seq_len=8, seed=3)
    toks = hd.induction_tokens(byte_tokenizer, 8, seed=3)
    cap = attnwidget.capture(model, byte_tokenizer, toks.token_ids)
    again = hd.head_roles(cap, period=toks.period, offset=toks.offset)
    assert roles.shape == (3, 4) and np.all(np.isfinite(roles.induction))
    for role in hd.ROLES:
        np.testing.assert_allclose(roles.scores(role), again.scores(role), rtol=1e-6, err_msg=role)
