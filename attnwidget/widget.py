"""The AttentionWidget: traits synced with the browser, observers that push only what a view needs.

Opening is progressive: the constructor computes the selected layer (one fused pass over it) and
returns; the other layers are passed over on a background thread, and the grid, the progress line
and the explorer's panels fill in as each layer finishes. A selection never waits for that pass:
an unfinished layer is computed on the spot. Slow answers (rollout rows of long inputs) run on a
worker thread, so hovers and clicks keep being answered.
"""

from __future__ import annotations

import concurrent.futures
import pathlib
import threading
from typing import TYPE_CHECKING, Any

import anywidget
import numpy as np
import traitlets as t

from ._checks import check_choice, check_head, check_index, check_indices, check_layer, check_number
from ._widget_figures import Figures
from ._widget_image import ImageView
from ._widget_measures import MEASURES, Measures  # noqa: F401 (re-exported)
from ._widget_messages import PageMessages
from ._widget_parts import NO_CROSS_ROLLOUT, Parts
from ._widget_pass import START_AFTER_SECONDS, BackgroundPass  # noqa: F401 (re-exported)
from ._widget_querykey import QueryKeyView
from ._widget_rollout import ROLLOUT_FUSIONS, ROLLOUT_MATRIX_TOKENS, RolloutRows, rollout_label  # noqa: F401
from ._widget_routes import ROUTES_NOW_TOKENS, RoutesView  # noqa: F401 (re-exported; tests lower it)
from ._widget_views import ViewPushes
from ._from_attentions import widget_source
from .errors import ArgumentError
from .rollout import _check_discard

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._types import Progress, Showable
STATIC = pathlib.Path(__file__).parent / "static"
VIEWS = ("heatmap", "text", "lines", "graph", "rollout", "query-key", "routes", "image")
COLOR_SCALES = ("linear", "log", "no_sink")
TEXT_SOURCES = ("attention", "rollout", "flow")


class _Checked(t.Any):
    """A trait typed by its ``@validate`` method alone (see attnwidget._checks), None included:
    ``t.Any`` lets None through unvalidated, and its ``allow_none=False`` is ignored."""

    allow_none = False


def _bundle() -> pathlib.Path:
    path = STATIC / "widget.js"
    if not path.is_file():
        raise FileNotFoundError(
            f"the widget's JavaScript bundle is missing ({path}). Build it with `make js` "
            "(npm --prefix js ci && npm --prefix js run build), or reinstall the package."
        )
    return path


