"""Plain helpers shared by test modules (import them with `from helpers import ...`)."""

from __future__ import annotations

import torch


def tiny_config(arch: str, vocab_size: int = 400):
    """Small random configs: 2-3 layers, 4 heads. Grouped-query where the architecture has it."""
    import transformers as tf

    common = dict(vocab_size=vocab_size, bos_token_id=0, eos_token_id=1, pad_token_id=2)
    decoder = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
                   num_key_value_heads=2, max_position_embeddings=256, **common)
    if arch == "llama":
        return tf.LlamaConfig(**decoder)
    if arch == "mistral":  # sliding-window attention
        return tf.MistralConfig(sliding_window=5, **decoder)
    if arch == "gemma2":  # logit soft-capping and alternating sliding windows
        return tf.Gemma2Config(head_dim=16, sliding_window=5, **decoder)
    if arch == "qwen2":
        return tf.Qwen2Config(**decoder)
    if arch == "gpt2":
        return tf.GPT2Config(n_embd=64, n_layer=3, n_head=4, n_positions=256, **common)
    if arch == "bert":
        return tf.BertConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                             num_attention_heads=4, max_position_embeddings=256, pad_token_id=2)
    raise ValueError(arch)


def tiny_model(arch: str, seed: int = 0):
    """A randomly initialised model built from ``tiny_config``, loaded the default way (sdpa)."""
    from transformers import AutoModel, AutoModelForCausalLM

    torch.manual_seed(seed)
    cls = AutoModel if arch == "bert" else AutoModelForCausalLM
    return cls.from_config(tiny_config(arch)).eval()


LONG_TEXT = (
    "The history of natural language processing generally started in the 1950s, although work can be "
    "found from earlier periods. In 1950, Alan Turing published an article titled Computing Machinery "
    "and Intelligence which proposed what is now called the Turing test as a criterion of intelligence. "
    "The Georgetown experiment in 1954 involved fully automatic translation of more than sixty Russian "
    "sentences into English. The authors claimed that within three or five years, machine translation "
    "would be a solved problem. However, real progress was much slower, and after the ALPAC report in "
    "1966, which found that ten years of research had failed to fulfill the expectations, funding for "
    "machine translation was dramatically reduced."
)
