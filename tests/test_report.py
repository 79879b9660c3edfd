"""attention_report and quality_score: known summaries on hand-built patterns, the recommendations that
must fire, the seed's score computed by hand, and runs on tiny random models of every kind."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import attnwidget
from attnwidget.metrics import reference_pattern
from attnwidget.report import THRESHOLDS, attention_report, quality_score
from helpers import tiny_model


def one_layer(*names, n):
    return np.stack([reference_pattern(name, n) for name in names])[None].astype(np.float32)


def codes(report) -> set[str]:
    return {r.code for r in report.recommendations}


def seed_score(entropy, sparsity, locality) -> float:
    """The seed's calculate_overall_quality_score for one set of metrics, written out."""
    score = 0.0
    if 1.0 < entropy < 3.0:
        score += 0.3
    if 0.3 < sparsity < 0.7:
        score += 0.3
    return score + 0.4 * locality


# ----------------------------------------------------------------------------- report on hand-built patterns


def test_uniform_report():
    n = 10
    rep = attention_report(one_layer("uniform", "uniform", n=n))
    rows = np.arange(1, n)  # informative rows of a causal pattern
    s = rep.summary
    assert s["entropy"] == pytest.approx(np.mean(np.log(rows + 1)))
    assert s["normalized_entropy"] == pytest.approx(1.0)
    assert s["sparsity"] == 0.0
    assert s["locality"] == pytest.approx(np.mean(1 / (1 + rows / 2)))
    assert s["sink_score"] == pytest.approx(np.mean(1 / (rows + 1)))
    assert codes(rep) == {"near_uniform"}
    rec = rep.recommendations[0]
    assert rec.threshold == THRESHOLDS["near_uniform"] and rec.value == pytest.approx(1.0)
    assert "1.000 > 0.9" in rec.message


def test_first_token_report_fires_sink_entropy_sparsity_locality():
    n = 20
    rep = attention_report(one_layer("first", "first", "first", n=n))
    rows = np.arange(1, n)
    assert rep.summary["entropy"] == 0.0 and rep.summary["sink_score"] == 1.0
    assert rep.summary["sparsity"] == pytest.approx(np.mean(rows / (rows + 1)))  # 0.863
    assert rep.summary["locality"] == pytest.approx(np.mean(1 / (1 + rows)))
    assert codes(rep) == {"attention_sink", "low_entropy", "high_sparsity", "low_locality"}
    by_code = {r.code: r for r in rep.recommendations}
    assert "3 of 3 heads (100% > 50%)" in by_code["attention_sink"].message
    assert "mean entropy 0.000 nats < 1.0" in by_code["low_entropy"].message
    assert "86.3% of the visible weights" in by_code["high_sparsity"].message
    assert "largely at the first-token sink" in by_code["low_locality"].message
    assert by_code["low_locality"].value == pytest.approx(rep.summary["locality"])
    assert rep.highlights["strongest sink (first-token weight)"][0] == (0, 0, 1.0)


def test_diagonal_report():
    n = 20
    rep = attention_report(one_layer("diagonal", "diagonal", n=n))
    assert rep.summary["locality"] == 1.0 and rep.summary["sink_score"] == 0.0
    assert codes(rep) == {"low_entropy", "high_sparsity"}


def test_short_input_and_one_token():
    rep = attention_report(one_layer("uniform", n=4))
    assert "short_input" in codes(rep)
    assert "Short input: 4 tokens < 8" in str(rep)
    one = attention_report(np.ones((2, 3, 1, 1), dtype=np.float32))
    assert "short_input" in codes(one) and one.num_tokens == 1
    assert one.summary["sink_score"] == 1.0 and one.summary["locality"] == 1.0
    assert "1 token < 8" in str(one)
    json.dumps(one.to_dict())


def test_report_text_and_plain_data():
    arr = np.stack([one_layer("previous", "first", "uniform", n=12)[0], one_layer("diagonal", "local", "first", n=12)[0]])
    rep = attention_report(arr, expected="previous")
    text = str(rep)
    for piece in ("Attention report: array, 12 tokens, 2 layers x 3 heads, causal", "Per layer (mean over heads):",
                  "Head highlights", "strongest previous-token: L0H0: 1.000", "Recommendations:",
                  f"quality score: {rep.quality.overall:.3f}", "best match with previous: L0H0: 1.000"):
        assert piece in text, piece
    assert text == str(attention_report(arr, expected="previous"))  # deterministic
    assert repr(rep).startswith("AttentionReport(array: 12 tokens, 2 layers x 3 heads, quality ")
    data = rep.to_dict()
    json.dumps(data)
    assert data["roles"][0][0] == "previous" and data["role_counts"][0]["previous"] == 1
    assert len(data["layers"]["entropy"]) == 2 and len(data["metrics"]["sink_score"][0]) == 3
    assert set(data["summary"]) >= {"entropy", "normalized_entropy", "sparsity", "locality", "focus_consistency",
                                    "sink_score", "pattern_match"}


