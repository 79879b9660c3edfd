"""Captures side by side: :func:`compare` and the :class:`ComparisonWidget`.

One panel per capture (a prompt template, a language), all showing the same layer and head: each
panel has its layer x head grid of thumbnails and its heatmap, the heatmaps share one colour scale
(one maximum over every panel, with a colour bar), and two panels with as many tokens can be
subtracted (panel B minus panel A, on a diverging colour map with its own bar).

Everything the page draws is reduced in Python by the pattern engine (the fused pass's tiles and
thumbnails, :mod:`attnwidget.reduce`) and sent as bytes. The selection (``layer``, ``head``, the
hovered and the clicked panel and token, the pair subtracted) lives in traits that the page sets
and that Python can read and set; a refused value raises the usual :mod:`attnwidget.errors`.

``compare_templates(...)`` and ``compare_languages(...)`` keep their captures: their results show
this view with ``.show()`` (a new widget each call) and display it in a notebook by themselves (their
``_repr_mimebundle_``, with the text table as the plain-text fallback; ``.widget`` is the one shown).
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Union, cast

import anywidget
import numpy as np
import traitlets as t

from . import _compare_data as data
from ._checks import check_choice, check_head, check_index, check_layer
from ._widget_figures import in_kernel
from .errors import ArgumentError, ArgumentTypeError
from .widget import COLOR_SCALES, STATIC, _Checked

if TYPE_CHECKING:
    from .capture import Capture

    #: What a comparison shows: ``{name: Capture}``, or a comparison result that holds its captures.
    Comparable = Union[Mapping[str, Capture], "ShowsComparison"]

__all__ = ["ComparisonWidget", "compare"]


def _bundle() -> pathlib.Path | str:
    path = STATIC / "compare.js"
    if path.is_file():
        return path
    return ("export default {render({el}) {el.textContent = "
            "'attnwidget: the comparison bundle (compare.js) is missing, run make js';}}")


class ComparisonWidget(anywidget.AnyWidget):
    """Linked panels, one per capture: the same layer and head in each, grid thumbnails and heatmaps on
    one colour scale, and the difference of two equal-length panels (see the module docstring).

    ``captures``: ``{name: Capture}`` (one model: every capture has the same layers and heads), or the
    result of :func:`~attnwidget.compare_templates` / :func:`~attnwidget.compare_languages`.
    ``layer`` (default: the middle layer) and ``head`` (default None: the mean over heads) are shared by
    every panel. ``difference``: the pair ``(a, b)`` whose difference ``b - a`` is drawn (two panels with
    as many tokens); ``"auto"`` (the default) takes the first such pair, None draws none.
    ``color_scale``: 'linear', 'log' or 'no_sink' (linear, scaled without the first token), as in the
    single widget; the maximum is shared by the panels.

    Selection traits, set by the page and settable from Python: ``layer``, ``head``,
    ``hovered_panel`` / ``hovered_token`` (the query row under the pointer, in that panel; set both at
    once with :meth:`hover`), ``selected_panel`` / ``selected_token`` (the row clicked; :meth:`select`),
    ``difference`` and ``color_scale``.
    """

    _esm = _bundle()

    # -- what the page shows about the captures ----------------------------------------------------
    names = t.List(t.Unicode(), read_only=True).tag(sync=True)
    """list[str]: the panels' names, in order."""
    tokens = t.List(t.List(t.Unicode()), read_only=True).tag(sync=True)
    """list[list[str]]: each panel's query tokens (rendered as text only)."""
    key_tokens = t.List(t.List(t.Unicode()), read_only=True).tag(sync=True)
    """list[list[str]]: each panel's key tokens (its ``tokens``, except for cross-attention)."""
    causal = t.List(t.Bool(), read_only=True).tag(sync=True)
    """list[bool]: whether each panel's attention is causal (its heatmap masks the upper triangle)."""
    num_layers = t.Int(0, read_only=True).tag(sync=True)
    num_heads = t.Int(0, read_only=True).tag(sync=True)
    pairs = t.List(t.List(t.Unicode()), read_only=True).tag(sync=True)
    """list[[a, b]]: the pairs of panels with as many tokens, which ``difference`` may name."""

    # -- selection ----------------------------------------------------------------------------------
    layer = _Checked(0).tag(sync=True)
    """int: the layer every panel shows."""
    head = _Checked(None).tag(sync=True)
    """int | None: the head every panel shows; None is the mean over the layer's heads."""
    hovered_panel = _Checked(None).tag(sync=True)
    """str | None: the panel under the pointer (None: none)."""
    hovered_token = _Checked(None).tag(sync=True)
    """int | None: the query row under the pointer, in ``hovered_panel`` (without a panel: that row in
    every panel that has it)."""
    selected_panel = _Checked(None).tag(sync=True)
    """str | None: the panel of the row last clicked (a second click clears it)."""
    selected_token = _Checked(None).tag(sync=True)
    """int | None: the query row last clicked, in ``selected_panel``."""
    difference = _Checked(None).tag(sync=True)
    """list[str] | None: ``[a, b]``: the difference heatmap shows panel b minus panel a."""
    color_scale = _Checked("linear").tag(sync=True)
    """str: 'linear', 'log' (four decades below the shared max) or 'no_sink' (linear, the shared max
    taken without the first token)."""
    status = t.Unicode("").tag(sync=True)
    """str: one line under the panels (what is shown, the shared maximum)."""
    error = t.Unicode("").tag(sync=True)
    """str: the last value from the page that was refused ("" when the last one was taken)."""

    # -- reduced data (bytes), written by observers ---------------------------------------------------
    grid_data = t.List(t.Dict(), read_only=True).tag(sync=True)
    """list[dict]: each panel's grid of thumbnails (uint8 bytes; sent once)."""
    heatmap_data = t.Dict().tag(sync=True)
    """dict: ``{"panels": [tile per panel], "max", "max_no_sink", "title", "layer", "head"}``; a tile is
    :func:`attnwidget.reduce.heatmap_tile`'s dict (float16 bytes) plus its panel's ``"name"``."""
    difference_data = t.Dict().tag(sync=True)
    """dict: the difference ``{"matrix": float32 bytes, "a", "b", "max_abs", "max_abs_no_sink", "title",
    ...}`` (see ``attnwidget._compare_data.difference``); {} when none is drawn."""

    def __init__(self, captures: Comparable, *, layer: int | None = None, head: int | None = None,
                 difference: str | tuple[str, str] | list[str] | None = "auto", color_scale: str = "linear",
                 **kwargs: Any) -> None:
        self._ready = False
        self._panels = data.make_panels(data.captures_of(captures))
        self._by_name = {p.name: p for p in self._panels}
        self._matrices: list[np.ndarray] = []
        self._diff: np.ndarray | None = None
        first = self._panels[0].engine
        if layer is None:
            layer = first.num_layers // 2
        pairs = data.equal_pairs(self._panels)
        if isinstance(difference, str) and difference == "auto":
            difference = list(pairs[0]) if pairs else None
        values = {"layer": layer, "head": head, "difference": difference, "color_scale": color_scale, **kwargs}
        self._checked(values)
        super().__init__(**{**values, "layer": self._check_layer(layer), "head": check_head(head, first.num_heads),
                            "difference": self._check_difference(difference)})
        self.set_trait("names", [p.name for p in self._panels])
        self.set_trait("tokens", [p.tokens for p in self._panels])
        self.set_trait("key_tokens", [p.key_tokens for p in self._panels])
        self.set_trait("causal", [bool(p.engine.is_causal) for p in self._panels])
        self.set_trait("num_layers", int(first.num_layers))
        self.set_trait("num_heads", int(first.num_heads))
        self.set_trait("pairs", [list(pair) for pair in pairs])
        self.set_trait("grid_data", [data.grid(p) for p in self._panels])
        self._ready = True
        self._push()

    # -- reading ------------------------------------------------------------------------------------
    @property
    def captures(self) -> dict[str, Capture]:
        """``{name: Capture}``: the captures shown, in panel order."""
        return {p.name: p.capture for p in self._panels}

    @property
    def shared_max(self) -> float:
        """The largest weight over every panel's heatmap (the top of the shared colour scale; for
        ``color_scale='no_sink'`` the page takes the largest without the first token instead)."""
        return float(self.heatmap_data.get("max", 0.0))

    def heatmap(self, name: str) -> np.ndarray:
        """The heatmap panel ``name`` shows now: float32 ``[rows, cols]`` (pooled for long inputs)."""
        return self._matrices[self._index(name, "name")].copy()

    def difference_matrix(self) -> np.ndarray | None:
        """The difference heatmap shown now (panel b minus panel a), float32; None when there is none."""
        return None if self._diff is None else self._diff.copy()

    def hover(self, panel: str | None, token: int | None) -> None:
        """Set ``hovered_panel`` and ``hovered_token`` together (checked together first)."""
        self._checked({"hovered_panel": panel, "hovered_token": token})
        with self.hold_trait_notifications():
            self.hovered_panel, self.hovered_token = panel, token

    def select(self, panel: str | None, token: int | None) -> None:
        """Set ``selected_panel`` and ``selected_token`` together (checked together first)."""
        self._checked({"selected_panel": panel, "selected_token": token})
        with self.hold_trait_notifications():
            self.selected_panel, self.selected_token = panel, token

    def __repr__(self) -> str:
        head = "mean" if self.head is None else self.head
        return (f"ComparisonWidget({len(self._panels)} panels: {', '.join(p.name for p in self._panels)}; "
                f"layer={self.layer}, head={head})")

    # -- validation ---------------------------------------------------------------------------------
    def _index(self, name: object, what: str) -> int:
        if not isinstance(name, str):
            raise ArgumentTypeError(f"{what} must be a panel's name (a str: {', '.join(map(repr, self._by_name))}); "
                                    f"got {type(name).__name__} {name!r:.60}.")
        if name not in self._by_name:
            raise ArgumentError(f"{what} {name!r} is no panel; the panels are {', '.join(map(repr, self._by_name))}.")
        return list(self._by_name).index(name)

    def _check_layer(self, value: object) -> int:
        return check_layer(value, self._panels[0].engine.num_layers)

    def _check_panel(self, value: object, name: str) -> str | None:
        if value is None:
            return None
        self._index(value, name)
        return cast(str, value)  # _index refused anything but a panel's name

    def _check_token(self, value: object, panel: str | None, name: str) -> int | None:
        if value is None:
            return None
        if panel is None:
            size = max(p.n for p in self._panels)
            return check_index(value, size, name, "tokens in the longest panel")
        return check_index(value, self._by_name[panel].n, name, f"tokens in panel {panel!r}")

    def _check_difference(self, value: object) -> list[str] | None:
        if value is None:
            return None
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ArgumentTypeError(f"difference must be a pair [a, b] of panel names (b - a is drawn) or None; "
                                    f"got {type(value).__name__} {value!r:.60}.")
        a, b = (self._panels[self._index(v, "difference")] for v in value)
        if a.name == b.name:
            raise ArgumentError(f"difference needs two different panels; got {a.name!r} twice.")
        if a.shape != b.shape:
            raise ArgumentError(
                f"difference needs two panels with as many tokens: {a.name!r} has {a.n}, {b.name!r} has {b.n}. "
                + (f"Pairs [a, b] with as many tokens: {', '.join(str(list(p)) for p in data.equal_pairs(self._panels))}."
                   if data.equal_pairs(self._panels) else "No two panels here have as many tokens."))
        return [a.name, b.name]

    def _checked(self, values: dict[str, Any]) -> None:
        """Check values about to be set together (the constructor's, the page's, hover/select): each
        token against the panel set with it, or else the current one; nothing is set if one is refused."""
        hovered = values.get("hovered_panel", self._trait_values.get("hovered_panel"))
        selected = values.get("selected_panel", self._trait_values.get("selected_panel"))
        for name, value in values.items():
            if name in ("hovered_panel", "selected_panel"):
                self._check_panel(value, name)
            elif name == "hovered_token":
                self._check_token(value, self._check_panel(hovered, "hovered_panel"), name)
            elif name == "selected_token":
                self._check_token(value, self._check_panel(selected, "selected_panel"), name)
            elif name == "layer":
                self._check_layer(value)
            elif name == "head":
                check_head(value, self._panels[0].engine.num_heads)
            elif name == "difference":
                self._check_difference(value)
            elif name == "color_scale":
                check_choice(value, COLOR_SCALES, "color_scale")

    @t.validate("layer")
    def _valid_layer(self, proposal: t.Bunch) -> int:
        return self._check_layer(proposal["value"])

    @t.validate("head")
    def _valid_head(self, proposal: t.Bunch) -> int | None:
        return check_head(proposal["value"], self._panels[0].engine.num_heads)

    @t.validate("hovered_panel", "selected_panel")
    def _valid_panel(self, proposal: t.Bunch) -> str | None:
        return self._check_panel(proposal["value"], proposal["trait"].name)

    @t.validate("hovered_token")
    def _valid_hovered_token(self, proposal: t.Bunch) -> int | None:
        return self._check_token(proposal["value"], self._trait_values.get("hovered_panel"), "hovered_token")

    @t.validate("selected_token")
    def _valid_selected_token(self, proposal: t.Bunch) -> int | None:
        return self._check_token(proposal["value"], self._trait_values.get("selected_panel"), "selected_token")

    @t.validate("difference")
    def _valid_difference(self, proposal: t.Bunch) -> list[str] | None:
        return self._check_difference(proposal["value"])

    @t.validate("color_scale")
    def _valid_color_scale(self, proposal: t.Bunch) -> str:
        return check_choice(proposal["value"], COLOR_SCALES, "color_scale")

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """Values set by the page: a refused one is reported (``error``, the status line) and the page is
        put back on the kernel's values, instead of an exception lost in the comm handler."""
        try:
            self._checked(sync_data)
            super().set_state(sync_data)
        except Exception as error:  # noqa: BLE001 - reported to the page, then resynced
            self.error = f"the page set {', '.join(sorted(sync_data))}: {type(error).__name__}: {error}"
            self.send_state(key=[k for k in sync_data if k in self.keys])
        else:
            if self.error:
                self.error = ""

    # -- observers and pushes -----------------------------------------------------------------------
    @t.observe("hovered_panel")
    def _on_hovered_panel(self, change: t.Bunch) -> None:
        """A row beyond the new panel's tokens is no longer hovered."""
        token, panel = self.hovered_token, change["new"]
        if token is not None and panel is not None and token >= self._by_name[panel].n:
            self.hovered_token = None

    @t.observe("selected_panel")
    def _on_selected_panel(self, change: t.Bunch) -> None:
        token, panel = self.selected_token, change["new"]
        if token is not None and panel is not None and token >= self._by_name[panel].n:
            self.selected_token = None

    @t.observe("layer", "head")
    def _on_layer_head(self, change: t.Bunch) -> None:
        if self._ready:
            self._push()

    @t.observe("difference")
    def _on_difference(self, change: t.Bunch) -> None:
        if self._ready:
            self._push_difference()
            self.status = self._status_line()

    @t.observe("color_scale")
    def _on_color_scale(self, change: t.Bunch) -> None:
        if self._ready:
            self.status = self._status_line()

    def _title(self) -> str:
        return f"layer {self.layer}, " + ("mean of heads" if self.head is None else f"head {self.head}")

    def _push(self) -> None:
        tiles: list[dict[str, Any]] = []
        self._matrices = []
        for panel in self._panels:
            tile, matrix = data.tile(panel, self.layer, self.head)
            tiles.append({**tile, "name": panel.name})
            self._matrices.append(matrix)
        top, no_sink = data.scale_max(self._matrices)
        self.heatmap_data = {"panels": tiles, "max": top, "max_no_sink": no_sink, "title": self._title(),
                             "layer": int(self.layer), "head": self.head}
        self._push_difference()
        self.status = self._status_line()

    def _push_difference(self) -> None:
        if self.difference is None:
            self._diff = None
            self.difference_data = {}
            return
        a, b = (self._by_name[name] for name in self.difference)
        diff = data.difference(a, b, self.layer, self.head)
        wired = diff["matrix"]
        self._diff = np.frombuffer(wired["buffer"], dtype=wired["dtype"]).reshape(wired["shape"]).copy()
        self.difference_data = {**diff, "a": a.name, "b": b.name, "title": f"{b.name} − {a.name}: {self._title()}",
                                "layer": int(self.layer), "head": self.head}

    def _status_line(self) -> str:
        top = self.heatmap_data.get("max_no_sink" if self.color_scale == "no_sink" else "max", 0.0)
        line = f"{self._title()}; shared scale 0..{top:.3g}"
        if self.color_scale != "linear":
            line += f" ({self.color_scale})"
        if self.difference is not None and self.difference_data:
            a, b = self.difference
            line += f"; {b} − {a}: largest change {self.difference_data['max_abs']:.3g}"
        return line


