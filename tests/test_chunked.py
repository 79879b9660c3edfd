"""The row-block paths equal the direct whole-array computation, and never ask a Capture for a layer.

A tiny random model is captured; the pattern engine's block sizes (``attnwidget._engine.BLOCK_ELEMENTS``
for exact row blocks, ``TILE_ELEMENTS`` for the fused pass) are lowered so every layer is read in many
blocks of a few query rows, a row count that does not divide the number of tokens. Every metric, head
role, prompt-part / template / language / report statistic, head distance and rollout row computed
from the Capture must equal the same function on ``capture.patterns()`` (the whole array) to 1e-6,
and every ``head_patterns`` / ``pattern`` / ``_scores`` call must ask for at most a block of rows (no
``patterns`` call at all). The Capture's shared summary is cleared first, so each test recomputes.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import attnwidget
from attnwidget import _engine as E
from attnwidget import heads as hd
from attnwidget import metrics as m
from attnwidget.analysis import compare_languages, compare_templates, prompt_parts
from attnwidget.capture import Capture
from attnwidget.report import attention_report, quality_score
from helpers import tiny_model

ro = importlib.import_module("attnwidget.rollout")  # the module (the package exports the function)

TEXT = "The cat sat on the mat. The dog sat on the log. The cat sat on the log; the dog sat on the mat!"
ATOL = 1e-6


def _block_rows_for(n: int) -> int:
    """A small row count that does not divide ``n`` (so the last block is a partial one)."""
    return next(r for r in (5, 6, 7, 9, 11) if n % r)


class Recorder:
    """Wraps Capture.head_patterns / pattern / patterns and records the query rows each call asks for."""

    def __init__(self, monkeypatch):
        self.calls: list[tuple[str, int]] = []
        self.enabled = True
        head_patterns, pattern, patterns = Capture.head_patterns, Capture.pattern, Capture.patterns
        scores = Capture._scores
        rec = self

        def wrapped_scores(cap, layer, heads, rows, visible, out=None, **kwargs):
            if rec.enabled:
                rec.calls.append(("_scores", len(rows)))
            return scores(cap, layer, heads, rows, visible, out=out, **kwargs)

        def wrapped_head_patterns(cap, layer, rows=None):
            out = head_patterns(cap, layer, rows=rows)
            if rec.enabled:
                rec.calls.append(("head_patterns", out.shape[1]))
            return out

        def wrapped_pattern(cap, layer, head=None, rows=None):
            out = pattern(cap, layer, head, rows=rows)
            if rec.enabled:
                rec.calls.append(("pattern", out.shape[0]))
            return out

        def wrapped_patterns(cap, layers=None):
            was, rec.enabled = rec.enabled, False
            try:
                out = patterns(cap, layers)
            finally:
                rec.enabled = was
            if rec.enabled:
                rec.calls.append(("patterns", out.shape[0] * out.shape[2]))
            return out

        monkeypatch.setattr(Capture, "head_patterns", wrapped_head_patterns)
        monkeypatch.setattr(Capture, "pattern", wrapped_pattern)
        monkeypatch.setattr(Capture, "patterns", wrapped_patterns)
        monkeypatch.setattr(Capture, "_scores", wrapped_scores)

    def check(self, block: int) -> None:
        assert self.calls, "nothing was read from the capture"
        assert not [c for c in self.calls if c[0] == "patterns"], "a whole-layer patterns() call was made"
        too_big = [c for c in self.calls if c[1] > block]
        assert not too_big, f"calls asked for more than {block} rows: {too_big[:5]}"
        self.calls.clear()


@pytest.fixture(scope="module", params=["llama", "bert"])
def case(request, byte_tokenizer):
    """(capture, dense [layer, head, query, key] float32, block rows) for a causal and a bidirectional model."""
    cap = attnwidget.capture(tiny_model(request.param), byte_tokenizer, TEXT)
    dense = cap.patterns()
    return cap, dense, _block_rows_for(cap.num_tokens)


def fresh(cap):
    """Forget the capture's shared fused-pass results, so the next call computes them again."""
    cap.__dict__.pop("_summaries", None)


@pytest.fixture
def small_blocks(case, monkeypatch):
    """Lower the block sizes to a few rows and record every read of the capture."""
    cap, dense, rows = case
    fresh(cap)
    if E._PRELOAD is not None:  # capture() compiles the kernels on a thread; let it finish before spying
        E._PRELOAD.join()
    monkeypatch.setattr(E, "BLOCK_ELEMENTS", cap.num_heads * cap.num_tokens * rows + 1)
    monkeypatch.setattr(E, "TILE_ELEMENTS", rows * rows)  # fused-pass blocks of at most `rows` rows
    assert E.block_rows(cap.num_heads, cap.num_tokens) == rows
    assert cap.num_tokens > 4 * rows  # many blocks per layer
    yield Recorder(monkeypatch)
    fresh(cap)


