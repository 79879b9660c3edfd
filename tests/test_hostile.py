"""Bad and hostile inputs, as a careful user would try them: every one gets an error of the attnwidget
family (also the built-in a caller expects) whose message names what was expected and what arrived.

Each case is ``(id, call, error class, pattern)``; the pattern matches the message (case-insensitive,
across lines) and names both sides. No case may pass silently or end in a raw torch, numpy, Jinja or
safetensors error: the error class is checked exactly against the family.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

import attnwidget
from attnwidget.errors import (
    ArgumentError,
    ArgumentTypeError,
    AttnwidgetError,
    MemoryBudgetError,
    NotAttentionError,
    OutOfRangeError,
    UnsupportedAttentionError,
)
from helpers import tiny_model


@pytest.fixture(scope="module")
def llama():
    return tiny_model("llama")


@pytest.fixture(scope="module")
def cap(llama, byte_tokenizer):
    return attnwidget.capture(llama, byte_tokenizer, "The cat sat on the mat.")


def _softmax_attention(layers=2, heads=3, n=6, seed=0, causal=True):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(layers, heads, n, n))
    if causal:
        scores = np.where(np.tril(np.ones((n, n), bool)), scores, -np.inf)
    e = np.exp(scores - scores.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


GOOD = _softmax_attention()


def _bad(kind: str) -> np.ndarray:
    a = GOOD.copy()
    if kind == "nan":
        a[1, 2, 3, 0] = np.nan
    elif kind == "inf":
        a[0, 1, 2, 1] = np.inf
    elif kind == "negative":
        a[1, 0, 4, 0] -= 1.5
    elif kind == "sum2":
        a[0, 2, 5] *= 2
    elif kind == "zeros":
        a = np.zeros_like(a)
    elif kind == "complex":
        return a.astype(np.complex64)
    elif kind == "scores":  # logits before the softmax
        return np.random.default_rng(1).normal(size=a.shape).astype(np.float32)
    return a


BAD_ARRAYS = {
    "nan": (NotAttentionError, r"non-finite weight \(nan\) at layer 1, head 2, query 3.*finite probabilities"),
    "inf": (NotAttentionError, r"non-finite weight \(inf\) at layer 0, head 1, query 2.*finite probabilities"),
    "negative": (NotAttentionError, r"negative weight .* at layer 1, head 0, query 4.*probabilities \(>= 0\)"),
    "sum2": (NotAttentionError, r"row 5 of layer 0, head 2 sums to 2.*sums to 1"),
    "zeros": (NotAttentionError, r"row 0 of layer 0, head 0 is all zero.*sums to 1"),
    "complex": (NotAttentionError, r"is complex \(complex64\).*real probabilities"),
    "scores": (NotAttentionError, r"negative weight.*apply softmax"),
}

ANALYSES = {
    "compute_metrics": lambda a: attnwidget.compute_metrics(a, progress=False),
    "attention_report": lambda a: attnwidget.attention_report(a, progress=False),
    "quality_score": lambda a: attnwidget.quality_score(a, progress=False),
    "head_roles": lambda a: attnwidget.head_roles(a, progress=False),
    "similar_heads": lambda a: attnwidget.similar_heads(a),
    "head_distances": lambda a: attnwidget.head_distances(a),
    "rollout": lambda a: attnwidget.rollout(a),
    "rollout_row": lambda a: attnwidget.rollout_row(a),
    "attention_flow": lambda a: attnwidget.attention_flow(a),
    "widget": lambda a: attnwidget.AttentionWidget(a, background=False, progress=False),
}


def _check(call, error, pattern):
    with pytest.raises(AttnwidgetError) as info:
        call()
    assert type(info.value) is error or isinstance(info.value, error), (
        f"expected {error.__name__}, got {type(info.value).__name__}: {info.value}")
    assert re.search(pattern, str(info.value), re.I | re.S), f"message {str(info.value)!r} !~ {pattern!r}"


# ----------------------------------------------------------------------------- arrays that are not attention
@pytest.mark.parametrize("kind", sorted(BAD_ARRAYS))
@pytest.mark.parametrize("analysis", sorted(ANALYSES))
def test_analyses_refuse_arrays_that_are_not_attention(analysis, kind):
    error, pattern = BAD_ARRAYS[kind]
    _check(lambda: ANALYSES[analysis](_bad(kind)), error, pattern)


@pytest.mark.parametrize("analysis", sorted(ANALYSES))
def test_analyses_accept_real_attention(analysis):
    ANALYSES[analysis](GOOD)  # the check does not refuse softmax weights


ARRAY_SHAPES = [
    ("3d", GOOD[0], ArgumentError, r"expected an attention array of shape \[layer, head, query, key\].*got shape \(3, 6, 6\)"),
    # rectangles are cross-attention now; cutting keys off square attention leaves rows that sum below 1
    ("cut keys", GOOD[..., :4], NotAttentionError, r"sums to .* over its keys"),
    ("empty", GOOD[:0], ArgumentError, r"empty axis: shape \(0, 3, 6, 6\).*at least one layer"),
    ("bool", GOOD > 0.1, NotAttentionError, r"bool array; attention weights are probabilities"),
    ("strings", np.array([[[["a"]]]]), ArgumentTypeError, r"numeric array of weights; got dtype <U1"),
    ("list", GOOD.tolist(), ArgumentTypeError, r"expected a Capture, a NumPy array or tensor.*got list"),
    ("torch bf16 sum2", torch.tensor(_bad("sum2")).bfloat16(), NotAttentionError, r"sums to 1.99.*within 0.062"),
    ("torch complex", torch.tensor(GOOD).to(torch.complex64), NotAttentionError, r"complex"),
]


@pytest.mark.parametrize("case", ARRAY_SHAPES, ids=[c[0] for c in ARRAY_SHAPES])
def test_arrays_of_the_wrong_form(case):
    _, arr, error, pattern = case
    _check(lambda: attnwidget.compute_metrics(arr, progress=False), error, pattern)


def test_half_precision_softmax_is_attention():
    half = torch.tensor(_softmax_attention(n=64)).half()  # rows off by up to one float16 rounding unit
    attnwidget.compute_metrics(half, progress=False)


# ----------------------------------------------------------------------------- capture
def _capture_cases():
    def cap_(inputs, **kw):
        return lambda m, t: attnwidget.capture(m, t, inputs, **kw)

    long_ids = list(range(3, 300))
    return [
        ("empty text", cap_(""), ArgumentError, r"needs some text.*got ''"),
        ("blank text", cap_("  \n"), ArgumentError, r"needs some text.*got '  \\n'"),
        ("int input", cap_(123), ArgumentTypeError, r"expects text \(str\).*got int"),
        ("None input", cap_(None), ArgumentTypeError, r"expects text.*got NoneType"),
        ("dict input", cap_({"text": "x"}), ArgumentTypeError, r"expects text.*got dict"),
        ("bytes input", cap_(b"abc"), ArgumentTypeError, r"expects text.*got bytes"),
        ("float ids", cap_(np.array([1.0, 2.0])), ArgumentTypeError, r"token ids must be integers; got dtype torch.float64"),
        ("bool ids", cap_(torch.tensor([True, False])), ArgumentTypeError, r"integers; got dtype torch.bool"),
        ("complex ids", cap_(torch.tensor([1j, 2j])), ArgumentTypeError, r"integers; got dtype torch.complex"),
        ("None in ids", cap_([None, 3]), ArgumentTypeError, r"token ids must be numbers.*got list holding"),
        ("ragged ids", cap_([[1, 2], [3]]), ArgumentTypeError, r"token ids must be numbers.*mixed or nested"),
        ("negative id", cap_([5, -1, 7]), OutOfRangeError, r"token id -1 is out of range.*vocabulary of 400 ids \(0\.\.399\)"),
        ("huge id", cap_([5, 400]), OutOfRangeError, r"token id 400 is out of range.*0\.\.399.*this model's tokenizer"),
        ("3-D ids", cap_(torch.ones(1, 1, 4, dtype=torch.long)), ArgumentError, r"1-D or \[1, n\]; got shape \(1, 4\)|1-D or \[1, n\]; got shape \(1, 1, 4\)"),
        ("batch of ids", cap_(torch.ones(2, 5, dtype=torch.long)), ArgumentError, r"one sequence; got a batch of 2 sequences"),
        ("batch of texts", cap_(["a cat", "a dog"]), ArgumentError, r"one sequence; got a batch of 2 texts"),
        ("empty ids", cap_([]), ArgumentError, r"at least one token id; got an empty sequence"),
        ("too long", cap_(long_ids), ArgumentError, r"is 297 tokens.*at most 256 positions"),
        ("mask with text", cap_("The cat", attention_mask=[1, 1]), ArgumentError, r"attention_mask applies to token ids.*text"),
        ("mask with messages", cap_([{"role": "user", "content": "hi"}], attention_mask=[1]), ArgumentError,
         r"attention_mask applies to token ids"),
        ("fractional mask", cap_([5, 6, 7], attention_mask=[1, 0.5, 1]), ArgumentError,
         r"only 0 \(padding\) and 1 \(token\); found 0\.5 at position 1"),
        ("additive mask", cap_([5, 6, 7], attention_mask=torch.tensor([0.0, -math.inf, 0.0])), ArgumentError,
         r"only 0 \(padding\) and 1.*found -inf"),
        ("mask length", cap_([5, 6, 7], attention_mask=[1, 1]), ArgumentError, r"attention_mask has 2 entries for 3 tokens"),
        ("mask all zero", cap_([5, 6, 7], attention_mask=[0, 0, 0]), ArgumentError, r"all 0: no token is attended"),
        ("mask strings", cap_([5, 6], attention_mask=["1", "1"]), ArgumentTypeError, r"attention_mask must be numbers.*str"),
        ("mask 2 rows", cap_([5, 6], attention_mask=[[1, 1], [1, 1]]), ArgumentError, r"1-D or \[1, n\].*got shape \(2, 2\)"),
        ("message without role", cap_([{"content": "hi"}]), ArgumentError, r"needs 'role' and 'content' keys; got keys \['content'\]"),
        ("role None", cap_([{"role": None, "content": "hi"}]), ArgumentTypeError, r"role None \(NoneType\); a role is a non-empty string"),
        ("role int", cap_([{"role": 1, "content": "hi"}]), ArgumentTypeError, r"role 1 \(int\); a role is a non-empty string"),
        ("role list", cap_([{"role": ["user"], "content": "hi"}]), ArgumentTypeError, r"role \['user'\] \(list\)"),
        ("content None", cap_([{"role": "user", "content": None}]), ArgumentTypeError, r"content of type NoneType.*content is a string"),
        ("content int", cap_([{"role": "user", "content": 5}]), ArgumentTypeError, r"content of type int.*content is a string"),
        ("content list of ints", cap_([{"role": "user", "content": [1, 2]}]), ArgumentTypeError, r"content of type list"),
        ("no chat template", cap_([{"role": "user", "content": "hi"}]), ArgumentError, r"has no chat template.*plain text"),
        ("method", cap_("The cat", method="fast"), ArgumentError, r"method must be one of 'auto', 'qk', 'weights'; got str 'fast'"),
        ("method None", cap_("The cat", method=None), ArgumentError, r"method must be one of .*got NoneType None"),
        ("store_dtype int8", cap_("The cat", store_dtype=torch.int8), ArgumentError, r"store_dtype must be None .* floating dtype.*got torch.int8"),
        ("store_dtype bool", cap_("The cat", store_dtype=torch.bool), ArgumentError, r"floating dtype.*got torch.bool"),
        ("store_dtype str", cap_("The cat", store_dtype="int8"), ArgumentError, r"floating dtype.*got 'int8'"),
        ("store_dtype typo", cap_("The cat", store_dtype="float17"), ArgumentError, r"floating dtype.*got 'float17'"),
        ("store_dtype complex", cap_("The cat", store_dtype=torch.complex64), ArgumentError, r"got torch.complex64"),
        ("store_dtype numpy", cap_("The cat", store_dtype=np.float16), ArgumentError, r"floating dtype.*got <class 'numpy.float16'>"),
        ("generate negative", cap_("The cat", generate=-1), ArgumentError, r"generate must be a non-negative int.*got -1"),
        ("generate float", cap_("The cat", generate=1.5), ArgumentError, r"non-negative int.*got 1.5"),
        ("generate bool", cap_("The cat", generate=True), ArgumentError, r"non-negative int.*got True"),
        ("generate str", cap_("The cat", generate="3"), ArgumentError, r"non-negative int.*got '3'"),
        ("generate past context", cap_("The cat", generate=300), ArgumentError, r"\(\+300 to generate\).*at most 256"),
    ]


CAPTURE_CASES = _capture_cases()


@pytest.mark.parametrize("case", CAPTURE_CASES, ids=[c[0] for c in CAPTURE_CASES])
def test_capture_refuses(llama, byte_tokenizer, case):
    _, call, error, pattern = case
    _check(lambda: call(llama, byte_tokenizer), error, pattern)


def test_capture_refuses_what_the_chat_template_refuses(llama, byte_tokenizer):
    import copy

    tok = copy.deepcopy(byte_tokenizer)
    tok.chat_template = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('first must be user') }}{% endif %}x"
    _check(lambda: attnwidget.capture(llama, tok, [{"role": "system", "content": "hi"}]), ArgumentError,
           r"chat template of .* refused these 1 messages: first must be user")


OTHER_CAPTURE = [
    ("not a model", lambda t: attnwidget.capture("gpt2", t, "x"), ArgumentTypeError, r"expects a transformers PreTrainedModel; got str"),
    ("torch module", lambda t: attnwidget.capture(torch.nn.Linear(2, 2), t, "x"), ArgumentTypeError, r"PreTrainedModel; got Linear"),
]


@pytest.mark.parametrize("case", OTHER_CAPTURE, ids=[c[0] for c in OTHER_CAPTURE])
def test_capture_refuses_non_models(byte_tokenizer, case):
    _, call, error, pattern = case
    _check(lambda: call(byte_tokenizer), error, pattern)


@pytest.mark.parametrize("tokenizer", [None, 5, "gpt2"])
def test_capture_refuses_non_tokenizers(llama, tokenizer):
    _check(lambda: attnwidget.capture(llama, tokenizer, "x"), ArgumentTypeError,
           r"expects the model's tokenizer \(or, for a vision model, its image processor\) as its second argument; "
           r"got " + type(tokenizer).__name__)


def test_capture_refuses_a_model_on_the_meta_device(byte_tokenizer):
    from helpers import tiny_config
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(tiny_config("llama"))
    _check(lambda: attnwidget.capture(model, byte_tokenizer, "The cat"), ArgumentError,
           r"weights are on the meta device.*Load it with real weights")


def test_qk_on_a_model_that_needs_the_fallback_suggests_weights(byte_tokenizer):
    from toy_models import ToyConfig, ToyWeightsModel

    model = ToyWeightsModel(ToyConfig()).eval()
    _check(lambda: attnwidget.capture(model, byte_tokenizer, [3, 4, 5], method="qk"), UnsupportedAttentionError,
           r"method='weights'")


# ----------------------------------------------------------------------------- Capture methods
CAPTURE_METHODS = [
    ("layer bool", lambda c: c.pattern(True), ArgumentTypeError, r"layer must be an int .*got bool True"),
    ("layer float", lambda c: c.pattern(1.5), ArgumentTypeError, r"layer must be an int.*got float 1.5"),
    ("layer str", lambda c: c.pattern("0"), ArgumentTypeError, r"layer must be an int.*got str '0'"),
    ("layer None", lambda c: c.pattern(None), ArgumentTypeError, r"layer must be an int.*got NoneType"),
    ("layer 99", lambda c: c.pattern(99), OutOfRangeError, r"layer 99 is out of range: there are 3 layers \(0\.\.2"),
    ("layer -4", lambda c: c.pattern(-4), OutOfRangeError, r"layer -4 is out of range: there are 3 layers"),
    ("head 99", lambda c: c.pattern(0, 99), OutOfRangeError, r"head 99 is out of range: there are 4 heads per layer"),
    ("head bool", lambda c: c.pattern(0, True), ArgumentTypeError, r"head must be an int.*got bool True"),
    ("head float", lambda c: c.pattern(0, 1.5), ArgumentTypeError, r"head.*must be an int.*got float"),
    ("head str", lambda c: c.pattern(0, "first"), ArgumentTypeError, r"head must be an int.*got str 'first'.*'mean'"),
    ("heads empty", lambda c: c.pattern(0, []), ArgumentError, r"head must name at least one of the 4 heads.*empty list"),
    ("rows 99", lambda c: c.pattern(0, rows=[99]), OutOfRangeError, r"rows\[0\] 99 is out of range: there are \d+ tokens"),
    ("rows str", lambda c: c.pattern(0, rows="a"), ArgumentTypeError, r"rows must be an int or a list of ints; got str"),
    ("rows floats", lambda c: c.pattern(0, rows=[1.5]), ArgumentTypeError, r"rows\[0\] must be an int.*got float 1.5"),
    ("rows 2-D", lambda c: c.pattern(0, rows=np.zeros((2, 2), int)), ArgumentError, r"rows must be a 1-D list of ints; got an array of shape \(2, 2\)"),
    ("head_patterns layer", lambda c: c.head_patterns(7), OutOfRangeError, r"layer 7 is out of range"),
    ("patterns layers 99", lambda c: c.patterns([0, 99]), OutOfRangeError, r"layer 99 is out of range|layers\[1\] 99"),
    ("patterns layers str", lambda c: c.patterns("all"), ArgumentTypeError, r"layers must be an int or a list of ints; got str 'all'"),
]


@pytest.mark.parametrize("case", CAPTURE_METHODS, ids=[c[0] for c in CAPTURE_METHODS])
def test_capture_methods_refuse(cap, case):
    _, call, error, pattern = case
    _check(lambda: call(cap), error, pattern)


def test_patterns_beyond_the_memory_available_is_refused(cap, monkeypatch):
    import attnwidget._memory as memory

    monkeypatch.setattr(memory, "available_memory", lambda: 1000)
    _check(lambda: cap.patterns(), MemoryBudgetError, r"patterns\(\) for 3 layers x 4 heads.*needs .* GiB; 0.00 GiB is available to this process.*Ask for fewer layers")


# ----------------------------------------------------------------------------- analysis arguments
ANALYSIS_ARGS = [
    ("rollout start_layer bool", lambda c: attnwidget.rollout(c, start_layer=True), ArgumentTypeError, r"start_layer must be an int.*got bool"),
    ("rollout start_layer 9", lambda c: attnwidget.rollout(c, start_layer=9), OutOfRangeError, r"start_layer 9 is out of range: there are 3 layers"),
    ("rollout layers 99", lambda c: attnwidget.rollout(c, layers=[0, 99]), OutOfRangeError, r"layers\[1\] 99 is out of range"),
    ("rollout layers empty", lambda c: attnwidget.rollout(c, layers=[]), ArgumentError, r"layers must name at least one of the 3 layers"),
    ("rollout layers str", lambda c: attnwidget.rollout(c, layers="top"), ArgumentTypeError, r"layers must be an int or a list of ints; got str"),
    ("rollout layers decreasing", lambda c: attnwidget.rollout(c, layers=[2, 0]), ArgumentError, r"strictly increasing.*got \[2, 0\]"),
    ("rollout residual nan", lambda c: attnwidget.rollout(c, residual=float("nan")), ArgumentError, r"residual must be a finite number; got nan"),
    ("rollout residual 2", lambda c: attnwidget.rollout(c, residual=2), ArgumentError, r"residual must lie in \[0.0, 1.0\]; got 2.0"),
    ("rollout residual bool", lambda c: attnwidget.rollout(c, residual=True), ArgumentTypeError, r"residual must be a number; got bool"),
    ("rollout residual str", lambda c: attnwidget.rollout(c, residual="half"), ArgumentTypeError, r"residual must be a number; got str 'half'"),
    ("rollout fusion", lambda c: attnwidget.rollout(c, head_fusion="median"), ArgumentError, r"head_fusion must be one of 'mean', 'max', 'min'; got 'median'"),
    ("rollout_row 99", lambda c: attnwidget.rollout_row(c, 99), OutOfRangeError, r"row 99 is out of range: there are \d+ tokens"),
    ("rollout_row bool", lambda c: attnwidget.rollout_row(c, True), ArgumentTypeError, r"row must be an int.*got bool"),
    ("rollout_rows str", lambda c: attnwidget.rollout_rows(c, "last"), ArgumentTypeError, r"rows must be None, an int or a sequence of ints; got str"),
    ("flow row 99", lambda c: attnwidget.attention_flow_row(c, 99), OutOfRangeError, r"row 99 is out of range"),
    ("flow layers", lambda c: attnwidget.attention_flow(c, layers=[5]), OutOfRangeError, r"layers\[0\] 5 is out of range"),
    ("metrics names", lambda c: attnwidget.compute_metrics(c, ["entropy", "nope"], progress=False), ArgumentError, r"nope"),
    ("parts layers -9", lambda c: attnwidget.prompt_parts(c, {"a": "cat"}, layers=[-9]), OutOfRangeError, r"layers\[0\] -9 is out of range"),
    ("parts heads 4", lambda c: attnwidget.prompt_parts(c, {"a": "cat"}, heads=[4]), OutOfRangeError, r"heads\[0\] 4 is out of range: there are 4 heads per layer"),
    ("parts layers bools", lambda c: attnwidget.prompt_parts(c, {"a": "cat"}, layers=[True]), ArgumentTypeError, r"layers\[0\] must be an int.*got bool"),
    ("export layer", lambda c: attnwidget.export_html(c, "/tmp/x.html", layer=3), OutOfRangeError, r"layer 3 is out of range"),
    ("export head", lambda c: attnwidget.export_html(c, "/tmp/x.html", head="all"), ArgumentTypeError, r"head must be an int.*got str 'all'"),
    ("export view", lambda c: attnwidget.export_html(c, "/tmp/x.html", view="grid"), ArgumentError, r"view must be one of 'heatmap'.*got str 'grid'"),
    ("export threshold", lambda c: attnwidget.export_html(c, "/tmp/x.html", threshold=float("nan")), ArgumentError, r"threshold must be a finite number; got nan"),
]


@pytest.mark.parametrize("case", ANALYSIS_ARGS, ids=[c[0] for c in ANALYSIS_ARGS])
def test_analysis_arguments(cap, case):
    _, call, error, pattern = case
    _check(lambda: call(cap), error, pattern)


def test_negative_layers_mean_the_same_everywhere(cap):
    """``layers=[-1]`` is the last layer in rollout as in prompt_parts (they disagreed before)."""
    np.testing.assert_array_equal(attnwidget.rollout(cap, layers=[-1]), attnwidget.rollout(cap, layers=[2]))
    a = attnwidget.prompt_parts(cap, {"a": "cat"}, layers=[-1]).matrix
    b = attnwidget.prompt_parts(cap, {"a": "cat"}, layers=[2]).matrix
    np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- widget traits
@pytest.fixture(scope="module")
def widget(cap):
    w = attnwidget.AttentionWidget(cap, background=False, progress=False)
    yield w
    w.close()


WIDGET_TRAITS = [
    ("layer", True, ArgumentTypeError, r"layer must be an int.*got bool True"),
    ("layer", 2.0, ArgumentTypeError, r"layer must be an int.*got float 2.0"),
    ("layer", "1", ArgumentTypeError, r"layer must be an int.*got str '1'"),
    ("layer", 99, OutOfRangeError, r"layer 99 is out of range: there are 3 layers"),
    ("layer", None, ArgumentTypeError, r"layer must be an int.*got NoneType"),
    ("head", True, ArgumentTypeError, r"head must be an int.*got bool True.*mean over heads"),
    ("head", 2.0, ArgumentTypeError, r"head must be an int.*got float 2.0"),
    ("head", 4, OutOfRangeError, r"head 4 is out of range: there are 4 heads per layer"),
    ("head", "x", ArgumentTypeError, r"head must be an int.*got str 'x'"),
    ("threshold", float("nan"), ArgumentError, r"threshold must be a finite number; got nan"),
    ("threshold", float("inf"), ArgumentError, r"threshold must be a finite number; got inf"),
    ("threshold", -0.1, ArgumentError, r"threshold must lie in \[0.0, 1.0\]; got -0.1"),
    ("threshold", 1.5, ArgumentError, r"threshold must lie in \[0.0, 1.0\]; got 1.5"),
    ("threshold", "0.5", ArgumentTypeError, r"threshold must be a number; got str '0.5'"),
    ("threshold", True, ArgumentTypeError, r"threshold must be a number; got bool"),
    ("tokens", [], ArgumentError, r"tokens must hold one string per position: \d+; got 0"),
    ("tokens", ["a", "b"], ArgumentError, r"one string per position: \d+; got 2"),
    ("selected_tokens", [True], ArgumentTypeError, r"selected_tokens\[0\] must be an int.*got bool True"),
    ("selected_tokens", [99], OutOfRangeError, r"selected_tokens\[0\] 99 is out of range: there are \d+ tokens"),
    ("selected_tokens", [1.5], ArgumentTypeError, r"selected_tokens\[0\] must be an int.*got float"),
    ("selected_tokens", "abc", ArgumentTypeError, r"selected_tokens must be an int or a list of ints; got str"),
    ("selected_tokens", None, ArgumentTypeError, r"selected_tokens must be an int or a list of ints; got NoneType"),
    ("hovered_token", True, ArgumentTypeError, r"hovered_token must be an int.*got bool True"),
    ("hovered_token", 99, OutOfRangeError, r"hovered_token 99 is out of range"),
    ("hovered_token", 1.5, ArgumentTypeError, r"hovered_token must be an int.*got float"),
    ("color_by", "nonsense", ArgumentError, r"color_by must be one of .*'entropy'.*got str 'nonsense'"),
    ("color_by", 5, ArgumentError, r"color_by must be one of .*got int 5"),
    ("view", "grid", ArgumentError, r"view must be one of 'heatmap', 'text', 'lines', 'graph', 'rollout', 'query-key'; got str 'grid'"),
    ("view", None, ArgumentError, r"view must be one of .*got NoneType"),
    ("color_scale", "sqrt", ArgumentError, r"color_scale must be one of 'linear', 'log', 'no_sink'; got str 'sqrt'"),
    ("text_source", "gradients", ArgumentError, r"text_source must be one of 'attention', 'rollout', 'flow'; got str"),
    ("heatmap_kind", "flow", ArgumentError, r"heatmap_kind must be one of 'attention', 'rollout'; got str 'flow'"),
]


@pytest.mark.parametrize("case", WIDGET_TRAITS, ids=[f"{c[0]}={c[1]!r}" for c in WIDGET_TRAITS])
def test_widget_refuses_and_keeps_its_value(widget, case):
    name, value, error, pattern = case
    before = getattr(widget, name)
    _check(lambda: setattr(widget, name, value), error, pattern)
    assert getattr(widget, name) == before  # a refused value never sticks


@pytest.mark.parametrize("kwargs, error, pattern", [
    ({"layer": 9}, OutOfRangeError, r"layer 9 is out of range"),
    ({"head": -9}, OutOfRangeError, r"head -9 is out of range"),
    ({"tokens": ["x"]}, ArgumentError, r"tokens must hold one string per position"),
    ({"view": "table"}, ArgumentError, r"view must be one of"),
    ({"threshold": 2}, ArgumentError, r"threshold must lie in"),
    ({"color_by": "loudness"}, ArgumentError, r"color_by must be one of"),
], ids=["layer", "head", "tokens", "view", "threshold", "color_by"])
def test_widget_constructor_refuses(cap, kwargs, error, pattern):
    _check(lambda: attnwidget.AttentionWidget(cap, background=False, progress=False, **kwargs), error, pattern)


PAGE_MESSAGES = [
    ("not a dict", ["tile_request"], r"expected a message \{'type': \.\.\.\} from the page; got \['tile_request'\]"),
    ("no type", {"row0": 1}, r"expected a message \{'type'"),
    ("unknown type", {"type": "explode"}, r"unknown message type 'explode'.*expected 'painted'"),
    ("tile row0 str", {"type": "tile_request", "row0": "x"}, r"row0|int"),
    ("lines token 99", {"type": "lines_hover", "token": 99}, r"token 99 is out of range"),
    ("lines token str", {"type": "lines_hover", "token": "a"}, r"token must be an int.*got str 'a'"),
]


@pytest.mark.parametrize("case", PAGE_MESSAGES, ids=[c[0] for c in PAGE_MESSAGES])
def test_bad_messages_from_the_page_reach_the_status_line(widget, caplog, case):
    _, content, pattern = case
    widget.error = ""
    with caplog.at_level("ERROR", logger="attnwidget"):
        widget._on_message(widget, content, [])  # never raises inside the comm handler
    assert re.search(pattern, widget.error, re.I), widget.error
    assert any(r.name == "attnwidget" and widget.error in r.getMessage() for r in caplog.records)


def test_a_refused_value_from_the_page_is_reported_and_resynced(widget):
    widget.error = ""
    sent = []
    original = widget.send_state
    widget.send_state = lambda key=None: sent.append(key)
    try:
        widget.set_state({"layer": 99})
    finally:
        widget.send_state = original
    assert "layer 99 is out of range" in widget.error and widget.layer != 99
    assert ["layer"] in sent  # the page is put back on the kernel's value


@pytest.mark.parametrize("path, view, error, pattern", [
    ("/nonexistent/x.png", "current", FileNotFoundError, r"cannot save /nonexistent/x.png: the folder /nonexistent does not exist"),
    ("/tmp", "current", PermissionError, r"cannot save /tmp: it is a folder"),
    ("/tmp/x.png", "heatmap", ArgumentError, r"view must be one of 'current', 'grid'; got str 'heatmap'"),
], ids=["missing folder", "a folder", "bad view"])
def test_save_png_refuses_at_once(widget, path, view, error, pattern):
    with pytest.raises(error, match=pattern):
        widget.save_png(path, view=view)


# ----------------------------------------------------------------------------- capture files
@pytest.fixture(scope="module")
def saved(cap, tmp_path_factory):
    """The tensors and description of a valid capture file, to be altered one thing at a time."""
    import json

    from safetensors import safe_open

    path = cap.save(tmp_path_factory.mktemp("cap") / "good.safetensors")
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = json.loads(f.metadata()["attnwidget"])
    return tensors, meta


def _write(tmp_path, tensors, meta, raw_meta=None):
    import json

    from safetensors.torch import save_file

    path = tmp_path / "crafted.safetensors"
    save_file(tensors, str(path), metadata={"attnwidget": raw_meta if raw_meta is not None else json.dumps(meta)})
    return path


def _meta(change):
    def apply(tensors, meta):
        import json

        meta = json.loads(json.dumps(meta))  # a deep copy: the fixture's description stays intact
        change(meta)
        return tensors, meta
    return apply


def _tensor(name, value):
    def apply(tensors, meta):
        tensors = dict(tensors)
        if value is None:
            tensors.pop(name)
        else:
            tensors[name] = value(tensors[name]) if callable(value) else value
        return tensors, meta
    return apply


def _set(key, value):
    return _meta(lambda m: m.__setitem__(key, value))


def _layer(key, value):
    return _meta(lambda m: m["layers"][1].__setitem__(key, value))


FILE_CASES = [
    ("num_heads 0", _set("num_heads", 0), r"num_heads must be an int >= 1; got 0"),
    ("num_heads 5e6", _set("num_heads", 5_000_000), r"tensor 'weights\.0'|tensor 'query\.0' has shape \[4, \d+, 16\]; expected \[5000000"),
    ("num_heads float", _set("num_heads", 4.0), r"num_heads must be an int >= 1; got 4.0"),
    ("num_heads str", _set("num_heads", "4"), r"num_heads must be an int >= 1; got '4'"),
    ("tokens short", _meta(lambda m: m["tokens"].pop()), r"has shape \[\d+\]; expected \[\d+\] for \d+ tokens"),
    ("tokens not strings", _set("tokens", [1, 2, 3]), r"tokens must be a non-empty list of strings; got \[1, 2, 3\]"),
    ("tokens empty", _set("tokens", []), r"tokens must be a non-empty list of strings; got \[\]"),
    ("is_causal no", _set("is_causal", "no"), r"is_causal must be true or false; got 'no'"),
    ("is_causal 1", _set("is_causal", 1), r"is_causal must be true or false; got 1"),
    ("text int", _set("text", 5), r"text must be a string or null; got 5"),
    ("model_name list", _set("model_name", ["x"]), r"model_name must be a string; got \['x'\]"),
    ("format 4", _set("format", 4), r"capture format 4; expected one of \[1, 2, 3\]"),
    ("format true", _set("format", True), r"capture format True; expected one of \[1, 2, 3\]"),
    ("kind", _set("kind", "video"), r"kind must be 'capture' or 'seq2seq'; got 'video'"),
    ("bias index", _meta(lambda m: m["layers"][0].update(bias=3)), r"layers\[0\].bias must be an int in -1..-1"),
    ("biases", _set("biases", [{"bidirectional": 1}]), r"biases\[0\].bidirectional must be true or false"),
    ("key tokens", _set("key_tokens", []), r"key_tokens must be a non-empty list of strings"),
    ("patch grid", _set("patch_grid", [0, 3]), r"patch_grid must be \[rows, cols\], two ints >= 1"),
    ("missing layers", _meta(lambda m: m.pop("layers")), r"lacks \['layers'\]"),
    ("layers empty", _set("layers", []), r"layers must be a non-empty list of objects; got \[\]"),
    ("layers not objects", _set("layers", [1, 2, 3]), r"layers must be a non-empty list of objects"),
    ("kind", _layer("kind", "conv"), r"layers\[1\]\.kind must be 'qk' or 'weights'; got 'conv'"),
    ("name", _layer("name", None), r"layers\[1\]\.name must be a string; got None"),
    ("scaling nan", _layer("scaling", float("nan")), r"layers\[1\]\.scaling must be a finite number > 0; got nan"),
    ("scaling negative", _layer("scaling", -0.25), r"scaling must be a finite number > 0; got -0.25"),
    ("scaling str", _layer("scaling", "0.25"), r"scaling must be a finite number > 0; got '0.25'"),
    ("scaling bool", _layer("scaling", True), r"scaling must be a finite number > 0; got True"),
    ("softcap zero", _layer("softcap", 0), r"softcap must be null or a finite number > 0; got 0"),
    ("mask index", _layer("mask", 5), r"layers\[1\]\.mask must be an int in -1\.\.-1 \(-1: no mask\); got 5|mask must be an int in"),
    ("causal str", _layer("causal", "yes"), r"layers\[1\]\.causal must be true or false; got 'yes'"),
    ("num_masks", _set("num_masks", 3), r"tensor 'mask\.0' the description needs is missing"),
    ("int8 queries", _tensor("query.1", lambda t: t.to(torch.int8)), r"tensor 'query\.1' has dtype I8; expected one of \['F16', 'BF16', 'F32', 'F64'\]"),
    ("query shape", _tensor("query.1", lambda t: t[:, :3].contiguous()), r"tensor 'query\.1' has shape \[4, 3, 16\]; expected \[4x\d+x16\]"),
    ("key heads", _tensor("key.0", lambda t: torch.cat([t, t[:1]])), r"tensor 'key\.0' has shape \[3, \d+, 16\]; expected \[\?x"),
    ("missing key", _tensor("key.2", None), r"tensor 'key\.2' the description needs is missing"),
    ("nan query", _tensor("query.0", lambda t: t.index_fill(0, torch.tensor([1]), float("nan"))), r"tensor 'query\.0' holds NaN or infinite values"),
    ("inf key", _tensor("key.0", lambda t: t.index_fill(0, torch.tensor([0]), float("inf"))), r"tensor 'key\.0' holds NaN or infinite"),
    ("negative ids", _tensor("token_ids", lambda t: t - 100), r"token_ids must be non-negative; found -\d+"),
    ("flags", _tensor("flags", lambda t: t + 2), r"flags must be 0 or 1"),
    ("offsets reversed", _tensor("offsets", lambda t: t.flip(-1) + torch.tensor([1, 0])), r"offsets must be non-negative \[start, end\] pairs"),
    ("float ids", _tensor("token_ids", lambda t: t.float()), r"tensor 'token_ids' has dtype F32; expected one of \['I64'\]"),
]


@pytest.mark.parametrize("case", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_load_refuses_crafted_files(saved, tmp_path, case):
    from attnwidget.errors import CaptureFileError

    _, alter, pattern = case
    tensors, meta = alter(*saved)
    path = _write(tmp_path, tensors, meta)
    _check(lambda: attnwidget.Capture.load(path), CaptureFileError, pattern)


@pytest.mark.parametrize("raw, pattern", [
    ("[" * 100_000 + "]" * 100_000, r"nested too deeply"),
    ("{not json", r"not valid JSON"),
    ('"a string"', r"must be a JSON object; got str"),
    ("null", r"must be a JSON object; got NoneType"),
], ids=["nested", "not json", "string", "null"])
def test_load_refuses_bad_descriptions(saved, tmp_path, raw, pattern):
    from attnwidget.errors import CaptureFileError

    path = _write(tmp_path, saved[0], None, raw_meta=raw)
    _check(lambda: attnwidget.Capture.load(path), CaptureFileError, pattern)


class _Payload:
    """Unpickling this would create a marker file: the test proves it never happens."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _pickle_file(tmp_path, marker):
    import pickle

    path = tmp_path / "capture.safetensors"
    path.write_bytes(pickle.dumps(_Payload(str(marker))))
    return path


