"""The widget beyond weights (issue 13): measure="contribution", the query-key view and the routes view,
on the Python side (no browser): traits, the data they push, refusals, the page's messages."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import tiny_model
from widget_captures import make_seq2seq

import attnwidget
from attnwidget import widget as widget_module
from attnwidget.errors import ArgumentError, OutOfRangeError
from attnwidget.widget import AttentionWidget

TEXT = "The cat sat on the mat. The dog sat"


def decode(wire: dict) -> np.ndarray:
    return np.frombuffer(wire["buffer"], dtype=wire["dtype"]).reshape(wire["shape"])


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


@pytest.fixture(scope="module")
def cap(model, byte_tokenizer):
    return attnwidget.capture(model, byte_tokenizer, TEXT, values=True, residual=True)


@pytest.fixture(scope="module")
def plain(model, byte_tokenizer):
    return attnwidget.capture(model, byte_tokenizer, TEXT)


@pytest.fixture
def w(cap):
    widget = AttentionWidget(cap, background=False)
    yield widget
    widget.close()


# ---- measure ---------------------------------------------------------------------------------------

def test_a_capture_with_values_offers_both_measures_and_the_new_views(w, cap):
    assert w.measure == "attention" and w.measures == ["attention", "contribution"]
    assert w.views == ["heatmap", "text", "lines", "graph", "rollout", "query-key", "routes"]
    assert w.routes_target == cap.num_tokens - 1 and w.routes_threshold == 0.04 and w.query_key_cell is None


def test_switching_the_measure_keeps_the_selection_and_swaps_the_data(w, cap):
    w.layer, w.head, w.view = 1, 2, "text"
    w.hovered_token, w.selected_tokens = 3, [2, 5]
    attention = {name: dict(getattr(w, name)) for name in ("grid_data", "heatmap_data", "text_data")}
    w.measure = "contribution"
    assert (w.layer, w.head, w.view, w.hovered_token, w.selected_tokens) == (1, 2, "text", 3, [2, 5])
    heatmap = decode(w.heatmap_data["matrix"]).astype(np.float32)
    np.testing.assert_allclose(heatmap, cap.contributions(1, 2, normalize=True), atol=2e-3)
    assert not np.allclose(heatmap, decode(attention["heatmap_data"]["matrix"]), atol=1e-3)
    assert w.grid_data["thumbs"]["buffer"] != attention["grid_data"]["thumbs"]["buffer"]
    np.testing.assert_allclose(decode(w.text_data["values"]), cap.contributions(1, 2, rows=[3], normalize=True)[0],
                               atol=1e-6)
    assert w.text_data["note"] == "contribution of token 3, layer 1, head 2 (row share)"
    assert w.status == "layer 1, head 2; contribution ||αf(x)|| (row share)"
    assert w.heatmap_data["title"] == "layer 1, head 2 · contribution ||αf(x)|| (row share)"
    assert "measure='contribution'" in repr(w)
    w.head = None  # the head-mean slot is the layer measure ||sum_h alpha f||, not a mean
    np.testing.assert_allclose(decode(w.heatmap_data["matrix"]).astype(np.float32),
                               cap.contributions(1, None, normalize=True), atol=2e-3)
    assert w.status == "layer 1, all heads; contribution ||Σ αf(x)|| (row share)"
    w.measure = "attention"  # back: the kept state, the same data as before
    w.head = 2
    assert w.heatmap_data["matrix"]["buffer"] == attention["heatmap_data"]["matrix"]["buffer"]
    assert w.text_data == attention["text_data"] and w.status == "layer 1, head 2"
    assert w.part_capture is cap


def test_every_view_reads_the_measure(w, cap):
    w.measure = "contribution"
    w.layer, w.head = 2, 1
    w.view = "lines"
    w.hovered_token = 4
    np.testing.assert_allclose(decode(w.lines_data["weights"])[0], cap.contributions(2, 1, rows=[4], normalize=True)[0],
                               atol=1e-3)
    w.view = "rollout"
    assert w.rollout_data["label"] == "contribution rollout (layer measure)"
    expected = attnwidget.rollout(attnwidget.contributions.ContributionSource(cap))
    np.testing.assert_allclose(decode(w.rollout_data["values"]), expected[4], atol=1e-5)
    assert w.status.endswith("; strip: contribution rollout (layer measure)")
    w.view = "graph"
    assert w.graph_data["weights"]["shape"][0] > 0
    w.heatmap_kind = "rollout"
    assert w.heatmap_data["title"] == "contribution rollout (layer measure) over all layers"


def test_the_measure_is_refused_without_values(plain):
    widget = AttentionWidget(plain, background=False)
    try:
        assert widget.measures == ["attention"]
        assert "routes" not in widget.views and "query-key" in widget.views
        with pytest.raises(ArgumentError, match=r"values=True"):
            widget.measure = "contribution"
        assert widget.measure == "attention"
        with pytest.raises(ArgumentError, match=r"measure must be one of"):
            widget.measure = "flow"
        widget.set_state({"measure": "contribution"})  # from the page: reported, never raised in the comm
        assert "values=True" in widget.error and widget.measure == "attention"
    finally:
        widget.close()
    with pytest.raises(ArgumentError, match=r"values=True"):
        AttentionWidget(plain, measure="contribution", background=False)


def test_opening_on_contributions_and_the_background_pass(cap):
    widget = AttentionWidget(cap, measure="contribution", head=0)
    seen = []
    try:
        widget.observe(lambda change: seen.append(change["new"]), "progress")
        assert widget.measure == "contribution" and widget.wait(60)
        assert widget.layers_done == cap.num_layers and widget.progress == ""
        assert any(text.startswith("contribution layers") for text in seen), seen
        assert widget.heatmap_data["title"].startswith("layer 1, head 0 · contribution")
        widget.measure = "attention"  # its own pass, its own progress
        assert widget.wait(60) and widget.layers_done == cap.num_layers
    finally:
        widget.close()


def with_values(capture, seed: int = 0, hidden: int = 12):
    """Random values and output projections on a hand-built capture (what capture(values=True) records)."""
    gen = torch.Generator().manual_seed(seed)
    for record in capture._records:
        heads, keys = record.query.shape[0], record.key.shape[1]
        record.value = torch.randn(heads, keys, 8, generator=gen)
        record.out_proj = torch.randn(heads, 8, hidden, generator=gen)
    return capture


def test_the_measure_applies_part_by_part():
    s2s = make_seq2seq()
    with_values(s2s.decoder, 1)
    widget = AttentionWidget(s2s, background=False)
    try:
        assert widget.part == "cross" and widget.measures == ["attention"]
        widget.part = "decoder"
        assert widget.measures == ["attention", "contribution"] and "routes" in widget.views
        widget.layer, widget.head = 2, 1
        widget.measure = "contribution"
        np.testing.assert_allclose(decode(widget.heatmap_data["matrix"]).astype(np.float32),
                                   s2s.decoder.contributions(2, 1, normalize=True), atol=2e-3)
        assert widget.heatmap_data["title"].startswith("decoder: layer 2, head 1 · contribution")
        widget.part = "encoder"  # recorded without values: its attention shows
        assert widget.measure == "attention" and widget.measures == ["attention"]
        assert widget.heatmap_data["title"] == "encoder: layer 1, head 1"
    finally:
        widget.close()


# ---- query-key -------------------------------------------------------------------------------------

def test_query_key_data_matches_capture_query_key(w, cap):
    w.layer, w.head, w.view = 1, 3, "query-key"
    w.query_key_cell = [6, 2]
    qk = cap.query_key(1, 3, 6, 2)
    data = w.query_key_data
    for name in ("q", "k", "products"):
        np.testing.assert_array_equal(decode(data[name]), getattr(qk, name))
        assert data[name]["dtype"] == "float32"
    assert (data["layer"], data["head"], data["query"], data["key"]) == (1, 3, 6, 2)
    assert data["score"] == pytest.approx(qk.score) and data["weight"] == pytest.approx(qk.weight)
    assert data["scaling"] == qk.scaling and data["key_head"] == qk.key_head and data["note"] == ""
    assert data["dot"] * data["scaling"] == pytest.approx(qk.score, rel=1e-5)
    assert data["query_token"] == cap.tokens[6] and data["key_token"] == cap.tokens[2]
    w.layer = 2  # the bars follow the selection
    np.testing.assert_array_equal(decode(w.query_key_data["q"]), cap.query_key(2, 3, 6, 2).q)


def test_query_key_defaults_to_the_focused_token_and_its_strongest_key(w, cap):
    w.layer, w.head = 0, None
    w.view = "query-key"
    data = w.query_key_data
    assert data["head"] == 0 and "head 0" in data["note"] and "head 0" in w.status
    last = cap.num_tokens - 1
    assert data["query"] == last and data["key"] == int(np.argmax(cap.pattern(0, 0, rows=[last])[0]))
    w.hovered_token = 3
    assert w.query_key_data["query"] == 3
    assert repr(w.query_key()) == repr(cap.query_key(0, 0, 3, w.query_key_data["key"]))


def test_a_heatmap_click_sets_the_cell_on_any_view(w, cap):
    w.set_state({"selected_tokens": [5], "query_key_cell": [5, 1]})  # what the page sends on a cell click
    assert w.query_key_cell == [5, 1] and w.view == "heatmap"
    assert w.query_key_data["query"] == 5 and w.query_key_data["key"] == 1
    with pytest.raises(OutOfRangeError):
        w.query_key_cell = [0, cap.num_tokens]
    with pytest.raises(Exception, match=r"query_key_cell must be \[query, key\]"):
        w.query_key_cell = 3
    w.query_key_cell = [-1, 0]
    assert w.query_key_cell == [cap.num_tokens - 1, 0]


def test_no_query_key_view_without_recorded_queries(cap):
    weights = attnwidget.Capture.from_attentions(np.stack([cap.head_patterns(l) for l in range(cap.num_layers)]),
                                                 tokens=cap.tokens)
    widget = AttentionWidget(weights, background=False)
    try:
        assert "query-key" not in widget.views and "routes" not in widget.views and widget.measures == ["attention"]
        with pytest.raises(ArgumentError, match="view must be one of"):
            widget.view = "query-key"
        with pytest.raises(ArgumentError, match="queries and keys"):
            widget.query_key()
    finally:
        widget.close()


# ---- routes ----------------------------------------------------------------------------------------

def test_routes_data_is_the_flow_routes_graph(w, cap):
    w.view = "routes"
    graph = attnwidget.flow_routes(cap, cap.num_tokens - 1, 0.04)
    data = w.routes_data
    nodes, edges = data["nodes"], data["edges"]
    assert nodes["kind"]["shape"] == [graph.number_of_nodes()] and edges["source"]["shape"] == [graph.number_of_edges()]
    assert {k: v["dtype"] for k, v in edges.items()} == {
        "source": "int32", "target": "int32", "importance": "float32", "attention": "float32", "residual": "float32",
        "head": "int16", "layer": "int16", "kind": "uint8"}
    assert {k: v["dtype"] for k, v in nodes.items()} == {"kind": "uint8", "layer": "int32", "token": "int32",
                                                          "row": "int32"}
    assert (data["target"], data["threshold"], data["num_layers"], data["uses_residual"]) == (
        cap.num_tokens - 1, 0.04, cap.num_layers, True)
    # every edge, as the graph has it: kinds, heads, importances (sorted, the most important last)
    kinds, node_kinds = data["edge_kinds"], data["node_kinds"]
    key = [(node_kinds[k], int(l), int(t)) for k, l, t in zip(decode(nodes["kind"]), decode(nodes["layer"]),
                                                                  decode(nodes["token"]))]
    assert set(key) == set(graph.nodes)
    importance = decode(edges["importance"])
    assert np.all(np.diff(importance) >= 0)
    for s, t, imp, head, layer, kind in zip(decode(edges["source"]), decode(edges["target"]), importance,
                                            decode(edges["head"]), decode(edges["layer"]), decode(edges["kind"])):
        attrs = graph.edges[key[s], key[t]]
        assert attrs["kind"] == kinds[kind] and attrs["layer"] == layer
        assert imp == pytest.approx(attrs["importance"], rel=1e-6)
        assert head == (-1 if attrs["head"] is None else attrs["head"])
    assert set(decode(nodes["row"])) <= set(range(data["rows"]))
    assert "routes into token" in w.status


def test_routes_follow_target_and_threshold(w, cap):
    w.view = "routes"
    before = w.routes_data["edges"]["source"]["shape"][0]
    w.routes_threshold = 0.2
    assert w.routes_data["threshold"] == 0.2 and w.routes_data["edges"]["source"]["shape"][0] <= before
    w.routes_target = 4
    graph = attnwidget.flow_routes(cap, 4, 0.2)
    assert w.routes_data["target"] == 4 and w.routes_data["edges"]["source"]["shape"] == [graph.number_of_edges()]
    assert w.routes().number_of_edges() == graph.number_of_edges()
    w.measure = "contribution"  # the routes do not depend on the measure: the same graph, cached
    assert w.routes_data["target"] == 4 and w.routes(4, 0.2) is w.routes()
    with pytest.raises(ArgumentError, match=r"routes_threshold must lie in \[0, 1\)"):
        w.routes_threshold = 1.0
    with pytest.raises(OutOfRangeError):
        w.routes_target = cap.num_tokens


def test_clicking_an_attention_edge_selects_its_layer_and_head(w):
    w.view = "routes"
    w.routes_threshold = 0.0
    data = w.routes_data
    heads, layers, kinds = (decode(data["edges"][name]) for name in ("head", "layer", "kind"))
    attention = [e for e in range(len(heads)) if heads[e] >= 0 and data["edge_kinds"][kinds[e]] == "attention"]
    edge = next(e for e in attention if (layers[e], heads[e]) != (w.layer, w.head))
    w._on_message(w, {"type": "routes_edge", "edge": int(edge)}, [])
    assert (w.layer, w.head) == (int(layers[edge]), int(heads[edge])) and w.error == ""
    assert w.heatmap_data["title"].startswith(f"layer {layers[edge]}, head {heads[edge]}")
    other = next(e for e in range(len(heads)) if "attention" not in data["edge_kinds"][kinds[e]])
    w._on_message(w, {"type": "routes_edge", "edge": int(other)}, [])
    assert "only attention edges name a layer and head" in w.error
    assert (w.layer, w.head) == (int(layers[edge]), int(heads[edge]))


def test_long_inputs_compute_routes_on_the_worker(w, cap, monkeypatch):
    monkeypatch.setattr(widget_module, "ROUTES_NOW_TOKENS", 4)
    w.routes_target = 5
    w.view = "routes"
    assert w.routes_data == {} or w.routes_data["target"] != 5 or w.status.endswith("ready")
    w.wait(60)
    assert w.routes_data["target"] == 5 and w.status == "routes into token 5 ready"
    assert w.routes_data["edges"]["source"]["shape"] == [attnwidget.flow_routes(cap, 5).number_of_edges()]


def test_no_routes_for_cross_attention_or_without_values(plain):
    widget = AttentionWidget(plain, background=False)
    try:
        with pytest.raises(ArgumentError, match="view must be one of"):
            widget.view = "routes"
        with pytest.raises(ArgumentError, match="values=True, residual=True"):
            widget.routes()
    finally:
        widget.close()


def test_an_exported_page_shows_weights_whatever_the_measure(w, cap):
    """A page has no kernel: it shows the part's attention (with the widget's selection), not contributions."""
    from attnwidget import export

    w.layer, w.head, w.view = 1, 2, "routes"
    w.measure = "contribution"
    payload, arrays = export.build_payload(w)
    state = payload["state"]
    assert (state["layer"], state["head"], state["view"]) == (1, 2, "heatmap")  # no routes view in a page
    assert "routes" not in state["views"] and "query-key" not in state["views"]
    heat = arrays["heat"].astype(np.float64) / 255 * arrays["heat_scale"][..., None, None]
    np.testing.assert_allclose(heat[1, 2], cap.pattern(1, 2), atol=0.5 / 255 + 1e-6)
