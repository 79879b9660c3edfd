"""attnwidget: see and measure attention inside transformer language models."""

from typing import TYPE_CHECKING, Any

from . import metrics
from .errors import (
    ArgumentError,
    ArgumentTypeError,
    AttnwidgetError,
    BundleMissingError,
    CaptureFileError,
    MemoryBudgetError,
    MissingExtraError,
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

__version__ = "0.1.0"  # the one version source: hatch reads it, tests/test_version.py checks js/package.json

# The explorer's bqplot panels (bqplot imports pandas: about 1 s) load on first use, so that
# ``import attnwidget`` does not pay for them (PEP 562).
_LAZY = {"Explorer": "explorer", "show": "explorer"}

if TYPE_CHECKING:  # type checkers and IDEs see the real names
    from .explorer import Explorer, show


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'attnwidget' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

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
    "MissingExtraError",
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
