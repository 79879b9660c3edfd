"""Turn what a user passes to ``capture`` into token ids, with clear errors for everything else."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard

import numpy as np
import torch

from ._tokens import TokenText, token_text
from .errors import ArgumentError, ArgumentTypeError

if TYPE_CHECKING:
    import numpy.typing as npt
    from transformers import PreTrainedTokenizerBase

    from ._types import Message, TextInput


@dataclass
class Encoded:
    ids: torch.Tensor  # int64 [1, n]
    attention_mask: torch.Tensor | None  # int64 [1, n] (zeros mark padding) or None
    text: str | None  # the text the user gave (or the rendered chat template)
    offsets: np.ndarray | None  # int64 [n, 2] into `text`, from the tokenizer


def _batch_error(count: int, what: str) -> ArgumentError:
    return ArgumentError(
        f"capture takes one sequence; got a batch of {count} {what}. "
        "Call capture once per sequence (attnwidget.compare_templates compares several prompts)."
    )


def encode(tokenizer: PreTrainedTokenizerBase, inputs: TextInput | object, *,
           attention_mask: torch.Tensor | npt.ArrayLike | None = None, add_generation_prompt: bool = True) -> Encoded:
    """Accept a string, a list of chat messages, or token ids (list, 1-D/[1, n] array or tensor)."""
    if attention_mask is not None and (isinstance(inputs, str) or _is_messages(inputs)):
        raise ArgumentError(
            "attention_mask applies to token ids; with text or chat messages the tokenizer makes the mask "
            "(every token attended). Pass token ids with the mask, or leave attention_mask out."
        )
    if isinstance(inputs, str):
        return _encode_text(tokenizer, inputs, add_special_tokens=True)
    if _is_messages(inputs):
        return _encode_messages(tokenizer, list(inputs), add_generation_prompt)
    if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(s, str) for s in inputs):
        raise _batch_error(len(inputs), "texts")
    if isinstance(inputs, (list, tuple, np.ndarray, torch.Tensor)):
        return _encode_ids(inputs, attention_mask)
    raise ArgumentTypeError(
        "capture expects text (str), chat messages (a list of {'role', 'content'} dicts) or token ids "
        f"(a list of ints, a 1-D array or a [1, n] tensor); got {type(inputs).__name__}"
    )


def _is_messages(inputs: object) -> TypeGuard[Sequence[Message]]:
    return isinstance(inputs, (list, tuple)) and bool(inputs) and all(isinstance(m, dict) for m in inputs)


def _encode_text(tokenizer: PreTrainedTokenizerBase, text: str, add_special_tokens: bool) -> Encoded:
    if not text.strip():
        raise ArgumentError(
            f"capture needs some text to attend over; got {text!r}. Pass a non-empty string."
        )
    fast = getattr(tokenizer, "is_fast", False)
    enc = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=fast)
    ids = torch.tensor([enc["input_ids"]], dtype=torch.long)
    offsets = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2) if fast else None
    if ids.shape[1] == 0:
        raise ArgumentError(f"the tokenizer produced no tokens for {text!r}")
    return Encoded(ids, None, text, offsets)


def _encode_messages(tokenizer: PreTrainedTokenizerBase, messages: list[Any], add_generation_prompt: bool) -> Encoded:
    for i, m in enumerate(messages):
        if "role" not in m or "content" not in m:
            raise ArgumentError(
                f"chat message {i} needs 'role' and 'content' keys; got keys {sorted(map(str, m))}. "
                "Example: [{'role': 'user', 'content': 'Hello'}]"
            )
        if not isinstance(m["role"], str) or not m["role"]:
            raise ArgumentTypeError(
                f"chat message {i} has role {m['role']!r} ({type(m['role']).__name__}); a role is a "
                "non-empty string such as 'system', 'user' or 'assistant'."
            )
        if not isinstance(m["content"], str) and not _content_parts(m["content"]):
            raise ArgumentTypeError(
                f"chat message {i} has content of type {type(m['content']).__name__} ({m['content']!r:.60}); "
                "content is a string (or a list of {'type': 'text', 'text': ...} parts)."
            )
    if not getattr(tokenizer, "chat_template", None):
        raise ArgumentError(
            f"{type(tokenizer).__name__} has no chat template, so chat messages cannot be rendered; "
            "pass the prompt as plain text instead"
        )
    from jinja2 import TemplateError

    try:
        text = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )
    except TemplateError as error:  # the template's own checks (e.g. "roles must alternate")
        raise ArgumentError(
            f"the chat template of {type(tokenizer).__name__} refused these {len(messages)} messages: "
            f"{error}. Adjust the messages to what the template expects, or pass plain text."
        ) from None
    return _encode_text(tokenizer, text, add_special_tokens=False)


def _content_parts(content: object) -> bool:
    return isinstance(content, list) and all(
        isinstance(part, dict) and isinstance(part.get("type"), str) for part in content)


def _encode_ids(inputs: object, attention_mask: object) -> Encoded:
    ids = inputs.detach().cpu() if isinstance(inputs, torch.Tensor) else _numeric(inputs, "token ids")
    if ids.dim() == 2:
        if ids.shape[0] != 1:
            raise _batch_error(ids.shape[0], "sequences")
        ids = ids[0]
    if ids.dim() != 1:
        raise ArgumentError(f"token ids must be 1-D or [1, n]; got shape {tuple(ids.shape)}")
    if ids.numel() == 0:
        raise ArgumentError("capture needs at least one token id; got an empty sequence")
    if ids.dtype.is_floating_point or ids.dtype == torch.bool or ids.dtype.is_complex:
        raise ArgumentTypeError(f"token ids must be integers; got dtype {ids.dtype}")
    mask = None if attention_mask is None else _mask(attention_mask, ids.numel())
    return Encoded(ids.long().reshape(1, -1), mask, None, None)


def describe(tokenizer: PreTrainedTokenizerBase, encoded: Encoded,
             all_ids: torch.Tensor) -> tuple[TokenText, str | None, np.ndarray]:
    """Readable tokens for ``all_ids`` (prompt + generated) with offsets into the capture's text."""
    readable = token_text(tokenizer, all_ids.tolist())
    if encoded.text is None or encoded.offsets is None:
        return readable, readable.text, readable.offsets
    n_prompt = encoded.ids.shape[1]
    offsets = readable.offsets.copy()
    offsets[:n_prompt] = encoded.offsets
    text = encoded.text
    if len(all_ids) > n_prompt:  # generated tokens: continue the text after the prompt
        tail = token_text(tokenizer, all_ids[n_prompt:].tolist())
        offsets[n_prompt:] = tail.offsets + len(text)
        text = text + tail.text
    return readable, text, offsets


