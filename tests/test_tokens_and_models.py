"""Readable tokens for every script, and the offline example models."""

from __future__ import annotations

import numpy as np
import pytest

import attnwidget
from attnwidget._tokens import token_text


def test_byte_level_pieces_read_as_characters(byte_tokenizer):
    text = "猫坐在垫子上 Привет 😀"
    ids = byte_tokenizer(text).input_ids
    t = token_text(byte_tokenizer, ids)
    assert t.text == text
    for token, (a, b) in zip(t.tokens, t.offsets):
        assert token == text[a:b] and "\ufffd" not in token
    assert "".join(dict.fromkeys(t.tokens)).replace(" ", "") == "".join(dict.fromkeys(text)).replace(" ", "")


def test_partial_pieces_are_flagged():
    class ByteTok:  # three one-byte pieces for 猫 (E7 8C AB), then "a"
        all_special_ids: list = []
        added_tokens_decoder: dict = {}
        backend_tokenizer = None

    from attnwidget import _tokens

    table = {b: c for c, b in _tokens._byte_decoder().items()}
    pieces = [table[0xE7], table[0x8C], table[0xAB], "a"]
    result = _tokens._byte_level_text(pieces, np.zeros(4, dtype=bool))
    assert result.tokens == ["猫", "猫", "猫", "a"]
    assert result.partial.tolist() == [True, True, True, False]
    assert result.offsets.tolist() == [[0, 1], [0, 1], [0, 1], [1, 2]]


def test_invalid_utf8_is_shown_not_hidden(byte_tokenizer):
    from attnwidget import _tokens

    table = {b: c for c, b in _tokens._byte_decoder().items()}
    lone = byte_tokenizer.convert_tokens_to_ids([table[0xE7]])[0]  # first byte of a 3-byte character
    cat = byte_tokenizer("cat").input_ids
    t = token_text(byte_tokenizer, [lone] + cat)
    assert t.tokens[0] == "\\xe7" and t.partial.tolist() == [True] + [False] * len(cat)
    assert "".join(t.tokens[1:]) == "cat" and t.text == "\\xe7cat"


def test_special_tokens_are_marked(byte_tokenizer):
    ids = [byte_tokenizer.bos_token_id] + byte_tokenizer("cat").input_ids + [byte_tokenizer.eos_token_id]
    t = token_text(byte_tokenizer, ids)
    assert t.tokens[0] == "<bos>" and t.tokens[-1] == "<eos>"
    assert t.special.tolist() == [True] + [False] * (len(ids) - 2) + [True]


def test_cache_dir_is_overridable(monkeypatch, tmp_path):
    from attnwidget.models import cache_dir

    monkeypatch.setenv("ATTNWIDGET_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("ATTNWIDGET_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "attnwidget"


@pytest.mark.slow
def test_smollm2_chinese_reads_as_characters(smollm2):
    model, tok = smollm2
    cap = attnwidget.capture(model, tok, "猫坐在垫子上")
    assert cap.tokens == ["猫", "猫", "猫", "坐", "坐", "在", "垫", "垫", "垫", "子", "上"]
    assert cap.partial.tolist() == [True] * 5 + [False] + [True] * 3 + [False, False]
    assert "".join(dict.fromkeys(cap.tokens)) == "猫坐在垫子上"


@pytest.mark.slow
def test_smollm2_is_a_real_model(smollm2):
    model, tok = smollm2
    cap = attnwidget.capture(model, tok, "The capital of France is", generate=2)
    assert cap.tokens[-2:] == [" Paris", "."] and cap.generated.sum() == 2
    assert cap.model_name == "SmolLM2-135M-Instruct"


@pytest.mark.slow
def test_smollm2_chat_template(smollm2):
    model, tok = smollm2
    cap = attnwidget.capture(model, tok, [{"role": "user", "content": "What is 2+2?"}])
    assert cap.tokens[0] == "<|im_start|>" and cap.special[0]
    assert cap.text.endswith("<|im_start|>assistant\n")
    a, b = cap.offsets[cap.tokens.index(" 2") if " 2" in cap.tokens else cap.tokens.index("2")]
    assert cap.text[a:b] == "2"


@pytest.mark.slow
def test_first_conversion_shows_progress_and_caches(monkeypatch, tmp_path, capfd):
    from attnwidget.models import smollm2_path

    monkeypatch.setenv("ATTNWIDGET_CACHE", str(tmp_path))
    folder = smollm2_path()
    err = capfd.readouterr().err
    assert folder.parent == tmp_path and (folder / "model.safetensors").is_file()
    assert "converting SmolLM2-135M-Instruct.Q4_1.gguf" in err and "step 2/3" in err and "done in" in err
    assert smollm2_path() == folder and "converting" not in capfd.readouterr().err  # cached


def test_load_model_keeps_hub_download_bars_and_restores(monkeypatch):
    """load_model silences transformers' own loading bars only: huggingface_hub's download bars (and
    their per-group settings) stay as they were during the call, and everything is put back after."""
    import importlib

    import huggingface_hub.utils as hub_utils
    import transformers
    from transformers.utils import logging as tlog

    hub_tqdm = importlib.import_module("huggingface_hub.utils.tqdm")  # the module (the package exports a class of that name)
    if hub_tqdm.HF_HUB_DISABLE_PROGRESS_BARS is not None:
        pytest.skip("HF_HUB_DISABLE_PROGRESS_BARS is set: the environment decides the hub's bars")
    # the hub's bars on, one group switched off by the user: both must survive the call
    monkeypatch.setattr(hub_tqdm, "progress_bar_states", {"_global": True, "huggingface_hub.some_group": False})
    monkeypatch.setattr(tlog, "_tqdm_active", True)
    seen = {}

    class FakeModel:
        name_or_path = "org/tiny"
        config = type("Config", (), {"_name_or_path": "org/tiny"})()

        def eval(self):
            return self

    def fake_model(name, **kwargs):
        seen["hub_disabled"] = hub_utils.are_progress_bars_disabled()
        seen["group_disabled"] = hub_utils.are_progress_bars_disabled("huggingface_hub.some_group")
        seen["transformers_bars"] = tlog.is_progress_bar_enabled()
        return FakeModel()

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", staticmethod(fake_model))
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", staticmethod(lambda name, **kw: "tok"))
    model, tok = attnwidget.load_model("org/tiny")
    assert isinstance(model, FakeModel) and tok == "tok"
    assert seen == {"hub_disabled": False, "group_disabled": True, "transformers_bars": False}
    assert tlog.is_progress_bar_enabled() and not hub_utils.are_progress_bars_disabled()
    assert hub_utils.are_progress_bars_disabled("huggingface_hub.some_group")

    def failing(name, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", staticmethod(failing))
    with pytest.raises(OSError, match="no network"):
        attnwidget.load_model("org/tiny")
    assert tlog.is_progress_bar_enabled() and not hub_utils.are_progress_bars_disabled()  # restored on error too
    tlog._tqdm_active = False  # a user who switched transformers' bars off keeps them off
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", staticmethod(fake_model))
    attnwidget.load_model("org/tiny")
    assert not tlog.is_progress_bar_enabled()