def _torch_file(tmp_path, marker):
    path = tmp_path / "capture.pt"
    torch.save({"payload": _Payload(str(marker))}, path)
    return path


def _bytes_file(data):
    def make(tmp_path, marker):
        path = tmp_path / "capture.safetensors"
        path.write_bytes(data)
        return path
    return make


CONTAINERS = [
    ("pickle", _pickle_file, r"looks like a Python pickle.*never unpickles"),
    ("torch.save", _torch_file, r"zip archive \(what torch.save writes\).*never unpickles"),
    ("empty", _bytes_file(b""), r"is 0 bytes: too short"),
    ("random bytes", _bytes_file(bytes(range(7, 256)) * 4), r"not a safetensors file.*first 8 bytes"),
    ("huge header", _bytes_file((10**12).to_bytes(8, "little") + b"{}"), r"not a safetensors file.*they give 1000000000000"),
    ("text file", _bytes_file(b"layer,head\n0,1\n"), r"not a safetensors file"),
]


@pytest.mark.parametrize("case", CONTAINERS, ids=[c[0] for c in CONTAINERS])
def test_load_refuses_other_formats_without_running_them(tmp_path, case):
    from attnwidget.errors import CaptureFileError

    _, make, pattern = case
    marker = tmp_path / "ran"
    path = make(tmp_path, marker)
    _check(lambda: attnwidget.Capture.load(path), CaptureFileError, pattern)
    assert not marker.exists()  # nothing in the file ran


