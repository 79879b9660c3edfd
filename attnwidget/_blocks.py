"""Blocks of query rows: how the analysis modules read attention without holding a whole layer.

Every analysis function takes a Capture or a ``[layer, head, query, key]`` array. :class:`Source`
hides the difference: :meth:`Source.blocks` yields ``(r0, r1, p)`` with ``p`` the float
``[head, r1 - r0, key]`` weights of query rows ``r0..r1-1`` of one layer (all keys).

* A Capture (anything with ``head_patterns(layer, rows=...)``, ``num_heads`` and ``num_tokens``) is
  read in blocks of :func:`block_rows` rows: ``heads x rows x tokens`` stays at most
  :data:`BLOCK_ELEMENTS` floats (except that a block has at least one row), so a call holds
  ``O(heads x block x n + n)`` floats, never a layer's ``heads x n x n``.
* An array is already in memory: each layer is handed out whole, as one block (a view).
* An older duck-typed source with only ``patterns(layers)`` is read one layer at a time, as one block.

The consumers accumulate per-row values and per-key sums over the blocks, so the results equal the
whole-layer computation up to float rounding of sums (tests/test_chunked.py checks it).
"""

from __future__ import annotations

import os

import numpy as np

from ._arrays import as_attention_array

#: Floats (``heads x rows x keys``) in one block of rows read from a Capture: 4M floats = 16 MiB of
#: float32 (the Capture's softmax briefly needs two or three times that). Read at call time, so a
#: test can lower it.
BLOCK_ELEMENTS = 1 << 22


def block_rows(heads: int, n: int) -> int:
    """Rows per block for ``heads`` heads over ``n`` keys: ``max(1, BLOCK_ELEMENTS // (heads * n))``."""
    return max(1, int(BLOCK_ELEMENTS) // max(1, int(heads) * int(n)))


def is_capture(obj) -> bool:
    """A Capture-like source (the test of the analysis modules: ``patterns`` and ``is_causal``)."""
    return hasattr(obj, "patterns") and hasattr(obj, "is_causal")


def reads_rows(obj) -> bool:
    """A Capture that recomputes any query rows on demand (``head_patterns(layer, rows=...)``)."""
    return (is_capture(obj) and callable(getattr(obj, "head_patterns", None))
            and hasattr(obj, "num_tokens") and hasattr(obj, "num_heads") and hasattr(obj, "num_layers"))


class Source:
    """Row-block access to a Capture, a Capture-like source or a ``[layer, head, query, key]`` array."""

    def __init__(self, obj):
        self.obj = obj
        self.array = None
        self._shape = None
        if reads_rows(obj):
            self.kind = "rows"
            self.num_layers = int(obj.num_layers)
            self.is_causal = bool(obj.is_causal)
            self._shape = (int(obj.num_heads), int(obj.num_tokens))
        elif is_capture(obj):
            self.kind = "layers"
            self.num_layers = int(obj.num_layers)
            self.is_causal = bool(obj.is_causal)
            if hasattr(obj, "num_heads") and hasattr(obj, "num_tokens"):
                self._shape = (int(obj.num_heads), int(obj.num_tokens))
        else:
            self.kind = "array"
            self.array, self.is_causal = as_attention_array(obj)
            self.num_layers = int(self.array.shape[0])
            self._shape = tuple(int(s) for s in self.array.shape[1:3])

    # -- sizes ------------------------------------------------------------------------------------
    def _ensure_shape(self):
        if self._shape is None:  # a bare Capture-like source: learn the shape from its first layer
            self._shape = tuple(int(s) for s in self._layer(0).shape[:2])
        return self._shape

    @property
    def num_heads(self) -> int:
        return self._ensure_shape()[0]

    @property
    def num_tokens(self) -> int:
        return self._ensure_shape()[1]

    @property
    def step(self) -> int:
        """Rows per block: :func:`block_rows` for a Capture, the whole layer otherwise."""
        if self.kind == "rows":
            return block_rows(self.num_heads, self.num_tokens)
        return max(1, self.num_tokens)

    # -- reading ----------------------------------------------------------------------------------
    def _layer(self, layer: int) -> np.ndarray:
        """One whole layer ``[head, query, key]`` (array and ``patterns``-only sources)."""
        if self.kind == "array":
            return self.array[layer]
        return as_attention_array(self.obj, layers=[layer])[0][0]

    def read(self, layer: int, r0: int, r1: int) -> np.ndarray:
        """Query rows ``r0..r1-1`` of ``layer``: ``[head, r1 - r0, key]`` (one Capture call)."""
        if self.kind == "rows":
            return np.asarray(self.obj.head_patterns(layer, rows=slice(r0, r1)))
        return self._layer(layer)[:, r0:r1]

    def blocks(self, layer: int):
        """Yield ``(r0, r1, p [head, r1 - r0, key])`` covering every query row of ``layer`` in order.

        A Capture is read in blocks of :attr:`step` rows; an array or a ``patterns``-only source gives
        the layer as one block (an array with no tokens still gives one empty block).
        """
        if self.kind != "rows":
            p = self._layer(layer)
            if self._shape is None:
                self._shape = tuple(int(s) for s in p.shape[:2])
            yield 0, p.shape[1], p
            return
        n, step = self.num_tokens, self.step
        for r0 in range(0, n, step):
            r1 = min(n, r0 + step)
            yield r0, r1, self.read(layer, r0, r1)

    def rows(self, layer: int, index: np.ndarray):
        """Yield ``(a, b, p [head, b - a, key])``: the rows ``index[a:b]`` of ``layer``, at most
        :attr:`step` rows per Capture call (one whole-layer read for the other sources)."""
        index = np.asarray(index, dtype=np.int64)
        if self.kind != "rows":
            yield 0, index.size, self._layer(layer)[:, index]
            return
        step = self.step
        for a in range(0, index.size, step):
            b = min(index.size, a + step)
            yield a, b, np.asarray(self.obj.head_patterns(layer, rows=index[a:b]))


def available_memory() -> int | None:
    """Bytes the system says are available (Linux ``MemAvailable``), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None
