"""capture() equals transformers' eager output_attentions, for models loaded the default way."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import attnwidget
from helpers import LONG_TEXT, tiny_model

TOL = 1e-5
ARCHS = ["llama", "gpt2", "bert", "mistral", "qwen2", "gemma2"]


def eager_reference(model, ids, attention_mask=None) -> np.ndarray:
    """[layer, head, query, key] from an independent eager copy of ``model``."""
    ref = type(model)(model.config.__class__.from_dict(model.config.to_dict()))
    ref.load_state_dict(model.state_dict())
    ref.set_attn_implementation("eager")
    ref.eval()
    kwargs = {"input_ids": torch.as_tensor([ids])}
    if attention_mask is not None:
        kwargs["attention_mask"] = torch.as_tensor([attention_mask])
    with torch.no_grad():
        out = ref(**kwargs, output_attentions=True)
    return torch.stack([a[0] for a in out.attentions]).float().numpy()


def padded(arch: str, n: int, pad: int) -> list[int]:
    """An attention mask with ``pad`` padding positions: left for decoders, right for BERT."""
    ones, zeros = [1] * (n - pad), [0] * pad
    return ones + zeros if arch == "bert" else zeros + ones


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("pad", [0, 3])
def test_equals_eager_output_attentions(arch, pad, byte_tokenizer):
    model = tiny_model(arch)
    default = "eager" if arch == "gemma2" else "sdpa"  # gemma2's default is eager (soft-capping)
    assert model.config._attn_implementation == default
    ids = byte_tokenizer("The cat sat on the mat. 猫坐在垫子上").input_ids
    mask = padded(arch, len(ids), pad) if pad else None
    cap = attnwidget.capture(model, byte_tokenizer, ids, attention_mask=mask)
    expected = eager_reference(model, ids, mask)
    got = cap.patterns()
    assert got.shape == expected.shape == (3, 4, len(ids), len(ids))
    assert np.abs(got - expected).max() < TOL
    assert cap.is_causal == (arch != "bert")
    assert model.config._attn_implementation == default


def test_sliding_window_is_applied():
    model = tiny_model("mistral")
    cap = attnwidget.capture(model, _IdTokenizer(), list(range(3, 20)))
    p = cap.patterns()
    i, j = np.indices(p.shape[-2:])
    assert np.all(p[..., (i - j) >= 5] == 0)  # window of 5 keys
    assert np.all(p[..., (i - j) < 0] == 0)  # causal
    assert np.all(p[..., (i - j) == 4] > 0)


def test_weights_fallback_equals_eager(byte_tokenizer):
    model = tiny_model("llama")
    ids = byte_tokenizer("fallback path check, twice over").input_ids
    cap = attnwidget.capture(model, byte_tokenizer, ids, method="weights")
    assert np.abs(cap.patterns() - eager_reference(model, ids)).max() < TOL
    assert model.config._attn_implementation == "sdpa"


def test_auto_falls_back_for_attention_outside_the_interface():
    from toy_models import ToyConfig, ToyWeightsModel

    model = ToyWeightsModel(ToyConfig()).eval()
    cap = attnwidget.capture(model, _IdTokenizer(), [1, 2, 3, 4, 5])
    x = model.embed(torch.tensor([[1, 2, 3, 4, 5]]))
    with torch.no_grad():
        _, w0 = model.layers[0](x, output_attentions=True)
    assert np.abs(cap.pattern(0, 1) - w0[0, 1].numpy()).max() < TOL
    assert cap.is_causal and cap.layer_names == ["layers.0", "layers.1"]


def test_unreproducible_term_is_refused():
    from toy_models import ToyBiasModel, ToyConfig

    model = ToyBiasModel(ToyConfig()).eval()
    with pytest.raises(NotImplementedError, match=r"position_bias.*refuses rather than answer wrongly.*method='weights'"):
        attnwidget.capture(model, _IdTokenizer(), [1, 2, 3], method="qk")
    assert model.config._attn_implementation == "sdpa"
    cap = attnwidget.capture(model, _IdTokenizer(), [1, 2, 3], method="weights")  # as advised
    assert attnwidget.capture(model, _IdTokenizer(), [1, 2, 3]).layer_names == cap.layer_names  # what auto does
    model.config._attn_implementation = "eager"  # the reference: the toy's own eager attention
    try:
        with torch.no_grad():
            x = model.embed(torch.tensor([[1, 2, 3]]))
            _, w0 = model.layers[0](x, output_attentions=True)
    finally:
        model.config._attn_implementation = "sdpa"
    np.testing.assert_allclose(cap.head_patterns(0), w0[0].numpy(), atol=TOL)


def test_memory_grows_linearly_with_tokens():
    model = tiny_model("llama")
    short = attnwidget.capture(model, _IdTokenizer(), list(range(3, 67)))
    long = attnwidget.capture(model, _IdTokenizer(), list(range(3, 131)))
    assert long.nbytes == 2 * short.nbytes  # q and k only: no n x n tensor is kept


@pytest.mark.slow
def test_real_smollm2_long_text(smollm2):
    model, tok = smollm2
    assert model.config._attn_implementation == "sdpa"
    cap = attnwidget.capture(model, tok, LONG_TEXT)
    assert cap.num_tokens >= 100 and (cap.num_layers, cap.num_heads) == (30, 9)
    ref = eager_reference(model, cap.token_ids.tolist())
    assert np.abs(cap.patterns() - ref).max() < TOL


@pytest.mark.slow
def test_real_minilm_long_text(minilm):
    model, tok = minilm
    assert model.config._attn_implementation == "sdpa"
    cap = attnwidget.capture(model, tok, LONG_TEXT)
    assert cap.num_tokens >= 100 and (cap.num_layers, cap.num_heads) == (6, 12)
    assert not cap.is_causal and cap.tokens[0] == "[CLS]"
    ref = eager_reference(model, cap.token_ids.tolist())
    assert np.abs(cap.patterns() - ref).max() < TOL


class _IdTokenizer:
    """The least a tokenizer must do for token-id input: name its tokens."""

    all_special_ids: list[int] = []
    added_tokens_decoder: dict = {}

    def __call__(self, *args, **kwargs):
        raise AssertionError("token ids must not be re-tokenised")

    def convert_ids_to_tokens(self, ids):
        return [f"t{i}" for i in ids]


def test_dispatched_model_and_low_precision(tmp_path, byte_tokenizer):
    """A model dispatched by accelerate (device_map, one layer offloaded to disk) and one in bfloat16."""
    from transformers import AutoModelForCausalLM

    original = tiny_model("llama")
    original.save_pretrained(tmp_path / "model")
    ids = byte_tokenizer("The cat sat on the mat.").input_ids
    device_map = {"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk",
                  "model.layers.2": "cpu", "model.norm": "cpu", "model.rotary_emb": "cpu", "lm_head": "cpu"}
    dispatched = AutoModelForCausalLM.from_pretrained(tmp_path / "model", device_map=device_map,
                                                      offload_folder=tmp_path / "offload").eval()
    assert hasattr(dispatched.model.layers[1], "_hf_hook")  # accelerate's dispatch hooks are in place
    cap = attnwidget.capture(dispatched, byte_tokenizer, ids)
    assert np.abs(cap.patterns() - eager_reference(original, ids)).max() < TOL
    assert hasattr(dispatched.model.layers[1], "_hf_hook")  # and still there afterwards
    half = AutoModelForCausalLM.from_pretrained(tmp_path / "model", dtype=torch.bfloat16).eval()
    low = attnwidget.capture(half, byte_tokenizer, ids)
    assert low._records[0].query.dtype == torch.bfloat16  # stored as the model computed it
    np.testing.assert_allclose(low.patterns().sum(-1), 1.0, atol=1e-5)  # softmax in float32
    assert np.abs(low.patterns() - cap.patterns()).max() < 0.05  # bf16 rounding only
