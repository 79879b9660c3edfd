"""The pattern engine's fused pass equals plain dense computations (tests/dense_reference.py).

Tiny random models of every architecture the recorder supports, with and without padding, and
``TILE_ELEMENTS`` lowered so every layer is many row blocks: metrics, head roles, per-head and mean
heatmap tiles, thumbnails and the kept head-mean pattern all equal the same quantities computed from
``capture.patterns()`` (the exact, eager-equal weights) by the reference.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import attnwidget
import dense_reference as ref
from attnwidget import _engine as E
from attnwidget.capture import Capture
from attnwidget._recorder import QKRecord
from helpers import LONG_TEXT, tiny_model

ARCHS = ["llama", "mistral", "gemma2", "gpt2", "bert"]


@pytest.fixture(scope="module", params=[(a, p) for a in ARCHS for p in (0, 3)], ids=lambda c: f"{c[0]}-pad{c[1]}")
def case(request, byte_tokenizer):
    arch, pad = request.param
    ids = byte_tokenizer(LONG_TEXT[:160]).input_ids
    mask = None
    if pad:
        ids = [2] * pad + ids if arch != "bert" else ids + [2] * pad
        mask = [0] * pad + [1] * (len(ids) - pad) if arch != "bert" else [1] * (len(ids) - pad) + [0] * pad
    cap = attnwidget.capture(tiny_model(arch), byte_tokenizer, ids, attention_mask=mask)
    return cap, cap.patterns().astype(np.float64)


@pytest.fixture
def small_tiles(monkeypatch):
    monkeypatch.setattr(E, "TILE_ELEMENTS", 700)  # a few rows per block, blocks that end mid pooling row


def summaries(source, **options):
    engine = E.Engine(source)
    opts = E.PassOptions(**options)
    return [engine.summarize(layer, opts, keep_means="float32") for layer in range(engine.num_layers)]


def stacked(results, field, name):
    return np.stack([getattr(r, field)[name] for r in results])


def check_metrics(results, dense, causal, rtol=1e-6):
    """Every metric equals the reference; the two threshold counts may differ only where a weight lies
    within float32 rounding of the threshold (they are bracketed by the reference at 0.01 * (1 -+ 1e-6))."""
    want = ref.all_metrics(dense, causal)
    for name, values in want.items():
        got = stacked(results, "metrics", name)
        if name in ("sparsity", "coverage"):
            a = ref.all_metrics(dense, causal, lo=0.01 * (1 - 1e-6), hi=0.01 * (1 + 1e-6))[name]
            b = ref.all_metrics(dense, causal, lo=0.01 * (1 + 1e-6), hi=0.01 * (1 - 1e-6))[name]
            assert np.all(np.minimum(a, b) - 1e-12 <= got) and np.all(got <= np.maximum(a, b) + 1e-12), name
        else:
            np.testing.assert_allclose(got, values, rtol=rtol, atol=1e-6, err_msg=name)


def test_metrics_and_roles_equal_the_dense_reference(case, small_tiles):
    cap, dense = case
    results = summaries(cap, token_ids=tuple(cap.token_ids.tolist()))
    check_metrics(results, dense, cap.is_causal)
    roles = ref.all_roles(dense, cap.is_causal, cap.token_ids)
    for name, values in roles.items():
        np.testing.assert_allclose(stacked(results, "roles", name), values, rtol=1e-6, atol=1e-6, err_msg=name)


def test_tiles_thumbnails_and_means_equal_pooled_dense_patterns(case, small_tiles, monkeypatch):
    cap, dense = case
    monkeypatch.setattr(E, "TILE_SIDE", 40)  # pooled tiles even at this length (f > 1)
    monkeypatch.setattr(E, "THUMB_SIZE", 12)
    results = summaries(cap)
    n = cap.num_tokens
    f = ref.tile_factor(n, 40)
    assert f > 1
    for layer, res in enumerate(results):
        mean = dense[layer].mean(0)
        for h in range(cap.num_heads):
            want = ref.max_pool(dense[layer, h], f)
            np.testing.assert_allclose(res.tiles[h], want, rtol=1e-3, atol=1e-6)  # float16
            np.testing.assert_array_equal(res.thumbs[h], ref.uint8_thumb(ref.max_pool(want, res.tiles.shape[1] // 12 + (res.tiles.shape[1] % 12 > 0))))
        np.testing.assert_allclose(res.mean_tile, ref.max_pool(mean, f), rtol=1e-3, atol=1e-6)
        kept = np.zeros((n, n))
        for r0, r1, block in res.means:
            kept[r0:r1, :block.shape[1]] = block
        np.testing.assert_allclose(kept, mean, atol=1e-6)
        np.testing.assert_allclose(res.last_mean, mean[-1], atol=1e-6)
        visible = np.tril(np.ones((n, n))) if cap.is_causal else np.ones((n, n))
        np.testing.assert_allclose(res.colsum_mean, (dense[layer] * visible).sum(1).mean(0), atol=1e-5)


@pytest.mark.parametrize("keep", ["float32", "float16"])
def test_kept_means_are_views_of_one_allocation_per_layer(case, small_tiles, keep):
    """Many small blocks interleaved with the pass's scratch would fragment the heap (0.45 GiB held
    at 8192 tokens); each layer's kept pattern is one array and its blocks are views into it."""
    cap, dense = case
    engine = E.Engine(cap)
    res = engine.summarize(1, E.PassOptions(), keep_means=keep)
    n = cap.num_tokens
    assert len(res.means) > 3
    bases = {id(block.base) for _, _, block in res.means}
    assert len(bases) == 1 and all(block.dtype == np.dtype(keep) for _, _, block in res.means)
    store = res.means[0][2].base
    assert store.size == sum(block.size for _, _, block in res.means)  # planned to the element
    kept = np.zeros((n, n))
    for r0, r1, block in res.means:
        kept[r0:r1, :block.shape[1]] = block
    np.testing.assert_allclose(kept, dense[1].mean(0), rtol=1e-3 if keep == "float16" else 1e-6, atol=1e-6)


