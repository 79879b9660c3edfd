"""Tiny random models of every transformers family attnwidget supports, for tests/test_families.py.

Each entry builds a model loaded the default way (sdpa where the family has it) and says how to feed
it. ``pair(name)`` returns that model and an eager copy with the same weights: the reference.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

V = 400  # the byte tokenizer's vocabulary (tests/conftest.py)
SPECIAL = dict(bos_token_id=0, eos_token_id=1, pad_token_id=2)
DEC = dict(vocab_size=V, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
           num_key_value_heads=2, max_position_embeddings=128, **SPECIAL)
ENC = dict(vocab_size=V, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
           max_position_embeddings=128, pad_token_id=2)
IMG = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, image_size=32,
           patch_size=8)


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # "causal", "encoder", "seq2seq" or "vision"
    build: object  # () -> (model class, config, from_config kwargs)
    padding: bool = True  # capture also with padding
    refusal: str | None = None  # a regex the capture must raise instead (a named refusal)


def _t(cls, config, **kw):
    import transformers as tf

    return getattr(tf, cls), config, kw


def _families():
    import transformers as tf

    t5 = dict(vocab_size=V, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4, relative_attention_num_buckets=8,
              relative_attention_max_distance=16, decoder_start_token_id=2, pad_token_id=2, eos_token_id=1)
    bart = dict(vocab_size=V, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                decoder_attention_heads=4, encoder_ffn_dim=48, decoder_ffn_dim=48, max_position_embeddings=128,
                decoder_start_token_id=2, **SPECIAL)
    clip_text = dict(vocab_size=V, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                     max_position_embeddings=128, **SPECIAL)
    return [
        # decoders
        Family("llama", "causal", lambda: _t("LlamaForCausalLM", tf.LlamaConfig(**DEC))),
        Family("llama-flex", "causal", lambda: _t("LlamaForCausalLM", tf.LlamaConfig(**DEC),
                                                 attn_implementation="flex_attention")),
        Family("qwen2", "causal", lambda: _t("Qwen2ForCausalLM", tf.Qwen2Config(**DEC))),
        Family("qwen3", "causal", lambda: _t("Qwen3ForCausalLM", tf.Qwen3Config(head_dim=8, **DEC))),
        Family("mistral", "causal", lambda: _t("MistralForCausalLM", tf.MistralConfig(sliding_window=4, **DEC))),
        Family("gemma2", "causal", lambda: _t("Gemma2ForCausalLM", tf.Gemma2Config(head_dim=8, sliding_window=4, **DEC))),
        Family("gemma3", "causal", lambda: _t("Gemma3ForCausalLM", tf.Gemma3TextConfig(head_dim=8, sliding_window=4, **DEC))),
        Family("deepseek_v3", "causal", lambda: _t("DeepseekV3ForCausalLM", tf.DeepseekV3Config(
            **{**DEC, "num_key_value_heads": 4}, kv_lora_rank=16, q_lora_rank=16, qk_rope_head_dim=8,
            qk_nope_head_dim=8, v_head_dim=8, n_routed_experts=4, num_experts_per_tok=2, n_group=1,
            topk_group=1, first_k_dense_replace=1, moe_intermediate_size=16))),
        Family("gpt_oss", "causal", lambda: _t("GptOssForCausalLM", tf.GptOssConfig(
            **DEC, head_dim=8, num_local_experts=4, num_experts_per_tok=2, sliding_window=4,
            layer_types=["sliding_attention", "full_attention"]))),
        Family("gpt2", "causal", lambda: _t("GPT2LMHeadModel", tf.GPT2Config(
            vocab_size=V, n_embd=32, n_layer=2, n_head=4, n_positions=128, **SPECIAL))),
        Family("falcon", "causal", lambda: _t("FalconForCausalLM", tf.FalconConfig(
            vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            new_decoder_architecture=False, alibi=False, **SPECIAL))),
        Family("bloom", "causal", lambda: _t("BloomForCausalLM", tf.BloomConfig(
            vocab_size=V, hidden_size=32, n_layer=2, n_head=4, **SPECIAL))),
        Family("mpt", "causal", lambda: _t("MptForCausalLM", tf.MptConfig(
            vocab_size=V, d_model=32, n_layers=2, n_heads=4, max_seq_len=128, **SPECIAL))),
        # encoders
        Family("bert", "encoder", lambda: _t("BertModel", tf.BertConfig(**ENC))),
        Family("roberta", "encoder", lambda: _t("RobertaModel", tf.RobertaConfig(**{**ENC, "max_position_embeddings": 130}))),
        Family("modernbert", "encoder", lambda: _t("ModernBertModel", tf.ModernBertConfig(
            vocab_size=V, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=128, global_attn_every_n_layers=2, local_attention=4, **SPECIAL))),
        Family("deberta_v2", "encoder", lambda: _t("DebertaV2Model", tf.DebertaV2Config(**ENC))),
        Family("clip_text", "causal", lambda: _t("CLIPTextModel", tf.CLIPTextConfig(**clip_text))),
        Family("t5_encoder", "encoder", lambda: _t("T5EncoderModel", tf.T5Config(**t5))),
        # encoder-decoders
        Family("t5", "seq2seq", lambda: _t("T5ForConditionalGeneration", tf.T5Config(**t5))),
        Family("flan_t5", "seq2seq", lambda: _t("T5ForConditionalGeneration", tf.T5Config(
            **t5, feed_forward_proj="gated-gelu", tie_word_embeddings=False))),
        Family("mt5", "seq2seq", lambda: _t("MT5ForConditionalGeneration", tf.MT5Config(**t5))),
        Family("bart", "seq2seq", lambda: _t("BartForConditionalGeneration", tf.BartConfig(**bart))),
        Family("marian", "seq2seq", lambda: _t("MarianMTModel", tf.MarianConfig(**bart))),
        Family("pegasus", "seq2seq", lambda: _t("PegasusForConditionalGeneration", tf.PegasusConfig(**bart))),
        Family("bert2bert", "seq2seq", lambda: _t("EncoderDecoderModel", tf.EncoderDecoderConfig.from_encoder_decoder_configs(
            tf.BertConfig(**ENC), tf.BertConfig(**ENC, is_decoder=True, add_cross_attention=True),
            decoder_start_token_id=0, pad_token_id=2))),
        # vision
        Family("vit", "vision", lambda: _t("ViTModel", tf.ViTConfig(**IMG))),
        Family("deit", "vision", lambda: _t("DeiTModel", tf.DeiTConfig(**IMG))),
        Family("beit", "vision", lambda: _t("BeitModel", tf.BeitConfig(**IMG, use_relative_position_bias=True))),
        Family("dinov2", "vision", lambda: _t("Dinov2Model", tf.Dinov2Config(**IMG))),
        Family("dinov2_registers", "vision", lambda: _t("Dinov2WithRegistersModel", tf.Dinov2WithRegistersConfig(
            **IMG, num_register_tokens=2))),
        Family("clip_vision", "vision", lambda: _t("CLIPVisionModel", tf.CLIPVisionConfig(**IMG))),
        Family("clip", "vision", lambda: _t("CLIPModel", tf.CLIPConfig(text_config=clip_text, vision_config=IMG))),
        Family("siglip_vision", "vision", lambda: _t("SiglipVisionModel", tf.SiglipVisionConfig(**IMG))),
    ]


FAMILIES = {f.name: f for f in _families()}


def pair(name: str, seed: int = 0):
    """``(model, eager)``: the family's model loaded the default way, and an eager copy of its weights."""
    cls, config, kwargs = FAMILIES[name].build()
    torch.manual_seed(seed)
    model = cls._from_config(copy.deepcopy(config), **kwargs).eval()
    eager = cls._from_config(copy.deepcopy(config), attn_implementation="eager").eval()
    eager.load_state_dict(model.state_dict())
    return model, eager


def image_processor(model):
    """A processor for the tiny vision models: 32 x 32 pixels, ImageNet-style normalisation."""
    from transformers import ViTImageProcessorPil

    return ViTImageProcessorPil(size={"height": 32, "width": 32})
