"""What the comparison view computes: the panels' captures checked, their grids and heatmap tiles from
the pattern engine, the shared colour scale, and the difference of two equal-length panels.

Kept out of the widget class (traits and observers only, in compare.py). Everything sent to the page
is a small array made by :mod:`attnwidget.reduce` and wired as bytes (:func:`attnwidget.reduce.wire`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import reduce as r
from ._engine import BLOCK_ELEMENTS, Engine
from ._summary import summary_for
from .errors import ArgumentError, ArgumentTypeError

if TYPE_CHECKING:
    from ._summary import Summary
    from .capture import Capture

#: The difference heatmap: at most this many cells a side (pooled by the signed largest magnitude,
#: so a sharp change stays visible at any length).
DIFF_SIDE = 256


@dataclass
class Panel:
    """One captured prompt of a comparison: its name, capture, engine and summary."""

    name: str
    capture: Capture
    engine: Engine
    summary: Summary

    @property
    def n(self) -> int:
        return self.engine.n

    @property
    def n_keys(self) -> int:
        return self.engine.n_keys

    @property
    def shape(self) -> tuple[int, int]:
        return self.engine.n, self.engine.n_keys

    @property
    def tokens(self) -> list[str]:
        return [str(t) for t in self.capture.tokens]

    @property
    def key_tokens(self) -> list[str]:
        keys = getattr(self.capture, "key_tokens", None)
        return self.tokens if keys is None or not self.engine.is_cross else [str(t) for t in keys]


def captures_of(source: object) -> Mapping[str, Capture]:
    """``{name: Capture}`` from a dict of captures, or from a TemplateComparison / LanguageComparison
    that holds its captures (``.captures``)."""
    if not isinstance(source, dict) and hasattr(source, "captures") and hasattr(source, "to_dict"):
        held = source.captures
        if not held:
            raise ArgumentError(
                f"this {type(source).__name__} holds no captures (it was built without them, or they were "
                "dropped); run compare_templates / compare_languages again, or pass compare({name: Capture}).")
        return held
    if not isinstance(source, dict):
        raise ArgumentTypeError(
            f"compare needs a dict {{name: Capture}} (or the result of compare_templates / compare_languages); "
            f"got {type(source).__name__}.")
    if not source:
        raise ArgumentError("compare needs at least one capture; got an empty dict.")
    return source


def make_panels(captures: Mapping[str, Capture]) -> list[Panel]:
    """Check the captures (Capture-like, one model: the same layers and heads) and make their panels."""
    panels: list[Panel] = []
    seen: set[str] = set()
    for key, cap in captures.items():
        name = str(key)
        if name in seen:
            raise ArgumentError(f"two captures are both named {name!r} once turned into text; give unique names.")
        seen.add(name)
        if hasattr(cap, "encoder") and hasattr(cap, "decoder") and not hasattr(cap, "patterns"):
            raise ArgumentTypeError(
                f"capture {name!r} is an encoder-decoder capture; compare one part of each, e.g. "
                f"{{{name!r}: capture.decoder}} (or .encoder, .cross).")
        if not (hasattr(cap, "patterns") and hasattr(cap, "is_causal") and hasattr(cap, "tokens")):
            raise ArgumentTypeError(
                f"capture {name!r} must be a Capture (attnwidget.capture(model, tokenizer, text), or "
                f"Capture.from_attentions(...)); got {type(cap).__name__}.")
        engine = Engine(cap)
        panels.append(Panel(name, cap, engine, summary_for(cap)))
    first = panels[0]
    for p in panels[1:]:
        if (p.engine.num_layers, p.engine.num_heads) != (first.engine.num_layers, first.engine.num_heads):
            raise ArgumentError(
                f"compare shows one layer and head across panels, so the captures must come from one model: "
                f"{first.name!r} has {first.engine.num_layers} layers x {first.engine.num_heads} heads, "
                f"{p.name!r} has {p.engine.num_layers} x {p.engine.num_heads}.")
    return panels


def grid(panel: Panel) -> dict[str, Any]:
    """The panel's layer x head grid of thumbnails (every layer passed over first), as the single
    widget sends it: ``{"thumbs": uint8 [L, H, s, s], "layer_mean": uint8 [L, s, s], "ready", "size"}``."""
    panel.summary.run()
    thumbs, means, ready = panel.summary.thumbnails()
    return {"thumbs": r.wire(thumbs), "layer_mean": r.wire(means), "ready": r.wire(ready.astype(np.uint8)),
            "size": int(thumbs.shape[-1])}


def tile(panel: Panel, layer: int, head: int | None) -> tuple[dict[str, Any], np.ndarray]:
    """The panel's whole-sequence heatmap tile (:func:`attnwidget.reduce.heatmap_tile` from the fused
    pass) and its matrix as float32."""
    data = r.heatmap_tile(panel.engine, layer, head, summary=panel.summary)
    wired = data["matrix"]
    matrix = np.frombuffer(wired["buffer"], dtype=wired["dtype"]).reshape(wired["shape"]).astype(np.float32)
    return data, matrix


def scale_max(matrices: list[np.ndarray]) -> tuple[float, float]:
    """``(max, max without the first key column)`` over every panel's tile: one scale for all panels."""
    top = max((float(m.max()) for m in matrices if m.size), default=0.0)
    no_sink = max((float(m[:, 1:].max()) for m in matrices if m.shape[1] > 1), default=0.0)
    return top, no_sink


