"""capture(..., values=True) on every family of tests/families.py.

The check is independent of how attnwidget finds the output projection: for every layer, the
recomputed attention output ``sum_h sum_j alpha_ij^h f_h(x_j) + b_O`` must equal the output of one of
the model's linear layers (``nn.Linear`` or GPT-2's ``Conv1D``) in a plain forward, hooked here. The
query-key view's weight is the pattern's, bit for bit. Models whose attention does not go through
transformers' interface are refused with the message that says so.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from families import FAMILIES, image_processor, pair

import attnwidget
from attnwidget.errors import UnsupportedAttentionError

RETURNED_WEIGHTS = {"falcon", "bloom", "mpt", "deberta_v2"}  # attention outside the interface
NAMES = [name for name, fam in FAMILIES.items() if fam.refusal is None]


def _linear_outputs(model, run) -> list[torch.Tensor]:
    """Every linear layer's output during ``run()`` (one sequence: ``[n, out]``)."""
    outputs, handles = [], []
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D":
            handles.append(module.register_forward_hook(
                lambda m, a, out: outputs.append(out.detach().reshape(-1, out.shape[-1]).float())))
    try:
        with torch.no_grad():
            run()
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def _reconstructed(cap, layer: int) -> np.ndarray:
    """``sum_h sum_j alpha_ij^h f_h(x_j) + b_O``: float64 ``[n, hidden]``."""
    weights = cap.head_patterns(layer).astype(np.float64)
    outputs = cap.head_outputs(layer).double().numpy()
    total = np.einsum("hij,hjd->id", weights, outputs)
    bias = cap._records[layer].out_bias
    return total + (0.0 if bias is None else bias.double().numpy())


def _captures(name, model, tokenizer, photo):
    kind = FAMILIES[name].kind
    if kind == "vision":
        processor = image_processor(model)
        cap = attnwidget.capture(model, processor, photo, values=True)
        tower = getattr(model, "vision_model", model)
        pixels = processor(images=photo, return_tensors="pt").pixel_values
        return {"": cap}, lambda: tower(pixel_values=pixels)
    if kind == "seq2seq":
        cap = attnwidget.capture(model, tokenizer, "The cat sat on the mat.", target="Le chat", values=True)
        src = torch.from_numpy(cap.encoder.token_ids)[None]
        tgt = torch.from_numpy(cap.decoder.token_ids)[None]
        return cap.parts, lambda: model(input_ids=src, decoder_input_ids=tgt)
    cap = attnwidget.capture(model, tokenizer, "The cat sat on the mat.", values=True)
    ids = torch.from_numpy(cap.token_ids)[None]
    return {"": cap}, lambda: model(input_ids=ids)


@pytest.fixture(scope="module")
def photo():
    return (np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)


@pytest.mark.parametrize("name", NAMES)
def test_values_reproduce_the_attention_output(name, byte_tokenizer, photo):
    model, _ = pair(name)
    if name in RETURNED_WEIGHTS:
        with pytest.raises(UnsupportedAttentionError, match="values=True need the query/key recorder"):
            _captures(name, model, byte_tokenizer, photo)
        return
    state = {k: v.clone() for k, v in model.state_dict().items()}
    parts, run = _captures(name, model, byte_tokenizer, photo)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    linear = _linear_outputs(model, run)
    for part, cap in parts.items():
        assert cap.has_values
        for layer in range(cap.num_layers):
            ours = _reconstructed(cap, layer)
            scale = np.abs(ours).max()
            best = min((float(np.abs(out.double().numpy() - ours).max()) for out in linear if out.shape == ours.shape),
                       default=np.inf)
            assert best <= 1e-5 * scale, f"{name} {part or 'self'} layer {layer}: no linear output within {best:.2e}"
        qk = cap.query_key(cap.num_layers - 1, cap.num_heads - 1, cap.num_tokens - 1, 0)
        assert qk.weight == cap.pattern(cap.num_layers - 1, cap.num_heads - 1)[cap.num_tokens - 1, 0]


@pytest.mark.parametrize("name", ["llama", "bert", "vit", "clip"])
def test_residual_stream_is_the_hidden_states(name, byte_tokenizer, photo):
    """``residual[l]`` is what enters block ``l``: the model's own hidden states (output_hidden_states)
    for every block but the last, whose output may be normalised by the model before it is returned."""
    model, _ = pair(name)
    kind = FAMILIES[name].kind
    if kind == "vision":
        processor = image_processor(model)
        cap = attnwidget.capture(model, processor, photo, values=True, residual=True)
        tower = getattr(model, "vision_model", model)
        pixels = processor(images=photo, return_tensors="pt").pixel_values
        with torch.no_grad():
            hidden = tower(pixel_values=pixels, output_hidden_states=True).hidden_states
    else:
        cap = attnwidget.capture(model, byte_tokenizer, "The cat sat on the mat.", residual=True)
        with torch.no_grad():
            hidden = model(input_ids=torch.from_numpy(cap.token_ids)[None], output_hidden_states=True).hidden_states
    assert cap.residual.shape == (cap.num_layers + 1, cap.num_tokens, hidden[0].shape[-1])
    for layer in range(cap.num_layers):
        np.testing.assert_allclose(cap.residual[layer].numpy(), hidden[layer][0].float().numpy(), rtol=0, atol=1e-5)


