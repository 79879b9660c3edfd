"""The routes view: the information-flow routes into one token (issue 13; :func:`attnwidget.flow_routes`).

A mixin of :class:`attnwidget.AttentionWidget`. The graph of ``flow_routes(part capture,
routes_target, routes_threshold)`` crosses as ``routes_data``: node and edge arrays as bytes (no
per-edge objects) plus a legend, drawn by the page as a layered picture (rows = the residual stream
entering each block and after its attention, columns = tokens). Graphs are cached per part and
``(target, threshold)``; inputs longer than :data:`ROUTES_NOW_TOKENS` compute on the widget's worker
thread with a status line message, so hovering never waits. Clicking an attention edge in the page
sends ``{"type": "routes_edge", "edge": i}``; the widget selects that edge's layer and head.
Offered for self-attention parts recorded with values (``capture(..., values=True)``; add
``residual=True`` for the residual and FFN nodes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np

from . import reduce as r
from ._checks import check_index, check_number
from ._widget_host import WidgetHost
from .errors import ArgumentError

if TYPE_CHECKING:
    import networkx as nx

    from ._widget_parts import PartState
    from .capture import Capture

#: Up to this many tokens the routes are computed at once; longer inputs compute them on the worker.
ROUTES_NOW_TOKENS = 128
#: Graphs kept per part (the least recently computed go first).
ROUTES_KEPT = 8
NODE_KINDS = ("res", "mid", "ffn")
EDGE_KINDS = ("attention", "residual", "attention+residual", "ffn")

NO_ROUTES = ("the routes view traces the information flow of one sequence through a model recorded with values: "
             "capture with attnwidget.capture(model, tokenizer, text, values=True, residual=True) (residual=True "
             "adds the residual and FFN nodes). Cross-attention and weights-only captures have no routes.")


def _now_tokens() -> int:
    from . import widget  # tests lower attnwidget.widget.ROUTES_NOW_TOKENS

    return widget.ROUTES_NOW_TOKENS


def _index(kinds: list[str], kind: str) -> int:
    if kind not in kinds:
        kinds.append(kind)  # a kind this module does not know yet: named in the legend all the same
    return kinds.index(kind)


def _array(wire: dict[str, Any]) -> np.ndarray:
    """A wire dict's array again (what the page decodes)."""
    return np.frombuffer(wire["buffer"], dtype=wire["dtype"]).reshape(wire["shape"])


def routes_wire(graph: nx.DiGraph) -> dict[str, Any]:
    """``routes_data`` of a ``flow_routes`` graph: ``{"nodes": {kind uint8, layer, token, row int32 [N]},
    "edges": {source, target int32 [M] (node indices), importance, attention, residual float32 [M], head
    int16 [M] (-1: none), layer int16 [M], kind uint8 [M]}, "node_kinds", "edge_kinds"`` (the names of the
    kind codes) ``, "target", "threshold", "num_layers", "num_tokens", "uses_residual", "rows"`` (layered
    rows, bottom-up ``0 .. 2 * num_layers``) ``, "max_importance"}``. Nodes are ordered by (row, token,
    kind), edges by importance (the most important last, drawn on top)."""
    node_kinds, edge_kinds = list(NODE_KINDS), list(EDGE_KINDS)
    nodes = sorted(graph.nodes(data=True), key=lambda item: (item[1]["row"], item[1]["token"], item[1]["kind"]))
    index = {key: i for i, (key, _) in enumerate(nodes)}
    node_arrays: dict[str, np.ndarray] = {
        "kind": np.array([_index(node_kinds, d["kind"]) for _, d in nodes], np.uint8),
        "layer": np.array([d["layer"] for _, d in nodes], np.int32),
        "token": np.array([d["token"] for _, d in nodes], np.int32),
        "row": np.array([d["row"] for _, d in nodes], np.int32),
    }
    edges = sorted(graph.edges(data=True), key=lambda e: (e[2]["importance"], index[e[0]], index[e[1]]))
    head = [-1 if d.get("head") is None else int(d["head"]) for _, _, d in edges]
    edge_arrays: dict[str, np.ndarray] = {
        "source": np.array([index[u] for u, _, _ in edges], np.int32),
        "target": np.array([index[v] for _, v, _ in edges], np.int32),
        "importance": np.array([d["importance"] for _, _, d in edges], np.float32),
        "attention": np.array([d.get("attention", 0.0) for _, _, d in edges], np.float32),
        "residual": np.array([d.get("residual", 0.0) for _, _, d in edges], np.float32),
        "head": np.array(head, np.int16),
        "layer": np.array([d["layer"] for _, _, d in edges], np.int16),
        "kind": np.array([_index(edge_kinds, d["kind"]) for _, _, d in edges], np.uint8),
    }
    meta = graph.graph
    layers = int(meta["num_layers"])
    return {
        "nodes": {name: r.wire(values) for name, values in node_arrays.items()},
        "edges": {name: r.wire(values) for name, values in edge_arrays.items()},
        "node_kinds": node_kinds, "edge_kinds": edge_kinds,
        "target": int(meta["target"]), "threshold": float(meta["threshold"]), "num_layers": layers,
        "num_tokens": int(meta["num_tokens"]), "uses_residual": bool(meta["uses_residual"]), "rows": 2 * layers + 1,
        "max_importance": float(edge_arrays["importance"].max()) if len(edges) else 0.0,
    }


