"""What a view needs, nothing more: pooled thumbnails, screen-sized tiles, single rows, graphs.

Everything here takes a pattern engine (:class:`attnwidget._engine.Engine` over a Capture or a
``[layer, head, query, key]`` array) and returns small NumPy arrays; :func:`wire` turns one into the
``{buffer, dtype, shape}`` dict that crosses to the browser as bytes. Whole-sequence thumbnails and
tiles come from the engine's fused pass (``attnwidget._summary``); zoomed windows, rows and graphs
are read exactly, in row blocks, so no view ever needs all heads' ``tokens x tokens`` matrices.

Cross-attention is a rectangle, ``n_queries`` rows (the target's tokens) by ``n_keys`` columns (the
source's): tiles say both extents (``n_queries``, ``n_keys``) and are pooled per axis, token lines run
from a query to the keys or to a key from the queries, and the graph view refuses it (a bipartite
graph is what the lines view draws).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ._checks import check_index
from ._engine import THUMB_SIZE, Engine, pool_factor  # noqa: F401 (re-exported)
from ._engine import TILE_SIDE as STORED_SIDE
from .errors import ArgumentError, ArgumentTypeError

if TYPE_CHECKING:
    import networkx as nx

    from ._summary import Summary
    from ._types import AttentionSource

TILE_SIDE = 512  # a zoomed heatmap window: at most this many cells a side (max-pooled)

GRAPH_NODES = 48  # the attention graph shows at most this many tokens: every node keeps a readable label
LAYOUT_FLOOR = 0.02  # the graph's layout uses the edges above this, whatever the threshold (it stays put)


def wire(array: np.ndarray, dtype: str | None = None) -> dict[str, Any]:
    """``{"buffer": bytes, "dtype": str, "shape": list}`` (C order) for the front end."""
    arr = np.ascontiguousarray(array if dtype is None else np.asarray(array).astype(dtype))
    if arr.dtype.name not in ("float32", "float16", "uint8", "uint16", "uint32", "int16", "int32"):
        raise ArgumentTypeError(f"cannot send dtype {arr.dtype} to the browser; convert to float32 or uint8")
    return {"buffer": arr.tobytes(), "dtype": arr.dtype.name, "shape": list(arr.shape)}


def wire_nbytes(value: object) -> int:
    """Bytes of every buffer inside a (nested) trait value."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value)
    if isinstance(value, dict):
        return sum(wire_nbytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(wire_nbytes(v) for v in value)
    return 0


def engine(obj: AttentionSource | Engine) -> Engine:
    """The pattern engine over ``obj`` (an Engine is returned as it is)."""
    return obj if isinstance(obj, Engine) else Engine(obj)


def max_pool(block: np.ndarray, factor: int, col_factor: int | None = None) -> np.ndarray:
    """Max over ``factor x col_factor`` cells (rows x columns; ``col_factor`` defaults to ``factor``) of
    the last two axes (edges padded with zeros)."""
    fr, fc = int(factor), int(factor if col_factor is None else col_factor)
    if fr == fc == 1:
        return block
    *lead, r, c = block.shape
    pr, pc = -r % fr, -c % fc
    if pr or pc:
        block = np.pad(block, [(0, 0)] * len(lead) + [(0, pr), (0, pc)])
    r2, c2 = block.shape[-2] // fr, block.shape[-1] // fc
    return block.reshape(*lead, r2, fr, c2, fc).max(axis=(-3, -1))


def to_uint8(values: np.ndarray, axes: int | tuple[int, ...] = (-2, -1)) -> np.ndarray:
    """Scale to 0..255 by the maximum over ``axes`` (each thumbnail uses its full colour range)."""
    top = values.max(axis=axes, keepdims=True)
    scaled = np.divide(values, top, out=np.zeros_like(values), where=top > 0)
    return np.round(scaled * 255).astype(np.uint8)


def thumbnails(source: AttentionSource | Engine) -> tuple[np.ndarray, np.ndarray]:
    """Max-pooled thumbnails of every layer: uint8 ``[layer, head, sq, sk]`` and the head means
    ``[layer, sq, sk]``.

    From the engine's fused pass (pooled from the heatmap tiles, so at most :data:`THUMB_SIZE` cells a
    side). Max pooling keeps a sharp head's single bright cell visible at any sequence length; each
    thumbnail is scaled to its own maximum. Square attention gives square thumbnails; a rectangle
    (cross-attention) is pooled per axis, so ``12 x 300`` tokens give ``12 x 50`` cells.
    """
    from ._summary import summary_for

    summary = summary_for(engine(source).obj)
    summary.run()
    thumbs, means, _ = summary.thumbnails()
    return thumbs, means


def _window(n_rows: int, n_cols: int, row0: int, col0: int, rows: int | None,
            cols: int | None) -> tuple[int, int, int, int]:
    row0, col0 = min(max(0, int(row0)), n_rows - 1), min(max(0, int(col0)), n_cols - 1)
    rows = n_rows - row0 if rows is None else max(1, min(int(rows), n_rows - row0))
    cols = n_cols - col0 if cols is None else max(1, min(int(cols), n_cols - col0))
    return row0, col0, rows, cols


def _tile(block: np.ndarray, row0: int, col0: int, rows: int, cols: int, side: int, n_queries: int,
          n_keys: int) -> dict[str, Any]:
    if n_queries == n_keys:  # square attention: one factor for both axes
        fr = fc = pool_factor(max(rows, cols), side)
    else:  # a rectangle: each axis to at most `side` cells, so 12 x 3000 keeps its 12 rows
        fr, fc = pool_factor(rows, side), pool_factor(cols, side)
    tile = max_pool(np.asarray(block, dtype=np.float32), fr, fc).astype(np.float16)
    return {"matrix": wire(tile), "row0": row0, "col0": col0, "n_rows": rows, "n_cols": cols,
            "n_queries": int(n_queries), "n_keys": int(n_keys)}


def heatmap_tile(source: AttentionSource | Engine, layer: int, head: int | None, row0: int = 0, col0: int = 0,
                 rows: int | None = None, cols: int | None = None, side: int = TILE_SIDE,
                 summary: Summary | None = None) -> dict[str, Any]:
    """The window ``[row0:row0+rows, col0:col0+cols]`` of one head (or the mean), max-pooled to at
    most ``side x side`` cells, as float16 weights (0..1).

    With a ``summary`` (a :class:`~attnwidget._summary.Summary`), the whole sequence is the fused
    pass's stored tile (at most ``attnwidget._engine.TILE_SIDE`` cells an axis: a lookup once its layer
    is done); a zoomed window is read exactly from the rows it covers.

    Returns ``{"matrix": wire(float16 [r, c]), "row0", "col0", "n_rows", "n_cols", "n_queries",
    "n_keys"}``: the matrix covers query rows ``row0 .. row0 + n_rows - 1`` and keys ``col0 .. col0 +
    n_cols - 1`` (``r < n_rows`` or ``c < n_cols``: pooled, each cell covering ``n_rows / r`` rows by
    ``n_cols / c`` keys); ``n_queries`` x ``n_keys`` is the whole pattern (equal for self-attention;
    cross-attention has ``n_queries`` target tokens over ``n_keys`` source tokens). Square attention
    is pooled by one factor on both axes, a rectangle per axis."""
    src = engine(source)
    n, n_keys = src.n, src.n_keys
    row0, col0, rows, cols = _window(n, n_keys, row0, col0, rows, cols)
    if summary is not None and (row0, col0, rows, cols) == (0, 0, n, n_keys) and side >= STORED_SIDE:
        tile = summary.tile(layer, head)
        return {"matrix": wire(tile), "row0": 0, "col0": 0, "n_rows": rows, "n_cols": cols, "n_queries": n,
                "n_keys": n_keys}
    block = src.matrix(layer, head, slice(row0, row0 + rows))[:, col0:col0 + cols]
    return _tile(block, row0, col0, rows, cols, side, n, n_keys)


def matrix_tile(matrix: np.ndarray, row0: int = 0, col0: int = 0, rows: int | None = None,
                cols: int | None = None, side: int = TILE_SIDE) -> dict[str, Any]:
    """Like :func:`heatmap_tile` (the same dict) for a ``[query, key]`` matrix already in memory (e.g.
    rollout)."""
    n, n_keys = matrix.shape
    row0, col0, rows, cols = _window(n, n_keys, row0, col0, rows, cols)
    return _tile(matrix[row0:row0 + rows, col0:col0 + cols], row0, col0, rows, cols, side, n, n_keys)


def token_lines(source: AttentionSource | Engine, layer: int, head: int | None, token: int,
                direction: str = "from") -> dict[str, Any]:
    """Weights of every head (or the selected one) for one token: from it (its row) or to it.

    ``"from"``: ``token`` is a query position and ``weights`` is float32 ``[heads, n_keys]``, its
    weight on each key; ``"to"``: ``token`` is a key position and ``weights`` is ``[heads, n_queries]``,
    how much each query reads it. For self-attention both are token positions of the one sequence; for
    cross-attention a query is a target token and a key a source token. Returns ``{"weights",
    "token", "direction", "heads", "n_queries", "n_keys"}``."""
    src = engine(source)
    n, n_keys = src.n, src.n_keys
    heads = list(range(src.num_heads)) if head is None else [int(head)]
    if direction == "from":
        token = check_index(token, n, "token", "query tokens" if n != n_keys else "tokens")
        weights = src.heads(layer, np.array([token]))[heads, 0]
    elif direction == "to":
        token = check_index(token, n_keys, "token", "key tokens" if n != n_keys else "tokens")
        weights = np.concatenate([p[heads][:, :, token] for _, _, p in src.blocks(layer)], axis=1)
    else:
        raise ArgumentError(f"direction must be 'from' or 'to'; got {direction!r}")
    return {"weights": wire(weights.astype(np.float32)), "token": int(token), "direction": direction,
            "heads": heads, "n_queries": int(n), "n_keys": int(n_keys)}


def graph_window(n: int, focus: int | None, limit: int = GRAPH_NODES) -> slice:
    """The tokens the graph shows: all of them, or ``limit`` tokens ending at ``focus`` (default last)."""
    if n <= limit:
        return slice(0, n)
    end = n if focus is None else min(n, max(limit, int(focus) + 1))
    return slice(end - limit, end)


def graph_layout(matrix: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Positions ``[n, 2]`` in ``[-1, 1]`` for one ``[query, key]`` window: a networkx spring layout
    of the edges above :data:`LAYOUT_FLOOR`, so the same window keeps its layout at any threshold."""
    import networkx as nx

    n = matrix.shape[0]
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    q, k = np.nonzero(matrix > LAYOUT_FLOOR)
    graph.add_weighted_edges_from(zip(q.tolist(), k.tolist(), matrix[q, k].tolist()))
    layout = nx.spring_layout(graph, k=2 / math.sqrt(max(n, 1)), iterations=50, seed=seed, weight="weight")
    pos = np.array([layout[i] for i in range(n)], dtype=np.float32).reshape(n, 2)
    span = np.abs(pos).max() if n else 0
    return pos / span if span > 0 else pos


def attention_graph(matrix: np.ndarray, threshold: float, *, offset: int = 0, seed: int = 0,
                    layout: np.ndarray | None = None) -> tuple[nx.DiGraph, np.ndarray]:
    """The seed article's thresholded attention graph and its layout.

    ``matrix`` is one ``[query, key]`` window; an edge query -> key is kept when its weight exceeds
    ``threshold`` (self-attention included as a loop). Returns ``(graph, positions [n, 2] in [-1, 1])``
    with nodes numbered ``offset + i``; the positions (:func:`graph_layout`, or ``layout`` if given)
    do not depend on the threshold.
    """
    import networkx as nx

    n = matrix.shape[0]
    graph = nx.DiGraph()
    graph.add_nodes_from(range(offset, offset + n))
    q, k = np.nonzero(matrix > threshold)
    graph.add_weighted_edges_from(zip((q + offset).tolist(), (k + offset).tolist(), matrix[q, k].tolist()))
    return graph, (graph_layout(matrix, seed=seed) if layout is None else layout)


def graph_data(source: AttentionSource | Engine, layer: int, head: int | None, threshold: float,
               focus: int | None = None,
               layouts: dict[tuple[int, int | None, int, int], np.ndarray] | None = None) -> dict[str, Any]:
    """Wire form of :func:`attention_graph` for the tokens of :func:`graph_window`, with the window
    (``start``, ``stop``, ``total``) so the view can say which tokens it shows.

    Tokens outside the window get NaN positions (not drawn). ``layouts``: a dict that keeps each
    window's layout, keyed by ``(layer, head, start, stop)``, so a new threshold moves no node.

    Self-attention only: cross-attention's queries and keys are two sequences, whose graph is the
    bipartite one the lines view draws (:func:`token_lines`); it is refused."""
    src = engine(source)
    if src.is_cross:
        raise ArgumentError(
            f"the attention graph links tokens of one sequence; this is cross-attention ([query, key] = "
            f"[{src.n}, {src.n_keys}], two sequences). Use the lines view (token_lines) to see which source "
            "tokens each target token reads.")
    window = graph_window(src.n, focus)
    matrix = src.matrix(layer, head, window)[:, window]
    key = (layer, head, window.start, window.stop)
    layout = None if layouts is None else layouts.get(key)
    graph, pos = attention_graph(matrix, threshold, offset=window.start, layout=layout)
    if layouts is not None:
        layouts[key] = pos
    full = np.full((src.n, 2), np.nan, dtype=np.float32)
    full[window] = pos
    edges = np.array([(u, v) for u, v in graph.edges()], dtype=np.uint32).reshape(-1, 2)
    weights = np.array([d["weight"] for _, _, d in graph.edges(data=True)], dtype=np.float32)
    return {"pos": wire(full), "edges": wire(edges), "weights": wire(weights), "start": int(window.start),
            "stop": int(window.stop), "total": int(src.n)}
