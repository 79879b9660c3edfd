"""Long calls show a tqdm.auto bar: on request, never with progress=False, and by a size rule (not a
timer, so notebooks print the same output every run) with the default progress=None."""

from __future__ import annotations

import pytest

import attnwidget
from attnwidget import _progress
from helpers import tiny_model


@pytest.fixture
def cap(byte_tokenizer):
    return attnwidget.capture(tiny_model("llama"), byte_tokenizer, "The cat sat on the mat. The dog sat on the log.")


@pytest.mark.parametrize("call, label", [
    (lambda c, p: attnwidget.compute_metrics(c, progress=p), "attnwidget metrics"),
    (lambda c, p: attnwidget.head_roles(c, progress=p), "attnwidget head roles"),
    (lambda c, p: attnwidget.attention_report(c, progress=p), "attnwidget metrics"),
    (lambda c, p: attnwidget.rollout_rows(c, [3], progress=p), "attnwidget rollout rows"),
    (lambda c, p: attnwidget.rollout(c, progress=p), "attnwidget rollout"),
    (lambda c, p: attnwidget.attention_flow(c, progress=p), "attnwidget attention flow"),
    (lambda c, p: attnwidget.compare_templates(captures={"a": c}, progress=p), "attnwidget templates"),
    (lambda c, p: attnwidget.compare_languages(captures={"en": c}, progress=p), "attnwidget languages"),
])
def test_a_bar_on_request_and_none_when_turned_off(cap, capsys, call, label):
    call(cap, False)
    assert label not in capsys.readouterr().err
    cap.__dict__.pop("_summaries", None)  # computed again, so the bar has work to count
    call(cap, True)
    err = capsys.readouterr().err
    assert label in err and "100%" in err, err
    cap.__dict__.pop("_summaries", None)
    call(cap, None)  # a tiny input: far under 2 s, no bar
    assert label not in capsys.readouterr().err


def test_the_rule_is_about_two_seconds_of_estimated_work():
    assert _progress.wanted(None, 2.5) and not _progress.wanted(None, 0.5)
    assert _progress.wanted(True, 0.0) and not _progress.wanted(False, 100.0)
    with pytest.raises(TypeError, match="progress must be True, False or None"):
        _progress.wanted("yes", 1.0)
