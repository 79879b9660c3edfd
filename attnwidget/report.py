"""A readable attention report and a heuristic quality score (docs/analysis.md).

``attention_report(capture)`` summarises every head's metrics (metrics.py) and roles (heads.py),
names the notable heads and lists recommendations, each with its threshold and measured value.
``quality_score(obj)`` is the seed article's score, computed per head: a heuristic about how
attention is spread, not a measure of model quality.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ._arrays import _layers_of
from ._tables import fmt, html_block, html_list, html_table, html_text, plain, table
from .heads import head_roles
from .metrics import _is_capture, compute_metrics
from .errors import ArgumentError

if TYPE_CHECKING:
    import pandas as pd

    from ._types import AttentionSource, Progress
    from .metrics import Expected

__all__ = ["THRESHOLDS", "AttentionReport", "QualityScore", "Recommendation", "attention_report", "quality_score"]

#: Thresholds of the recommendations and the quality score (docs/analysis.md gives the reasons).
THRESHOLDS = {
    "low_entropy": 1.0,  # nats, mean entropy below: concentrated (seed)
    "high_sparsity": 0.8,  # mean sparsity above: very sparse (seed)
    "low_locality": 0.3,  # mean locality below: attention reaches far (seed)
    "sink_head": 0.5,  # a head puts more than this on the first token...
    "sink_heads": 0.5,  # ...in more than this fraction of heads: sink-dominated
    "near_uniform": 0.9,  # mean normalised entropy above: nearly uniform
    "short_input": 8,  # fewer tokens: metrics unreliable
    "weak_match": 0.5,  # mean pattern match below: the expected pattern is rare
}
ENTROPY_BAND = (1.0, 3.0)  # nats (seed)
NORMALIZED_ENTROPY_BAND = (0.25, 0.75)  # = the nats band at n = e^4 ~ 55 tokens (ln n = 4)
SPARSITY_BAND = (0.3, 0.7)  # seed
SUMMARY = ("entropy", "normalized_entropy", "sparsity", "locality", "focus_consistency", "sink_score", "max_weight")


# ---------------------------------------------------------------------------------------------------
# quality score


@dataclass(repr=False)
class QualityScore:
    """The seed's quality score per head, layer and overall, in [0, 1] (see :func:`quality_score`).

    ``by_head`` ``[layer, head]``, ``by_layer`` ``[layer]`` (mean over heads), ``overall`` (mean over
    layers); ``entropy`` (nats, or normalised when ``normalized``), ``sparsity``, ``locality`` and
    ``pattern_match`` (None without ``expected``) are the per-head inputs.
    """

    overall: float
    by_layer: np.ndarray
    by_head: np.ndarray
    entropy: np.ndarray
    sparsity: np.ndarray
    locality: np.ndarray
    pattern_match: np.ndarray | None
    normalized: bool
    entropy_band: tuple[float, float]
    sparsity_band: tuple[float, float]
    pattern_weight: float
    expected: str | None

    def in_band(self) -> tuple[np.ndarray, np.ndarray]:
        """``[layer, head]`` bools: entropy inside its band, sparsity inside its band."""
        (e0, e1), (s0, s1) = self.entropy_band, self.sparsity_band
        return (e0 < self.entropy) & (self.entropy < e1), (s0 < self.sparsity) & (self.sparsity < s1)

    def formula(self) -> str:
        (e0, e1), (s0, s1) = self.entropy_band, self.sparsity_band
        unit = "normalized entropy" if self.normalized else "entropy (nats)"
        text = f"0.3 if {e0:g} < {unit} < {e1:g}, + 0.3 if {s0:g} < sparsity < {s1:g}, + 0.4 x locality"
        if self.pattern_match is not None:
            w = self.pattern_weight
            text = f"{1 - w:g} x ({text}) + {w:g} x pattern match ({self.expected})"
        return text + "; per head, mean over heads then layers"

    def to_dict(self) -> dict[str, Any]:
        return plain({
            "overall": self.overall, "by_layer": self.by_layer, "by_head": self.by_head,
            "entropy": self.entropy, "sparsity": self.sparsity, "locality": self.locality,
            "pattern_match": self.pattern_match, "normalized": self.normalized,
            "entropy_band": list(self.entropy_band), "sparsity_band": list(self.sparsity_band),
            "pattern_weight": self.pattern_weight, "expected": self.expected, "formula": self.formula(),
        })

    def parts(self) -> list[tuple[str, float, float, float]]:
        """The overall score taken apart: ``[(part, weight, mean value, weight x value)]``; the last
        column sums to ``overall``. The in-band parts' values are the share of heads inside the band."""
        ent_ok, sp_ok = self.in_band()
        w = self.pattern_weight if self.pattern_match is not None else 0.0
        (e0, e1), (s0, s1) = self.entropy_band, self.sparsity_band
        unit = "normalized entropy" if self.normalized else "entropy (nats)"
        rows = [(f"{e0:g} < {unit} < {e1:g} (share of heads)", 0.3 * (1 - w), float(ent_ok.mean())),
                (f"{s0:g} < sparsity < {s1:g} (share of heads)", 0.3 * (1 - w), float(sp_ok.mean())),
                ("locality (mean)", 0.4 * (1 - w), float(np.mean(self.locality)))]
        if self.pattern_match is not None:
            rows.append((f"pattern match ({self.expected}) (mean)", w, float(np.mean(self.pattern_match))))
        return [(name, weight, value, weight * value) for name, weight, value in rows]

    def to_pandas(self) -> pd.DataFrame:
        """One row per head, indexed by ``(layer, head)``: the score's inputs (``entropy``, ``sparsity``,
        ``locality``, ``pattern_match`` with ``expected``), whether entropy and sparsity are in their
        bands, and the head's ``score``. Needs pandas (imported here only)."""
        import pandas as pd

        layers, heads = self.by_head.shape
        ent_ok, sp_ok = self.in_band()
        columns = {"entropy": self.entropy, "entropy_in_band": ent_ok, "sparsity": self.sparsity,
                   "sparsity_in_band": sp_ok, "locality": self.locality}
        if self.pattern_match is not None:
            columns["pattern_match"] = self.pattern_match
        columns["score"] = self.by_head
        index = pd.MultiIndex.from_product([range(layers), range(heads)], names=["layer", "head"])
        return pd.DataFrame({k: np.asarray(v).reshape(-1) for k, v in columns.items()}, index=index)

    def _layer_table(self) -> tuple[list[str], list[list[str]]]:
        """Header and rows of the per-layer table (means over heads; "in band": share of heads)."""
        ent_ok, sp_ok = self.in_band()
        header = ["layer", "entropy", "in band", "sparsity", "in band", "locality"]
        if self.pattern_match is not None:
            header.append("match")
        header.append("score")
        rows = []
        for layer in range(self.by_head.shape[0]):
            row = [str(layer), fmt(self.entropy[layer].mean()), fmt(ent_ok[layer].mean()),
                   fmt(self.sparsity[layer].mean()), fmt(sp_ok[layer].mean()), fmt(self.locality[layer].mean())]
            if self.pattern_match is not None:
                row.append(fmt(self.pattern_match[layer].mean()))
            rows.append(row + [fmt(self.by_layer[layer])])
        return header, rows

    def _html_parts(self) -> str:
        """The parts table (also shown by :meth:`AttentionReport._repr_html_`)."""
        rows = [[name, fmt(weight), fmt(value), fmt(share)] for name, weight, value, share in self.parts()]
        rows.append(["quality score", "", "", fmt(self.overall)])
        return html_table(["part", "weight", "value", "contributes"], rows, caption="Parts of the score")

    def _repr_html_(self) -> str:
        header, rows = self._layer_table()
        return html_block(
            html_text(f"Quality score {fmt(self.overall)} (a heuristic about how attention is spread, not model quality)",
                      "strong"),
            html_text(self.formula()), self._html_parts(),
            html_table(header, rows, caption="Per layer (mean over heads; in band: share of heads)"))

    def __repr__(self) -> str:
        return f"QualityScore(overall={self.overall:.3f}, {self.by_head.shape[0]} layers x {self.by_head.shape[1]} heads)"

    def __str__(self) -> str:
        header, rows = self._layer_table()
        return (f"Quality score {fmt(self.overall)} (a heuristic about how attention is spread, not model quality)\n"
                f"  {self.formula()}\n" + table(header, rows))


