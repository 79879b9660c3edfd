"""The widget's rows over all layers (rollout, attention flow) and the rows the text view colours by.

A mixin of :class:`attnwidget.AttentionWidget`. Short inputs keep the whole rollout matrix (computed
once per part); long ones compute one row at a time on the widget's worker thread, so a hover never
waits for a pass over every layer. Cross-attention has no rollout (see attnwidget._widget_parts).
"""

from __future__ import annotations

import numpy as np

from . import reduce as r

#: Up to this length the widget keeps the whole rollout matrix (the heatmap can then show it).
ROLLOUT_MATRIX_TOKENS = 1024


def _matrix_tokens() -> int:
    from . import widget  # tests lower attnwidget.widget.ROLLOUT_MATRIX_TOKENS

    return widget.ROLLOUT_MATRIX_TOKENS


class RolloutRows:
    """Rollout, flow and text rows of a widget. Needs ``_state``, ``_engine``, ``_data``, ``_capture``,
    ``_lock``, ``_jobs``, ``_flow_row``, ``_pending_row`` and the selection traits."""

    def _push_text(self) -> None:
        token = self._focus()
        values, note = self._text_values(token)
        data = {"token": int(token), "source": self.text_source, "note": note}
        if values is not None:
            data["values"] = r.wire(np.asarray(values, dtype=np.float32))
        self.text_data = data

    def _text_values(self, token: int):
        """``(values [keys] or None, note)``: the row of ``token`` from the text source (what the text
        and image views colour by)."""
        if self.text_source == "attention":
            what = "mean of heads" if self.head is None else f"head {self.head}"
            row = self._engine.matrix(self.layer, self.head, [token])[0]
            if self._state.is_cross:
                return row, f"cross-attention of target token {token} over the source, layer {self.layer}, {what}"
            return row, f"attention of token {token}, layer {self.layer}, {what}"
        self._refuse_cross_rollout()
        if self.text_source == "flow":
            if self._flow_row is not None and self._flow_row[0] == token:
                return self._flow_row[1], f"attention flow into token {token}"
            return None, f"no attention flow for token {token}: call widget.compute_flow({token})"
        cached = self._data.cached_rollout(token)
        if cached is None and (self._engine.n <= _matrix_tokens() or token != self.hovered_token):
            cached = self._rollout_now_or_later(token)
        if cached is None:
            return None, f"rollout of token {token}: click it to compute ({self._engine.n} tokens)"
        return cached, f"rollout of token {token} over all layers"

    def rollout_matrix(self) -> np.ndarray:
        """Attention rollout over all layers of the part shown (computed once, cached): float
        ``[query, key]``. Refused for cross-attention, which has none on its own."""
        self._refuse_cross_rollout()
        return self._data.rollout_matrix(self._capture)

    def rollout_values(self, row: int) -> np.ndarray:
        """The rollout row of one query token (computed now; see ``attnwidget.rollout_row``).

        Up to ``ROLLOUT_MATRIX_TOKENS`` tokens the whole matrix is computed once and rows are looked
        up; beyond, rows are pushed through the head-mean patterns the background pass kept."""
        self._refuse_cross_rollout()
        return self._data.rollout_row(self._capture, row, _matrix_tokens())

    def _rollout_now_or_later(self, row: int):
        """The rollout row if it is cheap now (short inputs), else start it on the worker and return None."""
        if self._engine.n <= _matrix_tokens():
            return self.rollout_values(row)
        if self._pending_row == row:
            return None
        self._pending_row = row
        self.status = f"computing the rollout row of token {row} ({self._engine.n} tokens)..."
        state, data, capture = self._state, self._data, self._capture

        def work():
            values = data.rollout_row(capture, row, _matrix_tokens())
            with self._lock:
                if self._state is not state:  # the page switched parts meanwhile: the row is cached
                    return values
                self._pending_row = None
                self.status = f"rollout row of token {row} ready"
                if self._focus() == row or row in self.selected_tokens:
                    self._push_view()
            return values

        self._jobs.submit(work)
        return None

    def _push_rollout(self) -> None:
        row = self._focus()
        values = self._data.cached_rollout(row)
        if values is None:
            long_hover = self._engine.n > _matrix_tokens() and row == self.hovered_token
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
        """Exact attention flow into ``row`` (default: the focused token); shown in the rollout, text
        and image views. Long inputs take minutes (``progress`` shows a bar; see ``attention_flow``).
        Refused for cross-attention (no rollout, hence no flow, on its own)."""
        from .rollout import attention_flow_row

        self._refuse_cross_rollout()
        row = self._focus() if row is None else int(row)
        result = attention_flow_row(self._capture, row, progress=progress)
        self._flow_row = (result.row, result.values)
        self._push_view()
        return result.values
