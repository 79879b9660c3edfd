"""The query-key view: one score of one head taken apart (issue 13).

A mixin of :class:`attnwidget.AttentionWidget`. For the selected layer and head (the mean of heads has
no single score: head 0 stands in, and the view says so) and one cell ``(query, key)``, the widget sends
``query_key_data``: ``q``, ``k`` and their elementwise products as float32 bytes, the scalars of
``score = sum(q * k) x scaling (+ bias, soft-capped)`` and the weight, and the two tokens
(:func:`attnwidget.contributions.query_key`). The cell is ``query_key_cell`` (set by a click on a heatmap
cell, or from Python); ``None`` takes the focused token's row and its highest-weight key in that head.
Offered where the part recorded its queries and keys (not for weights-only captures or arrays).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np

from . import reduce as r
from ._checks import check_index
from ._widget_host import WidgetHost
from .errors import ArgumentError, ArgumentTypeError

if TYPE_CHECKING:
    from .capture import Capture
    from .contributions import QueryKey

NO_QUERY_KEY = ("the query-key view needs the queries and keys each layer used; this capture holds attention "
                "weights only (method='weights', Capture.from_attentions, or an array). Capture the model with "
                "attnwidget.capture(model, tokenizer, text) (method='auto') for it.")


class QueryKeyView(WidgetHost):
    """The ``query_key_cell`` / ``query_key_data`` traits' logic (see the module docstring). Needs
    ``_state``, ``_engine``, ``_focus`` and the selection traits."""

    def _check_query_key_cell(self, value: Any) -> list[int] | None:  # Any: whatever the page or a user sets
        if value is None:
            return None
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
            raise ArgumentTypeError(f"query_key_cell must be [query, key] (two token indices) or None; got {value!r:.60}")
        cross = self._state.is_cross
        query = check_index(value[0], self._engine.n, "query_key_cell[0] (query)",
                            "query tokens" if cross else "tokens")
        key = check_index(value[1], self._state.n_keys, "query_key_cell[1] (key)", "key tokens" if cross else "tokens")
        return [query, key]

    def _query_key_head(self) -> tuple[int, str]:
        """``(head, note)``: the selected head, or head 0 with a note while the mean of heads is selected."""
        if self.head is not None:
            return int(self.head), ""
        return 0, "the mean of heads has no single score: head 0 shown (select a head in the grid)"

    def _query_key_cell_now(self, head: int) -> tuple[int, int]:
        """The cell shown: ``query_key_cell``, else the focused token's row and its highest-weight key."""
        if self.query_key_cell is not None:
            query, key = self.query_key_cell
            return query, key
        query = self._focus()
        row = self._recorded().pattern(self.layer, head, rows=[query])[0]
        return query, int(np.argmax(row))

    def _recorded(self) -> Capture:
        """The part's Capture (a part with ``has_query_key`` recorded its queries and keys: a Capture)."""
        return cast("Capture", self._state.base)

    def query_key(self) -> QueryKey:
        """The score shown in the query-key view, taken apart (:class:`attnwidget.contributions.QueryKey`):
        the selected layer and head (head 0 for the mean of heads) at ``query_key_cell`` (default: the
        focused token and its highest-weight key)."""
        if not self._state.has_query_key:
            raise ArgumentError(NO_QUERY_KEY)
        head, _ = self._query_key_head()
        query, key = self._query_key_cell_now(head)
        return self._recorded().query_key(self.layer, head, query, key)

    def _push_query_key(self) -> None:
        if not self._state.has_query_key:
            self.query_key_data = {}
            return
        _, note = self._query_key_head()
        qk = self.query_key()
        wire = lambda values: r.wire(np.ascontiguousarray(values, dtype=np.float32))  # noqa: E731
        self.query_key_data = {
            "q": wire(qk.q), "k": wire(qk.k), "products": wire(qk.products),
            "dot": float(qk.products.sum(dtype=np.float64)), "scaling": qk.scaling, "bias": qk.bias,
            "softcap": qk.softcap, "score": qk.score, "masked": qk.masked, "weight": qk.weight,
            "layer": qk.layer, "head": qk.head, "key_head": qk.key_head, "query": qk.query, "key": qk.key,
            "query_token": qk.query_token, "key_token": qk.key_token, "cross": self._state.is_cross,
            "chosen": self.query_key_cell is not None, "note": note,
        }
