// The embedded data of a page written by attnwidget.export_html (docs/export.md), decoded and read
// the way the kernel's reducers read a capture: heatmap tiles, token lines, rollout rows, grid
// thumbnails, the picture of a vision capture and its rows over the patch grid. Pure: no DOM, no model.
//
// One part's arrays (a plain capture is one part; an encoder-decoder capture has three):
//   heat uint8 [L, H+1, sq, sk] (index H = layer mean; sq = ceil(n / f), sk = ceil(n_keys / fk)),
//   heat_scale float32 [L, H+1], full? uint8 [H+1, n, n_keys] + full_scale [H+1], rollout? [R, n],
//   color_by? [L, H], flow? [n], graph_pos/edges/weights?, picture? uint8 [height, width, 3].
// meta: {n, n_keys?, heat_factor, heat_factor_keys?, full_layer, rollout?, rollout_rows: null (all) | [row],
//        graph: {layer, head} | null, flow_row, image?: {grid: [rows, cols], patch_start} | null}

import { decodeFloat16 } from "./codec.js";

const TYPES = { uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array, int32: Int32Array,
  float32: Float32Array };
const TILE_SIDE = 512; // like attnwidget/reduce.py: tiles beyond this are max-pooled
const THUMB_SIDE = 64; // grid thumbnails: at most this many cells an axis

