"""What a view needs, nothing more: pooled thumbnails, screen-sized tiles, single rows, graphs.

Everything here takes a :class:`PatternSource` (a Capture or a ``[layer, head, query, key]`` array)
and returns small NumPy arrays; :func:`wire` turns one into the ``{buffer, dtype, shape}`` dict that
crosses to the browser as bytes. Patterns are read in row blocks, so no view ever needs all heads'
``tokens x tokens`` matrices at once.
"""

from __future__ import annotations

import math

import numpy as np

THUMB_SIZE = 64  # thumbnail side in cells (max-pooled)
TILE_SIDE = 512  # heatmap tile side in cells: beyond this the tile is max-pooled
GRAPH_NODES = 120  # the attention graph shows at most this many tokens
ROW_BLOCK = 1 << 22  # floats per block when reading patterns row by row


def wire(array: np.ndarray, dtype: str | None = None) -> dict:
    """``{"buffer": bytes, "dtype": str, "shape": list}`` (C order) for the front end."""
    arr = np.ascontiguousarray(array if dtype is None else np.asarray(array).astype(dtype))
    if arr.dtype.name not in ("float32", "float16", "uint8", "uint16", "uint32", "int32"):
        raise TypeError(f"cannot send dtype {arr.dtype} to the browser; convert to float32 or uint8")
    return {"buffer": arr.tobytes(), "dtype": arr.dtype.name, "shape": list(arr.shape)}


def wire_nbytes(value) -> int:
    """Bytes of every buffer inside a (nested) trait value."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value)
    if isinstance(value, dict):
        return sum(wire_nbytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(wire_nbytes(v) for v in value)
    return 0


class PatternSource:
    """Uniform row access to a Capture or a ``[layer, head, query, key]`` array."""

    def __init__(self, obj):
        if hasattr(obj, "head_patterns") and hasattr(obj, "num_layers"):
            self.capture, self.array = obj, None
            self.num_layers, self.num_heads, self.n = obj.num_layers, obj.num_heads, obj.num_tokens
            self.is_causal = obj.is_causal
        else:
            from ._arrays import as_attention_array

            self.array, self.is_causal = as_attention_array(obj)
            self.capture = None
            self.num_layers, self.num_heads, self.n = self.array.shape[:3]

    def heads(self, layer: int, rows: slice | np.ndarray) -> np.ndarray:
        """All heads of ``layer`` for the given query rows: float32 ``[head, rows, key]``."""
        if self.capture is not None:
            return self.capture.head_patterns(layer, rows=rows)
        return np.asarray(self.array[layer][:, rows], dtype=np.float32)

    def matrix(self, layer: int, head: int | None, rows) -> np.ndarray:
        """One head (or the head mean for ``head=None``): float32 ``[rows, key]``."""
        if self.capture is not None:
            return self.capture.pattern(layer, head, rows=rows)
        block = self.array[layer] if head is None else self.array[layer, head][None]
        return np.asarray(block[:, rows].mean(axis=0), dtype=np.float32)

    def row_blocks(self, heads: int, align: int = 1):
        """Slices of query rows small enough to read ``heads`` heads at once, multiples of ``align``."""
        rows = max(align, (ROW_BLOCK // max(1, heads * self.n)) // align * align)
        for start in range(0, self.n, rows):
            yield slice(start, min(self.n, start + rows))


def pool_factor(n: int, size: int) -> int:
    return max(1, math.ceil(n / size))


def max_pool(block: np.ndarray, factor: int) -> np.ndarray:
    """Max over ``factor x factor`` cells of the last two axes (edges padded with zeros)."""
    if factor == 1:
        return block
    *lead, r, c = block.shape
    pr, pc = -r % factor, -c % factor
    if pr or pc:
        block = np.pad(block, [(0, 0)] * len(lead) + [(0, pr), (0, pc)])
    r2, c2 = block.shape[-2] // factor, block.shape[-1] // factor
    return block.reshape(*lead, r2, factor, c2, factor).max(axis=(-3, -1))


def to_uint8(values: np.ndarray, axes=(-2, -1)) -> np.ndarray:
    """Scale to 0..255 by the maximum over ``axes`` (each thumbnail uses its full colour range)."""
    top = values.max(axis=axes, keepdims=True)
    scaled = np.divide(values, top, out=np.zeros_like(values), where=top > 0)
    return np.round(scaled * 255).astype(np.uint8)


def thumbnails(source: PatternSource, size: int = THUMB_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Max-pooled thumbnails: uint8 ``[layer, head, s, s]`` and the head means ``[layer, s, s]``.

    Max pooling keeps a sharp head's single bright cell visible at any sequence length; each
    thumbnail is scaled to its own maximum.
    """
    f = pool_factor(source.n, size)
    s = math.ceil(source.n / f)
    heads = np.zeros((source.num_layers, source.num_heads, s, s), dtype=np.float32)
    means = np.zeros((source.num_layers, s, s), dtype=np.float32)
    for layer in range(source.num_layers):
        for rows in source.row_blocks(source.num_heads, align=f):
            block = source.heads(layer, rows)
            r0 = rows.start // f
            pooled = max_pool(block, f)
            heads[layer, :, r0:r0 + pooled.shape[-2]] = pooled
            means[layer, r0:r0 + pooled.shape[-2]] = max_pool(block.mean(axis=0), f)
    return to_uint8(heads), to_uint8(means)


