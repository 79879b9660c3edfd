"""Prompt parts, chat parts, template and language comparison on hand-built captures and tiny random models."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch

import attnwidget
from attnwidget import analysis as an
from attnwidget._recorder import WeightsRecord
from attnwidget.capture import Capture
from attnwidget.languages import merge_pieces
from attnwidget.metrics import reference_pattern
from helpers import tiny_model

CHAT_TEMPLATE = (
    "{% for m in messages %}<bos>{{ m['role'] }}\n{{ m['content'] }}<eos>\n{% endfor %}"
    "{% if add_generation_prompt %}<bos>assistant\n{% endif %}"
)


def make_capture(weights, pieces, *, causal=True, special=None, partial=None, offsets=None, text=None) -> Capture:
    """A real Capture over hand-built ``[layer, head, query, key]`` weights; tokens are ``pieces``."""
    weights = np.asarray(weights, dtype=np.float32)
    n = weights.shape[-1]
    if offsets is None:
        lengths = np.array([len(p) for p in pieces])
        ends = np.cumsum(lengths)
        offsets = np.stack([ends - lengths, ends], 1)
    text = "".join(pieces) if text is None else text
    records = [WeightsRecord(f"layers.{i}.attn", torch.from_numpy(w.copy())) for i, w in enumerate(weights)]
    return Capture(records=records, masks=[], token_ids=np.arange(n), tokens=list(pieces), offsets=offsets,
                   special=np.zeros(n, bool) if special is None else special,
                   generated=np.zeros(n, bool), partial=np.zeros(n, bool) if partial is None else partial,
                   text=text, model_name="hand-built", is_causal=causal, num_heads=weights.shape[1])


PIECES = ["Do", " this", ".", " Now"]  # text "Do this. Now": A = "Do this" (tokens 0, 1), B = ". Now" (2, 3)
PREVIOUS, FIRST, UNIFORM = (reference_pattern(k, 4) for k in ("previous", "first", "uniform"))


@pytest.fixture(scope="module")
def llama():
    return tiny_model("llama")


@pytest.fixture(scope="module")
def chat_tokenizer(byte_tokenizer):
    tok = copy.deepcopy(byte_tokenizer)
    tok.chat_template = CHAT_TEMPLATE
    return tok


# ----------------------------------------------------------------------------- prompt parts


def test_part_matrix_known_answer():
    # layer 0: head 0 previous-token, head 1 first-token; layer 1: both uniform
    cap = make_capture(np.stack([np.stack([PREVIOUS, FIRST]), np.stack([UNIFORM, UNIFORM])]), PIECES)
    res = an.prompt_parts(cap, {"A": (0, 7), "B": ". Now"})
    assert res.names == ["A", "B"] and [i.tolist() for i in res.token_index] == [[0, 1], [2, 3]]
    assert res.tokens == [["Do", " this"], [".", " Now"]]
    # layer 0: A rows put everything on A; B rows: previous -> (A, B), first -> (A, A)
    np.testing.assert_allclose(res.matrix_by_layer[0], [[1, 0], [0.75, 0.25]])
    # layer 1 uniform: row 2 -> (2/3, 1/3), row 3 -> (1/2, 1/2)
    np.testing.assert_allclose(res.matrix_by_layer[1], [[1, 0], [(2 / 3 + 1 / 2) / 2, (1 / 3 + 1 / 2) / 2]])
    np.testing.assert_allclose(res.matrix, res.matrix_by_layer.mean(0))
    np.testing.assert_allclose(res.matrix.sum(1), 1.0)
    # last token (row 3): layer 0 -> key 2 (B) and key 0 (A); layer 1 uniform -> (1/2, 1/2)
    np.testing.assert_allclose(res.last_token_share_by_layer, [[0.5, 0.5], [0.5, 0.5]])
    # received: per token, mean over layers of (column sum of the head mean) / rows that see it (4 - j)
    mean = np.stack([(PREVIOUS + FIRST) / 2, UNIFORM])
    per_token = (mean.sum(1) / (4 - np.arange(4))).mean(0)
    np.testing.assert_allclose(res.received, [per_token[:2].mean(), per_token[2:].mean()])
    # entropy: layer 0 is one-hot (0); layer 1 uniform rows 1..3 have ln(i + 1); row 0 is not informative
    np.testing.assert_allclose(res.entropy, [math.log(2) / 2, (math.log(3) + math.log(4)) / 2 / 2])
    np.testing.assert_allclose(res.normalized_entropy, [0.5, 0.5])
    assert res.counts.tolist() == [2, 2]
    assert repr(res) == "PromptParts(2 parts: A, B; 2 layers)"
    json.dumps(res.to_dict())


def test_layers_heads_selection_and_other_part():
    cap = make_capture(np.stack([np.stack([PREVIOUS, FIRST]), np.stack([UNIFORM, UNIFORM])]), PIECES)
    res = an.prompt_parts(cap, [("A", 0, 2)], layers=[0], heads=0)  # only "Do": the rest is (other)
    assert res.names == ["A", an.OTHER] and res.spans == [(0, 2), None]
    assert res.layers == [0] and res.heads == [0]
    # previous-token head: row 0 -> A; rows 1..3 -> keys 0, 1, 2 -> A, (other), (other)
    np.testing.assert_allclose(res.matrix, [[1, 0], [1 / 3, 2 / 3]])
    assert an.prompt_parts(cap, [("A", 0, 2)], layers=-1).layers == [1]


def test_token_goes_to_part_it_overlaps_most_and_empty_spans_to_other():
    pieces = ["<s>", "ab", "cd", "ef"]  # the special token has an empty span: it belongs to no part
    offsets = np.array([[0, 0], [0, 2], [2, 4], [4, 6]])
    cap = make_capture(reference_pattern("uniform", 4)[None, None], pieces, offsets=offsets, text="abcdef",
                       special=np.array([True, False, False, False]))
    res = an.prompt_parts(cap, {"x": (0, 3), "y": (3, 6)})  # "cd" overlaps x by 1, y by 1: tie -> earlier (x)
    assert [i.tolist() for i in res.token_index] == [[1, 2], [3], [0]]
    assert res.names[-1] == an.OTHER
    res = an.prompt_parts(cap, {"x": (0, 2), "y": (3, 6)})
    assert [i.tolist() for i in res.token_index] == [[1], [2, 3], [0]]  # "cd": 1 char in y, none in x


def test_chinese_parts_map_all_byte_pieces(llama, byte_tokenizer):
    text = "猫坐在垫子上。龙"  # 龙 is not in the tokenizer's corpus: three byte pieces
    cap = attnwidget.capture(llama, byte_tokenizer, text)
    res = an.prompt_parts(cap, {"sentence": "猫坐在垫子上。", "dragon": "龙"})
    pieces = np.flatnonzero((cap.offsets[:, 0] <= 7) & (cap.offsets[:, 1] > 7))
    assert pieces.size >= 2 and cap.partial[pieces].all()
    assert res.token_index[1].tolist() == pieces.tolist()
    assert res.tokens[1] == ["龙"] * pieces.size
    assert res.counts.sum() == cap.num_tokens and res.names == ["sentence", "dragon"]
    np.testing.assert_allclose(res.matrix.sum(1), 1.0, atol=1e-5)
    assert "dragon" in str(res) and "'龙'" in str(res)


@pytest.mark.parametrize("parts, match", [
    ({"a": "missing"}, "does not occur"),
    ({"a": "o"}, r"occurs 2 times.*\(1, 2\), \(10, 11\).*give the \(start, end\) span"),
    ({"a": (0, 5), "b": (3, 8)}, "overlap"),
    ({"a": (5, 99)}, r"0 <= start < end <= 12"),
    ({"a": (3, 3)}, "0 <= start < end"),
    ({an.OTHER: (0, 2)}, "other than"),
    ({}, "empty"),
    ([("a", 1, 2, 3)], r"\(name, start, end\)"),
])
def test_part_errors(parts, match):
    cap = make_capture(UNIFORM[None, None], PIECES)  # text "Do this. Now"
    with pytest.raises(ValueError, match=match):
        an.prompt_parts(cap, parts)


def test_part_errors_types_and_empty_parts():
    cap = make_capture(UNIFORM[None, None], PIECES)
    with pytest.raises(TypeError, match="needs a Capture"):
        an.prompt_parts(UNIFORM[None, None], {"a": (0, 2)})
    with pytest.raises(TypeError, match="dict"):
        an.prompt_parts(cap, "Do")
    with pytest.raises(TypeError, match=r"\(start, end\) pair of ints or a substring"):
        an.prompt_parts(cap, {"a": 3})
    with pytest.raises(IndexError, match="layers 5 is out of range"):
        an.prompt_parts(cap, {"a": "Do"}, layers=5)
    with pytest.raises(IndexError, match=r"heads\[0\] 3 is out of range"):
        an.prompt_parts(cap, {"a": "Do"}, heads=[3])
    # " this" (2..7) overlaps "a" by 2 characters and "b" by 1: it goes to "a", leaving "b" empty
    with pytest.raises(ValueError, match="'b' covers no token"):
        an.prompt_parts(cap, {"a": (0, 4), "b": (4, 5)})


# ----------------------------------------------------------------------------- chat parts


def test_chat_parts_content_and_markers(llama, chat_tokenizer):
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "The cat sat."},
            {"role": "assistant", "content": "Yes."}, {"role": "user", "content": "猫?"}]
    cap = attnwidget.capture(llama, chat_tokenizer, msgs)
    parts = an.chat_parts(cap)
    assert [p[0] for p in parts] == ["system", "user", "assistant", "user 2"]
    assert [cap.text[s:e] for _, s, e in parts] == ["Be brief.", "The cat sat.", "Yes.", "猫?"]
    whole = an.chat_parts(cap, markers=True)
    assert [p[0] for p in whole] == ["system", "user", "assistant", "user 2", "assistant 2"]
    assert whole[0][1] == 0 and whole[-1][2] == len(cap.text)
    assert all(a[2] == b[1] for a, b in zip(whole, whole[1:]))  # turns tile the text
    res = an.prompt_parts(cap, parts)
    assert res.names[-1] == an.OTHER and "<bos>" in res.tokens[-1]


def test_chat_parts_error_without_turns(llama, byte_tokenizer):
    cap = attnwidget.capture(llama, byte_tokenizer, "The cat sat on the mat.")
    with pytest.raises(ValueError, match="found no chat turns"):
        an.chat_parts(cap)


# ----------------------------------------------------------------------------- templates


def test_compare_templates_strings_messages_and_captures(llama, chat_tokenizer):
    templates = {"plain": "The cat sat on the mat.", "chat": [{"role": "user", "content": "The cat sat on the mat."}]}
    cmp = an.compare_templates(llama, chat_tokenizer, templates)
    assert cmp.names == ["plain", "chat"]
    assert set(cmp.stats) == set(an.TEMPLATE_STATS)
    assert cmp.stats["num_tokens"].tolist() == [len(cmp.tokens[0]), len(cmp.tokens[1])]
    shares = cmp.stats["last_to_content"] + cmp.stats["last_to_special"] + cmp.stats["last_to_markup"]
    np.testing.assert_allclose(shares, 1.0, atol=1e-5)
    plain = cmp["plain"]
    assert plain["last_to_content"] == pytest.approx(1.0) and plain["last_to_special"] == 0.0
    assert 0.0 < cmp["chat"]["last_to_content"] < 1.0 and cmp["chat"]["last_to_special"] > 0.0
    assert all(len(v) == 3 for v in cmp.by_layer["entropy"])  # three layers each
    for s in ("entropy", "normalized_entropy", "sparsity", "max_attention", "coverage", "sink_score"):
        np.testing.assert_allclose(cmp.stats[s], [v.mean() for v in cmp.by_layer[s]])
    text = str(cmp)
    assert text.splitlines()[1].split() == ["statistic", "plain", "chat"]
    assert "last token -> content" in text and f"{plain['entropy']:.3f}" in text
    assert repr(cmp) == "TemplateComparison(2 templates: plain, chat)"
    json.dumps(cmp.to_dict())

    caps = {k: attnwidget.capture(llama, chat_tokenizer, v) for k, v in templates.items()}
    again = an.compare_templates(captures=caps, layers=[0, 2])
    assert again.layers == [[0, 2], [0, 2]]
    np.testing.assert_allclose(again.by_layer["entropy"][0], cmp.by_layer["entropy"][0][[0, 2]], rtol=1e-6)
    # found from the chat markup (no messages given): the same content share
    assert again["chat"]["last_to_content"] == pytest.approx(
        cmp.by_layer["last_to_content"][1][[0, 2]].mean(), abs=1e-6)


def test_compare_templates_errors(llama, byte_tokenizer):
    with pytest.raises(TypeError, match="got neither"):
        an.compare_templates(llama, byte_tokenizer)
    with pytest.raises(TypeError, match="got both"):
        an.compare_templates(llama, byte_tokenizer, {"a": "x"}, captures={"a": None})
    with pytest.raises(TypeError, match="needs a Capture"):
        an.compare_templates(captures={"a": np.zeros((1, 1, 2, 2))})
    with pytest.raises(TypeError, match="need the model and tokenizer"):
        an.compare_templates(templates={"a": "text"})


# ----------------------------------------------------------------------------- languages


def test_merge_pieces_and_received_on_hand_built_capture():
    # "a猫b": 猫 split over three byte pieces (same span), then "b"
    pieces = ["a", "猫", "猫", "猫", "b"]
    offsets = np.array([[0, 1], [1, 2], [1, 2], [1, 2], [2, 3]])
    partial = np.array([False, True, True, True, False])
    w = reference_pattern("uniform", 5)[None, None]
    cap = make_capture(w, pieces, offsets=offsets, partial=partial, text="a猫b")
    starts, units = merge_pieces(cap)
    assert starts.tolist() == [0, 1, 4] and units == ["a", "猫", "b"]
    cmp = an.compare_languages(captures={"x": cap}, top_k=5)
    stats = cmp["x"]
    # uniform causal: key j gets 1/(i+1) from each row i >= j, averaged over the 5 - j rows that see it
    per_token = np.array([sum(1 / (i + 1) for i in range(j, 5)) / (5 - j) for j in range(5)])
    np.testing.assert_allclose(stats.received[0], [per_token[0], per_token[1:4].sum(), per_token[4]])
    assert [t for t, _, _ in stats.top] == ["猫", "b"]  # the first token is excluded by default
    assert [i for _, i, _ in stats.top] == [1, 4]
    assert stats.num_chars == 3 and stats.num_tokens == 5 and stats.chars_per_token == pytest.approx(0.6)
    with_first = an.compare_languages(captures={"x": cap}, exclude_first=False, top_k=1)
    assert [t for t, _, _ in with_first["x"].top] == ["猫"] and len(with_first["x"].top_by_layer[0]) == 1


def test_compare_languages_tiny_model(llama, byte_tokenizer):
    texts = {"en": "The cat sat on the mat.", "zh": "猫坐在垫子上。龙", "ru": "Привет мир!"}
    cmp = an.compare_languages(llama, byte_tokenizer, texts, top_k=3)
    zh = cmp["zh"]
    assert zh.units == ["猫坐在垫子上", "。", "龙"]  # three byte pieces of 龙 merged into one entry
    assert len(zh.tokens) == 5 and zh.num_chars == len(texts["zh"])
    assert zh.entropy.shape == zh.sparsity.shape == zh.normalized_entropy.shape == (3,)
    assert zh.received.shape == (3, 3) and len(zh.top_by_layer) == 3
    assert all(len(s.top) <= 3 for s in cmp.languages.values())
    assert all(0 not in [i for _, i, _ in s.top] for s in cmp.languages.values())
    text = str(cmp)
    assert "characters per token" in text and "'龙'" in text and "\ufffd" not in text
    assert text.splitlines()[1].split() == ["statistic", "en", "zh", "ru"]
    assert repr(cmp) == "LanguageComparison(en, zh, ru; top_k=3)"
    json.dumps(cmp.to_dict())
    with pytest.raises(ValueError, match="top_k must be a positive int"):
        an.compare_languages(llama, byte_tokenizer, texts, top_k=0)
    with pytest.raises(TypeError, match="maps to list"):
        an.compare_languages(llama, byte_tokenizer, {"en": ["x"]})


def test_compare_languages_excludes_special_tokens(llama, chat_tokenizer):
    cap = attnwidget.capture(llama, chat_tokenizer, [{"role": "user", "content": "The cat sat."}])
    stats = an.compare_languages(captures={"chat": cap}, top_k=50)["chat"]
    listed = [i for _, i, _ in stats.top]
    assert not cap.special[listed].any() and 0 not in listed
    assert stats.num_tokens == int((~cap.special).sum())
    assert stats.num_chars == len(cap.text) - sum(len("<bos>") if t == "<bos>" else len(t) for t in
                                                  np.array(cap.tokens)[cap.special])
    kept = an.compare_languages(captures={"chat": cap}, top_k=50, exclude_special=False)["chat"]
    assert cap.special[[i for _, i, _ in kept.top]].any()


def test_part_matrix_matches_token_loops_on_random_weights():
    rng = np.random.default_rng(0)
    n, pieces = 7, ["ab", "c", "de", "f", "gh", "i", "j"]  # text "abcdefghij"
    logits = rng.standard_normal((2, 3, n, n)) * 2
    logits[..., np.triu(np.ones((n, n), bool), 1)] = -np.inf
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    cap = make_capture(w, pieces)
    res = an.prompt_parts(cap, {"x": "bcd", "y": (6, 9)}, heads=[0, 2])
    member = {"x": [0, 1, 2], "y": [4, 5], an.OTHER: [3, 6]}  # "de" overlaps x by 1 (d): x; "j" in no part
    assert res.names == ["x", "y", an.OTHER]
    assert [i.tolist() for i in res.token_index] == list(member.values())
    a = w[:, [0, 2]].astype(np.float32).mean(1)  # [layer, query, key]
    for r, qa in enumerate(member.values()):
        for c, kb in enumerate(member.values()):
            naive = np.mean([sum(a[:, i, j] for j in kb) for i in qa], axis=0)
            np.testing.assert_allclose(res.matrix_by_layer[:, r, c], naive, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(res.matrix_by_layer.sum(-1), 1.0, rtol=1e-5)


def test_received_on_bidirectional_uniform():
    cap = make_capture(np.full((1, 2, 4, 4), 0.25), PIECES, causal=False)
    stats = an.compare_languages(captures={"x": cap}, exclude_first=False)["x"]
    np.testing.assert_allclose(stats.received, 0.25)  # every row sees every key
    res = an.prompt_parts(cap, {"A": (0, 7), "B": (7, 12)})
    np.testing.assert_allclose(res.matrix, 0.5)
    np.testing.assert_allclose(res.normalized_entropy, 1.0, rtol=1e-6)
