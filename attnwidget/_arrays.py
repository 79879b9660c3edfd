"""Coercion of user inputs into the arrays the analysis functions work on.

Every analysis function accepts either a :class:`~attnwidget.Capture` or a NumPy array (or torch
tensor) of shape ``[layer, head, query, key]``. This module is the single place that turns both into
an array, and refuses arrays that are not attention (see :func:`attnwidget._checks.check_attention`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ._checks import check_attention, check_attention_dtype, check_layers, row_sum_tolerance
from .errors import ArgumentError, ArgumentTypeError

if TYPE_CHECKING:
    from ._types import AttentionSource, Layers


def as_attention_array(obj: AttentionSource, layers: Layers = None) -> tuple[np.ndarray, bool]:
    """Return ``(patterns, is_causal)`` for a Capture or a ``[layer, head, query, key]`` array.

    ``patterns`` is float32 (float64 input stays float64). ``is_causal`` comes from the capture, or,
    for a raw array, is True when it is square and every layer and head has an all-zero strict upper
    triangle. A raw array must be attention: finite, non-negative, each query row summing to 1 over its
    keys. It may be rectangular, ``query != key`` (cross-attention: the queries of one sequence over
    the keys of another); it is then not causal.
    """
    if hasattr(obj, "patterns") and hasattr(obj, "is_causal"):
        arr = np.asarray(obj.patterns(layers))
        if not hasattr(obj, "_records"):  # a Capture-like source of someone else's: check what it gives
            check_attention_dtype(arr.dtype, "patterns()")
            check_attention(arr, row_sum_tolerance(arr.dtype), "patterns()")
        return arr, bool(obj.is_causal)
    obj = _layers_of(obj)
    if isinstance(obj, list):  # per-layer attention: what output_attentions and hook caches give
        parts = [_numeric(x, f"attention[{i}]") for i, x in enumerate(obj)]
        tolerance = max(t for _, t in parts)
        shapes = {a.shape[-3:] for a, _ in parts}
        if len(shapes) > 1:
            raise ArgumentError(f"the layers' attention shapes differ: {sorted(shapes)}; expected one [head, query, key] "
                                "shape for every layer")
        obj = np.stack([_one_sequence(a, f"attention[{i}]") for i, (a, _) in enumerate(parts)])
    else:
        obj, tolerance = _numeric(obj, "attention")
        if obj.ndim == 5:  # [layer, batch, head, query, key]
            obj = np.stack([_one_sequence(a, f"attention[{i}]") for i, a in enumerate(obj)])
    arr = obj if obj.dtype in (np.float32, np.float64) else obj.astype(np.float32)
    if arr.ndim != 4:
        raise ArgumentError(
            "expected an attention array of shape [layer, head, query, key]; "
            f"got shape {tuple(arr.shape)}. Per-layer attention can be passed as it is: a tuple or list of "
            "[1, head, query, key] or [head, query, key] arrays (output_attentions), a [layer, 1, head, query, "
            "key] stack, or a TransformerLens ActivationCache."
        )
    if 0 in arr.shape:
        raise ArgumentError(
            f"attention has an empty axis: shape {tuple(arr.shape)} [layer, head, query, key]; "
            "expected at least one layer, head and token."
        )
    if layers is not None:
        arr = arr[check_layers(layers, arr.shape[0])]
    check_attention(arr, tolerance)
    n_q, n = arr.shape[-2:]
    # One [query, key] matrix at a time: no copy of the whole upper triangle of a large array. A
    # rectangle (cross-attention: queries and keys from two sequences) is never causal.
    causal = n_q == n > 1 and not any(np.triu(m, k=1).any() for m in arr.reshape(-1, n, n))
    return arr, bool(causal)


def _layers_of(obj: Any) -> AttentionSource:  # Any: duck-typed (keys(), shape) until checked
    """Per-layer attention as a list (a tuple or list of arrays/tensors, or the ``pattern`` hooks of a
    TransformerLens ``ActivationCache``); anything else as it is."""
    keys = None
    if hasattr(obj, "keys") and callable(obj.keys) and not hasattr(obj, "shape"):
        try:
            keys = [k for k in obj.keys() if isinstance(k, str) and k.endswith(".attn.hook_pattern")]
        except TypeError:
            keys = None
    if keys:  # TransformerLens: cache["blocks.{l}.attn.hook_pattern"] is [batch, head, query, key]
        def layer(k: str) -> int:
            try:
                return int(k.split(".")[1])
            except (IndexError, ValueError):
                raise ArgumentError(f"cannot read the layer of cache key {k!r}; expected 'blocks.L.attn.hook_pattern'") from None
        keys = sorted(keys, key=layer)
        if [layer(k) for k in keys] != list(range(len(keys))):
            raise ArgumentError(f"the cache holds the patterns of layers {[layer(k) for k in keys]}; expected every "
                                "layer from 0 (run the model with the attention pattern hooks of all layers cached)")
        return [obj[k] for k in keys]
    if isinstance(obj, (tuple, list)) and obj and all(hasattr(x, "shape") for x in obj):
        return list(obj)
    return obj


def _numeric(x: object, name: str) -> tuple[np.ndarray, float]:
    """An array or tensor as NumPy (bfloat16 and other torch dtypes through float32) with the row-sum
    tolerance of its own dtype; other inputs refused."""
    if hasattr(x, "detach") and hasattr(x, "dtype"):  # a torch tensor
        check_attention_dtype(x.dtype, name)
        return x.detach().float().cpu().numpy(), row_sum_tolerance(str(x.dtype).removeprefix("torch."))
    if isinstance(x, np.ndarray):
        check_attention_dtype(x.dtype, name)
        return x, row_sum_tolerance(x.dtype if x.dtype.kind == "f" else np.float32)
    if hasattr(x, "parts") or hasattr(x, "cross_attentions"):  # an encoder-decoder's three kinds of attention
        where = "cap.encoder, cap.decoder or cap.cross" if hasattr(x, "parts") else (
            "output.encoder_attentions, output.decoder_attentions or output.cross_attentions")
        raise ArgumentTypeError(
            f"{type(x).__name__} holds three kinds of attention (encoder, decoder, cross); an analysis reads one. "
            f"Pass {where} (the widget, show and export_html take the whole)."
        )
    raise ArgumentTypeError(
        "expected a Capture, a NumPy array or tensor of shape [layer, head, query, key], or per-layer "
        f"attention (a tuple of [1, head, query, key] tensors, as output_attentions gives); got "
        f"{type(x).__name__}. Call attnwidget.capture(model, tokenizer, text) to record attention."
    )


def _one_sequence(a: np.ndarray, name: str) -> np.ndarray:
    """``[1, head, query, key]`` -> ``[head, query, key]``; ``[head, query, key]`` as it is."""
    if a.ndim == 4:
        if a.shape[0] != 1:
            raise ArgumentError(f"{name} holds a batch of {a.shape[0]} sequences; attnwidget shows one. Pick "
                                f"one sequence b, e.g. [layer[b:b + 1] for layer in attentions].")
        return a[0]
    if a.ndim != 3:
        raise ArgumentError(f"{name} has shape {tuple(a.shape)}; expected [1, head, query, key] or [head, query, key]")
    return a
