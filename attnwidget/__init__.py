"""attnwidget: see and measure attention inside transformer language models."""

from .capture import Capture, capture
from .models import EXAMPLE_MODELS, MissingModelError, load_model
from ._recorder import UnsupportedAttentionError

__version__ = "0.1.0"

__all__ = [
    "Capture",
    "EXAMPLE_MODELS",
    "MissingModelError",
    "UnsupportedAttentionError",
    "capture",
    "load_model",
]
