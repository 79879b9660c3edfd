"""Cross-attention: rectangular ``[query, key]`` attention through the pattern engine and its readers.

A cross-attention Capture is built by hand (queries of one sequence, keys of another, never causal,
with and without a source padding mask) and checked against plain dense numpy computations written
here (softmax of ``q k^T * scaling + mask`` in float64, metrics row by row), sharing no code with the
package: the fused pass (every metric and role, column sums, last row, per-axis max-pooled tiles and
thumbnails), the generic readers (blocks, rows, heads, matrix), heatmap tiles, token lines in both
directions, pattern match, and the refusals (graph, rollout). The positional metrics and roles are NaN.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import attnwidget
from attnwidget import _engine as E
from attnwidget import reduce as r
from attnwidget._arrays import as_attention_array
from attnwidget._recorder import QKRecord
from attnwidget._summary import Summary, summary_for
from attnwidget.capture import Capture
from attnwidget.errors import ArgumentError, NotAttentionError, OutOfRangeError
from attnwidget.heads import head_distances, head_roles
from attnwidget.metrics import compute_metrics, pattern_match

METRICS = ("entropy", "normalized_entropy", "sparsity", "coverage", "mean_distance", "locality",
           "focus_consistency", "sink_score", "max_weight")
ROLES = ("previous", "duplicate", "induction", "sink", "local", "broad")
NAN_METRICS = {"mean_distance", "locality"}
NAN_ROLES = {"previous", "duplicate", "induction", "local"}
MIN32 = float(np.finfo(np.float32).min)
ROLLOUT_MESSAGE = E.CROSS_ROLLOUT


# ----------------------------------------------------------------------------- sources and dense reference
def cross_capture(n_q, n_k, *, heads=4, kv_heads=2, d=8, layers=2, pad=0, mask_kind="bool", seed=0):
    """A cross-attention Capture: ``n_q`` target queries over ``n_k`` source keys; ``pad`` source
    tokens at the end masked out (a bool or an additive float mask, as the recorder stores them)."""
    gen = torch.Generator().manual_seed(seed)
    masks, index = [], -1
    if pad:
        keep = torch.ones(n_q, n_k, dtype=torch.bool)
        keep[:, n_k - pad:] = False
        masks = [keep if mask_kind == "bool" else torch.where(keep, 0.0, MIN32)]
        index = 0
    records = [QKRecord(f"decoder.layers.{i}.cross", torch.randn(heads, n_q, d, generator=gen) * 1.5,
                        torch.randn(kv_heads, n_k, d, generator=gen) * 1.5, index, False, d ** -0.5)
               for i in range(layers)]
    return Capture(records=records, masks=masks, token_ids=np.arange(n_q) % 3, key_token_ids=np.arange(n_k) % 5,
                   key_tokens=[f"s{j}" for j in range(n_k)], tokens=[f"t{i}" for i in range(n_q)],
                   offsets=np.zeros((n_q, 2)), special=np.zeros(n_q, bool), generated=np.zeros(n_q, bool),
                   partial=np.zeros(n_q, bool), text=None, model_name="x", is_causal=False, num_heads=heads)


def dense_of(cap) -> np.ndarray:
    """float64 ``[layer, head, n_q, n_k]``: softmax of the recorded queries and keys, numpy only."""
    out = []
    for rec in cap._records:
        q, k = rec.query.double().numpy(), rec.key.double().numpy()
        groups = q.shape[0] // k.shape[0]
        s = np.stack([q[h] @ k[h // groups].T for h in range(q.shape[0])]) * rec.scaling
        if rec.mask >= 0:
            mask = cap._masks[rec.mask].numpy()
            s = np.where(mask, s, MIN32) if mask.dtype == bool else s + mask
        s = s - s.max(-1, keepdims=True)
        p = np.exp(s)
        out.append(p / p.sum(-1, keepdims=True))
    return np.stack(out)


def random_rect(rng, layers, heads, n_q, n_k, scale=3.0):
    logits = rng.standard_normal((layers, heads, n_q, n_k)) * scale
    p = np.exp(logits - logits.max(-1, keepdims=True))
    return p / p.sum(-1, keepdims=True)


def head_metrics(p, lo=0.01, hi=0.01, top_k=3):
    """Metrics of one ``[n_q, n_k]`` head: every row sees all ``n_k`` keys."""
    n_q, n_k = p.shape
    ent = np.array([-sum(x * math.log(x) for x in row if x > 0) for row in p])
    norm = np.clip(ent / math.log(n_k), 0, 1) if n_k > 1 else np.zeros(n_q)
    colmass = p.mean(0)
    return {
        "entropy": ent.mean(), "normalized_entropy": norm.mean(),
        "sparsity": np.mean([(row < lo).sum() / n_k for row in p]),
        "coverage": np.mean([(row > hi).sum() / n_k for row in p]),
        "mean_distance": math.nan, "locality": math.nan,
        "focus_consistency": min(1.0, np.sort(colmass)[::-1][:min(top_k, n_k)].sum()),
        "sink_score": p[:, 0].mean(), "max_weight": p.max(1).mean(),
    }


def all_metrics(dense, **kw):
    out = {m: np.zeros(dense.shape[:2]) for m in METRICS}
    for layer in range(dense.shape[0]):
        for h in range(dense.shape[1]):
            for name, value in head_metrics(dense[layer, h], **kw).items():
                out[name][layer, h] = value
    return out


def all_roles(dense):
    metrics = all_metrics(dense)
    nan = np.full(dense.shape[:2], np.nan)
    return {"previous": nan, "duplicate": nan, "induction": nan, "local": nan, "sink": metrics["sink_score"],
            "broad": metrics["normalized_entropy"]}


def pool(m, fr, fc):
    """Max over ``fr x fc`` cells of a 2-D array (ragged edges: the cells that exist)."""
    rows, cols = math.ceil(m.shape[0] / fr), math.ceil(m.shape[1] / fc)
    return np.array([[m[a * fr:(a + 1) * fr, b * fc:(b + 1) * fc].max() for b in range(cols)] for a in range(rows)])


def power_of_two_factor(n, side):
    return 1 << (max(1, math.ceil(n / side)) - 1).bit_length()


def uint8_thumb(m):
    top = m.max()
    return np.round((m / top if top > 0 else m) * 255).astype(np.uint8)


def decode(wired):
    return np.frombuffer(wired["buffer"], dtype=wired["dtype"]).reshape(wired["shape"])


def summaries(source, **options):
    engine = E.Engine(source)
    return [engine.summarize(layer, E.PassOptions(**options)) for layer in range(engine.num_layers)]


def check_pass(results, dense, *, atol=1e-6, rtol=1e-5, cross=True):
    """Metrics, roles, column sums and last rows of the fused pass equal the dense reference; the
    positional ones are NaN (``cross``; a square array is self-attention: tests/test_engine.py)."""
    want = all_metrics(dense)
    for name in METRICS:
        got = np.stack([res.metrics[name] for res in results])
        if name in NAN_METRICS:
            assert np.isnan(got).all() == cross, name
        elif name in ("sparsity", "coverage"):  # a weight within float32 rounding of 0.01 may count either way
            a = all_metrics(dense, lo=0.01 * (1 - 1e-5), hi=0.01 * (1 + 1e-5))[name]
            b = all_metrics(dense, lo=0.01 * (1 + 1e-5), hi=0.01 * (1 - 1e-5))[name]
            assert np.all(np.minimum(a, b) - 1e-12 <= got) and np.all(got <= np.maximum(a, b) + 1e-12), name
        else:
            np.testing.assert_allclose(got, want[name], rtol=rtol, atol=atol, err_msg=name)
    for name, values in all_roles(dense).items():
        got = np.stack([res.roles[name] for res in results])
        if name in NAN_ROLES and not cross:
            continue
        np.testing.assert_allclose(got, values, rtol=rtol, atol=atol, err_msg=name)  # NaN equals NaN here
    for layer, res in enumerate(results):
        assert res.colsum_mean.shape == (dense.shape[-1],) and res.last_mean.shape == (dense.shape[-1],)
        np.testing.assert_allclose(res.colsum_mean, dense[layer].sum(1).mean(0), atol=atol * dense.shape[2])
        np.testing.assert_allclose(res.last_mean, dense[layer, :, -1].mean(0), atol=atol)


def check_tiles(results, dense, side, thumb):
    n_q, n_k = dense.shape[-2:]
    fr, fc = power_of_two_factor(n_q, side), power_of_two_factor(n_k, side)
    for layer, res in enumerate(results):
        assert res.tiles.shape == (dense.shape[1], math.ceil(n_q / fr), math.ceil(n_k / fc))
        for h in range(dense.shape[1]):
            want = pool(dense[layer, h], fr, fc)
            np.testing.assert_allclose(res.tiles[h], want, rtol=1e-3, atol=1e-6)  # float16
            tr, tc = max(1, math.ceil(want.shape[0] / thumb)), max(1, math.ceil(want.shape[1] / thumb))
            np.testing.assert_array_equal(res.thumbs[h], uint8_thumb(pool(want, tr, tc)))
        mean = pool(dense[layer].mean(0), fr, fc)
        np.testing.assert_allclose(res.mean_tile, mean, rtol=1e-3, atol=1e-6)


@pytest.fixture
def small(monkeypatch):
    """Many row blocks per layer, blocks that end mid pooling row, and pooling on both axes."""
    monkeypatch.setattr(E, "TILE_ELEMENTS", 900)
    monkeypatch.setattr(E, "TILE_SIDE", 16)
    monkeypatch.setattr(E, "THUMB_SIZE", 5)


# ----------------------------------------------------------------------------- the fused pass
CASES = [(1, 1, 0, None), (1, 300, 0, None), (300, 7, 0, None), (12, 300, 0, None), (37, 23, 0, None),
         (12, 40, 9, "bool"), (12, 40, 9, "float"), (5, 3, 2, "bool"), (300, 7, 3, "float")]


@pytest.mark.parametrize("n_q, n_k, pad, mask_kind", CASES, ids=[f"{a}x{b}-pad{p}-{k}" for a, b, p, k in CASES])
def test_capture_pass_equals_dense(small, n_q, n_k, pad, mask_kind):
    cap = cross_capture(n_q, n_k, pad=pad, mask_kind=mask_kind)
    cap.is_cross = True  # 1 x 1: a square cross-attention says what it is
    dense = dense_of(cap)
    np.testing.assert_allclose(cap.patterns(), dense, atol=1e-6)  # the capture itself is right
    if pad:
        assert np.all(dense[..., n_k - pad:] == 0)
    results = summaries(cap, token_ids=tuple(cap.token_ids.tolist()))  # query ids: ignored for cross
    check_pass(results, dense)
    check_tiles(results, dense, side=16, thumb=5)


@pytest.mark.parametrize("n_q, n_k", [(1, 1), (1, 300), (300, 7), (12, 300)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_array_pass_equals_dense(small, n_q, n_k, dtype):
    dense = random_rect(np.random.default_rng(n_q * 1000 + n_k), 2, 3, n_q, n_k)
    arr = dense.astype(dtype)
    results = summaries(arr, token_ids=tuple(range(n_q)))
    check_pass(results, arr.astype(np.float64), rtol=1e-5 if dtype == np.float32 else 1e-9, cross=n_q != n_k)
    check_tiles(results, arr.astype(np.float64), side=16, thumb=5)


@settings(max_examples=25, deadline=None)
@given(n_q=st.integers(1, 70), n_k=st.integers(1, 90), heads=st.integers(1, 3), seed=st.integers(0, 2**31),
       capture=st.booleans(), pad=st.integers(0, 3))
def test_any_rectangle_equals_dense(n_q, n_k, heads, seed, capture, pad):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(E, "TILE_ELEMENTS", 700)
        mp.setattr(E, "TILE_SIDE", 8)
        mp.setattr(E, "THUMB_SIZE", 3)
        if capture:
            cap = cross_capture(n_q, n_k, heads=heads, kv_heads=1, layers=1, pad=min(pad, n_k - 1), seed=seed)
            cap.is_cross = True
            source, dense = cap, dense_of(cap)
        else:
            dense = random_rect(np.random.default_rng(seed), 1, heads, n_q, n_k)
            source = dense.astype(np.float32)
        results = summaries(source)
        check_pass(results, dense, atol=2e-6, cross=capture or n_q != n_k)
        check_tiles(results, dense, side=8, thumb=3)


def test_overview_keeps_both_axes_readable():
    """12 target x 300 source tokens: the stored tile keeps the 12 rows and 150 key cells; the
    thumbnail 12 x 50 (a single factor for both axes would leave 1 or 2 rows)."""
    cap = cross_capture(12, 300)
    summary = Summary(cap)
    summary.run()
    assert summary.tile(0, None).shape == (12, 150) and summary.tile(1, 2).shape == (12, 150)
    thumbs, means, ready = summary.thumbnails()
    assert thumbs.shape == (2, 4, 12, 50) and means.shape == (2, 12, 50) and ready.all()
    tall = Summary(cross_capture(300, 7))
    tall.run()
    assert tall.tile(0, 0).shape == (150, 7) and tall.thumbnails()[0].shape == (2, 4, 50, 7)


def test_public_metrics_and_roles():
    cap = cross_capture(9, 31, pad=4)
    dense = dense_of(cap)
    got = compute_metrics(cap, progress=False)
    want = all_metrics(dense)
    for name in METRICS:
        if name in NAN_METRICS:
            assert np.isnan(got[name]).all(), name
        elif name not in ("sparsity", "coverage"):
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6, err_msg=name)
    roles = head_roles(cap, progress=False)
    for name in ROLES:
        values = roles.scores(name)
        assert values.shape == (2, 4)
        assert np.isnan(values).all() == (name in NAN_ROLES), name
    assert set(roles.dominant().ravel()) <= {"sink", "broad", "mixed"}
    # a custom threshold (its own pass) as well
    sparse = compute_metrics(cap, ["sparsity", "locality"], sparsity_threshold=0.05, progress=False)
    np.testing.assert_allclose(sparse["sparsity"], all_metrics(dense, lo=0.05)["sparsity"], atol=1e-12)
    assert np.isnan(sparse["locality"]).all()


def jsd_match(p, q):
    """``1 - mean_i JSD_2(p_i, q_i)`` for one head, all rows."""
    m = (p + q) / 2

    def kl(a, b):
        return np.where(a > 0, a * np.log(np.where(a > 0, a, 1) / np.where(b > 0, b, 1)), 0).sum(-1)

    return 1 - np.mean(np.clip((kl(p, m) + kl(q, m)) / 2 / math.log(2), 0, 1))


def test_pattern_match():
    cap = cross_capture(6, 11)
    dense = dense_of(cap)
    first = np.zeros((6, 11))
    first[:, 0] = 1
    uniform = np.full((6, 11), 1 / 11)
    for name, reference in (("first", first), ("uniform", uniform)):
        got = pattern_match(cap, name)
        want = np.array([[jsd_match(dense[l, h], reference) for h in range(4)] for l in range(2)])
        np.testing.assert_allclose(got, want, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(pattern_match(cap, uniform), pattern_match(cap, "uniform"), atol=1e-12)
    np.testing.assert_allclose(pattern_match(cap, cap), 1.0, atol=1e-6)
    for name in ("previous", "diagonal", "local"):
        assert np.isnan(pattern_match(cap, name)).all(), name
    with pytest.raises(ArgumentError, match=r"use \[query, key\] = \(6, 11\)"):
        pattern_match(cap, np.ones((6, 6)))
    with pytest.raises(ArgumentError, match="unknown pattern"):
        pattern_match(cap, "nearby")


def test_square_cross_attention_is_cross_by_declaration():
    """Equal lengths do not make two sequences one: a source that says ``is_cross`` gets NaN too."""
    cap = cross_capture(8, 8)  # built with key_tokens: a Capture of cross-attention says so itself
    assert cap.is_cross and E.Engine(cap).is_cross
    plain = cross_capture(8, 8)
    plain.is_cross = False  # what a square self-attention source looks like to the engine
    assert not E.Engine(plain).is_cross
    assert not np.isnan(compute_metrics(plain, ["locality"], progress=False)["locality"]).any()
    got = compute_metrics(cap, progress=False)
    assert np.isnan(got["locality"]).all() and not np.isnan(got["entropy"]).any()
    with pytest.raises(ArgumentError, match="cross-attention has no rollout"):
        attnwidget.rollout_row(cap)


# ----------------------------------------------------------------------------- generic readers and views
@pytest.mark.parametrize("kind", ["capture", "array"])
def test_readers_return_key_columns(kind, monkeypatch):
    monkeypatch.setattr(E, "BLOCK_ELEMENTS", 4 * 31 * 3 + 1)  # 3 rows per Capture block
    cap = cross_capture(10, 31, pad=3)
    dense = dense_of(cap)
    src = E.Engine(cap if kind == "capture" else dense.astype(np.float32))
    assert (src.num_tokens, src.n, src.n_keys, src.num_keys) == (10, 10, 31, 31)
    assert src.is_cross and not src.is_causal
    if kind == "capture":
        assert src.step == 3
    blocks = list(src.blocks(1))
    assert np.concatenate([p for _, _, p in blocks], axis=1).shape == (4, 10, 31)
    np.testing.assert_allclose(np.concatenate([p for _, _, p in blocks], axis=1), dense[1], atol=1e-6)
    index = np.array([9, 0, 4, 4, 7])
    got = np.concatenate([p for _, _, p in src.rows(0, index)], axis=1)
    np.testing.assert_allclose(got, dense[0][:, index], atol=1e-6)
    np.testing.assert_allclose(src.heads(0, slice(2, 5)), dense[0, :, 2:5], atol=1e-6)
    np.testing.assert_allclose(src.matrix(1, None, slice(0, 10)), dense[1].mean(0), atol=1e-6)
    np.testing.assert_allclose(src.matrix(1, 2, [3, 1]), dense[1, 2, [3, 1]], atol=1e-6)
    np.testing.assert_allclose(src.read(0, 4, 6), dense[0, :, 4:6], atol=1e-6)


def test_heatmap_tiles(monkeypatch):
    cap = cross_capture(12, 300)
    dense = dense_of(cap)
    src = r.engine(cap)
    stored = r.heatmap_tile(src, 1, 2, summary=summary_for(cap))
    assert (stored["row0"], stored["col0"], stored["n_rows"], stored["n_cols"]) == (0, 0, 12, 300)
    assert (stored["n_queries"], stored["n_keys"]) == (12, 300)
    np.testing.assert_allclose(decode(stored["matrix"]), pool(dense[1, 2], 1, 2), rtol=1e-3, atol=1e-6)
    # a window, pooled per axis: 12 rows stay 12 rows
    tile = r.heatmap_tile(src, 0, None, row0=2, col0=10, rows=8, cols=200, side=50)
    assert (tile["row0"], tile["col0"], tile["n_rows"], tile["n_cols"], tile["n_keys"]) == (2, 10, 8, 200, 300)
    np.testing.assert_allclose(decode(tile["matrix"]), pool(dense[0].mean(0)[2:10, 10:210], 1, 4), rtol=1e-3, atol=1e-6)
    # windows are clamped to each axis: rows to 12, keys to 300
    clamped = r.heatmap_tile(src, 0, 1, row0=50, col0=290, rows=40, cols=40)
    assert (clamped["row0"], clamped["col0"], clamped["n_rows"], clamped["n_cols"]) == (11, 290, 1, 10)
    np.testing.assert_allclose(decode(clamped["matrix"]), dense[0, 1, 11:, 290:], rtol=1e-3, atol=1e-6)
    m = r.matrix_tile(dense[0, 0], side=100)
    assert decode(m["matrix"]).shape == (12, 100) and (m["n_queries"], m["n_keys"]) == (12, 300)


def test_token_lines_both_directions():
    cap = cross_capture(7, 19, pad=2)
    dense = dense_of(cap)
    src = r.engine(cap)
    row = r.token_lines(src, 1, None, 6, "from")  # target token 6 reads every source token
    assert decode(row["weights"]).shape == (4, 19) and (row["n_queries"], row["n_keys"]) == (7, 19)
    np.testing.assert_allclose(decode(row["weights"]), dense[1, :, 6], atol=1e-6)
    col = r.token_lines(src, 0, 2, 15, "to")  # which target tokens read source token 15
    assert col["heads"] == [2] and col["token"] == 15 and decode(col["weights"]).shape == (1, 7)
    np.testing.assert_allclose(decode(col["weights"]), dense[0, [2], :, 15], atol=1e-6)
    with pytest.raises(OutOfRangeError, match="token 7 is out of range: there are 7 query tokens"):
        r.token_lines(src, 0, None, 7, "from")
    with pytest.raises(OutOfRangeError, match="token 19 is out of range: there are 19 key tokens"):
        r.token_lines(src, 0, None, 19, "to")
    arr = r.token_lines(dense.astype(np.float32), 0, None, -1, "to")
    assert arr["token"] == 18
    np.testing.assert_allclose(decode(arr["weights"]), dense[0, :, :, 18], atol=1e-6)


def test_graph_refuses_cross_attention():
    with pytest.raises(ArgumentError, match="attention graph links tokens of one sequence.*lines view"):
        r.graph_data(cross_capture(5, 9), 0, None, 0.1)


def test_thumbnails_of_a_rectangular_array():
    dense = random_rect(np.random.default_rng(5), 2, 3, 4, 130)
    thumbs, means = r.thumbnails(dense.astype(np.float32))
    assert thumbs.shape == (2, 3, 4, 44) and means.shape == (2, 4, 44)  # tiles 4 x 130, then 3 keys a cell
    for layer in range(2):
        for h in range(3):
            np.testing.assert_array_equal(thumbs[layer, h], uint8_thumb(pool(dense[layer, h], 1, 3)))


def test_head_distances_compare_rows_over_keys():
    dense = random_rect(np.random.default_rng(6), 1, 3, 5, 40)
    dense[0, 2] = dense[0, 0]
    d = head_distances(dense, "tv", max_rows=None)
    want = np.array([[0.5 * np.abs(dense[0, a] - dense[0, b]).sum(-1).mean() for b in range(3)] for a in range(3)])
    np.testing.assert_allclose(d, want, atol=1e-6)
    assert d[0, 2] == 0


# ----------------------------------------------------------------------------- rollout and summaries
def test_no_rollout_for_cross_attention():
    cap = cross_capture(6, 13)
    arr = dense_of(cap)
    summary = Summary(cap, keep_means=True)
    assert summary.keep_dtype is None  # nothing kept for rollout rows
    summary.run()
    assert all(not s.means for s in summary._layers.values())
    assert summary_for(cap, keep_means=True) is summary_for(cap, keep_means=True)
    calls = [lambda: summary.rollout_rows([0]), lambda: attnwidget.rollout(cap), lambda: attnwidget.rollout(arr),
             lambda: attnwidget.rollout_row(cap), lambda: attnwidget.rollout_rows(arr, [1]),
             lambda: attnwidget.attention_flow(cap), lambda: attnwidget.attention_flow_row(arr),
             lambda: attnwidget.mixed_attention(arr)]
    for call in calls:
        with pytest.raises(ArgumentError) as info:
            call()
        assert ROLLOUT_MESSAGE in str(info.value)


# ----------------------------------------------------------------------------- arrays
def test_rectangular_arrays_are_attention():
    dense = random_rect(np.random.default_rng(7), 2, 2, 3, 8)
    arr, causal = as_attention_array(dense)
    assert arr.shape == (2, 2, 3, 8) and causal is False
    tall = random_rect(np.random.default_rng(8), 1, 1, 9, 2)
    tall[..., 1] = 0  # zero "above the diagonal" in every row: still not causal, it is a rectangle
    tall[..., 0] = 1
    assert as_attention_array(tall)[1] is False
    assert as_attention_array([torch.from_numpy(dense[l][None]) for l in range(2)])[0].shape == (2, 2, 3, 8)
    with pytest.raises(NotAttentionError, match="sums to"):
        as_attention_array(dense[..., :5])  # keys cut off: not attention any more
    with pytest.raises(ArgumentError, match=r"shape \[layer, head, query, key\]; got shape \(2, 3, 8\)"):
        as_attention_array(dense[0])
