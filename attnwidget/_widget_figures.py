"""Figures of the widget for papers and slides: ``save_png`` and ``save_svg``.

A mixin of :class:`attnwidget.AttentionWidget`. The page composes the figure (``js/src/figure.js``: the
title naming the model and what is shown, axis titles, tick labels, colour bars; never the hover
band, the tooltip or the selection outline) and sends the file's bytes back through the widget's
custom messages: ``{"type": "png_request" | "svg_request", "request_id", "view", "scale"}``, answered
``{"type": "png" | "svg", "request_id"}`` with the bytes as ``buffers[0]``, or with an ``"error"``. So
a figure needs a page that shows the widget, and the figure is what that page shows, in its theme.

Every failure raises in Python where it can be known at the call (a bad path or argument, no page
showing the widget), and is said in the status line (the ``error`` trait, red in the page) and the
``attnwidget`` log in every case, including a page that fails or does not answer in time.

In a notebook the page's answer reaches the kernel only when the kernel is free to read it: after
the cell that called ``save_png``, or while that cell ``await``-s the returned :class:`FigureSave`
(``await widget.save_png("fig.png")`` in a cell waits for the file and raises
:class:`~attnwidget.errors.SaveError` if the page fails or does not answer within ``timeout``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import pathlib
import threading
import time
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

import traitlets as t

from ._checks import check_choice, check_number
from ._widget_host import TraitsHost
from .errors import SaveError, SaveFolderError, SavePermissionError

if TYPE_CHECKING:
    from ._types import StrPath

log = logging.getLogger("attnwidget")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_VIEWS = ("current", "grid")
SVG_VIEWS = ("heatmap", "grid")
DEFAULT_TIMEOUT = 10.0


def in_kernel() -> bool:
    """Whether the code runs in a Jupyter kernel (where a widget can be displayed and answer)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipywidgets
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _in_kernel_cell() -> bool:
    """Whether this call runs in a Jupyter kernel's cell (its main thread), where the page's answer
    can arrive only after the cell, or while the cell awaits."""
    return threading.current_thread() is threading.main_thread() and in_kernel()


