"""The widget's initial state as JSON for the browser benchmark (bytes as base64 markers).

``from_widget(AttentionWidget(cap))`` takes the real widget's synced traits; ``from_parts`` builds the
same dict from ``reduce.thumbnails`` / ``reduce.heatmap_tile`` outputs (what ``AttentionWidget``
computes in ``__init__``), so the 8192-token end-to-end run can hand its results to the browser
benchmark without computing the thumbnails twice. ``benchmarks/browser/bench.js`` revives the
markers into ``{buffer: DataView, dtype, shape}`` like the ones anywidget delivers.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

TRAITS = ("tokens", "num_layers", "num_heads", "is_causal", "layer", "head", "view", "hovered_token",
          "selected_tokens", "threshold", "status", "progress", "heatmap_kind", "color_scale", "text_source",
          "grid_data", "heatmap_data", "text_data", "lines_data", "graph_data", "rollout_data")


def _encode(value):
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"__b64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def from_widget(widget) -> dict:
    state = widget.get_state()
    return {name: _encode(state[name]) for name in TRAITS}


def from_parts(cap, thumbs, means, tile: dict, layer: int) -> dict:
    """Same as ``from_widget(AttentionWidget(cap))`` (default layer, head=None, view='heatmap')."""
    from attnwidget.reduce import wire

    return _encode({
        "tokens": list(cap.tokens), "num_layers": cap.num_layers, "num_heads": cap.num_heads,
        "is_causal": cap.is_causal, "layer": layer, "head": None, "view": "heatmap", "hovered_token": None,
        "selected_tokens": [], "threshold": 0.1, "status": f"layer {layer}, mean of heads",
        "grid_data": {"thumbs": wire(thumbs), "layer_mean": wire(means), "size": int(thumbs.shape[-1])},
        "heatmap_data": tile, "lines_data": {}, "graph_data": {}, "rollout_data": {},
    })


def save(path: Path, state: dict) -> None:
    Path(path).write_text(json.dumps(state))


def load(path: Path) -> dict:
    return json.loads(Path(path).read_text())
