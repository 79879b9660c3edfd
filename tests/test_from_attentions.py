"""Capture.from_attentions and Seq2SeqCapture.from_attentions / from_output: attention a user already
has becomes a capture that is checked, saves, loads and reads like a recorded one (issue 11)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import attnwidget
from attnwidget.errors import ArgumentError, NotAttentionError
from attnwidget.seq2seq import Seq2SeqCapture
from families import pair

TEXT = "the cat sat on the mat"


@pytest.fixture(scope="module")
def llama(byte_tokenizer):
    model, eager = pair("llama")
    ids = byte_tokenizer(TEXT)["input_ids"]
    with torch.no_grad():
        out = eager(torch.tensor([ids]), output_attentions=True)
    return attnwidget.capture(model, byte_tokenizer, ids), out.attentions


@pytest.mark.parametrize("form", ["tuple", "stack5", "stack4", "bfloat16"])
def test_forms_give_the_captures_patterns(llama, form, tmp_path):
    cap, attentions = llama
    given = {"tuple": attentions, "stack5": torch.stack(attentions), "stack4": torch.stack(attentions)[:, 0].numpy(),
             "bfloat16": tuple(a.to(torch.bfloat16) for a in attentions)}[form]
    made = attnwidget.Capture.from_attentions(given, cap.tokens)
    tol = 1e-2 if form == "bfloat16" else 1e-6
    assert made.is_causal and made.tokens == cap.tokens and not made.is_cross
    for layer in range(cap.num_layers):
        np.testing.assert_allclose(made.head_patterns(layer), cap.head_patterns(layer), atol=tol)
    back = attnwidget.Capture.load(made.save(tmp_path / "made.safetensors"))
    np.testing.assert_array_equal(back.patterns(), made.patterns())
    assert back.tokens == made.tokens


def test_seq2seq_output_equals_the_recorded_parts(byte_tokenizer, tmp_path):
    model, eager = pair("bart")
    cap = attnwidget.capture(model, byte_tokenizer, TEXT, target="a dog sat")
    with torch.no_grad():
        out = eager(input_ids=torch.tensor(cap.encoder.token_ids[None]),
                    decoder_input_ids=torch.tensor(cap.decoder.token_ids[None]), output_attentions=True)
    made = Seq2SeqCapture.from_output(out, source_tokens=cap.encoder.tokens, target_tokens=cap.decoder.tokens)
    assert made.cross.is_cross and made.cross.key_tokens == cap.encoder.tokens
    assert made.decoder.is_causal and not made.encoder.is_causal and not made.cross.is_causal
    for part in ("encoder", "decoder", "cross"):
        np.testing.assert_allclose(made.part(part).patterns(), cap.part(part).patterns(), atol=1e-5)
    back = Seq2SeqCapture.load(made.save(tmp_path / "s2s.safetensors"))
    np.testing.assert_array_equal(back.cross.patterns(), made.cross.patterns())
    # a rectangle read as cross-attention when its key tokens are given
    cross = attnwidget.Capture.from_attentions(out.cross_attentions, cap.decoder.tokens, cap.encoder.tokens)
    assert cross.num_keys == cap.encoder.num_tokens and cross.key_tokens == cap.encoder.tokens


def test_refusals_name_the_problem(llama):
    cap, attentions = llama
    with pytest.raises(ArgumentError, match=r"has 3 strings but the attention has \d+ query positions"):
        attnwidget.Capture.from_attentions(attentions, ["a", "b", "c"])
    rect = np.full((1, 2, 3, 5), 0.2, np.float32)
    with pytest.raises(ArgumentError, match=r"\[3 queries, 5 keys\].*Pass its tokens as key_tokens="):
        attnwidget.Capture.from_attentions(rect)
    with pytest.raises(NotAttentionError, match="sums to"):
        attnwidget.Capture.from_attentions(np.full((1, 2, 3, 3), 0.5, np.float32))
    with pytest.raises(ArgumentError, match=r"source_tokens \(the encoder's\) has 1 strings"):
        Seq2SeqCapture.from_attentions(attentions, attentions, attentions, source_tokens=["x"])
    with pytest.raises(ArgumentError, match="cross attention is missing"):
        Seq2SeqCapture.from_attentions(attentions, attentions, None)
