"""What export_html embeds for one part: the arrays, the part's traits and its lines of the page's note.

A plain capture is one part (named ""); an encoder-decoder capture has three (encoder, decoder, cross),
each embedded the same way, so the page's static model can swap them as the live widget swaps its
:class:`~attnwidget._widget_parts.PartState`. Cross-attention is a rectangle (target queries x source
keys): its heatmaps are pooled per axis like the fused pass's tiles, and it has no rollout and no graph.
A vision capture's part also carries the picture (uint8 ``[H, W, 3]``) and its patch grid; the page
cuts the image view's rows out of the embedded heatmaps (see docs/export.md).
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import reduce as r
from ._engine import tile_factor
from ._widget_parts import ALL_VIEWS
from .errors import ArgumentTypeError

if TYPE_CHECKING:
    from ._summary import Summary
    from ._types import AttentionSource

HEATMAP_SIDE = 128  # heatmaps of every layer x head (+ layer mean) are max-pooled to at most this side
FULL_MAX_TOKENS = 1024  # the initial layer is embedded at full resolution up to this many tokens
ROLLOUT_ALL_ROWS = 512  # every rollout row is embedded up to this many tokens (else the default row only)
#: A vision capture's heatmaps are embedded at full resolution (every layer, head and layer mean) when
#: they hold at most this many cells, so the image view is exact for any patch: ViT-B/16 at 224 px
#: (197 tokens, 12 x 13 matrices) has 6.1 M, DINOv2-B/14 (257 tokens) 10.3 M, ViT-L/16 15.8 M.
IMAGE_FULL_CELLS = 12 * 2**20
PART_LABELS = {"": "", "encoder": "Encoder", "decoder": "Decoder", "cross": "Cross-attention"}


@dataclass
class PartSubject:
    """One part as the page starts it (or as switching to it shows it)."""

    name: str  # "" for a plain capture
    capture: AttentionSource  # what rollout reads: a Capture or a [layer, head, query, key] array
    source: r.Engine  # the pattern engine over it
    tokens: list[str]
    key_tokens: list[str]
    is_cross: bool
    layer: int
    head: int | None
    threshold: float
    selected: list[int] = field(default_factory=list)
    flow: tuple[int, np.ndarray] | None = None
    color_by: str | None = None
    image: tuple[np.ndarray, tuple[int, int], int] | None = None  # (picture, (rows, cols), patch_start)
    rollout_options: tuple[str, float] = ("mean", 0.0)  # a widget's (rollout_fusion, discard_ratio)

    @property
    def views(self) -> list[str]:
        """The views the live widget offers for this part (attnwidget._widget_parts.open_part)."""
        return [v for v in ALL_VIEWS if not (self.is_cross and v in ("graph", "rollout"))
                and (v != "image" or self.image is not None)]

    def traits(self) -> dict[str, Any]:
        """The traits a part switch sets (besides the selection and the data)."""
        s = self.source
        return {"tokens": self.tokens, "key_tokens": self.key_tokens, "num_layers": s.num_layers,
                "num_heads": s.num_heads, "is_causal": bool(s.is_causal), "is_cross": self.is_cross,
                "views": self.views}


def part_tokens(capture: AttentionSource, source: r.Engine, cross: bool,
                tokens: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """``(tokens, key_tokens)`` of a part, as the widget names them (indices where a capture has none)."""
    if tokens is None:
        tokens = getattr(capture, "tokens", None) or [str(i) for i in range(source.n)]
    tokens = list(tokens)
    keys = list(getattr(capture, "key_tokens", None) or []) if cross else tokens
    if len(keys) != source.n_keys:
        keys = [str(j) for j in range(source.n_keys)]
    return tokens, keys


def image_of(capture: object) -> tuple[np.ndarray, tuple[int, int], int] | None:
    """``(picture, (rows, cols), patch_start)`` of a vision capture, else None."""
    picture, grid = getattr(capture, "image", None), getattr(capture, "patch_grid", None)
    if picture is None or grid is None:
        return None
    return (np.ascontiguousarray(picture, dtype=np.uint8), (int(grid[0]), int(grid[1])),
            int(getattr(capture, "patch_start", 0)))


# ----------------------------------------------------------------------------- arrays


def quantise(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 of each trailing ``[r, c]`` matrix scaled to its own maximum, and the maxima (float32)."""
    top = values.max(axis=(-2, -1))
    scale = np.where(top > 0, top, 1.0)[..., None, None]
    q = np.round(np.clip(values / scale, 0, 1) * 255).astype(np.uint8)
    return q, top.astype(np.float32)


