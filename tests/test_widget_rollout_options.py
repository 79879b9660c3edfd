"""The widget's rollout options (rollout_fusion, discard_ratio) and the inputs it takes through
as_source (an encoder-decoder model's output, attention arrays with key_tokens)."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
from widget_captures import SOURCE, TARGET, make_capture, make_seq2seq, make_vision

import attnwidget
from attnwidget.errors import ArgumentError, ArgumentTypeError
from attnwidget.seq2seq import Seq2SeqCapture
from attnwidget.widget import AttentionWidget

ROLLOUT_MODULE = sys.modules["attnwidget.rollout"]  # attnwidget.rollout is the function
NO_ROLLOUT = r"cross-attention has no rollout on its own"
OPTIONS = [("mean", 0.0), ("max", 0.0), ("max", 0.9), ("min", 0.5), ("mean", 0.25)]
WORDS = "The cat sat on the mat and the dog sat on the log while it rained".split()


def decode(wire: dict) -> np.ndarray:
    return np.frombuffer(wire["buffer"], dtype=wire["dtype"]).reshape(wire["shape"])


def expected_row(cap, row, fusion, discard):
    return attnwidget.rollout_row(cap, row, head_fusion=fusion, discard_ratio=discard).values


@pytest.fixture(scope="module")
def causal():
    return make_capture([f"▁{w}" for w in WORDS], causal=True, layers=3, heads=4, seed=7)


@pytest.fixture(scope="module")
def vit():
    return make_vision()  # [CLS] + 3 x 4 patches


@pytest.fixture
def widget(causal):
    w = AttentionWidget(causal, background=False, view="rollout")
    yield w
    w.close()


# -- values: every view that shows rollout equals attnwidget.rollout_row with the options -------------
@pytest.mark.parametrize("fusion, discard", OPTIONS)
def test_every_rollout_in_the_widget_follows_the_options(widget, causal, fusion, discard):
    widget.rollout_fusion, widget.discard_ratio = fusion, discard
    n = causal.num_tokens
    for row in (0, 5, n - 1):
        np.testing.assert_allclose(widget.rollout_values(row), expected_row(causal, row, fusion, discard), atol=1e-9)
    # the rollout strip: the natural row (last token), then a selected one
    data = widget.rollout_data
    assert data["row"] == n - 1 and data["options"] == [fusion, discard]
    np.testing.assert_allclose(decode(data["values"]), expected_row(causal, n - 1, fusion, discard), atol=1e-6)
    widget.selected_tokens = [6]
    np.testing.assert_allclose(decode(widget.rollout_data["values"]), expected_row(causal, 6, fusion, discard),
                               atol=1e-6)
    # the text view coloured by rollout
    widget.text_source, widget.view = "rollout", "text"
    np.testing.assert_allclose(decode(widget.text_data["values"]), expected_row(causal, 6, fusion, discard),
                               atol=1e-6)
    # the rollout heatmap: the whole matrix
    widget.view, widget.heatmap_kind = "heatmap", "rollout"
    matrix = attnwidget.rollout(causal, head_fusion=fusion, discard_ratio=discard)
    np.testing.assert_allclose(decode(widget.heatmap_data["matrix"]), matrix, atol=1e-3)
    np.testing.assert_allclose(widget.rollout_matrix(), matrix, atol=1e-12)
    assert widget.heatmap_data["title"].startswith(f"rollout ({fusion} of heads")


def test_the_image_view_shows_the_rollout_with_the_options(vit):
    widget = AttentionWidget(vit, background=False, text_source="rollout")
    assert (widget.view, widget.rollout_fusion, widget.discard_ratio) == ("image", "mean", 0.0)  # defaults
    rows, cols = vit.patch_grid

    def patches(fusion, discard, token=0):
        return expected_row(vit, token, fusion, discard)[1:1 + rows * cols].reshape(rows, cols)

    np.testing.assert_allclose(decode(widget.image_data["values"]), patches("mean", 0.0), atol=1e-6)
    widget.rollout_fusion = "max"
    widget.discard_ratio = 0.9  # the ViT recipe
    np.testing.assert_allclose(decode(widget.image_data["values"]), patches("max", 0.9), atol=1e-6)
    assert not np.allclose(patches("max", 0.9), patches("mean", 0.0), atol=1e-3)  # the change shows
    assert widget.image_data["note"] == "rollout (max of heads, lowest 90% discarded) of token 0 over all layers"
    assert widget.status == "layer 1, mean of heads; image: rollout (max of heads, lowest 90% discarded)"
    widget.hovered_token = 7
    np.testing.assert_allclose(decode(widget.image_data["values"]), patches("max", 0.9, 7), atol=1e-6)
    # the ViT recipe from the constructor
    recipe = AttentionWidget(vit, background=False, text_source="rollout", rollout_fusion="max", discard_ratio=0.9)
    np.testing.assert_allclose(decode(recipe.image_data["values"]), patches("max", 0.9), atol=1e-6)
    widget.close()
    recipe.close()


def test_the_status_line_says_which_rollout_shows(widget):
    assert widget.status == "layer 1, mean of heads; strip: rollout (mean of heads)"
    assert widget.rollout_data["label"] == "rollout (mean of heads)"
    widget.rollout_fusion = "min"
    widget.discard_ratio = 0.875
    assert widget.status == "layer 1, mean of heads; strip: rollout (min of heads, lowest 87.5% discarded)"
    assert widget.rollout_data["label"] == "rollout (min of heads, lowest 87.5% discarded)"
    widget.view = "graph"
    assert widget.status == "layer 1, mean of heads"  # no rollout shown
    widget.view = "text"
    assert widget.status == "layer 1, mean of heads"  # coloured by attention
    widget.text_source = "rollout"
    assert widget.status.endswith("; text: rollout (min of heads, lowest 87.5% discarded)")
    widget.heatmap_kind = "rollout"
    assert "heatmap: rollout (min of heads, lowest 87.5% discarded)" in widget.status


def test_options_are_cached_separately_and_kept(widget, causal, monkeypatch):
    calls = []
    real = ROLLOUT_MODULE.rollout
    monkeypatch.setattr(ROLLOUT_MODULE, "rollout", lambda *a, **k: calls.append(k) or real(*a, **k))
    first = widget.rollout_values(3).copy()  # cached from the first push: no new computation
    widget.rollout_fusion = "max"
    assert [(k["head_fusion"], k["discard_ratio"]) for k in calls] == [("max", 0.0)]
    widget.rollout_fusion = "mean"  # back: the earlier matrix is kept
    assert len(calls) == 1
    np.testing.assert_array_equal(widget.rollout_values(3), first)
    for ratio in (0.1, 0.2, 0.3, 0.4, 0.5):  # more options than are kept: the oldest go first
        widget.discard_ratio = ratio
    assert len(widget._data._matrices) == 4 and ("max", 0.0) not in widget._data._matrices


# -- long inputs: rows on the worker thread, hover never computes ------------------------------------
def test_long_inputs_compute_option_rows_on_the_worker(causal, monkeypatch):
    import attnwidget.widget as module

    monkeypatch.setattr(module, "ROLLOUT_MATRIX_TOKENS", 4)  # pretend the capture is long
    widget = AttentionWidget(causal, view="rollout", background=False)
    widget.wait()
    natural = causal.num_tokens - 1
    summary_rows = []
    real_rows = widget._summary.rollout_rows
    monkeypatch.setattr(widget._summary, "rollout_rows", lambda *a, **k: summary_rows.append(a) or real_rows(*a, **k))
    threads = []
    real_row = ROLLOUT_MODULE.rollout_row

    def spy(*args, **kwargs):
        import threading

        threads.append(threading.current_thread().name)
        return real_row(*args, **kwargs)

    monkeypatch.setattr(ROLLOUT_MODULE, "rollout_row", spy)
    with widget.hold_trait_notifications():  # as the page sets them: once, together
        widget.rollout_fusion = "max"
        widget.discard_ratio = 0.5
    widget.wait()
    assert len(threads) == 1 and all(name.startswith("attnwidget") for name in threads)  # the worker, not the caller
    assert not summary_rows  # max fusion cannot use the kept head means
    data = widget.rollout_data
    assert data["row"] == natural and data["options"] == ["max", 0.5]
    np.testing.assert_allclose(decode(data["values"]), expected_row(causal, natural, "max", 0.5), atol=1e-6)
    assert "rollout (max of heads, lowest 50% discarded) row of token" in widget.status
    # a hover over a row not computed with these options computes nothing
    count = len(threads)
    widget.hovered_token = 3
    widget.wait()
    assert len(threads) == count and widget.rollout_data["row"] == natural and "click a token" in widget.status
    widget.hovered_token = None
    widget.selected_tokens = [3]
    widget.wait()
    assert len(threads) == count + 1
    np.testing.assert_allclose(decode(widget.rollout_data["values"]), expected_row(causal, 3, "max", 0.5), atol=1e-6)
    # back to the head mean, nothing discarded: the fast path (the kept head means)
    with widget.hold_trait_notifications():
        widget.rollout_fusion, widget.discard_ratio = "mean", 0.0
    widget.wait()
    assert summary_rows == [([3],)] and len(threads) == count + 1
    np.testing.assert_allclose(decode(widget.rollout_data["values"]), expected_row(causal, 3, "mean", 0.0), atol=1e-6)
    assert not widget._data._matrices  # the n x n matrix was never built
    widget.close()


def test_a_hover_after_an_option_change_does_not_keep_the_old_row(causal, monkeypatch):
    """Long input: the strip holds a row of the old options; a hover then starts the natural row with the
    new ones on the worker instead of leaving the old row up."""
    import attnwidget.widget as module

    monkeypatch.setattr(module, "ROLLOUT_MATRIX_TOKENS", 4)
    widget = AttentionWidget(causal, view="heatmap", background=False)
    widget.view = "rollout"
    widget.wait()
    assert widget.rollout_data["options"] == ["mean", 0.0]
    widget.view = "heatmap"
    widget.rollout_fusion = "min"  # the strip is not shown: nothing computed yet
    widget.hovered_token = 2
    widget.view = "rollout"
    widget.wait()
    data = widget.rollout_data
    assert data["options"] == ["min", 0.0] and data["row"] == causal.num_tokens - 1
    widget.close()


# -- validation --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, value, error, match", [
    ("rollout_fusion", "median", ArgumentError, r"rollout_fusion must be one of 'mean', 'max', 'min'; got str 'median'"),
    ("rollout_fusion", None, ArgumentError, r"rollout_fusion must be one of .* got NoneType None"),
    ("rollout_fusion", 1, ArgumentError, r"rollout_fusion must be one of"),
    ("discard_ratio", 1.0, ArgumentError, r"discard_ratio must be below 1"),
    ("discard_ratio", -0.1, ArgumentError, r"discard_ratio must lie in \[0.0, 1.0\]; got -0.1"),
    ("discard_ratio", math.nan, ArgumentError, r"discard_ratio must be a finite number"),
    ("discard_ratio", "0.5", ArgumentTypeError, r"discard_ratio must be a number; got str"),
    ("discard_ratio", True, ArgumentTypeError, r"discard_ratio must be a number; got bool"),
    ("discard_ratio", None, ArgumentTypeError, r"discard_ratio must be a number; got NoneType"),
])
def test_invalid_options_are_refused_and_never_stick(widget, causal, name, value, error, match):
    widget.rollout_fusion, widget.discard_ratio = "max", 0.5
    before = decode(widget.rollout_data["values"]).copy()
    with pytest.raises(error, match=match):
        setattr(widget, name, value)
    assert (widget.rollout_fusion, widget.discard_ratio) == ("max", 0.5)
    np.testing.assert_array_equal(decode(widget.rollout_data["values"]), before)
    with pytest.raises(error, match=match):
        AttentionWidget(causal, background=False, **{name: value})
    # the page's values: reported in the status line, nothing of the batch sticks, the page is resynced
    widget.set_state({"rollout_fusion": "min", name: value} if name == "discard_ratio"
                     else {"discard_ratio": 0.25, name: value})
    assert (widget.rollout_fusion, widget.discard_ratio) == ("max", 0.5)
    assert widget.error.startswith("the page set ") and error.__name__ in widget.error
    widget.set_state({"discard_ratio": 0.25})  # a good value clears the error
    assert widget.error == "" and widget.discard_ratio == 0.25


def test_integers_and_numpy_numbers_are_ratios(widget):
    widget.discard_ratio = 0
    assert widget.discard_ratio == 0.0 and isinstance(widget.discard_ratio, float)
    widget.discard_ratio = np.float32(0.5)
    assert widget.discard_ratio == 0.5 and type(widget.discard_ratio) is float


def test_cross_attention_refuses_the_options_as_it_refuses_rollout():
    s2s = make_seq2seq()
    widget = AttentionWidget(s2s, background=False)  # opens on cross
    with pytest.raises(ArgumentError, match=NO_ROLLOUT):
        widget.rollout_fusion = "max"
    with pytest.raises(ArgumentError, match=NO_ROLLOUT):
        widget.discard_ratio = 0.9
    with pytest.raises(ArgumentError, match=NO_ROLLOUT):
        AttentionWidget(s2s, background=False, rollout_fusion="max")
    widget.rollout_fusion = "mean"  # the value it has: nothing changes, nothing refused
    assert (widget.rollout_fusion, widget.discard_ratio) == ("mean", 0.0)
    widget.set_state({"discard_ratio": 0.5})
    assert widget.discard_ratio == 0.0 and "cross-attention has no rollout" in widget.error
    # set on a part with rollout, the options stay through the cross part and apply again after it
    widget.part = "encoder"
    widget.rollout_fusion, widget.discard_ratio, widget.view = "max", 0.5, "rollout"
    np.testing.assert_allclose(decode(widget.rollout_data["values"]), expected_row(s2s.encoder, 0, "max", 0.5),
                               atol=1e-6)
    widget.part = "cross"
    assert widget.rollout_fusion == "max" and widget.status == "cross: layer 1, mean of heads"
    widget.part = "decoder"
    assert widget.view == "heatmap"  # the cross part had no rollout view
    widget.view = "rollout"
    n = len(TARGET)
    np.testing.assert_allclose(decode(widget.rollout_data["values"]), expected_row(s2s.decoder, n - 1, "max", 0.5),
                               atol=1e-6)
    widget.close()
    encoder = AttentionWidget(s2s, part="encoder", background=False, rollout_fusion="min", discard_ratio=0.2)
    np.testing.assert_allclose(encoder.rollout_values(2), expected_row(s2s.encoder, 2, "min", 0.2), atol=1e-9)
    encoder.close()


# -- inputs: a seq2seq model's output, attention arrays with key_tokens ------------------------------------
def _output(s2s):
    from transformers.modeling_outputs import Seq2SeqLMOutput

    def stack(cap):
        return tuple(torch.from_numpy(np.ascontiguousarray(cap.head_patterns(layer)))[None]
                     for layer in range(cap.num_layers))

    return Seq2SeqLMOutput(encoder_attentions=stack(s2s.encoder), decoder_attentions=stack(s2s.decoder),
                           cross_attentions=stack(s2s.cross))


def test_a_seq2seq_output_opens_with_its_parts():
    s2s = make_seq2seq()
    out = _output(s2s)
    widget = AttentionWidget(out, tokens=TARGET, key_tokens=SOURCE, background=False)
    assert widget.parts == ["encoder", "decoder", "cross"] and widget.part == "cross"
    assert widget.tokens == TARGET and widget.key_tokens == SOURCE and widget.is_cross
    assert isinstance(widget.capture, Seq2SeqCapture)
    np.testing.assert_allclose(decode(widget.heatmap_data["matrix"]), s2s.cross.pattern(1), atol=1e-3)
    widget.part = "encoder"
    assert widget.tokens == widget.key_tokens == SOURCE and not widget.is_causal
    widget.rollout_fusion, widget.view = "max", "rollout"
    np.testing.assert_allclose(decode(widget.rollout_data["values"]),
                               expected_row(s2s.encoder, 0, "max", 0.0), atol=1e-5)
    widget.part = "decoder"
    assert widget.tokens == TARGET and widget.is_causal
    widget.close()
    # without token strings: positions
    bare = AttentionWidget(out, background=False)
    assert bare.tokens == [str(i) for i in range(len(TARGET))] and bare.key_tokens == [str(j) for j in range(len(SOURCE))]
    bare.close()
    with pytest.raises(ArgumentError, match=r"key_tokens has 2 strings but the source \(encoder\) has 8 tokens"):
        AttentionWidget(out, tokens=TARGET, key_tokens=["a", "b"], background=False)
    with pytest.raises(ArgumentError, match=r"tokens has 8 strings but the target \(decoder\) has 6 tokens"):
        AttentionWidget(out, tokens=SOURCE, key_tokens=TARGET, background=False)
    # show() takes it too
    explorer = attnwidget.show(out, tokens=TARGET, key_tokens=SOURCE, background=False)
    assert explorer.widget.part == "cross" and explorer.widget.key_tokens == SOURCE
    assert "(cross)" in explorer.map_figure.title
    explorer.widget.close()


def test_key_tokens_make_attention_arrays_cross_attention():
    s2s = make_seq2seq()
    cross = np.stack([s2s.cross.head_patterns(layer) for layer in range(s2s.cross.num_layers)])  # [L, H, 6, 8]
    widget = AttentionWidget(cross, tokens=TARGET, key_tokens=SOURCE, background=False)
    assert widget.is_cross and widget.part == "" and widget.parts == []
    assert widget.tokens == TARGET and widget.key_tokens == SOURCE
    assert widget.views == ["heatmap", "text", "lines"]  # no rollout, no graph
    np.testing.assert_allclose(decode(widget.heatmap_data["matrix"]), cross[1].mean(0), atol=1e-3)
    with pytest.raises(ArgumentError, match=NO_ROLLOUT):
        widget.rollout_fusion = "max"
    with pytest.raises(ArgumentError, match=NO_ROLLOUT):
        widget.view = "rollout"
    widget.close()
    # an output_attentions tuple of [1, H, q, k] tensors, through show()
    attentions = tuple(torch.from_numpy(layer)[None] for layer in cross)
    explorer = attnwidget.show(attentions, tokens=TARGET, key_tokens=SOURCE, background=False)
    assert explorer.widget.is_cross and explorer.widget.key_tokens == SOURCE
    explorer.widget.close()
    # a square array with key_tokens: cross-attention too (a source as long as the target)
    square = np.stack([s2s.encoder.head_patterns(layer) for layer in range(2)])
    other = [f"s{j}" for j in range(len(SOURCE))]
    square_widget = AttentionWidget(square, tokens=SOURCE, key_tokens=other, background=False)
    assert square_widget.is_cross and square_widget.key_tokens == other and "rollout" not in square_widget.views
    square_widget.close()


def test_key_tokens_relabel_a_cross_capture_and_are_refused_for_self_attention(causal):
    cross = make_capture(TARGET, causal=False, key_tokens=SOURCE, layers=2, heads=2, seed=3)
    labels = [f"<{t}>" for t in SOURCE]
    widget = AttentionWidget(cross, key_tokens=labels, background=False)
    assert widget.key_tokens == labels and widget.tokens == TARGET
    widget.close()
    with pytest.raises(ArgumentError, match="key_tokens must hold one string per key position: 8; got 2"):
        AttentionWidget(cross, key_tokens=["a", "b"], background=False)
    with pytest.raises(ArgumentError, match="key_tokens= names the keys of cross-attention"):
        AttentionWidget(causal, key_tokens=list(causal.tokens), background=False)
    with pytest.raises(ArgumentError, match="tokens= and key_tokens= relabel a plain capture"):
        AttentionWidget(make_seq2seq(), key_tokens=SOURCE, background=False)
    with pytest.raises(TypeError, match="takes its tokens from the tokenizer"):
        attnwidget.show(object(), object(), "text", key_tokens=SOURCE)