def _mask(attention_mask: object, n: int) -> torch.Tensor:
    """A padding mask of 0s and 1s (ints, bools or whole floats) with one entry per token -> int64 [1, n]."""
    raw = attention_mask.detach().cpu() if isinstance(attention_mask, torch.Tensor) else _numeric(
        attention_mask, "attention_mask")
    whole = (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
    if raw.dtype not in whole and not raw.dtype.is_floating_point:
        raise ArgumentTypeError(f"attention_mask must hold 0s and 1s (ints, bools or floats); got dtype {raw.dtype}")
    if (raw.dim() == 2 and raw.shape[0] != 1) or raw.dim() > 2:
        raise ArgumentError(f"attention_mask must be 1-D or [1, n] like the ids; got shape {tuple(raw.shape)}")
    flat = raw.reshape(-1)
    if flat.numel() != n:
        raise ArgumentError(f"attention_mask has {flat.numel()} entries for {n} tokens; they must match")
    values = flat.double()
    odd = ~((values == 0) | (values == 1))
    if odd.any():
        raise ArgumentError(
            f"attention_mask must hold only 0 (padding) and 1 (token); found {values[odd][0].item():g} at "
            f"position {int(odd.nonzero()[0])}. attnwidget does not take fractional or additive masks."
        )
    if not values.any():
        raise ArgumentError("attention_mask is all 0: no token is attended. Mark the real tokens with 1.")
    return flat.long().reshape(1, -1)


def _numeric(values: object, what: str) -> torch.Tensor:
    """A list or array of numbers as a tensor; anything else (strings, None, ragged lists) refused."""
    try:
        arr = np.asarray(values)
    except ValueError:  # ragged nested lists
        arr = np.asarray(values, dtype=object)
    if arr.dtype.kind not in "biuf":
        raise ArgumentTypeError(
            f"{what} must be numbers (a list of ints, an int array or tensor); got {type(values).__name__} "
            f"holding {arr.dtype.name if arr.dtype.kind != 'O' else 'mixed or nested objects'}"
        )
    return torch.as_tensor(arr)