def test_weak_pattern_match_fires():
    rep = attention_report(one_layer("first", "uniform", n=12), expected="previous")
    rec = {r.code: r for r in rep.recommendations}["weak_pattern_match"]
    assert rec.value == pytest.approx(rep.summary["pattern_match"]) and rec.value < 0.5
    assert "expected pattern (previous)" in rec.message


# ----------------------------------------------------------------------------- quality score


def test_quality_score_is_the_seed_formula_per_head():
    n = 10
    arr = one_layer("uniform", "diagonal", "previous", n=n)
    q = quality_score(arr)
    rows = np.arange(1, n)
    uniform = seed_score(np.mean(np.log(rows + 1)), 0.0, np.mean(1 / (1 + rows / 2)))
    diagonal = seed_score(0.0, np.mean(rows / (rows + 1)), 1.0)
    previous = seed_score(0.0, np.mean(rows / (rows + 1)), 0.5)
    np.testing.assert_allclose(q.by_head[0], [uniform, diagonal, previous])
    assert q.overall == pytest.approx((uniform + diagonal + previous) / 3)
    assert uniform == pytest.approx(0.3 + 0.4 * np.mean(1 / (1 + rows / 2)))  # entropy 1.68 in band, sparsity 0 not
    # two layers: the overall score is the mean of the layer means
    two = quality_score(np.concatenate([arr, one_layer("uniform", "uniform", "uniform", n=n)]))
    assert two.overall == pytest.approx((q.by_layer[0] + uniform) / 2)
    assert "0.3 if 1 < entropy (nats) < 3" in str(q) and "not model quality" in str(q)
    json.dumps(q.to_dict())


def test_quality_score_normalized_band():
    n = 10
    arr = one_layer("uniform", "local", n=n)  # local: uniform over 3 keys; normalized entropy ~ ln3/ln(i+1)
    q = quality_score(arr, normalized=True)
    assert q.entropy_band == (0.25, 0.75)
    assert q.by_head[0, 0] == pytest.approx(0.4 * q.locality[0, 0])  # normalized entropy 1: out of band
    rows = np.arange(1, n)
    ent = np.minimum(np.log(rows + 1), math.log(3)) / np.log(rows + 1)
    assert q.entropy[0, 1] == pytest.approx(np.mean(ent))
    sparsity = np.mean((rows + 1 - np.minimum(rows + 1, 3)) / (rows + 1))
    assert q.sparsity[0, 1] == pytest.approx(sparsity)
    expected = 0.3 * (0.25 < np.mean(ent) < 0.75) + 0.3 * (0.3 < sparsity < 0.7) + 0.4 * q.locality[0, 1]
    assert q.by_head[0, 1] == pytest.approx(expected)


def test_pattern_match_changes_the_score():
    arr = one_layer("previous", n=10)
    base = quality_score(arr)
    matched = quality_score(arr, expected="previous")
    missed = quality_score(arr, expected="first")
    assert matched.pattern_match[0, 0] == pytest.approx(1.0)
    assert matched.overall == pytest.approx(0.5 * base.overall + 0.5)
    assert missed.overall < base.overall < matched.overall
    assert missed.pattern_match[0, 0] < 0.5
    quarter = quality_score(arr, expected="previous", pattern_weight=0.25)
    assert quarter.overall == pytest.approx(0.75 * base.overall + 0.25)
    with pytest.raises(ValueError, match=r"pattern_weight must be in \[0, 1\]"):
        quality_score(arr, expected="previous", pattern_weight=2)


# ----------------------------------------------------------------------------- real captures of tiny models


@pytest.mark.parametrize("arch", ["llama", "gpt2", "bert"])
def test_report_runs_on_tiny_models(arch, byte_tokenizer):
    model = tiny_model(arch)
    cap = attnwidget.capture(model, byte_tokenizer, "The cat sat on the mat. The dog sat on the log.")
    rep = attention_report(cap)
    assert rep.num_layers == 3 and rep.num_heads == 4 and rep.is_causal == (arch != "bert")
    assert rep.model and rep.num_tokens == cap.num_tokens
    assert "strongest induction" in rep.highlights  # the capture's token ids show repeats ("sat", "the")
    assert np.isfinite(rep.quality.overall)
    str(rep)
    json.dumps(rep.to_dict())


def test_report_on_generated_and_single_token(byte_tokenizer):
    model = tiny_model("llama")
    cap = attnwidget.capture(model, byte_tokenizer, "The cat", generate=3)
    rep = attention_report(cap)
    assert rep.num_generated == 3 and "(3 generated)" in str(rep)
    one = attention_report(attnwidget.capture(model, byte_tokenizer, [5]))
    assert one.num_tokens == 1 and "short_input" in codes(one)
    assert quality_score(attnwidget.capture(model, byte_tokenizer, [5])).overall == pytest.approx(0.4)
