"""export_html(): one self-contained HTML page that shows a capture with the widget's views, offline.

The page inlines the built front end (``attnwidget/static/widget.js``) and a small static model
(``attnwidget/static/static_model.js``, from ``js/src/static_model.js``) that implements anywidget's
``get/set/on/off/save_changes/send`` over precomputed data, so the widget's ``render({model, el})``
runs with no kernel, no server and no network. What is embedded, and at which resolution, is
described in docs/export.md and in a note on the page itself. An encoder-decoder capture embeds its
three parts (attnwidget._export_parts builds each) and the page's part selector swaps them as the live
widget does; a vision capture embeds its picture for the image view.

Data are embedded as base64 of (zlib-compressed) little-endian buffers inside one JSON blob; the
page inflates them with the browser's ``DecompressionStream``. Every inlined text (bundle sources,
JSON, title, tokens) is escaped so no token string can end a ``<script>`` element or inject markup,
and a Content-Security-Policy allows only the page's own two scripts (by hash) and blob: modules. The
page is one theme: it defines JupyterLab's CSS variables (light, and dark under prefers-color-scheme)
and a Light / Dark / Auto toggle that sets ``data-jp-theme-light`` on the body as JupyterLab does, so
the widget follows it (docs/export.md).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import pathlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union, cast

import numpy as np

from . import reduce as r
from ._checks import check_choice, check_head, check_layer, check_number
from ._export_parts import (  # noqa: F401 (FULL_MAX_TOKENS, HEATMAP_SIDE, IMAGE_FULL_CELLS re-exported)
    FULL_MAX_TOKENS, HEATMAP_SIDE, IMAGE_FULL_CELLS, PART_LABELS, ROLLOUT_ALL_ROWS, Options, PartSubject, image_of,
    part_payload, part_tokens,
)
from ._widget_parts import DEFAULT_PART, NO_CROSS_GRAPH, NO_CROSS_ROLLOUT, NO_IMAGE, PARTS, parts_of
from .errors import ArgumentError, ArgumentTypeError, BundleMissingError

if TYPE_CHECKING:
    from ._types import AttentionSource, Showable, StrPath
    from .explorer import Explorer
    from .widget import AttentionWidget

    #: What export_html writes: anything the widget shows, a widget, or an Explorer (its widget).
    Exportable = Union[Showable, AttentionWidget, Explorer]

STATIC = pathlib.Path(__file__).parent / "static"
BUNDLES = {"widget": STATIC / "widget.js", "static_model": STATIC / "static_model.js"}
FORMAT = "attnwidget-static"
VERSION = 2  # 2: encoder-decoder parts ("parts"), rectangles, the picture; the page also reads 1

VIEWS = ("heatmap", "text", "lines", "graph", "rollout", "image")

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

# Runs in the page before the widget (fixed text; its hash is in the Content-Security-Policy too): the
# theme toggle. "auto" follows prefers-color-scheme; "light"/"dark" are remembered for the page session
# (sessionStorage). It marks <html data-theme> (the CSS below picks the variables) and, as JupyterLab
# does, <body data-jp-theme-light="true|false">, which the widget watches (js/src/theme.js).
THEME_SCRIPT = """
(() => {
  const KEY = "attnwidget-theme", CHOICES = ["auto", "light", "dark"];
  const media = typeof matchMedia === "function" ? matchMedia("(prefers-color-scheme: dark)") : null;
  let choice = "auto";
  try {
    const saved = sessionStorage.getItem(KEY);
    if (CHOICES.includes(saved)) choice = saved;
  } catch (e) { /* no storage: auto */ }
  const apply = () => {
    const dark = choice === "dark" || (choice === "auto" && !!media && media.matches);
    document.documentElement.dataset.theme = choice;
    document.body.dataset.jpThemeLight = dark ? "false" : "true";
    for (const input of document.querySelectorAll('input[name="attnwidget-theme"]')) {
      input.checked = input.value === choice;
    }
  };
  document.addEventListener("change", (event) => {
    const input = event.target;
    if (!input || input.name !== "attnwidget-theme" || !input.checked || !CHOICES.includes(input.value)) return;
    choice = input.value;
    try { sessionStorage.setItem(KEY, choice); } catch (e) { /* no storage: this view only */ }
    apply();
  });
  if (media && media.addEventListener) media.addEventListener("change", apply);
  apply();
})();
"""

# The page's theme: JupyterLab's variable names (what js/src/colors.js reads), light and dark values
# (JupyterLab Light / Dark). No toggle choice (or no script): prefers-color-scheme decides.
_LIGHT = """color-scheme: light;
  --jp-layout-color0: #ffffff; --jp-layout-color1: #ffffff; --jp-layout-color2: #eeeeee;
  --jp-ui-font-color0: rgba(0, 0, 0, 1); --jp-ui-font-color1: rgba(0, 0, 0, 0.87);
  --jp-ui-font-color2: rgba(0, 0, 0, 0.6);
  --jp-border-color1: #bdbdbd; --jp-border-color2: #e0e0e0;
  --jp-brand-color1: #1976d2; --jp-warn-color1: #f57c00; --jp-error-color1: #d32f2f;"""