def random_attention(rng, layers, heads, n, causal):
    logits = rng.standard_normal((layers, heads, n, n)) * 3
    if causal:
        logits[..., np.triu(np.ones((n, n), dtype=bool), 1)] = -np.inf
    p = np.exp(logits - logits.max(-1, keepdims=True))
    return p / p.sum(-1, keepdims=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("causal", [True, False])
def test_an_array_gives_the_same_as_the_dense_reference(small_tiles, dtype, causal):
    dense = random_attention(np.random.default_rng(3), 2, 3, 37, causal)
    ids = np.random.default_rng(4).integers(0, 6, 37)
    arr = dense.astype(dtype)
    assert E.Engine(arr).is_causal == causal
    results = summaries(arr, token_ids=tuple(ids.tolist()))
    check_metrics(results, arr.astype(np.float64), causal, rtol=1e-5 if dtype == np.float32 else 1e-9)
    roles = ref.all_roles(arr.astype(np.float64), causal, ids)
    for name, values in roles.items():
        np.testing.assert_allclose(stacked(results, "roles", name), values, rtol=1e-6, atol=1e-7, err_msg=name)


def test_learned_sinks_are_part_of_the_softmax(byte_tokenizer, small_tiles):
    """gpt-oss style sink logits: each row's softmax has one extra logit, dropped after it."""
    cap = attnwidget.capture(tiny_model("llama"), byte_tokenizer, LONG_TEXT[:80])
    gen = torch.Generator().manual_seed(0)
    records = [QKRecord(r.name, r.query, r.key, r.mask, r.causal, r.scaling, r.softcap,
                        torch.randn(r.query.shape[0], generator=gen) * 2) for r in cap._records]
    sunk = Capture(records=records, masks=cap._masks, token_ids=cap.token_ids, tokens=cap.tokens,
                   offsets=cap.offsets, special=cap.special, generated=cap.generated, partial=cap.partial,
                   text=cap.text, model_name="sinks", is_causal=True, num_heads=cap.num_heads)
    dense = sunk.patterns().astype(np.float64)
    assert np.all(dense.sum(-1) < 1 - 1e-4)  # the sink takes a share of every row
    results = summaries(sunk)
    check_metrics(results, dense, True)
    for layer, res in enumerate(results):
        kept = np.concatenate([np.pad(b, ((0, 0), (0, dense.shape[-1] - b.shape[1]))) for _, _, b in res.means])
        np.testing.assert_allclose(kept, dense[layer].mean(0), atol=1e-6)