def wire(array: np.ndarray, compress: bool) -> dict[str, Any]:
    """``{b64, dtype, shape, compression}``: little-endian C-order bytes, zlib-compressed, base64."""
    arr = np.ascontiguousarray(array)
    if arr.dtype.name not in ("float32", "float16", "uint8", "uint16", "uint32", "int32"):
        raise ArgumentTypeError(f"cannot embed dtype {arr.dtype}")
    raw = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
    data = zlib.compress(raw, 6) if compress else raw
    return {"b64": base64.b64encode(data).decode("ascii"), "dtype": arr.dtype.name, "shape": list(arr.shape),
            "compression": "zlib" if compress else None}


def heatmaps(source: r.Engine, side: int, full_layer: int | None) -> tuple[np.ndarray, np.ndarray | None, Summary]:
    """Pooled ``[L, H + 1, sq, sk]`` (index H = layer mean), the full ``[H + 1, n, n_keys]`` of one layer
    and the summary they came from. The pooled heatmaps are the fused pass's tiles of ``side`` cells
    (a rectangle is pooled per axis, as the widget's tiles are)."""
    from ._summary import default_options, summary_for

    n, nk, L, H = source.n, source.n_keys, source.num_layers, source.num_heads
    summary = summary_for(source.obj, default_options(source.obj, tile_side=side, tile_dtype="float32"))
    summary.run()
    first = summary.layer(0)
    assert first.mean_tile is not None  # the default options make tiles
    heat = np.zeros((L, H + 1) + first.mean_tile.shape, dtype=np.float32)
    for layer in range(L):
        result = summary.layer(layer)
        heat[layer, :H] = result.tiles
        heat[layer, H] = result.mean_tile
    full = None
    if full_layer is not None:
        full = np.zeros((H + 1, n, nk), dtype=np.float32)
        for r0, r1, block in source.blocks(full_layer):
            full[:H, r0:r1] = block
            full[H, r0:r1] = block.mean(axis=0)
    return heat, full, summary


def rollout_label(options: tuple[str, float]) -> str:
    """The rollout's options in words, as the widget says them: "rollout (max of heads, lowest 90% discarded)"."""
    fusion, discard = options
    dropped = f", lowest {discard * 100:.4g}% discarded" if discard > 0 else ""
    return f"rollout ({fusion} of heads{dropped})"


def rollout_rows(capture: AttentionSource, n: int, max_rows: int,
                 options: tuple[str, float] = ("mean", 0.0)) -> tuple[np.ndarray, list[int] | None, str]:
    from .rollout import rollout, rollout_row

    fusion, discard = options
    if n <= max_rows:
        return rollout(capture, head_fusion=fusion, discard_ratio=discard).astype(np.float16), None, "every row"
    result = rollout_row(capture, head_fusion=fusion, discard_ratio=discard)
    return result.values[None].astype(np.float16), [int(result.row)], f"row {result.row} only ({result.reason})"


def _head_name(head: int | None) -> str:
    return "mean of heads" if head is None else f"head {head}"


def _color_grid(summary: Summary, name: str) -> np.ndarray:
    from .heads import ROLES

    grid = summary.roles()[name] if name in ROLES else summary.metrics()[name]
    return np.asarray(grid, dtype=np.float32)


@dataclass
class Options:
    heatmap_side: int | None
    full_resolution: bool
    rollout_rows: int
    graph: bool
    compress: bool


def side_for(part: PartSubject, heatmap_side: int | None) -> int:
    """The heatmaps' side: ``heatmap_side``, or by default :data:`HEATMAP_SIDE` (the whole sequence for
    a vision capture whose every matrix fits :data:`IMAGE_FULL_CELLS`, so its image view is exact)."""
    if heatmap_side is not None:
        return int(heatmap_side)
    s = part.source
    if part.image is not None and s.num_layers * (s.num_heads + 1) * s.n * s.n_keys <= IMAGE_FULL_CELLS:
        return max(HEATMAP_SIDE, s.n, s.n_keys)
    return HEATMAP_SIDE


