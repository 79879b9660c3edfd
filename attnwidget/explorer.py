"""show(): the AttentionWidget composed with bqplot metric panels, all linked through traitlets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import bqplot as bq
import ipywidgets as w
import numpy as np
import traitlets as t

from .widget import AttentionWidget
from .errors import ArgumentTypeError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase
    from transformers.image_processing_base import ImageProcessingMixin

    from ._types import ImageInput, Showable, TextInput

DEFAULT_METRIC = "entropy"
#: The least width (px) the widget keeps with the bqplot panels beside it; below, they wrap under it.
PANELS_BESIDE = 620
PANEL_METRICS = ("entropy", "normalized_entropy", "sparsity", "locality", "mean_distance",
                 "focus_consistency", "sink_score", "max_weight", "previous", "induction", "duplicate")


class _MetricMap(bq.GridHeatMap):
    """A GridHeatMap whose click selection from the page reaches Python observers.

    The page sends ``selected`` as nested lists, which bqplot turns into an object array that it
    then cannot serialise: ipywidgets' echo check raised ``Unsupported dtype object`` before any
    observer ran, so clicking the map never selected anything (bqplot/bqplot#1632). Cast to int.
    """

    @t.validate("selected")
    def _int_cells(self, proposal: t.Bunch) -> np.ndarray | None:
        value = proposal["value"]
        return None if value is None else np.array(np.asarray(value).tolist(), dtype=np.int64).reshape(-1, 2)


class Explorer(w.VBox):
    """The attention widget plus a ``[layer x head]`` metric map and a per-layer metric chart.

    Clicking a metric-map cell selects that layer and head in the widget; selecting in the widget
    highlights the cell and the layer in the chart. ``explorer.widget`` holds the selection traits
    (``layer``, ``head``, ``hovered_token``, ``selected_tokens``, ``view``, ``threshold``).
    """

    def __init__(self, widget: AttentionWidget, metric: str = DEFAULT_METRIC) -> None:
        self.widget = widget
        self.metric = w.Dropdown(options=list(PANEL_METRICS), value=metric, description="metric",
                                 layout=w.Layout(width="260px"))
        self._map_scale = bq.ColorScale(scheme="viridis")
        rows = bq.OrdinalScale(reverse=True)
        cols = bq.OrdinalScale()
        self.metric_map = _MetricMap(
            color=np.zeros((widget.num_layers, widget.num_heads)),
            row=np.arange(widget.num_layers), column=np.arange(widget.num_heads),
            scales={"row": rows, "column": cols, "color": self._map_scale},
            interactions={"click": "select"}, selected_style={"stroke": "red", "stroke-width": "3"},
            anchor_style={"stroke": "red", "stroke-width": "3"},
        )
        map_axes = [bq.Axis(scale=cols, label="head"), bq.Axis(scale=rows, side="left", label="layer"),
                    bq.ColorAxis(scale=self._map_scale, side="right")]
        self.map_figure = bq.Figure(marks=[self.metric_map], axes=map_axes, title="metric per head",
                                    layout=w.Layout(width="360px", height="420px"),
                                    fig_margin={"top": 40, "bottom": 40, "left": 50, "right": 70})
        x, y = bq.LinearScale(), bq.LinearScale()
        self.layer_line = bq.Lines(x=np.arange(widget.num_layers), y=np.zeros(widget.num_layers),
                                   scales={"x": x, "y": y}, marker="circle", marker_size=16)
        self.layer_marker = bq.Scatter(x=[widget.layer], y=[0.0], scales={"x": x, "y": y},
                                       colors=["red"], default_size=90)
        self.layer_figure = bq.Figure(
            marks=[self.layer_line, self.layer_marker], title="mean over heads per layer",
            axes=[bq.Axis(scale=x, label="layer"), bq.Axis(scale=y, side="left")],
            layout=w.Layout(width="360px", height="260px"),
            fig_margin={"top": 40, "bottom": 40, "left": 50, "right": 20})
        panels = w.VBox([self.metric, self.map_figure, self.layer_figure], layout=w.Layout(flex="0 0 auto"))
        # The panels (360 px) sit right of the widget while it keeps at least PANELS_BESIDE px (an output
        # area of about 1000 px or more); in a narrower one they wrap under it. The widget takes the rest
        # of the row and lays itself out for that width (min_width 0: it may shrink below its content,
        # which it then fits again).
        widget.layout.flex = f"1 1 {PANELS_BESIDE}px"
        widget.layout.min_width = "0"
        super().__init__([w.HBox([widget, panels], layout=w.Layout(flex_flow="row wrap",
                                                                   align_items="flex-start"))])
        self.metric.observe(self._on_metric, "value")
        self.metric_map.observe(self._on_map_select, "selected")
        widget.observe(self._on_widget_select, ["layer", "head"])
        widget.observe(self._on_metric, "layers_done")  # the panels fill in as the background pass goes
        widget.observe(self._on_part, "part")  # an encoder-decoder capture: the panels follow the part
        self._on_metric(None)
        self._on_widget_select(None)

    @property
    def capture(self) -> Showable:
        """The Capture shown (same as ``explorer.widget.capture``)."""
        return self.widget.capture

    def __repr__(self) -> str:
        return f"Explorer({self.widget!r}, metric={self.metric.value!r})"

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every layer is passed over (the grid and the panels are complete); see
        :meth:`AttentionWidget.wait`."""
        done = self.widget.wait(timeout)
        if done:
            self._on_metric(None)
        return done

    def _on_part(self, change: object) -> None:
        """Another part (encoder, decoder, cross) may have other layer and head counts: resize the panels."""
        widget = self.widget
        with self.metric_map.hold_sync(), self.layer_line.hold_sync():
            self.metric_map.row = np.arange(widget.num_layers)
            self.metric_map.column = np.arange(widget.num_heads)
            self.layer_line.x = np.arange(widget.num_layers)
            self._on_metric(None)

    def _on_metric(self, change: object) -> None:
        values = np.asarray(self.widget.metric_grid(self.metric.value), dtype=np.float64)
        if values.shape != (len(self.metric_map.row), len(self.metric_map.column)):
            return  # a part switch under way: _on_part resizes the panels, then fills them
        self.metric_map.color = values
        counts = np.isfinite(values).sum(axis=1)
        sums = np.where(np.isfinite(values), values, 0).sum(axis=1)
        self.layer_line.y = np.divide(sums, counts, out=np.full(len(counts), np.nan), where=counts > 0)
        part = f" ({self.widget.part})" if self.widget.part else ""
        self.map_figure.title = f"{self.metric.value} per head{part}"
        self._on_widget_select(None)

    def _on_map_select(self, change: object) -> None:
        selected = self.metric_map.selected
        if selected is None or len(selected) == 0:
            return
        layer, head = (int(v) for v in np.asarray(selected)[-1])
        with self.widget.hold_sync():
            self.widget.layer, self.widget.head = layer, head

    def _on_widget_select(self, change: object) -> None:
        layer, head = self.widget.layer, self.widget.head
        y = np.asarray(self.layer_line.y, dtype=np.float64)
        self.layer_marker.x, self.layer_marker.y = [layer], [float(y[layer]) if len(y) else 0.0]
        target = None if head is None else [[layer, head]]
        current = self.metric_map.selected
        if (target is None and current is not None) or (target is not None and (
                current is None or np.asarray(current).tolist() != target)):
            self.metric_map.selected = target


def show(model_or_capture: PreTrainedModel | Showable,
         tokenizer: PreTrainedTokenizerBase | ImageProcessingMixin | None = None,
         text: TextInput | ImageInput | None = None, *, target: TextInput | None = None, generate: int = 0,
         metric: str = DEFAULT_METRIC, tokens: Sequence[str] | None = None, key_tokens: Sequence[str] | None = None,
         **widget_kwargs: Any) -> Explorer:
    """One call to an explorer: ``show(model, tokenizer, text)`` or ``show(capture)`` (a Capture, or an
    encoder-decoder ``Seq2SeqCapture``: one part at a time, ``part="cross"`` by default). For an
    encoder-decoder model, ``target=`` (the decoder's text) or ``generate=N`` go to ``capture``; for a
    vision model, ``tokenizer`` is its image processor and ``text`` the picture.

    ``show(output, tokens=..., key_tokens=...)`` shows attention you already have: an encoder-decoder
    model's output run with ``output_attentions=True`` (``Seq2SeqLMOutput`` and kin; ``tokens`` are the
    target's strings, ``key_tokens`` the source's), or an ``output_attentions`` tuple or array
    (``key_tokens`` with a rectangular one: cross-attention over those source tokens). See
    :class:`AttentionWidget`.

    Extra keyword arguments go to :class:`AttentionWidget` (``part``, ``layer``, ``head``, ``view``,
    ``threshold``, ``color_by``, ``rollout_fusion``, ``discard_ratio``, ``background``, ``progress``).
    It returns as soon as the selected layer is ready; the other layers are passed over in the
    background (``explorer.wait()`` waits).
    """
    from .capture import capture as run_capture

    if tokenizer is None and text is None:
        if target is not None or generate:
            raise ArgumentTypeError("show(capture) takes no target= or generate=: they are for "
                                    "show(model, tokenizer, text, target=...)")
        cap = model_or_capture
    elif tokenizer is None or text is None:
        raise ArgumentTypeError("show expects show(model, tokenizer, text) or show(capture); got a partial call")
    elif tokens is not None or key_tokens is not None:
        raise ArgumentTypeError("show(model, tokenizer, text) takes its tokens from the tokenizer: tokens= and "
                                "key_tokens= are for show(capture_or_attentions, tokens=..., key_tokens=...)")
    else:
        extra: dict[str, Any] = {"target": target} if target is not None else {}
        cap = run_capture(model_or_capture, tokenizer, text, generate=generate, **extra)
    return Explorer(AttentionWidget(cap, tokens=tokens, key_tokens=key_tokens, **widget_kwargs), metric=metric)
