"""Two hand-written transformers models for the capture's edge paths.

``ToyWeightsModel``'s attention does not use transformers' AttentionInterface (so ``capture`` must
fall back to the returned weights). ``ToyBiasModel`` goes through the interface but passes a
``position_bias`` term the recorder cannot reproduce (so ``method="qk"`` must refuse, and ``"auto"``
must take the weights its eager attention returns).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS


class ToyConfig(PretrainedConfig):
    model_type = "attnwidget_toy"

    def __init__(self, vocab_size=50, hidden_size=16, num_attention_heads=2, num_hidden_layers=2, **kw):
        super().__init__(**kw)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.num_hidden_layers = num_hidden_layers


class ToyWeightsAttention(nn.Module):
    returns_scores = False

    def __init__(self, config):
        super().__init__()
        self.heads = config.num_attention_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)

    def forward(self, x, output_attentions=False):
        b, n, h = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / (h // self.heads) ** 0.5
        scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
        weights = scores.softmax(-1)
        out = (weights @ v).transpose(1, 2).reshape(b, n, h)
        if self.returns_scores:  # what a buggy model might hand back: scores, not weights
            weights = scores.masked_fill(scores.isinf(), 0.0)
        return out, (weights if output_attentions else None)


def _toy_eager(module, q, k, v, attention_mask, scaling=None, position_bias=None, **kwargs):
    """The toy's eager attention: scores, its position bias, the causal mask, softmax."""
    n = q.shape[-2]
    scores = q @ k.transpose(-1, -2) * (q.shape[-1] ** -0.5 if scaling is None else scaling)
    scores = scores + position_bias
    scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    weights = scores.softmax(-1)
    return (weights @ v).transpose(1, 2), weights


class ToyBiasAttention(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.is_causal = True
        self.heads = config.num_attention_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)

    def forward(self, x, attention_mask=None, output_attentions=False):
        b, n, h = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        fn = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, _toy_eager)
        bias = torch.linspace(0, 1, n)[None, None, None, :].expand(1, self.heads, n, n)  # traceable to no table
        out, weights = fn(self, q, k, v, attention_mask, scaling=None, position_bias=bias)
        return out.reshape(b, n, h), (weights if output_attentions else None)


class _ToyBase(PreTrainedModel):
    config_class = ToyConfig
    base_model_prefix = "toy"
    _supports_sdpa = True

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.5)


class ToyWeightsModel(_ToyBase):
    def __init__(self, config):
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(ToyWeightsAttention(config) for _ in range(config.num_hidden_layers))
        self.post_init()

    def forward(self, input_ids, attention_mask=None, output_attentions=False, **kwargs):
        x = self.embed(input_ids)
        for layer in self.layers:
            out, _ = layer(x, output_attentions=output_attentions)
            x = x + out
        return x


class ToyScoresAttention(ToyWeightsAttention):
    returns_scores = True


class ToyScoresModel(ToyWeightsModel):
    """Returns its scores where the weights belong, in every attention implementation."""

    def __init__(self, config):
        super().__init__(config)
        self.layers = nn.ModuleList(ToyScoresAttention(config) for _ in range(config.num_hidden_layers))
        self.post_init()


class ToyBiasModel(_ToyBase):
    def __init__(self, config):
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(ToyBiasAttention(config, i) for i in range(config.num_hidden_layers))
        self.post_init()

    def forward(self, input_ids, attention_mask=None, output_attentions=False, **kwargs):
        x = self.embed(input_ids)
        for layer in self.layers:
            x = x + layer(x, output_attentions=output_attentions)[0]
        return x


class ToyNoAttentionModel(_ToyBase):
    def __init__(self, config):
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.mix = nn.Linear(config.hidden_size, config.hidden_size)
        self.post_init()

    def forward(self, input_ids, attention_mask=None, **kwargs):
        return self.mix(self.embed(input_ids))
