"""The parts of an encoder-decoder capture in one widget: encoder, decoder and cross-attention.

A mixin of :class:`attnwidget.AttentionWidget`. A plain capture is one part (named ""); a
:class:`~attnwidget.seq2seq.Seq2SeqCapture` has three, and the widget shows one at a time: each part
gets its own pattern engine, fused-pass summary and caches (:class:`PartState`, opened on first use
and kept), so switching back to a part already passed over costs nothing. Switching swaps what every
view shows and resets the selection (:meth:`Parts._switch_part`).

Cross-attention is ``[target, source]``: its query rows are the decoder's tokens (``tokens``), its key
columns the encoder's (``key_tokens``). It has no rollout on its own (rollout chains one part's
``[token, token]`` layers) and no graph view (its bipartite picture is the lines view).

A part recorded with values (``capture(..., values=True)``) has a second state for the widget's
``measure="contribution"``: the same machinery over ``ContributionSource(part capture)``, opened on first
use and kept (attnwidget._widget_measures).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from . import reduce as r
from ._checks import check_choice
from ._summary import Summary, default_options, summary_for
from ._widget_data import ViewData
from ._widget_host import WidgetHost
from ._engine import CROSS_ROLLOUT
from .errors import ArgumentError, ArgumentTypeError

if TYPE_CHECKING:
    from ._types import AttentionSource, Showable
PARTS = ("encoder", "decoder", "cross")
#: The part an encoder-decoder capture opens on: cross-attention, the view BertViz users come for.
DEFAULT_PART = "cross"
#: The views a part can offer without a kernel (exported pages show these).
ALL_VIEWS = ("heatmap", "text", "lines", "graph", "rollout", "image")
#: Views that ask the kernel for more than weights: one score taken apart (recorded queries and keys),
#: the information-flow routes (values, self-attention). Offered before "image" in the toolbar.
KERNEL_VIEWS = ("query-key", "routes")
NO_CROSS_ROLLOUT = (CROSS_ROLLOUT + ". Set part='encoder' or part='decoder' for rollout and flow; "
                    "cross-attention shows in the heatmap, lines, text and grid.")
NO_CROSS_GRAPH = (
    "the graph view draws one sequence's tokens attending to each other; cross-attention joins two "
    "sequences (target -> source), and its bipartite picture is the lines view: use view='lines'."
)
NO_IMAGE = ("the image view needs a vision capture (capture.image, from a ViT-like model); this capture has "
            "no picture. Use the heatmap, text, lines, graph or rollout view.")


def parts_of(obj: object) -> dict[str, Any] | None:
    """``{"encoder": Capture, "decoder": Capture, "cross": Capture}`` of an encoder-decoder capture, else None."""
    parts = getattr(obj, "parts", None)
    if isinstance(parts, dict) and set(parts) == set(PARTS):
        return parts
    return None


@dataclass
class PartState:
    """What the widget holds for one part: its capture, engine, summary, caches and token lists."""

    name: str  # "" for a plain capture
    capture: AttentionSource
    engine: r.Engine
    summary: Summary
    data: ViewData
    tokens: list[str]
    key_tokens: list[str]
    views: tuple[str, ...] = field(default=())
    measure: str = "attention"  # what the views show: "attention" weights or row-normalised "contribution"
    # the part's own Capture (``capture`` is a ContributionSource over it for "contribution"); the
    # default None stands for ``capture`` and never stays: __post_init__ replaces it, hence the ignore
    base: AttentionSource = None  # type: ignore[assignment]
    # (target, threshold) -> flow_routes graph (a networkx.DiGraph), shared by the measures
    routes: dict[tuple[int, float], Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.base is None:
            self.base = self.capture

    @property
    def n_keys(self) -> int:
        return len(self.key_tokens)

    @property
    def is_cross(self) -> bool:
        """Queries and keys from two sequences (cross-attention): no rollout, no graph view."""
        return self.name == "cross" or bool(getattr(self.engine, "is_cross", self.n_keys != self.engine.n))

    @property
    def has_image(self) -> bool:
        capture = self.capture
        return getattr(capture, "image", None) is not None and getattr(capture, "patch_grid", None) is not None

    @property
    def has_query_key(self) -> bool:
        """The part recorded the queries and keys its layers used (not weights only, not an array)."""
        records = getattr(self.base, "_records", None) or []
        return bool(records) and all(hasattr(record, "query") for record in records)

    @property
    def has_values(self) -> bool:
        """The part recorded values and output projections (``capture(..., values=True)``)."""
        return bool(getattr(self.base, "has_values", False)) if self.has_query_key else False

    @property
    def measures(self) -> list[str]:
        """The measures the part offers: 'attention', and 'contribution' when it recorded values."""
        return ["attention", "contribution"] if self.has_values else ["attention"]


def open_part(capture: AttentionSource, name: str, tokens: Sequence[str] | None = None) -> PartState:
    """A :class:`PartState` over ``capture`` (``tokens``: the page's strings, default the capture's)."""
    engine = r.engine(capture)
    if tokens is None:
        tokens = getattr(capture, "tokens", None) or [str(i) for i in range(engine.n)]
    tokens = list(tokens)
    n_keys = int(getattr(engine, "n_keys", engine.n))
    cross = name == "cross" or bool(getattr(engine, "is_cross", n_keys != engine.n))
    key_tokens = list(getattr(capture, "key_tokens", None) or []) if cross else tokens
    if len(key_tokens) != n_keys:
        key_tokens = [str(j) for j in range(n_keys)]
    summary = summary_for(capture, default_options(capture), keep_means=not cross)
    state = PartState(name=name, capture=capture, engine=engine, summary=summary, data=ViewData(engine, summary),
                      tokens=tokens, key_tokens=key_tokens)
    offered = [v for v in ALL_VIEWS if not (cross and v in ("graph", "rollout")) and (v != "image" or state.has_image)]
    if state.has_query_key:
        offered.insert(offered.index("image") if "image" in offered else len(offered), "query-key")
    if state.has_values and not cross:
        offered.insert(offered.index("query-key") + 1, "routes")
    state.views = tuple(offered)
    return state


def _key_tokens(state: PartState, key_tokens: Sequence[str]) -> list[str]:
    """``key_tokens`` checked as the key strings of a plain capture's cross-attention."""
    if not state.is_cross:
        raise ArgumentError("key_tokens= names the keys of cross-attention (the source's tokens); this capture "
                            "is self-attention, whose keys are its tokens: leave key_tokens out.")
    if isinstance(key_tokens, str) or not all(isinstance(token, str) for token in key_tokens):
        raise ArgumentTypeError(f"key_tokens must be a list of strings, one per key position; got "
                                f"{type(key_tokens).__name__}")
    key_tokens = list(key_tokens)
    if len(key_tokens) != state.n_keys:
        raise ArgumentError(f"key_tokens must hold one string per key position: {state.n_keys}; got {len(key_tokens)}.")
    return key_tokens


