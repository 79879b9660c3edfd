"""export_html of encoder-decoder and vision captures: every part embedded (cross-attention as a
rectangle, no rollout or graph), the part the page opens on, the picture and its patch grid, round trips
through saved files, model outputs with key_tokens=, and the refusals the live widget makes."""

from __future__ import annotations

import numpy as np
import pytest
from families import image_processor, pair
from test_export import build_bundles_if_needed, decode, embedded

import attnwidget
from attnwidget import export as ex
from attnwidget import reduce as r
from attnwidget._engine import tile_factor
from attnwidget.export import page_side
from attnwidget.errors import ArgumentError
from attnwidget.seq2seq import Seq2SeqCapture

SOURCE = "The cat sat on the mat. The dog sat on the log."
TARGET = "Die Katze sass auf der Matte."
ATOL = 0.5 / 255 + 1e-6  # 8 bits per cell, scaled to each matrix's maximum


@pytest.fixture(scope="module", params=["t5", "bart"])
def s2s(request, byte_tokenizer):
    build_bundles_if_needed()
    model, _ = pair(request.param)
    return attnwidget.capture(model, byte_tokenizer, SOURCE, target=TARGET)


@pytest.fixture(scope="module")
def vit():
    from skimage import data

    build_bundles_if_needed()
    model, _ = pair("vit")
    return attnwidget.capture(model, image_processor(model), data.astronaut())


def weights(arrays: dict, prefix: str = "") -> np.ndarray:
    """The embedded ``[L, H + 1, sq, sk]`` heatmaps as weights (8 bits times each matrix's maximum)."""
    heat, scale = arrays[f"{prefix}heat"], arrays[f"{prefix}heat_scale"]
    return heat.astype(np.float64) / 255 * scale[..., None, None]


def patterns(cap) -> np.ndarray:
    """``[L, H + 1, q, k]``: every head and the layer mean, as the page embeds them."""
    return np.stack([np.concatenate([cap.head_patterns(layer), cap.pattern(layer)[None]])
                     for layer in range(cap.num_layers)])


# ----------------------------------------------------------------------------- encoder-decoder


def test_every_part_is_embedded_with_its_shape(s2s):
    payload, arrays = ex.build_payload(s2s)
    assert payload["version"] == 2 and "arrays" not in payload
    assert set(payload["parts"]) == {"encoder", "decoder", "cross"}
    ns, nt = s2s.encoder.num_tokens, s2s.decoder.num_tokens
    assert ns != nt  # a rectangle that cannot pass for a square
    for name, (rows, cols) in {"encoder": (ns, ns), "decoder": (nt, nt), "cross": (nt, ns)}.items():
        cap = s2s.part(name)
        entry = payload["parts"][name]
        L, H = cap.num_layers, cap.num_heads
        assert arrays[f"{name}/heat"].shape == (L, H + 1, rows, cols)
        np.testing.assert_allclose(weights(arrays, f"{name}/"), patterns(cap), atol=ATOL, err_msg=name)
        assert entry["meta"]["n"] == rows and entry["meta"]["n_keys"] == cols
        assert (entry["meta"]["heat_factor"], entry["meta"]["heat_factor_keys"]) == (1, 1)
        state = entry["state"]
        assert (state["num_layers"], state["num_heads"], state["is_causal"]) == (L, H, name == "decoder")
        assert state["tokens"] == cap.tokens and state["is_cross"] == (name == "cross")
        # the arrays in the page are the ones returned, name for name
        assert {f"{name}/{k}" for k in entry["arrays"]} == {k for k in arrays if k.startswith(f"{name}/")}
        for key, wired in entry["arrays"].items():
            np.testing.assert_array_equal(decode(wired), arrays[f"{name}/{key}"], err_msg=f"{name}/{key}")
    # rollout and graph within the encoder and the decoder only, as the live widget offers them
    for name in ("encoder", "decoder"):
        np.testing.assert_allclose(arrays[f"{name}/rollout"], attnwidget.rollout(s2s.part(name)), atol=2e-3)
        assert f"{name}/graph_edges" in arrays and payload["parts"][name]["meta"]["rollout"] is True
        assert payload["parts"][name]["state"]["views"] == ["heatmap", "text", "lines", "graph", "rollout"]
    cross = payload["parts"]["cross"]
    assert not [k for k in arrays if k.startswith("cross/") and ("rollout" in k or "graph" in k)]
    assert cross["meta"]["rollout"] is False and cross["meta"]["graph"] is None
    assert cross["state"]["views"] == ["heatmap", "text", "lines"]
    assert cross["state"]["key_tokens"] == s2s.encoder.tokens
    assert "No rollout and no graph" in payload["note"] and "Cross-attention:" in payload["note"]


