"""Every refusal of the family work names the problem and advises something; following the advice
works (issue 11, "a message that advises an alternative is tested"). Also: an encoder alone is a plain
Capture, equal to the encoder part of the whole model."""

from __future__ import annotations

import numpy as np
import pytest

import attnwidget
from attnwidget.errors import ArgumentError
from families import FAMILIES, image_processor, pair

TEXT = "the cat sat on the mat"
SEQ2SEQ = sorted(n for n, f in FAMILIES.items() if f.kind == "seq2seq")


@pytest.mark.parametrize("name", SEQ2SEQ)
def test_an_encoder_alone_is_a_plain_capture(name, byte_tokenizer):
    model, _ = pair(name)
    whole = attnwidget.capture(model, byte_tokenizer, TEXT, target="a dog")
    alone = attnwidget.capture(model.get_encoder(), byte_tokenizer, TEXT)
    assert isinstance(alone, attnwidget.Capture) and not alone.is_causal
    for layer in range(alone.num_layers):
        np.testing.assert_allclose(alone.head_patterns(layer), whole.encoder.head_patterns(layer), atol=1e-6)


def test_seq2seq_without_a_target_says_both_ways(byte_tokenizer):
    model, _ = pair("t5")
    with pytest.raises(ArgumentError, match=r"Pass target='...'.*or generate=N"):
        attnwidget.capture(model, byte_tokenizer, TEXT)
    assert attnwidget.capture(model, byte_tokenizer, TEXT, target="a dog").decoder.num_tokens > 1
    assert attnwidget.capture(model, byte_tokenizer, TEXT, generate=3).decoder.generated.any()
    with pytest.raises(ArgumentError, match="either target= or generate=, not both"):
        attnwidget.capture(model, byte_tokenizer, TEXT, target="a dog", generate=3)


def test_seq2seq_weights_method_advises_auto(byte_tokenizer):
    model, _ = pair("bart")
    with pytest.raises(ArgumentError, match=r"use method='auto'"):
        attnwidget.capture(model, byte_tokenizer, TEXT, target="a dog", method="weights")
    assert attnwidget.capture(model, byte_tokenizer, TEXT, target="a dog", method="auto").cross.num_layers == 2


def test_target_on_a_decoder_only_model_advises_one_text(byte_tokenizer):
    model, _ = pair("llama")
    with pytest.raises(ArgumentError, match="put the whole text in inputs"):
        attnwidget.capture(model, byte_tokenizer, TEXT, target="a dog")
    assert attnwidget.capture(model, byte_tokenizer, TEXT + " a dog").num_tokens > 0


def test_text_options_on_a_vision_model_are_refused(byte_tokenizer):
    from skimage import data

    model, _ = pair("vit")
    processor = image_processor(model)
    with pytest.raises(ArgumentError, match=r"generate apply to text models.*without them"):
        attnwidget.capture(model, processor, data.camera(), generate=3)
    assert attnwidget.capture(model, processor, data.camera()).patch_grid == (4, 4)
    with pytest.raises(ArgumentError, match=r"ViTModel reads images, not text: pass its image processor"):
        attnwidget.capture(model, byte_tokenizer, "a picture of a cat")


def test_analyses_name_the_part_to_pass(byte_tokenizer):
    model, _ = pair("bart")
    cap = attnwidget.capture(model, byte_tokenizer, TEXT, target="a dog")
    with pytest.raises(TypeError, match=r"three kinds of attention.*Pass cap.encoder, cap.decoder or cap.cross"):
        attnwidget.compute_metrics(cap, progress=False)
    assert attnwidget.compute_metrics(cap.cross, ["entropy"], progress=False)["entropy"].shape == (2, 4)
