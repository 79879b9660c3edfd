import { deflateSync } from "node:zlib";
import { describe, expect, it, vi } from "vitest";
import { decode } from "../src/codec.js";
import {
  StaticModel, base64ToBytes, createData, decodeEmbedded, inflate, maxPool, modelFromPayload, toArray,
} from "../src/static_model.js";

const b64 = (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
const arr = (data, shape) => ({ data, shape, dtype: data instanceof Uint8Array ? "uint8" : "float32" });
const values = (w) => Array.from(decode(w).data);

// 2 layers x 2 heads (+ mean slot), 4 tokens, full resolution: cell (i, j) of slot s in layer l = 10*l + 4*s + j + 1
function fullData(extra = {}, metaExtra = {}) {
  const [L, S, n] = [2, 3, 4];
  const heat = new Uint8Array(L * S * n * n);
  for (let l = 0; l < L; l++) for (let s = 0; s < S; s++) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
    heat[((l * S + s) * n + i) * n + j] = 10 * l + 4 * s + j + 1 + 50 * i;
  }
  const arrays = {
    heat: arr(heat, [L, S, n, n]), heat_scale: arr(new Float32Array(L * S).fill(255), [L, S]),
    rollout: arr(Float32Array.from({ length: n * n }, (_, k) => k), [n, n]), ...extra,
  };
  return createData(arrays, { n, heat_factor: 1, full_layer: null, rollout_rows: null, graph: null, ...metaExtra });
}

describe("embedded arrays", () => {
  it("decodes base64, zlib and float16", async () => {
    const bytes = Uint8Array.from([0, 1, 2, 250, 255]);
    expect(Array.from(base64ToBytes(b64(bytes)))).toEqual([0, 1, 2, 250, 255]);
    const packed = deflateSync(Buffer.from(bytes));
    expect(Array.from(await inflate(new Uint8Array(packed)))).toEqual([0, 1, 2, 250, 255]);
    const halves = new Uint16Array([0x3c00, 0x3800, 0x0000, 0xc000]); // 1, 0.5, 0, -2
    const decoded = await decodeEmbedded({ b64: b64(new Uint8Array(halves.buffer)), dtype: "float16", shape: [2, 2], compression: null });
    expect(Array.from(decoded.data)).toEqual([1, 0.5, 0, -2]);
    expect(decoded.dtype).toBe("float32");
    const zipped = await decodeEmbedded({ b64: packed.toString("base64"), dtype: "uint8", shape: [5], compression: "zlib" });
    expect(Array.from(zipped.data)).toEqual([0, 1, 2, 250, 255]);
  });

  it("rejects bad dtypes and lengths", () => {
    expect(() => toArray(new Uint8Array(4), "float64", [1])).toThrow(/unsupported dtype/);
    expect(() => toArray(new Uint8Array(6), "float32", [2])).toThrow(/needs 8 bytes/);
  });

  it("copies unaligned bytes before viewing them", () => {
    const host = new Uint8Array(9);
    new Float32Array(host.buffer, 0, 2).set([1.5, -2]);
    const shifted = new Uint8Array(9);
    shifted.set(host.subarray(0, 8), 1);
    expect(Array.from(toArray(shifted.subarray(1), "float32", [2]).data)).toEqual([1.5, -2]);
  });

  it("max-pools with zero padding", () => {
    const pooled = maxPool(Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]), 3, 3, 2);
    expect(pooled).toMatchObject({ rows: 2, cols: 2 });
    expect(Array.from(pooled.data)).toEqual([5, 6, 8, 9]);
  });
});