def whole_layers(cap, monkeypatch):
    """The unblocked computation: whole layers per block, recomputed."""
    fresh(cap)
    monkeypatch.setattr(E, "BLOCK_ELEMENTS", 1 << 30)
    monkeypatch.setattr(E, "TILE_ELEMENTS", 1 << 30)


def close(got, want, atol=ATOL):
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64),
                               rtol=0, atol=atol)


def close_tree(got, want, path="") -> None:
    """Nested plain data (dicts, lists, numbers, strings) equal, floats to ATOL."""
    if isinstance(want, dict):
        assert set(got) == set(want), path
        for k in want:
            close_tree(got[k], want[k], f"{path}.{k}")
    elif isinstance(want, (list, tuple)) and not (want and all(isinstance(v, (int, float)) for v in want)):
        assert len(got) == len(want), path
        for i, (a, b) in enumerate(zip(got, want)):
            close_tree(a, b, f"{path}[{i}]")
    elif isinstance(want, (float, int, list, tuple, np.ndarray)) and not isinstance(want, bool):
        np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64),
                                   rtol=0, atol=ATOL, err_msg=path)
    else:
        assert got == want, path


# ----------------------------------------------------------------------------- metrics and roles


def test_every_metric_equals_the_whole_array(case, small_blocks):
    cap, dense, rows = case
    n = cap.num_tokens
    expected_arrays = {
        "previous": "previous",
        "local": "local",
        "uniform": "uniform",
        "array [n, n]": m.reference_pattern("diagonal", n),
        "array [L, H, n, n]": dense[::-1].copy(),
    }
    for label, expected in expected_arrays.items():
        got = m.compute_metrics(cap, expected=expected, top_k=2)
        small_blocks.check(rows)
        want = m.compute_metrics(dense, expected=expected, top_k=2)
        assert set(got) == set(m.METRICS)
        for name in want:
            close(got[name], want[name]), (label, name)
    # another capture as the expected pattern is read in the same row blocks
    got = m.pattern_match(cap, cap)
    small_blocks.check(rows)
    close(got, np.ones((cap.num_layers, cap.num_heads)))
    for threshold in (0.05, 0.2):
        close(m.sparsity(cap, threshold), m.sparsity(dense, threshold))
        close(m.coverage(cap, threshold), m.coverage(dense, threshold))
    close(m.focus_consistency(cap, top_k=5), m.focus_consistency(dense, top_k=5))
    small_blocks.check(rows)


def test_every_head_role_equals_the_whole_array(case, small_blocks):
    cap, dense, rows = case
    for window in (1, 3, 4):
        got = hd.head_roles(cap, window=window)
        small_blocks.check(rows)
        want = hd.head_roles(dense, token_ids=cap.token_ids, window=window)
        for role in hd.ROLES:
            a, b = got.scores(role), want.scores(role)
            assert np.array_equal(np.isnan(a), np.isnan(b)), role
            close(np.nan_to_num(a), np.nan_to_num(b))
    assert not np.isnan(got.duplicate).any()  # the text repeats tokens: duplicate / induction are defined
    period = hd.head_roles(cap, period=7, offset=2)
    close(np.nan_to_num(period.induction), np.nan_to_num(hd.head_roles(dense, period=7, offset=2).induction))
    small_blocks.check(rows)


@pytest.mark.parametrize("metric", ["js", "tv"])
@pytest.mark.parametrize("max_rows", [None, 10])
def test_head_distances_equal_the_whole_array(case, small_blocks, metric, max_rows):
    cap, dense, rows = case
    got = hd.head_distances(cap, metric, max_rows=max_rows)
    small_blocks.check(rows)
    # The JS distance is a square root of a divergence: near 0 it magnifies the float32 rounding of
    # the patterns (block reads skip masked keys, so BLAS sums in another order) to ~1e-6.
    close(got, hd.head_distances(dense, metric, max_rows=max_rows), atol=1e-5 if metric == "js" else ATOL)
    assert hd.similar_heads(cap, distances=got).labels.shape == (cap.num_layers, cap.num_heads)


# ----------------------------------------------------------------------------- analysis and report