def _check_weight(pattern_weight: float) -> float:
    w = float(pattern_weight)
    if not 0.0 <= w <= 1.0:
        raise ArgumentError(f"pattern_weight must be in [0, 1] (the share of the score given to pattern match); got {w}.")
    return w


def _describe(expected: Expected | None) -> str | None:
    if expected is None:
        return None
    if isinstance(expected, str):
        return expected
    shape = getattr(expected, "shape", None)
    return "a Capture" if _is_capture(expected) else f"an array of shape {tuple(shape) if shape else '?'}"


def _score(metrics: dict[str, np.ndarray], *, normalized: bool, expected: Expected | None,
           pattern_weight: float) -> QualityScore:
    entropy = metrics["normalized_entropy" if normalized else "entropy"]
    band = NORMALIZED_ENTROPY_BAND if normalized else ENTROPY_BAND
    sparsity, locality = metrics["sparsity"], metrics["locality"]
    base = (0.3 * ((band[0] < entropy) & (entropy < band[1]))
            + 0.3 * ((SPARSITY_BAND[0] < sparsity) & (sparsity < SPARSITY_BAND[1])) + 0.4 * locality)
    match = metrics.get("pattern_match") if expected is not None else None
    by_head = base if match is None else (1.0 - pattern_weight) * base + pattern_weight * match
    by_layer = by_head.mean(1)
    return QualityScore(
        overall=float(by_layer.mean()), by_layer=by_layer, by_head=by_head, entropy=entropy, sparsity=sparsity,
        locality=locality, pattern_match=match, normalized=bool(normalized), entropy_band=band,
        sparsity_band=SPARSITY_BAND, pattern_weight=pattern_weight, expected=_describe(expected),
    )