class FigureSave:
    """A figure that ``save_png`` / ``save_svg`` asked the page for, returned at once.

    ``done()`` says whether the page has answered (or the wait has timed out); ``result(timeout)``
    waits for it from another thread and returns the path, or raises
    :class:`~attnwidget.errors.SaveError`; ``await`` waits for it in a notebook cell (the kernel reads
    the page's answer while the cell awaits) and raises the same way. Without either, the file is
    written when the page answers (in a notebook: when the cell has finished), and the status line
    says "saved <path>" or what failed.
    """

    def __init__(self, widget: Figures, path: pathlib.Path, kind: str, view: str, timeout: float) -> None:
        self.path = path
        self.kind = kind
        self.view = view
        self.timeout = timeout
        self._widget = widget
        self._event = threading.Event()
        self._error: SaveError | None = None
        self._timer: threading.Timer | None = None
        self._outcome = threading.Lock()  # one outcome: the watchdog, result() and the page may race

    # -- state -----------------------------------------------------------------------------------
    def done(self) -> bool:
        """True once the file is written or the save has failed (a timeout included)."""
        return self._event.is_set()

    @property
    def error(self) -> SaveError | None:
        """What failed (None while waiting or once saved)."""
        return self._error

    def result(self, timeout: float | None = None) -> pathlib.Path:
        """Wait up to ``timeout`` seconds (None: the save's own timeout) and return the path written;
        raise :class:`~attnwidget.errors.SaveError` if the page failed or has not answered. Call it from
        another thread: in a notebook cell, ``await`` the save instead (a cell that blocks keeps the
        kernel from reading the page's answer)."""
        self._event.wait(self.timeout if timeout is None else timeout)
        if not self._event.is_set():
            self._fail(self._timeout_error(self.timeout if timeout is None else timeout))
        if self._error is not None:
            raise self._error
        return self.path

    def __await__(self) -> Generator[Any, None, pathlib.Path]:
        return self._wait().__await__()

    async def _wait(self) -> pathlib.Path:
        deadline = time.monotonic() + self.timeout
        while not self._event.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)  # the kernel dispatches the page's answer meanwhile
        return self.result(0)

    def __repr__(self) -> str:
        if self._error is not None:
            state = f"failed: {self._error}"
        elif self._event.is_set():
            state = "saved"
        else:
            state = "waiting for the page (await it to wait in this cell)"
        return f"<FigureSave {self.kind.upper()} {self.path}: {state}>"

    # -- outcome (called by the widget) ----------------------------------------------------------
    def _timeout_error(self, seconds: float) -> SaveError:
        return SaveError(
            f"save_{self.kind}({str(self.path)!r}): no page answered within {seconds:g} s. The widget must be "
            "displayed in a page that is open (in a notebook: shown by a cell above, its output not cleared)")

    def _start_watchdog(self) -> None:
        """Fail the save if no page has answered ``timeout`` seconds after the page could answer: after
        the calling cell (in a notebook), else from now."""
        def arm(*_: object) -> None:
            if not self._event.is_set() and self._timer is None:
                self._timer = threading.Timer(self.timeout, self._expire)
                self._timer.daemon = True
                self._timer.start()

        if _in_kernel_cell():
            from IPython import get_ipython

            events = get_ipython().events

            def after_cell(*args: object) -> None:
                events.unregister("post_run_cell", after_cell)
                arm()
            events.register("post_run_cell", after_cell)
        else:
            arm()

    def _expire(self) -> None:
        if not self._event.is_set():
            self._fail(self._timeout_error(self.timeout))

    def _fail(self, error: SaveError) -> None:
        """The first failure wins, and it is reported (status line, log) before anyone waiting on the
        save wakes, so a caller that catches the error finds the status line already saying it."""
        with self._outcome:
            if self._event.is_set():
                return  # saved, or failed already
            self._error = error
            self._widget._report(f"save_{self.kind}", error)
            self._event.set()

    def _closed(self) -> None:
        """The widget closed: a save still waiting fails (quietly: nothing can answer it any more)."""
        if self._timer is not None:
            self._timer.cancel()
        with self._outcome:
            if not self._event.is_set():
                self._error = SaveError(f"save_{self.kind}({str(self.path)!r}): the widget was closed before a page answered")
                self._event.set()

    def _saved(self) -> None:
        """The page's answer was written: a late answer still counts after a timeout (the file is there)."""
        with self._outcome:
            self._error = None
            self._event.set()
        if self._timer is not None:
            self._timer.cancel()