describe("views from embedded data", () => {
  it("builds heatmaps for heads and the layer mean", () => {
    const data = fullData();
    const head = data.heatmap(1, 0);
    expect(head).toMatchObject({ row0: 0, col0: 0, n_rows: 4, n_cols: 4 });
    expect(values(head.matrix).slice(0, 4)).toEqual([11, 12, 13, 14]);
    expect(values(data.heatmap(1, null).matrix).slice(4, 8)).toEqual([69, 70, 71, 72]); // slot 2, row 1
  });

  it("builds token lines from rows and columns", () => {
    const data = fullData();
    const from = data.lines(0, null, 1, "from");
    expect(from.heads).toEqual([0, 1]);
    expect(decode(from.weights).shape).toEqual([2, 4]);
    expect(values(from.weights)).toEqual([51, 52, 53, 54, 55, 56, 57, 58]);
    const to = data.lines(0, 1, 2, "to");
    expect(to).toMatchObject({ token: 2, direction: "to", heads: [1] });
    expect(values(to.weights)).toEqual([7, 57, 107, 157]);
  });

  it("thumbnails are pooled heatmaps scaled to their maximum", () => {
    const grid = fullData().grid();
    expect(grid.size).toBe(4);
    expect(decode(grid.thumbs).shape).toEqual([2, 2, 4, 4]);
    const thumb = values(grid.thumbs).slice(0, 16);
    expect(Math.max(...thumb)).toBe(255);
    expect(thumb[0]).toBe(Math.round((1 * 255) / 154));
    expect(decode(grid.layer_mean).shape).toEqual([2, 4, 4]);
  });

  it("rollout rows and the embedded graph only where embedded", () => {
    const all = fullData();
    expect(values(all.rollout(2).values)).toEqual([8, 9, 10, 11]);
    const one = fullData({ rollout: arr(Float32Array.from([1, 2, 3, 4]), [1, 4]) }, { rollout_rows: [3] });
    expect(one.rollout(1)).toBe(null);
    expect(values(one.rollout(3).values)).toEqual([1, 2, 3, 4]);
    const graph = { graph_pos: arr(new Float32Array(8), [4, 2]), graph_edges: { data: new Uint32Array(2), shape: [1, 2], dtype: "uint32" },
      graph_weights: arr(new Float32Array([0.5]), [1]) };
    const withGraph = fullData(graph, { graph: { layer: 1, head: null } });
    expect(withGraph.graph(1, null).edges.dtype).toBe("uint32");
    expect(withGraph.graph(1, 0)).toBe(null);
  });

  it("pooled layers give block lines; the full layer gives exact lines and zoom tiles", () => {
    const n = 5;
    const heat = new Uint8Array(1 * 2 * 3 * 3);
    heat.set([255, 0, 0, 10, 20, 0, 1, 2, 3]); // head 0 of layer 0, 3 x 3 cells of 2 x 2 tokens
    const full = new Uint8Array(2 * n * n);
    for (let k = 0; k < n * n; k++) full[k] = k;
    const data = createData({
      heat: arr(heat, [1, 2, 3, 3]), heat_scale: arr(new Float32Array([255, 255]), [1, 2]),
      full: arr(full, [2, n, n]), full_scale: arr(new Float32Array([255, 255]), [2]),
      rollout: arr(new Float32Array(n * n), [n, n]),
    }, { n, heat_factor: 2, full_layer: 0, rollout_rows: null, graph: null });
    expect(values(data.lines(0, 0, 3, "from").weights)).toEqual([15, 16, 17, 18, 19]); // full layer: exact
    const pooledOnly = createData({
      heat: arr(heat, [1, 2, 3, 3]), heat_scale: arr(new Float32Array([255, 255]), [1, 2]),
      rollout: arr(new Float32Array(n * n), [n, n]),
    }, { n, heat_factor: 2, full_layer: null, rollout_rows: null, graph: null });
    expect(values(pooledOnly.lines(0, 0, 3, "from").weights)).toEqual([10, 10, 20, 20, 0]); // block 1
    const tile = pooledOnly.heatmap(0, 0);
    expect(decode(tile.matrix).shape).toEqual([3, 3]);
    expect(tile).toMatchObject({ n_rows: 5, n_cols: 5 });
    const zoom = data.heatmap(0, 0, { row0: 1, col0: 2, rows: 2, cols: 3 });
    expect(zoom).toMatchObject({ row0: 1, col0: 2, n_rows: 2, n_cols: 3 });
    expect(values(zoom.matrix)).toEqual([7, 8, 9, 12, 13, 14]);
  });
});