class RoutesView(WidgetHost):
    """The ``routes_target`` / ``routes_threshold`` / ``routes_data`` traits' logic (see the module
    docstring). Needs ``_state``, ``_engine``, ``_lock``, ``_jobs``, ``_report`` and the traits."""

    _routes_edges: list[tuple[int, int | None, str]] | None = None  # (layer, head, kind) of each edge shown,
    # in routes_data's order
    _pending_routes: tuple[int, float] | None = None  # (target, threshold) being computed on the worker

    def _check_routes_target(self, value: object) -> int:
        return check_index(value, self._engine.n, "routes_target", "tokens")

    def _check_routes_threshold(self, value: object) -> float:
        value = check_number(value, "routes_threshold", 0.0, 1.0,
                             "The routes keep the edges whose importance is at least this.")
        if value >= 1.0:
            raise ArgumentError("routes_threshold must lie in [0, 1): importances into a node sum to 1; got 1.0.")
        return value

    def _refuse_no_routes(self) -> None:
        if "routes" not in self._state.views:
            raise ArgumentError(NO_ROUTES)

    def routes(self, target: int | None = None, threshold: float | None = None) -> nx.DiGraph:
        """The information-flow routes of the part shown (a ``networkx.DiGraph``, see
        :func:`attnwidget.flow_routes`) into ``target`` (default ``routes_target``) at ``threshold``
        (default ``routes_threshold``); computed now, and cached like the routes view's."""
        self._refuse_no_routes()
        target = self.routes_target if target is None else self._check_routes_target(target)
        threshold = self.routes_threshold if threshold is None else self._check_routes_threshold(threshold)
        return self._routes_graph(self._state, (int(target), float(threshold)))

    def _routes_graph(self, state: PartState, key: tuple[int, float]) -> nx.DiGraph:
        graph = state.routes.get(key)
        if graph is None:
            from .routes import flow_routes

            # a part with routes recorded values: its base is a Capture
            graph = flow_routes(cast("Capture", state.base), target=key[0], threshold=key[1])
            state.routes[key] = graph
            for old in list(state.routes)[:-ROUTES_KEPT]:
                state.routes.pop(old, None)
        return graph

    def _push_routes(self) -> None:
        state = self._state
        if "routes" not in state.views:
            self._routes_edges, self.routes_data = None, {}
            return
        key = (int(self.routes_target), float(self.routes_threshold))
        graph = state.routes.get(key)
        if graph is None and self._engine.n <= _now_tokens():
            graph = self._routes_graph(state, key)
        if graph is None:
            self._routes_later(state, key)
        else:
            self._show_routes(graph)

    def _show_routes(self, graph: nx.DiGraph) -> None:
        data = routes_wire(graph)
        edges = {name: _array(data["edges"][name]) for name in ("layer", "head", "kind")}
        self._routes_edges = [(int(layer), None if head < 0 else int(head), data["edge_kinds"][kind])
                              for layer, head, kind in zip(edges["layer"], edges["head"], edges["kind"])]
        self.routes_data = data

    def _routes_later(self, state: PartState, key: tuple[int, float]) -> None:
        """Compute the routes on the worker (long inputs); show them if they are still wanted then."""
        if self._pending_routes == key:
            return
        self._pending_routes = key
        self.status = f"computing the routes into token {key[0]} ({self._engine.n} tokens)..."

        def work() -> nx.DiGraph | None:
            try:
                graph = self._routes_graph(state, key)
            except Exception as error:  # noqa: BLE001 - shown in the page, not lost in a thread
                with self._lock:
                    if self._pending_routes == key:
                        self._pending_routes = None
                    self._report(f"the routes into token {key[0]}", error)
                return None
            with self._lock:
                if self._pending_routes == key:
                    self._pending_routes = None
                wanted = (int(self.routes_target), float(self.routes_threshold)) == key
                if self._state.routes is state.routes and wanted and self.view == "routes":
                    self.status = f"routes into token {key[0]} ready"
                    self._show_routes(graph)
            return graph

        self._jobs.submit(work)

    def _click_route_edge(self, index: object) -> None:
        """The page's click on edge ``index`` of ``routes_data``: an attention edge selects its layer and
        head (the mean of heads when it names none), so every view follows."""
        shown = self._routes_edges
        if not shown:
            raise ArgumentError("no routes are shown: set view='routes' first")
        layer, head, kind = shown[check_index(index, len(shown), "edge", "edges shown")]
        if "attention" not in kind:
            raise ArgumentError(f"edge {index} is a {kind} edge; only attention edges name a layer and head")
        self._checked({"layer": layer, "head": head})
        with self.hold_trait_notifications():
            self.layer, self.head = layer, head
