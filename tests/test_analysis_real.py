"""Prompt parts, template and language comparison and the report on the real SmolLM2-135M-Instruct."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import attnwidget
from attnwidget.analysis import OTHER, chat_parts, compare_languages, compare_templates, prompt_parts
from attnwidget.report import attention_report, quality_score

pytestmark = pytest.mark.slow

EN = "Instruction: answer in one word. Context: The cat sat on the mat. Question: Where did the cat sit? Answer:"
ZH = "指令:用一个词回答。背景:猫坐在垫子上。问题:猫坐在哪里?答案:"
MOJIBAKE = re.compile("[\u00c0-\u00ff\u0100-\u017f\ufffd]")  # byte stand-ins like 'ç', 'Ġ', 'Ċ' or U+FFFD


def readable(tokens, text) -> bool:
    return all(not MOJIBAKE.search(t) and t in text for t in tokens)


@pytest.fixture(scope="module")
def model(smollm2):
    return smollm2


@pytest.mark.parametrize("text, parts", [
    (EN, {"instruction": "Instruction: answer in one word.", "context": "Context: The cat sat on the mat.",
          "question": "Question: Where did the cat sit?"}),
    (ZH, {"instruction": "指令:用一个词回答。", "context": "背景:猫坐在垫子上。", "question": "问题:猫坐在哪里?"}),
])
def test_prompt_parts(model, text, parts):
    cap = attnwidget.capture(*model, text)
    res = prompt_parts(cap, parts)
    assert res.names[:3] == ["instruction", "context", "question"]
    assert res.matrix_by_layer.shape == (30, len(res.names), len(res.names))
    np.testing.assert_allclose(res.matrix.sum(1), 1.0, atol=1e-4)
    assert np.all(np.triu(res.matrix[:3, :3], 1) == 0)  # causal: an earlier part never sees a later one
    assert res.counts.sum() == cap.num_tokens
    for toks in res.tokens:
        assert readable(toks, text), toks
    # the answer cue ("Answer:"/"答案:") is in (other); the last token reads all three parts
    assert res.names[-1] == OTHER and np.all(res.last_token_share[:3] > 0.01)
    assert "question" in str(res)


def test_chat_parts_and_template_comparison(model):
    messages = [{"role": "system", "content": "Answer in one word."},
                {"role": "user", "content": "The cat sat on the mat. Where did the cat sit?"}]
    cap = attnwidget.capture(*model, messages)
    parts = chat_parts(cap)
    assert [(n, cap.text[s:e]) for n, s, e in parts] == [("system", messages[0]["content"]),
                                                        ("user", messages[1]["content"])]
    res = prompt_parts(cap, parts)
    assert res.names == ["system", "user", OTHER]

    cmp = compare_templates(*model, {"plain": "The cat sat on the mat. Where did the cat sit?", "chat": messages})
    plain, chat = cmp["plain"], cmp["chat"]
    assert chat["num_tokens"] > plain["num_tokens"]
    assert plain["last_to_content"] == pytest.approx(1.0) and chat["last_to_special"] > 0.05
    for stats in (plain, chat):
        assert 0 < stats["normalized_entropy"] < 1 and 0 < stats["sink_score"] < 1
    assert len(cmp.by_layer["entropy"][0]) == 30
    print(cmp)


def test_language_comparison(model):
    texts = {"en": "The cat sat on the mat and looked at the dog.", "zh": "猫坐在垫子上,看着狗。",
             "ru": "Кошка сидела на коврике и смотрела на собаку."}
    cmp = compare_languages(*model, texts, top_k=5)
    zh = cmp["zh"]
    assert zh.units == list(texts["zh"])  # one entry per character, byte pieces merged
    assert len(zh.tokens) > len(zh.units)  # some characters take several byte pieces
    assert cmp["en"].chars_per_token > cmp["ru"].chars_per_token > zh.chars_per_token
    for lang, stats in cmp.languages.items():
        assert readable(stats.units, texts[lang]) and readable(stats.tokens, texts[lang])
        assert len(stats.top) == 5 and all(i > 0 for _, i, _ in stats.top)
        assert stats.entropy.shape == (30,) and len(stats.top_by_layer) == 30
    assert all(t in texts["zh"] for t, _, _ in zh.top)
    text = str(cmp)
    assert "\ufffd" not in text
    json.dumps(cmp.to_dict(), ensure_ascii=False)
    print(cmp)


def test_report_on_smollm2(model):
    cap = attnwidget.capture(*model, EN)
    rep = attention_report(cap)
    assert rep.num_layers == 30 and rep.num_heads == 9
    # measured on this text: 166 of 270 heads put > 0.5 on the first token, mean locality 0.17
    assert {"attention_sink", "low_locality"} <= {r.code for r in rep.recommendations}
    assert 0 < rep.quality.overall < 1 and rep.quality.overall == pytest.approx(quality_score(cap).overall)
    assert rep.highlights["strongest previous-token"][0][2] > 0.5
    text = str(rep)
    assert "Attention report: SmolLM2-135M-Instruct" in text and "sink" in text
    with_expected = attention_report(cap, expected="previous")
    assert with_expected.quality.overall != rep.quality.overall
    json.dumps(rep.to_dict())
    zh = attention_report(attnwidget.capture(*model, ZH))
    assert zh.num_tokens > 20
    print(rep)