describe("StaticModel", () => {
  const state = () => ({ tokens: ["a", "b", "c", "d"], num_layers: 2, num_heads: 2, is_causal: true, layer: 0,
    head: null, view: "heatmap", threshold: 0.1, hovered_token: null, selected_tokens: [], status: "" });

  it("starts with grid and heatmap data and answers selection like the kernel", () => {
    const model = new StaticModel(state(), fullData());
    expect(model.get("grid_data").size).toBe(4);
    expect(model.get("status")).toBe("layer 0, mean of heads");
    const events = [];
    model.on("change:heatmap_data", () => events.push("heatmap"));
    model.on("change:status", () => events.push("status"));
    model.set("layer", 1);
    model.set("head", 0);
    expect(events).toEqual([]); // the kernel answers after save_changes
    model.save_changes();
    expect(events).toEqual(["heatmap", "status"]);
    expect(values(model.get("heatmap_data").matrix)[0]).toBe(11);
    expect(model.get("status")).toBe("layer 1, head 0");
  });

  it("hover pushes lines (direction from lines_hover) and rollout in the rollout view", () => {
    const model = new StaticModel(state(), fullData());
    model.set("hovered_token", 2);
    model.save_changes();
    expect(model.get("lines_data")).toMatchObject({ token: 2, direction: "from", heads: [0, 1] });
    model.send({ type: "lines_hover", token: 1, direction: "to" });
    expect(model.get("lines_data")).toMatchObject({ token: 1, direction: "to" });
    model.set("view", "rollout");
    model.save_changes();
    expect(model.get("rollout_data").row).toBe(2);
    model.set("hovered_token", null);
    model.set("selected_tokens", [1]);
    model.save_changes();
    expect(model.get("rollout_data").row).toBe(1);
  });

  it("text view: the focus token's attention row (head or layer mean) and its rollout row", () => {
    const model = new StaticModel({ ...state(), view: "text", text_source: "attention" }, fullData());
    // the last token (causal, nothing hovered or selected), layer 0, the layer-mean slot (index 2)
    expect(model.get("text_data")).toMatchObject({ token: 3, source: "attention" });
    expect(values(model.get("text_data").values)).toEqual([159, 160, 161, 162]); // 4*2 + j + 1 + 50*3
    expect(model.get("text_data").note).toBe("attention of token 3, layer 0, mean of heads");
    model.set("hovered_token", 1);
    model.set("head", 1);
    model.save_changes();
    expect(values(model.get("text_data").values)).toEqual([55, 56, 57, 58]); // 4*1 + j + 1 + 50
    model.set("text_source", "rollout");
    model.save_changes();
    expect(model.get("text_data")).toMatchObject({ token: 1, source: "rollout" });
    expect(values(model.get("text_data").values)).toEqual([4, 5, 6, 7]);
    model.set("text_source", "flow");
    model.save_changes();
    expect(model.get("text_data").values).toBeUndefined();
    expect(model.get("text_data").note).toMatch(/flow embedded for row none only/);
  });

  it("graph view: embedded graph or an empty one with a status note", () => {
    const graph = { graph_pos: arr(new Float32Array(8), [4, 2]), graph_edges: { data: new Uint32Array(0), shape: [0, 2], dtype: "uint32" },
      graph_weights: arr(new Float32Array(0), [0]) };
    const meta = { graph: { layer: 0, head: null } };
    const model = new StaticModel(state(), fullData(graph, meta), meta);
    model.set("view", "graph");
    model.save_changes();
    expect(model.get("graph_data").pos.shape).toEqual([4, 2]);
    model.set("layer", 1);
    model.save_changes();
    expect(model.get("graph_data")).toEqual({});
    expect(model.get("status")).toMatch(/graph embedded for layer 0, mean of heads only/);
  });

  it("on/off and tile answers arrive asynchronously", async () => {
    vi.useFakeTimers();
    const n = 4;
    const data = fullData({ full: arr(new Uint8Array(3 * n * n).fill(255), [3, n, n]), full_scale: arr(new Float32Array([1, 1, 1]), [3]) },
      { full_layer: 0 });
    const model = new StaticModel(state(), data);
    const seen = [];
    const handler = (message, buffers) => seen.push([message, buffers]);
    model.on("msg:custom", handler);
    model.send({ type: "tile_request", row0: 1, col0: 0, rows: 2, cols: 2 });
    expect(seen).toEqual([]);
    vi.runAllTimers();
    expect(seen[0][0]).toMatchObject({ type: "tile", row0: 1, n_rows: 2, dtype: "float32", shape: [2, 2] });
    expect(seen[0][1][0]).toBeInstanceOf(DataView);
    model.off("msg:custom", handler);
    model.send({ type: "tile_request", row0: 0, col0: 0, rows: 2, cols: 2 });
    vi.runAllTimers();
    expect(seen.length).toBe(1);
    vi.useRealTimers();
  });

  it("modelFromPayload checks the format and decodes arrays", async () => {
    await expect(modelFromPayload({ format: "other" })).rejects.toThrow(/not an attnwidget export/);
    const heat = new Uint8Array(1 * 2 * 2 * 2).fill(255);
    const entry = (bytes, dtype, shape) => ({ b64: b64(bytes), dtype, shape, compression: null });
    const payload = {
      format: "attnwidget-static", version: 1,
      state: { ...state(), tokens: ["a", "b"], num_layers: 1, num_heads: 1 },
      meta: { n: 2, heat_factor: 1, full_layer: null, rollout_rows: null, graph: null },
      arrays: { heat: entry(heat, "uint8", [1, 2, 2, 2]),
        heat_scale: entry(new Uint8Array(new Float32Array([0.5, 0.5]).buffer), "float32", [1, 2]),
        rollout: entry(new Uint8Array(new Float32Array([1, 0, 0.5, 0.5]).buffer), "float32", [2, 2]) },
    };
    const model = await modelFromPayload(payload);
    expect(values(model.get("heatmap_data").matrix)).toEqual([0.5, 0.5, 0.5, 0.5]);
  });
});