_DARK = """color-scheme: dark;
  --jp-layout-color0: #111111; --jp-layout-color1: #212121; --jp-layout-color2: #424242;
  --jp-ui-font-color0: rgba(255, 255, 255, 1); --jp-ui-font-color1: rgba(255, 255, 255, 0.87);
  --jp-ui-font-color2: rgba(255, 255, 255, 0.6);
  --jp-border-color1: #616161; --jp-border-color2: #424242;
  --jp-brand-color1: #64b5f6; --jp-warn-color1: #ffa726; --jp-error-color1: #f44336;"""

STYLE = f"""
:root {{
  --jp-ui-font-family: system-ui, -apple-system, "Segoe UI", sans-serif;
  --jp-code-font-family: ui-monospace, "SFMono-Regular", Menlo, monospace;
  {_LIGHT}
}}
@media (prefers-color-scheme: dark) {{ :root:not([data-theme="light"]) {{ {_DARK} }} }}
:root[data-theme="dark"] {{ {_DARK} }}
html {{ background: var(--jp-layout-color0); }}
body {{ margin: 16px; background: var(--jp-layout-color0); color: var(--jp-ui-font-color1);
  font: 13px var(--jp-ui-font-family); }}
.attnwidget-header {{ display: flex; flex-wrap: wrap; align-items: baseline; justify-content: space-between;
  gap: 4px 16px; }}
h1 {{ font-size: 17px; font-weight: 600; margin: 0 0 4px 0; color: var(--jp-ui-font-color0); }}
.attnwidget-meta {{ color: var(--jp-ui-font-color2); margin: 0 0 12px 0; }}
#attnwidget-theme {{ display: inline-flex; align-items: center; gap: 2px; margin: 0; padding: 2px 4px;
  border: 1px solid var(--jp-border-color1); border-radius: 4px; color: var(--jp-ui-font-color1); }}
#attnwidget-theme legend {{ float: left; padding: 0 6px 0 2px; color: var(--jp-ui-font-color1); }}
#attnwidget-theme label {{ display: inline-flex; align-items: center; gap: 3px; padding: 1px 6px; border-radius: 3px;
  cursor: pointer; color: var(--jp-ui-font-color1); }}
#attnwidget-theme input {{ margin: 0; accent-color: var(--jp-brand-color1); }}
#attnwidget-theme label:has(input:checked) {{ background: var(--jp-layout-color2); }}
#attnwidget-theme label:has(input:focus-visible) {{ outline: 2px solid var(--jp-brand-color1); outline-offset: 1px; }}
#attnwidget-note {{ color: var(--jp-ui-font-color2); max-width: 980px; margin-top: 14px; line-height: 1.45; }}
#attnwidget-error {{ color: var(--jp-error-color1); font-weight: 600; }}
"""

THEME_TOGGLE = (
    "<fieldset id=\"attnwidget-theme\" class=\"attnwidget-theme\"><legend>Theme</legend>"
    + "".join(f"<label><input type=\"radio\" name=\"attnwidget-theme\" value=\"{value}\"{checked}> {label}</label>"
              for value, label, checked in (("light", "Light", ""), ("dark", "Dark", ""), ("auto", "Auto", " checked")))
    + "</fieldset>"
)


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


def script_json(value: object) -> str:
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
    parts: list[PartSubject]  # a plain capture: one, named ""; an encoder-decoder: encoder, decoder, cross
    part: str  # the part the page opens on
    view: str
    color_scale: str = "linear"
    text_source: str = "attention"
    model_name: str | None = None
    figure_name: str | None = None  # a widget's model_name trait as its figures' titles show it

    @property
    def opening(self) -> PartSubject:
        return next(p for p in self.parts if p.name == self.part)


