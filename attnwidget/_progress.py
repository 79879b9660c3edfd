"""Progress bars for long library calls: ``tqdm.auto`` (a widget in Jupyter, text in a terminal).

A call shows a bar when its work is estimated, from the sizes alone, to take about
:data:`SHOW_AFTER_SECONDS` or more on a 2-core laptop: a size rule rather than a timer, so that the same
notebook cell shows the same output every time it runs (tutorials are checked output by output).
``progress=True`` always shows one, ``progress=False`` never does; ``None`` (the default) applies the rule.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Protocol

from .errors import ArgumentTypeError

if TYPE_CHECKING:
    from ._types import Progress

SHOW_AFTER_SECONDS = 2.0


class ProgressBar(Protocol):
    """What the library's loops call on a bar: ``tqdm.auto.tqdm``'s methods, or :class:`_Silent`'s."""

    def update(self, count: int = 1) -> object: ...

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None: ...

    def close(self) -> None: ...


class _Silent:
    """The bar's interface, doing nothing."""

    n = 0

    def update(self, count: int = 1) -> None:
        self.n += count

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


def wanted(progress: object, seconds: float) -> bool:
    if progress is None:
        return seconds >= SHOW_AFTER_SECONDS
    if not isinstance(progress, bool):
        raise ArgumentTypeError(f"progress must be True, False or None (automatic); got {progress!r}")
    return progress


def make_bar(total: int, desc: str, progress: Progress = None, seconds: float = 0.0,
             unit: str = "layer") -> ProgressBar:
    """A ``tqdm.auto`` bar of ``total`` steps, or a silent stand-in (see the module docstring)."""
    if not wanted(progress, seconds):
        return _Silent()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=True, dynamic_ncols=True)


def text_seconds(model: object, texts: Iterable[object]) -> float:
    """A rough size-based estimate for capturing ``texts`` (strings or messages) with ``model`` and
    passing over their attention: about 3.5 characters a token, a forward pass and a fused pass."""
    config = getattr(model, "config", None)
    layers = int(getattr(config, "num_hidden_layers", 12) or 12)
    heads = int(getattr(config, "num_attention_heads", 12) or 12)
    total = 0.0
    for text in texts:
        n = len(str(text)) / 3.5
        total += n * 2e-3 + layers * heads * n * n / 2 * 1.8e-9
    return total


@contextlib.contextmanager
def bar(total: int, desc: str, progress: Progress = None, seconds: float = 0.0,
        unit: str = "layer") -> Iterator[ProgressBar]:
    """:func:`make_bar` as a context manager that closes the bar."""
    handle = make_bar(total, desc, progress, seconds, unit)
    try:
        yield handle
    finally:
        handle.close()