def test_the_page_opens_on_cross_attention_like_the_widget(s2s, tmp_path):
    path = ex.export_html(s2s, tmp_path / "s2s.html")
    page = path.read_text(encoding="utf-8")
    data = embedded(page, "attnwidget-data")
    state = data["state"]
    assert state["part"] == "cross" and state["parts"] == ["encoder", "decoder", "cross"]
    assert state["tokens"] == s2s.decoder.tokens and state["key_tokens"] == s2s.encoder.tokens
    assert state["is_cross"] is True and state["view"] == "heatmap"
    assert state["layer"] == s2s.cross.num_layers // 2 and state["head"] is None
    assert "Encoder-decoder:" in page and "cross-attention above the views" in page
    assert "<title>Attention in " in page
    # the same as the live widget starts with
    widget = attnwidget.AttentionWidget(s2s, background=False)
    for name in ("part", "parts", "tokens", "key_tokens", "is_cross", "views", "layer", "head", "view",
                 "num_layers", "num_heads", "is_causal"):
        assert state[name] == page_side(widget, name), name
    widget.close()


def test_a_widget_exports_from_its_part_and_selection(s2s):
    widget = attnwidget.AttentionWidget(s2s, part="encoder", layer=0, head=2, view="rollout", background=False)
    widget.selected_tokens = [3]
    payload, arrays = ex.build_payload(widget)
    state = payload["state"]
    assert (state["part"], state["layer"], state["head"], state["view"]) == ("encoder", 0, 2, "rollout")
    assert state["selected_tokens"] == [3] and state["tokens"] == s2s.encoder.tokens
    assert payload["parts"]["encoder"]["meta"]["graph"] == {"layer": 0, "head": 2, "threshold": 0.1}
    # the other parts, as a switch would show them: the layer clamped, the head kept, no selection
    assert payload["parts"]["decoder"]["meta"]["graph"] == {"layer": 0, "head": 2, "threshold": 0.1}
    # overrides: another part to open on (a view it lacks is refused, like the widget refuses it)
    payload, _ = ex.build_payload(widget, part="cross", view="lines")
    state = payload["state"]
    assert (state["part"], state["view"], state["selected_tokens"]) == ("cross", "lines", [])
    assert (state["layer"], state["head"], state["tokens"]) == (0, 2, s2s.decoder.tokens)
    payload, _ = ex.build_payload(widget, part="cross")  # the widget's rollout view falls back to the heatmap
    assert payload["state"]["view"] == "heatmap"
    with pytest.raises(ArgumentError, match="cross-attention has no rollout"):
        ex.build_payload(widget, part="cross", view="rollout")
    widget.close()


