"""The widget's background pass over every layer, and its worker thread for slow answers.

A mixin of :class:`attnwidget.AttentionWidget`: the constructor computes the selected layer and
returns; this pass computes the others on a thread, nearest layers first, and the grid, the progress
line and the explorer's panels fill in as each layer finishes. ``close()`` stops it after its current
layer; so does the interpreter's exit.
"""

from __future__ import annotations

import atexit
import sys
import threading
import weakref
from typing import TYPE_CHECKING

from ._progress import make_bar
from ._summary import estimate_seconds
from ._widget_host import WidgetHost

if TYPE_CHECKING:
    from ._engine import LayerSummary
    from ._types import Progress
    from ._widget_parts import PartState

#: The background pass starts when the page says it has painted the widget (so the browser, on the
#: same cores, is not slowed by it), when ``wait()`` is called, or after this many seconds with no page.
START_AFTER_SECONDS = 3.0
_RUNNING: "weakref.WeakSet[BackgroundPass]" = weakref.WeakSet()  # widgets whose background pass runs


@atexit.register
def _stop_passes() -> None:
    """At interpreter exit, stop every background pass and wait for it (at most one layer): a thread
    left inside compiled code while the interpreter tears down aborts the process."""
    widgets = list(_RUNNING)
    for widget in widgets:
        widget._stop.set()
        widget._go.set()
        widget._jobs.shutdown(wait=False, cancel_futures=True)
    for widget in widgets:
        for thread in getattr(widget, "_threads", ()):
            thread.join(timeout=60)


class _Until:
    """The ``stop`` of one pass: set when the widget closes or shows another part (a newer pass)."""

    def __init__(self, widget: BackgroundPass, generation: int) -> None:
        self.widget, self.generation = widget, generation

    def is_set(self) -> bool:
        return self.widget._stop.is_set() or self.widget._pass_generation != self.generation


class BackgroundPass(WidgetHost):
    """The background pass of a widget (see the module docstring), over the part shown (an
    encoder-decoder capture's part switch starts one for the new part; the previous one stops after
    its current layer). Needs ``_state``, ``_lock``, ``_stop``, ``_go``, ``_thread``, ``_threads``,
    ``_pass_generation`` and ``_jobs`` set by the widget's constructor."""

    def _start_pass(self, background: bool, progress: Progress) -> None:
        state, generation = self._state, self._pass_generation
        summary, layers = state.summary, state.engine.num_layers
        todo = layers - len(summary.done)
        if not todo:
            self._pass_done(state)
            return
        measure = " contribution" if state.measure != "attention" else ""
        what = f"attnwidget {state.name}{measure} layers" if state.name else f"attnwidget{measure} layers"
        bar = make_bar(todo, what, progress, estimate_seconds(state.engine, todo))
        order = sorted(range(layers), key=lambda l: abs(l - self.layer))  # near ones first

        def on_layer(layer: int, result: LayerSummary) -> None:
            self._layer_done(state)

        if not background:
            try:
                summary.run(order, on_layer=on_layer, progress=bar)
            finally:
                bar.close()
            self._pass_done(state)
            return

        def work() -> None:
            self._go.wait(START_AFTER_SECONDS)
            try:
                if summary.run(order, stop=_Until(self, generation), on_layer=on_layer, progress=bar):
                    self._pass_done(state)
            except Exception as error:  # noqa: BLE001 - shown in the page, not lost in a thread
                if self._state is state:
                    self.progress = f"the background pass stopped: {type(error).__name__}: {error}"
                raise
            finally:
                bar.close()

        self._threads = [thread for thread in self._threads if thread.is_alive()]
        self._thread = threading.Thread(target=work, name="attnwidget-pass", daemon=True)
        self._threads.append(self._thread)
        _RUNNING.add(self)
        self._thread.start()

    def _layer_done(self, state: PartState) -> None:
        done = len(state.summary.done)
        eta = state.summary.eta()
        with self._lock:
            if self._state is not state:  # the page shows another part now
                return
            self.grid_data = self._grid()
            what = "contribution layers" if state.measure != "attention" else "layers"
            self.progress = f"{what} {done}/{self.num_layers}" + (f", {eta:.0f} s left" if eta is not None else "")
            self.layers_done = done

    def _pass_done(self, state: PartState) -> None:
        with self._lock:
            if self._state is not state:
                return
            self.grid_data = self._grid()
            self.layers_done = state.engine.num_layers
            self.progress = ""

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the background pass over every layer of the part shown and for the answers still
        being computed (rollout rows of long inputs); True when every layer is done."""
        self._go.set()
        if self._thread is not None:
            self._thread.join(timeout)
        try:
            self._jobs.submit(lambda: None).result(timeout)  # one worker: queued answers come first
        except RuntimeError:  # the widget was closed
            pass
        return self._summary.complete()

    def close(self) -> None:
        """Stop the background pass and the worker, release the head-mean patterns kept for rollout
        rows (up to 1.25 GiB on long inputs; the metrics stay cached on the capture), close the widget."""
        stop, jobs = getattr(self, "_stop", None), getattr(self, "_jobs", None)
        if stop is not None:
            stop.set()
            self._go.set()
        if jobs is not None:
            jobs.shutdown(wait=False, cancel_futures=True)
        for thread in getattr(self, "_threads", ()):
            if thread.is_alive():
                thread.join(timeout=60)  # it stops after its current layer
        if not sys.is_finalizing():  # from Widget.__del__ at exit the memory goes anyway, and imports fail
            for state in (self._all_states() if hasattr(self, "_states") else ()):
                state.summary.release_means()
        super().close()