def part_payload(part: PartSubject, opts: Options) -> tuple[dict[str, Any], dict[str, np.ndarray], list[str]]:
    """``({state, meta, arrays}, arrays before encoding, lines of the note)`` of one part."""
    source = part.source
    n, nk = source.n, source.n_keys
    side = side_for(part, opts.heatmap_side)
    fr, fc = tile_factor(n, side), tile_factor(nk, side)
    pooled = fr > 1 or fc > 1
    full_layer = part.layer if (opts.full_resolution and pooled and max(n, nk) <= FULL_MAX_TOKENS) else None
    heat, full, summary = heatmaps(source, side, full_layer)
    arrays: dict[str, np.ndarray] = {}
    arrays["heat"], arrays["heat_scale"] = quantise(heat)
    if full is not None:
        arrays["full"], arrays["full_scale"] = quantise(full)
    rows_list, rollout_text = None, None
    if not part.is_cross:
        arrays["rollout"], rows_list, rollout_text = rollout_rows(part.capture, n, opts.rollout_rows,
                                                                  part.rollout_options)
    if part.color_by:
        arrays["color_by"] = _color_grid(summary, part.color_by)
    if part.flow is not None:
        arrays["flow"] = np.asarray(part.flow[1], dtype=np.float32)
    graph_meta = None
    if opts.graph and not part.is_cross:
        focus = part.selected[-1] if part.selected else (n - 1 if source.is_causal else 0)
        g = r.graph_data(source, part.layer, part.head, part.threshold, focus=focus)
        for key in ("pos", "edges", "weights"):
            w = g[key]
            arrays[f"graph_{key}"] = np.frombuffer(w["buffer"], dtype=w["dtype"]).reshape(w["shape"])
        graph_meta = {"layer": part.layer, "head": part.head, "threshold": part.threshold}
    image_meta = None
    if part.image is not None:
        picture, grid, start = part.image
        arrays["picture"] = picture
        image_meta = {"grid": [grid[0], grid[1]], "patch_start": start}

    notes = _notes(part, heat.shape[-2:], (fr, fc), side, full_layer, rollout_text, graph_meta, arrays)
    meta = {"n": n, "n_keys": nk, "heat_factor": int(fr), "heat_factor_keys": int(fc), "full_layer": full_layer,
            "rollout": not part.is_cross, "rollout_rows": rows_list,
            "rollout_label": None if part.is_cross else rollout_label(part.rollout_options), "graph": graph_meta,
            "flow_row": None if part.flow is None else int(part.flow[0]), "color_by": part.color_by,
            "image": image_meta}
    entry = {"state": part.traits(), "meta": meta,
             "arrays": {name: wire(value, opts.compress) for name, value in arrays.items()}}
    return entry, arrays, notes


def _notes(part: PartSubject, cells: tuple[int, ...], factors: tuple[int, int], side: int, full_layer: int | None,
           rollout_text: str | None, graph_meta: dict[str, Any] | None, arrays: dict[str, np.ndarray]) -> list[str]:
    source = part.source
    n, nk, L, H = source.n, source.n_keys, source.num_layers, source.num_heads
    (sr, sc), (fr, fc) = cells, factors
    size = f"{n} x {nk}"
    what = (f"{n} target tokens over {nk} source tokens" if part.is_cross else f"{n} tokens")
    notes = [f"{what}, {L} layers x {H} heads"]  # the caller ends this one (the model's name, the part)
    if fr > 1 or fc > 1:
        notes.append(f"Heatmaps of every head and layer mean are max-pooled to {sr} x {sc} cells "
                     f"({fr} x {fc} tokens each) for sequences over {side} tokens")
        notes[-1] += (f"; layer {full_layer} is also embedded at full resolution ({size}, zoomable)."
                      if full_layer is not None else ".")
    else:
        notes.append(f"Heatmaps of every head and layer mean at full resolution ({size}).")
    if fr == fc == 1:
        notes.append("Token lines: every layer and head at full resolution.")
    elif full_layer is not None:
        notes.append(f"Token lines: full resolution in layer {full_layer}; elsewhere at block resolution "
                     f"(each line carries the maximum of its {fr} x {fc} block).")
    else:
        notes.append(f"Token lines at block resolution (each line carries the maximum of its {fr} x {fc} block).")
    if part.is_cross:
        notes.append("No rollout and no graph: cross-attention joins two sequences (the live widget offers "
                     "neither; its bipartite picture is the lines view).")
    else:
        how = rollout_label(part.rollout_options)[len("rollout ("):-1]  # "mean of heads", ...
        notes.append(f"Rollout ({how}): {rollout_text}, float16"
                     + (f"; attention flow of row {part.flow[0]}." if part.flow is not None else "."))
        if graph_meta:
            edges = len(arrays["graph_weights"])
            notes.append(f"Graph: layer {part.layer}, {_head_name(part.head)} only, {edges} edge"
                         f"{'' if edges == 1 else 's'} above {part.threshold:g} (other layers and heads show "
                         "no graph; the slider can only raise the threshold).")
        else:
            notes.append("Graph: not embedded.")
    if part.image is not None:
        picture, (rows, cols), start = part.image
        exact = "exact" if fr == fc == 1 else (f"exact in layer {full_layer}, elsewhere at block resolution"
                                               if full_layer is not None else "at block resolution")
        notes.append(f"Picture: {picture.shape[1]} x {picture.shape[0]} pixels, {rows} x {cols} patches "
                     f"(tokens {start} to {start + rows * cols - 1}); the image view's rows are cut from the "
                     f"heatmaps in the page ({exact}) or from the rollout.")
    return notes
