"""Coercion of user inputs into the arrays the analysis functions work on.

Every analysis function accepts either a :class:`~attnwidget.Capture` or a NumPy array of shape
``[layer, head, query, key]``. This module is the single place that turns both into an array.
"""

from __future__ import annotations

import numpy as np


def as_attention_array(obj, layers=None) -> tuple[np.ndarray, bool]:
    """Return ``(patterns, is_causal)`` for a Capture or a ``[layer, head, query, key]`` array.

    ``patterns`` is float32 (float64 input stays float64). ``is_causal`` comes from the capture, or,
    for a raw array, is True when every layer and head has an all-zero strict upper triangle.
    """
    if hasattr(obj, "patterns") and hasattr(obj, "is_causal"):
        return np.asarray(obj.patterns(layers)), bool(obj.is_causal)
    if hasattr(obj, "detach"):  # a torch tensor
        obj = obj.detach().float().cpu().numpy()
    if not isinstance(obj, np.ndarray):
        raise TypeError(
            "expected a Capture or a NumPy array of shape [layer, head, query, key]; "
            f"got {type(obj).__name__}. Call attnwidget.capture(model, tokenizer, text) first."
        )
    arr = obj if obj.dtype in (np.float32, np.float64) else obj.astype(np.float32)
    if arr.ndim != 4 or arr.shape[-1] != arr.shape[-2]:
        raise ValueError(
            "expected an attention array of shape [layer, head, query, key] with query == key; "
            f"got shape {tuple(arr.shape)}. Stack per-layer [head, query, key] arrays with np.stack."
        )
    if layers is not None:
        arr = arr[np.atleast_1d(np.asarray(layers))]
    n = arr.shape[-1]
    # One [query, key] matrix at a time: no copy of the whole upper triangle of a large array.
    causal = n > 1 and not any(np.triu(m, k=1).any() for m in arr.reshape(-1, n, n))
    return arr, bool(causal)
