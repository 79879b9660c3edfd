"""Prompt templates side by side: ``compare_templates`` captures several prompts (or takes Captures)
and sets their statistics next to each other. Definitions: docs/analysis.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ._tables import captures_of, check_inputs, fmt, html_block, html_table, html_text, plain, select_layers, table
from ._progress import make_bar, text_seconds
from ._summary import summary_for
from .compare import ShowsComparison
from .parts import _assign, chat_parts

if TYPE_CHECKING:
    import pandas as pd
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from ._progress import ProgressBar
    from ._types import Layers, Message, Progress
    from .capture import Capture

__all__ = ["TEMPLATE_STATS", "TemplateComparison", "compare_templates"]


TEMPLATE_STATS = (
    "num_tokens", "entropy", "normalized_entropy", "sparsity", "max_attention", "coverage", "sink_score",
    "last_to_content", "last_to_special", "last_to_markup",
)
_STAT_LABELS = {
    "num_tokens": "tokens", "entropy": "entropy (nats)", "normalized_entropy": "normalized entropy",
    "sparsity": "sparsity (<0.01)", "max_attention": "max attention (row max)",
    "coverage": "coverage (>0.01)", "sink_score": "sink score (first token)",
    "last_to_content": "last token -> content", "last_to_special": "last token -> special",
    "last_to_markup": "last token -> other markup",
}
_METRIC_OF = {"entropy": "entropy", "normalized_entropy": "normalized_entropy", "sparsity": "sparsity",
              "max_attention": "max_weight", "coverage": "coverage", "sink_score": "sink_score"}


@dataclass(repr=False)
class TemplateComparison(ShowsComparison):
    """Prompt templates side by side (see :func:`compare_templates`).

    ``stats[name]``: ``[template]`` array, for each name in ``TEMPLATE_STATS`` (means over the selected
    layers and all heads); ``by_layer[name]``: one ``[layer]`` array per template (not ``num_tokens``).
    ``comparison["plain"]`` gives one template's statistics as a dict.

    ``captures``: ``{name: Capture}``, the captures compared (kept so the result can draw them; set it to
    None to free them). ``comparison.show()`` returns a new :class:`~attnwidget.ComparisonWidget`, linked
    panels one per template (the same layer and head, one colour scale, the difference of two templates
    with as many tokens); as the last expression of a notebook cell the result displays that view
    (``comparison.widget``), with this table as its plain-text form. ``print(comparison)`` prints the table.
    """

    names: list[str]
    tokens: list[list[str]]
    stats: dict[str, np.ndarray]
    by_layer: dict[str, list[np.ndarray]]
    layers: list[list[int]]
    captures: dict[str, Capture] | None = field(default=None, compare=False)

    def __getitem__(self, name: str) -> dict[str, float]:
        if name not in self.names:
            raise KeyError(f"no template {name!r}; templates: {', '.join(self.names)}")
        k = self.names.index(name)
        return {s: (int(v[k]) if s == "num_tokens" else float(v[k])) for s, v in self.stats.items()}

    def to_dict(self) -> dict[str, Any]:
        return plain({"names": self.names, "tokens": self.tokens, "stats": self.stats,
                      "by_layer": self.by_layer, "layers": self.layers})

    def to_pandas(self) -> pd.DataFrame:
        """One row per template (index ``template``, in order), one column per name in
        ``TEMPLATE_STATS`` (means over the selected layers and all heads). Needs pandas (imported here only)."""
        import pandas as pd

        columns = {s: np.asarray(self.stats[s]).astype(np.int64 if s == "num_tokens" else np.float64)
                   for s in TEMPLATE_STATS if s in self.stats}
        return pd.DataFrame(columns, index=pd.Index(list(self.names), name="template"))

    def _repr_html_(self) -> str:
        """The statistics table as HTML (a notebook shows it where the comparison view cannot be shown)."""
        rows = [[_STAT_LABELS[s]] + [fmt(int(v) if s == "num_tokens" else v) for v in self.stats[s]]
                for s in TEMPLATE_STATS]
        return html_block(html_text("Template comparison (means over layers and heads)", "strong"),
                          html_table(["statistic"] + list(self.names), rows))

    def __repr__(self) -> str:
        return f"TemplateComparison({len(self.names)} templates: {', '.join(self.names)})"

    def __str__(self) -> str:
        rows = [[_STAT_LABELS[s]] + [fmt(int(v) if s == "num_tokens" else v) for v in self.stats[s]]
                for s in TEMPLATE_STATS]
        return "Template comparison (means over layers and heads)\n" + table(["statistic"] + self.names, rows)


def _content_mask(capture: Capture, messages: Sequence[Message] | None) -> np.ndarray:
    """``[n]`` bool: tokens of the prompt's content (message texts; else non-special text)."""
    offsets, text = capture.offsets, capture.text or ""
    spans: list[tuple[int, int]] = []
    if messages is not None:
        pos = 0
        for m in messages:
            content = str(m.get("content", ""))
            at = text.find(content, pos) if content else -1
            if at >= 0:
                spans.append((at, at + len(content)))
                pos = at + len(content)
    elif capture.special.any():
        try:
            spans = [(s, e) for _, s, e in chat_parts(capture)]
        except ValueError:
            spans = []
    if not spans:
        return ~capture.special
    return (_assign(offsets, np.array(spans, dtype=np.int64)) >= 0) & ~capture.special


