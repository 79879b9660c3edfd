"""The Python side of the widget: reductions, traits, observers, messages, and the explorer."""

from __future__ import annotations

import numpy as np
import pytest

import attnwidget
from attnwidget import reduce as r
from attnwidget.widget import AttentionWidget
from helpers import tiny_model


def decode(wire: dict) -> np.ndarray:
    return np.frombuffer(wire["buffer"], dtype=wire["dtype"]).reshape(wire["shape"])


@pytest.fixture(scope="module")
def cap(byte_tokenizer):
    text = "The cat sat on the mat. The dog sat on the log. 猫坐在垫子上。"
    return attnwidget.capture(tiny_model("llama"), byte_tokenizer, text)


def test_max_pool_and_uint8():
    x = np.arange(25, dtype=np.float32).reshape(5, 5)
    np.testing.assert_array_equal(r.max_pool(x, 2), [[6, 8, 9], [16, 18, 19], [21, 23, 24]])
    assert r.max_pool(x, 1) is x
    u = r.to_uint8(np.array([[[0.0, 0.5], [0.25, 1.0]], [[0, 0], [0, 0]]], dtype=np.float32))
    assert u[0].tolist() == [[0, 128], [64, 255]] and not u[1].any()


def test_thumbnails_equal_pooled_patterns(cap, monkeypatch):
    from attnwidget import _engine as E

    full = cap.patterns()
    monkeypatch.setattr(E, "TILE_SIDE", 16)  # tiles pooled 2 x 2 ...
    monkeypatch.setattr(E, "THUMB_SIZE", 8)  # ... and thumbnails pooled again from them
    monkeypatch.setattr(E, "TILE_ELEMENTS", 4 * cap.num_tokens)  # several row blocks per layer
    cap.__dict__.pop("_summaries", None)
    thumbs, means = r.thumbnails(cap)
    from attnwidget._engine import tile_factor

    f1 = tile_factor(cap.num_tokens, 16)
    f = f1 * r.pool_factor(-(-cap.num_tokens // f1), 8)
    np.testing.assert_array_equal(thumbs, r.to_uint8(r.max_pool(full, f)))
    np.testing.assert_array_equal(means, r.to_uint8(r.max_pool(full.mean(axis=1), f)))
    # a Capture and the equivalent array reduce to the same bytes
    np.testing.assert_array_equal(r.thumbnails(full)[0], thumbs)
    cap.__dict__.pop("_summaries", None)


def test_heatmap_tile_window_and_pooling(cap):
    source = r.engine(cap)
    tile = r.heatmap_tile(source, 1, 2, row0=3, col0=1, rows=5, cols=4)
    np.testing.assert_allclose(decode(tile["matrix"]), cap.pattern(1, 2)[3:8, 1:5], atol=1e-3)
    assert (tile["row0"], tile["col0"], tile["n_rows"], tile["n_cols"]) == (3, 1, 5, 4)
    pooled = r.heatmap_tile(source, 0, None, side=4)
    f = r.pool_factor(cap.num_tokens, 4)
    assert decode(pooled["matrix"]).shape == (4, 4) and decode(pooled["matrix"]).dtype == np.float16
    np.testing.assert_allclose(decode(pooled["matrix"]), r.max_pool(cap.pattern(0), f), atol=1e-3)
    # the whole sequence at the default side is the fused pass's stored tile
    from attnwidget._summary import summary_for

    stored = r.heatmap_tile(source, 2, 1, summary=summary_for(cap))
    np.testing.assert_allclose(decode(stored["matrix"]), cap.pattern(2, 1), atol=1e-3)


def test_token_lines_both_directions(cap):
    source = r.engine(cap)
    full = cap.patterns()
    row = r.token_lines(source, 2, None, 5, "from")
    np.testing.assert_allclose(decode(row["weights"]), full[2, :, 5], atol=1e-6)
    col = r.token_lines(source, 2, 1, 5, "to")
    np.testing.assert_allclose(decode(col["weights"]), full[2, [1], :, 5], atol=1e-6)
    assert col["heads"] == [1] and row["heads"] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="direction must be 'from' or 'to'"):
        r.token_lines(source, 0, 0, 0, "up")


def test_graph_thresholds_edges_and_windows():
    m = np.array([[1.0, 0, 0], [0.7, 0.3, 0], [0.05, 0.5, 0.45]])
    graph, pos = r.attention_graph(m, 0.2)
    assert sorted(graph.edges()) == [(0, 0), (1, 0), (1, 1), (2, 1), (2, 2)]
    assert pos.shape == (3, 2) and np.abs(pos).max() == pytest.approx(1.0)
    # the layout does not depend on the threshold: nodes stay where they are
    np.testing.assert_array_equal(r.attention_graph(m, 0.6)[1], pos)
    assert r.graph_window(40, None) == slice(0, 40)
    assert r.graph_window(500, None) == slice(452, 500)
    assert r.graph_window(500, 10) == slice(0, 48)


def test_graph_data_says_its_window_and_keeps_its_layout(cap):
    layouts = {}
    a = r.graph_data(cap, 1, None, 0.05, focus=cap.num_tokens - 1, layouts=layouts)
    b = r.graph_data(cap, 1, None, 0.4, focus=cap.num_tokens - 1, layouts=layouts)
    np.testing.assert_array_equal(decode(a["pos"]), decode(b["pos"]))
    assert len(decode(b["edges"])) < len(decode(a["edges"]))
    assert (a["start"], a["stop"], a["total"]) == (0, cap.num_tokens, cap.num_tokens)


def test_widget_initial_state_and_observers(cap):
    widget = AttentionWidget(cap)
    assert (widget.num_layers, widget.num_heads, widget.layer, widget.head) == (3, 4, 1, None)
    assert widget.tokens == cap.tokens and widget.is_causal
    np.testing.assert_allclose(decode(widget.heatmap_data["matrix"]), cap.pattern(1), atol=1e-3)
    widget.head = 2
    np.testing.assert_allclose(decode(widget.heatmap_data["matrix"]), cap.pattern(1, 2), atol=1e-3)
    assert widget.status == "layer 1, head 2"
    widget.hovered_token = 4
    np.testing.assert_allclose(decode(widget.lines_data["weights"]), cap.pattern(1, 2)[[4]], atol=1e-6)
    assert widget.graph_data == {}
    widget.view = "graph"
    edges = decode(widget.graph_data["edges"])
    weights = decode(widget.graph_data["weights"])
    assert len(edges) and (weights > widget.threshold).all()
    widget.view = "rollout"
    assert widget.rollout_data["row"] == 4
    np.testing.assert_allclose(decode(widget.rollout_data["values"]), attnwidget.rollout(cap)[4], atol=1e-6)
    widget.hovered_token = None
    widget.selected_tokens = [7, 2, 7]
    assert widget.selected_tokens == [2, 7] and widget.rollout_data["row"] == 7
    flow = widget.compute_flow()
    np.testing.assert_allclose(decode(widget.rollout_data["flow"]), flow, atol=1e-6)


def test_widget_rejects_bad_selection(cap):
    widget = AttentionWidget(cap)
    with pytest.raises(IndexError, match=r"layer 3 is out of range: there are 3 layers \(0..2"):
        widget.layer = 3
    with pytest.raises(IndexError, match="head 4 is out of range.*mean over heads"):
        widget.head = 4
    with pytest.raises(IndexError, match="hovered_token 999 is out of range"):
        widget.hovered_token = 999
    with pytest.raises(IndexError, match=r"selected_tokens\[0\] 999 is out of range"):
        widget.selected_tokens = [999]
    widget.selected_tokens = [-1]  # Python's indexing: the last token
    assert widget.selected_tokens == [cap.num_tokens - 1]
    with pytest.raises(ValueError, match="tokens must hold one string per position: .*; got 3"):
        AttentionWidget(cap.patterns(), tokens=["a", "b", "c"])


def test_tile_request_is_answered_with_bytes(cap, monkeypatch):
    widget = AttentionWidget(cap, head=0)
    sent = []
    monkeypatch.setattr(widget, "send", lambda content, buffers=None: sent.append((content, buffers)))
    widget._on_message(widget, {"type": "tile_request", "row0": 2, "col0": 0, "rows": 6, "cols": 3}, [])
    (content, buffers), = sent
    assert content["type"] == "tile" and (content["row0"], content["n_rows"], content["n_cols"]) == (2, 6, 3)
    tile = np.frombuffer(buffers[0], dtype=content["dtype"]).reshape(content["shape"])
    np.testing.assert_allclose(tile, cap.pattern(1, 0)[2:8, :3], atol=1e-3)
    widget._on_message(widget, {"type": "lines_hover", "token": 3, "direction": "to"}, [])
    assert widget.lines_data["direction"] == "to" and widget.lines_data["token"] == 3


def test_save_png_writes_what_the_page_sends(cap, tmp_path, monkeypatch):
    widget = AttentionWidget(cap)
    sent = []
    monkeypatch.setattr(widget, "send", lambda content, buffers=None: sent.append(content))
    widget._on_message(widget, {"type": "painted"}, [])  # a page shows the widget (save_png needs one)
    widget.save_png(tmp_path / "view.png")
    request = sent[0]
    assert request["type"] == "png_request" and request["view"] == "current" and request["scale"] == 2
    png = b"\x89PNG\r\n\x1a\n" + b"rest"
    widget._on_message(widget, {"type": "png", "request_id": request["request_id"]}, [memoryview(png)])
    assert (tmp_path / "view.png").read_bytes() == png and widget.status.startswith("saved")


def test_no_json_numbers_cross_the_wire(cap):
    state = AttentionWidget(cap).get_state()
    for name in ("grid_data", "heatmap_data", "lines_data", "graph_data", "rollout_data"):
        for key, value in state[name].items():
            assert not isinstance(value, (list, tuple)) or key in ("heads",), (name, key)


def test_explorer_links_bqplot_and_widget(cap):
    explorer = attnwidget.show(cap)
    widget = explorer.widget
    explorer.metric_map.selected = [[2, 3]]
    assert (widget.layer, widget.head) == (2, 3)
    widget.layer, widget.head = 0, 1
    assert np.asarray(explorer.metric_map.selected).tolist() == [[0, 1]]
    assert explorer.layer_marker.x.tolist() == [0]
    explorer.wait()  # the panels fill in as the background pass finishes layers
    np.testing.assert_allclose(explorer.metric_map.color, attnwidget.metrics.entropy(cap), atol=1e-6)
    explorer.metric.value = "sink_score"
    np.testing.assert_allclose(explorer.layer_line.y, attnwidget.metrics.sink_score(cap).mean(axis=1))
    assert repr(explorer).startswith("Explorer(AttentionWidget(")


def test_explorer_accepts_the_pages_map_selection(cap):
    """A click on the metric map arrives as nested lists (bqplot/bqplot#1632 raised on them)."""
    explorer = attnwidget.show(cap)
    explorer.metric_map.set_state({"selected": [[1, 2]]})  # what the page sends
    assert (explorer.widget.layer, explorer.widget.head) == (1, 2)
    assert explorer.metric_map.selected.tolist() == [[1, 2]]
    explorer.metric_map.set_state({"selected": None})
    assert (explorer.widget.layer, explorer.widget.head) == (1, 2)


def test_show_argument_errors(cap):
    with pytest.raises(TypeError, match=r"show\(model, tokenizer, text\) or show\(capture\)"):
        attnwidget.show(cap, None, "text")


def test_png_error_reply_is_reported(cap, tmp_path, monkeypatch):
    widget = AttentionWidget(cap)
    sent = []
    monkeypatch.setattr(widget, "send", lambda content, buffers=None: sent.append(content))
    widget._on_message(widget, {"type": "painted"}, [])  # a page shows the widget (save_png needs one)
    widget.save_png(tmp_path / "x.png")
    widget._on_message(widget, {"type": "png", "request_id": sent[0]["request_id"], "error": "toBlob failed"}, [])
    assert "failed in the page: toBlob failed" in widget.error and not (tmp_path / "x.png").exists()


def test_long_sequences_compute_rollout_rows_on_click_only(cap, monkeypatch):
    import attnwidget.widget as module

    monkeypatch.setattr(module, "ROLLOUT_MATRIX_TOKENS", 4)  # pretend the capture is long
    widget = AttentionWidget(cap, view="rollout")
    widget.wait()  # long inputs: rows are computed on the widget's worker thread
    natural = cap.num_tokens - 1
    assert widget.rollout_data["row"] == natural
    np.testing.assert_allclose(decode(widget.rollout_data["values"]), attnwidget.rollout(cap)[natural], atol=1e-6)
    widget.hovered_token = 3  # a hover does not start a pass over every layer
    assert widget.rollout_data["row"] == natural and "click a token" in widget.status
    widget.hovered_token = None
    widget.selected_tokens = [3]
    widget.wait()
    assert widget.rollout_data["row"] == 3
    np.testing.assert_allclose(decode(widget.rollout_data["values"]), attnwidget.rollout(cap)[3], atol=1e-6)
    assert not widget._data._matrices  # the n x n matrix was never built


def test_heatmap_can_show_rollout(cap, monkeypatch):
    widget = AttentionWidget(cap, head=1)
    widget.heatmap_kind = "rollout"
    np.testing.assert_allclose(decode(widget.heatmap_data["matrix"]), attnwidget.rollout(cap), atol=1e-3)
    assert widget.status.endswith("heatmap: rollout (mean of heads)")
    sent = []
    monkeypatch.setattr(widget, "send", lambda content, buffers=None: sent.append((content, buffers)))
    widget._on_message(widget, {"type": "tile_request", "row0": 4, "col0": 2, "rows": 5, "cols": 3}, [])
    (content, buffers), = sent
    tile = np.frombuffer(buffers[0], dtype=content["dtype"]).reshape(content["shape"])
    np.testing.assert_allclose(tile, attnwidget.rollout(cap)[4:9, 2:5], atol=1e-3)
    widget.heatmap_kind = "attention"
    np.testing.assert_allclose(decode(widget.heatmap_data["matrix"]), cap.pattern(1, 1), atol=1e-3)
    import attnwidget.widget as module

    monkeypatch.setattr(module, "ROLLOUT_MATRIX_TOKENS", 4)
    with pytest.raises(ValueError, match="rollout heatmap needs the whole .* Use the rollout view"):
        widget.heatmap_kind = "rollout"