def signed_max_pool(block: np.ndarray, fr: int, fc: int) -> np.ndarray:
    """Pool ``fr x fc`` cells of a 2-D block to the entry of largest magnitude, sign kept (edges padded
    with zeros)."""
    if fr == fc == 1:
        return block
    rows, cols = block.shape
    pr, pc = -rows % fr, -cols % fc
    padded = np.pad(block, [(0, pr), (0, pc)])
    cells = padded.reshape(padded.shape[0] // fr, fr, padded.shape[1] // fc, fc).transpose(0, 2, 1, 3)
    flat = cells.reshape(cells.shape[0], cells.shape[1], fr * fc)
    pick = np.abs(flat).argmax(axis=-1)
    return np.take_along_axis(flat, pick[..., None], axis=-1)[..., 0]


def difference(a: Panel, b: Panel, layer: int, head: int | None, side: int = DIFF_SIDE) -> dict[str, Any]:
    """Panel ``b`` minus panel ``a`` (equal shapes), exact float32 weights read in row blocks from the
    pattern engine, pooled to at most ``side`` cells a side by the signed largest magnitude.

    Returns ``{"matrix": wire(float32 [r, c]), "row0": 0, "col0": 0, "n_rows", "n_cols", "n_queries",
    "n_keys", "max_abs", "max_abs_no_sink"}`` (the largest ``|b - a|``, and without the first key)."""
    if a.shape != b.shape:
        raise ArgumentError(f"the difference needs two panels with as many tokens: {a.name!r} is "
                            f"{a.n} x {a.n_keys}, {b.name!r} is {b.n} x {b.n_keys}.")
    n, n_keys = a.shape
    fr = fc = r.pool_factor(max(n, n_keys), side)
    step = max(fr, (max(1, int(BLOCK_ELEMENTS) // max(1, n_keys)) // fr) * fr)
    pieces, top, no_sink = [], 0.0, 0.0
    for r0 in range(0, n, step):
        rows = slice(r0, min(n, r0 + step))
        block = b.engine.matrix(layer, head, rows) - a.engine.matrix(layer, head, rows)
        block = np.asarray(block, dtype=np.float32)
        if block.size:
            top = max(top, float(np.abs(block).max()))
            if n_keys > 1:
                no_sink = max(no_sink, float(np.abs(block[:, 1:]).max()))
        pieces.append(signed_max_pool(block, fr, fc))
    matrix = np.concatenate(pieces, axis=0).astype(np.float32)
    return {"matrix": r.wire(matrix), "row0": 0, "col0": 0, "n_rows": int(n), "n_cols": int(n_keys),
            "n_queries": int(n), "n_keys": int(n_keys), "max_abs": top, "max_abs_no_sink": no_sink}


def equal_pairs(panels: list[Panel]) -> list[tuple[str, str]]:
    """Every ordered-by-position pair ``(a, b)`` of panels with equal shapes (the difference needs them)."""
    return [(p.name, q.name) for i, p in enumerate(panels) for q in panels[i + 1:] if p.shape == q.shape]
