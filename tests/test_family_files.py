"""Encoder-decoder and vision captures round-trip through save/load: every part, every pattern, and
what each family adds (T5's position-bias tables, BEiT's per-head mask, the picture and its grid)."""

from __future__ import annotations

import numpy as np
import pytest

import attnwidget
from attnwidget.seq2seq import Seq2SeqCapture
from families import image_processor, pair


def _same(a, b):
    assert a.tokens == b.tokens and a.key_tokens == b.key_tokens and a.is_causal == b.is_causal
    np.testing.assert_array_equal(a.token_ids, b.token_ids)
    for layer in range(a.num_layers):
        # a mask kept as a broadcast view before saving is contiguous after: float32 summation order may differ
        np.testing.assert_allclose(a.head_patterns(layer), b.head_patterns(layer), rtol=0, atol=1e-7)


@pytest.mark.parametrize("name", ["t5", "bart"])
def test_seq2seq_round_trip(name, byte_tokenizer, tmp_path):
    model, _ = pair(name)
    ids = byte_tokenizer("the cat sat on the mat")["input_ids"]
    cap = attnwidget.capture(model, byte_tokenizer, ids + [2], attention_mask=[1] * len(ids) + [0], target="a dog")
    if name == "t5":
        assert cap.encoder._biases and cap.decoder._biases  # the tables, not n x n copies
        assert all(b.weight.shape == (8, 4) for b in cap.encoder._biases)
    path = cap.save(tmp_path / "s2s.safetensors")
    back = Seq2SeqCapture.load(path)
    assert isinstance(back, Seq2SeqCapture)
    for part in ("encoder", "decoder", "cross"):
        _same(cap.part(part), back.part(part))
    assert back.cross.key_tokens == back.encoder.tokens
    assert isinstance(attnwidget.Capture.load(path), Seq2SeqCapture)  # one loader for both kinds


def test_a_plain_capture_is_not_a_seq2seq_one(byte_tokenizer, tmp_path):
    model, _ = pair("bert")
    path = attnwidget.capture(model, byte_tokenizer, "the cat").save(tmp_path / "c.safetensors")
    with pytest.raises(attnwidget.ArgumentError, match="holds one Capture, not an encoder-decoder capture"):
        Seq2SeqCapture.load(path)


@pytest.mark.parametrize("name", ["vit", "beit", "dinov2_registers"])
def test_vision_round_trip(name, tmp_path):
    from skimage import data

    model, _ = pair(name)
    cap = attnwidget.capture(model, image_processor(model), data.astronaut())
    back = attnwidget.Capture.load(cap.save(tmp_path / "v.safetensors"))
    _same(cap, back)
    np.testing.assert_array_equal(back.image, cap.image)
    assert back.patch_grid == cap.patch_grid == (4, 4) and back.patch_start == cap.patch_start