def _template_stats(capture: Capture, layer_list: list[int],
                    messages: Sequence[Message] | None) -> dict[str, np.ndarray]:
    content = _content_mask(capture, messages).astype(np.float64)
    special = capture.special.astype(np.float64)
    per: dict[str, list[float]] = {s: [] for s in TEMPLATE_STATS if s != "num_tokens"}
    summary = summary_for(capture)  # the fused pass, shared with the widget and compute_metrics
    for layer in layer_list:
        result = summary.layer(layer)
        values, last = result.metrics, result.last_mean
        for stat, metric in _METRIC_OF.items():
            per[stat].append(float(values[metric].mean()))
        per["last_to_content"].append(float(last @ content))
        per["last_to_special"].append(float(last @ special))
        per["last_to_markup"].append(max(0.0, 1.0 - float(last @ content) - float(last @ special)))
    return {s: np.array(v) for s, v in per.items()}


def compare_templates(model: PreTrainedModel | None = None, tokenizer: PreTrainedTokenizerBase | None = None,
                      templates: Mapping[str, str | Sequence[Message]] | None = None, *,
                      captures: Mapping[str, Capture] | None = None, layers: Layers = None, progress: Progress = None,
                      **capture_kwargs: Any) -> TemplateComparison:
    """Capture each prompt template and set its statistics side by side; returns a :class:`TemplateComparison`.

    ``templates``: ``{name: text or chat messages}``, captured with ``attnwidget.capture(model,
    tokenizer, ...)`` (``capture_kwargs`` are passed on); or ``captures={name: Capture}`` made before.
    ``layers``: which layers to average (default all). Statistics: see ``TEMPLATE_STATS`` and
    docs/analysis.md. "Content" is the text of the messages (for a plain string: every non-special
    token), "special" the special tokens, "markup" the rest (role names, newlines of the template).
    ``progress``: a ``tqdm.auto`` bar over the templates (None: when estimated over about 2 s).

    The result keeps the captures: ``result.show()`` (or the result itself, last in a notebook cell)
    draws them side by side, linked (:class:`~attnwidget.ComparisonWidget`).
    """
    check_inputs("compare_templates", "templates", templates, captures, model, tokenizer)
    items = templates if templates is not None else captures
    assert items is not None  # check_inputs: one of the two
    bar = make_bar(2 * len(items), "attnwidget templates", progress, _seconds(model, templates, captures), "step")
    try:
        made = captures_of("compare_templates", templates, captures, model, tokenizer, bar, **capture_kwargs)
        return _compare(made, templates, layers, bar)
    finally:
        bar.close()


def _seconds(model: PreTrainedModel | None, texts: Mapping[str, object] | None,
             captures: Mapping[str, Capture] | None) -> float:
    from ._summary import estimate_seconds

    if texts is not None:
        return text_seconds(model, texts.values())
    assert captures is not None  # check_inputs: one of the two
    return sum(estimate_seconds(summary_for(c).engine) for c in captures.values() if hasattr(c, "_records"))


def _compare(made: dict[str, Capture], templates: Mapping[str, str | Sequence[Message]] | None, layers: Layers,
             bar: ProgressBar) -> TemplateComparison:
    names = [str(k) for k in made]
    stats: dict[str, list[float]] = {s: [] for s in TEMPLATE_STATS}
    by_layer: dict[str, list[np.ndarray]] = {s: [] for s in TEMPLATE_STATS if s != "num_tokens"}
    layer_lists = []
    for name, cap in made.items():
        layer_list = select_layers(layers, cap.num_layers)
        source = templates.get(name) if templates is not None else None
        messages = source if isinstance(source, (list, tuple)) else None
        per = _template_stats(cap, layer_list, messages)
        bar.update(1)
        stats["num_tokens"].append(cap.num_tokens)
        for s, v in per.items():
            stats[s].append(float(v.mean()))
            by_layer[s].append(v)
        layer_lists.append(layer_list)
    return TemplateComparison(
        names=names, tokens=[list(c.tokens) for c in made.values()],
        stats={s: np.array(v, dtype=np.int64 if s == "num_tokens" else np.float64) for s, v in stats.items()},
        by_layer=by_layer, layers=layer_lists, captures={str(k): c for k, c in made.items()},
    )
