"""The widget over an encoder-decoder capture: one part at a time (encoder, decoder, cross)."""

from __future__ import annotations

import numpy as np
import pytest
from widget_captures import SOURCE, TARGET, make_capture, make_seq2seq

import attnwidget
from attnwidget import _engine
from attnwidget.errors import ArgumentError
from attnwidget.widget import AttentionWidget

NO_ROLLOUT = r"cross-attention has no rollout on its own.*attnwidget does not invent one across parts"


def decode(wire: dict) -> np.ndarray:
    return np.frombuffer(wire["buffer"], dtype=wire["dtype"]).reshape(wire["shape"])


@pytest.fixture(scope="module")
def s2s():
    return make_seq2seq()


@pytest.fixture
def widget(s2s):
    w = AttentionWidget(s2s, background=False)
    yield w
    w.close()


def test_opens_on_cross_attention_with_both_token_lists(widget, s2s):
    assert widget.parts == ["encoder", "decoder", "cross"] and widget.part == "cross"
    assert widget.part_capture is s2s.cross and widget.capture is s2s
    assert widget.tokens == TARGET and widget.key_tokens == SOURCE
    assert (widget.num_layers, widget.num_heads, widget.is_causal) == (3, 4, False)
    # no graph (bipartite = lines), no rollout; the recorded queries and keys give the query-key view
    assert widget.views == ["heatmap", "text", "lines", "query-key"]
    tile = widget.heatmap_data
    assert (tile["n_rows"], tile["n_cols"]) == (len(TARGET), len(SOURCE))
    np.testing.assert_allclose(decode(tile["matrix"]), s2s.cross.pattern(1), atol=1e-3)
    assert widget.status == "cross: layer 1, mean of heads" and tile["title"].startswith("cross: layer 1")
    thumbs = decode(widget.grid_data["thumbs"])
    assert thumbs.shape[:2] == (3, 4) and thumbs.shape[2] < thumbs.shape[3]  # 6 x 8: a rectangle
    assert repr(widget).startswith("AttentionWidget(6 tokens, 3 layers x 4 heads, part='cross'")


@pytest.mark.parametrize("part, tokens, layers, causal", [("encoder", SOURCE, 2, False), ("decoder", TARGET, 3, True)])
def test_switching_parts_pushes_their_shapes_and_tokens(widget, s2s, part, tokens, layers, causal):
    widget.layer, widget.head = 2, 3
    widget.hovered_token, widget.selected_tokens = 4, [1, 2]
    widget.part = part
    assert widget.tokens == tokens and widget.key_tokens == tokens
    assert (widget.num_layers, widget.is_causal) == (layers, causal)
    assert widget.layer == min(2, layers - 1) and widget.head == 3  # clamped into the part
    assert widget.hovered_token is None and widget.selected_tokens == []
    assert "graph" in widget.views and "rollout" in widget.views
    n = len(tokens)
    tile = widget.heatmap_data
    assert (tile["n_rows"], tile["n_cols"]) == (n, n)
    np.testing.assert_allclose(decode(tile["matrix"]), s2s.parts[part].pattern(widget.layer, 3), atol=1e-3)
    assert decode(widget.grid_data["thumbs"]).shape[:2] == (layers, 4)
    assert widget.status == f"{part}: layer {widget.layer}, head 3"
    widget.view = "rollout"  # offered within a part
    np.testing.assert_allclose(decode(widget.rollout_data["values"]),
                               attnwidget.rollout(s2s.parts[part])[widget._focus()], atol=1e-6)
    widget.part = "cross"  # the rollout view falls back to the heatmap
    assert widget.view == "heatmap" and widget.tokens == TARGET and widget.key_tokens == SOURCE
    assert (widget.heatmap_data["n_rows"], widget.heatmap_data["n_cols"]) == (len(TARGET), len(SOURCE))


def test_a_head_the_part_lacks_becomes_the_mean():
    from attnwidget.seq2seq import Seq2SeqCapture

    s2s = Seq2SeqCapture(encoder=make_capture(SOURCE, causal=False, heads=2, seed=1),
                         decoder=make_capture(TARGET, causal=True, heads=4, seed=2),
                         cross=make_capture(TARGET, causal=False, key_tokens=SOURCE, heads=4, seed=3))
    widget = AttentionWidget(s2s, head=3, background=False)
    widget.part = "encoder"
    assert (widget.num_heads, widget.head) == (2, None)
    np.testing.assert_allclose(decode(widget.heatmap_data["matrix"]), s2s.encoder.pattern(1), atol=1e-3)
    widget.close()


