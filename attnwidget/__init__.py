"""attnwidget: see and measure attention inside transformer language models."""

__version__ = "0.1.0"
