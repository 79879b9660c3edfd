"""The one validation layer: indices, selections, numbers, dtypes and "is this attention?".

Every entry point (Capture, the analysis functions, the widget, export, ``Capture.load`` and the CLI)
checks its arguments here, so that one wrong value gets the same answer everywhere: an error of the
family in :mod:`attnwidget.errors` that names what was expected, what arrived and what to do.
Indices follow Python: ``-1`` is the last layer, head or token.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ArgumentError, ArgumentTypeError, NotAttentionError, OutOfRangeError

if TYPE_CHECKING:
    from typing import TypeGuard

    import torch

#: Tolerance of "rows sum to 1" for attention given as an array: ``max(1e-4, 8 x the dtype's machine
#: epsilon)``, so 1e-4 for float32/float64, 7.8e-3 for float16 and 6.3e-2 for bfloat16 (a softmax
#: computed in float32 and rounded to the dtype is off by at most one rounding unit per row sum).
ROW_SUM_FLOOR = 1e-4


def is_int(value: object) -> TypeGuard[int | np.integer[Any]]:
    """An integer (Python or NumPy), bools excluded."""
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_flag(value: object, name: str) -> bool:
    """A bool (Python or NumPy), nothing else: ``values=1`` or ``values="yes"`` is refused, not guessed."""
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentTypeError(f"{name} must be True or False; got {type(value).__name__} {_shown(value)}.")
    return bool(value)


def check_index(value: object, size: int, name: str, unit: str, hint: str = "") -> int:
    """An int in ``-size..size-1`` (negative counts from the end) -> the index in ``0..size-1``.

    ``unit``: what is counted, in words ("layers", "heads per layer", "tokens")."""
    if not is_int(value):
        raise ArgumentTypeError(
            f"{name} must be an int (0..{size - 1}, or negative from the end); got "
            f"{type(value).__name__} {_shown(value)}." + (f" {hint}" if hint else "")
        )
    if not -size <= value < size:
        raise OutOfRangeError(
            f"{name} {int(value)} is out of range: there are {size} {unit} (0..{size - 1}, or negative "
            "from the end)." + (f" {hint}" if hint else "")
        )
    return int(value) % size


def check_layer(value: object, num_layers: int, name: str = "layer") -> int:
    return check_index(value, num_layers, name, "layers")


def check_head(value: object, num_heads: int, name: str = "head") -> int | None:
    """``None`` or ``"mean"`` (the mean over heads) or a head index."""
    if value is None or (isinstance(value, str) and value == "mean"):
        return None
    return check_index(value, num_heads, name, "heads per layer", "Use None (or 'mean') for the mean over heads.")


def check_indices(values: object, size: int, name: str, unit: str, *, allow_empty: bool = True) -> list[int]:
    """An int, or a list / tuple / range / 1-D integer array of them -> indices in ``0..size-1``."""
    if is_int(values):
        return [check_index(values, size, name, unit)]
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple, range, np.ndarray)):
        raise ArgumentTypeError(
            f"{name} must be an int or a list of ints; got {type(values).__name__} {_shown(values)}."
        )
    if isinstance(values, np.ndarray) and values.ndim != 1:
        raise ArgumentError(f"{name} must be a 1-D list of ints; got an array of shape {values.shape}.")
    if len(values) == 0 and not allow_empty:
        raise ArgumentError(f"{name} must name at least one of the {size} {unit}; got an empty list.")
    if isinstance(values, range) or (isinstance(values, np.ndarray) and values.dtype.kind in "iu"):
        idx = np.asarray(values, dtype=np.int64)  # vectorised: row lists of long inputs are long
        bad = np.flatnonzero((idx < -size) | (idx >= size))
        if bad.size:
            check_index(int(idx[bad[0]]), size, f"{name}[{bad[0]}]", unit)
        return (idx % size).tolist() if size else []
    return [check_index(v, size, f"{name}[{i}]", unit) for i, v in enumerate(values)]


def check_layers(value: object, num_layers: int, name: str = "layers") -> list[int]:
    """``None`` (all layers), an int, or a non-empty list of ints -> layer indices."""
    if value is None:
        return list(range(num_layers))
    return check_indices(value, num_layers, name, "layers", allow_empty=False)


def check_heads(value: object, num_heads: int, name: str = "heads") -> list[int] | None:
    """``None`` (all heads, averaged), an int, or a non-empty list of ints -> head indices or None."""
    if value is None:
        return None
    return check_indices(value, num_heads, name, "heads per layer", allow_empty=False)


def check_number(value: object, name: str, low: float | None = None, high: float | None = None,
                 hint: str = "") -> float:
    """A real, finite number in ``[low, high]`` (bools refused) -> float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise ArgumentTypeError(f"{name} must be a number; got {type(value).__name__} {_shown(value)}." +
                                (f" {hint}" if hint else ""))
    x = float(value)
    if not math.isfinite(x):
        raise ArgumentError(f"{name} must be a finite number; got {x}." + (f" {hint}" if hint else ""))
    if (low is not None and x < low) or (high is not None and x > high):
        bounds = f"[{low}, {high}]" if low is not None and high is not None else (
            f">= {low}" if low is not None else f"<= {high}")
        raise ArgumentError(f"{name} must lie in {bounds}; got {x}." + (f" {hint}" if hint else ""))
    return x