def test_cross_lines_join_target_rows_to_source_columns(widget, s2s):
    widget.view = "lines"
    widget.hovered_token = 2  # a target token: its row over the 8 source tokens
    lines = widget.lines_data
    assert lines["direction"] == "from" and lines["token"] == 2
    np.testing.assert_allclose(decode(lines["weights"]), s2s.cross.head_patterns(1)[:, 2], atol=1e-6)
    widget._on_message(widget, {"type": "lines_hover", "token": 7, "direction": "to"}, [])  # source token 7
    lines = widget.lines_data
    assert lines["direction"] == "to" and decode(lines["weights"]).shape == (4, len(TARGET))
    np.testing.assert_allclose(decode(lines["weights"]), s2s.cross.head_patterns(1)[:, :, 7], atol=1e-6)
    assert widget.error == ""
    widget._on_message(widget, {"type": "lines_hover", "token": 8, "direction": "to"}, [])
    assert "token 8 is out of range: there are 8 key tokens" in widget.error
    widget.hovered_token = 5  # a hover from another view: the target token's row again
    assert widget.lines_data["direction"] == "from" and decode(widget.lines_data["weights"]).shape == (4, len(SOURCE))


def test_cross_text_colours_the_source_by_the_focused_target_row(widget, s2s):
    widget.view, widget.head = "text", 1
    widget.selected_tokens = [3]
    text = widget.text_data
    assert text["token"] == 3 and "cross-attention of target token 3 over the source" in text["note"]
    np.testing.assert_allclose(decode(text["values"]), s2s.cross.pattern(1, 1, rows=[3])[0], atol=1e-6)
    assert decode(text["values"]).shape == (len(SOURCE),)


def test_cross_rollout_is_refused_with_the_reason(widget):
    for name, value in (("view", "rollout"), ("heatmap_kind", "rollout"), ("text_source", "rollout"),
                        ("text_source", "flow")):
        with pytest.raises(ArgumentError, match=NO_ROLLOUT):
            setattr(widget, name, value)
    for call in (widget.compute_flow, widget.rollout_matrix, lambda: widget.rollout_values(0)):
        with pytest.raises(ArgumentError, match=NO_ROLLOUT):
            call()
    with pytest.raises(ArgumentError, match="its bipartite picture is the lines view"):
        widget.view = "graph"
    assert (widget.view, widget.heatmap_kind, widget.text_source) == ("heatmap", "attention", "attention")
    widget.set_state({"view": "rollout"})  # from the page: reported, not raised, nothing sticks
    assert widget.view == "heatmap" and "does not invent one across parts" in widget.error


def test_rollout_settings_fall_back_when_switching_to_cross(s2s):
    widget = AttentionWidget(s2s, part="decoder", background=False)
    widget.view, widget.text_source, widget.heatmap_kind = "text", "rollout", "rollout"
    widget.part = "cross"
    assert (widget.view, widget.text_source, widget.heatmap_kind) == ("text", "attention", "attention")
    assert widget.text_data["note"].startswith("cross-attention of target token")
    widget.close()


def test_the_page_switches_parts_and_bad_parts_are_reported(widget, s2s):
    widget.set_state({"part": "encoder"})
    assert widget.part == "encoder" and widget.tokens == SOURCE and widget.error == ""
    widget.set_state({"part": "middle"})
    assert widget.part == "encoder" and "part must be one of" in widget.error
    with pytest.raises(ValueError, match="part must be one of"):
        widget.part = "middle"


def test_a_part_passed_over_is_not_passed_again(s2s, monkeypatch):
    fresh = make_seq2seq()  # summaries are cached on the captures: start from none
    calls = []
    original = _engine.Engine.summarize
    monkeypatch.setattr(_engine.Engine, "summarize",
                        lambda self, layer, *a, **k: calls.append((self.obj, layer)) or original(self, layer, *a, **k))
    widget = AttentionWidget(fresh, background=True)
    assert widget.wait(30) and widget.layers_done == 3
    widget.part = "encoder"
    assert widget.wait(30) and widget.layers_done == 2 and widget.progress == ""
    assert decode(widget.grid_data["ready"]).tolist() == [1, 1]
    before = len(calls)
    widget.part = "cross"
    widget.part = "encoder"
    assert widget.wait(30) and len(calls) == before  # both parts were done: nothing recomputed
    assert sorted(layer for obj, layer in calls if obj is fresh.cross) == [0, 1, 2]
    assert sorted(layer for obj, layer in calls if obj is fresh.encoder) == [0, 1]
    widget.close()


def test_a_plain_capture_has_no_parts(s2s):
    widget = AttentionWidget(s2s.decoder, background=False)
    assert (widget.part, widget.parts) == ("", [])
    assert widget.key_tokens == widget.tokens == TARGET
    with pytest.raises(ArgumentError, match="part must be '' for this capture"):
        widget.part = "cross"
    with pytest.raises(ArgumentError, match="part='cross' is for an encoder-decoder capture"):
        AttentionWidget(s2s.decoder, part="cross")
    with pytest.raises(ArgumentError, match="tokens= and key_tokens= relabel a plain capture"):
        AttentionWidget(s2s, tokens=["x"] * 6)
    widget.close()


