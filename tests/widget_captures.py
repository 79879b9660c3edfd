"""Hand-built captures for the widget's tests: an encoder-decoder (Seq2SeqCapture) and a vision one.

Built from random queries and keys (QKRecord), as a capture of a real model would record them, so the
tests need no model download: the encoder is bidirectional, the decoder causal, the cross-attention
``[target, source]``; the vision capture has [CLS], then a grid of patch tokens, and a picture.
"""

from __future__ import annotations

import numpy as np
import torch

from attnwidget._recorder import QKRecord
from attnwidget.capture import Capture

SOURCE = ["▁The", "▁cat", "▁sat", "▁on", "▁the", "▁mat", ".", "</s>"]  # 8 source tokens
TARGET = ["<pad>", "▁Die", "▁Katze", "▁saß", "▁auf", "</s>"]  # 6 target tokens


def make_capture(tokens, *, causal: bool, key_tokens=None, layers: int = 2, heads: int = 4, seed: int = 0,
                 name: str = "toy", **extra) -> Capture:
    """A Capture over ``tokens`` (query rows) and ``key_tokens`` (key columns; default: the same)."""
    gen = torch.Generator().manual_seed(seed)
    n = len(tokens)
    keys = list(tokens) if key_tokens is None else list(key_tokens)
    records = [QKRecord(f"layers.{i}", torch.randn(heads, n, 8, generator=gen) * 1.5,
                        torch.randn(heads, len(keys), 8, generator=gen) * 1.5, -1, causal, 0.35)
               for i in range(layers)]
    ends = np.arange(1, n + 1)
    cross = {} if key_tokens is None else {"key_tokens": keys, "key_token_ids": np.arange(len(keys)) % 5}
    return Capture(records=records, masks=[], token_ids=np.arange(n) % 5, tokens=list(tokens),
                   offsets=np.stack([ends - 1, ends], 1), special=np.zeros(n, bool), generated=np.zeros(n, bool),
                   partial=np.zeros(n, bool), text="".join(tokens), model_name=name, is_causal=causal,
                   num_heads=heads, **cross, **extra)


def make_seq2seq(*, encoder_layers: int = 2, decoder_layers: int = 3, heads: int = 4):
    """A Seq2SeqCapture: encoder 2 layers over 8 source tokens, decoder and cross 3 layers over 6 targets."""
    from attnwidget.seq2seq import Seq2SeqCapture

    encoder = make_capture(SOURCE, causal=False, layers=encoder_layers, heads=heads, seed=1, name="toy-t5")
    decoder = make_capture(TARGET, causal=True, layers=decoder_layers, heads=heads, seed=2, name="toy-t5")
    cross = make_capture(TARGET, causal=False, key_tokens=SOURCE, layers=decoder_layers, heads=heads, seed=3,
                         name="toy-t5")
    return Seq2SeqCapture(encoder=encoder, decoder=decoder, cross=cross)


def make_picture(height: int = 48, width: int = 64) -> np.ndarray:
    """uint8 ``[height, width, 3]``: a colour gradient with a bright square (something to recognise)."""
    y, x = np.mgrid[0:height, 0:width]
    picture = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1),
                        np.full_like(x, 96)], axis=-1).astype(np.uint8)
    picture[height // 4:height // 2, width // 4:width // 2] = 250
    return picture


def make_vision(rows: int = 3, cols: int = 4, *, extra_tokens=("[CLS]",), layers: int = 2, heads: int = 4,
                seed: int = 5) -> Capture:
    """A ViT-like capture: ``extra_tokens`` ([CLS], registers), then ``rows x cols`` patch tokens
    named "patch r,c", a picture of 48 x 64 pixels, bidirectional attention."""
    tokens = list(extra_tokens) + [f"patch {r},{c}" for r in range(rows) for c in range(cols)]
    return make_capture(tokens, causal=False, layers=layers, heads=heads, seed=seed, name="toy-vit",
                        image=make_picture(), patch_grid=(rows, cols), patch_start=len(extra_tokens))