def check_choice(value: object, choices: Collection[str], name: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ArgumentError(
            f"{name} must be one of {', '.join(map(repr, choices))}; got {type(value).__name__} {_shown(value)}."
        )
    return value


def check_float_dtype(value: object, name: str) -> torch.dtype | None:
    """``None``, a torch floating dtype, or its name (``"float16"``, ``"bfloat16"``, ...) -> torch dtype."""
    import torch

    if value is None:
        return None
    allowed = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
               "float64": torch.float64}
    if isinstance(value, str):
        key = value.removeprefix("torch.")
        if key in allowed:
            return allowed[key]
    elif isinstance(value, torch.dtype) and value in allowed.values():
        return value
    raise ArgumentError(
        f"{name} must be None (keep the model's dtype) or a floating dtype ({', '.join(allowed)}); got "
        f"{_shown(value)}. Integer, bool and complex dtypes would round or break the queries and keys."
    )


# ----------------------------------------------------------------------------- attention arrays


def row_sum_tolerance(dtype: Any) -> float:  # a NumPy dtype or its name; a torch dtype's name
    """How far from 1 a row of attention in ``dtype`` may sum (see :data:`ROW_SUM_FLOOR`)."""
    try:
        eps = float(np.finfo(dtype).eps)
    except (TypeError, ValueError):
        eps = 2.0 ** -7 if "bfloat16" in str(dtype) else 0.0  # torch.bfloat16 has no NumPy finfo
    return max(ROW_SUM_FLOOR, 8 * eps)


def check_attention_dtype(dtype: Any, name: str = "attention") -> None:  # a NumPy dtype or a torch.dtype
    """Refuse dtypes that cannot hold attention weights (complex, bool, strings, objects)."""
    kind = np.dtype(dtype).kind if not hasattr(dtype, "is_complex") else (
        "c" if dtype.is_complex else "b" if str(dtype) == "torch.bool" else "f")
    if kind in "c":
        raise NotAttentionError(
            f"{name} is complex ({dtype}); attention weights are real probabilities. Pass the softmax "
            "weights ([layer, head, query, key], e.g. a model's output_attentions)."
        )
    if kind == "b":
        raise NotAttentionError(
            f"{name} is a bool array; attention weights are probabilities (floats whose rows sum to 1)."
        )
    if kind not in "fiu":
        raise ArgumentTypeError(f"{name} must be a numeric array of weights; got dtype {dtype}.")


def check_weights(block: np.ndarray, name: str = "attention", where: str = "") -> None:
    """Refuse weights with a NaN, an infinity or a negative entry (``where``: which layer and rows, in
    words). The row-sum part of :func:`check_attention` is left out: for blocks computed from a
    Capture, and for mixed or propagated rows whose sums are not 1 by design."""
    finite = np.isfinite(block)
    if not finite.all():
        raise NotAttentionError(
            f"{name}{where} has a non-finite weight ({block[~finite].flat[0]}); attention weights are "
            "finite probabilities. Check the model ran in a dtype that does not overflow (float16), and "
            "pass softmax weights, not scores."
        )
    if block.size and block.min() < 0:
        raise NotAttentionError(
            f"{name}{where} has a negative weight ({block.min():.4g}); attention weights are probabilities "
            "(>= 0). Scores or logits before the softmax are not attention: apply softmax over the keys first."
        )


def check_attention(arr: np.ndarray, tolerance: float, name: str = "attention", first_layer: int = 0) -> None:
    """Refuse an ``[layer, head, query, key]`` array that is not attention: a NaN or infinite entry, a
    negative weight, or a query row whose weights do not sum to 1 within ``tolerance`` (an all-zero row
    included). The error names the first bad layer, head and row. Checked one layer at a time, so the
    check needs at most one layer of temporary memory."""
    for l in range(arr.shape[0]):
        layer = arr[l]
        finite = np.isfinite(layer)
        if not finite.all():
            h, q, k = np.argwhere(~finite)[0]
            raise NotAttentionError(
                f"{name} has a non-finite weight ({layer[h, q, k]}) at layer {l + first_layer}, head {h}, "
                f"query {q}, key {k}; attention weights are finite probabilities. Check the model ran in a "
                "dtype that does not overflow, and pass softmax weights, not scores."
            )
        low = layer.min() if layer.size else 0
        if low < 0:
            h, q, k = np.argwhere(layer < 0)[0]
            raise NotAttentionError(
                f"{name} has a negative weight ({layer[h, q, k]:.4g}) at layer {l + first_layer}, head {h}, "
                f"query {q}, key {k}; attention weights are probabilities (>= 0). Scores or logits "
                "before the softmax are not attention: apply softmax over the keys first."
            )
        sums = layer.sum(axis=-1, dtype=np.float64)
        off = np.abs(sums - 1.0) > tolerance
        if off.any():
            h, q = np.argwhere(off)[0]
            what = "is all zero" if sums[h, q] == 0 else f"sums to {sums[h, q]:.6g}"
            raise NotAttentionError(
                f"{name} row {q} of layer {l + first_layer}, head {h} {what} over its keys; each query row "
                f"of attention sums to 1 (within {tolerance:.2g} for this dtype). Pass softmax weights "
                "([layer, head, query, key], e.g. output_attentions); drop padding rows, and do not pass "
                "normalised-away or summed patterns."
            )