def quality_score(attn: AttentionSource, expected: Expected | None = None, *, normalized: bool = False,
                  pattern_weight: float = 0.5, sparsity_threshold: float = 0.01, window: int = 3,
                  progress: Progress = None) -> QualityScore:
    """The seed article's attention "quality" score, per head, in [0, 1]; returns a :class:`QualityScore`.

    Per head: ``0.3 if 1.0 < entropy < 3.0`` (nats) ``+ 0.3 if 0.3 < sparsity < 0.7 + 0.4 x locality``
    (metrics.py definitions, sparsity below ``sparsity_threshold``); the seed scored the head-mean
    matrix of a layer, here each head is scored and the layer score is the mean over heads, the
    overall score the mean over layers. It rewards middling entropy and sparsity and local attention:
    a heuristic about how attention is spread, not a measure of model quality. Entropy in nats grows
    with the sequence length (at most ``ln n``); ``normalized=True`` uses the normalised entropy with
    the band ``0.25 < H / ln v < 0.75``, equal to the nats band at ``n = e^4 ~ 55`` tokens.
    ``expected`` (a pattern name, an array or a Capture, see :func:`attnwidget.metrics.pattern_match`):
    the score becomes ``(1 - pattern_weight) x seed score + pattern_weight x pattern match``.
    ``progress``: a ``tqdm.auto`` bar for long inputs (see :func:`attnwidget.compute_metrics`).
    """
    pattern_weight = _check_weight(pattern_weight)
    names = ["entropy", "normalized_entropy", "sparsity", "locality"]
    if expected is not None:
        names.append("pattern_match")
    metrics = compute_metrics(attn, names, sparsity_threshold=sparsity_threshold, expected=expected, window=window,
                              progress=progress)
    return _score(metrics, normalized=normalized, expected=expected, pattern_weight=pattern_weight)


