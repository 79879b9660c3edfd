"""What the widget's views measure: attention weights, or value-weighted contributions (issue 13).

A mixin of :class:`attnwidget.AttentionWidget`. ``measure="contribution"`` shows Kobayashi et al.'s
``||alpha_ij f_h(x_j)||`` (a head) and ``||sum_h alpha_ij^h f_h(x_j)||`` (the layer, in the slot the
head mean has for weights) with each row normalised to sum to 1, through
:class:`attnwidget.contributions.ContributionSource`: the grid, heatmap (attention and rollout kinds),
lines, text, image and graph views and the rollout strip read it as they read weights, so colour
scales, thresholds and rollout apply unchanged (raw norms: ``capture.contributions``). Each (part,
measure) has its own :class:`~attnwidget._widget_parts.PartState` (pattern engine, fused-pass summary,
caches), opened on first use and kept; unlike a part switch, a measure switch keeps the layer, head,
view and the hovered and selected tokens. The query-key and routes views do not depend on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast
from ._checks import check_choice
from ._widget_host import WidgetHost
from ._widget_parts import PartState, open_part
from .errors import ArgumentError

if TYPE_CHECKING:
    from .capture import Capture

#: The measures a widget knows, in toolbar order.
MEASURES = ("attention", "contribution")

NEEDS_VALUES = ("measure='contribution' needs the values and output projection of every layer, which this "
                "{what} did not record. Capture with values: attnwidget.capture(model, tokenizer, text, "
                "values=True), then AttentionWidget(capture, measure='contribution').")


def head_label(measure: str, head: int | None) -> str:
    """The selected head in words: "head 2"; the head-mean slot is "mean of heads" for weights and "all
    heads" for contributions (the layer measure ``||sum_h alpha f_h(x)||``, not a mean)."""
    if head is not None:
        return f"head {head}"
    return "all heads" if measure == "contribution" else "mean of heads"


def measure_label(measure: str, head: int | None) -> str:
    """What the views show beyond weights, for titles and the status line ("" for attention):
    "contribution ||αf(x)|| (row share)" for a head, "contribution ||Σ αf(x)|| (row share)" for the layer."""
    if measure != "contribution":
        return ""
    return "contribution ||αf(x)|| (row share)" if head is not None else "contribution ||Σ αf(x)|| (row share)"


def selection_label(measure: str, layer: int, head: int | None) -> str:
    """"layer 3, head 2", "layer 3, mean of heads", "layer 3, head 2 · contribution ||αf(x)|| (row share)"."""
    line = f"layer {layer}, {head_label(measure, head)}"
    extra = measure_label(measure, head)
    return f"{line} · {extra}" if extra else line


class Measures(WidgetHost):
    """The measure switch of a widget (see the module docstring). Needs ``Parts``' ``_states``,
    ``_measure_states``, ``_use``, the ``measure``/``measures`` traits and the background pass."""

    def _check_measure(self, value: object) -> str:
        value = check_choice(value, MEASURES, "measure")
        if value not in self._state.measures:
            what = f"part ({self._state.name!r})" if self._state.name else "capture"
            raise ArgumentError(NEEDS_VALUES.format(what=what))
        return value

    def _measure_state(self, name: str, measure: str) -> PartState:
        """The state of part ``name`` for ``measure`` (opened on first use and kept)."""
        attention = self._states.get(name) or self._part_state(name)
        if measure == "attention":
            return attention
        state = self._measure_states.get((name, measure))
        if state is None:
            from .contributions import ContributionSource

            # _check_measure let only a part recorded with values through: its base is a Capture
            state = open_part(ContributionSource(cast("Capture", attention.base)), name, attention.tokens)
            state.measure, state.base, state.routes = measure, attention.base, attention.routes
            state.key_tokens, state.views = attention.key_tokens, attention.views
            self._measure_states[(name, measure)] = state
        return state

    def _noun(self) -> str:
        """"attention" or "contribution": what a text row or the rollout is made of."""
        return self._state.measure

    def _switch_measure(self, measure: str) -> None:
        """Show ``measure`` of the part shown: the grid, the heatmap and the views follow; the layer,
        head, view and the hovered and selected tokens stay. Its background pass starts (a measure
        already passed over is not passed again)."""
        if measure != self._state.measure:
            name = self._state.name
            self._swap(lambda: self._measure_state(name, measure), self._show_measure, "measure")

    def _show_measure(self, state: PartState) -> None:
        self._use(state)
        self._quiet = True
        try:
            state.summary.layer(self.layer)  # first paint needs only this layer
            self._flow_row, self._pending_row = None, None  # both belong to the other measure
            with self.hold_sync():
                self._repaint(state)
        finally:
            self._quiet = False
