"""The image view of a vision capture (ViT and kin): the picture, and the focused token's row over it.

A mixin of :class:`attnwidget.AttentionWidget`. A vision Capture has ``image`` (uint8 ``[H, W, 3]``,
the preprocessed picture), ``patch_grid`` (``(rows, cols)``) and ``patch_start`` (the first patch
token; the tokens before it are [CLS], [DIST], registers). The widget sends the picture once (the
``image`` trait) and, per focus, the values over the patch tokens as float32 bytes (``image_data``):
the same row the text view colours by (``text_source``: the selected layer and head's attention, the
rollout, or the flow), cut into the patch grid and the other tokens.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import reduce as r
from ._checks import check_index
from ._widget_host import WidgetHost
from ._widget_parts import NO_IMAGE
from .errors import ArgumentError


def patch_token(patch_start: int, grid: tuple[int, int], row: int, col: int) -> int:
    """The token of patch ``(row, col)``: ``patch_start + row * cols + col``."""
    rows, cols = grid
    row = check_index(row, rows, "row", "patch rows")
    col = check_index(col, cols, "col", "patch columns")
    return int(patch_start) + row * cols + col


class ImageView(WidgetHost):
    """The image view's two traits (see the module docstring). Needs ``_state`` and ``_text_values``."""

    def _image_geometry(self) -> tuple[np.ndarray, tuple[int, int], int] | None:
        """``(picture, (rows, cols), patch_start)`` of the part shown, or None without a picture."""
        if not self._state.has_image:
            return None
        capture: Any = self._state.capture  # a vision Capture (has_image), or a ContributionSource over one
        return capture.image, capture.patch_grid, int(getattr(capture, "patch_start", 0))

    def _image_trait(self) -> dict[str, Any]:
        """The ``image`` trait: the picture as uint8 bytes, the patch grid, the first patch token."""
        geometry = self._image_geometry()
        if geometry is None:
            return {}
        picture, grid, start = geometry
        return {"picture": r.wire(np.ascontiguousarray(picture, dtype=np.uint8)), "grid": [int(grid[0]), int(grid[1])],
                "patch_start": start}

    def patch_token(self, row: int, col: int) -> int:
        """The token index of patch ``(row, col)`` of the picture (what hovering that patch selects)."""
        geometry = self._image_geometry()
        if geometry is None:
            raise ArgumentError(NO_IMAGE)
        _, grid, start = geometry
        return patch_token(start, grid, row, col)

    def image_values(self, token: int | None = None) -> tuple[np.ndarray | None, np.ndarray | None, str]:
        """``(patches [rows, cols] float32, others [k] float32, note)`` for the image view: the row of
        ``token`` (default: the focused one) from the text source, over the patch grid, and over the
        other tokens (those before ``patch_start`` and any after the grid), or ``(None, None, note)``
        when that source has no row yet (flow before ``compute_flow``; a long rollout row)."""
        geometry = self._image_geometry()
        if geometry is None:
            return None, None, ""
        _, (rows, cols), start = geometry
        token = self._focus() if token is None else int(token)
        values, note = self._text_values(token)
        if values is None:
            return None, None, note
        values = np.asarray(values, dtype=np.float32)
        patches = values[start:start + rows * cols].reshape(rows, cols)
        others = np.concatenate([values[:start], values[start + rows * cols:]])
        return patches, others, note

    def _push_image(self) -> None:
        if not self._state.has_image:
            self.image_data = {}
            return
        token = self._focus()
        patches, others, note = self.image_values(token)
        data: dict[str, Any] = {"token": int(token), "source": self.text_source, "note": note}
        if patches is not None and others is not None:  # both are, or neither
            data["values"] = r.wire(patches)
            data["others"] = r.wire(others)
        self.image_data = data
