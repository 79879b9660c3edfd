"""Write js/src/colormaps.json: matplotlib's 256-entry viridis and magma (its ``_cm_listed`` data) as
"#rrggbb" strings, the tables the front end's colour scales use (js/src/colors.js).

Run with matplotlib installed (the ``dev`` extra): ``.venv/bin/python tools/make_colormaps.py``.
tests/test_colormaps.py checks the file against matplotlib.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "js" / "src" / "colormaps.json"
NAMES = ("viridis", "magma")


def tables() -> dict[str, list[str]]:
    from matplotlib import colormaps

    out = {}
    for name in NAMES:
        rgb = colormaps[name](np.arange(256) / 255)[:, :3]
        out[name] = ["#" + "".join(f"{int(round(c * 255)):02x}" for c in row) for row in rgb]
    return out


def main() -> None:
    lines = ['{', '  "source": "matplotlib _cm_listed (256 entries each), rounded to 8 bits; tools/make_colormaps.py",']
    items = list(tables().items())
    for n, (name, colors) in enumerate(items):
        rows = [", ".join(json.dumps(c) for c in colors[i:i + 8]) for i in range(0, len(colors), 8)]
        lines.append(f'  "{name}": [')
        lines.append(",\n".join(f"    {row}" for row in rows))
        lines.append("  ]" + ("," if n < len(items) - 1 else ""))
    lines.append("}")
    text = "\n".join(lines) + "\n"
    json.loads(text)  # well-formed
    OUT.write_text(text)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
