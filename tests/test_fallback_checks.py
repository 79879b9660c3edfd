"""The weights fallback never shows what a model returns as attention unless it is attention (issue 11,
"no silent fallbacks"). T5's encoder returns its position bias there, and Falcon under sdpa returns
weights computed without its causal mask. Both used to come back as "attention". Now returned weights
are checked; a failure is retried in eager attention (as attn_implementation="eager" would), and what
still fails is refused, naming the layer. Every refusal's advice is followed here and works."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import attnwidget
from attnwidget.errors import UnsupportedAttentionError

IDS = [5, 6, 7, 8, 9, 10]


def _falcon(**kwargs):
    import transformers as tf

    config = tf.FalconConfig(vocab_size=400, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                             new_decoder_architecture=False, alibi=False)
    torch.manual_seed(0)
    return tf.FalconForCausalLM._from_config(copy.deepcopy(config), **kwargs).eval()


def _eager_attentions(model, **inputs):
    with torch.no_grad():
        return model(**inputs, output_attentions=True).attentions


def test_t5_encoder_weights_are_refused_and_the_advice_works(byte_tokenizer):
    import transformers as tf

    torch.manual_seed(0)
    config = tf.T5Config(vocab_size=400, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4)
    model = tf.T5EncoderModel(config).eval()
    with pytest.raises(UnsupportedAttentionError,
                       match=r"T5EncoderModel returned, as the attention weights of layer 0 \(encoder.block.0"
                             r".*(negative values|rows summing to).*also ran it in eager.*method='auto'"):
        attnwidget.capture(model, byte_tokenizer, IDS, method="weights")
    cap = attnwidget.capture(model, byte_tokenizer, IDS)  # as advised
    eager = tf.T5EncoderModel(copy.deepcopy(config)).eval()
    eager.load_state_dict(model.state_dict())
    eager.set_attn_implementation("eager")
    ref = _eager_attentions(eager, input_ids=torch.tensor([IDS]))
    assert not cap.is_causal
    for layer in range(cap.num_layers):
        np.testing.assert_allclose(cap.head_patterns(layer), ref[layer][0].numpy(), atol=1e-6)


def test_falcon_default_is_retried_in_eager_and_exact(byte_tokenizer):
    model = _falcon()
    assert model.config._attn_implementation == "sdpa"
    with torch.no_grad():
        before = model(torch.tensor([IDS])).logits
    cap = attnwidget.capture(model, byte_tokenizer, IDS)
    with torch.no_grad():
        after = model(torch.tensor([IDS])).logits
    assert model.config._attn_implementation == "sdpa"  # the eager retry is undone
    assert torch.equal(before, after)
    eager = _falcon(attn_implementation="eager")
    eager.load_state_dict(model.state_dict())
    ref = _eager_attentions(eager, input_ids=torch.tensor([IDS]))
    assert cap.is_causal
    for layer in range(cap.num_layers):
        np.testing.assert_allclose(cap.head_patterns(layer), ref[layer][0].numpy(), atol=1e-6)


def test_weights_that_fail_in_eager_too_are_refused_naming_the_layer(byte_tokenizer):
    from toy_models import ToyConfig, ToyScoresModel

    torch.manual_seed(0)
    model = ToyScoresModel(ToyConfig(vocab_size=400)).eval()
    with pytest.raises(UnsupportedAttentionError,
                       match=r"layer 0 \(layers.0\).*(negative values|rows summing to).*also ran it in eager"):
        attnwidget.capture(model, byte_tokenizer, IDS)
    assert model.config._attn_implementation == "sdpa"
