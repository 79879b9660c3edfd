"""What the mixins of :class:`attnwidget.AttentionWidget` share, said once for the type checker.

The widget is one class assembled from mixins (``_widget_*.py``), each of which reads traits, state
and methods that the widget or another mixin defines. For mypy each mixin derives from
:class:`WidgetHost`, which declares them (a mixin's own definition overrides the declaration, and mypy
checks that the two agree); at run time ``WidgetHost`` is ``object`` and ``TraitsHost`` is
``traitlets.HasTraits``, so the classes and their method resolution order are what they were.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import traitlets as t

if TYPE_CHECKING:
    import concurrent.futures
    import threading
    from collections.abc import Callable, Iterable, Sequence

    import numpy as np
    from ._engine import Engine
    from ._summary import Summary
    from ._types import Progress, Showable
    from ._widget_data import ViewData
    from ._widget_figures import FigureSave
    from ._widget_parts import PartState

    class WidgetHost(t.HasTraits):
        """The attributes the mixins read (see the module docstring)."""

        # -- traits of AttentionWidget (documented there) ------------------------------------------
        tokens: list[str]
        key_tokens: list[str]
        num_layers: int
        num_heads: int
        is_causal: bool
        is_cross: bool
        parts: list[str]
        views: list[str]
        measures: list[str]
        image: dict[str, Any]
        part: str
        layer: int
        head: int | None
        view: str
        hovered_token: int | None
        selected_tokens: list[int]
        heatmap_kind: str
        color_scale: str
        text_source: str
        threshold: float
        measure: str
        query_key_cell: list[int] | None
        routes_target: int
        routes_threshold: float
        rollout_fusion: str
        discard_ratio: float
        color_by: str | None
        status: str
        error: str
        progress: str
        layers_done: int
        model_name: str
        grid_data: dict[str, Any]
        heatmap_data: dict[str, Any]
        text_data: dict[str, Any]
        lines_data: dict[str, Any]
        graph_data: dict[str, Any]
        rollout_data: dict[str, Any]
        image_data: dict[str, Any]
        query_key_data: dict[str, Any]
        routes_data: dict[str, Any]

        # -- state set by AttentionWidget.__init__ ---------------------------------------------------
        _lines_direction: str
        _flow_row: tuple[int, np.ndarray] | None
        _png_requests: dict[int, FigureSave]
        _png_counter: int
        _lock: threading.RLock
        _stop: threading.Event
        _go: threading.Event
        _thread: threading.Thread | None
        _threads: list[threading.Thread]
        _pass_generation: int
        _background: bool
        _quiet: bool
        _jobs: concurrent.futures.ThreadPoolExecutor
        _pending_row: tuple[tuple[str, float], int] | None

        # -- state set by Parts (the part and measure shown) -----------------------------------------
        _source: Showable
        _parts: dict[str, Any] | None
        _states: dict[str, PartState]
        _measure_states: dict[tuple[str, str], PartState]
        _state: PartState
        _engine: Engine
        _summary: Summary
        _data: ViewData
        _capture: Any

        # -- methods one mixin calls on another (or on AttentionWidget) -------------------------------
        def _checked(self, values: dict[str, Any]) -> None: ...
        def _report(self, what: str, error: Exception) -> None: ...
        def _start_pass(self, background: bool, progress: Progress) -> None: ...
        def _use(self, state: PartState) -> None: ...
        def _part_state(self, name: str) -> PartState: ...
        def _all_states(self) -> list[PartState]: ...
        def _measure_state(self, name: str, measure: str) -> PartState: ...
        def _swap(self, make_state: Callable[[], PartState], show: Callable[[PartState], None], trait: str) -> None: ...
        def _repaint(self, state: PartState) -> None: ...
        def _refuse_cross_rollout(self) -> None: ...
        def _focus(self) -> int: ...
        def _natural_row(self) -> int: ...
        def _tile(self, row0: int = 0, col0: int = 0, rows: int | None = None, cols: int | None = None) -> dict[str, Any]: ...
        def _grid(self) -> dict[str, Any]: ...
        def _push_selection(self) -> None: ...
        def _push_view(self) -> None: ...
        def _push_lines(self, token: int) -> None: ...
        def _push_text(self) -> None: ...
        def _push_rollout(self) -> None: ...
        def _push_image(self) -> None: ...
        def _push_query_key(self) -> None: ...
        def _push_routes(self) -> None: ...
        def _text_values(self, token: int) -> tuple[np.ndarray | None, str]: ...
        def rollout_label(self) -> str: ...
        def rollout_matrix(self) -> np.ndarray: ...
        def _figure_answer(self, content: dict[str, Any], buffers: Sequence[bytes | memoryview]) -> None: ...
        def _click_route_edge(self, index: object) -> None: ...

        # -- ipywidgets.DOMWidget (untyped) ----------------------------------------------------------
        def send(self, content: dict[str, Any], buffers: list[bytes] | None = None) -> None: ...
        def send_state(self, key: str | Iterable[str] | None = None) -> None: ...
        def get_state(self, key: str | Iterable[str] | None = None, drop_defaults: bool = False) -> dict[str, Any]: ...
        def set_state(self, sync_data: dict[str, Any]) -> None: ...
        def hold_sync(self) -> Any: ...
        def on_msg(self, callback: Callable[..., Any], remove: bool = False) -> None: ...
        def close(self) -> None: ...
        keys: list[str]

    TraitsHost = WidgetHost
else:
    WidgetHost = object
    TraitsHost = t.HasTraits
