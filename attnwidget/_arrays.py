"""Coercion of user inputs into the arrays the analysis functions work on.

Every analysis function accepts either a :class:`~attnwidget.Capture` or a NumPy array (or torch
tensor) of shape ``[layer, head, query, key]``. This module is the single place that turns both into
an array, and refuses arrays that are not attention (see :func:`attnwidget._checks.check_attention`).
"""

from __future__ import annotations

import numpy as np

from ._checks import check_attention, check_attention_dtype, check_layers, row_sum_tolerance
from .errors import ArgumentError, ArgumentTypeError


def as_attention_array(obj, layers=None) -> tuple[np.ndarray, bool]:
    """Return ``(patterns, is_causal)`` for a Capture or a ``[layer, head, query, key]`` array.

    ``patterns`` is float32 (float64 input stays float64). ``is_causal`` comes from the capture, or,
    for a raw array, is True when every layer and head has an all-zero strict upper triangle. A raw
    array must be attention: finite, non-negative, each query row summing to 1 over its keys.
    """
    if hasattr(obj, "patterns") and hasattr(obj, "is_causal"):
        arr = np.asarray(obj.patterns(layers))
        if not hasattr(obj, "_records"):  # a Capture-like source of someone else's: check what it gives
            check_attention_dtype(arr.dtype, "patterns()")
            check_attention(arr, row_sum_tolerance(arr.dtype), "patterns()")
        return arr, bool(obj.is_causal)
    if hasattr(obj, "detach") and hasattr(obj, "dtype"):  # a torch tensor
        check_attention_dtype(obj.dtype)
        tolerance = row_sum_tolerance(str(obj.dtype).removeprefix("torch."))
        obj = obj.detach().float().cpu().numpy()
    elif isinstance(obj, np.ndarray):
        check_attention_dtype(obj.dtype)
        tolerance = row_sum_tolerance(obj.dtype if obj.dtype.kind == "f" else np.float32)
    else:
        raise ArgumentTypeError(
            "expected a Capture or a NumPy array of shape [layer, head, query, key]; "
            f"got {type(obj).__name__}. Call attnwidget.capture(model, tokenizer, text) first."
        )
    arr = obj if obj.dtype in (np.float32, np.float64) else obj.astype(np.float32)
    if arr.ndim != 4 or arr.shape[-1] != arr.shape[-2]:
        raise ArgumentError(
            "expected an attention array of shape [layer, head, query, key] with query == key; "
            f"got shape {tuple(arr.shape)}. Stack per-layer [head, query, key] arrays with np.stack."
        )
    if 0 in arr.shape:
        raise ArgumentError(
            f"attention has an empty axis: shape {tuple(arr.shape)} [layer, head, query, key]; "
            "expected at least one layer, head and token."
        )
    if layers is not None:
        arr = arr[check_layers(layers, arr.shape[0])]
    check_attention(arr, tolerance)
    n = arr.shape[-1]
    # One [query, key] matrix at a time: no copy of the whole upper triangle of a large array.
    causal = n > 1 and not any(np.triu(m, k=1).any() for m in arr.reshape(-1, n, n))
    return arr, bool(causal)
