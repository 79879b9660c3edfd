"""Shared helpers of analysis.py, heads.py, languages.py, report.py and templates.py: text and HTML
tables, token display, layer selection, conversion to plain data."""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, SupportsFloat, cast

import numpy as np

from ._checks import check_heads, check_layers
from .errors import ArgumentTypeError

if TYPE_CHECKING:
    from typing import TypeGuard

    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from ._progress import ProgressBar
    from ._types import Layers
    from .capture import Capture

#: Decimals of every float printed by the result tables (deterministic text).
PRECISION = 3


def fmt(value: SupportsFloat | None, digits: int = PRECISION) -> str:
    """A number as fixed-precision text; NaN as ``-``, ints as ints."""
    if value is None:
        return "-"
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return str(int(value))
    value = float(value)
    if np.isnan(value):
        return "-"
    text = f"{value:.{digits}f}"
    return "0." + "0" * digits if text == "-0." + "0" * digits else text


def show(token: str, limit: int = 24) -> str:
    """A token for a table: quoted (leading spaces stay visible), control characters escaped."""
    escaped = token.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    if len(escaped) > limit:
        escaped = escaped[: limit - 1] + "…"
    return f"'{escaped}'"


def width(text: str) -> int:
    """Columns ``text`` takes in a monospace terminal (CJK wide characters count 2)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def table(header: list[str], rows: list[list[str]]) -> str:
    """Rows of strings as an aligned text table: first column left-aligned, the others right-aligned."""
    cells = [list(header)] + [list(r) for r in rows]
    widths = [max(width(row[c]) for row in cells) for c in range(len(header))]
    lines = []
    for row in cells:
        out = []
        for c, cell in enumerate(row):
            pad = " " * (widths[c] - width(cell))
            out.append(cell + pad if c == 0 else pad + cell)
        lines.append("  ".join(out).rstrip())
    return "\n".join(lines)


# HTML for the results' ``_repr_html_``: every piece of text goes through ``html.escape`` here (token
# strings and names can hold markup such as ``<img onerror=...>``), so callers pass plain text only.

#: Class of every element the results' HTML is wrapped in (one stylesheet hook, no inline scripts).
HTML_CLASS = "attnwidget-result"


def html_table(header: list[str], rows: list[list[str]], caption: str | None = None) -> str:
    """Rows of plain-text cells as an HTML ``<table>`` (all text escaped); the first column is a
    row header (``<th>``), left-aligned, the others right-aligned as in :func:`table`."""
    head = "".join(f'<th style="text-align:{"left" if c == 0 else "right"}">{html.escape(str(h))}</th>'
                   for c, h in enumerate(header))
    body = []
    for row in rows:
        cells = [f'<th style="text-align:left">{html.escape(str(row[0]))}</th>'] if row else []
        cells += [f'<td style="text-align:right">{html.escape(str(cell))}</td>' for cell in row[1:]]
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def html_list(items: list[str], empty: str = "none") -> str:
    """Plain-text items as an HTML ``<ul>`` (escaped); ``empty`` as a paragraph when there are none."""
    if not items:
        return f"<p>{html.escape(empty)}</p>"
    return "<ul>" + "".join(f"<li>{html.escape(str(item))}</li>" for item in items) + "</ul>"


def html_text(text: str, tag: str = "p") -> str:
    """One paragraph (or heading, with ``tag``) of plain text, escaped."""
    return f"<{tag}>{html.escape(str(text))}</{tag}>"


def html_block(*parts: str) -> str:
    """Pieces made by the ``html_*`` helpers in one ``<div>`` (they are already escaped)."""
    return f'<div class="{HTML_CLASS}">' + "".join(parts) + "</div>"


def plain(value: Any) -> Any:
    """``value`` with NumPy arrays and scalars turned into lists, floats and ints (JSON-ready)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def is_capture(obj: object) -> TypeGuard[Capture]:
    return hasattr(obj, "head_patterns") and hasattr(obj, "offsets") and hasattr(obj, "is_causal")


def require_capture(obj: object, what: str) -> Capture:
    if not is_capture(obj):
        raise ArgumentTypeError(
            f"{what} needs a Capture (it reads tokens and their character offsets); got "
            f"{type(obj).__name__}. Make one with attnwidget.capture(model, tokenizer, text)."
        )
    return obj


def check_inputs(fn: str, key: str, given: object, captures: object, model: object, tokenizer: object) -> None:
    """The shared contract of compare_*: ``model, tokenizer`` and ``{key}={name: ...}``, or
    ``captures={name: Capture}``, exactly one of the two, as a non-empty dict."""
    if (given is None) == (captures is None):
        raise ArgumentTypeError(
            f"{fn} needs either model, tokenizer and {key}={{name: ...}}, or captures={{name: Capture}}; "
            "got " + ("neither." if given is None else "both.")
        )
    items = given if given is not None else captures
    if not isinstance(items, dict) or not items:
        raise ArgumentTypeError(f"{key}/captures must be a non-empty dict {{name: ...}}; got {type(items).__name__}.")
    if given is not None and (model is None or tokenizer is None):
        raise ArgumentTypeError(f"{fn}(model, tokenizer, {key}): {key} need the model and tokenizer.")


def captures_of(fn: str, given: Mapping[str, Any] | None, captures: Mapping[str, Any] | None,
                model: PreTrainedModel | None, tokenizer: PreTrainedTokenizerBase | None, bar: ProgressBar,
                **capture_kwargs: Any) -> dict[str, Capture]:
    """The compare_* inputs as ``{name: Capture}``: each of ``given`` captured (one bar step each), or
    the ``captures`` checked. ``check_inputs`` has checked that exactly one of the two is there."""
    if given is None:
        assert captures is not None  # check_inputs: one of the two
        made = {k: require_capture(v, f"{fn}(captures=...)[{k!r}]") for k, v in captures.items()}
        bar.update(len(made))
        return made
    from .capture import capture

    made = {}
    for k, v in given.items():
        made[k] = cast("Capture", capture(model, tokenizer, v, **capture_kwargs))  # a text model's (no target=)
        bar.update(1)
    return made


def select_layers(layers: Layers, num_layers: int) -> list[int]:
    """``None`` (all), an int, a range or a list of ints -> a list of layer indices in ``0..L-1``."""
    return check_layers(layers, num_layers)


def select_heads(heads: int | Sequence[int] | None, num_heads: int) -> list[int] | None:
    """``None`` (all heads, averaged), an int or a list of ints -> a list of head indices or None."""
    return check_heads(heads, num_heads)


def describe_layers(layers: list[int], num_layers: int) -> str:
    if layers == list(range(num_layers)):
        return f"all {num_layers} layers"
    if len(layers) > 1 and layers == list(range(layers[0], layers[-1] + 1)):
        return f"layers {layers[0]}-{layers[-1]} of {num_layers}"
    return f"layer{'s' if len(layers) > 1 else ''} {', '.join(map(str, layers))} of {num_layers}"


def visible_rows(n: int, causal: bool) -> np.ndarray:
    """``[n]`` number of query rows that can see each key: ``n - j`` causal, ``n`` bidirectional."""
    return (n - np.arange(n)) if causal else np.full(n, n)


def informative(n: int, causal: bool) -> np.ndarray:
    """``[n]`` bool: query rows with at least two visible keys (as in metrics.py)."""
    visible = np.arange(1, n + 1) if causal else np.full(n, n)
    return visible >= 2