# ---------------------------------------------------------------------------------------------------
# report


@dataclass(frozen=True)
class Recommendation:
    """One finding: ``code`` (stable id), ``message``, the measured ``value`` and the ``threshold`` crossed."""

    code: str
    message: str
    value: float
    threshold: float

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "value": float(self.value), "threshold": float(self.threshold)}

    def __str__(self) -> str:
        return self.message


@dataclass(repr=False)
class AttentionReport:
    """What :func:`attention_report` found. Arrays are ``[layer, head]`` (``metrics``), ``[layer]`` (``layers``).

    summary
        means over layers and heads of ``SUMMARY`` (and ``pattern_match`` with ``expected``).
    roles
        ``[layer, head]`` dominant role per head (:meth:`HeadRoles.dominant`); ``role_counts`` per layer.
    highlights
        ``{kind: [(layer, head, value)]}``, three heads each, best first.
    """

    model: str
    num_tokens: int
    num_generated: int
    num_layers: int
    num_heads: int
    is_causal: bool
    summary: dict[str, float]
    metrics: dict[str, np.ndarray]
    layers: dict[str, np.ndarray]
    roles: np.ndarray
    role_counts: list[dict[str, int]]
    highlights: dict[str, list[tuple[int, int, float]]]
    recommendations: list[Recommendation]
    quality: QualityScore

    def to_dict(self) -> dict[str, Any]:
        return plain({
            "model": self.model, "num_tokens": self.num_tokens, "num_generated": self.num_generated,
            "num_layers": self.num_layers, "num_heads": self.num_heads, "is_causal": self.is_causal,
            "summary": self.summary, "metrics": self.metrics, "layers": self.layers, "roles": self.roles,
            "role_counts": self.role_counts, "highlights": {k: [list(h) for h in v] for k, v in self.highlights.items()},
            "recommendations": [r.to_dict() for r in self.recommendations], "quality": self.quality.to_dict(),
        })

    def to_pandas(self) -> dict[str, pd.DataFrame]:
        """The report as a dict of pandas DataFrames (pandas is imported here only):

        ``"summary"``: index metric, column ``value``; ``"layers"``: one row per layer, the per-layer
        means, the quality ``score`` and a ``roles`` text; ``"heads"``: one row per ``(layer, head)``,
        every metric, the dominant ``role`` and the quality ``score``; ``"highlights"``: columns
        ``kind, rank, layer, head, value``; ``"recommendations"``: columns ``code, message, value,
        threshold``; ``"quality"``: :meth:`QualityScore.to_pandas`.
        """
        import pandas as pd

        index = pd.MultiIndex.from_product([range(self.num_layers), range(self.num_heads)], names=["layer", "head"])
        heads = {k: np.asarray(v).reshape(-1) for k, v in self.metrics.items()}
        heads["role"] = np.asarray(self.roles, dtype=object).reshape(-1)
        heads["score"] = np.asarray(self.quality.by_head).reshape(-1)
        layers: dict[str, Any] = {k: np.asarray(v) for k, v in self.layers.items()}
        layers["score"] = np.asarray(self.quality.by_layer)
        layers["roles"] = [_role_text(c) for c in self.role_counts]
        highlights = [{"kind": kind, "rank": rank, "layer": l, "head": h, "value": v}
                      for kind, found in self.highlights.items() for rank, (l, h, v) in enumerate(found)]
        return {
            "summary": pd.DataFrame({"value": pd.Series(self.summary, dtype=float)}).rename_axis("metric"),
            "layers": pd.DataFrame(layers, index=pd.RangeIndex(self.num_layers, name="layer")),
            "heads": pd.DataFrame(heads, index=index),
            "highlights": pd.DataFrame(highlights, columns=["kind", "rank", "layer", "head", "value"]),
            "recommendations": pd.DataFrame([r.to_dict() for r in self.recommendations],
                                            columns=["code", "message", "value", "threshold"]),
            "quality": self.quality.to_pandas(),
        }

    def _repr_html_(self) -> str:
        kind = "causal" if self.is_causal else "bidirectional"
        gen = f" ({self.num_generated} generated)" if self.num_generated else ""
        cols = [c for c in SUMMARY if c != "max_weight"] + (["pattern_match"] if "pattern_match" in self.layers else [])
        rows = [[str(layer)] + [fmt(self.layers[c][layer]) for c in cols] + [fmt(self.quality.by_layer[layer]),
                                                                             _role_text(self.role_counts[layer])]
                for layer in range(self.num_layers)]
        highlights = [[kind_, ", ".join(f"L{l}H{h}: {fmt(v)}" for l, h, v in found) or "-"]
                      for kind_, found in self.highlights.items()]
        return html_block(
            html_text(f"Attention report: {self.model}, {self.num_tokens} tokens{gen}, "
                      f"{self.num_layers} layers x {self.num_heads} heads, {kind}", "strong"),
            html_table(["metric", "value"], [[k, fmt(v)] for k, v in self.summary.items()],
                       caption="Summary (mean over layers and heads; entropy in nats, at most ln n = "
                               f"{fmt(np.log(max(self.num_tokens, 1)))})"),
            html_text(f"Quality score {fmt(self.quality.overall)} (heuristic; {self.quality.formula()})"),
            self.quality._html_parts(),
            html_table(["layer"] + cols + ["score", "head roles"], rows, caption="Per layer (mean over heads)"),
            html_table(["kind", "heads (layer, head: value)"], highlights, caption="Head highlights"),
            html_text("Recommendations", "strong"),
            html_list([r.message for r in self.recommendations], empty="none: no threshold crossed."),
        )

    def __repr__(self) -> str:
        return (f"AttentionReport({self.model}: {self.num_tokens} tokens, {self.num_layers} layers x "
                f"{self.num_heads} heads, quality {self.quality.overall:.3f}, {len(self.recommendations)} recommendations)")

    def __str__(self) -> str:
        kind = "causal" if self.is_causal else "bidirectional"
        gen = f" ({self.num_generated} generated)" if self.num_generated else ""
        lines = [f"Attention report: {self.model}, {self.num_tokens} tokens{gen}, "
                 f"{self.num_layers} layers x {self.num_heads} heads, {kind}", "",
                 "Summary (mean over layers and heads; entropy in nats, at most ln n = "
                 f"{fmt(np.log(max(self.num_tokens, 1)))}):",
                 table(["metric", "value"], [[k, fmt(v)] for k, v in self.summary.items()]),
                 f"quality score: {fmt(self.quality.overall)} (heuristic; {self.quality.formula()})", "",
                 "Per layer (mean over heads):"]
        cols = [c for c in SUMMARY if c != "max_weight"] + (["pattern_match"] if "pattern_match" in self.layers else [])
        short = {"normalized_entropy": "norm.ent", "focus_consistency": "focus", "sink_score": "sink",
                 "pattern_match": "match"}
        rows = []
        for layer in range(self.num_layers):
            rows.append([str(layer)] + [fmt(self.layers[c][layer]) for c in cols] + [fmt(self.quality.by_layer[layer])]
                        + [_role_text(self.role_counts[layer])])
        lines.append(table(["layer"] + [short.get(c, c) for c in cols] + ["score", "head roles"], rows))
        lines += ["", "Head highlights (layer, head: value):"]
        for kind_, heads in self.highlights.items():
            lines.append(f"  {kind_}: " + (", ".join(f"L{l}H{h}: {fmt(v)}" for l, h, v in heads) or "-"))
        lines += ["", "Recommendations:"]
        lines += [f"  - {r.message}" for r in self.recommendations] or ["  none: no threshold crossed."]
        return "\n".join(lines)


