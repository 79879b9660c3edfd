"""The Capture object: inputs, tokens, row blocks, generation, save/load, and an untouched model."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

import attnwidget
from attnwidget import Capture
from helpers import tiny_model


@pytest.fixture(scope="module")
def llama():
    return tiny_model("llama")


@pytest.fixture(scope="module")
def cap(llama, byte_tokenizer):
    return attnwidget.capture(llama, byte_tokenizer, "The cat sat on the mat. The dog sat on the log.")


def test_pattern_views_agree(cap):
    full = cap.patterns()
    assert full.dtype == np.float32 and full.shape == (3, 4, cap.num_tokens, cap.num_tokens)
    np.testing.assert_allclose(full.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(cap.pattern(1, 2), full[1, 2])
    np.testing.assert_allclose(cap.pattern(1), full[1].mean(0), atol=1e-7)
    np.testing.assert_array_equal(cap.pattern(-1, 0), full[2, 0])
    np.testing.assert_allclose(cap.pattern(2, 3, rows=slice(4, 9)), full[2, 3, 4:9], atol=1e-6)
    np.testing.assert_allclose(cap.pattern(0, 1, rows=[7, 2]), full[0, 1, [7, 2]], atol=1e-6)
    np.testing.assert_array_equal(cap.head_patterns(2), full[2])
    np.testing.assert_array_equal(cap.patterns([2, 0]), full[[2, 0]])


def test_row_blocks_match_one_shot(cap, monkeypatch):
    module = importlib.import_module("attnwidget.capture")  # the attribute is the function

    expected = cap.pattern(1)
    monkeypatch.setattr(module, "ROW_BLOCK_ELEMENTS", 1)  # one query row per block
    np.testing.assert_allclose(cap.pattern(1), expected, atol=1e-6)  # float summation order only


def test_metadata(cap, llama):
    assert (cap.num_layers, cap.num_heads) == (3, 4)
    assert cap.is_causal
    assert cap.layer_names == [f"model.layers.{i}.self_attn" for i in range(3)]
    assert len(cap.tokens) == len(cap.token_ids) == len(cap.offsets) == cap.num_tokens
    for token, (start, end) in zip(cap.tokens, cap.offsets):
        assert cap.text[start:end].strip() == token.strip()
    assert not cap.generated.any()
    assert repr(cap) == "<Capture LlamaForCausalLM: 14 tokens, 3 layers x 4 heads, causal>"


def test_save_and_load_round_trip(cap, tmp_path):
    path = cap.save(tmp_path / "c.safetensors")
    back = Capture.load(path)
    np.testing.assert_array_equal(back.patterns(), cap.patterns())
    assert back.tokens == cap.tokens and back.text == cap.text and back.layer_names == cap.layer_names
    np.testing.assert_array_equal(back.offsets, cap.offsets)
    assert (back.is_causal, back.num_heads, back.model_name) == (cap.is_causal, cap.num_heads, cap.model_name)


def test_save_and_load_padded_and_weights(llama, tmp_path):
    ids = list(range(5, 17))
    for kwargs in ({"attention_mask": [0, 0] + [1] * 10}, {"method": "weights"}):
        c = attnwidget.capture(llama, _Ids(), ids, **kwargs)
        back = Capture.load(c.save(tmp_path / "x.safetensors"))
        np.testing.assert_array_equal(back.patterns(), c.patterns())


def test_load_rejects_other_files(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(FileNotFoundError, match="no capture file"):
        Capture.load(tmp_path / "missing.safetensors")
    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not an attnwidget capture"):
        Capture.load(tmp_path / "other.safetensors")


def test_chat_messages(byte_tokenizer, llama):
    byte_tokenizer.chat_template = (
        "{% for m in messages %}<bos>{{ m['role'] }}: {{ m['content'] }}<eos>{% endfor %}"
        "{% if add_generation_prompt %}<bos>assistant:{% endif %}"
    )
    try:
        c = attnwidget.capture(llama, byte_tokenizer, [{"role": "user", "content": "The cat sat."}])
    finally:
        byte_tokenizer.chat_template = None
    assert c.text == "<bos>user: The cat sat.<eos><bos>assistant:"
    assert c.tokens[0] == "<bos>" and c.special[0] and c.special.sum() == 3


def test_generate_appends_greedy_tokens(llama, byte_tokenizer):
    prompt = byte_tokenizer("The cat sat on").input_ids
    c = attnwidget.capture(llama, byte_tokenizer, "The cat sat on", generate=4)
    with torch.no_grad():
        greedy = llama.generate(torch.tensor([prompt]), max_new_tokens=4, do_sample=False,
                                attention_mask=torch.ones(1, len(prompt), dtype=torch.long))
    np.testing.assert_array_equal(c.token_ids, greedy[0].numpy())
    assert c.generated.tolist() == [False] * len(prompt) + [True] * 4
    assert c.text.startswith("The cat sat on") and len(c.tokens) == len(prompt) + 4
    from test_capture_exact import eager_reference

    assert np.abs(c.patterns() - eager_reference(llama, c.token_ids.tolist())).max() < 1e-5


def test_model_unchanged_after_a_capture_that_raises(llama, byte_tokenizer):
    from transformers.masking_utils import AttentionMaskInterface
    from transformers.modeling_utils import AttentionInterface

    ids = torch.tensor([byte_tokenizer("The dog sat on the log.").input_ids])
    with torch.no_grad():
        before = llama(ids).logits.clone()
    interfaces = (set(AttentionInterface._global_mapping), set(AttentionMaskInterface._global_mapping))
    llama.model.layers[1].train()  # a mixed training state must come back as it was
    training = {n: m.training for n, m in llama.named_modules()}
    # transformers installs its own output-recording hooks on the first forward: they were there before.
    hooks_before = hook_snapshot(llama)

    def explode(module, args, output):
        raise RuntimeError("boom in layer 1")

    for method in ("qk", "weights"):
        handle = llama.model.layers[1].register_forward_hook(explode)
        try:
            with pytest.raises(RuntimeError, match="boom in layer 1"):
                attnwidget.capture(llama, byte_tokenizer, "The dog sat on the log.", method=method)
        finally:
            handle.remove()
        assert llama.config._attn_implementation == "sdpa"
        assert hook_snapshot(llama) == hooks_before, "a hook was left behind"
        assert (set(AttentionInterface._global_mapping), set(AttentionMaskInterface._global_mapping)) == interfaces
        assert {n: m.training for n, m in llama.named_modules()} == training
    llama.eval()
    with torch.no_grad():
        after = llama(ids).logits
    assert torch.equal(before, after)


def test_logits_identical_after_a_normal_capture(llama):
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        before = llama(ids).logits.clone()
    attnwidget.capture(llama, _Ids(), ids)
    with torch.no_grad():
        assert torch.equal(before, llama(ids).logits)


def hook_snapshot(model) -> dict:
    """Every hook registered on every module, by module name and hook kind."""
    kinds = ["_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
             "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs", "_state_dict_hooks",
             "_load_state_dict_pre_hooks"]
    return {(name, kind): list(getattr(m, kind, {}).values())
            for name, m in model.named_modules() for kind in kinds}


class _Ids:
    all_special_ids: list[int] = []
    added_tokens_decoder: dict = {}

    def __call__(self, *args, **kwargs):
        raise AssertionError("not used")

    def convert_ids_to_tokens(self, ids):
        return [f"t{i}" for i in ids]


def test_patterns_refuses_more_than_memory_holds(cap, monkeypatch):
    module = importlib.import_module("attnwidget._memory")
    monkeypatch.setattr(module, "available_memory", lambda proc=None: 1000)
    with pytest.raises(MemoryError, match=r"patterns\(\) for 3 layers x 4 heads x 14\^2 tokens needs .* rows="):
        cap.patterns()
    cap.pattern(0, rows=[1])  # rows of one layer still work