class Figures(TraitsHost):
    """save_png / save_svg and the model name the figures' titles show (see the module docstring)."""

    model_name = t.Unicode().tag(sync=True)
    """str: the model named in the figures' titles (the heatmap's "SmolLM2-135M · layer 3, head 2", the
    grid's); the capture's ``model_name`` by default, "" for bare arrays. Set it to rename."""

    @t.default("model_name")
    def _default_model_name(self) -> str:
        name = getattr(getattr(self, "_source", None), "model_name", "")
        return name if isinstance(name, str) else ""

    def close(self) -> None:
        """Saves still waiting for a page fail (their watchdogs stop); then the widget closes."""
        requests = getattr(self, "_png_requests", {})
        for request in list(requests.values()):
            request._closed()
        requests.clear()
        super().close()

    # -- public ----------------------------------------------------------------------------------
    def save_png(self, path: StrPath, view: str = "current", scale: float = 2, *,
                 timeout: float = DEFAULT_TIMEOUT) -> FigureSave:
        """Save the current view (``view="grid"``: the grid) as a PNG figure at ``path``: the view's
        figure with its title, axis titles and colour bar, without hover decorations, at ``scale``
        pixels per CSS pixel (2: twice the pixels of the page at 100 %). The toolbar's PNG button
        downloads the same figure at scale 2.

        The page that shows the widget draws the figure, so the widget must be displayed. Raises
        :class:`~attnwidget.errors.SaveError` at once for a folder that does not exist or cannot be
        written (a ``FileNotFoundError`` / ``PermissionError`` too) and when no page shows the widget;
        returns a :class:`FigureSave`, which ``await`` (in a notebook cell) or ``.result()`` (from
        another thread) turn into the path or a SaveError if the page fails or does not answer within
        ``timeout`` seconds. Every failure is also said in the status line.
        """
        return self._save_figure("png", path, view, PNG_VIEWS, timeout, scale=scale)

    def save_svg(self, path: StrPath, view: str = "heatmap", *, timeout: float = DEFAULT_TIMEOUT) -> FigureSave:
        """Save the heatmap (``view="heatmap"``, which must be the view shown) or the grid (``"grid"``)
        as an SVG figure at ``path``: title, axis titles, tick labels (token text as XML text) and
        colour bar as vectors; matrix cells as rectangles up to 16,384 cells in the figure, above that
        (long prompts, large models' grids) as embedded PNG images drawn pixelated. Errors, page and
        waiting as for :meth:`save_png`.
        """
        return self._save_figure("svg", path, view, SVG_VIEWS, timeout)

    # -- the request -------------------------------------------------------------------------------
    def _save_figure(self, kind: str, path: StrPath, view: str, views: Sequence[str], timeout: float,
                     scale: float | None = None) -> FigureSave:
        try:
            check_choice(view, views, "view")
            timeout = check_number(timeout, "timeout", 0.01, None)
            if scale is not None:
                scale = check_number(scale, "scale", 0.25, 8, hint="2 doubles the page's pixels")
            target = self._writable(path)
            if kind == "svg" and view == "heatmap" and self.view != "heatmap":
                raise SaveError(f"save_svg(view='heatmap') needs the heatmap shown; the widget shows the "
                                f"{self.view!r} view. Set widget.view = 'heatmap' first, or save_svg(path, view='grid').")
            pages = getattr(self, "_pages_shown", 0)
            if pages <= 0:
                ever = getattr(self, "_pages_ever", 0) > 0
                raise SaveError(
                    f"save_{kind} needs the widget shown in a page, which draws the figure: "
                    + ("every page that showed it has closed (its output cleared)" if ever else "no page has shown it yet")
                    + ". Display it (e.g. as the last line of a cell), then call save_" + kind + " in a later cell.")
        except Exception as error:
            self._report(f"save_{kind}", error)
            raise
        self.error = ""
        request = FigureSave(self, target, kind, view, timeout)
        self._png_counter += 1
        self._png_requests[self._png_counter] = request
        message: dict[str, Any] = {"type": f"{kind}_request", "request_id": self._png_counter, "view": view}
        if scale is not None:
            message["scale"] = scale
        self.send(message)
        self.status = f"saving {target}: waiting for the page"
        request._start_watchdog()
        return request

    @staticmethod
    def _writable(path: object) -> pathlib.Path:
        """``path`` as a Path whose folder exists and can be written, or a SaveError subclass."""
        if not isinstance(path, (str, os.PathLike)):
            from .errors import ArgumentTypeError

            raise ArgumentTypeError(f"path must be a str or a path; got {type(path).__name__}")
        target = pathlib.Path(path).expanduser()
        folder = target.parent if str(target.parent) else pathlib.Path(".")
        if not folder.is_dir():
            raise SaveFolderError(f"cannot save {path}: the folder {folder} does not exist")
        if target.is_dir():
            raise SavePermissionError(f"cannot save {path}: it is a folder")
        if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
            raise SavePermissionError(f"cannot save {path}: " + (
                f"the folder {folder} is not writable" if not os.access(folder, os.W_OK) else "the file is not writable"))
        return target

    # -- the page's answer (PageMessages routes "png" and "svg" here) --------------------------------
    def _figure_answer(self, content: dict[str, Any], buffers: Sequence[bytes | memoryview]) -> None:
        request = self._png_requests.pop(content.get("request_id", -1), None)  # ids count from 1
        if request is None:
            return  # another page answered first, or an old request
        kind = request.kind
        try:
            if "error" in content or not buffers:
                raise SaveError(f"{kind.upper()} export of {request.path} failed in the page: "
                                f"{content.get('error') or 'no image came back'}")
            data = bytes(buffers[0])
            if kind == "png" and not data.startswith(PNG_SIGNATURE):
                raise SaveError(f"PNG export of {request.path} failed: the page sent {len(data)} bytes that are no PNG")
            if kind == "svg" and b"<svg" not in data[:512]:
                raise SaveError(f"SVG export of {request.path} failed: the page sent {len(data)} bytes that are no SVG")
            try:
                request.path.write_bytes(data)
            except OSError as error:
                raise SaveError(f"cannot write {request.path}: {error}") from error
        except SaveError as error:
            request._fail(error)
            return
        request._saved()
        self.error = ""
        self.status = f"saved {request.path}"
