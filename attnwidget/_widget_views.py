"""What the widget pushes to its views when the selection changes: the heatmap tile and its title, the
status line, and the data of the view shown (lines, graph, rollout strip, text, image, query-key, routes).

A mixin of :class:`attnwidget.AttentionWidget` (its observers call these). Everything reads the state
shown (``_state``: the part and measure), so a part or measure switch only swaps the state and pushes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import reduce as r
from ._widget_host import WidgetHost
from ._widget_measures import head_label, measure_label, selection_label


class ViewPushes(WidgetHost):
    """The pushes of a widget (see the module docstring)."""

    def _focus(self) -> int:
        """The token a view centres on: hovered, else the last selected, else the natural row."""
        if self.hovered_token is not None:
            return self.hovered_token
        if self.selected_tokens:
            return self.selected_tokens[-1]
        return self._natural_row()

    def _natural_row(self) -> int:
        return self._engine.n - 1 if self._engine.is_causal else 0

    def _tile(self, row0: int = 0, col0: int = 0, rows: int | None = None, cols: int | None = None) -> dict[str, Any]:
        """The heatmap window for the current heatmap kind and selection."""
        if self.heatmap_kind == "rollout":
            return r.matrix_tile(self.rollout_matrix(), row0, col0, rows, cols)
        return r.heatmap_tile(self._engine, self.layer, self.head, row0, col0, rows, cols, summary=self._summary)

    def _title(self) -> str:
        if self.heatmap_kind == "rollout":
            return f"{self.rollout_label()} over all layers"
        what = selection_label(self._state.measure, self.layer, self.head)
        return f"{self.part}: {what}" if self.part else what

    def _push_selection(self) -> None:
        self.heatmap_data = {**self._tile(), "title": self._title()}
        if self.hovered_token is not None or self.view == "lines":
            self._push_lines(self._focus())
        if self.view == "graph":
            self._push_graph()
        else:
            self.graph_data = {}
        self.status = self._status_line()  # before the views: they may say a row is being computed
        if self.view in ("text", "image", "query-key"):
            self._push_view()
        elif self.query_key_data:  # computed for a cell set on another view: kept current
            self._push_query_key()

    def _status_line(self) -> str:
        """What is shown, in words: the part, layer and head, the measure, and which rollout where it
        shows, e.g. "layer 3, mean of heads; image: rollout (max of heads, lowest 90% discarded)" or
        "layer 3, all heads; contribution ||Σ αf(x)|| (row share)"."""
        measure = self._state.measure
        line = (f"{self.part}: " if self.part else "") + f"layer {self.layer}, {head_label(measure, self.head)}"
        if measure_label(measure, self.head):
            line += f"; {measure_label(measure, self.head)}"
        if self.view == "query-key":
            return line + ("; query-key: head 0 (the mean has no single score)" if self.head is None else "")
        if self.view == "routes":
            return line + f"; routes into token {self.routes_target} (threshold {self.routes_threshold:g})"
        if self._state.is_cross:
            return line
        label = self.rollout_label()
        if self.heatmap_kind == "rollout":
            line += f"; heatmap: {label}"
        if self.view == "rollout":
            line += f"; strip: {label}"
        elif self.view in ("text", "image") and self.text_source == "rollout":
            line += f"; {self.view}: {label}"
        return line

    def _push_view(self) -> None:
        """What the current view needs beyond the heatmap (which ``_push_selection`` sends)."""
        if self.view == "graph":
            self._push_graph()
        elif self.view == "rollout":
            self._push_rollout()
        elif self.view == "text":
            self._push_text()
        elif self.view == "image":
            self._push_image()
        elif self.view == "query-key":
            self._push_query_key()
        elif self.view == "routes":
            self._push_routes()
        elif self.view == "lines" and not self.lines_data:
            self._push_lines(self._focus())

    def _push_lines(self, token: int) -> None:
        self.lines_data = r.token_lines(self._engine, self.layer, self.head, token, self._lines_direction)

    def _push_graph(self) -> None:
        self.graph_data = self._data.graph(self.layer, self.head, self.threshold, self._focus())

    def _grid(self) -> dict[str, Any]:
        thumbs, means, ready = self._summary.thumbnails()
        data = {"thumbs": r.wire(thumbs), "layer_mean": r.wire(means), "ready": r.wire(ready.astype(np.uint8)),
                "size": int(thumbs.shape[-1])}
        if self.color_by:
            data["color_by"] = r.wire(self.metric_grid(self.color_by).astype(np.float32))
            data["color_by_name"] = self.color_by  # the grid's second colour bar names it
        return data

    def metric_grid(self, name: str) -> np.ndarray:
        """A ``[layer, head]`` metric (see attnwidget.metrics.METRICS) or head-role score of the part
        and measure shown; NaN for the layers the background pass has not reached yet (``wait()`` first
        for all)."""
        return self._data.metric_grid(name)

    def initial_bytes(self) -> int:
        """Bytes of binary data in the widget's synced state (what the first render receives)."""
        state = self.get_state()
        keys = self.key_tokens if self.is_cross else []
        return r.wire_nbytes(state) + len("".join(self.tokens).encode()) + len("".join(keys).encode())
