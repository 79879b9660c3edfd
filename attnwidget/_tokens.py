"""Readable token strings and character offsets for any tokenizer.

Byte-level BPE vocabularies (GPT-2, Llama 3, SmolLM2...) store tokens as printable stand-ins for
bytes: raw strings look like ``çĮ«`` and decoding one piece of a multi-byte character alone gives
U+FFFD. Here each token is mapped back to its bytes, the bytes of the whole sequence are decoded
once, and every token reads as the characters its bytes belong to. A token holding only part of a
character's bytes reads as that whole character and is flagged ``partial`` (so ``猫`` split over
three byte pieces reads ``猫``, ``猫``, ``猫``, all partial).
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class TokenText:
    """Display strings and character spans for a sequence of token ids."""

    tokens: list[str]
    offsets: np.ndarray  # int64 [n, 2], character spans into `text`
    partial: np.ndarray  # bool [n], token holds only part of a character's bytes
    special: np.ndarray  # bool [n]
    text: str  # the sequence decoded as one string (special tokens included literally)


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's ``bytes_to_unicode`` table (printable stand-in character -> byte)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars)}


_FACTS: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def _facts(tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """Facts about a tokenizer that do not change between captures, computed once per tokenizer
    (reading them costs 0.1-0.4 s, as much as a short forward pass). A tokenizer that cannot be
    weakly referenced is asked each time."""
    try:
        facts = _FACTS.get(tokenizer)
    except TypeError:
        return {"byte_level": _is_byte_level(tokenizer), "special": _special_ids(tokenizer)}
    if facts is None:
        facts = {"byte_level": _is_byte_level(tokenizer), "special": _special_ids(tokenizer),
                 "size": len(getattr(tokenizer, "added_tokens_decoder", {}) or {})}
        _FACTS[tokenizer] = facts
    elif facts["size"] != len(getattr(tokenizer, "added_tokens_decoder", {}) or {}):  # tokens were added
        del _FACTS[tokenizer]
        return _facts(tokenizer)
    return facts


def _is_byte_level(tokenizer: PreTrainedTokenizerBase) -> bool:
    backend: Any = getattr(tokenizer, "backend_tokenizer", None)  # a tokenizers.Tokenizer (fast tokenizers)
    decoder = getattr(backend, "decoder", None)
    if decoder is None:
        return False
    try:  # the decoder's own JSON: small, unlike the whole tokenizer's (its vocabulary)
        spec = json.loads(decoder.__getstate__())
    except (AttributeError, TypeError, ValueError):
        spec = json.loads(backend.to_str()).get("decoder") or {}
    kinds = [spec.get("type")] + [d.get("type") for d in spec.get("decoders", []) or []]
    return "ByteLevel" in kinds


def _special_ids(tokenizer: PreTrainedTokenizerBase) -> frozenset[int]:
    ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    for token_id, added in (getattr(tokenizer, "added_tokens_decoder", {}) or {}).items():
        if getattr(added, "special", False):
            ids.add(int(token_id))
    return frozenset(ids)


def is_byte_level(tokenizer: PreTrainedTokenizerBase) -> bool:
    """True when the tokenizer's decoder is (or contains) the byte-level decoder (cached per tokenizer)."""
    return _facts(tokenizer)["byte_level"]


def special_ids(tokenizer: PreTrainedTokenizerBase) -> frozenset[int]:
    """Ids of the tokenizer's special tokens (cached per tokenizer)."""
    return _facts(tokenizer)["special"]


def token_text(tokenizer: PreTrainedTokenizerBase, ids: Iterable[int]) -> TokenText:
    """Readable strings, offsets and flags for ``ids`` (a 1-D sequence of ints)."""
    ids = [int(i) for i in ids]
    specials = special_ids(tokenizer)
    special = np.array([i in specials for i in ids], dtype=bool)
    raw = tokenizer.convert_ids_to_tokens(ids)
    if is_byte_level(tokenizer):
        return _byte_level_text(raw, special)
    pieces = []
    for k, (r, s) in enumerate(zip(raw, special)):
        piece = _plain_piece(r, s)
        glued = s or k == 0 or special[k - 1] or r.startswith("##") or piece.startswith(" ")
        pieces.append(piece if glued or "\u2581" in "".join(raw) else " " + piece)
    return _from_pieces(pieces, np.zeros(len(ids), dtype=bool), special)


def _plain_piece(raw: str, special: bool) -> str:
    if special:
        return raw
    if raw.startswith("##"):  # WordPiece continuation: glued to the previous piece
        return raw[2:]
    return raw.replace("\u2581", " ")  # SentencePiece marks a leading space with U+2581


def _from_pieces(pieces: list[str], partial: np.ndarray, special: np.ndarray) -> TokenText:
    lengths = np.array([len(p) for p in pieces], dtype=np.int64)
    ends = np.cumsum(lengths)
    offsets = np.stack([ends - lengths, ends], axis=1) if len(pieces) else np.zeros((0, 2), np.int64)
    return TokenText(list(pieces), offsets, partial, special, "".join(pieces))


def _byte_level_text(raw: list[str], special: np.ndarray) -> TokenText:
    table = _byte_decoder()
    chunks = []
    for piece, is_special in zip(raw, special):
        if is_special or any(ch not in table for ch in piece):
            chunks.append(piece.encode("utf-8"))
        else:
            chunks.append(bytes(table[ch] for ch in piece))
    blob = b"".join(chunks)
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError:
        # Not valid UTF-8 as a whole (e.g. random token ids): show each token's bytes on their own,
        # with undecodable bytes as \xNN escapes so nothing is hidden.
        pieces = [c.decode("utf-8", errors="backslashreplace") for c in chunks]
        partial = np.array([_invalid(c) for c in chunks], dtype=bool)
        return _from_pieces(pieces, partial, special)
    lengths = np.array([len(c) for c in chunks], dtype=np.int64)
    byte_end = np.cumsum(lengths)
    byte_start = byte_end - lengths
    arr = np.frombuffer(blob, dtype=np.uint8)
    is_lead = (arr & 0xC0) != 0x80
    char_of_byte = np.cumsum(is_lead) - 1  # index of the character each byte belongs to
    n_chars = len(text)
    # A token spans the characters of its first and last byte (empty tokens span nothing).
    nonempty = lengths > 0
    first = np.where(nonempty, char_of_byte[np.minimum(byte_start, len(arr) - 1)], 0)
    last = np.where(nonempty, char_of_byte[np.maximum(byte_end - 1, 0)], -1)
    c0 = np.where(nonempty, first, np.searchsorted(np.flatnonzero(is_lead), byte_start))
    c1 = np.where(nonempty, last + 1, c0)
    c0 = np.minimum(c0, n_chars)
    c1 = np.minimum(c1, n_chars)
    starts_mid = nonempty & ~is_lead[np.minimum(byte_start, len(arr) - 1)]
    next_byte = np.minimum(byte_end, len(arr) - 1)
    ends_mid = nonempty & (byte_end < len(arr)) & ~is_lead[next_byte]
    partial = starts_mid | ends_mid
    tokens = [text[a:b] for a, b in zip(c0.tolist(), c1.tolist())]
    return TokenText(tokens, np.stack([c0, c1], axis=1).astype(np.int64), partial, special, text)


def _invalid(chunk: bytes) -> bool:
    try:
        chunk.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False