def compare(captures: Comparable, **kwargs: Any) -> ComparisonWidget:
    """Show captures side by side: one panel per capture, linked (see :class:`ComparisonWidget`).

    ``captures``: ``{name: Capture}`` of one model (the same layers and heads), or the result of
    ``compare_templates`` / ``compare_languages``. Keyword arguments (``layer``, ``head``,
    ``difference``, ``color_scale``) go to :class:`ComparisonWidget`. Returns the widget: display it
    (the last expression of a cell), and read or set its selection (``layer``, ``head``,
    ``hovered_panel``, ``hovered_token``, ...).
    """
    return ComparisonWidget(captures, **kwargs)


class ShowsComparison:
    """``.show()``, ``.widget`` and the notebook display of a comparison result that holds its captures
    (``self.captures``; see compare.py's docstring)."""

    def show(self, **kwargs: Any) -> ComparisonWidget:
        """A new :class:`ComparisonWidget` over the captures compared (keyword arguments as for
        :func:`attnwidget.compare`): one panel per prompt or language, linked."""
        return ComparisonWidget(self, **kwargs)

    @property
    def widget(self) -> ComparisonWidget:
        """The comparison view a notebook displays for this result (made once, on first use)."""
        made = self.__dict__.get("_widget")
        if made is None:
            made = self.__dict__["_widget"] = self.show()
        return made

    # include, exclude: as IPython passes them (mime types), handed on to the widget's own
    def _repr_mimebundle_(self, include: Any = None,
                          exclude: Any = None) -> dict[str, Any] | tuple[dict[str, Any], dict[str, Any]]:
        """In a Jupyter kernel, the comparison view (with the text table as plain text); elsewhere, or
        without captures, the text table."""
        text = str(self)
        if not getattr(self, "captures", None) or not in_kernel():
            return {"text/plain": text}
        shown = self.widget._repr_mimebundle_(include=include, exclude=exclude)
        if isinstance(shown, tuple):  # (data, metadata)
            bundle, metadata = shown
            return {**bundle, "text/plain": text}, metadata
        return {**(shown or {}), "text/plain": text}