def test_the_explorer_follows_the_part(s2s):
    explorer = attnwidget.show(s2s, background=False)
    assert np.asarray(explorer.metric_map.color).shape == (3, 4)
    assert "(cross)" in explorer.map_figure.title
    explorer.widget.part = "encoder"
    assert np.asarray(explorer.metric_map.color).shape == (2, 4)
    assert list(explorer.metric_map.row) == [0, 1] and len(explorer.layer_line.y) == 2
    np.testing.assert_allclose(explorer.metric_map.color, attnwidget.metrics.entropy(s2s.encoder), atol=1e-6)
    explorer.widget.close()


def test_no_json_numbers_cross_the_wire_for_any_part(widget):
    for part in ("cross", "encoder", "decoder"):
        widget.part = part
        state = widget.get_state()
        for name in ("grid_data", "heatmap_data", "lines_data", "text_data"):
            for key, value in state[name].items():
                assert not isinstance(value, (list, tuple)) or key in ("heads",), (part, name, key)


def test_cross_attention_alone_is_still_a_rectangle(s2s, monkeypatch):
    widget = AttentionWidget(s2s.cross, background=False)  # a plain capture: no parts, still cross-attention
    assert (widget.part, widget.parts, widget.is_cross) == ("", [], True)
    assert widget.tokens == TARGET and widget.key_tokens == SOURCE
    assert widget.views == ["heatmap", "text", "lines", "query-key"]
    with pytest.raises(ArgumentError, match=NO_ROLLOUT):
        widget.heatmap_kind = "rollout"
    sent = []
    monkeypatch.setattr(widget, "send", lambda content, buffers=None: sent.append((content, buffers)))
    widget._on_message(widget, {"type": "tile_request", "row0": 1, "col0": 3, "rows": 3, "cols": 5}, [])
    (content, buffers), = sent  # a zoomed window of the rectangle
    assert (content["row0"], content["col0"], content["n_rows"], content["n_cols"]) == (1, 3, 3, 5)
    tile = np.frombuffer(buffers[0], dtype=content["dtype"]).reshape(content["shape"])
    np.testing.assert_allclose(tile, s2s.cross.pattern(1)[1:4, 3:8], atol=1e-3)
    widget.close()


def test_relabelled_self_attention_keeps_its_keys_in_step(s2s):
    widget = AttentionWidget(s2s.encoder, background=False)
    assert widget.is_cross is False
    widget.tokens = [t.upper() for t in SOURCE]
    assert widget.key_tokens == widget.tokens
    widget.close()


def test_a_real_t5_capture(byte_tokenizer):
    """capture(model, tokenizer, source, target=...) on a tiny random T5: every part in the widget."""
    from families import pair

    model, _ = pair("t5")
    cap = attnwidget.capture(model, byte_tokenizer, "the cat sat on the mat", target="a dog sat")
    widget = AttentionWidget(cap, background=False)
    assert widget.part == "cross" and widget.key_tokens == cap.encoder.tokens and widget.tokens == cap.decoder.tokens
    np.testing.assert_allclose(decode(widget.heatmap_data["matrix"]), cap.cross.pattern(1), atol=1e-3)
    for part in ("encoder", "decoder"):
        widget.part = part
        assert widget.tokens == cap.part(part).tokens and widget.is_causal == (part == "decoder")
        widget.view = "rollout"
        np.testing.assert_allclose(decode(widget.rollout_data["values"]),
                                   attnwidget.rollout(cap.part(part))[widget._focus()], atol=1e-6)
    widget.close()
    explorer = attnwidget.show(model, byte_tokenizer, "the cat sat on the mat", target="a dog sat", background=False)
    assert explorer.widget.part == "cross" and explorer.widget.tokens == cap.decoder.tokens
    explorer.widget.close()
    with pytest.raises(TypeError, match="show\\(capture\\) takes no target="):
        attnwidget.show(cap, target="x")


def test_a_failed_switch_leaves_the_part_shown(s2s, monkeypatch):
    widget = AttentionWidget(s2s, part="encoder", background=False)
    original = AttentionWidget._grid

    def failing(self):
        if self._state.name == "decoder":
            raise RuntimeError("no thumbnails")
        return original(self)

    monkeypatch.setattr(AttentionWidget, "_grid", failing)
    widget.set_state({"part": "decoder"})  # from the page: reported, and the page is put back
    assert widget.part == "encoder" and widget.tokens == SOURCE and widget.num_layers == 2
    assert "no thumbnails" in widget.error
    np.testing.assert_allclose(decode(widget.heatmap_data["matrix"]), s2s.encoder.pattern(1), atol=1e-3)
    widget.close()
