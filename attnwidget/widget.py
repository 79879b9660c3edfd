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

import anywidget
import numpy as np
import traitlets as t

from . import reduce as r
from ._checks import check_choice, check_head, check_index, check_indices, check_layer, check_number
from ._summary import Summary, default_options, summary_for
from ._widget_data import ViewData
from ._widget_messages import PageMessages
from ._widget_pass import START_AFTER_SECONDS, BackgroundPass  # noqa: F401 (re-exported)
from .errors import ArgumentError
STATIC = pathlib.Path(__file__).parent / "static"
VIEWS = ("heatmap", "text", "lines", "graph", "rollout")
COLOR_SCALES = ("linear", "log", "no_sink")
TEXT_SOURCES = ("attention", "rollout", "flow")
ROLLOUT_MATRIX_TOKENS = 1024  # up to this length the widget keeps the whole rollout matrix


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


class AttentionWidget(PageMessages, BackgroundPass, anywidget.AnyWidget):
    """Linked views of one capture: layer x head grid, heatmap, text, token lines, graph, rollout strip.

    Hovering or clicking in the page sets the selection traits below, which Python can read and
    set (setting them updates the page). Data traits hold reduced arrays as bytes; they are
    recomputed by observers when the selection changes.
    """

    _esm = _bundle() if (STATIC / "widget.js").is_file() else "export default {render({el}) {el.textContent = 'attnwidget: JS bundle missing, run make js';}}"

    # -- what the page shows about the capture -------------------------------------------------
    tokens = t.List(t.Unicode(), help="Readable token strings, one per position.").tag(sync=True)
    """list[str]: readable token strings (the page renders them as text only)."""
    num_layers = t.Int(0).tag(sync=True)
    """int: number of attention layers."""
    num_heads = t.Int(0).tag(sync=True)
    """int: number of heads per layer."""
    is_causal = t.Bool(True).tag(sync=True)
    """bool: causal attention (the heatmap masks the upper triangle)."""

    # -- selection: set by the page, readable and settable from Python --------------------------
    # Typed by their validators (attnwidget._checks), not by traitlets, so that a refused value raises
    # the same error as everywhere else in attnwidget and never sticks.
    layer = _Checked(0).tag(sync=True)
    """int: selected layer (default: the middle layer)."""
    head = t.Any(None).tag(sync=True)
    """int | None: selected head; None shows the mean over the layer's heads."""
    view = _Checked("heatmap").tag(sync=True)
    """str: the view beside the grid: 'heatmap', 'text', 'lines', 'graph' or 'rollout'."""
    hovered_token = t.Any(None).tag(sync=True)
    """int | None: token under the pointer in any view (heatmap: the query row)."""
    selected_tokens = _Checked().tag(sync=True)
    """list[int]: tokens clicked in any view (sorted)."""
    heatmap_kind = _Checked("attention").tag(sync=True)
    """str: the heatmap shows the selected layer's 'attention' (head or mean) or the 'rollout' over
    all layers (up to ROLLOUT_MATRIX_TOKENS tokens)."""
    color_scale = _Checked("linear").tag(sync=True)
    """str: how weights map to colour in the heatmap, the text view and the rollout strip: 'linear'
    (0..max), 'log' (four decades below the max) or 'no_sink' (linear, scaled without the first
    token, which draws off the scale): long prompts put most weight on token 0."""
    text_source = _Checked("attention").tag(sync=True)
    """str: what colours the text view: the 'attention' row of the focused token (selected layer and
    head, or the mean), its 'rollout' row, or its attention 'flow' (after compute_flow)."""
    threshold = _Checked(0.1).tag(sync=True)
    """float: the attention graph keeps edges with weight above this."""
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
    """int: how many layers the background pass has finished (the explorer's panels follow it)."""

    # -- reduced data (bytes), written by observers --------------------------------------------
    grid_data = t.Dict().tag(sync=True)
    heatmap_data = t.Dict().tag(sync=True)
    text_data = t.Dict().tag(sync=True)
    lines_data = t.Dict().tag(sync=True)
    graph_data = t.Dict().tag(sync=True)
    rollout_data = t.Dict().tag(sync=True)

    def __init__(self, capture, *, layer: int | None = None, head: int | None = None,
                 view: str = "heatmap", threshold: float = 0.1, tokens=None, color_by=None,
                 background: bool = True, progress=None, **kwargs):
        engine = r.engine(capture)
        if tokens is None:
            tokens = getattr(capture, "tokens", None) or [str(i) for i in range(engine.n)]
        self._engine, self._capture = engine, capture
        self._summary: Summary = summary_for(capture, default_options(capture), keep_means=True)
        self._data = ViewData(engine, self._summary)
        self._lines_direction = "from"
        self._flow_row: tuple[int, np.ndarray] | None = None
        self._png_requests: dict[int, str] = {}
        self._png_counter = 0
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._go = threading.Event()
        self._thread: threading.Thread | None = None
        self._jobs = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="attnwidget")
        self._pending_row: int | None = None
        if layer is None:
            layer = engine.num_layers // 2
        layer = self._check_layer(layer)
        self._checked({"head": head, "view": view, "threshold": threshold, "tokens": list(tokens),
                       "color_by": color_by, **kwargs})
        self._summary.layer(layer)  # first paint needs only this layer
        super().__init__(tokens=list(tokens), num_layers=engine.num_layers, num_heads=engine.num_heads,
                         is_causal=engine.is_causal, layer=layer, head=self._check_head(head), view=view,
                         threshold=threshold, color_by=color_by, layers_done=len(self._summary.done), **kwargs)
        self.grid_data = self._grid()
        self._push_selection()
        self.on_msg(self._on_message)
        self._start_pass(background, progress)

    @property
    def capture(self):
        """The Capture (or array) this widget shows."""
        return self._capture

    def __repr__(self) -> str:
        return (f"AttentionWidget({len(self.tokens)} tokens, {self.num_layers} layers x {self.num_heads} "
                f"heads, layer={self.layer}, head={self.head}, view={self.view!r})")

    @t.default("selected_tokens")
    def _no_selection(self):
        return []

    # -- validation: in @validate, so a refused value never sticks --------------------------------
    def _checked(self, values: dict) -> None:
        """Run the validators on values about to be set together (the constructor's, the page's):
        traitlets defers validation inside ``hold_trait_notifications`` and rolls back only its own
        TraitError, so a value is checked here first and nothing is set when one is refused."""
        for name, value in values.items():
            check = getattr(self, f"_valid_{name}", None)
            if check is not None:
                check({"value": value, "owner": self, "trait": self.traits().get(name)})

    def _check_layer(self, layer) -> int:
        return check_layer(layer, self._engine.num_layers)

    def _check_head(self, head):
        return check_head(head, self._engine.num_heads)

    @t.validate("layer")
    def _valid_layer(self, proposal):
        return self._check_layer(proposal["value"])

    @t.validate("head")
    def _valid_head(self, proposal):
        return self._check_head(proposal["value"])

    @t.validate("hovered_token")
    def _valid_hovered_token(self, proposal):
        value = proposal["value"]
        return None if value is None else check_index(value, self._engine.n, "hovered_token", "tokens")

    @t.validate("selected_tokens")
    def _valid_selected_tokens(self, proposal):
        return sorted(set(check_indices(proposal["value"], self._engine.n, "selected_tokens", "tokens")))

    @t.validate("threshold")
    def _valid_threshold(self, proposal):
        return check_number(proposal["value"], "threshold", 0.0, 1.0,
                            "The graph keeps the edges whose weight is above it.")

    @t.validate("tokens")
    def _valid_tokens(self, proposal):
        tokens = proposal["value"]
        if len(tokens) != self._engine.n:
            raise ArgumentError(
                f"tokens must hold one string per position: {self._engine.n}; got {len(tokens)}."
            )
        return tokens

    @t.validate("color_by")
    def _valid_color_by(self, proposal):
        from .heads import ROLES
        from .metrics import FUSED_METRICS

        value = proposal["value"]
        return value if value is None else check_choice(value, sorted(FUSED_METRICS + ROLES), "color_by")

    @t.validate("view")
    def _valid_view(self, proposal):
        return check_choice(proposal["value"], VIEWS, "view")

    @t.validate("color_scale")
    def _valid_color_scale(self, proposal):
        return check_choice(proposal["value"], COLOR_SCALES, "color_scale")

    @t.validate("text_source")
    def _valid_text_source(self, proposal):
        return check_choice(proposal["value"], TEXT_SOURCES, "text_source")

    @t.validate("heatmap_kind")
    def _valid_heatmap_kind(self, proposal):
        check_choice(proposal["value"], ("attention", "rollout"), "heatmap_kind")
        if proposal["value"] == "rollout" and self._engine.n > ROLLOUT_MATRIX_TOKENS:
            raise ArgumentError(
                f"the rollout heatmap needs the whole [query, key] rollout, offered up to "
                f"{ROLLOUT_MATRIX_TOKENS} tokens; this capture has {self._engine.n}. Use the rollout "
                "view or the text view (one row at a time) instead."
            )
        return proposal["value"]

    # -- observers -----------------------------------------------------------------------------
    @t.observe("layer", "head")
    def _on_layer_head(self, change):
        self._push_selection()

    @t.observe("hovered_token")
    def _on_hover(self, change):
        if self.hovered_token is not None:
            self._push_lines(self.hovered_token)
        if self.view == "text":
            self._push_text()
        elif self.view == "rollout":
            self._push_rollout()

    @t.observe("selected_tokens")
    def _on_select(self, change):
        if self.view == "text":
            self._push_text()
        elif self.view == "rollout":
            self._push_rollout()

    @t.observe("view")
    def _on_view(self, change):
        if self.view == "graph":
            self._push_graph()
        elif self.view == "rollout":
            self._push_rollout()
        elif self.view == "text":
            self._push_text()
        elif self.view == "lines" and not self.lines_data:
            self._push_lines(self._focus())

    @t.observe("text_source")
    def _on_text_source(self, change):
        if self.view == "text":
            self._push_text()

    @t.observe("threshold")
    def _on_threshold(self, change):
        if self.view == "graph":
            self._push_graph()
        else:
            self.graph_data = {}

    @t.observe("color_by")
    def _on_color_by(self, change):
        if self.grid_data:  # not during __init__, which builds the grid once
            self.grid_data = self._grid()

    @t.observe("heatmap_kind")
    def _on_heatmap_kind(self, change):
        self._push_selection()

    # -- pushes --------------------------------------------------------------------------------
    def _focus(self) -> int:
        """The token a view centres on: hovered, else the last selected, else the natural row."""
        if self.hovered_token is not None:
            return self.hovered_token
        if self.selected_tokens:
            return self.selected_tokens[-1]
        return self._natural_row()

    def _natural_row(self) -> int:
        return self._engine.n - 1 if self._engine.is_causal else 0

    def _tile(self, row0=0, col0=0, rows=None, cols=None) -> dict:
        """The heatmap window for the current heatmap kind and selection."""
        if self.heatmap_kind == "rollout":
            return r.matrix_tile(self.rollout_matrix(), row0, col0, rows, cols)
        return r.heatmap_tile(self._engine, self.layer, self.head, row0, col0, rows, cols, summary=self._summary)

    def _title(self) -> str:
        if self.heatmap_kind == "rollout":
            return "rollout over all layers"
        return f"layer {self.layer}, " + ("mean of heads" if self.head is None else f"head {self.head}")

    def _push_selection(self) -> None:
        self.heatmap_data = {**self._tile(), "title": self._title()}
        if self.hovered_token is not None or self.view == "lines":
            self._push_lines(self._focus())
        if self.view == "graph":
            self._push_graph()
        else:
            self.graph_data = {}
        if self.view == "text":
            self._push_text()
        what = "mean of heads" if self.head is None else f"head {self.head}"
        self.status = f"layer {self.layer}, {what}" + (
            "; heatmap: rollout over all layers" if self.heatmap_kind == "rollout" else "")

    def _push_lines(self, token: int) -> None:
        self.lines_data = r.token_lines(self._engine, self.layer, self.head, token, self._lines_direction)

    def _push_graph(self) -> None:
        self.graph_data = self._data.graph(self.layer, self.head, self.threshold, self._focus())

    def _push_text(self) -> None:
        token = self._focus()
        values, note = self._text_values(token)
        data = {"token": int(token), "source": self.text_source, "note": note}
        if values is not None:
            data["values"] = r.wire(np.asarray(values, dtype=np.float32))
        self.text_data = data

    def _text_values(self, token: int):
        """``(values [n] or None, note)`` for the text view's current source."""
        if self.text_source == "attention":
            what = "mean of heads" if self.head is None else f"head {self.head}"
            return self._engine.matrix(self.layer, self.head, [token])[0], f"attention of token {token}, layer {self.layer}, {what}"
        if self.text_source == "flow":
            if self._flow_row is not None and self._flow_row[0] == token:
                return self._flow_row[1], f"attention flow into token {token}"
            return None, f"no attention flow for token {token}: call widget.compute_flow({token})"
        cached = self._data.cached_rollout(token)
        if cached is None and (self._engine.n <= ROLLOUT_MATRIX_TOKENS or token != self.hovered_token):
            cached = self._rollout_now_or_later(token)
        if cached is None:
            return None, f"rollout of token {token}: click it to compute ({self._engine.n} tokens)"
        return cached, f"rollout of token {token} over all layers"

    def rollout_matrix(self) -> np.ndarray:
        """Attention rollout over all layers (computed once, cached): float ``[query, key]``."""
        return self._data.rollout_matrix(self._capture)

    def rollout_values(self, row: int) -> np.ndarray:
        """The rollout row of one query token (computed now; see ``attnwidget.rollout_row``).

        Up to ``ROLLOUT_MATRIX_TOKENS`` tokens the whole matrix is computed once and rows are looked
        up; beyond, rows are pushed through the head-mean patterns the background pass kept."""
        return self._data.rollout_row(self._capture, row, ROLLOUT_MATRIX_TOKENS)

    def _rollout_now_or_later(self, row: int):
        """The rollout row if it is cheap now (short inputs), else start it on the worker and return None."""
        if self._engine.n <= ROLLOUT_MATRIX_TOKENS:
            return self.rollout_values(row)
        if self._pending_row == row:
            return None
        self._pending_row = row
        self.status = f"computing the rollout row of token {row} ({self._engine.n} tokens)..."

        def work():
            values = self.rollout_values(row)
            with self._lock:
                self._pending_row = None
                self.status = f"rollout row of token {row} ready"
                if self._focus() == row or row in self.selected_tokens:
                    if self.view == "rollout":
                        self._push_rollout()
                    elif self.view == "text":
                        self._push_text()
            return values

        self._jobs.submit(work)
        return None

    def _push_rollout(self) -> None:
        row = self._focus()
        values = self._data.cached_rollout(row)
        if values is None:
            long_hover = self._engine.n > ROLLOUT_MATRIX_TOKENS and row == self.hovered_token
            if long_hover:
                # A long sequence: a hover must not start a pass over every layer; clicks do.
                self.status = f"rollout: click a token to compute its row ({self._engine.n} tokens)"
                if self.rollout_data:
                    return
                row = self._natural_row()
                values = self._data.cached_rollout(row)
            if values is None:
                values = self._rollout_now_or_later(row)
        if values is None:
            return
        data = {"values": r.wire(np.asarray(values, dtype=np.float32)), "row": int(row)}
        if self._flow_row is not None and self._flow_row[0] == row:
            data["flow"] = r.wire(self._flow_row[1].astype(np.float32))
        self.rollout_data = data

    def compute_flow(self, row: int | None = None, progress=None) -> np.ndarray:
        """Exact attention flow into ``row`` (default: the focused token); shown in the rollout and
        text views. Long inputs take minutes (``progress`` shows a bar; see ``attention_flow``)."""
        from .rollout import attention_flow_row

        row = self._focus() if row is None else int(row)
        result = attention_flow_row(self._capture, row, progress=progress)
        self._flow_row = (result.row, result.values)
        if self.view == "rollout":
            self._push_rollout()
        elif self.view == "text":
            self._push_text()
        return result.values

    def _grid(self) -> dict:
        thumbs, means, ready = self._summary.thumbnails()
        data = {"thumbs": r.wire(thumbs), "layer_mean": r.wire(means), "ready": r.wire(ready.astype(np.uint8)),
                "size": int(thumbs.shape[-1])}
        if self.color_by:
            data["color_by"] = r.wire(self.metric_grid(self.color_by).astype(np.float32))
        return data

    def metric_grid(self, name: str) -> np.ndarray:
        """A ``[layer, head]`` metric (see attnwidget.metrics.METRICS) or head-role score; NaN for the
        layers the background pass has not reached yet (``wait()`` first for all of them)."""
        return self._data.metric_grid(name)

    def initial_bytes(self) -> int:
        """Bytes of binary data in the widget's synced state (what the first render receives)."""
        state = self.get_state()
        return r.wire_nbytes(state) + len("".join(self.tokens).encode())
