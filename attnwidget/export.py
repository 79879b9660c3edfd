"""export_html(): one self-contained HTML page that shows a capture with the widget's views, offline.

The page inlines the built front end (``attnwidget/static/widget.js``) and a small static model
(``attnwidget/static/static_model.js``, from ``js/src/static_model.js``) that implements anywidget's
``get/set/on/off/save_changes/send`` over precomputed data, so the widget's ``render({model, el})``
runs with no kernel, no server and no network. What is embedded, and at which resolution, is
described in docs/export.md and in a note on the page itself.

Data are embedded as base64 of (zlib-compressed) little-endian buffers inside one JSON blob; the
page inflates them with the browser's ``DecompressionStream``. Every inlined text (bundle sources,
JSON, title, tokens) is escaped so no token string can end a ``<script>`` element or inject markup,
and a Content-Security-Policy allows only the page's own bootstrap script (by hash) and blob: modules.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import pathlib
import zlib
from dataclasses import dataclass, field

import numpy as np

from . import reduce as r
from ._engine import tile_factor
from ._checks import check_choice, check_head, check_layer, check_number
from .errors import ArgumentError, ArgumentTypeError, BundleMissingError

STATIC = pathlib.Path(__file__).parent / "static"
BUNDLES = {"widget": STATIC / "widget.js", "static_model": STATIC / "static_model.js"}
FORMAT = "attnwidget-static"
VERSION = 1

HEATMAP_SIDE = 128  # heatmaps of every layer x head (+ layer mean) are max-pooled to at most this side
FULL_MAX_TOKENS = 1024  # the initial layer is embedded at full resolution up to this many tokens
ROLLOUT_ALL_ROWS = 512  # every rollout row is embedded up to this many tokens (else the default row only)
VIEWS = ("heatmap", "text", "lines", "graph", "rollout")

# Runs in the page (fixed text, no data in it): load both modules from blob: URLs, inflate the data,
# render. Its SHA-256 goes into the Content-Security-Policy, so no other inline script can run.
BOOTSTRAP = """
const byId = (id) => document.getElementById(id);
try {
  const sources = JSON.parse(byId("attnwidget-modules").textContent);
  const load = (text) => import(URL.createObjectURL(new Blob([text], { type: "text/javascript" })));
  const [widget, statics] = await Promise.all([load(sources.widget), load(sources.static_model)]);
  const model = await statics.modelFromPayload(JSON.parse(byId("attnwidget-data").textContent));
  window.attnwidgetModel = model;
  widget.default.render({ model, el: byId("attnwidget-root") });
  document.documentElement.dataset.attnwidget = "ready";
} catch (error) {
  const box = byId("attnwidget-error");
  box.textContent = `attnwidget: this page could not render (${error && error.message ? error.message : error}).`;
  box.hidden = false;
  document.documentElement.dataset.attnwidget = "error";
}
"""

STYLE = """
body { margin: 16px; background: #ffffff; color: #1f1f1f; font: 13px system-ui, -apple-system, "Segoe UI", sans-serif; }
h1 { font-size: 17px; font-weight: 600; margin: 0 0 4px 0; }
.attnwidget-meta { color: #616161; margin: 0 0 12px 0; }
#attnwidget-note { color: #616161; max-width: 980px; margin-top: 14px; line-height: 1.45; }
#attnwidget-error { color: #b71c1c; font-weight: 600; }
"""


def _read_bundles() -> dict[str, str]:
    missing = [str(path) for path in BUNDLES.values() if not path.is_file()]
    if missing:
        raise BundleMissingError(
            f"export_html needs the built JavaScript front end, which is missing: {', '.join(missing)}. "
            "Build it with `make js` (npm --prefix js ci && npm --prefix js run build), or reinstall "
            "the package."
        )
    return {name: path.read_text(encoding="utf-8") for name, path in BUNDLES.items()}


# ----------------------------------------------------------------------------- escaping


def script_json(value) -> str:
    """JSON that is safe inside ``<script type="application/json">``: ``<``, ``>``, ``&`` and the
    JavaScript line separators are \\u-escaped (all of them occur only inside JSON strings), so no
    string can close the element or open a comment; ``JSON.parse`` restores them exactly."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _csp_hash(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode() + "'"


# ----------------------------------------------------------------------------- what is embedded


@dataclass
class _Subject:
    source: object  # attnwidget._engine.Engine
    capture: object
    tokens: list[str]
    layer: int
    head: int | None
    view: str
    threshold: float
    selected: list[int] = field(default_factory=list)
    color_by: np.ndarray | None = None
    color_by_name: str | None = None
    flow: tuple[int, np.ndarray] | None = None
    model_name: str | None = None
    color_scale: str = "linear"
    text_source: str = "attention"


def _subject(obj, layer, head, view, threshold, tokens=None) -> _Subject:
    from .widget import AttentionWidget

    widget = getattr(obj, "widget", None) if not isinstance(obj, AttentionWidget) else obj
    if isinstance(widget, AttentionWidget):
        w = widget
        w.wait()  # every layer's metrics, for color_by
        color = None
        if w.color_by:
            color = np.asarray(w.metric_grid(w.color_by), dtype=np.float32)
        subject = _Subject(source=w._engine, capture=w._capture, tokens=list(w.tokens), layer=w.layer,
                           head=w.head, view=w.view, threshold=float(w.threshold),
                           selected=list(w.selected_tokens), color_by=color, color_by_name=w.color_by,
                           flow=w._flow_row, color_scale=w.color_scale, text_source=w.text_source)
        capture = w._capture
    else:
        if isinstance(obj, (str, bytes, pathlib.PurePath)) or obj is None:
            raise ArgumentTypeError("export_html expects a Capture, an AttentionWidget, an Explorer or a "
                            f"[layer, head, query, key] array; got {type(obj).__name__}")
        try:
            source = r.engine(obj)
        except Exception as error:  # noqa: BLE001 - say what was expected
            raise ArgumentTypeError("export_html expects a Capture, an AttentionWidget, an Explorer or a "
                            f"[layer, head, query, key] array; got {type(obj).__name__} ({error})") from None
        if tokens is not None and (isinstance(tokens, str) or not all(isinstance(t, str) for t in tokens)):
            raise ArgumentTypeError(f"tokens must be a list of strings, one per position; got {type(tokens).__name__}")
        tokens = list(tokens if tokens is not None else getattr(obj, "tokens", None) or [str(i) for i in range(source.n)])
        subject = _Subject(source=source, capture=obj, tokens=tokens, layer=source.num_layers // 2,
                           head=None, view="heatmap", threshold=0.1)
        capture = obj
    subject.model_name = getattr(capture, "model_name", None)
    s = subject.source
    if layer is not None:
        subject.layer = check_layer(layer, s.num_layers)
    if head is not None:
        subject.head = check_head(head, s.num_heads)
    if view is not None:
        subject.view = check_choice(view, VIEWS, "view")
    if threshold is not None:
        subject.threshold = check_number(threshold, "threshold", 0.0, 1.0)
    if len(subject.tokens) != s.n:
        raise ArgumentError(f"got {len(subject.tokens)} tokens for {s.n} positions; they must match")
    return subject


def _quantise(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 of each trailing ``[r, c]`` matrix scaled to its own maximum, and the maxima (float32)."""
    top = values.max(axis=(-2, -1))
    scale = np.where(top > 0, top, 1.0)[..., None, None]
    q = np.round(np.clip(values / scale, 0, 1) * 255).astype(np.uint8)
    return q, top.astype(np.float32)


def _heatmaps(source, side: int, full_layer: int | None):
    """Pooled ``[L, H + 1, s, s]`` (index H = layer mean) and the full ``[H + 1, n, n]`` of one layer.

    The pooled heatmaps come from the pattern engine's fused pass with tiles of ``side`` cells."""
    from ._summary import default_options, summary_for

    n, L, H = source.n, source.num_layers, source.num_heads
    summary = summary_for(source.obj, default_options(source.obj, tile_side=side, tile_dtype="float32"))
    summary.run()
    f = tile_factor(n, side)
    first = summary.layer(0)
    s = first.mean_tile.shape[-1]
    heat = np.zeros((L, H + 1, s, s), dtype=np.float32)
    for layer in range(L):
        result = summary.layer(layer)
        heat[layer, :H] = result.tiles
        heat[layer, H] = result.mean_tile
    full = None
    if full_layer is not None:
        full = np.zeros((H + 1, n, n), dtype=np.float32)
        for r0, r1, block in source.blocks(full_layer):
            full[:H, r0:r1] = block
            full[H, r0:r1] = block.mean(axis=0)
    return heat, full, f


def _rollout(subject: _Subject, max_rows: int) -> tuple[np.ndarray, list[int] | None, str]:
    from .rollout import rollout, rollout_row

    n = subject.source.n
    target = subject.capture
    if n <= max_rows:
        return rollout(target).astype(np.float16), None, "every row"
    result = rollout_row(target)
    return result.values[None].astype(np.float16), [int(result.row)], f"row {result.row} only ({result.reason})"


def _wire(array: np.ndarray, compress: bool) -> dict:
    arr = np.ascontiguousarray(array)
    if arr.dtype.name not in ("float32", "float16", "uint8", "uint16", "uint32", "int32"):
        raise ArgumentTypeError(f"cannot embed dtype {arr.dtype}")
    raw = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
    data = zlib.compress(raw, 6) if compress else raw
    return {"b64": base64.b64encode(data).decode("ascii"), "dtype": arr.dtype.name, "shape": list(arr.shape),
            "compression": "zlib" if compress else None}


def _head_name(head) -> str:
    return "mean of heads" if head is None else f"head {head}"


def build_payload(obj, *, layer=None, head=None, view=None, threshold=None, tokens=None, heatmap_side: int = HEATMAP_SIDE,
                  full_resolution: bool = True, rollout_rows: int = ROLLOUT_ALL_ROWS, graph: bool = True,
                  compress: bool = True) -> tuple[dict, dict[str, np.ndarray]]:
    """The page's JSON payload and the arrays in it (numpy, before encoding). See :func:`export_html`."""
    subject = _subject(obj, layer, head, view, threshold, tokens)
    source = subject.source
    n, L, H = source.n, source.num_layers, source.num_heads
    if not isinstance(heatmap_side, (int, np.integer)) or heatmap_side < 1:
        raise ArgumentError(f"heatmap_side must be a positive int; got {heatmap_side!r}")
    pooled = tile_factor(n, heatmap_side) > 1
    full_layer = subject.layer if (full_resolution and pooled and n <= FULL_MAX_TOKENS) else None
    heat, full, factor = _heatmaps(source, int(heatmap_side), full_layer)
    arrays: dict[str, np.ndarray] = {}
    arrays["heat"], arrays["heat_scale"] = _quantise(heat)
    if full is not None:
        arrays["full"], arrays["full_scale"] = _quantise(full)
    arrays["rollout"], rollout_rows_list, rollout_text = _rollout(subject, rollout_rows)
    if subject.color_by is not None:
        arrays["color_by"] = subject.color_by.astype(np.float32)
    if subject.flow is not None:
        arrays["flow"] = np.asarray(subject.flow[1], dtype=np.float32)
    graph_meta = None
    if graph:
        focus = subject.selected[-1] if subject.selected else (n - 1 if source.is_causal else 0)
        g = r.graph_data(source, subject.layer, subject.head, subject.threshold, focus=focus)
        for key in ("pos", "edges", "weights"):
            wire = g[key]
            arrays[f"graph_{key}"] = np.frombuffer(wire["buffer"], dtype=wire["dtype"]).reshape(wire["shape"])
        graph_meta = {"layer": subject.layer, "head": subject.head, "threshold": subject.threshold}

    s = heat.shape[-1]
    notes = [f"Embedded: {n} tokens, {L} layers x {H} heads{f' of {subject.model_name}' if subject.model_name else ''}."]
    if pooled:
        notes.append(f"Heatmaps of every head and layer mean are max-pooled to {s} x {s} cells "
                     f"({factor} x {factor} tokens each) for sequences over {heatmap_side} tokens")
        if full_layer is not None:
            notes[-1] += f"; layer {full_layer} is also embedded at full resolution ({n} x {n}, zoomable)."
        else:
            notes[-1] += "."
    else:
        notes.append(f"Heatmaps of every head and layer mean at full resolution ({n} x {n}).")
    notes.append("Weights are stored as 8 bits per cell (steps of 1/255 of each matrix's maximum).")
    if not pooled:
        notes.append("Token lines: every layer and head at full resolution.")
    elif full_layer is not None:
        notes.append(f"Token lines: full resolution in layer {full_layer}; elsewhere at block resolution "
                     f"(each line carries the maximum of its {factor} x {factor} block).")
    else:
        notes.append(f"Token lines at block resolution (each line carries the maximum of its {factor} x {factor} block).")
    notes.append(f"Rollout: {rollout_text}, float16"
                 + (f"; attention flow of row {subject.flow[0]}." if subject.flow is not None else "."))
    if graph_meta:
        edges = len(arrays["graph_weights"])
        notes.append(f"Graph: layer {subject.layer}, {_head_name(subject.head)} only, {edges} edge"
                     f"{'' if edges == 1 else 's'} above {subject.threshold:g} (other layers and heads show no "
                     "graph; the slider can only raise the threshold).")
    else:
        notes.append("Graph: not embedded.")
    notes.append("Grid thumbnails are max-pooled from the heatmaps to at most 64 x 64.")
    note = " ".join(notes)

    meta = {"n": n, "heat_factor": int(factor), "full_layer": full_layer,
            "rollout_rows": rollout_rows_list, "graph": graph_meta,
            "flow_row": None if subject.flow is None else int(subject.flow[0]),
            "color_by": subject.color_by_name}
    state = {"tokens": subject.tokens, "num_layers": L, "num_heads": H, "is_causal": bool(source.is_causal),
             "layer": subject.layer, "head": subject.head, "view": subject.view, "threshold": subject.threshold,
             "hovered_token": None, "selected_tokens": subject.selected, "status": "",
             "color_scale": subject.color_scale, "text_source": subject.text_source}
    payload = {"format": FORMAT, "version": VERSION, "state": state, "meta": meta, "note": note,
               "arrays": {name: _wire(value, compress) for name, value in arrays.items()}}
    return payload, arrays


def render_html(payload: dict, *, title: str) -> str:
    """The page around a payload from :func:`build_payload` (inlines both JavaScript modules)."""
    modules = script_json(_read_bundles())
    data = script_json(payload)
    csp = (f"default-src 'none'; script-src {_csp_hash(BOOTSTRAP)} blob:; style-src 'unsafe-inline'; "
           "img-src data: blob:; base-uri 'none'; form-action 'none'")
    state = payload["state"]
    meta_line = (f"{len(state['tokens'])} tokens, {state['num_layers']} layers x {state['num_heads']} heads, "
                 f"{'causal' if state['is_causal'] else 'bidirectional'} attention. Hover a view to see token "
                 "lines and weights; click a grid cell to show that layer and head.")
    return (
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{html.escape(csp)}\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<meta name=\"generator\" content=\"attnwidget export (format {FORMAT} v{VERSION})\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n<p class=\"attnwidget-meta\">{html.escape(meta_line)}</p>\n"
        "<noscript>This page needs JavaScript to draw the attention views.</noscript>\n"
        "<div id=\"attnwidget-error\" hidden></div>\n<div id=\"attnwidget-root\"></div>\n"
        f"<p id=\"attnwidget-note\">{html.escape(payload['note'])}</p>\n"
        f"<script type=\"application/json\" id=\"attnwidget-data\">{data}</script>\n"
        f"<script type=\"application/json\" id=\"attnwidget-modules\">{modules}</script>\n"
        f"<script type=\"module\">{BOOTSTRAP}</script>\n</body>\n</html>\n"
    )


def export_html(obj, path, *, title: str | None = None, layer: int | None = None, head=None,
                view: str | None = None, threshold: float | None = None, tokens=None,
                heatmap_side: int = HEATMAP_SIDE, full_resolution: bool = True,
                rollout_rows: int = ROLLOUT_ALL_ROWS, graph: bool = True, compress: bool = True) -> pathlib.Path:
    """Write one self-contained HTML page showing ``obj`` with the widget's views, offline.

    ``obj``: a :class:`~attnwidget.Capture`, an :class:`~attnwidget.AttentionWidget`, an
    :class:`~attnwidget.Explorer` (its ``.widget``), or attention you already have: a ``[layer, head,
    query, key]`` array or tensor, the ``output_attentions`` tuple, a ``[layer, 1, head, query, key]``
    stack or a TransformerLens ``ActivationCache`` (name the tokens with ``tokens=[...]``). The page
    starts from the widget's current layer, head, view, threshold and selection (a capture: the middle
    layer, mean of heads, heatmap); ``layer``, ``head`` (an int or ``"mean"``), ``view`` and
    ``threshold`` override them.

    Embedded by default (docs/export.md): every layer x head plus the layer means, max-pooled to at
    most ``heatmap_side`` x ``heatmap_side`` cells (8 bits each); the initial layer at full resolution
    when pooled and at most 1024 tokens (``full_resolution``); token lines from those matrices; every
    rollout row for up to ``rollout_rows`` tokens (else the default row); the graph of the initial
    layer and head (``graph=False`` leaves it out). ``compress=False`` stores buffers uncompressed
    (larger; for browsers without ``DecompressionStream``). Returns the path written.
    Raises :class:`BundleMissingError` (a FileNotFoundError) when the JS bundle is not built.
    """
    _read_bundles()  # fail before computing anything
    payload, _ = build_payload(obj, layer=layer, head=head, view=view, threshold=threshold, tokens=tokens,
                               heatmap_side=heatmap_side, full_resolution=full_resolution,
                               rollout_rows=rollout_rows, graph=graph, compress=compress)
    if title is None:
        name = (getattr(obj, "model_name", None)
                or getattr(getattr(getattr(obj, "widget", obj), "_capture", None), "model_name", None))
        title = f"Attention in {name}" if name else "Attention"
    path = pathlib.Path(path)
    path.write_text(render_html(payload, title=str(title)), encoding="utf-8")
    return path