class Parts(WidgetHost):
    """Part bookkeeping of a widget (see the module docstring). Needs the widget's traits and
    ``_lock``; sets ``_state``, ``_engine``, ``_summary``, ``_data`` and ``_capture``."""

    def _open_parts(self, capture: Showable, part: str | None, tokens: Sequence[str] | None,
                    key_tokens: Sequence[str] | None = None) -> PartState:
        """The first part to show: ``part`` of an encoder-decoder capture (default :data:`DEFAULT_PART`),
        or the capture itself (part "", its strings relabelled by ``tokens`` and, for cross-attention,
        ``key_tokens``)."""
        self._source = capture
        self._parts = parts_of(capture)
        self._states: dict[str, PartState] = {}  # part -> its attention state
        self._measure_states: dict[tuple[str, str], PartState] = {}  # (part, measure) -> its state beyond attention
        if self._parts is None:
            if part not in (None, ""):
                raise ArgumentError(f"part={part!r} is for an encoder-decoder capture (Seq2SeqCapture); this "
                                    "capture has one part: leave part out.")
            state = open_part(cast("AttentionSource", capture), "", tokens)  # not an encoder-decoder capture
            if key_tokens is not None:
                state.key_tokens = _key_tokens(state, key_tokens)
        else:
            if tokens is not None or key_tokens is not None:
                raise ArgumentError("tokens= and key_tokens= relabel a plain capture; an encoder-decoder capture "
                                    "takes its parts' tokens (source and target): leave them out.")
            name = DEFAULT_PART if part is None else check_choice(part, PARTS, "part")
            state = open_part(self._parts[name], name)
        self._states[state.name] = state
        self._use(state)
        return state

    def _part_state(self, name: str) -> PartState:
        state = self._states.get(name)
        if state is None:  # a part not opened yet: a part of an encoder-decoder capture
            assert self._parts is not None
            state = self._states[name] = open_part(self._parts[name], name)
        return state

    def _use(self, state: PartState) -> None:
        self._state = state
        self._engine, self._summary, self._data, self._capture = state.engine, state.summary, state.data, state.capture

    def _all_states(self) -> list[PartState]:
        """Every state opened so far: each part's attention, and its other measures."""
        return [*self._states.values(), *self._measure_states.values()]

    @property
    def part_capture(self) -> AttentionSource:
        """The Capture of the part shown (``capture.parts[part]``; the capture itself for a plain one)."""
        return self._state.base

    def _check_part(self, value: object) -> str:
        if self._parts is None:
            if value != "":
                raise ArgumentError(f"part must be '' for this capture (it has one part); got {value!r}. Parts "
                                    "('encoder', 'decoder', 'cross') belong to an encoder-decoder capture.")
            return value
        return check_choice(value, PARTS, "part")

    def _check_view(self, value: object) -> str:
        if self._state.is_cross and value == "rollout":
            raise ArgumentError(NO_CROSS_ROLLOUT)
        if self._state.is_cross and value == "graph":
            raise ArgumentError(NO_CROSS_GRAPH)
        if value == "image" and not self._state.has_image:
            raise ArgumentError(NO_IMAGE)
        return check_choice(value, self._state.views, "view")

    def _refuse_cross_rollout(self) -> None:
        if self._state.is_cross:
            raise ArgumentError(NO_CROSS_ROLLOUT)

    def _switch_part(self, name: str) -> None:
        """Show part ``name``: every view, the grid and the token lists follow; the layer is clamped,
        a head the part lacks becomes the mean, hovered and selected tokens are cleared, and a view,
        heatmap kind or text source the part does not offer falls back to the heatmap / attention.
        The part's background pass starts (a part already passed over is not passed again)."""
        if name == self._state.name:
            return

        def make_state() -> PartState:
            attention = self._part_state(name)
            # the measure shown applies to the new part when it offers it, else its attention shows
            return self._measure_state(name, self.measure if self.measure in attention.measures else "attention")

        self._swap(make_state, self._show, "part")

    def _swap(self, make_state: Callable[[], PartState], show: Callable[[PartState], None], trait: str) -> None:
        """Show the state ``make_state()`` returns with ``show`` (a part or measure switch); if that
        raises, show the previous state again and put ``trait`` back, so the kernel's values stay
        consistent with the page's. Then the new state's background pass starts; the previous one stops
        after its current layer (a state already passed over is not passed again)."""
        old = self._state
        with self._lock:
            state = make_state()
            try:
                show(state)
            except Exception:
                show(old)
                self.set_trait(trait, old.name if trait == "part" else getattr(old, trait))
                raise
            self._pass_generation += 1
        self._start_pass(self._background, False)

    def _show(self, state: PartState) -> None:
        """Put ``state`` in the traits and push what the current view needs (observers held quiet)."""
        self._use(state)
        self._quiet = True
        try:
            engine = state.engine
            layer = min(self.layer, engine.num_layers - 1)
            head = self.head if self.head is None or self.head < engine.num_heads else None
            state.summary.layer(layer)  # first paint needs only this layer
            self._flow_row, self._pending_row = None, None
            with self.hold_sync():
                self.set_trait("views", list(state.views))
                self.set_trait("measures", list(state.measures))
                self.measure = state.measure
                self.hovered_token, self.selected_tokens = None, []
                self.query_key_cell, self.query_key_data, self.routes_data = None, {}, {}
                self.num_layers, self.num_heads, self.is_causal = engine.num_layers, engine.num_heads, engine.is_causal
                self.is_cross = state.is_cross
                self.tokens, self.key_tokens = state.tokens, state.key_tokens
                self.layer, self.head = layer, head
                self.routes_target = self._natural_row()
                if self.view not in state.views:
                    self.view = "heatmap"
                if state.is_cross:
                    self.heatmap_kind = "attention"
                    if self.text_source != "attention":
                        self.text_source = "attention"
                self._repaint(state)
        finally:
            self._quiet = False

    def _repaint(self, state: PartState) -> None:
        """Every view from ``state`` after a switch: the views' data cleared, the grid and progress of its
        background pass, the heatmap and the current view pushed (inside ``hold_sync``, quiet)."""
        self.lines_data, self.graph_data, self.rollout_data, self.text_data = {}, {}, {}, {}
        self.layers_done = len(state.summary.done)
        self.progress = ""
        self.grid_data = self._grid()
        self._push_selection()
        self._push_view()
