"""The widget's side of the conversation with its page: trait values the page sets and custom messages
(pages shown and closed, tile requests, figure answers, hovers in the lines view). The figure
requests themselves (save_png, save_svg) are attnwidget._widget_figures'.

A mixin of :class:`attnwidget.AttentionWidget`. Nothing the page sends can raise inside the comm
handler, where the error would be lost: a refused value or a failed request sets the widget's
``error`` trait (red in the status line), is logged to the ``attnwidget`` logger, and refused trait
values are sent back so the page shows the kernel's values again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ._checks import check_index
from ._widget_host import WidgetHost
from .errors import ArgumentError

log = logging.getLogger("attnwidget")


class PageMessages(WidgetHost):
    """Message handling of a widget (see the module docstring)."""

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """Trait values sent by the page. A refused value is reported (status line, log) and the page
        is put back on the kernel's values, instead of an error lost in the comm handler."""
        try:
            self._checked(sync_data)  # before anything is set: nothing refused sticks
            super().set_state(sync_data)
        except Exception as error:  # noqa: BLE001 - reported to the page and the log, then resynced
            self._report(f"the page set {', '.join(sorted(sync_data))}", error)
            self.send_state(key=[k for k in sync_data if k in self.keys])
        else:
            if self.error and sync_data.keys() & {"layer", "head", "view", "selected_tokens", "threshold", "part",
                                                  "rollout_fusion", "discard_ratio", "measure", "query_key_cell",
                                                  "routes_target", "routes_threshold"}:
                self.error = ""

    def _report(self, what: str, error: Exception) -> None:
        text = f"{what}: {type(error).__name__}: {error}"
        log.error("attnwidget: %s", text)
        self.error = text

    def _on_message(self, widget: object, content: object, buffers: Sequence[bytes | memoryview]) -> None:
        try:
            self._answer(content, buffers)
        except Exception as error:  # noqa: BLE001 - reported to the page and the log
            kind = content.get("type") if isinstance(content, dict) else type(content).__name__
            self._report(f"the page's {kind!r} request failed", error)

    def _answer(self, content: object, buffers: Sequence[bytes | memoryview]) -> None:
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            raise ArgumentError(f"expected a message {{'type': ...}} from the page; got {content!r:.80}")
        kind = content["type"]
        if kind == "painted":  # the page shows the widget: the background pass may use the cores now
            self._go.set()
            self._pages_shown = getattr(self, "_pages_shown", 0) + 1  # pages that can answer save_png
            self._pages_ever = getattr(self, "_pages_ever", 0) + 1
        elif kind == "page_closed":  # a page that painted has gone (its output cleared, or closed)
            self._pages_shown = max(0, getattr(self, "_pages_shown", 0) - 1)
        elif kind == "tile_request":
            tile = self._tile(content.get("row0", 0), content.get("col0", 0), content.get("rows"), content.get("cols"))
            matrix = tile.pop("matrix")
            self.send({"type": "tile", **tile, "dtype": matrix["dtype"], "shape": matrix["shape"]},
                      buffers=[matrix["buffer"]])
        elif kind in ("png", "svg"):
            self._figure_answer(content, buffers)
        elif kind == "lines_hover":
            direction = content.get("direction", "from")
            self._lines_direction = direction if direction in ("from", "to") else "from"
            token = content.get("token")
            if token is not None:  # "to": a key token (cross-attention: a source token)
                size, unit = ((self._state.n_keys, "key tokens") if self._lines_direction == "to"
                              else (self._engine.n, "tokens"))
                self._push_lines(check_index(token, size, "token", unit))
        elif kind == "routes_edge":  # a click on an edge of the routes view: its layer and head
            self._click_route_edge(content.get("edge"))
        else:
            raise ArgumentError(f"unknown message type {kind!r} from the page; expected 'painted', 'page_closed', "
                                "'tile_request', 'png', 'svg', 'lines_hover' or 'routes_edge'")