EXPECTED = ("export_html expects a Capture, an AttentionWidget, an Explorer, a Seq2SeqCapture, an "
            "encoder-decoder's output with attentions or a [layer, head, query, key] array")


def _check_tokens(tokens: Sequence[str] | None, name: str) -> None:
    if tokens is not None and (isinstance(tokens, str) or not all(isinstance(t, str) for t in tokens)):
        raise ArgumentTypeError(f"{name} must be a list of strings, one per position; got {type(tokens).__name__}")


def _open(capture: AttentionSource, name: str, tokens: Sequence[str] | None = None, source: r.Engine | None = None,
          **fields: Any) -> PartSubject:
    """A :class:`PartSubject` over ``capture`` (the selection fields are filled in by the caller)."""
    source = r.engine(capture) if source is None else source
    cross = name == "cross" or bool(source.is_cross)
    tokens, keys = part_tokens(capture, source, cross, tokens)
    return PartSubject(name=name, capture=capture, source=source, tokens=tokens, key_tokens=keys, is_cross=cross,
                       image=None if cross else image_of(capture), **{"layer": 0, "head": None, "threshold": 0.1,
                                                                       **fields})


def page_side(widget: AttentionWidget, name: str) -> Any:
    """A live widget's trait ``name`` as its exported page has it: the views that need the kernel
    (:data:`attnwidget._widget_parts.KERNEL_VIEWS`: query-key and routes) are the live widget's only."""
    from ._widget_parts import KERNEL_VIEWS

    value = getattr(widget, name)
    return [v for v in value if v not in KERNEL_VIEWS] if name == "views" else value


def _widget_subject(w: AttentionWidget, part: str | None) -> _Subject:
    """The parts of a widget: the part it shows with its selection, flow and tokens; the others as a
    part switch would show them (layer clamped, a head the part lacks becomes the mean, no selection)."""
    w.wait()  # every layer passed over: the widget's state is final
    shown = w._states[w._state.name]  # the part's attention: a page shows weights (measure="contribution" is live only)
    parts = []
    for name in (w._parts or {"": None}):
        state = w._states.get(name)
        capture = shown.capture if name == shown.name else (w._parts or {})[name]
        tokens = state.tokens if state is not None else None
        if name == shown.name:
            subject = _open(capture, name, tokens, layer=w.layer, head=w.head, threshold=float(w.threshold),
                            selected=list(w.selected_tokens), flow=w._flow_row, color_by=w.color_by)
            subject.image = image_of(capture) if shown.has_image else None
            subject.tokens, subject.key_tokens = list(w.tokens), list(w.key_tokens)  # as the page shows them
        else:  # as a switch from the widget's selection would show it
            subject = _open(capture, name, tokens, threshold=float(w.threshold), color_by=w.color_by)
            subject.layer = min(w.layer, subject.source.num_layers - 1)
            subject.head = w.head if w.head is None or w.head < subject.source.num_heads else None
        subject.rollout_options = (str(getattr(w, "rollout_fusion", "mean")), float(getattr(w, "discard_ratio", 0.0)))
        parts.append(subject)
    first = shown.name if part is None else part
    return _Subject(parts=parts, part=first, view=w.view, color_scale=w.color_scale, text_source=w.text_source,
                    model_name=getattr(shown.capture, "model_name", None), figure_name=getattr(w, "model_name", None))


def _capture_subject(obj: Showable, part: str | None, tokens: Sequence[str] | None,
                     key_tokens: Sequence[str] | None) -> _Subject:
    from ._from_attentions import as_source, is_seq2seq_output

    if isinstance(obj, (str, bytes, pathlib.PurePath)) or obj is None:
        raise ArgumentTypeError(f"{EXPECTED}; got {type(obj).__name__}")
    _check_tokens(tokens, "tokens")
    _check_tokens(key_tokens, "key_tokens")
    if key_tokens is not None and (parts_of(obj) is not None or hasattr(obj, "_records")):
        raise ArgumentError("key_tokens= names the source (key) tokens of attention arrays or a model output; "
                            "a Capture already has its own: leave key_tokens out.")
    if is_seq2seq_output(obj) or key_tokens is not None:
        try:
            obj = as_source(obj, tokens, key_tokens)
        except (ArgumentError, ArgumentTypeError):
            raise  # already says what is wrong (a missing part, tokens that do not match)
        except Exception as error:  # noqa: BLE001 - say what was expected
            raise ArgumentTypeError(f"{EXPECTED}; got {type(obj).__name__} ({error})") from None
        tokens = None  # named the new capture's positions
    parts = parts_of(obj)
    if parts is not None:
        if tokens is not None:
            raise ArgumentError("tokens= relabels a plain capture; an encoder-decoder capture takes its parts' "
                                "tokens (source and target): leave tokens out.")
        first = DEFAULT_PART if part is None else check_choice(part, PARTS, "part")
        subjects = [_open(parts[name], name) for name in PARTS]
    else:
        if part not in (None, ""):
            raise ArgumentError(f"part={part!r} is for an encoder-decoder capture (Seq2SeqCapture); this capture "
                                "has one part: leave part out.")
        single = cast("AttentionSource", obj)  # parts_of found no parts: not an encoder-decoder capture
        try:
            source = r.engine(single)
        except Exception as error:  # noqa: BLE001 - say what was expected
            raise ArgumentTypeError(f"{EXPECTED}; got {type(obj).__name__} ({error})") from None
        subjects = [_open(single, "", tokens, source)]
        first = ""
    opening = next(p for p in subjects if p.name == first)
    for subject in subjects:
        subject.layer = opening.source.num_layers // 2
    return _Subject(parts=subjects, part=first, view="image" if opening.image is not None else "heatmap",
                    model_name=getattr(obj, "model_name", None))


