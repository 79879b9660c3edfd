"""Beyond raw weights: ``Capture.query_key`` and ``Capture.contributions`` (Kobayashi et al. 2020, "Attention
is Not Only a Weight: Analyzing Transformers with Vector Norms") against references computed here, without
attnwidget's internals.

The reference of each model is an eager copy of it (``copy.deepcopy`` + ``set_attn_implementation("eager")``)
run once with ``output_attentions=True`` for the weights, with this module's own forward hooks on the
projections: the query, key and value projections' outputs (GPT-2: the split of ``attn.c_attn``'s output),
rotary embedding applied with the model's own ``rotary_emb`` and ``apply_rotary_pos_emb``, and the output
projection's weight (Llama ``o_proj``, GPT-2 ``attn.c_proj``, a Conv1D whose weight is ``[in, out]``, BERT
``attention.output.dense``). Everything derived from them is float64:

* score: ``(q_h . k_{h // groups}) * head_dim^-0.5``;
* ``f_h(x_j) = v_j^{h // groups} W_O^h`` (``v`` includes the value projection's bias);
* per head ``alpha_ij^h ||f_h(x_j)||``; per layer ``||sum_h alpha_ij^h f_h(x_j)||`` from an explicit
  ``[query, key, hidden]`` einsum.

Tolerance: 1e-5 relative to the largest magnitude of the reference matrix (one layer's, or one head's), not
elementwise. The captured side is float32 and was computed by the default (sdpa) model, whose hidden states
differ from eager's by float rounding; many reference entries are legitimately tiny or exactly zero (causal
future keys, small weights), and the layer norm ``||sum_h ...||`` can cancel, so an elementwise relative error
says nothing about correctness there. Measured errors are recorded with ``record_property``: run with
``--junitxml=out.xml -o junit_family=legacy`` to read them.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

import attnwidget
import attnwidget.contributions as contributions_module
from attnwidget.contributions import ContributionSource
from attnwidget.errors import ArgumentError, UnsupportedAttentionError
from helpers import tiny_model

RTOL = 1e-5
TINY_TEXT = "The cat sat on the mat. The dog sat on the log."
SMOL_TEXT = ("The cat sat on the warm mat by the front door, and the old dog slept under the wooden table in the "
             "kitchen until the children came home.")  # 30 tokens
FAMILIES = ["llama", "gpt2", "bert", pytest.param("smollm2", marks=pytest.mark.slow)]


# ---------------------------------------------------------------------------------------------------
# the independent reference


def _attention_modules(model) -> list[dict]:
    """Per layer, the modules the reference hooks: ``{"q", "k", "v"} | {"qkv"}``, ``"o"``, and the
    attention module (for its rotary helper)."""
    kind = model.config.model_type
    if kind == "llama":
        return [{"q": l.self_attn.q_proj, "k": l.self_attn.k_proj, "v": l.self_attn.v_proj, "o": l.self_attn.o_proj,
                 "attn": l.self_attn} for l in model.model.layers]
    if kind == "gpt2":
        return [{"qkv": b.attn.c_attn, "o": b.attn.c_proj, "attn": b.attn} for b in model.transformer.h]
    if kind == "bert":
        return [{"q": l.attention.self.query, "k": l.attention.self.key, "v": l.attention.self.value,
                 "o": l.attention.output.dense, "attn": l.attention.self} for l in model.encoder.layer]
    raise ValueError(kind)


def _out_weight(module) -> torch.Tensor:
    """The output projection as ``[in, out]`` (nn.Linear keeps ``[out, in]``; GPT-2's Conv1D ``[in, out]``)."""
    if isinstance(module, torch.nn.Linear):
        return module.weight.detach().T
    assert type(module).__name__ == "Conv1D"
    return module.weight.detach()


@dataclass
class Layer:
    """One layer of the eager reference, float64: ``q`` [H, n, d] after rotary, ``k`` and ``v`` [Hkv, n, d],
    ``w_o`` [H, d, D] (head h's rows of the output projection), ``alpha`` [H, n, n] (eager's weights)."""

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    w_o: torch.Tensor
    alpha: torch.Tensor
    scaling: float
    causal: bool
    _contributions: tuple | None = field(default=None, repr=False)

    @property
    def heads(self) -> int:
        return self.q.shape[0]

    @property
    def groups(self) -> int:
        return self.q.shape[0] // self.k.shape[0]

    def scores(self) -> torch.Tensor:
        """``[H, n, n]``: ``(q_h . k_{h // groups}) * scaling``, before any mask."""
        k = self.k.repeat_interleave(self.groups, dim=0)
        return torch.einsum("hqd,hkd->hqk", self.q, k) * self.scaling

    def head_outputs(self) -> torch.Tensor:
        """``f_h(x_j)``: ``[H, n, D]``."""
        v = self.v.repeat_interleave(self.groups, dim=0)
        return torch.einsum("hkd,hdD->hkD", v, self.w_o)

    def contributions(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(per head [H, n, n], layer [n, n])``, the layer from the explicit ``[q, k, D]`` sum."""
        if self._contributions is None:
            f = self.head_outputs()
            per_head = self.alpha * f.norm(dim=-1)[:, None, :]
            summed = torch.einsum("hqk,hkD->qkD", self.alpha, f)
            self._contributions = (per_head, summed.norm(dim=-1))
        return self._contributions


def eager_reference(model, ids: list[int]) -> list[Layer]:
    """Run an eager copy of ``model`` on ``ids`` with this module's own hooks (see the module docstring)."""
    eager = copy.deepcopy(model)
    eager.set_attn_implementation("eager")
    eager.eval()
    config = eager.config
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    hidden = config.hidden_size
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    n = len(ids)
    layers = _attention_modules(eager)
    seen: list[dict] = [{} for _ in layers]
    handles = []

    def keep(index, name):
        def hook(module, args, output):
            seen[index][name] = output.detach()[0].double()  # [n, out]
        return hook

    try:
        for i, mods in enumerate(layers):
            for name in ("q", "k", "v", "qkv"):
                if name in mods:
                    handles.append(mods[name].register_forward_hook(keep(i, name)))
        with torch.no_grad():
            out = eager(input_ids=torch.tensor([ids]), output_attentions=True)
    finally:
        for h in handles:
            h.remove()
    causal = config.model_type != "bert"
    result = []
    for i, mods in enumerate(layers):
        got = seen[i]
        if "qkv" in got:
            q, k, v = got["qkv"].split(hidden, dim=-1)
        else:
            q, k, v = got["q"], got["k"], got["v"]
        q = q.reshape(n, heads, head_dim).transpose(0, 1)
        k = k.reshape(n, kv_heads, head_dim).transpose(0, 1)
        v = v.reshape(n, kv_heads, head_dim).transpose(0, 1)
        if config.model_type == "llama":  # rotary, with the model's own embedding and function
            rotary = sys.modules[type(mods["attn"]).__module__].apply_rotary_pos_emb
            with torch.no_grad():
                cos, sin = eager.model.rotary_emb(v.float()[None], torch.arange(n)[None])
            q, k = rotary(q[None], k[None], cos.double(), sin.double())
            q, k = q[0], k[0]
        w_o = _out_weight(mods["o"]).double().reshape(heads, head_dim, -1)
        alpha = out.attentions[i][0].double()
        result.append(Layer(q=q, k=k, v=v, w_o=w_o, alpha=alpha, scaling=head_dim ** -0.5, causal=causal))
    return result


def rel_error(got, ref) -> float:
    """``max |got - ref| / max |ref|`` (see the module docstring for why not elementwise)."""
    ref = np.asarray(ref, dtype=np.float64)
    return float(np.abs(np.asarray(got, dtype=np.float64) - ref).max() / np.abs(ref).max())


# ---------------------------------------------------------------------------------------------------
# fixtures: one capture with values=True and its reference per family


@dataclass
class Case:
    name: str
    model: object
    tokenizer: object
    cap: object
    ref: list[Layer]


@pytest.fixture(scope="module", params=FAMILIES)
def case(request, byte_tokenizer):
    if request.param == "smollm2":
        model, tokenizer = request.getfixturevalue("smollm2")
        text = SMOL_TEXT
    else:
        model, tokenizer, text = tiny_model(request.param), byte_tokenizer, TINY_TEXT
    cap = attnwidget.capture(model, tokenizer, text, values=True)
    assert cap.has_values
    return Case(request.param, model, tokenizer, cap, eager_reference(model, cap.token_ids.tolist()))


@pytest.fixture(scope="module")
def llama_case(byte_tokenizer):
    model = tiny_model("llama")
    cap = attnwidget.capture(model, byte_tokenizer, TINY_TEXT, values=True)
    return Case("llama", model, byte_tokenizer, cap, eager_reference(model, cap.token_ids.tolist()))


def test_the_reference_is_the_model(case):
    """The reference's own pieces rebuild eager's weights, and the capture's pattern matches them: the
    reference is a fair judge."""
    cap, ref = case.cap, case.ref
    assert (cap.num_layers, cap.num_heads, cap.num_tokens) == (len(ref), ref[0].heads, ref[0].q.shape[1])
    if case.name == "smollm2":
        assert (cap.num_layers, cap.num_heads, ref[0].groups) == (30, 9, 3) and 25 <= cap.num_tokens <= 40
    for layer in ref:
        scores = layer.scores()
        if layer.causal:
            scores = scores.masked_fill(torch.ones_like(scores, dtype=torch.bool).triu(1), -torch.inf)
        assert rel_error(torch.softmax(scores, dim=-1), layer.alpha) < RTOL
    worst = max(rel_error(cap.head_patterns(l), ref[l].alpha) for l in range(cap.num_layers))
    assert worst < RTOL


# ---------------------------------------------------------------------------------------------------
# the query-key view


def _cells(n: int, causal: bool) -> list[tuple[int, int]]:
    """Every key of the first, a middle and the last row, plus the diagonal."""
    rows = sorted({0, n // 2, n - 1})
    cells = [(q, k) for q in rows for k in range(n)] + [(i, i) for i in range(n)]
    if causal:
        cells.append((2, 5))  # a future key
    return cells


def test_query_key_against_eager(case, record_property):
    cap, ref = case.cap, case.ref
    n = cap.num_tokens
    layers = range(cap.num_layers) if case.name != "smollm2" else [0, 1, 14, 29]
    worst = {"q": 0.0, "k": 0.0, "score": 0.0, "weight": 0.0, "row softmax": 0.0}  # weights: absolute
    for layer in layers:
        r = ref[layer]
        scores = r.scores().numpy()
        for head in range(cap.num_heads):
            scale = np.abs(scores[head]).max()
            q_scale, k_scale = np.abs(r.q[head].numpy()).max(), np.abs(r.k[head // r.groups].numpy()).max()
            row_scores = {}
            for query, key in _cells(n, r.causal):
                qk = cap.query_key(layer, head, query, key)
                assert (qk.layer, qk.head, qk.query, qk.key, qk.key_head) == (layer, head, query, key, head // r.groups)
                assert qk.q.dtype == qk.k.dtype == np.float32 and qk.q.shape == (r.q.shape[-1],)
                assert qk.scaling == pytest.approx(r.scaling, rel=1e-12) and qk.bias == 0.0 and qk.softcap is None
                np.testing.assert_array_equal(qk.products, qk.q * qk.k)
                worst["q"] = max(worst["q"], np.abs(qk.q - r.q[head, query].numpy()).max() / q_scale)
                worst["k"] = max(worst["k"], np.abs(qk.k - r.k[head // r.groups, key].numpy()).max() / k_scale)
                worst["score"] = max(worst["score"], abs(qk.score - scores[head, query, key]) / scale)
                worst["weight"] = max(worst["weight"], abs(qk.weight - float(r.alpha[head, query, key])))
                future = r.causal and key > query
                assert qk.masked == future
                if future:
                    assert qk.weight == 0.0 and np.isfinite(qk.score)
                if query in (0, n // 2, n - 1):
                    row_scores.setdefault(query, {})[key] = qk.score
            for query, got in row_scores.items():  # softmax of the view's scores over the row = eager
                keys = [k for k in sorted(got) if not (r.causal and k > query)]
                row = torch.softmax(torch.tensor([got[k] for k in keys], dtype=torch.float64), dim=0).numpy()
                expected = r.alpha[head, query, keys].numpy()
                worst["row softmax"] = max(worst["row softmax"], np.abs(row - expected).max() / expected.max())
    for name, value in worst.items():
        record_property(f"max_rel_error_{name}", value)
    assert max(worst.values()) < RTOL, worst


def _weight_cells(cap) -> list[tuple[int, int]]:
    n = cap.num_tokens
    cells = [(0, 0), (n - 1, 0), (n - 1, n - 1), (n // 2, n // 3), (n // 2, n // 2)]
    if cap.is_causal:
        cells.append((1, n - 1))  # masked: a future key
    return cells


def test_query_key_weight_is_the_pattern_bit_for_bit(case):
    cap = case.cap
    for layer in range(cap.num_layers):
        for head in range(cap.num_heads):
            pattern = cap.pattern(layer, head)
            for query, key in _weight_cells(cap):
                qk = cap.query_key(layer, head, query, key)
                assert qk.weight == pattern[query, key], (layer, head, query, key)
                assert qk.masked == (cap.is_causal and key > query)
                if qk.masked:
                    assert qk.weight == 0.0
    text = str(cap.query_key(0, 0, cap.num_tokens - 1, 0))
    assert "score" in text and "weight" in text and "largest products" in text


def test_query_key_top_dimensions_order_the_products(llama_case):
    qk = llama_case.cap.query_key(1, 3, 7, 2)
    top = qk.top_dimensions(4)
    assert [abs(p) for _, p in top] == sorted((abs(p) for _, p in top), reverse=True)
    assert abs(top[0][1]) == np.abs(qk.products).max() and all(qk.products[i] == p for i, p in top)


# ---------------------------------------------------------------------------------------------------
# value-weighted contributions


def test_contributions_against_eager(case, record_property):
    cap, ref = case.cap, case.ref
    worst = {"head_outputs": 0.0, "head": 0.0, "layer": 0.0}
    for layer in range(cap.num_layers):
        r = ref[layer]
        per_head, summed = r.contributions()
        worst["head_outputs"] = max(worst["head_outputs"], rel_error(cap.head_outputs(layer), r.head_outputs()))
        got = cap.contributions(layer)
        assert got.dtype == np.float32 and got.shape == (cap.num_tokens, cap.num_keys)
        worst["layer"] = max(worst["layer"], rel_error(got, summed))
        for head in range(cap.num_heads):
            worst["head"] = max(worst["head"], rel_error(cap.contributions(layer, head), per_head[head]))
        if r.causal:
            assert not np.triu(got, 1).any()  # future keys contribute nothing
    for name, value in worst.items():
        record_property(f"max_rel_error_{name}", value)
    assert max(worst.values()) < RTOL, worst


def test_layer_contribution_is_not_the_sum_of_heads(llama_case):
    """The layer measure is the norm of the summed vectors: at most the sum of the heads' norms (triangle
    inequality), and strictly less somewhere (the heads' vectors are not all aligned)."""
    cap = llama_case.cap
    layer = cap.contributions(1)
    heads = sum(cap.contributions(1, h) for h in range(cap.num_heads))
    assert np.all(layer <= heads * (1 + 1e-6) + 1e-12)
    assert np.any(layer < heads * (1 - 1e-3))


def test_rows_and_normalize(llama_case):
    cap = llama_case.cap
    n = cap.num_tokens
    for head in (None, 2):
        full = cap.contributions(2, head)
        for rows, index in (([5, 1, n - 1], [5, 1, n - 1]), (slice(2, n, 3), list(range(2, n, 3))), (4, [4]),
                            (range(3, 8), [3, 4, 5, 6, 7])):
            assert rel_error(cap.contributions(2, head, rows=rows), full[index]) < RTOL
        normalized = cap.contributions(2, head, normalize=True)
        np.testing.assert_allclose(normalized.sum(axis=-1), 1.0, rtol=RTOL)
        np.testing.assert_allclose(normalized, full / full.sum(axis=-1, keepdims=True, dtype=np.float64), rtol=1e-6)


@pytest.mark.parametrize("elements", [1, "three rows"])
def test_row_blocks_give_the_same_result(case, monkeypatch, elements, record_property):
    cap = case.cap
    layers = [0, cap.num_layers - 1]
    heads = [None, 0, cap.num_heads - 1]
    before = {(l, h): cap.contributions(l, h) for l in layers for h in heads}
    source_before = {l: ContributionSource(cap).head_patterns(l) for l in layers}
    if elements == "three rows":  # three rows per block of the layer measure, 3 x heads of one head
        elements = 3 * cap.num_heads * cap.num_keys
    monkeypatch.setattr(contributions_module, "BLOCK_ELEMENTS", elements)
    blocks = []
    block = contributions_module._block
    monkeypatch.setattr(contributions_module, "_block",
                        lambda *args: blocks.append((args[2], len(args[3]))) or block(*args))
    worst = 0.0
    for (l, h), expected in before.items():
        got = cap.contributions(l, h)
        worst = max(worst, rel_error(got, expected))
    for l, expected in source_before.items():
        worst = max(worst, rel_error(ContributionSource(cap).head_patterns(l), expected))
    record_property("max_rel_change", worst)
    # not bit for bit: a block's scores come from a matmul of that many rows, rounded differently (up to 2 ulp of
    # a score, about |score| x 1e-7 of a weight: 9e-7 relative on SmolLM2, whose scores reach tens)
    rows = 1 if elements == 1 else 3  # the layer measure and every head at once: this many rows per block
    whole = [size for head, size in blocks if head is None or head == "all"]
    assert len(whole) == 2 * len(layers) * -(-cap.num_tokens // rows) and max(whole) == rows
    assert worst < RTOL


# ---------------------------------------------------------------------------------------------------
# ContributionSource and rollout over contributions


def _rownorm(m: np.ndarray) -> np.ndarray:
    return m / m.sum(axis=-1, keepdims=True)


def test_contribution_source_reads_like_attention(case):
    cap, ref = case.cap, case.ref
    source = ContributionSource(cap)
    assert (source.num_layers, source.num_heads, source.num_tokens, source.is_causal) == (
        cap.num_layers, cap.num_heads, cap.num_tokens, cap.is_causal)
    for layer in (0, cap.num_layers - 1):
        per_head, summed = ref[layer].contributions()
        heads = source.head_patterns(layer)
        assert heads.shape == (cap.num_heads, cap.num_tokens, cap.num_keys)
        np.testing.assert_allclose(heads.sum(axis=-1), 1.0, rtol=RTOL)
        np.testing.assert_allclose(source.mean_rows(layer).sum(axis=-1), 1.0, rtol=RTOL)
        np.testing.assert_array_equal(source.mean_rows(layer), cap.contributions(layer, None, normalize=True))
        assert rel_error(source.pattern(layer, 1), cap.contributions(layer, 1, normalize=True)) < 1e-6
        assert rel_error(heads, _rownorm(per_head.numpy())) < RTOL
        assert rel_error(source.mean_rows(layer), _rownorm(summed.numpy())) < RTOL
        # the head-mean slot holds the layer measure, not the mean of the heads' rows
        assert np.abs(source.mean_rows(layer) - heads.mean(axis=0)).max() > 1e-4


def test_rollout_over_contributions(case, record_property):
    cap, ref = case.cap, case.ref
    n = cap.num_tokens
    got = attnwidget.rollout(ContributionSource(cap))
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, rtol=1e-9)
    expected = None
    for layer in ref:  # M_l = rownorm(0.5 I + 0.5 N_l), R = M_top @ ... @ M_0
        mixed = _rownorm(0.5 * np.eye(n) + 0.5 * _rownorm(layer.contributions()[1].numpy()))
        expected = mixed if expected is None else mixed @ expected
    error = rel_error(got, expected)
    record_property("max_rel_error_rollout", error)
    assert error < RTOL
    if cap.is_causal:
        assert not np.triu(got, 1).any()
    row = attnwidget.rollout_row(ContributionSource(cap), n - 1)
    assert rel_error(row.values, expected[n - 1]) < RTOL
    np.testing.assert_array_equal(attnwidget.rollout(cap, measure="contribution"), got)
    # it is not attention rollout
    assert np.abs(got - attnwidget.rollout(cap)).max() > 1e-4


# ---------------------------------------------------------------------------------------------------
# the model is left as it was


def _out_projection(model, layer: int):
    return _attention_modules(model)[layer]["o"]


def _snapshot(model):
    from test_capture_api import hook_snapshot
    from test_concurrency import _state

    return ({n: p.detach().clone() for n, p in model.state_dict().items()},
            {n: p.requires_grad for n, p in model.named_parameters()}, _state(model), hook_snapshot(model))


def _assert_same(model, before) -> None:
    params, grads, state, hooks = _snapshot(model)
    assert params.keys() == before[0].keys()
    assert all(torch.equal(params[k], before[0][k]) for k in params), "a parameter changed"
    assert grads == before[1] and state == before[2], "training flags or attention implementation changed"
    assert hooks == before[3], "a hook was left behind"


@pytest.mark.parametrize("arch", ["llama", "gpt2", "bert"])
def test_model_unchanged_by_a_capture_with_values(arch, byte_tokenizer):
    from transformers.masking_utils import AttentionMaskInterface
    from transformers.modeling_utils import AttentionInterface

    model = tiny_model(arch)
    ids = torch.tensor([byte_tokenizer(TINY_TEXT).input_ids])
    with torch.no_grad():
        logits = model(ids)[0].clone()
    interfaces = (set(AttentionInterface._global_mapping), set(AttentionMaskInterface._global_mapping))
    before = _snapshot(model)
    first = attnwidget.capture(model, byte_tokenizer, TINY_TEXT, values=True)
    _assert_same(model, before)
    assert model.config._attn_implementation == "sdpa"

    def explode(module, args, output):
        raise RuntimeError("boom in the output projection")

    # raised inside the capture, after the recorder saw layer 1's attention call and while it waits for its
    # output projection: a forward hook on that projection runs after attnwidget's pre-hook
    handle = _out_projection(model, 1).register_forward_hook(explode)
    try:
        with pytest.raises(RuntimeError, match="boom in the output projection"):
            attnwidget.capture(model, byte_tokenizer, TINY_TEXT, values=True)
    finally:
        handle.remove()
    _assert_same(model, before)
    assert model.config._attn_implementation == "sdpa"
    assert (set(AttentionInterface._global_mapping), set(AttentionMaskInterface._global_mapping)) == interfaces
    with torch.no_grad():
        assert torch.equal(model(ids)[0], logits)
    again = attnwidget.capture(model, byte_tokenizer, TINY_TEXT, values=True)  # nothing stale left behind
    for layer in range(first.num_layers):
        np.testing.assert_array_equal(again.contributions(layer), first.contributions(layer))


# ---------------------------------------------------------------------------------------------------
# refusals


def test_contributions_need_values(byte_tokenizer):
    model = tiny_model("llama")
    cap = attnwidget.capture(model, byte_tokenizer, TINY_TEXT)
    assert not cap.has_values
    with pytest.raises(ArgumentError, match=r"values=True"):
        cap.contributions(0)
    with pytest.raises(ArgumentError, match=r"values=True"):
        cap.contributions(0, 1)
    with pytest.raises(ArgumentError, match=r"values=True"):
        cap.head_outputs(0)
    with pytest.raises(ArgumentError, match=r"values=True"):
        ContributionSource(cap)
    with pytest.raises(ArgumentError, match=r"values=True"):
        attnwidget.rollout(cap, measure="contribution")
    assert np.isfinite(cap.query_key(0, 0, 3, 1).score)  # the query-key view needs no values


def test_values_refused_with_the_weights_method(byte_tokenizer):
    model = tiny_model("gpt2")
    with pytest.raises(UnsupportedAttentionError, match=r"values=True.*method='weights'"):
        attnwidget.capture(model, byte_tokenizer, TINY_TEXT, values=True, method="weights")
    assert model.config._attn_implementation == "sdpa"


def test_query_key_refusals(llama_case):
    cap = llama_case.cap
    with pytest.raises(ArgumentError, match="one head"):
        cap.query_key(0, None, 1, 0)
    with pytest.raises(IndexError):
        cap.query_key(0, cap.num_heads, 1, 0)
    with pytest.raises(IndexError):
        cap.query_key(0, 0, cap.num_tokens, 0)
    weights = attnwidget.Capture.from_attentions(cap.patterns(), cap.tokens)
    with pytest.raises(UnsupportedAttentionError, match="queries and keys"):
        weights.query_key(0, 0, 1, 0)
    with pytest.raises(UnsupportedAttentionError, match="queries and keys"):
        weights.contributions(0)