def test_load_refuses_a_truncated_file(cap, tmp_path):
    from attnwidget.errors import CaptureFileError

    path = cap.save(tmp_path / "whole.safetensors")
    data = path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) - 100])
    _check(lambda: attnwidget.Capture.load(cut), CaptureFileError, r"could not be read as an attnwidget capture.*damaged")


def test_load_refuses_a_safetensors_file_that_is_not_a_capture(tmp_path):
    from attnwidget.errors import CaptureFileError
    from safetensors.torch import save_file

    path = tmp_path / "weights.safetensors"
    save_file({"w": torch.ones(2)}, str(path))
    _check(lambda: attnwidget.Capture.load(path), CaptureFileError, r"safetensors file but not an attnwidget capture")


def test_load_refuses_a_non_path():
    _check(lambda: attnwidget.Capture.load(5), ArgumentTypeError, r"expects a file path \(str or Path\); got int")


def test_a_valid_file_still_loads(cap, tmp_path):
    back = attnwidget.Capture.load(cap.save(tmp_path / "ok.safetensors"))
    np.testing.assert_array_equal(back.pattern(1, 2), cap.pattern(1, 2))


# ----------------------------------------------------------------------------- the CLI
def _cli(argv, monkeypatch, capsys):
    from attnwidget import __main__ as cli
    import attnwidget.models as models

    def no_load(*a, **k):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(models, "load_model", no_load)
    rc = cli.main(argv)
    err = capsys.readouterr().err.strip()
    return rc, err


