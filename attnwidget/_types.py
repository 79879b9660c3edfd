"""The types of attnwidget's signatures that are not a class of its own: what the analysis functions
read, what ``capture`` takes, paths, indices.

For annotations only: every module imports these names under ``typing.TYPE_CHECKING`` (and
annotates with ``from __future__ import annotations``), so this module never runs, costs no import
time and makes no import cycle. The protocols are structural: any object with the members they name
fits (a TransformerLens ``ActivationCache`` is a :class:`HookCache`; a user's object with
``patterns(layers)`` and ``is_causal`` is a :class:`CaptureLike`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, Union

import numpy as np

if TYPE_CHECKING:
    from typing import TypeAlias

    import torch
    from PIL import Image

    from .seq2seq import Seq2SeqCapture

#: A file name: a string or a path.
StrPath: TypeAlias = Union[str, "os.PathLike[str]"]

#: Indices (layers, heads, tokens): an int, or a sequence, range or 1-D integer array of them.
Indices: TypeAlias = Union[int, np.integer, Sequence[int], np.ndarray]
#: Query rows: :data:`Indices`, a slice, or None for every row.
Rows: TypeAlias = Union[Indices, slice, None]
#: A selection of layers: :data:`Indices`, or None for every layer.
Layers: TypeAlias = Union[Indices, None]


class CaptureLike(Protocol):
    """A source read through ``patterns(layers)``: a :class:`~attnwidget.Capture`, a
    :class:`~attnwidget.contributions.ContributionSource`, or a user's object with these members
    (``num_heads``, ``num_tokens`` and ``num_keys`` are read when it has them)."""

    @property
    def is_causal(self) -> bool: ...

    @property
    def num_layers(self) -> int: ...

    def patterns(self, layers: Layers, /) -> np.ndarray | torch.Tensor: ...


class HookCache(Protocol):
    """Per-layer attention in a mapping: a TransformerLens ``ActivationCache`` (keys
    ``blocks.{layer}.attn.hook_pattern``) or a ``dict`` of them."""

    def keys(self) -> Iterable[Any]: ...

    def __getitem__(self, key: str, /) -> Any: ...


#: What the analysis functions (metrics, rollout, head roles, reports) read: a Capture or Capture-like
#: source, a ``[layer, head, query, key]`` array or tensor, per-layer attention (an
#: ``output_attentions`` tuple of ``[1, head, query, key]`` tensors) or a TransformerLens cache.
AttentionSource: TypeAlias = Union[CaptureLike, np.ndarray, "torch.Tensor", Sequence[np.ndarray],
                                   Sequence["torch.Tensor"], HookCache]

#: What the widget, ``show`` and ``export_html`` show: any :data:`AttentionSource`, an
#: encoder-decoder capture, or an encoder-decoder model's output (a mapping with its attentions).
Showable: TypeAlias = Union[AttentionSource, "Seq2SeqCapture"]

#: One chat message, ``{"role": ..., "content": ...}``.
Message: TypeAlias = Mapping[str, Any]

#: What ``capture`` reads for a text model: a string, chat messages, or token ids (a list, a 1-D
#: array, a ``[1, n]`` tensor).
TextInput: TypeAlias = Union[str, Sequence[Message], Sequence[int], np.ndarray, "torch.Tensor"]

#: What ``capture`` reads for a vision model: a PIL image, a path, or an ``[H, W(, C)]`` array.
ImageInput: TypeAlias = Union["Image.Image", StrPath, np.ndarray]

#: ``progress=``: True (always a bar), False (never), None (a bar for calls estimated to be long).
Progress: TypeAlias = Union[bool, None]


class StopFlag(Protocol):
    """What a long loop polls to stop early: a ``threading.Event``, or anything with ``is_set()``."""

    def is_set(self) -> bool: ...
