"""Compare how a model attends over texts in several languages (docs/analysis.md).

Per language: readable tokens, characters per token, per-layer entropy / normalised entropy /
sparsity (mean over heads) and the most-attended tokens, with the byte pieces of one character
merged into one entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ._tables import (captures_of, check_inputs, fmt, html_block, html_table, html_text, plain, select_layers, show,
                      table, visible_rows)
from ._progress import make_bar
from ._summary import summary_for
from .compare import ShowsComparison
from .errors import ArgumentError, ArgumentTypeError

if TYPE_CHECKING:
    import pandas as pd
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from ._types import Layers, Progress
    from .capture import Capture

__all__ = ["LanguageComparison", "LanguageStats", "compare_languages", "merge_pieces"]


def merge_pieces(capture: Capture) -> tuple[np.ndarray, list[str]]:
    """Group the byte pieces of one character: ``(first [U] token index of each unit, texts [U])``.

    Consecutive tokens flagged ``partial`` whose character spans overlap (a character split over byte
    pieces has the same span in each piece) form one unit, read as the characters they span; every
    other token is a unit of its own, read as ``capture.tokens``.
    """
    n = capture.num_tokens
    start, end = capture.offsets[:, 0], capture.offsets[:, 1]
    partial = np.asarray(capture.partial, dtype=bool)
    joined = partial[1:] & partial[:-1] & (start[1:] < end[:-1]) & (end[1:] > start[:-1])
    first = np.flatnonzero(np.r_[True, ~joined]) if n else np.zeros(0, dtype=np.int64)
    sizes = np.diff(np.r_[first, n])
    u0, u1 = np.minimum.reduceat(start, first), np.maximum.reduceat(end, first)
    text = capture.text
    texts = [capture.tokens[f] if size == 1 or text is None else text[a:b]
             for f, size, a, b in zip(first.tolist(), sizes.tolist(), u0.tolist(), u1.tolist())]
    return first, texts


@dataclass(repr=False)
class LanguageStats:
    """One language of :func:`compare_languages`. ``L`` layers, ``U`` units (tokens, with the byte
    pieces of one character merged).

    received
        ``[L, U]``: attention each unit receives, mean over heads and over the query rows that can see
        it (causal: rows at or after it); a unit of several pieces receives the sum of its pieces.
    top / top_by_layer
        ``[(unit text, token index, score)]``, best first: overall (``received`` averaged over layers)
        and per layer; excluded units (``excluded`` ``[U]``) are never listed.
    """

    name: str
    text: str
    tokens: list[str]
    units: list[str]
    unit_start: np.ndarray
    excluded: np.ndarray
    num_tokens: int
    num_chars: int
    entropy: np.ndarray
    normalized_entropy: np.ndarray
    sparsity: np.ndarray
    received: np.ndarray
    top: list[tuple[str, int, float]]
    top_by_layer: list[list[tuple[str, int, float]]]

    @property
    def chars_per_token(self) -> float:
        """Characters of text (outside special tokens) per non-special token."""
        return self.num_chars / max(1, self.num_tokens)

    def to_dict(self) -> dict:
        return plain({
            "name": self.name, "text": self.text, "tokens": self.tokens, "units": self.units,
            "unit_start": self.unit_start, "excluded": self.excluded, "num_tokens": self.num_tokens,
            "num_chars": self.num_chars, "chars_per_token": self.chars_per_token, "entropy": self.entropy,
            "normalized_entropy": self.normalized_entropy, "sparsity": self.sparsity,
            "received": self.received, "top": [list(t) for t in self.top],
            "top_by_layer": [[list(t) for t in layer] for layer in self.top_by_layer],
        })

    def __repr__(self) -> str:
        return f"LanguageStats({self.name!r}: {self.num_tokens} tokens, {len(self.entropy)} layers)"


@dataclass(repr=False)
class LanguageComparison(ShowsComparison):
    """Languages side by side (see :func:`compare_languages`); ``comparison["zh"]`` is one :class:`LanguageStats`.

    ``captures``: ``{language: Capture}``, the captures compared (kept so the result can draw them; set it
    to None to free them). ``comparison.show()`` returns a new :class:`~attnwidget.ComparisonWidget`,
    linked panels one per language (the same layer and head, one colour scale); as the last expression of
    a notebook cell the result displays that view (``comparison.widget``), with the text summary as its
    plain-text form. ``print(comparison)`` prints the summary.
    """

    languages: dict[str, LanguageStats]
    top_k: int
    exclude_first: bool
    exclude_special: bool
    captures: dict[str, Capture] | None = field(default=None, compare=False)

    def __getitem__(self, name: str) -> LanguageStats:
        if name not in self.languages:
            raise KeyError(f"no language {name!r}; languages: {', '.join(self.languages)}")
        return self.languages[name]

    def to_dict(self) -> dict[str, Any]:
        return {"languages": {k: v.to_dict() for k, v in self.languages.items()}, "top_k": self.top_k,
                "exclude_first": self.exclude_first, "exclude_special": self.exclude_special}

    def __repr__(self) -> str:
        return f"LanguageComparison({', '.join(self.languages)}; top_k={self.top_k})"

    def _tables(self) -> tuple[tuple[list[str], list[list[str]]], str, tuple[list[str], list[list[str]]]]:
        """What ``__str__`` and ``_repr_html_`` show: (summary header, rows), the top-tokens title,
        (per-layer header, rows)."""
        langs = list(self.languages.values())
        names = [s.name for s in langs]
        summary = (["statistic"] + names, [
            ["tokens (non-special)"] + [fmt(s.num_tokens) for s in langs],
            ["characters"] + [fmt(s.num_chars) for s in langs],
            ["characters per token"] + [fmt(s.chars_per_token) for s in langs],
            ["entropy (nats)"] + [fmt(s.entropy.mean()) for s in langs],
            ["normalized entropy"] + [fmt(s.normalized_entropy.mean()) for s in langs],
            ["sparsity (<0.01)"] + [fmt(s.sparsity.mean()) for s in langs],
        ])
        skipped = [w for w, on in (("the first token", self.exclude_first), ("special tokens", self.exclude_special)) if on]
        top_title = (f"Most-attended tokens (mean over layers; received per visible query row"
                     f"{'; excluding ' + ' and '.join(skipped) if skipped else ''})")
        depth = max(len(s.entropy) for s in langs)
        rows = [[str(layer)] + [fmt(s.entropy[layer]) if layer < len(s.entropy) else "-" for s in langs]
                + [fmt(s.sparsity[layer]) if layer < len(s.sparsity) else "-" for s in langs] for layer in range(depth)]
        per_layer = (["layer"] + [f"entropy {n}" for n in names] + [f"sparsity {n}" for n in names], rows)
        return summary, top_title, per_layer

    def to_pandas(self) -> pd.DataFrame:
        """One row per language (index ``language``, in order): ``num_tokens`` (non-special),
        ``num_chars``, ``chars_per_token`` and the means over layers of ``entropy``,
        ``normalized_entropy`` and ``sparsity``. The per-layer arrays and top tokens stay on
        ``comparison[language]``. Needs pandas (imported here only)."""
        import pandas as pd

        langs = list(self.languages.values())
        return pd.DataFrame({
            "num_tokens": [int(s.num_tokens) for s in langs], "num_chars": [int(s.num_chars) for s in langs],
            "chars_per_token": [float(s.chars_per_token) for s in langs],
            "entropy": [float(np.mean(s.entropy)) for s in langs],
            "normalized_entropy": [float(np.mean(s.normalized_entropy)) for s in langs],
            "sparsity": [float(np.mean(s.sparsity)) for s in langs],
        }, index=pd.Index([s.name for s in langs], name="language"))

    def _repr_html_(self) -> str:
        """The summary as HTML tables (a notebook shows it where the comparison view cannot be shown)."""
        (head, rows), top_title, (layer_head, layer_rows) = self._tables()
        top = [[s.name, str(rank + 1), show(t, 40), str(i), fmt(v)]
               for s in self.languages.values() for rank, (t, i, v) in enumerate(s.top)]
        return html_block(
            html_text("Language comparison (means over layers and heads)", "strong"),
            html_table(head, rows),
            html_table(["language", "rank", "token", "index", "received"], top, caption=top_title),
            html_table(layer_head, layer_rows, caption="Per layer (mean over heads)"),
        )

    def __str__(self) -> str:
        (head, rows), top_title, (layer_head, layer_rows) = self._tables()
        lines = ["Language comparison (means over layers and heads)", table(head, rows), "", top_title + ":"]
        for s in self.languages.values():
            lines.append(f"{s.name}: " + (", ".join(f"{show(t, 12)} {fmt(v)}" for t, _, v in s.top) or "-"))
        lines += ["", "Per layer (mean over heads):", table(layer_head, layer_rows)]
        return "\n".join(lines)


def _top(scores: np.ndarray, eligible: np.ndarray, k: int, units: Sequence[str],
         starts: np.ndarray) -> list[tuple[str, int, float]]:
    idx = np.flatnonzero(eligible)
    order = idx[np.argsort(-scores[idx], kind="stable")[:k]]
    return [(units[u], int(starts[u]), float(scores[u])) for u in order]


def _language(name: str, capture: Capture, top_k: int, exclude_first: bool, exclude_special: bool,
              layers: Layers) -> LanguageStats:
    n = capture.num_tokens
    starts, units = merge_pieces(capture)
    special = np.asarray(capture.special, dtype=bool)
    excluded = np.zeros(len(units), dtype=bool)
    if exclude_special:
        excluded |= np.logical_or.reduceat(special, starts)
    if exclude_first:
        excluded[0] = True
    seen_by = visible_rows(n, capture.is_causal)
    layer_list = select_layers(layers, capture.num_layers)
    metrics: dict[str, list[float]] = {m: [] for m in ("entropy", "normalized_entropy", "sparsity")}
    received = np.empty((len(layer_list), len(units)))
    summary = summary_for(capture)  # the fused pass, shared with the widget and compute_metrics
    for i, layer in enumerate(layer_list):
        result = summary.layer(layer)
        values = result.metrics
        for m in metrics:
            metrics[m].append(float(values[m].mean()))
        per_token = result.colsum_mean / seen_by  # [key]: mean over heads and seeing rows
        received[i] = np.add.reduceat(per_token, starts)
    eligible = ~excluded
    overall = received.mean(0)
    # characters of text outside special tokens (a difference array marks the special spans)
    text = capture.text or "".join(capture.tokens)
    marks = np.zeros(len(text) + 1, dtype=np.int64)
    spans = capture.offsets[special]
    np.add.at(marks, np.clip(spans[:, 0], 0, len(text)), 1)
    np.add.at(marks, np.clip(spans[:, 1], 0, len(text)), -1)
    num_chars = int(np.count_nonzero(np.cumsum(marks)[:-1] == 0)) if capture.text is not None else len(text)
    return LanguageStats(
        name=name, text=text, tokens=list(capture.tokens), units=units, unit_start=starts, excluded=excluded,
        num_tokens=int(np.count_nonzero(~special)), num_chars=num_chars,
        entropy=np.array(metrics["entropy"]), normalized_entropy=np.array(metrics["normalized_entropy"]),
        sparsity=np.array(metrics["sparsity"]), received=received,
        top=_top(overall, eligible, top_k, units, starts),
        top_by_layer=[_top(r, eligible, top_k, units, starts) for r in received],
    )


def compare_languages(model: PreTrainedModel | None = None, tokenizer: PreTrainedTokenizerBase | None = None,
                      texts: Mapping[str, str] | None = None, *, captures: Mapping[str, Capture] | None = None,
                      top_k: int = 5, exclude_first: bool = True, exclude_special: bool = True, layers: Layers = None,
                      progress: Progress = None) -> LanguageComparison:
    """Capture a text per language and compare their attention; returns a :class:`LanguageComparison`.

    ``texts``: ``{language: text}`` captured with ``attnwidget.capture(model, tokenizer, text)``, or
    ``captures={language: Capture}``. ``top_k``: how many most-attended tokens to list. A token's
    received attention is averaged over the query rows that can see it (with causal masking, key ``j``
    is seen by the ``n - j`` rows at or after it, so early tokens are not favoured for being visible
    to more rows, but the last tokens rest on few rows). ``exclude_first`` (default True) leaves the
    first token out of the rankings (most heads park attention there: a sink, not content);
    ``exclude_special`` (default True) leaves out special tokens. The byte pieces of one character are
    merged into one entry (see :func:`merge_pieces`). ``progress``: a ``tqdm.auto`` bar over the
    languages (None: when estimated over about 2 s).

    The result keeps the captures: ``result.show()`` (or the result itself, last in a notebook cell)
    draws them side by side, linked (:class:`~attnwidget.ComparisonWidget`).
    """
    check_inputs("compare_languages", "texts", texts, captures, model, tokenizer)
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ArgumentError(f"top_k must be a positive int (tokens to list); got {top_k!r}.")
    if texts is not None:
        bad = [k for k, v in texts.items() if not isinstance(v, str)]
        if bad:
            raise ArgumentTypeError(f"texts must map a language to a string; {bad[0]!r} maps to {type(texts[bad[0]]).__name__}.")
    from .templates import _seconds

    items = texts if texts is not None else captures
    assert items is not None  # check_inputs: one of the two
    bar = make_bar(2 * len(items), "attnwidget languages", progress, _seconds(model, texts, captures), "step")
    try:
        made = captures_of("compare_languages", texts, captures, model, tokenizer, bar)
        stats = {}
        for k, c in made.items():
            stats[str(k)] = _language(str(k), c, int(top_k), exclude_first, exclude_special, layers)
            bar.update(1)
    finally:
        bar.close()
    return LanguageComparison(stats, int(top_k), bool(exclude_first), bool(exclude_special),
                              captures={str(k): c for k, c in made.items()})
