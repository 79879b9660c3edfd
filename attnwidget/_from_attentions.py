"""Attention a user already has, made into a Capture: ``Capture.from_attentions`` and
``Seq2SeqCapture.from_attentions`` / ``from_output``.

Every form :func:`attnwidget._arrays.as_attention_array` reads is accepted (an ``output_attentions``
tuple of ``[1, H, q, k]`` tensors, a ``[L, 1, H, q, k]`` or ``[L, H, q, k]`` stack in any float dtype,
a TransformerLens ``ActivationCache``), goes through the same attention check, and is kept as
returned weights (one ``[H, q, k]`` float32 tensor per layer), so the result saves and loads like a
recorded capture and every view and analysis reads it the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ._arrays import as_attention_array
from ._recorder import WeightsRecord
from .errors import ArgumentError, ArgumentTypeError

if TYPE_CHECKING:
    from ._types import AttentionSource, Showable
    from .capture import Capture
    from .seq2seq import Seq2SeqCapture


def _token_list(tokens: Sequence[str] | None, count: int, name: str, what: str) -> list[str]:
    if tokens is None:
        return [str(i) for i in range(count)]
    if isinstance(tokens, str) or not all(isinstance(t, str) for t in tokens):
        raise ArgumentTypeError(f"{name} must be a list of strings, one per {what}; got {type(tokens).__name__}")
    tokens = list(tokens)
    if len(tokens) != count:
        raise ArgumentError(f"{name} has {len(tokens)} strings but the attention has {count} {what}s; they must match")
    return tokens


def capture_from_attentions(cls: type[Capture], attentions: AttentionSource, tokens: Sequence[str] | None = None,
                            key_tokens: Sequence[str] | None = None, *, model_name: str = "attentions",
                            is_causal: bool | None = None, cross: bool = False,
                            names: tuple[str, str] = ("tokens", "key_tokens")) -> Capture:
    """A ``cls`` (Capture) holding ``attentions`` as returned weights (see the module docstring)."""
    arr, causal = as_attention_array(attentions)
    layers, heads, n_q, n_k = arr.shape
    cross = cross or key_tokens is not None or n_q != n_k
    if cross and key_tokens is None and n_q != n_k:
        raise ArgumentError(
            f"this attention is [{n_q} queries, {n_k} keys]: cross-attention over another sequence. Pass its "
            "tokens as key_tokens= (the source's, for an encoder-decoder's cross-attention)."
        )
    query_tokens = _token_list(tokens, n_q, names[0], "query position")
    keys = _token_list(key_tokens, n_k, names[1], "key position") if cross else None
    records = [WeightsRecord(f"layer {i}", torch.from_numpy(np.ascontiguousarray(arr[i], dtype=np.float32)))
               for i in range(layers)]
    zeros = np.zeros(n_q, dtype=bool)
    return cls(records=records, masks=[], token_ids=np.arange(n_q), tokens=query_tokens,
               offsets=np.zeros((n_q, 2), np.int64), special=zeros, generated=zeros, partial=zeros, text=None,
               model_name=model_name, is_causal=causal if is_causal is None else is_causal, num_heads=heads,
               key_tokens=keys, key_token_ids=None if keys is None else np.arange(n_k))


def seq2seq_from_attentions(encoder: AttentionSource | None, decoder: AttentionSource | None,
                            cross: AttentionSource | None, *, source_tokens: Sequence[str] | None = None,
                            target_tokens: Sequence[str] | None = None,
                            model_name: str = "attentions") -> Seq2SeqCapture:
    """A Seq2SeqCapture from an encoder-decoder's three attention tuples."""
    from .capture import Capture
    from .seq2seq import Seq2SeqCapture

    parts: dict[str, AttentionSource] = {}
    for name, attn in (("encoder", encoder), ("decoder", decoder), ("cross", cross)):
        if attn is None:
            raise ArgumentError(f"{name} attention is missing: run the model with output_attentions=True "
                                "(and attn_implementation='eager') to get all three")
        parts[name] = attn
    enc = capture_from_attentions(Capture, parts["encoder"], source_tokens, model_name=model_name, is_causal=False,
                                  names=("source_tokens (the encoder's)", ""))
    dec = capture_from_attentions(Capture, parts["decoder"], target_tokens, model_name=model_name,
                                  names=("target_tokens (the decoder's)", ""))
    crs = capture_from_attentions(Capture, parts["cross"], dec.tokens, enc.tokens, model_name=model_name,
                                  is_causal=False, cross=True)
    return Seq2SeqCapture(encoder=enc, decoder=dec, cross=crs)


def is_seq2seq_output(obj: object) -> bool:
    """A transformers encoder-decoder output (``Seq2SeqLMOutput`` and kin) with its attentions."""
    return all(hasattr(obj, a) for a in ("encoder_attentions", "decoder_attentions", "cross_attentions"))


def as_source(obj: Any, tokens: Sequence[str] | None = None,
              key_tokens: Sequence[str] | None = None) -> Showable:  # obj: Any, read duck-typed
    """What a view or export reads: a seq2seq output becomes a Seq2SeqCapture (``tokens``: the target's,
    ``key_tokens``: the source's); a rectangular array or tuple with ``key_tokens`` becomes a cross
    Capture; anything else is returned as it is (the pattern engine reads it)."""
    from .capture import Capture

    if is_seq2seq_output(obj):
        return seq2seq_from_attentions(obj.encoder_attentions, obj.decoder_attentions, obj.cross_attentions,
                                       source_tokens=key_tokens, target_tokens=tokens)
    if key_tokens is not None:
        return capture_from_attentions(Capture, obj, tokens, key_tokens)
    return obj


def widget_source(obj: Showable, tokens: Sequence[str] | None,
                  key_tokens: Sequence[str] | None) -> tuple[Showable, Sequence[str] | None, Sequence[str] | None]:
    """``(source, tokens, key_tokens)``: an encoder-decoder model's output, or attention arrays with
    ``key_tokens``, made into a capture (``attnwidget._from_attentions.as_source``, which takes the
    token strings: None is left for the page to relabel); a capture or anything else as it is."""
    from ._widget_parts import parts_of

    capture_like = parts_of(obj) is not None or (hasattr(obj, "patterns") and hasattr(obj, "is_causal"))
    if is_seq2seq_output(obj):
        _check_output_tokens(obj, tokens, key_tokens)
    if is_seq2seq_output(obj) or (key_tokens is not None and not capture_like):
        return as_source(obj, tokens, key_tokens), None, None
    return obj, tokens, key_tokens


def _check_output_tokens(output: object, tokens: Sequence[str] | None, key_tokens: Sequence[str] | None) -> None:
    """An encoder-decoder output's strings: ``tokens`` the target's, ``key_tokens`` the source's (said
    here in those words; the capture made from it names the encoder's and decoder's own tokens)."""
    for name, given, attribute, what in (("tokens", tokens, "decoder_attentions", "target (decoder)"),
                                         ("key_tokens", key_tokens, "encoder_attentions", "source (encoder)")):
        layers = getattr(output, attribute, None)
        if given is None or isinstance(given, str) or not layers:
            continue
        count = int(layers[0].shape[-1])
        if len(given) != count:
            raise ArgumentError(
                f"{name} has {len(given)} strings but the {what} has {count} tokens: for an encoder-decoder "
                "output, tokens= are the target's strings and key_tokens= the source's.")