def test_pooled_cross_attention_is_pooled_per_axis(s2s):
    """With small heatmaps, the rectangle is max-pooled per axis (as the fused pass's tiles) and the
    opening layer is embedded at full resolution, [target, source]."""
    payload, arrays = ex.build_payload(s2s, heatmap_side=8, layer=0)
    ns, nt = s2s.encoder.num_tokens, s2s.decoder.num_tokens
    fr, fc = tile_factor(nt, 8), tile_factor(ns, 8)
    meta = payload["parts"]["cross"]["meta"]
    assert (meta["heat_factor"], meta["heat_factor_keys"]) == (fr, fc) and fr != fc
    H = s2s.cross.num_heads
    assert arrays["cross/heat"].shape == (s2s.cross.num_layers, H + 1, -(-nt // fr), -(-ns // fc))
    pooled = r.max_pool(patterns(s2s.cross)[1], fr, fc)
    np.testing.assert_allclose(weights(arrays, "cross/")[1], pooled, atol=ATOL)
    assert meta["full_layer"] == 0 and arrays["cross/full"].shape == (H + 1, nt, ns)
    full = arrays["cross/full"].astype(np.float64) / 255 * arrays["cross/full_scale"][:, None, None]
    np.testing.assert_allclose(full, patterns(s2s.cross)[0], atol=ATOL)
    assert f"({fr} x {fc} tokens each)" in payload["note"]


def test_round_trip_save_load_export(s2s, tmp_path):
    saved = s2s.save(tmp_path / "s2s.safetensors")
    loaded = Seq2SeqCapture.load(saved)
    path = ex.export_html(loaded, tmp_path / "loaded.html")
    data = embedded(path.read_text(encoding="utf-8"), "attnwidget-data")
    _, original = ex.build_payload(s2s)
    for name, entry in data["parts"].items():
        assert {f"{name}/{key}" for key in entry["arrays"]} == {k for k in original if k.startswith(f"{name}/")}
        for key in ("heat", "heat_scale", "rollout"):
            if key in entry["arrays"]:
                got = decode(entry["arrays"][key]).astype(np.float64)
                np.testing.assert_allclose(got, original[f"{name}/{key}"].astype(np.float64), rtol=1e-3, atol=1.0 if key == "heat" else 1e-3,
                                           err_msg=f"{name}/{key}")
    assert data["state"]["tokens"] == s2s.decoder.tokens


def test_a_seq2seq_model_output_with_key_tokens(byte_tokenizer):
    import torch

    _, eager = pair("t5")
    source = byte_tokenizer(SOURCE, return_tensors="pt").input_ids
    target = byte_tokenizer(TARGET, return_tensors="pt").input_ids
    with torch.no_grad():
        output = eager(input_ids=source, decoder_input_ids=target, output_attentions=True)
    src_tokens = byte_tokenizer.convert_ids_to_tokens(source[0])
    tgt_tokens = byte_tokenizer.convert_ids_to_tokens(target[0])
    payload, arrays = ex.build_payload(output, tokens=tgt_tokens, key_tokens=src_tokens)
    assert payload["state"]["part"] == "cross" and payload["state"]["tokens"] == tgt_tokens
    assert payload["state"]["key_tokens"] == src_tokens
    cross = np.stack([a[0].numpy() for a in output.cross_attentions])  # [L, H, target, source]
    np.testing.assert_allclose(weights(arrays, "cross/")[:, :-1], cross, atol=ATOL)
    np.testing.assert_allclose(weights(arrays, "encoder/")[:, -1],
                               np.stack([a[0].numpy().mean(0) for a in output.encoder_attentions]), atol=ATOL)
    payload, _ = ex.build_payload(output)  # unnamed: positions
    assert payload["state"]["key_tokens"] == [str(i) for i in range(len(src_tokens))]
    # One rectangle with its key tokens: a single cross-attention part (no part selector).
    payload, arrays = ex.build_payload(output.cross_attentions, tokens=tgt_tokens, key_tokens=src_tokens)
    state = payload["state"]
    assert state["parts"] == [] and state["is_cross"] is True and state["views"] == ["heatmap", "text", "lines"]
    assert "rollout" not in arrays and "graph_pos" not in arrays
    assert arrays["heat"].shape[-2:] == (len(tgt_tokens), len(src_tokens))


def test_refusals(s2s, vit, tmp_path):
    with pytest.raises(ArgumentError, match="graph view draws one sequence"):
        ex.build_payload(s2s, view="graph")
    with pytest.raises(ArgumentError, match="cross-attention has no rollout"):
        ex.build_payload(s2s, view="rollout")
    payload, _ = ex.build_payload(s2s, part="decoder", view="rollout", layer=0)
    assert (payload["state"]["part"], payload["state"]["view"]) == ("decoder", "rollout")
    with pytest.raises(ValueError, match="part must be one of"):
        ex.build_payload(s2s, part="middle")
    with pytest.raises(ArgumentError, match="leave tokens out"):
        ex.build_payload(s2s, tokens=["a"] * s2s.decoder.num_tokens)
    with pytest.raises(ArgumentError, match="leave key_tokens out"):
        ex.build_payload(s2s, key_tokens=["a"])
    with pytest.raises(ArgumentError, match="leave part out"):
        ex.build_payload(vit, part="encoder")
    with pytest.raises(ArgumentError, match="image view needs a vision capture"):
        ex.build_payload(s2s, part="encoder", view="image")
    with pytest.raises(TypeError, match="Capture, an AttentionWidget"):
        ex.export_html(None, tmp_path / "x.html")
    assert not (tmp_path / "x.html").exists()


# ----------------------------------------------------------------------------- vision


def test_a_vision_capture_embeds_the_picture_and_the_grid(vit, tmp_path):
    payload, arrays = ex.build_payload(vit)
    meta, state = payload["meta"], payload["state"]
    np.testing.assert_array_equal(arrays["picture"], vit.image)
    assert arrays["picture"].dtype == np.uint8 and arrays["picture"].shape == vit.image.shape
    assert meta["image"] == {"grid": list(vit.patch_grid), "patch_start": vit.patch_start}
    assert state["view"] == "image" and "image" in state["views"] and state["parts"] == []
    # every layer and head at full resolution: the image view is exact for any patch and token
    n = vit.num_tokens
    assert arrays["heat"].shape == (vit.num_layers, vit.num_heads + 1, n, n) and meta["heat_factor"] == 1
    np.testing.assert_allclose(weights(arrays), patterns(vit), atol=ATOL)
    np.testing.assert_allclose(arrays["rollout"], attnwidget.rollout(vit), atol=2e-3)
    assert "Picture: 32 x 32 pixels, 4 x 4 patches (tokens 1 to 16)" in payload["note"]
    page = ex.export_html(vit, tmp_path / "vit.html").read_text(encoding="utf-8")
    data = embedded(page, "attnwidget-data")
    np.testing.assert_array_equal(decode(data["arrays"]["picture"]), vit.image)
    assert "hover a patch of the picture" in page
    # the live widget starts the same way
    widget = attnwidget.AttentionWidget(vit, background=False)
    for name in ("view", "views", "tokens", "layer", "head", "part", "parts", "is_cross"):
        assert state[name] == page_side(widget, name), name
    widget.close()


def test_vision_sizes_and_smaller_heatmaps(vit, monkeypatch):
    """Full resolution while every matrix fits IMAGE_FULL_CELLS; beyond, or with heatmap_side, the
    heatmaps are pooled and the starting layer is embedded whole (exact there)."""
    payload, arrays = ex.build_payload(vit, heatmap_side=8, layer=0)
    assert payload["meta"]["heat_factor"] == tile_factor(vit.num_tokens, 8) > 1
    assert payload["meta"]["full_layer"] == 0 and "picture" in arrays
    assert "exact in layer 0, elsewhere at block resolution" in payload["note"]
    import attnwidget._export_parts as parts

    def side(n: int, image=True) -> int:  # the default side of a ViT-B-sized capture (12 layers x 12 heads)
        source = type("Source", (), {"num_layers": 12, "num_heads": 12, "n": n, "n_keys": n})()
        subject = parts.PartSubject(name="", capture=None, source=source, tokens=[], key_tokens=[], is_cross=False,
                                    layer=0, head=None, threshold=0.1, image=(None, (1, 1), 1) if image else None)
        return parts.side_for(subject, None)

    assert (side(197), side(257), side(197, image=False)) == (197, 257, 128)  # ViT-B/16, DINOv2-B/14; text
    assert side(577) == 128  # 577 tokens (ViT-L/14 at 336 px) in 12 layers: 52 M cells, over the cap
    monkeypatch.setattr(parts, "IMAGE_FULL_CELLS", 10)
    assert side(197) == 128


def test_vision_round_trip_and_widget(vit, tmp_path):
    from attnwidget.capture import Capture

    loaded = Capture.load(vit.save(tmp_path / "vit.safetensors"))
    payload, arrays = ex.build_payload(loaded)
    np.testing.assert_array_equal(arrays["picture"], vit.image)
    widget = attnwidget.AttentionWidget(vit, layer=0, head=1, background=False)
    widget.text_source = "rollout"
    widget.selected_tokens = [5]
    payload, _ = ex.build_payload(widget)
    state = payload["state"]
    assert (state["view"], state["text_source"], state["selected_tokens"]) == ("image", "rollout", [5])
    assert (state["layer"], state["head"]) == (0, 1) and payload["meta"]["image"]["grid"] == [4, 4]
    widget.close()


def test_payload_sizes_stay_small(s2s, vit, tmp_path):
    s2s_page = ex.export_html(s2s, tmp_path / "s2s.html").stat().st_size
    vit_page = ex.export_html(vit, tmp_path / "vit.html").stat().st_size
    bundles = sum(len(text.encode()) for text in ex._read_bundles().values())
    assert s2s_page - bundles < 60_000, s2s_page - bundles
    assert vit_page - bundles < 40_000, vit_page - bundles


# ----------------------------------------------------------------------------- the page's reader (node)

READER = """
const [module, payloadPath, requestsPath] = process.argv.slice(2);
const { createData, decodeArrays } = await import(module);
const fs = await import("node:fs");
const payload = JSON.parse(fs.readFileSync(payloadPath, "utf8"));
const requests = JSON.parse(fs.readFileSync(requestsPath, "utf8"));
const parts = payload.parts ?? { "": { meta: payload.meta, arrays: payload.arrays } };
const list = (w) => ({ shape: w.shape, values: Array.from(new (w.dtype === "uint8" ? Uint8Array : Float32Array)(
  w.buffer.buffer, w.buffer.byteOffset, w.buffer.byteLength / (w.dtype === "uint8" ? 1 : 4))) });
const out = [];
for (const [part, method, ...args] of requests) {
  const data = createData(await decodeArrays(parts[part]), parts[part].meta);
  const result = data[method](...args);
  if (method === "heatmap") out.push({ ...list(result.matrix), n_queries: result.n_queries, n_keys: result.n_keys,
    n_rows: result.n_rows, n_cols: result.n_cols });
  else if (method === "lines") out.push(list(result.weights));
  else if (method === "grid") out.push({ thumbs: list(result.thumbs), mean: list(result.layer_mean) });
  else if (method === "row") out.push({ values: Array.from(result) });
  else if (method === "patches") out.push({ values: list(result.values), others: list(result.others) });
}
console.log(JSON.stringify(out));
"""


def read_in_node(payload: dict, requests: list, tmp_path) -> list:
    """Run the page's data reader (js/src/static_data.js) in node over ``payload``: one result per
    request ``[part, method, *args]``."""
    import json
    import shutil
    import subprocess

    from test_export import ROOT

    node = shutil.which("node")
    if node is None:
        pytest.fail("node not found: the front end's reader needs Node.js >= 20.19 (as `make js` does)")
    script, data, asks = tmp_path / "reader.mjs", tmp_path / "payload.json", tmp_path / "requests.json"
    script.write_text(READER, encoding="utf-8")
    data.write_text(json.dumps(payload), encoding="utf-8")
    asks.write_text(json.dumps(requests), encoding="utf-8")
    module = (ROOT / "js" / "src" / "static_data.js").as_uri()
    result = subprocess.run([node, str(script), module, str(data), str(asks)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_page_reads_rectangles_like_the_kernel(s2s, tmp_path):
    """The page's reader over a pooled cross-attention (4 x 2 tokens a cell) answers as the kernel's
    reducers do: exact tiles and lines in the full-resolution layer, block maxima elsewhere."""
    payload, _ = ex.build_payload(s2s, heatmap_side=8, layer=0)
    cross, ns, nt = s2s.cross, s2s.encoder.num_tokens, s2s.decoder.num_tokens
    fr, fc = tile_factor(nt, 8), tile_factor(ns, 8)
    H, engine = cross.num_heads, r.engine(s2s.cross)
    window = {"row0": 1, "col0": 2, "rows": 3, "cols": 4}
    requests = [["cross", "heatmap", 1, None], ["cross", "heatmap", 0, None, window],
                ["cross", "lines", 0, None, nt - 2, "from"], ["cross", "lines", 0, 1, ns - 1, "to"],
                ["cross", "lines", 1, None, nt - 2, "from"], ["cross", "lines", 1, None, ns - 1, "to"],
                ["cross", "row", 1, None, 3]]
    tile, zoom, exact_from, exact_to, block_from, block_to, row = read_in_node(payload, requests, tmp_path)
    assert tile["shape"] == [-(-nt // fr), -(-ns // fc)] and (tile["n_queries"], tile["n_keys"]) == (nt, ns)
    np.testing.assert_allclose(np.reshape(tile["values"], tile["shape"]), r.max_pool(cross.pattern(1), fr, fc),
                               atol=ATOL)
    kernel = r.heatmap_tile(engine, 0, None, **window)
    assert zoom["shape"] == kernel["matrix"]["shape"] and (zoom["n_rows"], zoom["n_cols"]) == (3, 4)
    np.testing.assert_allclose(np.reshape(zoom["values"], zoom["shape"]),
                               np.frombuffer(kernel["matrix"]["buffer"], np.float16).reshape(3, 4), atol=2e-3)
    for got, (head, token, direction) in ((exact_from, (None, nt - 2, "from")), (exact_to, (1, ns - 1, "to"))):
        want = r.token_lines(engine, 0, head, token, direction)
        shape = want["weights"]["shape"]
        assert got["shape"] == shape
        np.testing.assert_allclose(np.reshape(got["values"], shape),
                                   np.frombuffer(want["weights"]["buffer"], np.float32).reshape(shape), atol=ATOL)
    blocks = r.max_pool(cross.head_patterns(1), fr, fc)  # [H, cells, cells]: each line carries its block's max
    np.testing.assert_allclose(np.reshape(block_from["values"], (H, ns)),
                               blocks[:, (nt - 2) // fr][:, np.arange(ns) // fc], atol=ATOL)
    np.testing.assert_allclose(np.reshape(block_to["values"], (H, nt)),
                               blocks[:, :, (ns - 1) // fc][:, np.arange(nt) // fr], atol=ATOL)
    assert len(row["values"]) == ns  # a target token's row over the source keys


def test_the_page_reads_thumbnails_and_patches_like_the_kernel(s2s, vit, tmp_path):
    payload, _ = ex.build_payload(s2s)
    (grid,) = read_in_node(payload, [["cross", "grid"]], tmp_path)
    thumbs, means = r.thumbnails(s2s.cross)
    assert grid["thumbs"]["shape"] == list(thumbs.shape) and grid["mean"]["shape"] == list(means.shape)
    np.testing.assert_allclose(np.reshape(grid["thumbs"]["values"], thumbs.shape), thumbs, atol=2)
    payload, _ = ex.build_payload(vit)
    (rows, cols), start, token = vit.patch_grid, vit.patch_start, 6
    row = vit.head_patterns(0)[2, token]
    (patches,) = read_in_node(payload, [["", "patches", row.astype(np.float32).tolist()]], tmp_path)
    assert patches["values"]["shape"] == [rows, cols]
    np.testing.assert_allclose(np.reshape(patches["values"]["values"], (rows, cols)),
                               row[start:start + rows * cols].reshape(rows, cols), rtol=1e-6)
    np.testing.assert_allclose(patches["others"]["values"], np.concatenate([row[:start], row[start + rows * cols:]]),
                               rtol=1e-6)