def _check_view(view: object, part: PartSubject) -> str:
    if part.is_cross and view == "rollout":
        raise ArgumentError(NO_CROSS_ROLLOUT)
    if part.is_cross and view == "graph":
        raise ArgumentError(NO_CROSS_GRAPH)
    if view == "image" and part.image is None:
        raise ArgumentError(NO_IMAGE)
    return check_choice(view, part.views, "view")


def _subject(obj: Exportable, part: str | None, layer: int | None, head: int | str | None, view: str | None,
             threshold: float | None, tokens: Sequence[str] | None = None,
             key_tokens: Sequence[str] | None = None) -> _Subject:
    from .widget import AttentionWidget

    widget = obj if isinstance(obj, AttentionWidget) else getattr(obj, "widget", None)
    if isinstance(widget, AttentionWidget):
        if tokens is not None or key_tokens is not None:
            raise ArgumentError("tokens= and key_tokens= name the positions of a capture or of attention arrays; "
                                "a widget shows its own tokens (set widget.tokens).")
        subject = _widget_subject(widget, None if part is None else widget._check_part(part))
    else:
        subject = _capture_subject(obj, part, tokens, key_tokens)
    opening = subject.opening
    s = opening.source
    if layer is not None:
        opening.layer = check_layer(layer, s.num_layers)
    if head is not None:
        opening.head = check_head(head, s.num_heads)
    if threshold is not None:
        opening.threshold = check_number(threshold, "threshold", 0.0, 1.0)
    if view is not None:
        subject.view = _check_view(view, opening)
    elif subject.view not in opening.views:  # a widget's view the part opened instead does not offer
        subject.view = "heatmap"
    if opening.is_cross and subject.text_source != "attention":
        subject.text_source = "attention"
    if len(opening.tokens) != s.n:
        raise ArgumentError(f"got {len(opening.tokens)} tokens for {s.n} positions; they must match")
    for other in subject.parts:  # where a part switch lands (attnwidget._widget_parts.Parts._show)
        if other is not opening:
            other.layer = min(opening.layer, other.source.num_layers - 1)
            other.head = opening.head if opening.head is None or opening.head < other.source.num_heads else None
            other.threshold = opening.threshold
            other.selected = []  # a switch clears the selection (a widget's flow row stays with its part)
    return subject


def _title_name(subject: _Subject) -> str | None:
    name = subject.model_name
    return None if not name or name == "attentions" else str(name)


