"""Prompt parts: attention between the parts of a prompt, and the role turns of a chat.

``prompt_parts(capture, parts)`` maps character spans of ``capture.text`` to tokens and measures how
much attention each part pays to each other part; ``chat_parts(capture)`` finds the role turns of a
chat-templated capture. Definitions: docs/analysis.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from ._tables import (
    describe_layers,
    fmt,
    informative,
    plain,
    require_capture,
    select_heads,
    select_layers,
    show,
    table,
    visible_rows,
)
from ._engine import Engine
from .metrics import _row_entropy
from .errors import ArgumentError, ArgumentTypeError

if TYPE_CHECKING:
    from typing import TypeAlias

    from ._types import Layers
    from .capture import Capture

    #: The parts of a prompt: ``{name: (start, end) or substring}``, or ``[(name, start, end)]`` /
    #: ``[(name, substring)]`` (what :func:`chat_parts` returns).
    PartSpec: TypeAlias = Union[Mapping[str, Union[tuple[int, int], str]], Sequence[tuple[Any, ...]]]

__all__ = ["OTHER", "ROLE_NAMES", "PromptParts", "chat_parts", "prompt_parts"]

#: Name of the implicit part holding the tokens that belong to no named part.
OTHER = "(other)"
ROLE_NAMES = ("system", "developer", "user", "assistant", "model", "tool", "ipython")

# ---------------------------------------------------------------------------------------------------
# prompt parts


@dataclass(repr=False)
class PromptParts:
    """Attention between the parts of a prompt (see :func:`prompt_parts`). ``P`` parts, ``L`` layers.

    matrix
        ``[P, P]``: row ``a``, column ``b`` is the attention mass a query token of part ``a`` puts on
        the key tokens of part ``b``, averaged over ``a``'s tokens, the selected heads and layers.
        Rows sum to 1 over all parts ((other) included).
    matrix_by_layer
        ``[L, P, P]``, the same per selected layer.
    received
        ``[P]``: mean over the part's tokens of the attention each token receives, averaged over the
        query rows that can see it (causal: the rows at or after it).
    entropy, normalized_entropy
        ``[P]``: mean row entropy (nats) and normalised entropy of the part's query rows, mean over
        heads and layers; rows with a single visible key are left out (0 when a part has no other).
    last_token_share
        ``[P]``: the part's share of the last token's attention (what next-token prediction reads);
        ``last_token_share_by_layer`` ``[L, P]``.
    """

    names: list[str]
    spans: list[tuple[int, int] | None]
    token_index: list[np.ndarray]
    tokens: list[list[str]]
    matrix: np.ndarray
    matrix_by_layer: np.ndarray
    received: np.ndarray
    entropy: np.ndarray
    normalized_entropy: np.ndarray
    last_token_share: np.ndarray
    last_token_share_by_layer: np.ndarray
    layers: list[int]
    heads: list[int] | None
    num_layers: int
    last_token: str

    @property
    def counts(self) -> np.ndarray:
        """``[P]`` number of tokens in each part."""
        return np.array([len(i) for i in self.token_index], dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        return plain({
            "names": self.names, "spans": self.spans, "token_index": self.token_index,
            "tokens": self.tokens, "counts": self.counts, "matrix": self.matrix,
            "matrix_by_layer": self.matrix_by_layer, "received": self.received, "entropy": self.entropy,
            "normalized_entropy": self.normalized_entropy, "last_token_share": self.last_token_share,
            "last_token_share_by_layer": self.last_token_share_by_layer, "layers": self.layers,
            "heads": self.heads, "last_token": self.last_token,
        })

    def __repr__(self) -> str:
        return f"PromptParts({len(self.names)} parts: {', '.join(self.names)}; {len(self.layers)} layers)"

    def __str__(self) -> str:
        heads = "all heads" if self.heads is None else f"heads {', '.join(map(str, self.heads))}"
        lines = [
            f"Prompt parts: {int(self.counts.sum())} tokens, {describe_layers(self.layers, self.num_layers)}, {heads}",
            "",
            "Attention from the query part (row) to the key part (column), mean over query tokens:",
            table(["from \\ to"] + self.names, [[a] + [fmt(v) for v in row] for a, row in zip(self.names, self.matrix)]),
            "",
            table(
                ["part", "tokens", "received/token", "entropy", "norm.entropy", f"last {show(self.last_token)} share"],
                [[name, fmt(int(c)), fmt(r), fmt(e), fmt(ne), fmt(s)] for name, c, r, e, ne, s in zip(
                    self.names, self.counts, self.received, self.entropy, self.normalized_entropy,
                    self.last_token_share)],
            ),
            "",
        ]
        for name, toks in zip(self.names, self.tokens):
            shown = " ".join(show(t, 12) for t in toks[:8]) + (f" … (+{len(toks) - 8})" if len(toks) > 8 else "")
            lines.append(f"{name}: {shown}")
        return "\n".join(lines)


def _normalize_parts(parts: object, text: str) -> list[tuple[str, int, int]]:
    """``[(name, start, end)]`` from a dict name -> span | substring, or a list of (name, start, end)."""
    if isinstance(parts, dict):
        items = list(parts.items())
    elif isinstance(parts, (list, tuple)):
        items = []
        for item in parts:
            if not isinstance(item, (list, tuple)) or len(item) not in (2, 3):
                raise ArgumentError(
                    f"each part in a list must be (name, start, end) or (name, substring); got {item!r}."
                )
            items.append((item[0], item[1] if len(item) == 2 else tuple(item[1:])))
    else:
        raise ArgumentTypeError(
            "parts must be a dict {name: (start, end) or substring} or a list of (name, start, end); "
            f"got {type(parts).__name__}."
        )
    if not items:
        raise ArgumentError("parts is empty; give at least one {name: (start, end) or substring}.")
    out = []
    for name, where in items:
        if not isinstance(name, str) or not name or name == OTHER:
            raise ArgumentError(f"part names must be non-empty strings other than {OTHER!r}; got {name!r}.")
        if isinstance(where, str):
            start, end = _find_once(name, where, text)
        elif isinstance(where, (list, tuple)) and len(where) == 2 and all(
                isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in where):
            start, end = int(where[0]), int(where[1])
            if not 0 <= start < end <= len(text):
                raise ArgumentError(
                    f"part {name!r} has span ({start}, {end}); spans are [start, end) character offsets "
                    f"with 0 <= start < end <= {len(text)} (the length of capture.text)."
                )
        else:
            raise ArgumentTypeError(f"part {name!r}: expected a (start, end) pair of ints or a substring; got {where!r}.")
        out.append((name, start, end))
    names = [n for n, _, _ in out]
    if len(set(names)) != len(names):
        raise ArgumentError(f"part names must be unique; got {names}.")
    ordered = sorted(out, key=lambda p: p[1])
    for (a, s0, e0), (b, s1, e1) in zip(ordered, ordered[1:]):
        if s1 < e0:
            raise ArgumentError(
                f"parts {a!r} ({s0}, {e0}) and {b!r} ({s1}, {e1}) overlap; give disjoint character spans."
            )
    return out


def _find_once(name: str, sub: str, text: str) -> tuple[int, int]:
    if not sub:
        raise ArgumentError(f"part {name!r} is an empty string; give a substring of the text or a (start, end) span.")
    starts, pos = [], text.find(sub)
    while pos != -1:
        starts.append(pos)
        pos = text.find(sub, pos + 1)
    if not starts:
        raise ArgumentError(
            f"part {name!r}: {sub[:40]!r} does not occur in capture.text ({len(text)} characters); "
            "check the spelling (chat templates may add or strip whitespace) or give a (start, end) span."
        )
    if len(starts) > 1:
        spans = ", ".join(f"({s}, {s + len(sub)})" for s in starts[:5])
        raise ArgumentError(
            f"part {name!r}: {sub[:40]!r} occurs {len(starts)} times in capture.text, at {spans}; "
            "give the (start, end) span of the one you mean."
        )
    return starts[0], starts[0] + len(sub)


def _assign(offsets: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """``[n]`` part index per token (``-1``: none): the part its span overlaps most, ties to the earlier."""
    start, end = offsets[:, 0:1], offsets[:, 1:2]
    overlap = np.minimum(end, spans[None, :, 1]) - np.maximum(start, spans[None, :, 0])
    overlap = np.where(end > start, np.maximum(overlap, 0), 0)
    best = np.argmax(overlap, axis=1)
    return np.where(overlap.max(axis=1, initial=0) > 0, best, -1)


def prompt_parts(capture: Capture, parts: PartSpec, *, layers: Layers = None,
                 heads: int | Sequence[int] | None = None) -> PromptParts:
    """Attention between the parts of a prompt; returns a :class:`PromptParts`.

    ``parts``: a dict ``name -> (start, end)`` (character span of ``capture.text``) or ``name -> substring``
    (must occur exactly once), or a list of ``(name, start, end)``; spans must not overlap. A token
    belongs to the part its character span overlaps (the one it overlaps most if several); tokens with
    empty spans and tokens outside every part form the implicit part ``"(other)"``, listed last when it
    has tokens. ``layers``/``heads``: which to average (default all). :func:`chat_parts` builds parts
    from a chat. Reads each layer in blocks of query rows (per-row and per-key sums), never a whole
    layer: memory ``O(heads x block x n + n x parts)``.
    """
    capture = require_capture(capture, "prompt_parts")
    if capture.text is None:
        raise ArgumentError("prompt_parts needs capture.text; capture a string or chat messages, not bare ids.")
    named = _normalize_parts(parts, capture.text)
    layer_list = select_layers(layers, capture.num_layers)
    head_list = select_heads(heads, capture.num_heads)
    n = capture.num_tokens
    part_of = _assign(capture.offsets, np.array([[s, e] for _, s, e in named], dtype=np.int64))
    names = [name for name, _, _ in named]
    spans: list = [(s, e) for _, s, e in named]
    empty = [name for k, name in enumerate(names) if not np.any(part_of == k)]
    if empty:
        raise ArgumentError(
            f"part {empty[0]!r} covers no token (each token goes to the part it overlaps most); "
            "widen its span or merge it with a neighbour."
        )
    if np.any(part_of < 0):
        part_of = np.where(part_of < 0, len(names), part_of)
        names.append(OTHER)
        spans.append(None)
    num_parts = len(names)
    member = np.zeros((n, num_parts))
    member[np.arange(n), part_of] = 1.0
    counts = member.sum(0)
    causal = capture.is_causal
    seen_by = visible_rows(n, causal)
    keep = informative(n, causal)
    if not keep.any():
        keep[:] = True
    visible = np.arange(1, n + 1) if causal else np.full(n, n)
    log_visible = np.log(visible)

    by_layer = np.empty((len(layer_list), num_parts, num_parts))
    last = np.empty((len(layer_list), num_parts))
    received = np.zeros(n)
    ent = np.zeros(n)
    norm_ent = np.zeros(n)
    src = Engine(capture)
    mass = np.empty((n, num_parts))  # [query, part] of the current layer
    for i, layer in enumerate(layer_list):
        colsum = np.zeros(n)  # [key]: attention received, summed over query rows
        for r0, r1, p in src.blocks(layer):  # blocks of query rows, never the whole layer
            if head_list is not None:
                p = p[head_list]
            a = p.mean(0, dtype=np.float64)  # [rows, key], mean over the selected heads
            mass[r0:r1] = a @ member
            colsum += a.sum(0)
            row_ent = _row_entropy(p).astype(np.float64)  # [head, rows]
            ent[r0:r1] += row_ent.mean(0)
            logv = log_visible[r0:r1]
            norm_ent[r0:r1] += np.divide(row_ent, logv, out=np.zeros_like(row_ent), where=logv > 0).mean(0)
        by_layer[i] = (member.T @ mass) / counts[:, None]
        last[i] = mass[-1]
        received += colsum / seen_by
    num = len(layer_list)
    rows_in = member * keep[:, None]
    row_counts = rows_in.sum(0)

    def per_part_rows(values: np.ndarray) -> np.ndarray:
        return np.divide(values @ rows_in, row_counts, out=np.zeros(num_parts), where=row_counts > 0)

    return PromptParts(
        names=names, spans=spans, token_index=[np.flatnonzero(part_of == k) for k in range(num_parts)],
        tokens=[[capture.tokens[j] for j in np.flatnonzero(part_of == k)] for k in range(num_parts)],
        matrix=by_layer.mean(0), matrix_by_layer=by_layer, received=((received / num) @ member) / counts,
        entropy=per_part_rows(ent / num), normalized_entropy=np.clip(per_part_rows(norm_ent / num), 0.0, 1.0),
        last_token_share=last.mean(0), last_token_share_by_layer=last, layers=layer_list, heads=head_list,
        num_layers=capture.num_layers, last_token=capture.tokens[-1],
    )


# ---------------------------------------------------------------------------------------------------
# chat parts

_ROLE_RE = re.compile(r"\s*(" + "|".join(ROLE_NAMES) + r")\b\s*", re.IGNORECASE)


def _turns(capture: Capture) -> list[tuple[str, int, int, int]]:
    """``[(role, turn_start, content_start, content_end)]`` found after special tokens."""
    text = capture.text or ""
    special = np.flatnonzero(capture.special & (capture.offsets[:, 1] > capture.offsets[:, 0]))
    marks = capture.offsets[special]
    turns = []
    for k, (s, e) in enumerate(marks.tolist()):  # one iteration per special token, not per token
        found = _ROLE_RE.match(text, e)
        if not found:
            continue
        after = marks[k + 1:, 0]
        content_end = int(after[0]) if after.size else len(text)
        content_start = found.end()
        end = content_end
        while end > content_start and text[end - 1].isspace():
            end -= 1
        turns.append((found.group(1).lower(), int(s), content_start, end))
    return turns


def chat_parts(capture: Capture, *, markers: bool = False) -> list[tuple[str, int, int]]:
    """Role parts of a chat-templated capture as ``[(name, start, end)]`` for :func:`prompt_parts`.

    A turn starts at a special token followed by a role name (system, user, assistant, ...; the
    ChatML, Llama 3 and Gemma templates mark turns this way). By default each part is the message
    content (from after the role name to the next special token, trailing whitespace dropped), so the
    template's markup falls in ``"(other)"``; ``markers=True`` spans whole turns, markup included.
    Repeated roles are numbered (``user``, ``user 2``); turns with no content (the generation prompt)
    are skipped unless ``markers=True``.
    """
    capture = require_capture(capture, "chat_parts")
    turns = _turns(capture)
    if not turns:
        raise ArgumentError(
            "chat_parts found no chat turns: it looks for a special token followed by a role name "
            f"({', '.join(ROLE_NAMES)}). Capture chat messages ([{{'role': 'user', 'content': ...}}]) "
            "rendered with the model's chat template, or give the parts as character spans."
        )
    out: list[tuple[str, int, int]] = []
    seen: dict[str, int] = {}
    for k, (role, turn_start, start, end) in enumerate(turns):
        if markers:
            start, end = turn_start, turns[k + 1][1] if k + 1 < len(turns) else len(capture.text or "")
        if end <= start:
            continue
        seen[role] = seen.get(role, 0) + 1
        out.append((role if seen[role] == 1 else f"{role} {seen[role]}", start, end))
    if not out:
        raise ArgumentError("chat_parts found turn markers but no message content; use markers=True.")
    return out
