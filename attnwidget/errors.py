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
``MissingExtraError``       ``ImportError``                         an optional package is absent: the
                                                                    message names the extra to install
``BundleMissingError``      ``FileNotFoundError``                   the built JavaScript is absent
``SaveError``               ``OSError``                             a figure ``save_png`` /
                                                                    ``save_svg`` could not save: no
                                                                    page shows the widget, the page
                                                                    failed or did not answer in time
``SaveFolderError``         ``SaveError``, ``FileNotFoundError``    its folder does not exist
``SavePermissionError``     ``SaveError``, ``PermissionError``      its path is a folder or cannot
                                                                    be written
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
    "MissingExtraError",
    "MissingModelError",
    "NotAttentionError",
    "OutOfRangeError",
    "SaveError",
    "SaveFolderError",
    "SavePermissionError",
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

    #: Set by the query/key recorder on a refusal after which ``method="auto"`` tries the weights the
    #: model returns (attnwidget._recorder._weights_may_help).
    weights_may_help: bool = False


class MissingModelError(AttnwidgetError, ImportError):
    """An example model's wheel is not installed."""


class MissingExtraError(AttnwidgetError, ImportError):
    """A feature needs an optional package that is not installed (``pip install "attnwidget[extra]"``)."""


class BundleMissingError(AttnwidgetError, FileNotFoundError):
    """The built JavaScript front end is not there (run ``make js``)."""


class SaveError(AttnwidgetError, OSError):
    """A figure that could not be saved: no page shows the widget, or the page failed or did not answer."""


class SaveFolderError(SaveError, FileNotFoundError):
    """A figure's folder that does not exist."""


class SavePermissionError(SaveError, PermissionError):
    """A figure's path that is a folder, or that cannot be written."""
