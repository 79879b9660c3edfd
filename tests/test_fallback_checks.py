"""The weights fallback never shows what a model returns as attention unless it is attention (issue 11,
"no silent fallbacks"): T5's encoder returns its position bias there, Falcon under sdpa returns weights
computed without its causal mask. Both used to come back as "attention"; now they are refused, naming
the layer, and following the refusal's advice (eager loading) gives Falcon's exact attention."""

from __future__ import annotations

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
    return tf.FalconForCausalLM._from_config(config, **kwargs).eval()


def test_t5_encoder_position_bias_is_not_taken_as_attention(byte_tokenizer):
    import transformers as tf

    torch.manual_seed(0)
    model = tf.T5EncoderModel(tf.T5Config(vocab_size=400, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                                          num_heads=4)).eval()
    with pytest.raises(UnsupportedAttentionError,
                       match=r"T5EncoderModel returned, as the attention weights of layer 0 \(encoder.block.0"
                             r".*(negative values|rows summing to).*refuses"):
        attnwidget.capture(model, byte_tokenizer, IDS, method="weights")


def test_falcon_default_is_refused_and_eager_as_advised_is_exact(byte_tokenizer):
    with pytest.raises(UnsupportedAttentionError,
                       match=r"layer 0 \(transformer.h.0.self_attention\).*weight on later tokens, although the "
                             r"model is causal.*attn_implementation='eager'"):
        attnwidget.capture(_falcon(), byte_tokenizer, IDS)
    eager = _falcon(attn_implementation="eager")
    cap = attnwidget.capture(eager, byte_tokenizer, IDS)
    with torch.no_grad():
        ref = eager(torch.tensor([IDS]), output_attentions=True).attentions
    assert cap.is_causal
    for layer in range(cap.num_layers):
        np.testing.assert_allclose(cap.head_patterns(layer), ref[layer][0].numpy(), atol=1e-6)