CLI_CASES = [
    ("layer 99", ["x", "-o", "{tmp}/a.html", "--layer", "99"], r"OutOfRangeError: --layer 99 is out of range: there are 30 layers"),
    ("head 99", ["x", "-o", "{tmp}/a.html", "--head", "99"], r"OutOfRangeError: --head 99 is out of range: there are 9 heads"),
    ("minilm layer 6", ["x", "-o", "{tmp}/a.html", "--model", "minilm", "--layer", "6"], r"--layer 6 is out of range: there are 6 layers"),
    ("missing folder", ["x", "-o", "/nonexistent/a.html"], r"FileNotFoundError: the output folder /nonexistent does not exist"),
    ("existing file", ["x", "-o", "{tmp}/exists.html"], r"FileExistsError: .*exists.html exists; pass --force"),
    ("a folder", ["x", "-o", "{tmp}/dir.html"], r"IsADirectoryError: the output .*dir.html is a folder"),
    ("not html", ["x", "-o", "{tmp}/a.png"], r"ArgumentError: the output must be an .html file; got"),
    ("no model folder", ["x", "-o", "{tmp}/a.html", "--model", "/nonexistent/model"], r"FileNotFoundError: no model folder at /nonexistent/model"),
    ("relative model folder", ["x", "-o", "{tmp}/a.html", "--model", "./no-such-model"], r"no model folder at ./no-such-model"),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_checks_before_loading(tmp_path, monkeypatch, capsys, case):
    _, argv, pattern = case
    (tmp_path / "exists.html").write_text("keep me")
    (tmp_path / "dir.html").mkdir()
    rc, err = _cli(["export"] + [a.format(tmp=tmp_path) for a in argv], monkeypatch, capsys)
    assert rc == 1
    assert "\n" not in err and err.startswith("attnwidget: error: "), err  # one line, no traceback
    assert re.search(pattern, err), err
    assert (tmp_path / "exists.html").read_text() == "keep me"


def test_cli_bad_head_is_a_usage_error(monkeypatch, capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        _cli(["export", "x", "-o", str(tmp_path / "a.html"), "--head", "x"], monkeypatch, capsys)
    assert info.value.code == 2
    assert "expected an int or 'mean', got 'x'" in capsys.readouterr().err


def test_cli_empty_text(monkeypatch, capsys, tmp_path):
    rc, err = _cli(["export", "  ", "-o", str(tmp_path / "a.html")], monkeypatch, capsys)
    assert rc == 1 and "ArgumentError: TEXT is empty; give the text to capture" in err
