"""The front end's viridis and magma are matplotlib's, to within 1/255 at all 256 points.

js/src/colormaps.json holds the tables (written by tools/make_colormaps.py); js/src/colors.js builds
its colour scales from that file alone (js/test/colors.test.js checks the scales entry by entry).
So the grid's metric colours agree with bqplot's viridis, and the heatmap's magma with matplotlib's.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib import colormaps

JS = Path(__file__).resolve().parents[1] / "js" / "src"
TABLES = json.loads((JS / "colormaps.json").read_text())


def _rgb(table: list[str]) -> np.ndarray:
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in table), table
    return np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in table], dtype=np.float64) / 255


@pytest.mark.parametrize("name", ["viridis", "magma"])
def test_tables_match_matplotlib_at_256_points(name):
    ours = _rgb(TABLES[name])
    assert ours.shape == (256, 3)
    reference = colormaps[name](np.linspace(0, 1, 256))[:, :3]
    worst = np.abs(ours - reference).max()
    assert worst <= 1 / 255, f"{name}: worst channel difference {worst * 255:.2f}/255"
    # Between the points (a weight of 0.37 is drawn with entry round(0.37 * 255)) too.
    weights = np.linspace(0, 1, 1001)
    drawn = ours[np.round(weights * 255).astype(int)]
    between = np.abs(drawn - colormaps[name](weights)[:, :3]).max()
    assert between <= 4 / 255, between  # one table step of the steepest channel


def test_the_old_anchors_are_gone():
    """0.8 used to render #b5de2b and 0.9..1 flat yellow; colors.js now reads the tables only."""
    assert TABLES["viridis"][204] == "#7ad151" and TABLES["viridis"][230] == "#bddf26"
    assert TABLES["viridis"][255] == "#fde725" and TABLES["magma"][0] == "#000004"
    source = (JS / "colors.js").read_text()
    assert 'from "./colormaps.json"' in source
    assert "#b5de2b" not in source