def test_residual_refused_for_encoder_decoders(byte_tokenizer):
    model, _ = pair("t5")
    with pytest.raises(attnwidget.errors.ArgumentError, match="encoder-decoder"):
        attnwidget.capture(model, byte_tokenizer, "The cat.", target="Le chat", residual=True)


def test_values_survive_save_and_load(byte_tokenizer, tmp_path):
    model, _ = pair("llama")
    cap = attnwidget.capture(model, byte_tokenizer, "The cat sat on the mat.", values=True, residual=True)
    back = attnwidget.Capture.load(cap.save(tmp_path / "cap.safetensors"))
    assert back.has_values and torch.equal(back.residual, cap.residual)
    for layer in range(cap.num_layers):
        np.testing.assert_array_equal(back.contributions(layer), cap.contributions(layer))
    plain = attnwidget.Capture.load(attnwidget.capture(model, byte_tokenizer, "The cat.").save(tmp_path / "p.safetensors"))
    assert not plain.has_values and plain.residual is None


@pytest.mark.parametrize("name", ["beit", "t5_encoder", "gemma2", "mistral"])
def test_query_key_scores_rebuild_the_row(name, byte_tokenizer, photo):
    """softmax of one row of query_key scores over the keys it does not mask is the pattern's row: the
    score holds every term the model adds (T5's and BEiT's position biases, Gemma's soft-capping), the
    mask only what it hides (causal, sliding window)."""
    model, _ = pair(name)
    if name == "beit":  # an untrained table is zero: make the bias visible
        torch.manual_seed(1)
        for module in model.modules():
            table = getattr(module, "relative_position_bias_table", None)
            if table is not None:
                with torch.no_grad():
                    table.normal_()
        cap = attnwidget.capture(model, image_processor(model), photo)
    else:
        cap = attnwidget.capture(model, byte_tokenizer, "The cat sat on the mat and the dog sat on the log.")
    query = cap.num_tokens - 1
    for layer in range(cap.num_layers):
        cells = [cap.query_key(layer, 1, query, key) for key in range(cap.num_keys)]
        scores = np.array([c.score for c in cells], dtype=np.float64)
        visible = ~np.array([c.masked for c in cells])
        row = np.zeros_like(scores)
        row[visible] = np.exp(scores[visible] - scores[visible].max())
        row /= row.sum()
        np.testing.assert_allclose(row, cap.pattern(layer, 1)[query], rtol=0, atol=2e-6)
        if name == "beit":
            assert any(c.bias != 0 for c in cells)


@pytest.mark.parametrize("name, adds_up", [("llama", True), ("gpt2", True), ("vit", True), ("bert", False),
                                           ("gemma2", False), ("beit", False), ("gpt_oss", False)])
def test_residual_checks_say_which_blocks_routes_can_split(name, adds_up, byte_tokenizer, photo):
    """A block passes when its output is its input + the attention output + the FFN's last linear output:
    pre-LN blocks; post-LN (BERT), a norm or layer scale after the attention (Gemma 2, BEiT) or a
    mixture-of-experts FFN (gpt-oss) fail, and flow_routes refuses those captures."""
    model, _ = pair(name)
    if FAMILIES[name].kind == "vision":
        cap = attnwidget.capture(model, image_processor(model), photo, values=True, residual=True)
    else:
        cap = attnwidget.capture(model, byte_tokenizer, "The cat sat on the mat.", values=True, residual=True)
    assert cap.residual_checks == [adds_up] * cap.num_layers
    if adds_up:
        assert attnwidget.flow_routes(cap).number_of_edges() > 0
    else:
        with pytest.raises(UnsupportedAttentionError, match="did not compute its output that way"):
            attnwidget.flow_routes(cap)
        cap_values = attnwidget.capture(model, *((image_processor(model), photo) if FAMILIES[name].kind == "vision"
                                                 else (byte_tokenizer, "The cat sat on the mat.")), values=True)
        assert cap_values.residual_checks is None
        assert attnwidget.flow_routes(cap_values).graph["uses_residual"] is False
