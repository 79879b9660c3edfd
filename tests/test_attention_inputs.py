"""The attention users already have: the output_attentions tuple (what BertViz's head_view takes), a
[layer, 1, head, query, key] stack and a TransformerLens ActivationCache give the same widget data and
analyses as the capture they came from.

TransformerLens itself is not installed here (it would pull its own torch build); the cache is built as
its docs describe ``ActivationCache``: a mapping from hook names ``blocks.{layer}.attn.hook_pattern`` to
``[batch, head, query, key]`` tensors.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import attnwidget
from attnwidget.errors import ArgumentError
from helpers import tiny_model
from test_widget import decode


class FakeActivationCache(dict):
    """Stands in for transformer_lens.ActivationCache: ``cache[hook_name] -> tensor``, ``keys()``."""


@pytest.fixture(scope="module")
def cap(byte_tokenizer):
    return attnwidget.capture(tiny_model("llama"), byte_tokenizer, "The cat sat on the mat. The dog sat on the log.")


def _forms(cap):
    p = cap.patterns()
    return {
        "output_attentions tuple": tuple(torch.from_numpy(layer[None].copy()) for layer in p),
        "list of [H, q, k] arrays": [layer for layer in p],
        "[L, 1, H, q, k] tensor": torch.from_numpy(p[:, None].copy()),
        "[L, H, q, k] bfloat16": torch.from_numpy(p).bfloat16(),
        "ActivationCache": FakeActivationCache(
            {f"blocks.{l}.attn.hook_pattern": torch.from_numpy(p[l][None].copy()) for l in range(len(p))}
            | {"blocks.0.hook_resid_pre": torch.zeros(1, 3, 8)}),
    }


@pytest.mark.parametrize("form", ["output_attentions tuple", "list of [H, q, k] arrays", "[L, 1, H, q, k] tensor",
                                  "ActivationCache", "[L, H, q, k] bfloat16"])
def test_widget_data_equal_the_captures(cap, form):
    given = _forms(cap)[form]
    ref = attnwidget.AttentionWidget(cap, layer=1, background=False, progress=False)
    got = attnwidget.AttentionWidget(given, tokens=cap.tokens, layer=1, background=False, progress=False)
    atol = 2e-2 if "bfloat16" in form else 1e-5
    assert got.tokens == ref.tokens and got.num_layers == ref.num_layers and got.is_causal == ref.is_causal
    np.testing.assert_allclose(decode(got.heatmap_data["matrix"]), decode(ref.heatmap_data["matrix"]), atol=atol)
    for name in ("entropy", "sparsity", "sink_score"):
        np.testing.assert_allclose(got.metric_grid(name), ref.metric_grid(name), atol=atol * 50)
    got.hovered_token = ref.hovered_token = 5
    assert got.lines_data["token"] == ref.lines_data["token"] == 5
    np.testing.assert_allclose(decode(got.lines_data["weights"]), decode(ref.lines_data["weights"]), atol=atol)
    got.close()
    ref.close()


@pytest.mark.parametrize("form", ["output_attentions tuple", "[L, 1, H, q, k] tensor", "ActivationCache"])
def test_analyses_and_export_take_them(cap, form, tmp_path):
    given = _forms(cap)[form]
    np.testing.assert_allclose(attnwidget.rollout(given), attnwidget.rollout(cap), atol=1e-5)
    metrics = attnwidget.compute_metrics(given, ["entropy"], progress=False)["entropy"]
    np.testing.assert_allclose(metrics, attnwidget.compute_metrics(cap, ["entropy"], progress=False)["entropy"], atol=1e-4)
    page = attnwidget.export_html(given, tmp_path / "page.html", tokens=cap.tokens)
    assert "sat" in page.read_text(encoding="utf-8")


@pytest.mark.parametrize("given, pattern", [
    (tuple(torch.ones(2, 1, 3, 3) / 3 for _ in range(2)), r"attention\[0\] holds a batch of 2 sequences.*Pick one"),
    (torch.ones(2, 2, 1, 3, 3) / 3, r"attention\[0\] holds a batch of 2 sequences"),
    ((torch.ones(1, 1, 3, 3) / 3, torch.ones(1, 1, 4, 4) / 4), r"layers' attention shapes differ"),
    (FakeActivationCache({"blocks.1.attn.hook_pattern": torch.ones(1, 1, 3, 3) / 3}), r"patterns of layers \[1\]; expected every layer from 0"),
    ((torch.ones(1, 1, 3, 3),), r"row 0 of layer 0, head 0 sums to 3"),
], ids=["batched tuple", "batched stack", "ragged", "cache missing layer 0", "tuple not attention"])
def test_bad_forms_are_refused_clearly(given, pattern):
    with pytest.raises(ArgumentError, match=pattern):
        attnwidget.compute_metrics(given, progress=False)