def _direct_parts(cap, dense, parts):
    """prompt_parts' matrix, received and last-token share, computed directly from the whole array."""
    names = [name for name, _, _ in parts]
    from attnwidget.parts import _assign

    part_of = _assign(cap.offsets, np.array([[s, e] for _, s, e in parts]))
    if np.any(part_of < 0):
        part_of = np.where(part_of < 0, len(names), part_of)
    n = cap.num_tokens
    member = np.zeros((n, part_of.max() + 1))
    member[np.arange(n), part_of] = 1.0
    a = dense.astype(np.float64).mean(1)  # [layer, query, key]
    by_layer = np.einsum("qa,lqk,kb->lab", member, a, member) / member.sum(0)[:, None]
    seen_by = (n - np.arange(n)) if cap.is_causal else np.full(n, n)
    received = ((a.sum(1) / seen_by).mean(0) @ member) / member.sum(0)
    return by_layer, received, (a[:, -1] @ member)


def test_prompt_parts_equal_the_whole_array(case, small_blocks, monkeypatch):
    cap, dense, rows = case
    parts = [("first", 0, 23), ("second", 24, 48), ("rest", 49, len(TEXT))]
    got = prompt_parts(cap, parts)
    small_blocks.check(rows)
    by_layer, received, last = _direct_parts(cap, dense, parts)
    close(got.matrix_by_layer, by_layer)
    close(got.received, received)
    close(got.last_token_share_by_layer, last)
    heads = prompt_parts(cap, parts, heads=[0, 2], layers=[0, -1])
    small_blocks.check(rows)
    whole_layers(cap, monkeypatch)
    close_tree(got.to_dict(), prompt_parts(cap, parts).to_dict())
    close_tree(heads.to_dict(), prompt_parts(cap, parts, heads=[0, 2], layers=[0, -1]).to_dict())


def test_templates_and_languages_equal_the_whole_array(case, small_blocks, monkeypatch):
    cap, dense, rows = case
    templates = compare_templates(captures={"a": cap, "b": cap}, layers=[0, 2])
    languages = compare_languages(captures={"en": cap}, top_k=4)
    small_blocks.check(rows)
    # direct: the metrics of the whole array, the last row, received attention per key
    want = m.compute_metrics(dense[[0, 2]], ["entropy", "sparsity", "max_weight", "sink_score"])
    close(templates.by_layer["entropy"][0], want["entropy"].mean(1))
    close(templates.by_layer["max_attention"][0], want["max_weight"].mean(1))
    close(templates.by_layer["sink_score"][0], want["sink_score"].mean(1))
    last = dense[[0, 2], :, -1].astype(np.float64).mean(1)
    close(templates.by_layer["last_to_special"][0], last @ cap.special)
    lang = languages["en"]
    full = m.compute_metrics(dense, ["entropy", "normalized_entropy", "sparsity"])
    close(lang.entropy, full["entropy"].mean(1))
    close(lang.sparsity, full["sparsity"].mean(1))
    n = cap.num_tokens
    seen_by = (n - np.arange(n)) if cap.is_causal else np.full(n, n)
    per_token = dense.astype(np.float64).sum(2).mean(1) / seen_by
    close(lang.received, np.add.reduceat(per_token, lang.unit_start, axis=1))
    whole_layers(cap, monkeypatch)
    close_tree(templates.to_dict(), compare_templates(captures={"a": cap, "b": cap}, layers=[0, 2]).to_dict())
    close_tree(languages.to_dict(), compare_languages(captures={"en": cap}, top_k=4).to_dict())


def test_report_equals_the_whole_array(case, small_blocks, monkeypatch):
    cap, dense, rows = case
    got = attention_report(cap, expected="previous")
    score = quality_score(cap, expected="local", normalized=True)
    small_blocks.check(rows)
    want = attention_report(dense, expected="previous")
    for name, values in want.metrics.items():
        close(got.metrics[name], values)
    close_tree(got.summary, want.summary)
    close_tree(got.quality.to_dict(), want.quality.to_dict())
    close_tree(score.to_dict(), quality_score(dense, expected="local", normalized=True).to_dict())
    whole_layers(cap, monkeypatch)
    close_tree(got.to_dict(), attention_report(cap, expected="previous").to_dict())


# ----------------------------------------------------------------------------- rollout and flow