class AttentionWidget(PageMessages, BackgroundPass, Parts, Measures, ViewPushes, ImageView, RolloutRows, QueryKeyView,
                      RoutesView, Figures, anywidget.AnyWidget):
    """Linked views of one capture: layer x head grid, heatmap, text, token lines, graph, rollout strip
    (and the picture, for a vision capture; one part at a time, for an encoder-decoder capture); one
    score taken apart (query-key) and the information-flow routes where the capture recorded them.

    Hovering or clicking in the page sets the selection traits below, which Python can read and
    set (setting them updates the page). Data traits hold reduced arrays as bytes; they are
    recomputed by observers when the selection changes.

    ``capture``: a :class:`~attnwidget.Capture` or :class:`~attnwidget.Seq2SeqCapture`; attention as
    transformers returns it (an ``output_attentions`` tuple, a ``[layer, head, query, key]`` array or
    tensor); or an encoder-decoder model's output (``Seq2SeqLMOutput`` and kin, run with
    ``output_attentions=True``), shown part by part like a Seq2SeqCapture. ``tokens``: the query
    tokens' strings (for a model output, the target's). ``key_tokens``: the key tokens' strings of
    cross-attention (for a model output, the source's); with a rectangular array or tuple it makes a
    cross-attention capture (``Capture.from_attentions(attn, tokens, key_tokens)``).

    Rollout options (``rollout_fusion``, ``discard_ratio``) apply wherever rollout shows; for the
    usual ViT recipe open a vision capture with ``AttentionWidget(capture, rollout_fusion="max",
    discard_ratio=0.9)``.

    ``measure="contribution"`` (a capture with ``values=True``) shows value-weighted contributions
    instead of weights in every view that shows weights (see ``measure``).
    """

    _esm = _bundle() if (STATIC / "widget.js").is_file() else "export default {render({el}) {el.textContent = 'attnwidget: JS bundle missing, run make js';}}"

    # -- what the page shows about the capture -------------------------------------------------
    tokens = t.List(t.Unicode(), help="Readable token strings, one per position.").tag(sync=True)
    """list[str]: readable token strings, one per query position (the page renders them as text only)."""
    key_tokens = t.List(t.Unicode()).tag(sync=True)
    """list[str]: the key positions' strings: ``tokens`` for self-attention; for cross-attention the
    source (encoder) tokens, while ``tokens`` are the target (decoder) ones."""
    num_layers = t.Int(0).tag(sync=True)
    """int: number of attention layers."""
    num_heads = t.Int(0).tag(sync=True)
    """int: number of heads per layer."""
    is_causal = t.Bool(True).tag(sync=True)
    """bool: causal attention (the heatmap masks the upper triangle)."""
    is_cross = t.Bool(False).tag(sync=True)
    """bool: cross-attention: queries (``tokens``, the target) and keys (``key_tokens``, the source)
    are two sequences; the heatmap is a rectangle, and there is no rollout and no graph view."""
    parts = t.List(t.Unicode(), read_only=True).tag(sync=True)
    """list[str]: the parts of an encoder-decoder capture, ``["encoder", "decoder", "cross"]``; ``[]``
    for a plain capture (the page then shows no part selector)."""
    views = t.List(t.Unicode(), read_only=True).tag(sync=True)
    """list[str]: the views the part shown offers, in toolbar order: cross-attention has no 'graph'
    (its bipartite picture is 'lines') and no 'rollout'; 'query-key' where the part recorded its queries
    and keys (not weights-only captures or arrays); 'routes' for self-attention recorded with values;
    'image' only for a capture with a picture."""
    measures = t.List(t.Unicode(), read_only=True).tag(sync=True)
    """list[str]: the measures the part shown offers: ``["attention"]``, plus 'contribution' when it was
    captured with ``values=True`` (the page shows the measure selector only when there is a choice)."""
    image = t.Dict().tag(sync=True)
    """dict: a vision capture's picture, sent once: ``{"picture": uint8 [H, W, 3] bytes, "grid": [rows,
    cols], "patch_start": int}`` ({} without one)."""

    # -- selection: set by the page, readable and settable from Python --------------------------
    # Typed by their validators (attnwidget._checks), not by traitlets, so that a refused value raises
    # the same error as everywhere else in attnwidget and never sticks.
    part = _Checked("").tag(sync=True)
    """str: the part shown of an encoder-decoder capture: 'encoder', 'decoder' or 'cross' (the default:
    decoder queries over encoder keys); "" for a plain capture. Switching resets the selection."""
    layer = _Checked(0).tag(sync=True)
    """int: selected layer (default: the middle layer)."""
    head = t.Any(None).tag(sync=True)
    """int | None: selected head; None shows the mean over the layer's heads."""
    view = _Checked("heatmap").tag(sync=True)
    """str: the view beside the grid, one of ``views``: 'heatmap', 'text', 'lines', 'graph', 'rollout'
    or 'image' (default: 'image' for a capture with a picture, else 'heatmap')."""
    hovered_token = t.Any(None).tag(sync=True)
    """int | None: token under the pointer in any view (heatmap: the query row; image: the patch)."""
    selected_tokens = _Checked().tag(sync=True)
    """list[int]: tokens clicked in any view (sorted)."""
    heatmap_kind = _Checked("attention").tag(sync=True)
    """str: the heatmap shows the selected layer's 'attention' (head or mean) or the 'rollout' over
    all layers (up to ROLLOUT_MATRIX_TOKENS tokens; not for cross-attention)."""
    color_scale = _Checked("linear").tag(sync=True)
    """str: how weights map to colour in the heatmap, the text and image views and the rollout strip:
    'linear' (0..max), 'log' (four decades below the max) or 'no_sink' (linear, scaled without the
    first token, which draws off the scale): long prompts put most weight on token 0."""
    text_source = _Checked("attention").tag(sync=True)
    """str: what colours the text and image views: the 'attention' row of the focused token (selected
    layer and head, or the mean), its 'rollout' row, or its attention 'flow' (after compute_flow)."""
    threshold = _Checked(0.1).tag(sync=True)
    """float: the attention graph keeps edges with weight above this."""
    measure = _Checked("attention").tag(sync=True)
    """str: what the grid, heatmap (attention and rollout), lines, text, image and graph views and the
    rollout strip show: 'attention' weights, or 'contribution', the norm of what each key adds to each
    query's output (Kobayashi et al. 2020: ``||alpha f_h(x_j)||`` for a head, ``||sum_h alpha f_h(x_j)||``
    for the layer, in the head-mean slot), each row normalised to sum to 1 so that scales, thresholds and
    rollout apply as to weights (raw norms: ``capture.contributions``). Offered when the part shown was
    captured with ``values=True`` (see ``measures``). Switching keeps the layer, head, view and tokens;
    for an encoder-decoder capture it applies to each part that offers it."""
    query_key_cell = _Checked(None).tag(sync=True)
    """[int, int] | None: the cell ``[query, key]`` the query-key view takes apart (a click on a heatmap
    cell sets it); None: the focused token and its highest-weight key in the selected head."""
    routes_target = _Checked(0).tag(sync=True)
    """int: the token whose routes the routes view draws (default: the last token of a causal capture,
    else 0); a click on a token label in the routes view sets it."""
    routes_threshold = _Checked(0.04).tag(sync=True)
    """float in [0, 1): the routes view keeps the edges whose importance is at least this."""
    rollout_fusion = _Checked("mean").tag(sync=True)
    """str: how rollout fuses each layer's heads, in everything that shows rollout (the rollout view,
    the rollout heatmap, the text and image views with ``text_source="rollout"``): 'mean' (the default,
    Abnar & Zuidema), 'max' or 'min' (``attnwidget.rollout``'s ``head_fusion``). Vision captures open
    with 'mean' too; the usual ViT recipe is ``rollout_fusion="max", discard_ratio=0.9``. With 'mean'
    and nothing discarded, rows of long inputs reuse the head means the background pass kept; other
    options read every head again (on the worker thread for long inputs). Not for cross-attention,
    which has no rollout: changing it while the cross part is shown is refused."""
    discard_ratio = _Checked(0.0).tag(sync=True)
    """float in [0, 1): the fraction of each layer's lowest fused weights set to 0 before rollout mixes
    the layers (never the first token's weight on itself), as the ViT rollout recipe does (e.g. 0.9
    with ``rollout_fusion="max"``); 0 (the default) keeps every weight. ``attnwidget.rollout``'s
    ``discard_ratio``; shown wherever rollout is, like ``rollout_fusion``."""
    color_by = t.Any(None).tag(sync=False)
    """str | None: colour grid cells by a metric (see attnwidget.metrics.METRICS) or head role."""
    status = t.Unicode("").tag(sync=True)
    """str: one line of status text under the views."""
    error = t.Unicode("").tag(sync=True)
    """str: the last request from the page that failed, shown in red in the status line (and logged
    to the ``attnwidget`` logger); "" when the last request succeeded."""
    progress = t.Unicode("").tag(sync=True)
    """str: the background pass, e.g. "layers 12/30, 18 s left" ("" once every layer is done)."""
    layers_done = t.Int(0).tag(sync=True)
    """int: how many layers of the part shown the background pass has finished (the explorer's
    panels follow it)."""

    # -- reduced data (bytes), written by observers --------------------------------------------
    grid_data = t.Dict().tag(sync=True)
    heatmap_data = t.Dict().tag(sync=True)
    text_data = t.Dict().tag(sync=True)
    lines_data = t.Dict().tag(sync=True)
    graph_data = t.Dict().tag(sync=True)
    rollout_data = t.Dict().tag(sync=True)
    image_data = t.Dict().tag(sync=True)
    """dict: the image view's row for the focused token: ``{"token", "values": float32 [rows, cols]
    bytes (the patch tokens), "others": float32 [k] bytes (the tokens before the patches, [CLS] and
    registers, then any after them), "source", "note"}``; no values while the source has no row."""
    query_key_data = t.Dict().tag(sync=True)
    """dict: the query-key view's cell: ``{"q", "k", "products": float32 [head_dim] bytes, "dot" (sum of
    the products), "scaling", "bias", "softcap", "score", "masked", "weight", "layer", "head",
    "key_head", "query", "key", "query_token", "key_token", "note"}`` (see ``query_key()``)."""
    routes_data = t.Dict().tag(sync=True)
    """dict: the routes view's graph as node and edge arrays (bytes) and a legend
    (attnwidget._widget_routes.routes_wire); ``{}`` while another view shows or the routes are computed."""

    def __init__(self, capture: Showable, *, part: str | None = None, layer: int | None = None,
                 head: int | None = None, view: str | None = None, threshold: float = 0.1,
                 tokens: Sequence[str] | None = None, key_tokens: Sequence[str] | None = None,
                 color_by: str | None = None, measure: str = "attention", background: bool = True,
                 progress: Progress = None, **kwargs: Any) -> None:
        self._lines_direction = "from"
        self._flow_row: tuple[int, np.ndarray] | None = None
        self._png_requests: dict = {}  # request id -> _widget_figures.FigureSave
        self._png_counter = 0
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._go = threading.Event()
        self._thread: threading.Thread | None = None
        self._threads: list[threading.Thread] = []
        self._pass_generation = 0
        self._background = bool(background)
        self._quiet = False  # a part switch sets many traits: their observers wait for it
        self._jobs = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="attnwidget")
        self._pending_row: tuple | None = None  # ((fusion, discard), row) being computed on the worker
        capture, tokens, key_tokens = widget_source(capture, tokens, key_tokens)
        state = self._open_parts(capture, part, tokens, key_tokens)
        if self._check_measure(measure) != "attention":
            state = self._measure_state(state.name, measure)
            self._use(state)
        engine = state.engine
        if layer is None:
            layer = engine.num_layers // 2
        layer = self._check_layer(layer)
        if view is None:
            view = "image" if state.has_image else "heatmap"
        kwargs.setdefault("routes_target", self._natural_row())
        self._checked({"head": head, "view": view, "threshold": threshold, "tokens": state.tokens,
                       "color_by": color_by, **kwargs})
        self._summary.layer(layer)  # first paint needs only this layer
        self._quiet = True  # the constructor pushes once, below
        super().__init__(tokens=state.tokens, key_tokens=state.key_tokens, num_layers=engine.num_layers,
                         num_heads=engine.num_heads, is_causal=engine.is_causal, is_cross=state.is_cross,
                         part=state.name, layer=layer, measure=state.measure,
                         head=self._check_head(head), view=view, threshold=threshold, color_by=color_by,
                         layers_done=len(self._summary.done), **kwargs)
        self._quiet = False
        self.set_trait("parts", list(self._parts or ()))
        self.set_trait("views", list(state.views))
        self.set_trait("measures", list(state.measures))
        self.image = self._image_trait()
        self.grid_data = self._grid()
        self._push_selection()
        self._push_view()
        self.on_msg(self._on_message)
        self._start_pass(background, progress)

    @property
    def capture(self) -> Showable:
        """The Capture (or array, or Seq2SeqCapture) this widget shows; see also ``part_capture``."""
        return self._source

    def __repr__(self) -> str:
        part = f"part={self.part!r}, " if self.part else ""
        measure = f", measure={self.measure!r}" if self.measure != "attention" else ""
        return (f"AttentionWidget({len(self.tokens)} tokens, {self.num_layers} layers x {self.num_heads} "
                f"heads, {part}layer={self.layer}, head={self.head}, view={self.view!r}{measure})")

    @t.default("selected_tokens")
    def _no_selection(self) -> list[int]:
        return []

    # -- validation: in @validate, so a refused value never sticks --------------------------------
    def _checked(self, values: dict[str, Any]) -> None:
        """Run the validators on values about to be set together (the constructor's, the page's):
        traitlets defers validation inside ``hold_trait_notifications`` and rolls back only its own
        TraitError, so a value is checked here first and nothing is set when one is refused."""
        for name, value in values.items():
            check = getattr(self, f"_valid_{name}", None)
            if check is not None:
                check({"value": value, "owner": self, "trait": self.traits().get(name)})

    def _check_layer(self, layer: object) -> int:
        return check_layer(layer, self._engine.num_layers)

    def _check_head(self, head: object) -> int | None:
        return check_head(head, self._engine.num_heads)

    @t.validate("part")
    def _valid_part(self, proposal: t.Bunch) -> str:
        return self._check_part(proposal["value"])

    @t.validate("layer")
    def _valid_layer(self, proposal: t.Bunch) -> int:
        return self._check_layer(proposal["value"])

    @t.validate("head")
    def _valid_head(self, proposal: t.Bunch) -> int | None:
        return self._check_head(proposal["value"])

    @t.validate("hovered_token")
    def _valid_hovered_token(self, proposal: t.Bunch) -> int | None:
        value = proposal["value"]
        return None if value is None else check_index(value, self._engine.n, "hovered_token", "tokens")

    @t.validate("selected_tokens")
    def _valid_selected_tokens(self, proposal: t.Bunch) -> list[int]:
        return sorted(set(check_indices(proposal["value"], self._engine.n, "selected_tokens", "tokens")))

    @t.validate("threshold")
    def _valid_threshold(self, proposal: t.Bunch) -> float:
        return check_number(proposal["value"], "threshold", 0.0, 1.0,
                            "The graph keeps the edges whose weight is above it.")

    @t.validate("measure")
    def _valid_measure(self, proposal: t.Bunch) -> str:
        return self._check_measure(proposal["value"])

    @t.validate("query_key_cell")
    def _valid_query_key_cell(self, proposal: t.Bunch) -> list[int] | None:
        return self._check_query_key_cell(proposal["value"])

    @t.validate("routes_target")
    def _valid_routes_target(self, proposal: t.Bunch) -> int:
        return self._check_routes_target(proposal["value"])

    @t.validate("routes_threshold")
    def _valid_routes_threshold(self, proposal: t.Bunch) -> float:
        return self._check_routes_threshold(proposal["value"])

    @t.validate("rollout_fusion")
    def _valid_rollout_fusion(self, proposal: t.Bunch) -> str:
        value = check_choice(proposal["value"], ROLLOUT_FUSIONS, "rollout_fusion")
        self._refuse_cross_option("rollout_fusion", value)
        return value

    @t.validate("discard_ratio")
    def _valid_discard_ratio(self, proposal: t.Bunch) -> float:
        value = _check_discard(proposal["value"])
        self._refuse_cross_option("discard_ratio", value)
        return value

    def _refuse_cross_option(self, name: str, value: object) -> None:
        """A rollout option may not change while cross-attention (no rollout) is shown."""
        if self._state.is_cross and value != self._trait_values.get(name, self.traits()[name].default_value):
            raise ArgumentError(NO_CROSS_ROLLOUT)

    @t.validate("tokens", "key_tokens")
    def _valid_tokens(self, proposal: t.Bunch) -> list[str]:
        tokens, name = proposal["value"], proposal["trait"].name
        size = self._engine.n if name == "tokens" else self._state.n_keys
        if len(tokens) != size:
            raise ArgumentError(f"{name} must hold one string per position: {size}; got {len(tokens)}.")
        return tokens

    @t.validate("color_by")
    def _valid_color_by(self, proposal: t.Bunch) -> str | None:
        from .heads import ROLES
        from .metrics import FUSED_METRICS

        value = proposal["value"]
        return value if value is None else check_choice(value, sorted(FUSED_METRICS + ROLES), "color_by")

    @t.validate("view")
    def _valid_view(self, proposal: t.Bunch) -> str:
        return self._check_view(proposal["value"])

    @t.validate("color_scale")
    def _valid_color_scale(self, proposal: t.Bunch) -> str:
        return check_choice(proposal["value"], COLOR_SCALES, "color_scale")

    @t.validate("text_source")
    def _valid_text_source(self, proposal: t.Bunch) -> str:
        value = check_choice(proposal["value"], TEXT_SOURCES, "text_source")
        if value != "attention" and self._state.is_cross:
            raise ArgumentError(NO_CROSS_ROLLOUT)
        return value

    @t.validate("heatmap_kind")
    def _valid_heatmap_kind(self, proposal: t.Bunch) -> str:
        check_choice(proposal["value"], ("attention", "rollout"), "heatmap_kind")
        if proposal["value"] == "rollout":
            self._refuse_cross_rollout()
            if self._engine.n > ROLLOUT_MATRIX_TOKENS:
                raise ArgumentError(
                    f"the rollout heatmap needs the whole [query, key] rollout, offered up to "
                    f"{ROLLOUT_MATRIX_TOKENS} tokens; this capture has {self._engine.n}. Use the rollout "
                    "view or the text view (one row at a time) instead."
                )
        return proposal["value"]

    # -- observers (quiet while a part switch sets many traits at once) ---------------------------
    @t.observe("part")
    def _on_part(self, change: t.Bunch) -> None:
        if not self._quiet:
            self._switch_part(change["new"])

    @t.observe("measure")
    def _on_measure(self, change: t.Bunch) -> None:
        if not self._quiet:
            self._switch_measure(change["new"])

    @t.observe("tokens")
    def _on_tokens(self, change: t.Bunch) -> None:
        if not self._quiet and not self._state.is_cross:  # relabelled self-attention: keys are the same tokens
            for state in self._all_states():  # every measure of the part shown
                if state.name == self._state.name:
                    state.tokens = state.key_tokens = list(self.tokens)
            self.key_tokens = self._state.key_tokens

    @t.observe("layer", "head")
    def _on_layer_head(self, change: t.Bunch) -> None:
        if not self._quiet:
            self._push_selection()

    @t.observe("hovered_token")
    def _on_hover(self, change: t.Bunch) -> None:
        if self._quiet:
            return
        if self.hovered_token is not None:
            if self._state.is_cross:
                self._lines_direction = "from"  # a hovered token is a target token: its row
            self._push_lines(self.hovered_token)
        if self.view in ("text", "rollout", "image") or (self.view == "query-key" and self.query_key_cell is None):
            self._push_view()

    @t.observe("selected_tokens")
    def _on_select(self, change: t.Bunch) -> None:
        if not self._quiet and (self.view in ("text", "rollout", "image")
                                or (self.view == "query-key" and self.query_key_cell is None)):
            self._push_view()

    @t.observe("query_key_cell")
    def _on_query_key_cell(self, change: t.Bunch) -> None:
        """The cell's bars follow, on any view (a heatmap click sets it before the tab shows them)."""
        if not self._quiet and self._state.has_query_key:
            self._push_query_key()

    @t.observe("routes_target", "routes_threshold")
    def _on_routes(self, change: t.Bunch) -> None:
        if not self._quiet and self.view == "routes":
            self.status = self._status_line()
            self._push_routes()

    @t.observe("view")
    def _on_view(self, change: t.Bunch) -> None:
        if not self._quiet:
            self.status = self._status_line()
            self._push_view()

    @t.observe("text_source")
    def _on_text_source(self, change: t.Bunch) -> None:
        if not self._quiet and self.view in ("text", "image"):
            self.status = self._status_line()
            self._push_view()

    @t.observe("rollout_fusion", "discard_ratio")
    def _on_rollout_options(self, change: t.Bunch) -> None:
        """Everything that shows rollout follows the new options (computed now for short inputs, on
        the worker thread for long ones; earlier options stay cached)."""
        if self._quiet or self._state.is_cross:
            return
        self.status = self._status_line()
        if self.heatmap_kind == "rollout":
            self.heatmap_data = {**self._tile(), "title": self._title()}
        if self.view == "rollout" or (self.view in ("text", "image") and self.text_source == "rollout"):
            self._push_view()

    @t.observe("threshold")
    def _on_threshold(self, change: t.Bunch) -> None:
        if self._quiet:
            return
        if self.view == "graph":
            self._push_graph()
        else:
            self.graph_data = {}

    @t.observe("color_by")
    def _on_color_by(self, change: t.Bunch) -> None:
        if not self._quiet and self.grid_data:  # not during __init__, which builds the grid once
            self.grid_data = self._grid()

    @t.observe("heatmap_kind")
    def _on_heatmap_kind(self, change: t.Bunch) -> None:
        if not self._quiet:
            self._push_selection()
