"""The comparison view's Python side (attnwidget.compare / ComparisonWidget): every panel's data is the
pattern engine's reduction of its own capture, the colour scale is shared, the difference heatmap is
panel b minus panel a, the selection is validated, and compare_templates / compare_languages show it."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import attnwidget
from attnwidget import _compare_data as cd
from attnwidget import reduce as r
from attnwidget._summary import summary_for
from attnwidget.compare import ComparisonWidget
from attnwidget.errors import ArgumentError, ArgumentTypeError, AttnwidgetError, OutOfRangeError
from widget_captures import make_capture, make_seq2seq

A = ["▁The", "▁cat", "▁sat", "▁on", "▁the", "▁mat", "."]
B = ["▁The", "▁dog", "▁sat", "▁on", "▁the", "▁log", "."]
C = ["▁A", "▁bird", "▁sang", "."]


def decode(wire: dict) -> np.ndarray:
    return np.frombuffer(wire["buffer"], dtype=wire["dtype"]).reshape(wire["shape"])


@pytest.fixture(scope="module")
def caps():
    return {"cat": make_capture(A, causal=True, layers=3, heads=4, seed=1),
            "dog": make_capture(B, causal=True, layers=3, heads=4, seed=2),
            "bird": make_capture(C, causal=True, layers=3, heads=4, seed=3)}


@pytest.fixture
def w(caps):
    widget = ComparisonWidget(caps)
    yield widget
    widget.close()


def test_defaults(w):
    assert w.names == ["cat", "dog", "bird"]
    assert w.tokens == [A, B, C] and w.key_tokens == [A, B, C]
    assert (w.num_layers, w.num_heads, w.layer, w.head) == (3, 4, 1, None)
    assert w.causal == [True, True, True]
    assert w.pairs == [["cat", "dog"]] and w.difference == ["cat", "dog"]
    assert w.hovered_panel is None and w.hovered_token is None
    assert repr(w) == "ComparisonWidget(3 panels: cat, dog, bird; layer=1, head=mean)"
    assert w.status.startswith("layer 1, mean of heads; shared scale 0..")


def test_grids_equal_each_captures_thumbnails(w, caps):
    for grid, cap in zip(w.grid_data, caps.values()):
        thumbs, means = r.thumbnails(cap)
        np.testing.assert_array_equal(decode(grid["thumbs"]), thumbs)
        np.testing.assert_array_equal(decode(grid["layer_mean"]), means)
        assert decode(grid["ready"]).all()


@pytest.mark.parametrize("layer, head", [(1, None), (0, 2), (2, 3)])
def test_heatmaps_equal_each_captures_tiles(w, caps, layer, head):
    w.layer, w.head = layer, head
    panels = w.heatmap_data["panels"]
    assert [p["name"] for p in panels] == list(caps)
    for name, cap in caps.items():
        want = r.heatmap_tile(cap, layer, head, summary=summary_for(cap))
        got = panels[list(caps).index(name)]
        assert got["matrix"]["dtype"] == "float16"
        np.testing.assert_array_equal(decode(got["matrix"]), decode(want["matrix"]))
        assert {k: got[k] for k in ("n_rows", "n_cols", "n_queries", "n_keys")} == \
            {k: want[k] for k in ("n_rows", "n_cols", "n_queries", "n_keys")}
        # the tile is the capture's pattern (float16 rounding)
        np.testing.assert_allclose(w.heatmap(name), cap.pattern(layer, head), atol=1e-3)
    assert w.heatmap_data["title"] == f"layer {layer}, " + ("mean of heads" if head is None else f"head {head}")


def test_the_colour_scale_is_shared(w, caps):
    w.layer, w.head = 2, 1
    tiles = [decode(p["matrix"]).astype(np.float32) for p in w.heatmap_data["panels"]]
    assert w.heatmap_data["max"] == w.shared_max == max(float(t.max()) for t in tiles)
    assert w.heatmap_data["max_no_sink"] == max(float(t[:, 1:].max()) for t in tiles)
    assert w.shared_max == pytest.approx(max(float(c.pattern(2, 1).max()) for c in caps.values()), abs=1e-3)


@pytest.mark.parametrize("layer, head", [(1, None), (0, 3)])
def test_the_difference_is_b_minus_a(w, caps, layer, head):
    w.layer, w.head = layer, head
    expected = caps["dog"].pattern(layer, head) - caps["cat"].pattern(layer, head)
    got = decode(w.difference_data["matrix"])
    assert w.difference_data["matrix"]["dtype"] == "float32"
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_array_equal(w.difference_matrix(), got)
    assert w.difference_data["max_abs"] == pytest.approx(float(np.abs(expected).max()), abs=1e-6)
    assert w.difference_data["max_abs_no_sink"] == pytest.approx(float(np.abs(expected[:, 1:]).max()), abs=1e-6)
    assert (w.difference_data["a"], w.difference_data["b"]) == ("cat", "dog")
    # the other way round is its negative
    w.difference = ["dog", "cat"]
    np.testing.assert_allclose(w.difference_matrix(), -expected, atol=1e-6)
    w.difference = None
    assert w.difference_data == {} and w.difference_matrix() is None


def test_a_long_difference_is_pooled_by_signed_magnitude(caps):
    words = [f"▁w{i}" for i in range(40)]
    a = make_capture(words, causal=False, layers=2, heads=2, seed=4)
    b = make_capture(words, causal=False, layers=2, heads=2, seed=5)
    panels = cd.make_panels({"a": a, "b": b})
    out = cd.difference(panels[0], panels[1], 1, None, side=16)  # 3 tokens a cell
    full = b.pattern(1) - a.pattern(1)
    got = decode(out["matrix"])
    assert got.shape == (14, 14) and (out["n_rows"], out["n_cols"]) == (40, 40)
    padded = np.pad(full, [(0, 2), (0, 2)])
    for i in range(14):
        for j in range(14):
            cell = padded[3 * i:3 * i + 3, 3 * j:3 * j + 3].ravel()
            assert got[i, j] == pytest.approx(cell[np.argmax(np.abs(cell))], abs=1e-6)
    assert out["max_abs"] == pytest.approx(float(np.abs(full).max()), abs=1e-6)


def test_the_data_crosses_as_bytes(w):
    def numbers_in_lists(value):
        if isinstance(value, dict):
            return max((numbers_in_lists(v) for v in value.values()), default=0)
        if isinstance(value, (list, tuple)):
            floats = sum(isinstance(v, float) for v in value)
            return max([floats] + [numbers_in_lists(v) for v in value])
        return 0

    state = w.get_state()
    for name in ("grid_data", "heatmap_data", "difference_data"):
        assert numbers_in_lists(state[name]) == 0, name
    assert isinstance(w.heatmap_data["panels"][0]["matrix"]["buffer"], bytes)


def test_the_selection_is_settable_and_checked(w):
    w.hover("bird", 3)
    assert (w.hovered_panel, w.hovered_token) == ("bird", 3)
    w.hovered_panel = "cat"  # row 3 exists in cat too
    assert w.hovered_token == 3
    w.hover("cat", 6)
    w.hovered_panel = "bird"  # bird has 4 tokens: the row is dropped
    assert w.hovered_token is None
    w.hover(None, 6)  # no panel: a row of the longest panel, shown wherever it exists
    assert w.hovered_token == 6
    w.select("dog", -1)
    assert (w.selected_panel, w.selected_token) == ("dog", 6)
    w.head = "mean"
    assert w.head is None
    w.layer = -1
    assert w.layer == 2


@pytest.mark.parametrize("name, value, error", [
    ("layer", 3, OutOfRangeError), ("layer", 1.5, ArgumentTypeError), ("layer", None, ArgumentTypeError),
    ("head", 4, OutOfRangeError), ("head", "H1", ArgumentTypeError),
    ("hovered_panel", "fish", ArgumentError), ("hovered_panel", 0, ArgumentTypeError),
    ("hovered_token", 7, OutOfRangeError), ("selected_token", "1", ArgumentTypeError),
    ("difference", ["cat", "bird"], ArgumentError), ("difference", ["cat", "cat"], ArgumentError),
    ("difference", "cat", ArgumentTypeError), ("difference", ["cat", "fish"], ArgumentError),
    ("color_scale", "sqrt", ArgumentError),
])
def test_refused_values_raise_and_do_not_stick(w, name, value, error):
    before = getattr(w, name)
    with pytest.raises(error) as info:
        setattr(w, name, value)
    assert isinstance(info.value, AttnwidgetError)
    assert getattr(w, name) == before


def test_hover_checks_the_token_against_its_panel(w):
    with pytest.raises(OutOfRangeError, match="4 tokens in panel 'bird'"):
        w.hover("bird", 5)
    assert w.hovered_panel is None and w.hovered_token is None
    with pytest.raises(ArgumentError, match="as many tokens"):
        w.difference = ["bird", "dog"]


def test_the_page_sets_the_selection_and_a_refused_value_is_reported(w):
    w.set_state({"hovered_panel": "bird", "hovered_token": 2})
    assert (w.hovered_panel, w.hovered_token) == ("bird", 2)
    w.set_state({"layer": 0, "head": 1})
    assert (w.layer, w.head) == (0, 1)
    np.testing.assert_allclose(w.heatmap("dog"), make_capture(B, causal=True, layers=3, heads=4, seed=2).pattern(0, 1),
                               atol=1e-3)
    w.set_state({"hovered_panel": "bird", "hovered_token": 6})  # bird has 4 tokens
    assert (w.hovered_panel, w.hovered_token) == ("bird", 2) and "hovered_token 6 is out of range" in w.error
    w.set_state({"layer": 2})
    assert w.error == "" and w.layer == 2


def test_constructor_options(caps):
    w = ComparisonWidget(caps, layer=0, head=2, difference=None, color_scale="no_sink")
    assert (w.layer, w.head, w.difference, w.color_scale) == (0, 2, None, "no_sink")
    assert w.difference_data == {} and "(no_sink)" in w.status
    w2 = attnwidget.compare({"x": caps["dog"], "y": caps["cat"]}, difference=["x", "y"])
    np.testing.assert_allclose(w2.difference_matrix(), caps["cat"].pattern(1) - caps["dog"].pattern(1), atol=1e-6)
    with pytest.raises(OutOfRangeError):
        ComparisonWidget(caps, layer=5)
    with pytest.raises(ArgumentError):
        ComparisonWidget(caps, difference=["cat", "bird"])


def test_the_captures_are_checked(caps):
    with pytest.raises(ArgumentError, match="empty"):
        attnwidget.compare({})
    with pytest.raises(ArgumentTypeError, match="dict"):
        attnwidget.compare([caps["cat"]])
    with pytest.raises(ArgumentTypeError, match="must be a Capture"):
        attnwidget.compare({"a": caps["cat"], "b": np.zeros((2, 2, 3, 3))})
    with pytest.raises(ArgumentTypeError, match="encoder-decoder"):
        attnwidget.compare({"a": make_seq2seq()})
    other = make_capture(A, causal=True, layers=2, heads=4)
    with pytest.raises(ArgumentError, match="one model"):
        attnwidget.compare({"a": caps["cat"], "b": other})
    with pytest.raises(ArgumentError, match="unique"):
        attnwidget.compare({1: caps["cat"], "1": caps["dog"]})


def test_an_encoder_decoder_part_can_be_compared():
    s2s = make_seq2seq()
    w = attnwidget.compare({"decoder": s2s.decoder, "decoder again": s2s.decoder})
    assert w.difference == ["decoder", "decoder again"] and not w.difference_matrix().any()


def test_compare_templates_shows_the_comparison(caps, monkeypatch):
    result = attnwidget.compare_templates(captures={"cat": caps["cat"], "dog": caps["dog"]})
    assert set(result.captures) == {"cat", "dog"} and "captures" not in result.to_dict()
    shown = result.show(layer=0)
    assert isinstance(shown, ComparisonWidget) and shown.names == ["cat", "dog"] and shown.layer == 0
    assert attnwidget.compare(result).names == ["cat", "dog"]
    # outside a kernel: the table as text; in one: the widget, with the table as its text
    assert result._repr_mimebundle_() == {"text/plain": str(result)}
    monkeypatch.setattr(sys.modules["attnwidget.compare"], "in_kernel", lambda: True)
    bundle = result._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert data["text/plain"] == str(result)
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == result.widget.model_id
    assert result.widget is result.widget  # made once
    result.captures = None
    assert result._repr_mimebundle_() == {"text/plain": str(result)}
    with pytest.raises(ArgumentError, match="holds no captures"):
        result.show()


def test_compare_languages_shows_the_comparison(caps):
    result = attnwidget.compare_languages(captures={"en": caps["cat"], "xx": caps["bird"]}, top_k=2)
    assert list(result.captures) == ["en", "xx"]
    w = result.show(head=1)
    assert w.names == ["en", "xx"] and w.head == 1 and w.difference is None
    np.testing.assert_allclose(w.heatmap("xx"), caps["bird"].pattern(1, 1), atol=1e-3)


def test_compare_templates_from_texts_keeps_its_captures(byte_tokenizer):
    from helpers import tiny_model

    model = tiny_model("llama")
    result = attnwidget.compare_templates(model, byte_tokenizer, {"a": "The cat sat.", "b": "The dog sat."})
    w = result.show()
    assert w.names == ["a", "b"] and w.tokens == result.tokens
    for name, cap in result.captures.items():
        np.testing.assert_allclose(w.heatmap(name), cap.pattern(w.layer), atol=1e-3)
