"""Rollout for vision transformers: head fusion (mean, max, min) and discarding the lowest weights,
against an independent NumPy version of the ViT rollout recipe on a real ViT capture (issue 11)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import attnwidget
from attnwidget.errors import ArgumentError
from families import image_processor, pair


@pytest.fixture(scope="module")
def vit():
    from skimage import data

    model, eager = pair("vit")
    processor = image_processor(model)
    cap = attnwidget.capture(model, processor, data.coffee())
    from attnwidget._vision import prepare

    with torch.no_grad():
        ref = eager(pixel_values=prepare(processor, data.coffee()).pixel_values, output_attentions=True).attentions
    return cap, np.stack([a[0].numpy().astype(np.float64) for a in ref])


def _recipe(attn: np.ndarray, fusion: str, ratio: float) -> np.ndarray:
    """Rollout as the ViT recipe writes it: fuse heads, zero the lowest `ratio` of the layer's weights
    (never [0, 0]), add the identity, renormalise rows, multiply up the layers."""
    n = attn.shape[-1]
    result = np.eye(n)
    for layer in attn:
        fused = getattr(layer, fusion)(axis=0).copy()
        flat = fused.reshape(-1)
        k = int(flat.size * ratio)
        if k:
            order = np.argsort(flat[1:], kind="stable")[:k] + 1
            flat[order] = 0.0
        a = (fused + np.eye(n)) / 2
        a /= a.sum(axis=-1, keepdims=True)
        result = a @ result
    return result


@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.9])
def test_rollout_matches_the_recipe(vit, fusion, ratio):
    cap, eager = vit
    expected = _recipe(eager, fusion, ratio)
    got = attnwidget.rollout(cap, head_fusion=fusion, discard_ratio=ratio)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-9)
    row = attnwidget.rollout_row(cap, None, head_fusion=fusion, discard_ratio=ratio)
    assert row.row == 0 and "first token" in row.reason  # [CLS]
    np.testing.assert_allclose(row.values, expected[0], atol=1e-5)
    np.testing.assert_allclose(attnwidget.rollout_rows(cap, [0, 5], head_fusion=fusion, discard_ratio=ratio),
                               expected[[0, 5]], atol=1e-5)
    mixed = attnwidget.mixed_attention(cap, head_fusion=fusion, discard_ratio=ratio)
    assert mixed.shape == (cap.num_layers, cap.num_tokens, cap.num_tokens)


def test_discarding_changes_the_map(vit):
    cap, _ = vit
    plain = attnwidget.rollout_row(cap, 0, head_fusion="max").values
    sharp = attnwidget.rollout_row(cap, 0, head_fusion="max", discard_ratio=0.9).values
    assert not np.allclose(plain, sharp)


@pytest.mark.parametrize("ratio, error, message", [
    (1.0, ArgumentError, "discard_ratio must be below 1"),
    (-0.1, ArgumentError, r"discard_ratio must lie in \[0.0, 1.0\]; got -0.1"),
    ("0.9", TypeError, "discard_ratio"),
])
def test_discard_ratio_is_checked(vit, ratio, error, message):
    with pytest.raises(error, match=message):
        attnwidget.rollout(vit[0], discard_ratio=ratio)