def build_payload(obj: Exportable, *, part: str | None = None, layer: int | None = None,
                  head: int | str | None = None, view: str | None = None, threshold: float | None = None,
                  tokens: Sequence[str] | None = None, key_tokens: Sequence[str] | None = None,
                  heatmap_side: int | None = None, full_resolution: bool = True,
                  rollout_rows: int = ROLLOUT_ALL_ROWS, graph: bool = True,
                  compress: bool = True) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The page's JSON payload and the arrays in it (numpy, before encoding). See :func:`export_html`.

    A plain capture's arrays are the payload's ``arrays`` (and named as they are); an encoder-decoder's
    are in ``payload["parts"][part]["arrays"]``, returned here as ``"part/name"``."""
    payload, arrays, _ = _build(obj, part=part, layer=layer, head=head, view=view, threshold=threshold,
                                tokens=tokens, key_tokens=key_tokens, heatmap_side=heatmap_side,
                                full_resolution=full_resolution, rollout_rows=rollout_rows, graph=graph,
                                compress=compress)
    return payload, arrays


def _build(obj: Exportable, *, part: str | None, layer: int | None, head: int | str | None, view: str | None,
           threshold: float | None, tokens: Sequence[str] | None, key_tokens: Sequence[str] | None,
           heatmap_side: int | None, full_resolution: bool, rollout_rows: int, graph: bool,
           compress: bool) -> tuple[dict[str, Any], dict[str, np.ndarray], _Subject]:
    if heatmap_side is not None and (not isinstance(heatmap_side, (int, np.integer)) or isinstance(heatmap_side, bool)
                                     or heatmap_side < 1):
        raise ArgumentError(f"heatmap_side must be a positive int; got {heatmap_side!r}")
    subject = _subject(obj, part, layer, head, view, threshold, tokens, key_tokens)
    opts = Options(heatmap_side=heatmap_side, full_resolution=full_resolution, rollout_rows=rollout_rows,
                   graph=graph, compress=compress)
    opening = subject.opening
    name = _title_name(subject)
    of = f" of {name}" if name else ""
    entries: dict[str, dict[str, Any]] = {}
    arrays: dict[str, np.ndarray] = {}
    notes: list[str] = []
    plain = len(subject.parts) == 1
    if not plain:
        enc, dec = subject.parts[0].source, subject.parts[1].source
        notes.append(f"Embedded: an encoder-decoder capture{of} ({enc.n} source tokens, {dec.n} target tokens), "
                     "each part as below; the part selector switches between them as in the live widget.")
    for p in subject.parts:
        entry, part_arrays, part_notes = part_payload(p, opts)
        entries[p.name] = entry
        if plain:
            arrays = part_arrays
            notes.append(f"Embedded: {part_notes[0]}{of}.")
        else:
            arrays.update({f"{p.name}/{k}": v for k, v in part_arrays.items()})
            notes.append(f"{PART_LABELS[p.name]}: {part_notes[0]}.")
        notes.extend(part_notes[1:])
    notes.append("Weights are stored as 8 bits per cell (steps of 1/255 of each matrix's maximum). Grid "
                 "thumbnails are max-pooled from the heatmaps to at most 64 x 64.")

    state = {**opening.traits(), "part": subject.part, "parts": [] if plain else [p.name for p in subject.parts],
             "layer": opening.layer, "head": opening.head, "view": subject.view, "threshold": opening.threshold,
             "hovered_token": None, "selected_tokens": list(opening.selected), "status": "",
             "color_scale": subject.color_scale, "text_source": subject.text_source,
             # the figures' titles, as the widget's synced model_name trait (a capture: its model, if named)
             "model_name": subject.figure_name if subject.figure_name is not None else name or ""}
    payload: dict[str, Any] = {"format": FORMAT, "version": VERSION, "state": state, "note": " ".join(notes)}
    if plain:
        payload.update(meta=entries[""]["meta"], arrays=entries[""]["arrays"])
    else:
        payload["parts"] = entries
    return payload, arrays, subject


def _meta_line(payload: dict[str, Any]) -> str:
    hint = "Hover a view to see token lines and weights; click a grid cell to show that layer and head."
    parts = payload.get("parts")
    if parts:
        enc, dec = parts["encoder"]["state"], parts["decoder"]["state"]
        return (f"Encoder-decoder: {len(enc['tokens'])} source tokens, {len(dec['tokens'])} target tokens; "
                f"encoder {enc['num_layers']} layers x {enc['num_heads']} heads, decoder {dec['num_layers']} x "
                f"{dec['num_heads']}. Choose encoder, decoder or cross-attention above the views. {hint}")
    state = payload["state"]
    size = f"{state['num_layers']} layers x {state['num_heads']} heads"
    if state.get("is_cross"):
        line = (f"{len(state['tokens'])} target tokens over {len(state['key_tokens'])} source tokens, {size}, "
                f"cross-attention. {hint}")
    else:
        line = (f"{len(state['tokens'])} tokens, {size}, {'causal' if state['is_causal'] else 'bidirectional'} "
                f"attention. {hint}")
    if payload.get("meta", {}).get("image"):
        line += " In the image view, hover a patch of the picture to see its attention over the others."
    return line


def render_html(payload: dict[str, Any], *, title: str) -> str:
    """The page around a payload from :func:`build_payload` (inlines both JavaScript modules)."""
    modules = script_json(_read_bundles())
    data = script_json(payload)
    csp = (f"default-src 'none'; script-src {_csp_hash(THEME_SCRIPT)} {_csp_hash(BOOTSTRAP)} blob:; "
           "style-src 'unsafe-inline'; "
           "img-src data: blob:; base-uri 'none'; form-action 'none'")
    meta_line = _meta_line(payload)
    return (
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{html.escape(csp)}\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<meta name=\"generator\" content=\"attnwidget export (format {FORMAT} v{VERSION})\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<header class=\"attnwidget-header\"><h1>{html.escape(title)}</h1>\n{THEME_TOGGLE}</header>\n"
        f"<script>{THEME_SCRIPT}</script>\n"
        f"<p class=\"attnwidget-meta\">{html.escape(meta_line)}</p>\n"
        "<noscript>This page needs JavaScript to draw the attention views.</noscript>\n"
        "<div id=\"attnwidget-error\" hidden></div>\n<div id=\"attnwidget-root\"></div>\n"
        f"<p id=\"attnwidget-note\">{html.escape(payload['note'])}</p>\n"
        f"<script type=\"application/json\" id=\"attnwidget-data\">{data}</script>\n"
        f"<script type=\"application/json\" id=\"attnwidget-modules\">{modules}</script>\n"
        f"<script type=\"module\">{BOOTSTRAP}</script>\n</body>\n</html>\n"
    )


def export_html(obj: Exportable, path: StrPath, *, title: str | None = None, part: str | None = None,
                layer: int | None = None, head: int | str | None = None, view: str | None = None,
                threshold: float | None = None, tokens: Sequence[str] | None = None,
                key_tokens: Sequence[str] | None = None, heatmap_side: int | None = None, full_resolution: bool = True,
                rollout_rows: int = ROLLOUT_ALL_ROWS, graph: bool = True, compress: bool = True) -> pathlib.Path:
    """Write one self-contained HTML page showing ``obj`` with the widget's views, offline.

    ``obj``: a :class:`~attnwidget.Capture` (a vision capture adds the image view), a
    :class:`~attnwidget.seq2seq.Seq2SeqCapture` (the page has the part selector: encoder, decoder,
    cross-attention), an :class:`~attnwidget.AttentionWidget`, an :class:`~attnwidget.Explorer` (its
    ``.widget``), or attention you already have: a ``[layer, head, query, key]`` array or tensor, the
    ``output_attentions`` tuple, a ``[layer, 1, head, query, key]`` stack, a TransformerLens
    ``ActivationCache`` (name the tokens with ``tokens=[...]``; a rectangle's key tokens with
    ``key_tokens=[...]``), or an encoder-decoder's output with its attentions (``tokens``: the target's,
    ``key_tokens``: the source's). The page starts from the widget's current part, layer, head, view,
    threshold and selection (a capture: cross-attention for an encoder-decoder, the middle layer, mean
    of heads, the image view for a vision capture, else the heatmap); ``part``, ``layer``, ``head`` (an
    int or ``"mean"``), ``view`` and ``threshold`` override them.

    Embedded by default (docs/export.md), for each part: every layer x head plus the layer means,
    max-pooled to at most ``heatmap_side`` x ``heatmap_side`` cells (default 128; a vision capture's
    whole sequence when every matrix fits 16 M cells, so its image view is exact), 8 bits each; the
    initial layer at full resolution when pooled and at most 1024 tokens (``full_resolution``); token
    lines from those matrices; every rollout row for up to ``rollout_rows`` tokens (else the default
    row; none for cross-attention); the graph of the initial layer and head (``graph=False`` leaves it
    out; none for cross-attention); a vision capture's picture. ``compress=False`` stores buffers
    uncompressed (larger; for browsers without ``DecompressionStream``). Returns the path written.
    Raises :class:`BundleMissingError` (a FileNotFoundError) when the JS bundle is not built.
    """
    _read_bundles()  # fail before computing anything
    payload, _, subject = _build(obj, part=part, layer=layer, head=head, view=view, threshold=threshold,
                                 tokens=tokens, key_tokens=key_tokens, heatmap_side=heatmap_side,
                                 full_resolution=full_resolution, rollout_rows=rollout_rows, graph=graph,
                                 compress=compress)
    if title is None:
        name = _title_name(subject)
        title = f"Attention in {name}" if name else "Attention"
    path = pathlib.Path(path)
    path.write_text(render_html(payload, title=str(title)), encoding="utf-8")
    return path
