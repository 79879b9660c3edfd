"""save_png / save_svg in Python (attnwidget/_widget_figures.py): what is refused at once, the request
sent to the page, the page's answer written, and every failure raised and said in the status line
(the ``error`` trait). The page's side is tested in tests/browser/test_figures.py."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from widget_captures import make_capture, make_seq2seq  # noqa: E402

from attnwidget import SaveError  # noqa: E402
from attnwidget.errors import (  # noqa: E402
    ArgumentError, ArgumentTypeError, AttnwidgetError, SaveFolderError, SavePermissionError,
)
from attnwidget.widget import AttentionWidget  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
SVG = b'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg"><title>t</title></svg>\n'
WORDS = ["▁The", "▁cat", "▁sat", "▁on", "▁the", "▁mat"]


@pytest.fixture(scope="module")
def cap():
    return make_capture(WORDS, causal=True, layers=2, heads=3, seed=4, name="toy-lm")


@pytest.fixture
def widget(cap):
    w = AttentionWidget(cap, background=False)
    w.sent = []
    w.send = lambda content, buffers=None: w.sent.append(content)
    yield w
    w.close()


def show(widget):
    """What a page does once it has drawn the widget."""
    widget._on_message(widget, {"type": "painted"}, [])


def answer(widget, request: dict, data: bytes | None = None, **extra):
    content = {"type": request["type"].removesuffix("_request"), "request_id": request["request_id"], **extra}
    widget._on_message(widget, content, [memoryview(data)] if data is not None else [])


# ---------------------------------------------------------------------------------------- refused at once
def test_no_page_is_refused_and_said(widget, tmp_path):
    for save in (widget.save_png, widget.save_svg):
        with pytest.raises(SaveError, match=r"needs the widget shown in a page.*no page has shown it yet"):
            save(tmp_path / "x.out")
        assert "no page has shown it yet" in widget.error
    assert widget.sent == []
    assert isinstance(SaveError("x"), (AttnwidgetError, OSError))


def test_a_closed_page_is_refused(widget, tmp_path):
    show(widget)
    widget._on_message(widget, {"type": "page_closed"}, [])
    with pytest.raises(SaveError, match="every page that showed it has closed"):
        widget.save_png(tmp_path / "x.png")
    show(widget)  # shown again
    widget.save_png(tmp_path / "x.png")
    assert widget.sent[-1]["type"] == "png_request"


@pytest.mark.parametrize("call, error, pattern", [
    (lambda w, d: w.save_png(d / "missing" / "x.png"), SaveFolderError, r"cannot save .*x\.png: the folder .*missing does not exist"),
    (lambda w, d: w.save_svg(d / "missing" / "x.svg"), SaveFolderError, r"the folder .*missing does not exist"),
    (lambda w, d: w.save_png(d), SavePermissionError, r"cannot save .*: it is a folder"),
    (lambda w, d: w.save_png(d / "x.png", view="heatmap"), ArgumentError, r"view must be one of 'current', 'grid'"),
    (lambda w, d: w.save_svg(d / "x.svg", view="current"), ArgumentError, r"view must be one of 'heatmap', 'grid'"),
    (lambda w, d: w.save_png(d / "x.png", scale=0), ArgumentError, r"scale must lie in \[0.25, 8\]"),
    (lambda w, d: w.save_png(d / "x.png", scale=40), ArgumentError, r"scale must lie in \[0.25, 8\]"),
    (lambda w, d: w.save_png(d / "x.png", scale="2"), ArgumentTypeError, r"scale must be a number"),
    (lambda w, d: w.save_png(d / "x.png", timeout=0), ArgumentError, r"timeout must lie in"),
    (lambda w, d: w.save_png(3), ArgumentTypeError, r"path must be a str or a path; got int"),
], ids=["png folder", "svg folder", "a folder", "png view", "svg view", "scale 0", "scale 40", "scale str",
        "timeout", "path int"])
def test_bad_arguments_raise_and_say_so(widget, tmp_path, call, error, pattern):
    show(widget)
    with pytest.raises(error, match=pattern):
        call(widget, tmp_path)
    assert widget.error.startswith("save_") and widget.sent == []


def test_path_errors_are_also_the_builtin_ones(widget, tmp_path):
    show(widget)
    with pytest.raises(FileNotFoundError):
        widget.save_png(tmp_path / "missing" / "x.png")
    with pytest.raises(PermissionError):
        widget.save_svg(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_folder_is_refused(widget, tmp_path):
    show(widget)
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(SavePermissionError, match="is not writable"):
            widget.save_png(folder / "x.png")
    finally:
        folder.chmod(0o700)


def test_svg_of_the_heatmap_needs_the_heatmap_shown(widget, tmp_path):
    show(widget)
    widget.view = "text"
    with pytest.raises(SaveError, match=r"needs the heatmap shown; the widget shows the 'text' view"):
        widget.save_svg(tmp_path / "x.svg")
    assert "needs the heatmap shown" in widget.error
    widget.save_svg(tmp_path / "grid.svg", view="grid")  # the grid is always there
    assert widget.sent[-1] == {"type": "svg_request", "request_id": widget.sent[-1]["request_id"], "view": "grid"}


# ---------------------------------------------------------------------------------------- the page answers
def test_png_round_trip(widget, tmp_path):
    show(widget)
    widget.error = "an older failure"
    save = widget.save_png(tmp_path / "fig.png", scale=3)
    request = widget.sent[-1]
    assert request == {"type": "png_request", "request_id": request["request_id"], "view": "current", "scale": 3.0}
    assert not save.done() and widget.error == "" and "waiting for the page" in widget.status
    assert "waiting for the page" in repr(save)
    answer(widget, request, PNG)
    assert save.done() and save.result(0) == tmp_path / "fig.png" and save.error is None
    assert (tmp_path / "fig.png").read_bytes() == PNG
    assert widget.status == f"saved {tmp_path / 'fig.png'}"
    assert repr(save).endswith(": saved>")
    answer(widget, request, b"another page's answer")  # every page answers; the first one counts
    assert (tmp_path / "fig.png").read_bytes() == PNG


def test_svg_round_trip_and_grid_png(widget, tmp_path):
    show(widget)
    save = widget.save_svg(tmp_path / "fig.svg")
    answer(widget, widget.sent[-1], SVG)
    assert save.result(0).read_bytes() == SVG
    grid = widget.save_png(tmp_path / "grid.png", view="grid")
    assert widget.sent[-1]["view"] == "grid" and widget.sent[-1]["scale"] == 2
    answer(widget, widget.sent[-1], PNG)
    assert grid.result(0).read_bytes() == PNG


@pytest.mark.parametrize("kind, extra, data, pattern", [
    ("png", {"error": "toBlob failed"}, None, r"PNG export of .* failed in the page: toBlob failed"),
    ("svg", {"error": "SVG export covers the heatmap and the grid, not the lines view"}, None, "not the lines view"),
    ("png", {}, None, "failed in the page: no image came back"),
    ("png", {}, b"GIF89a", "bytes that are no PNG"),
    ("svg", {}, b"%PDF-1.4", "bytes that are no SVG"),
], ids=["png error", "svg error", "no bytes", "not png", "not svg"])
def test_the_pages_failure_is_raised_and_said(widget, tmp_path, kind, extra, data, pattern):
    show(widget)
    path = tmp_path / f"fig.{kind}"
    save = (widget.save_png if kind == "png" else widget.save_svg)(path)
    answer(widget, widget.sent[-1], data, **extra)
    assert save.done()
    with pytest.raises(SaveError, match=pattern):
        save.result(0)
    assert widget.error.startswith(f"save_{kind}: SaveError") and "failed" in widget.error
    assert not path.exists()


def test_a_file_that_cannot_be_written_when_the_answer_comes(widget, tmp_path):
    show(widget)
    folder = tmp_path / "gone"
    folder.mkdir()
    save = widget.save_png(folder / "x.png")
    folder.rmdir()
    answer(widget, widget.sent[-1], PNG)
    with pytest.raises(SaveError, match=r"cannot write .*x\.png"):
        save.result(0)
    assert "cannot write" in widget.error


def test_no_answer_times_out_and_says_so(widget, tmp_path):
    show(widget)
    save = widget.save_png(tmp_path / "x.png", timeout=0.2)
    with pytest.raises(SaveError, match=r"no page answered within 0.2 s"):
        save.result()
    assert "no page answered within 0.2 s" in widget.error
    # A page that answers late still gets its file written, and the status line says so.
    answer(widget, widget.sent[-1], PNG)
    assert (tmp_path / "x.png").read_bytes() == PNG and widget.error == "" and widget.status.startswith("saved")
    assert save.result(0) == tmp_path / "x.png"


def test_the_watchdog_reports_without_anyone_waiting(widget, tmp_path):
    show(widget)
    widget.save_png(tmp_path / "x.png", timeout=0.1)
    deadline = time.monotonic() + 5
    while "no page answered" not in widget.error and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "no page answered within 0.1 s" in widget.error


def test_whoever_waits_finds_the_timeout_already_said(widget, tmp_path, monkeypatch):
    """The watchdog and result() race at the timeout: the one that fails the save reports it before
    the waiter wakes, so the status line already says it when result() raises (a CI run caught the
    waiter reading the old status while the watchdog was still reporting)."""
    show(widget)
    report = widget._report

    def slow_report(what, error):
        time.sleep(0.3)  # the watchdog thread is slow to report: the waiter must not wake before it has
        report(what, error)
    monkeypatch.setattr(widget, "_report", slow_report)
    save = widget.save_png(tmp_path / "x.png", timeout=0.05)
    with pytest.raises(SaveError, match=r"no page answered within 0.05 s"):
        save.result(timeout=5)  # woken by the watchdog, not by its own wait
    assert "no page answered within 0.05 s" in widget.error


def test_await_waits_for_the_answer(widget, tmp_path):
    """In a notebook, ``await widget.save_png(...)`` waits while the kernel reads the page's answer."""
    show(widget)

    async def main():
        save = widget.save_png(tmp_path / "x.png")
        request = widget.sent[-1]
        threading.Timer(0.1, lambda: answer(widget, request, PNG)).start()
        return await save

    assert asyncio.run(main()) == tmp_path / "x.png"

    async def silent():
        return await widget.save_svg(tmp_path / "y.svg", timeout=0.1)

    with pytest.raises(SaveError, match="no page answered within 0.1 s"):
        asyncio.run(silent())


