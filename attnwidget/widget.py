"""The AttentionWidget: traits synced with the browser, observers that push only what a view needs."""

from __future__ import annotations

import pathlib

import anywidget
import numpy as np
import traitlets as t

from . import reduce as r

STATIC = pathlib.Path(__file__).parent / "static"
VIEWS = ("heatmap", "lines", "graph", "rollout")
ROLLOUT_MATRIX_TOKENS = 1024  # up to this length the widget keeps the whole rollout matrix


def _bundle() -> pathlib.Path:
    path = STATIC / "widget.js"
    if not path.is_file():
        raise FileNotFoundError(
            f"the widget's JavaScript bundle is missing ({path}). Build it with `make js` "
            "(npm --prefix js ci && npm --prefix js run build), or reinstall the package."
        )
    return path


class AttentionWidget(anywidget.AnyWidget):
    """Linked views of one capture: layer x head grid, heatmap, token lines, graph, rollout strip.

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
    layer = t.Int(0).tag(sync=True)
    """int: selected layer (default: the middle layer)."""
    head = t.Int(None, allow_none=True).tag(sync=True)
    """int | None: selected head; None shows the mean over the layer's heads."""
    view = t.Enum(VIEWS, default_value="heatmap").tag(sync=True)
    """str: the view beside the grid: 'heatmap', 'lines', 'graph' or 'rollout'."""
    hovered_token = t.Int(None, allow_none=True).tag(sync=True)
    """int | None: token under the pointer in any view (heatmap: the query row)."""
    selected_tokens = t.List(t.Int()).tag(sync=True)
    """list[int]: tokens clicked in any view (sorted)."""
    heatmap_kind = t.Enum(("attention", "rollout"), default_value="attention").tag(sync=True)
    """str: the heatmap shows the selected layer's 'attention' (head or mean) or the 'rollout' over
    all layers (up to ROLLOUT_MATRIX_TOKENS tokens)."""
    threshold = t.Float(0.1, min=0.0, max=1.0).tag(sync=True)
    """float: the attention graph keeps edges with weight above this."""
    color_by = t.Unicode(None, allow_none=True).tag(sync=False)
    """str | None: colour grid cells by a metric (see attnwidget.metrics.METRICS) or head role."""
    status = t.Unicode("").tag(sync=True)
    """str: one line of status text under the views."""

    # -- reduced data (bytes), written by observers --------------------------------------------
    grid_data = t.Dict().tag(sync=True)
    heatmap_data = t.Dict().tag(sync=True)
    lines_data = t.Dict().tag(sync=True)
    graph_data = t.Dict().tag(sync=True)
    rollout_data = t.Dict().tag(sync=True)

    def __init__(self, capture, *, layer: int | None = None, head: int | None = None,
                 view: str = "heatmap", threshold: float = 0.1, tokens=None, color_by=None, **kwargs):
        source = r.PatternSource(capture)
        if tokens is None:
            tokens = getattr(capture, "tokens", None) or [str(i) for i in range(source.n)]
        if len(tokens) != source.n:
            raise ValueError(f"got {len(tokens)} tokens for {source.n} positions; they must match")
        self._source, self._capture = source, capture
        self._lines_direction = "from"
        self._rollout = None
        self._rollout_rows: dict[int, np.ndarray] = {}
        self._flow_row: tuple[int, np.ndarray] | None = None
        self._metrics = None
        self._thumbs = None  # computed once; recolouring the grid reuses them
        self._png_requests: dict[int, str] = {}
        self._png_counter = 0
        if layer is None:
            layer = source.num_layers // 2
        super().__init__(tokens=list(tokens), num_layers=source.num_layers, num_heads=source.num_heads,
                         is_causal=source.is_causal, layer=self._check_layer(layer),
                         head=self._check_head(head), view=view, threshold=threshold, color_by=color_by,
                         **kwargs)
        self.grid_data = self._grid()
        self._push_selection()
        self.on_msg(self._on_message)

    @property
    def capture(self):
        """The Capture (or array) this widget shows."""
        return self._capture

    def __repr__(self) -> str:
        return (f"AttentionWidget({len(self.tokens)} tokens, {self.num_layers} layers x {self.num_heads} "
                f"heads, layer={self.layer}, head={self.head}, view={self.view!r})")

    # -- validation ----------------------------------------------------------------------------
    def _check_layer(self, layer) -> int:
        n = self._source.num_layers
        if not isinstance(layer, (int, np.integer)) or not -n <= layer < n:
            raise ValueError(f"layer must be an int in 0..{n - 1}; got {layer!r}")
        return int(layer) % n

    def _check_head(self, head):
        n = self._source.num_heads
        if head is None:
            return None
        if not isinstance(head, (int, np.integer)) or not 0 <= head < n:
            raise ValueError(f"head must be None (mean) or an int in 0..{n - 1}; got {head!r}")
        return int(head)

    @t.validate("layer")
    def _valid_layer(self, proposal):
        return self._check_layer(proposal["value"])

    @t.validate("head")
    def _valid_head(self, proposal):
        return self._check_head(proposal["value"])

    @t.validate("hovered_token")
    def _valid_hover(self, proposal):
        value = proposal["value"]
        if value is not None and not 0 <= value < self._source.n:
            raise ValueError(f"hovered_token must be None or in 0..{self._source.n - 1}; got {value}")
        return value

    @t.validate("selected_tokens")
    def _valid_selection(self, proposal):
        tokens = sorted(set(int(v) for v in proposal["value"]))
        bad = [v for v in tokens if not 0 <= v < self._source.n]
        if bad:
            raise ValueError(f"selected_tokens must lie in 0..{self._source.n - 1}; got {bad}")
        return tokens

    # -- observers -----------------------------------------------------------------------------
    @t.observe("layer", "head")
    def _on_layer_head(self, change):
        self._push_selection()

    @t.observe("hovered_token")
    def _on_hover(self, change):
        if self.hovered_token is not None:
            self._push_lines(self.hovered_token)
        if self.view == "rollout":
            self._push_rollout()

    @t.observe("selected_tokens")
    def _on_select(self, change):
        if self.view == "rollout":
            self._push_rollout()

    @t.observe("view")
    def _on_view(self, change):
        if self.view == "graph":
            self._push_graph()
        elif self.view == "rollout":
            self._push_rollout()
        elif self.view == "lines" and not self.lines_data:
            self._push_lines(self._focus())

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

    # -- pushes --------------------------------------------------------------------------------
    def _focus(self) -> int:
        """The token a view centres on: hovered, else the last selected, else the natural row."""
        if self.hovered_token is not None:
            return self.hovered_token
        if self.selected_tokens:
            return self.selected_tokens[-1]
        return self._source.n - 1 if self._source.is_causal else 0

    @t.validate("heatmap_kind")
    def _valid_heatmap_kind(self, proposal):
        if proposal["value"] == "rollout" and self._source.n > ROLLOUT_MATRIX_TOKENS:
            raise ValueError(
                f"the rollout heatmap needs the whole [query, key] rollout, offered up to "
                f"{ROLLOUT_MATRIX_TOKENS} tokens; this capture has {self._source.n}. Use the rollout "
                "view (one row at a time) instead."
            )
        return proposal["value"]

    @t.observe("heatmap_kind")
    def _on_heatmap_kind(self, change):
        self._push_selection()

    def _tile(self, row0=0, col0=0, rows=None, cols=None) -> dict:
        """The heatmap window for the current heatmap kind and selection."""
        if self.heatmap_kind == "rollout":
            return r.matrix_tile(self.rollout_matrix(), row0, col0, rows, cols)
        return r.heatmap_tile(self._source, self.layer, self.head, row0, col0, rows, cols)

    def _push_selection(self) -> None:
        self.heatmap_data = self._tile()
        if self.hovered_token is not None or self.view == "lines":
            self._push_lines(self._focus())
        if self.view == "graph":
            self._push_graph()
        else:
            self.graph_data = {}
        what = "mean of heads" if self.head is None else f"head {self.head}"
        self.status = f"layer {self.layer}, {what}" + (
            "; heatmap: rollout over all layers" if self.heatmap_kind == "rollout" else "")

    def _push_lines(self, token: int) -> None:
        self.lines_data = r.token_lines(self._source, self.layer, self.head, token, self._lines_direction)

    def _push_graph(self) -> None:
        self.graph_data = r.graph_data(self._source, self.layer, self.head, self.threshold,
                                       focus=self._focus())

    def rollout_matrix(self) -> np.ndarray:
        """Attention rollout over all layers (computed once, cached): float ``[query, key]``."""
        if self._rollout is None:
            from .rollout import rollout

            self._rollout = rollout(self._capture)
        return self._rollout

    def rollout_values(self, row: int) -> np.ndarray:
        """The rollout row of one query token.

        Up to ``ROLLOUT_MATRIX_TOKENS`` tokens the whole matrix is computed once and rows are looked
        up (hovering is instant); beyond, each row is one pass over the layers in row blocks
        (``attnwidget.rollout_row``), cached, and only computed for clicked or natural rows.
        """
        if self._source.n <= ROLLOUT_MATRIX_TOKENS:
            return self.rollout_matrix()[row]
        if row not in self._rollout_rows:
            from .rollout import rollout_row

            self._rollout_rows[row] = rollout_row(self._capture, row).values
        return self._rollout_rows[row]

    def _push_rollout(self) -> None:
        row = self._focus()
        if self._source.n > ROLLOUT_MATRIX_TOKENS and row == self.hovered_token and row not in self._rollout_rows:
            # A long sequence: a hover must not start a pass over every layer; clicks do.
            self.status = f"rollout: click a token to compute its row ({self._source.n} tokens)"
            if not self.rollout_data:
                row = self._source.n - 1 if self._source.is_causal else 0
            else:
                return
        data = {"values": r.wire(np.asarray(self.rollout_values(row), dtype=np.float32)), "row": int(row)}
        if self._flow_row is not None and self._flow_row[0] == row:
            data["flow"] = r.wire(self._flow_row[1].astype(np.float32))
        self.rollout_data = data

    def compute_flow(self, row: int | None = None) -> np.ndarray:
        """Exact attention flow into ``row`` (default: the focused token); shown in the rollout view."""
        from .rollout import attention_flow_row

        row = self._focus() if row is None else int(row)
        result = attention_flow_row(self._capture, row)
        self._flow_row = (result.row, result.values)
        if self.view == "rollout":
            self._push_rollout()
        return result.values

    def _grid(self) -> dict:
        if self._thumbs is None:
            self._thumbs = r.thumbnails(self._source)
        thumbs, means = self._thumbs
        data = {"thumbs": r.wire(thumbs), "layer_mean": r.wire(means), "size": int(thumbs.shape[-1])}
        if self.color_by:
            data["color_by"] = r.wire(self.metric_grid(self.color_by).astype(np.float32))
        return data

    def metric_grid(self, name: str) -> np.ndarray:
        """A ``[layer, head]`` metric (see attnwidget.metrics.METRICS) or head-role score."""
        if self._metrics is None:
            from .metrics import compute_metrics

            self._metrics = dict(compute_metrics(self._capture))
        if name not in self._metrics:
            from .heads import head_roles

            roles = head_roles(self._capture)
            if not hasattr(roles, name):
                raise ValueError(f"unknown metric or role {name!r}; choose from {sorted(self._metrics)}")
            self._metrics[name] = np.asarray(getattr(roles, name), dtype=np.float64)
        return np.asarray(self._metrics[name])

    # -- messages ------------------------------------------------------------------------------
    def _on_message(self, widget, content, buffers) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "tile_request":
            tile = self._tile(content.get("row0", 0), content.get("col0", 0), content.get("rows"),
                              content.get("cols"))
            matrix = tile.pop("matrix")
            self.send({"type": "tile", **tile, "dtype": matrix["dtype"], "shape": matrix["shape"]},
                      buffers=[matrix["buffer"]])
        elif kind == "png":
            path = self._png_requests.pop(content.get("request_id"), None)
            if path is not None and buffers:
                pathlib.Path(path).write_bytes(bytes(buffers[0]))
                self.status = f"saved {path}"
            elif path is not None:
                self.status = f"PNG export of {path} failed in the page: {content.get('error', 'no image')}"
        elif kind == "lines_hover":
            direction = content.get("direction", "from")
            self._lines_direction = direction if direction in ("from", "to") else "from"
            token = content.get("token")
            if token is not None:
                self._push_lines(int(token))

    def save_png(self, path, view: str = "current") -> None:
        """Ask the page for a PNG of the current view (``view="grid"`` for the grid) and write it to
        ``path`` when the page answers (a moment later, once the kernel is idle; the status line says
        so). The page must be displayed: with no page showing the widget, nothing answers and no file
        is written. The toolbar's PNG button downloads the same image."""
        self._png_counter += 1
        self._png_requests[self._png_counter] = str(path)
        self.send({"type": "png_request", "request_id": self._png_counter, "view": view})

    def initial_bytes(self) -> int:
        """Bytes of binary data in the widget's synced state (what the first render receives)."""
        state = self.get_state()
        return r.wire_nbytes(state) + len("".join(self.tokens).encode())