def _window(n: int, row0, col0, rows, cols) -> tuple[int, int, int, int]:
    row0, col0 = min(max(0, int(row0)), n - 1), min(max(0, int(col0)), n - 1)
    rows = n - row0 if rows is None else max(1, min(int(rows), n - row0))
    cols = n - col0 if cols is None else max(1, min(int(cols), n - col0))
    return row0, col0, rows, cols


def _tile(block: np.ndarray, row0: int, col0: int, rows: int, cols: int, side: int) -> dict:
    f = pool_factor(max(rows, cols), side)
    tile = max_pool(np.asarray(block, dtype=np.float32), f).astype(np.float16)
    return {"matrix": wire(tile), "row0": row0, "col0": col0, "n_rows": rows, "n_cols": cols}


def heatmap_tile(source: PatternSource, layer: int, head: int | None, row0: int = 0, col0: int = 0,
                 rows: int | None = None, cols: int | None = None, side: int = TILE_SIDE) -> dict:
    """The window ``[row0:row0+rows, col0:col0+cols]`` of one head (or the mean), max-pooled to at
    most ``side x side`` cells, as float16 weights (0..1)."""
    row0, col0, rows, cols = _window(source.n, row0, col0, rows, cols)
    block = source.matrix(layer, head, slice(row0, row0 + rows))[:, col0:col0 + cols]
    return _tile(block, row0, col0, rows, cols, side)


def matrix_tile(matrix: np.ndarray, row0: int = 0, col0: int = 0, rows: int | None = None,
                cols: int | None = None, side: int = TILE_SIDE) -> dict:
    """Like :func:`heatmap_tile` for a ``[query, key]`` matrix already in memory (e.g. rollout)."""
    row0, col0, rows, cols = _window(matrix.shape[0], row0, col0, rows, cols)
    return _tile(matrix[row0:row0 + rows, col0:col0 + cols], row0, col0, rows, cols, side)


def token_lines(source: PatternSource, layer: int, head: int | None, token: int,
                direction: str = "from") -> dict:
    """Weights of every head (or the selected one) for one token: from it (its row) or to it."""
    heads = list(range(source.num_heads)) if head is None else [int(head)]
    if direction == "from":
        weights = source.heads(layer, np.array([token]))[heads, 0]
    elif direction == "to":
        weights = np.concatenate([source.heads(layer, rows)[heads][:, :, token]
                                  for rows in source.row_blocks(source.num_heads)], axis=1)
    else:
        raise ValueError(f"direction must be 'from' or 'to'; got {direction!r}")
    return {"weights": wire(weights.astype(np.float32)), "token": int(token), "direction": direction,
            "heads": heads}


def graph_window(n: int, focus: int | None, limit: int = GRAPH_NODES) -> slice:
    """The tokens the graph shows: all of them, or ``limit`` tokens ending at ``focus`` (default last)."""
    if n <= limit:
        return slice(0, n)
    end = n if focus is None else min(n, max(limit, int(focus) + 1))
    return slice(end - limit, end)


def attention_graph(matrix: np.ndarray, threshold: float, *, offset: int = 0, seed: int = 0):
    """The seed article's thresholded attention graph, with a networkx spring layout.

    ``matrix`` is one ``[query, key]`` window; an edge query -> key is kept when its weight exceeds
    ``threshold`` (self-attention included as a loop). Returns ``(graph, positions [n, 2] in [-1, 1])``
    with nodes numbered ``offset + i``.
    """
    import networkx as nx

    n = matrix.shape[0]
    graph = nx.DiGraph()
    graph.add_nodes_from(range(offset, offset + n))
    q, k = np.nonzero(matrix > threshold)
    graph.add_weighted_edges_from(zip((q + offset).tolist(), (k + offset).tolist(), matrix[q, k].tolist()))
    layout = nx.spring_layout(graph, k=2 / math.sqrt(max(n, 1)), iterations=50, seed=seed, weight="weight")
    pos = np.array([layout[offset + i] for i in range(n)], dtype=np.float32).reshape(n, 2)
    span = np.abs(pos).max() if n else 0
    return graph, (pos / span if span > 0 else pos)


def graph_data(source: PatternSource, layer: int, head: int | None, threshold: float,
               focus: int | None = None) -> dict:
    """Wire form of :func:`attention_graph` for the tokens of :func:`graph_window`.

    Tokens outside the window get NaN positions (not drawn)."""
    window = graph_window(source.n, focus)
    matrix = source.matrix(layer, head, window)[:, window]
    graph, pos = attention_graph(matrix, threshold, offset=window.start)
    full = np.full((source.n, 2), np.nan, dtype=np.float32)
    full[window] = pos
    edges = np.array([(u, v) for u, v in graph.edges()], dtype=np.uint32).reshape(-1, 2)
    weights = np.array([d["weight"] for _, _, d in graph.edges(data=True)], dtype=np.float32)
    return {"pos": wire(full), "edges": wire(edges), "weights": wire(weights)}