# ---------------------------------------------------------------------------------------- what the page shows
def test_model_name_trait(cap):
    widget = AttentionWidget(cap, background=False)
    assert widget.model_name == "toy-lm" and widget.get_state()["model_name"] == "toy-lm"
    widget.model_name = "renamed"
    assert widget.get_state()["model_name"] == "renamed"
    named = AttentionWidget(cap, model_name="My model", background=False)  # a name of one's own
    assert named.get_state()["model_name"] == "My model"
    named.close()
    seq = AttentionWidget(make_seq2seq(), background=False)
    assert seq.model_name == "toy-t5"
    rng = np.random.default_rng(0)
    weights = rng.random((1, 2, 4, 4)).astype(np.float32)
    weights /= weights.sum(-1, keepdims=True)
    arrays = AttentionWidget(weights, background=False)
    assert isinstance(arrays.model_name, str)
    for w in (widget, seq, arrays):
        w.close()


def test_the_grid_names_its_metric(cap):
    widget = AttentionWidget(cap, color_by="entropy", background=False)
    assert widget.grid_data["color_by_name"] == "entropy"
    widget.color_by = None
    assert "color_by_name" not in widget.grid_data
    widget.close()


def test_unknown_page_message_lists_the_known_ones(widget):
    widget._on_message(widget, {"type": "nonsense"}, [])
    assert "'page_closed'" in widget.error and "'svg'" in widget.error


def test_closing_the_widget_ends_waiting_saves_quietly(cap, tmp_path):
    widget = AttentionWidget(cap, background=False)
    widget.send = lambda content, buffers=None: None
    show(widget)
    save = widget.save_png(tmp_path / "x.png", timeout=0.2)
    widget.close()
    assert save.done()
    with pytest.raises(SaveError, match="the widget was closed before a page answered"):
        save.result(0)
    time.sleep(0.4)  # no watchdog fires after the close
    assert "no page answered" not in widget.error
