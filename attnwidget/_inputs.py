"""Turn what a user passes to ``capture`` into token ids, with clear errors for everything else."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ._tokens import TokenText, token_text


@dataclass
class Encoded:
    ids: torch.Tensor  # int64 [1, n]
    attention_mask: torch.Tensor | None  # int64 [1, n] (zeros mark padding) or None
    text: str | None  # the text the user gave (or the rendered chat template)
    offsets: np.ndarray | None  # int64 [n, 2] into `text`, from the tokenizer


def _batch_error(count: int, what: str) -> ValueError:
    return ValueError(
        f"capture takes one sequence; got a batch of {count} {what}. "
        "Call capture once per sequence (attnwidget.compare_templates compares several prompts)."
    )


def encode(tokenizer, inputs, *, attention_mask=None, add_generation_prompt=True) -> Encoded:
    """Accept a string, a list of chat messages, or token ids (list, 1-D/[1, n] array or tensor)."""
    if isinstance(inputs, str):
        return _encode_text(tokenizer, inputs, add_special_tokens=True)
    if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(m, dict) for m in inputs):
        return _encode_messages(tokenizer, list(inputs), add_generation_prompt)
    if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(s, str) for s in inputs):
        raise _batch_error(len(inputs), "texts")
    if isinstance(inputs, (list, tuple, np.ndarray, torch.Tensor)):
        return _encode_ids(inputs, attention_mask)
    raise TypeError(
        "capture expects text (str), chat messages (a list of {'role', 'content'} dicts) or token ids "
        f"(a list of ints, a 1-D array or a [1, n] tensor); got {type(inputs).__name__}"
    )


def _encode_text(tokenizer, text: str, add_special_tokens: bool) -> Encoded:
    if not text.strip():
        raise ValueError(
            f"capture needs some text to attend over; got {text!r}. Pass a non-empty string."
        )
    fast = getattr(tokenizer, "is_fast", False)
    enc = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=fast)
    ids = torch.tensor([enc["input_ids"]], dtype=torch.long)
    offsets = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2) if fast else None
    if ids.shape[1] == 0:
        raise ValueError(f"the tokenizer produced no tokens for {text!r}")
    return Encoded(ids, None, text, offsets)


def _encode_messages(tokenizer, messages: list[dict], add_generation_prompt: bool) -> Encoded:
    for i, m in enumerate(messages):
        if "role" not in m or "content" not in m:
            raise ValueError(
                f"chat message {i} needs 'role' and 'content' keys; got keys {sorted(m)}. "
                "Example: [{'role': 'user', 'content': 'Hello'}]"
            )
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"{type(tokenizer).__name__} has no chat template, so chat messages cannot be rendered; "
            "pass the prompt as plain text instead"
        )
    text = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )
    return _encode_text(tokenizer, text, add_special_tokens=False)


def _encode_ids(inputs, attention_mask) -> Encoded:
    ids = torch.as_tensor(np.asarray(inputs) if not isinstance(inputs, torch.Tensor) else inputs)
    if ids.dim() == 2:
        if ids.shape[0] != 1:
            raise _batch_error(ids.shape[0], "sequences")
        ids = ids[0]
    if ids.dim() != 1:
        raise ValueError(f"token ids must be 1-D or [1, n]; got shape {tuple(ids.shape)}")
    if ids.numel() == 0:
        raise ValueError("capture needs at least one token id; got an empty sequence")
    if ids.dtype.is_floating_point or ids.dtype == torch.bool or ids.dtype.is_complex:
        raise TypeError(f"token ids must be integers; got dtype {ids.dtype}")
    mask = None
    if attention_mask is not None:
        mask = torch.as_tensor(np.asarray(attention_mask)).reshape(1, -1).long()
        if mask.shape[1] != ids.numel():
            raise ValueError(
                f"attention_mask has {mask.shape[1]} entries for {ids.numel()} tokens; they must match"
            )
    return Encoded(ids.long().reshape(1, -1), mask, None, None)


def describe(tokenizer, encoded: Encoded, all_ids: torch.Tensor) -> tuple[TokenText, str | None, np.ndarray]:
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