/** base64 text -> Uint8Array. */
export function base64ToBytes(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** zlib (RFC 1950) bytes -> Uint8Array, with the platform's DecompressionStream. */
export async function inflate(bytes) {
  if (typeof DecompressionStream !== "function") {
    throw new Error("this browser has no DecompressionStream; export the page with compress=False");
  }
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Raw little-endian bytes + dtype/shape -> {data, shape, dtype} (float16 widened to Float32Array). */
export function toArray(bytes, dtype, shape) {
  const count = shape.reduce((a, b) => a * b, 1);
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength); // aligned copy
  if (dtype === "float16") {
    return { data: decodeFloat16(new Uint16Array(buffer, 0, count)), shape, dtype: "float32" };
  }
  const Type = TYPES[dtype];
  if (!Type) throw new TypeError(`embedded array: unsupported dtype ${dtype}`);
  if (count * Type.BYTES_PER_ELEMENT !== buffer.byteLength) {
    throw new RangeError(`embedded array: [${shape}] ${dtype} needs ${count * Type.BYTES_PER_ELEMENT} bytes, got ${buffer.byteLength}`);
  }
  return { data: new Type(buffer), shape, dtype };
}

/** One embedded {b64, dtype, shape, compression} -> array. */
export async function decodeEmbedded(entry) {
  let bytes = base64ToBytes(entry.b64);
  if (entry.compression === "zlib") bytes = await inflate(bytes);
  else if (entry.compression) throw new TypeError(`embedded array: unknown compression ${entry.compression}`);
  return toArray(bytes, entry.dtype, entry.shape);
}

/** Decode every embedded array of {arrays: {name: entry}} (a payload, or one part of it). */
export async function decodeArrays(holder) {
  const entries = await Promise.all(Object.entries(holder?.arrays ?? {}).map(
    async ([name, entry]) => [name, await decodeEmbedded(entry)]));
  return Object.fromEntries(entries);
}

/** A wire dict for the widget (TypedArray -> {buffer: DataView, dtype, shape}). */
export function wire(data, dtype, shape) {
  return { buffer: new DataView(data.buffer, data.byteOffset, data.byteLength), dtype, shape };
}

/** Max over fr x fc cells (rows x columns; fc defaults to fr) of a [r, c] array, edges padded with
 * zeros -> {data, rows, cols}. */
export function maxPool(data, rows, cols, fr, fc = fr) {
  const r2 = Math.ceil(rows / fr);
  const c2 = Math.ceil(cols / fc);
  const out = new data.constructor(r2 * c2);
  for (let i = 0; i < rows; i++) {
    const oi = Math.floor(i / fr) * c2;
    for (let j = 0; j < cols; j++) {
      const v = data[i * cols + j];
      const o = oi + Math.floor(j / fc);
      if (v > out[o]) out[o] = v;
    }
  }
  return { data: out, rows: r2, cols: c2 };
}

/** Quantised uint8 matrix (view into `q` at `offset`) times scale/255 -> Float32Array. */
function dequantise(q, offset, count, scale) {
  const out = new Float32Array(count);
  const k = scale / 255;
  for (let i = 0; i < count; i++) out[i] = q[offset + i] * k;
  return out;
}

/**
 * The values a row of one part's tokens puts on a vision capture's patch grid: `values` ([n]) cut
 * into the patches ([rows, cols], tokens patch_start..) and the others (the tokens before the patches,
 * then any after them), as attnwidget/_widget_image.py cuts them. Null without a picture.
 */
export function splitPatches(values, image) {
  if (!image || !values) return null;
  const row = values instanceof Float32Array ? values : Float32Array.from(values);
  const [rows, cols] = image.grid;
  const start = image.patch_start ?? 0;
  const patches = row.slice(start, start + rows * cols);
  const others = new Float32Array(row.length - patches.length);
  others.set(row.subarray(0, start));
  others.set(row.subarray(start + rows * cols), start);
  return { values: wire(patches, "float32", [rows, cols]), others: wire(others, "float32", [others.length]) };
}

/** Pure accessors over one part's decoded arrays (see the top of this file). */
export function createData(arrays, meta) {
  const { heat, heat_scale: heatScale } = arrays;
  const [layers, slots, sideRows] = heat.shape;
  const sideCols = heat.shape[3] ?? sideRows;
  const cells = sideRows * sideCols;
  const heads = slots - 1;
  const n = meta.n;
  const nKeys = meta.n_keys ?? n;
  const cross = n !== nKeys || meta.rollout === false;
  const f = meta.heat_factor ?? 1;
  const fk = meta.heat_factor_keys ?? f;
  const slot = (head) => (head == null ? heads : head);
  const isFull = (layer) => arrays.full != null && meta.full_layer === layer;
  /** The page has every cell of this layer (no pooling). */
  const isExact = (layer) => isFull(layer) || (f === 1 && fk === 1);

  /** The whole [n, nKeys] (full) or [sq, sk] (pooled) matrix of one head / mean as float32 weights. */
  function matrix(layer, head) {
    const s = slot(head);
    if (isFull(layer)) {
      return { data: dequantise(arrays.full.data, s * n * nKeys, n * nKeys, arrays.full_scale.data[s]), rows: n,
        cols: nKeys, pooled: false };
    }
    const index = layer * slots + s;
    return { data: dequantise(heat.data, index * cells, cells, heatScale.data[index]), rows: sideRows,
      cols: sideCols, pooled: f > 1 || fk > 1 };
  }

  /** heatmap_data of a window (default: everything), max-pooled to TILE_SIDE like reduce.heatmap_tile
   * (square attention by one factor, a rectangle per axis). */
  function heatmap(layer, head, win = null) {
    const m = matrix(layer, head);
    const whole = { n_queries: n, n_keys: nKeys };
    if (m.pooled) {
      return { matrix: wire(m.data, "float32", [m.rows, m.cols]), row0: 0, col0: 0, n_rows: n, n_cols: nKeys,
        ...whole };
    }
    const row0 = Math.min(n - 1, Math.max(0, Math.floor(win?.row0 ?? 0)));
    const col0 = Math.min(nKeys - 1, Math.max(0, Math.floor(win?.col0 ?? 0)));
    const rows = Math.max(1, Math.min(Math.floor(win?.rows ?? n - row0), n - row0));
    const cols = Math.max(1, Math.min(Math.floor(win?.cols ?? nKeys - col0), nKeys - col0));
    let block = new Float32Array(rows * cols);
    for (let i = 0; i < rows; i++) {
      const start = (row0 + i) * nKeys + col0;
      block.set(m.data.subarray(start, start + cols), i * cols);
    }
    const square = n === nKeys;
    const fr = Math.max(1, Math.ceil((square ? Math.max(rows, cols) : rows) / TILE_SIDE));
    const fc = square ? fr : Math.max(1, Math.ceil(cols / TILE_SIDE));
    let shape = [rows, cols];
    if (fr > 1 || fc > 1) {
      const pooled = maxPool(block, rows, cols, fr, fc);
      block = pooled.data;
      shape = [pooled.rows, pooled.cols];
    }
    return { matrix: wire(block, "float32", shape), row0, col0, n_rows: rows, n_cols: cols, ...whole };
  }

  /** lines_data: every head (head null) or one head (index `heads`: the layer mean). "from": `token` is
   * a query, weights over the keys [heads, nKeys]; "to": `token` is a key, weights over the queries. */
  function lines(layer, head, token, direction = "from") {
    const list = head == null ? Array.from({ length: heads }, (_, h) => h) : [head];
    const full = isFull(layer);
    const [cellCols, stepR, stepC] = full ? [nKeys, 1, 1] : [sideCols, f, fk];
    const count = direction === "to" ? n : nKeys;
    const weights = new Float32Array(list.length * count);
    list.forEach((h, k) => {
      const index = full ? h : layer * slots + h;
      const q = full ? arrays.full.data : heat.data;
      const scale = (full ? arrays.full_scale.data[h] : heatScale.data[index]) / 255;
      const base = index * (full ? n * nKeys : cells);
      if (direction === "to") {
        const c = Math.floor(token / stepC);
        for (let i = 0; i < n; i++) weights[k * n + i] = q[base + Math.floor(i / stepR) * cellCols + c] * scale;
      } else {
        const row = base + Math.floor(token / stepR) * cellCols;
        for (let j = 0; j < nKeys; j++) weights[k * nKeys + j] = q[row + Math.floor(j / stepC)] * scale;
      }
    });
    return { weights: wire(weights, "float32", [list.length, count]), token, direction, heads: list,
      n_queries: n, n_keys: nKeys };
  }

  /** One row of attention (over the keys) as float32: the head, or the layer mean for head null. */
  function row(layer, head, token) {
    const w = lines(layer, head ?? heads, token, "from").weights;
    return new Float32Array(w.buffer.buffer, w.buffer.byteOffset, nKeys);
  }

  const hasRollout = () => arrays.rollout != null && meta.rollout !== false;

  function hasRolloutRow(r) {
    return hasRollout() && (meta.rollout_rows == null || meta.rollout_rows.includes(r));
  }

  /** rollout_data for row `r`, or null when that row is not embedded. */
  function rollout(r) {
    if (!hasRolloutRow(r)) return null;
    const index = meta.rollout_rows == null ? r : meta.rollout_rows.indexOf(r);
    const values = arrays.rollout.data.slice(index * n, (index + 1) * n);
    const data = { values: wire(values, "float32", [n]), row: r };
    if (arrays.flow && meta.flow_row === r) data.flow = wire(arrays.flow.data.slice(), "float32", [n]);
    return data;
  }

  function hasGraph(layer, head) {
    return meta.graph != null && arrays.graph_pos != null && meta.graph.layer === layer &&
      (meta.graph.head ?? null) === (head ?? null);
  }

  function graph(layer, head) {
    if (!hasGraph(layer, head)) return null;
    const w = (a) => wire(a.data, a.dtype, a.shape);
    return { pos: w(arrays.graph_pos), edges: w(arrays.graph_edges), weights: w(arrays.graph_weights) };
  }

  /** grid_data: thumbnails max-pooled from the heatmaps to at most THUMB_SIDE cells an axis (a
   * rectangle per axis, like the fused pass), each scaled to its maximum. */
  function grid() {
    const gr = Math.max(1, Math.ceil(sideRows / THUMB_SIDE));
    const gc = Math.max(1, Math.ceil(sideCols / THUMB_SIDE));
    const [tr, tc] = [Math.ceil(sideRows / gr), Math.ceil(sideCols / gc)];
    const thumbs = new Uint8Array(layers * heads * tr * tc);
    const means = new Uint8Array(layers * tr * tc);
    for (let layer = 0; layer < layers; layer++) {
      for (let s = 0; s < slots; s++) {
        const index = layer * slots + s;
        const pooled = maxPool(heat.data.subarray(index * cells, (index + 1) * cells), sideRows, sideCols, gr, gc).data;
        let top = 0;
        for (const v of pooled) if (v > top) top = v;
        const target = s < heads ? thumbs.subarray((layer * heads + s) * tr * tc) : means.subarray(layer * tr * tc);
        for (let i = 0; i < tr * tc; i++) target[i] = top > 0 ? Math.round((pooled[i] * 255) / top) : 0;
      }
    }
    const data = { thumbs: wire(thumbs, "uint8", [layers, heads, tr, tc]),
      layer_mean: wire(means, "uint8", [layers, tr, tc]), size: tc };
    if (arrays.color_by) data.color_by = wire(arrays.color_by.data, "float32", arrays.color_by.shape);
    return data;
  }

  const image = meta.image && arrays.picture ? meta.image : null;
  const pictureTrait = image
    ? { picture: wire(arrays.picture.data, "uint8", arrays.picture.shape), grid: [...image.grid],
      patch_start: image.patch_start ?? 0 }
    : {};

  return {
    layers, heads, n, nKeys, cross, factor: f, factorKeys: fk, isFull, isExact, heatmap, lines, row, rollout,
    hasRollout, hasRolloutRow, graph, hasGraph, grid,
    /** The `image` trait: {picture, grid, patch_start} of a vision capture, else {} (one object). */
    picture: () => pictureTrait,
    /** A row over this part's tokens ([n] values) cut into the patch grid and the other tokens. */
    patches: (values) => splitPatches(values, image),
  };
}
