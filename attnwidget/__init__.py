"""attnwidget: see and measure attention inside transformer language models."""

from . import metrics
from ._recorder import UnsupportedAttentionError
from .capture import Capture, capture
from .heads import (
    ROLES,
    HeadRoles,
    SimilarHeads,
    head_distances,
    head_roles,
    induction_tokens,
    similar_heads,
)
from .metrics import compute_metrics
from .explorer import Explorer, show
from .widget import AttentionWidget
from .models import EXAMPLE_MODELS, MissingModelError, load_model
from .rollout import (
    RowAttribution,
    attention_flow,
    attention_flow_row,
    mixed_attention,
    rollout,
    rollout_row,
)

__version__ = "0.1.0"

__all__ = [
    "AttentionWidget",
    "Explorer",
    "show",
    "rollout_row",
    "rollout",
    "mixed_attention",
    "attention_flow_row",
    "attention_flow",
    "RowAttribution",
    "Capture",
    "EXAMPLE_MODELS",
    "HeadRoles",
    "MissingModelError",
    "ROLES",
    "SimilarHeads",
    "UnsupportedAttentionError",
    "capture",
    "compute_metrics",
    "head_distances",
    "head_roles",
    "induction_tokens",
    "load_model",
    "metrics",
    "similar_heads",
]
