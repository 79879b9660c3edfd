"""Prompt and language analysis: one import place for parts.py, templates.py and languages.py.

- :func:`prompt_parts` / :func:`chat_parts`: attention between the parts of a prompt (parts.py).
- :func:`compare_templates`: prompt templates side by side (templates.py).
- :func:`compare_languages`: texts in several languages side by side (languages.py).

The report and quality score are in report.py. Definitions and thresholds: docs/analysis.md.
"""

from __future__ import annotations

from .languages import LanguageComparison, LanguageStats, compare_languages, merge_pieces
from .parts import OTHER, ROLE_NAMES, PromptParts, chat_parts, prompt_parts
from .templates import TEMPLATE_STATS, TemplateComparison, compare_templates

__all__ = [
    "OTHER",
    "ROLE_NAMES",
    "TEMPLATE_STATS",
    "LanguageComparison",
    "LanguageStats",
    "PromptParts",
    "TemplateComparison",
    "chat_parts",
    "compare_languages",
    "compare_templates",
    "merge_pieces",
    "prompt_parts",
]
