"""The widget's rows over all layers (rollout, attention flow) and the rows the text view colours by.

A mixin of :class:`attnwidget.AttentionWidget`. Short inputs keep the whole rollout matrix (computed
once per part and per set of rollout options); long ones compute one row at a time on the widget's
worker thread, so a hover never waits for a pass over every layer. The options are the widget's
``rollout_fusion`` and ``discard_ratio`` traits (``attnwidget.rollout``'s ``head_fusion`` and
``discard_ratio``); with the head mean and nothing discarded, rows of long inputs reuse the head-mean
patterns the background pass kept. Cross-attention has no rollout (see attnwidget._widget_parts).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from . import reduce as r
from ._optional import has
from ._widget_data import MEAN
from ._widget_host import WidgetHost
from ._widget_measures import head_label
from .errors import MissingExtraError

if TYPE_CHECKING:
    from ._types import Progress

#: The head fusions rollout offers (``attnwidget.rollout``'s ``head_fusion``).
ROLLOUT_FUSIONS = ("mean", "max", "min")

#: Up to this length the widget keeps the whole rollout matrix (the heatmap can then show it).
ROLLOUT_MATRIX_TOKENS = 1024


def _matrix_tokens() -> int:
    from . import widget  # tests lower attnwidget.widget.ROLLOUT_MATRIX_TOKENS

    return widget.ROLLOUT_MATRIX_TOKENS


def rollout_label(options: tuple[str, float] = MEAN) -> str:
    """What a rollout with ``options`` (``(head_fusion, discard_ratio)``) is, in words:
    "rollout (mean of heads)", "rollout (max of heads, lowest 90% discarded)"."""
    fusion, discard = options
    dropped = f", lowest {discard * 100:.4g}% discarded" if discard > 0 else ""
    return f"rollout ({fusion} of heads{dropped})"


class RolloutRows(WidgetHost):
    """Rollout, flow and text rows of a widget. Needs ``_state``, ``_engine``, ``_data``, ``_capture``,
    ``_lock``, ``_jobs``, ``_flow_row``, ``_pending_row``, the selection traits and the rollout options
    (``rollout_fusion``, ``discard_ratio``)."""

    def _rollout_options(self) -> tuple[str, float]:
        """``(head_fusion, discard_ratio)`` of the rollout shown: the cache key of its rows."""
        return (self.rollout_fusion, float(self.discard_ratio))

    def rollout_label(self) -> str:
        """The rollout shown, in words, e.g. "rollout (max of heads, lowest 90% discarded)", or
        "contribution rollout (layer measure)" with ``measure="contribution"``."""
        return self._rollout_label(self._rollout_options())

    def _rollout_label(self, options: tuple[str, float]) -> str:
        label = rollout_label(options)
        if self._state.measure != "attention":  # Kobayashi et al.'s norm-based rollout; "mean" is the layer's
            label = f"{self._state.measure} " + label.replace("mean of heads", "layer measure")
        return label

    def _push_text(self) -> None:
        token = self._focus()
        values, note = self._text_values(token)
        data: dict[str, Any] = {"token": int(token), "source": self.text_source, "note": note}
        if values is not None:
            data["values"] = r.wire(np.asarray(values, dtype=np.float32))
        self.text_data = data

    def _text_values(self, token: int) -> tuple[np.ndarray | None, str]:
        """``(values [keys] or None, note)``: the row of ``token`` from the text source (what the text
        and image views colour by)."""
        if self.text_source == "attention":
            measure = self._state.measure
            what = head_label(measure, self.head) + (" (row share)" if measure != "attention" else "")
            row = self._engine.matrix(self.layer, self.head, [token])[0]
            if self._state.is_cross:
                noun = "cross-attention" if measure == "attention" else f"cross-attention {measure}"
                return row, f"{noun} of target token {token} over the source, layer {self.layer}, {what}"
            return row, f"{measure} of token {token}, layer {self.layer}, {what}"
        self._refuse_cross_rollout()
        if self.text_source == "flow":
            if self._flow_row is not None and self._flow_row[0] == token:
                return self._flow_row[1], f"attention flow into token {token}"
            if not has("numba"):
                return None, "no attention flow: it needs numba (pip install \"attnwidget[flow]\")"
            return None, f"no attention flow for token {token}: call widget.compute_flow({token})"
        options = self._rollout_options()
        cached = self._data.cached_rollout(token, options)
        if cached is None and (self._engine.n <= _matrix_tokens() or token != self.hovered_token):
            cached = self._rollout_now_or_later(token)
        label = self._rollout_label(options)
        if cached is None:
            return None, f"{label} of token {token}: click it to compute ({self._engine.n} tokens)"
        return cached, f"{label} of token {token} over all layers"

    def rollout_matrix(self) -> np.ndarray:
        """Attention rollout over all layers of the part shown, with the widget's ``rollout_fusion``
        and ``discard_ratio`` (computed once per options, cached): float ``[query, key]``, equal to
        ``attnwidget.rollout(part_capture, head_fusion=..., discard_ratio=...)``. Refused for
        cross-attention, which has none on its own."""
        self._refuse_cross_rollout()
        return self._data.rollout_matrix(self._capture, self._rollout_options())

    def rollout_values(self, row: int) -> np.ndarray:
        """The rollout row of one query token with the widget's ``rollout_fusion`` and ``discard_ratio``
        (computed now): ``attnwidget.rollout_row(part_capture, row, head_fusion=..., discard_ratio=...)``.

        Up to ``ROLLOUT_MATRIX_TOKENS`` tokens the whole matrix is computed once and rows are looked
        up; beyond, rows are pushed through the head-mean patterns the background pass kept (head
        mean, nothing discarded) or computed from every head of every layer (other options)."""
        self._refuse_cross_rollout()
        return self._data.rollout_row(self._capture, row, _matrix_tokens(), self._rollout_options())

    def _rollout_now_or_later(self, row: int) -> np.ndarray | None:
        """The rollout row if it is cheap now (short inputs), else start it on the worker and return None."""
        if self._engine.n <= _matrix_tokens():
            return self.rollout_values(row)
        options = self._rollout_options()
        if self._pending_row == (options, row):
            return None
        self._pending_row = (options, row)
        label = self._rollout_label(options)
        self.status = f"computing the {label} row of token {row} ({self._engine.n} tokens)..."
        state, data, capture = self._state, self._data, self._capture

        def work() -> np.ndarray:
            values = data.rollout_row(capture, row, _matrix_tokens(), options)
            with self._lock:
                if self._state is not state:  # the page switched parts meanwhile: the row is cached
                    return values
                if self._pending_row == (options, row):
                    self._pending_row = None
                if self._rollout_options() != options:  # the options changed meanwhile: cached, not shown
                    return values
                self.status = f"{label} row of token {row} ready"
                # the natural row stands in for a long hover's row while the strip shows other options
                if self._focus() == row or row in self.selected_tokens or row == self._natural_row():
                    self._push_view()
            return values

        self._jobs.submit(work)
        return None

    def _push_rollout(self) -> None:
        row = self._focus()
        options = self._rollout_options()
        values = self._data.cached_rollout(row, options)
        if values is None:
            long_hover = self._engine.n > _matrix_tokens() and row == self.hovered_token
            if long_hover:
                # A long sequence: a hover must not start a pass over every layer; clicks do.
                self.status = f"rollout: click a token to compute its row ({self._engine.n} tokens)"
                if self.rollout_data and self.rollout_data.get("options") == list(options):
                    return  # the row shown stays (it has the current options)
                row = self._natural_row()
                values = self._data.cached_rollout(row, options)
            if values is None:
                values = self._rollout_now_or_later(row)
        if values is None:
            return
        data: dict[str, Any] = {"values": r.wire(np.asarray(values, dtype=np.float32)), "row": int(row),
                "label": self._rollout_label(options), "options": list(options)}
        if self._flow_row is not None and self._flow_row[0] == row:
            data["flow"] = r.wire(self._flow_row[1].astype(np.float32))
        self.rollout_data = data

    def compute_flow(self, row: int | None = None, progress: Progress = None) -> np.ndarray:
        """Exact attention flow into ``row`` (default: the focused token); shown in the rollout, text
        and image views. Long inputs take minutes (``progress`` shows a bar; see ``attention_flow``).
        The flow fuses heads by their mean, whatever ``rollout_fusion`` and ``discard_ratio`` say
        (``attention_flow`` has no discarding). Refused for cross-attention (no rollout, hence no flow,
        on its own). Without numba the refusal (``MissingExtraError``, naming
        ``pip install "attnwidget[flow]"``) is raised and also shown in the status line."""
        from .rollout import attention_flow_row

        self._refuse_cross_rollout()
        row = self._focus() if row is None else int(row)
        try:
            result = attention_flow_row(self._capture, row, progress=progress)
        except MissingExtraError as error:
            self._report("compute_flow", error)
            raise
        self._flow_row = (result.row, result.values)
        self._push_view()
        return result.values
