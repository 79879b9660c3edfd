"""attnwidget: see and measure attention inside transformer language models."""

from . import metrics
from .errors import (
    ArgumentError,
    ArgumentTypeError,
    AttnwidgetError,
    BundleMissingError,
    CaptureFileError,
    MemoryBudgetError,
    MissingModelError,
    NotAttentionError,
    OutOfRangeError,
    SaveError,
    UnsupportedAttentionError,
)
from .analysis import (
    LanguageComparison,
    LanguageStats,
    PromptParts,
    TemplateComparison,
    chat_parts,
    compare_languages,
    compare_templates,
    prompt_parts,
)
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
from .export import export_html
from .widget import AttentionWidget
from .compare import ComparisonWidget, compare
from .models import EXAMPLE_MODELS, load_model
from .routes import flow_routes
from .report import AttentionReport, QualityScore, Recommendation, attention_report, quality_score
from .rollout import (
    RowAttribution,
    attention_flow,
    attention_flow_row,
    mixed_attention,
    rollout,
    rollout_row,
    rollout_rows,
)

__version__ = "0.1.0"

__all__ = [
    "attention_flow",
    "attention_flow_row",
    "ArgumentError",
    "ArgumentTypeError",
    "attention_report",
    "AttentionReport",
    "AttentionWidget",
    "AttnwidgetError",
    "BundleMissingError",
    "Capture",
    "CaptureFileError",
    "capture",
    "chat_parts",
    "compare_languages",
    "compare_templates",
    "compute_metrics",
    "EXAMPLE_MODELS",
    "Explorer",
    "export_html",
    "flow_routes",
    "head_distances",
    "head_roles",
    "HeadRoles",
    "induction_tokens",
    "LanguageComparison",
    "LanguageStats",
    "load_model",
    "MemoryBudgetError",
    "metrics",
    "MissingModelError",
    "mixed_attention",
    "NotAttentionError",
    "OutOfRangeError",
    "SaveError",
    "prompt_parts",
    "PromptParts",
    "quality_score",
    "QualityScore",
    "Recommendation",
    "ROLES",
    "rollout",
    "rollout_row",
    "rollout_rows",
    "RowAttribution",
    "show",
    "similar_heads",
    "SimilarHeads",
    "TemplateComparison",
    "UnsupportedAttentionError",
]