@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
@pytest.mark.parametrize("residual", [0.0, 0.5, 0.9])
def test_rollout_rows_are_row_vector_products(case, small_blocks, fusion, residual):
    cap, dense, rows = case
    n = cap.num_tokens
    kw = dict(residual=residual, head_fusion=fusion)
    want = ro.rollout(dense, **kw)
    targets = [0, 1, rows, n // 2, n - 1, -3]
    got = ro.rollout_rows(cap, targets, **kw)
    small_blocks.check(rows)
    assert got.shape == (len(targets), n)
    close(got, want[targets])
    row = ro.rollout_row(cap, **kw)
    small_blocks.check(rows)
    assert row.row == (n - 1 if cap.is_causal else 0)
    close(row.values, want[row.row])
    close(ro.rollout_row(cap, 3, start_layer=1, **kw).values, ro.rollout(dense, start_layer=1, **kw)[3])
    close(ro.rollout_rows(cap, None, layers=[0, 2], **kw), ro.rollout_rows(dense, None, layers=[0, 2], **kw))
    full = ro.rollout(cap, **kw)  # row blocks, two [n, n] matrices
    small_blocks.check(rows)
    close(full, want)
    if cap.is_causal:
        assert not np.triu(full, 1).any()


def _weights_capture(weights: np.ndarray, causal: bool) -> Capture:
    """A real Capture over given ``[layer, head, query, key]`` weights."""
    import torch

    from attnwidget._recorder import WeightsRecord

    n = weights.shape[-1]
    records = [WeightsRecord(f"layers.{i}.attn", torch.from_numpy(w.copy())) for i, w in enumerate(weights)]
    ends = np.arange(1, n + 1)
    return Capture(records=records, masks=[], token_ids=np.arange(n) % 5, tokens=["a"] * n,
                   offsets=np.stack([ends - 1, ends], 1), special=np.zeros(n, bool), generated=np.zeros(n, bool),
                   partial=np.zeros(n, bool), text="a" * n, model_name="hand-built", is_causal=causal,
                   num_heads=weights.shape[1])


def test_rollout_handles_rows_that_see_the_future(monkeypatch):
    """Rows of a causal capture that attend to later keys (as padded rows do): the triangle shortcut
    must not drop them, in the layer itself or in the layers above."""
    rng = np.random.default_rng(0)
    L, H, n = 4, 2, 23
    logits = rng.standard_normal((L, H, n, n)) * 2
    logits[..., np.triu(np.ones((n, n), dtype=bool), 1)] = -np.inf
    logits[0, :, 7] = 0.0  # row 7 of layer 0 and row 12 of layer 2 see every key
    logits[2, :, 12] = 0.0
    p = np.exp(logits - logits.max(-1, keepdims=True))
    weights = (p / p.sum(-1, keepdims=True)).astype(np.float32)
    cap = _weights_capture(weights, causal=True)
    monkeypatch.setattr(E, "BLOCK_ELEMENTS", H * n * 4 + 1)  # 4 rows per block
    recorder = Recorder(monkeypatch)
    for kw in (dict(), dict(residual=0.2, head_fusion="max"), dict(start_layer=1)):
        want = np.tril(ro.rollout(weights, **kw))  # the array is not detected as causal; the capture is
        close(ro.rollout(cap, **kw), want)
        targets = [3, 7, 9, 12, 15, 22]
        close(ro.rollout_rows(cap, targets, **kw), want[targets])
    recorder.check(4)
    # and the ordinary causal case takes the shortcut with the same result
    causal = weights.copy()
    causal[0, :, 7] = np.tril(np.ones(n))[7] / 8
    causal[2, :, 12] = np.tril(np.ones(n))[12] / 13
    cap = _weights_capture(causal, causal=True)
    close(ro.rollout(cap), ro.rollout(causal))
    close(ro.rollout_rows(cap, [0, 5, 22]), ro.rollout(causal)[[0, 5, 22]])


def test_mixed_attention_and_flow_equal_the_whole_array(case, small_blocks):
    cap, dense, rows = case
    close(ro.mixed_attention(cap, 0.3, "max"), ro.mixed_attention(dense, 0.3, "max"))
    got = ro.attention_flow(cap, [0, -1], start_layer=1)
    small_blocks.check(rows)  # the dense capacities are filled from row blocks too
    close(got, ro.attention_flow(dense, [0, -1], start_layer=1))


def test_flow_refuses_a_network_too_large(case, monkeypatch):
    cap, _, _ = case
    monkeypatch.setattr(ro, "FLOW_MAX_BYTES", 1000)
    with pytest.raises(MemoryError) as info:
        ro.attention_flow(cap)
    text = str(info.value)
    assert f"{cap.num_layers} layers x {cap.num_tokens} tokens" in text and "GiB" in text
    assert "layers=" in text and "rollout_row" in text
    with pytest.raises(MemoryError):
        ro.attention_flow_row(cap, start_layer=1)
    assert ro.attention_flow(cap.patterns(), [1]).shape == (1, cap.num_tokens)  # arrays are not limited


def test_block_rows_rule():
    assert E.block_rows(9, 8192) == (1 << 22) // (9 * 8192)
    assert E.block_rows(64, 1 << 20) == 1  # at least one row
    assert 9 * E.block_rows(9, 4096) * 4096 <= E.BLOCK_ELEMENTS