def _role_text(counts: dict[str, int]) -> str:
    """``{"sink": 3, "local": 1}`` -> ``"sink 3, local 1"`` (most frequent first)."""
    return ", ".join(f"{role} {n}" for role, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _top(values: np.ndarray, k: int = 3, lowest: bool = False) -> list[tuple[int, int, float]]:
    flat = np.asarray(values, dtype=np.float64).ravel()
    valid = np.flatnonzero(~np.isnan(flat))
    order = valid[np.argsort(flat[valid] if lowest else -flat[valid], kind="stable")[:k]]
    heads = values.shape[1]
    return [(int(i // heads), int(i % heads), float(flat[i])) for i in order]


def _recommendations(summary: dict[str, float], metrics: dict[str, np.ndarray], n: int,
                     expected: Expected | None) -> list[Recommendation]:
    t: dict[str, float] = THRESHOLDS
    out: list[Recommendation] = []
    if n < t["short_input"]:
        out.append(Recommendation("short_input", (
            f"Short input: {n} token{'s' if n != 1 else ''} < {t['short_input']}. Each head's metrics average "
            f"over at most {max(n - 1, 1)} rows and entropy is bounded by ln n = {np.log(max(n, 1)):.3f} nats, "
            "so the thresholds below (meant for sentences of dozens of tokens) are unreliable; capture a longer text."),
            n, t["short_input"]))
    sink_frac = float(np.mean(metrics["sink_score"] > t["sink_head"]))
    if sink_frac > t["sink_heads"]:
        count = int(np.sum(metrics["sink_score"] > t["sink_head"]))
        out.append(Recommendation("attention_sink", (
            f"Attention sink: {count} of {metrics['sink_score'].size} heads ({sink_frac:.0%} > {t['sink_heads']:.0%}) "
            f"put more than {t['sink_head']} of their attention on the first token. Entropy, sparsity and locality "
            "then mostly describe the sink; rank tokens without it (compare_languages excludes the first token) "
            "and read the heads with a low sink score for content."), sink_frac, t["sink_heads"]))
    if summary["entropy"] < t["low_entropy"]:
        out.append(Recommendation("low_entropy", (
            f"Concentrated attention: mean entropy {summary['entropy']:.3f} nats < {t['low_entropy']} "
            f"(at most ln n = {np.log(max(n, 1)):.3f} here): rows put their weight on very few keys. The seed "
            "article reads this as a risk for generalisation; check whether it is a sink or a positional "
            "head (see the highlights) before concluding."), summary["entropy"], t["low_entropy"]))
    if summary["normalized_entropy"] > t["near_uniform"]:
        out.append(Recommendation("near_uniform", (
            f"Nearly uniform attention: mean normalized entropy {summary['normalized_entropy']:.3f} > "
            f"{t['near_uniform']}: heads barely prefer any token, as in an untrained or randomly initialised "
            "model; check that the weights were loaded."), summary["normalized_entropy"], t["near_uniform"]))
    if summary["sparsity"] > t["high_sparsity"]:
        out.append(Recommendation("high_sparsity", (
            f"Very sparse attention: on average {summary['sparsity']:.1%} of the visible weights are below the "
            f"sparsity threshold (> {t['high_sparsity']:.0%}): a sparse approximation (top-k keys, a sliding "
            "window plus the sink) would lose little of it."), summary["sparsity"], t["high_sparsity"]))
    if summary["locality"] < t["low_locality"]:
        distance = float(np.mean(metrics["mean_distance"]))
        out.append(Recommendation("low_locality", (
            f"Far-reaching attention: mean locality {summary['locality']:.3f} < {t['low_locality']} (mean attended "
            f"distance {distance:.1f} tokens): heads mostly look beyond their neighbours"
            + (", largely at the first-token sink." if sink_frac > t["sink_heads"] else
               "; local structure (previous-token heads) is weak.")), summary["locality"], t["low_locality"]))
    if expected is not None and summary["pattern_match"] < t["weak_match"]:
        best = _top(metrics["pattern_match"], 1)[0]
        out.append(Recommendation("weak_pattern_match", (
            f"Weak match with the expected pattern ({_describe(expected)}): mean pattern match "
            f"{summary['pattern_match']:.3f} < {t['weak_match']}; the best head is L{best[0]}H{best[1]} at "
            f"{best[2]:.3f}."), summary["pattern_match"], t["weak_match"]))
    return out


def attention_report(attn: AttentionSource, *, expected: Expected | None = None, normalized: bool = False,
                     sparsity_threshold: float = 0.01, pattern_weight: float = 0.5, window: int = 3,
                     progress: Progress = None) -> AttentionReport:
    """Summarise the attention of a Capture (or a ``[layer, head, query, key]`` array); returns an
    :class:`AttentionReport` that prints as a text report (``print(report)``) and gives plain data
    (``report.to_dict()``).

    It holds the mean of each metric (docs/metrics.md), a per-layer table with the dominant head roles,
    the most focused / most diffuse / strongest sink / previous-token / induction heads, the
    recommendations whose thresholds (:data:`THRESHOLDS`, docs/analysis.md) are crossed, and the
    :func:`quality_score` (``expected``, ``normalized``, ``pattern_weight`` are passed on to it).
    ``progress``: a ``tqdm.auto`` bar for long inputs (None: when estimated over about 2 s). The roles
    read the same pass as the metrics.
    """
    pattern_weight = _check_weight(pattern_weight)
    names = list(SUMMARY) + ["mean_distance"] + (["pattern_match"] if expected is not None else [])
    metrics = compute_metrics(attn, names, sparsity_threshold=sparsity_threshold, expected=expected, window=window,
                              progress=progress)
    roles = head_roles(attn, progress=progress)
    dominant = roles.dominant()
    keys = list(SUMMARY) + (["pattern_match"] if expected is not None else [])
    summary = {k: float(np.mean(metrics[k])) for k in keys}
    layers = {k: metrics[k].mean(1) for k in keys}
    role_counts = [dict(zip(*np.unique(row.astype(str), return_counts=True))) for row in dominant]
    role_counts = [{str(k): int(v) for k, v in c.items()} for c in role_counts]
    highlights = {
        "most focused (normalized entropy)": _top(metrics["normalized_entropy"], lowest=True),
        "most diffuse (normalized entropy)": _top(metrics["normalized_entropy"]),
        "strongest sink (first-token weight)": _top(metrics["sink_score"]),
        "strongest previous-token": _top(roles.previous),
    }
    if not np.all(np.isnan(roles.induction)):
        highlights["strongest induction"] = _top(roles.induction)
    if expected is not None:
        highlights[f"best match with {_describe(expected)}"] = _top(metrics["pattern_match"])
    num_layers, num_heads = metrics["entropy"].shape
    # a TransformerLens cache has no shape of its own: np.shape reads its per-layer attention
    source: Any = attn if _is_capture(attn) else _layers_of(attn)
    n = int(source.num_tokens) if _is_capture(attn) else int(np.shape(source)[-1])
    generated = getattr(attn, "generated", None)
    return AttentionReport(
        model=str(getattr(attn, "model_name", "array")), num_tokens=n,
        num_generated=int(np.sum(generated)) if generated is not None else 0, num_layers=num_layers,
        num_heads=num_heads, is_causal=_causal(attn), summary=summary,
        metrics=metrics, layers=layers, roles=dominant, role_counts=role_counts, highlights=highlights,
        recommendations=_recommendations(summary, metrics, n, expected),
        quality=_score(metrics, normalized=normalized, expected=expected, pattern_weight=pattern_weight),
    )


def _causal(attn: AttentionSource) -> bool:
    if _is_capture(attn):
        return bool(attn.is_causal)
    from ._arrays import as_attention_array

    return as_attention_array(attn)[1]
