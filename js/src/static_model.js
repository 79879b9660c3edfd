// A kernel-free anywidget model for pages written by attnwidget.export_html (docs/export.md).
//
// The page embeds precomputed arrays (base64, optionally zlib) and the initial trait values.
// StaticModel implements get/set/on/off/save_changes/send like anywidget's model and answers the
// widget's changes the way the Python observers in attnwidget/widget.py do, from the embedded data:
// layer/head -> heatmap_data (+ lines/graph), hovered_token -> lines_data (+ rollout), view -> ...
// Everything except modelFromPayload/inflate is synchronous and pure enough to test in node.

const TYPES = { uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array, int32: Int32Array,
  float32: Float32Array };
const TILE_SIDE = 512; // like attnwidget/reduce.py: tiles beyond this are max-pooled
const THUMB_SIDE = 64; // grid thumbnails: at most this side

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

/** IEEE 754 half bits -> number. */
function half(bits) {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** Raw little-endian bytes + dtype/shape -> {data, shape, dtype} (float16 widened to Float32Array). */
export function toArray(bytes, dtype, shape) {
  const count = shape.reduce((a, b) => a * b, 1);
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength); // aligned copy
  if (dtype === "float16") {
    const bits = new Uint16Array(buffer, 0, count);
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = half(bits[i]);
    return { data: out, shape, dtype: "float32" };
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

/** A wire dict for the widget (float32 / uint8 TypedArray -> {buffer: DataView, dtype, shape}). */
export function wire(data, dtype, shape) {
  return { buffer: new DataView(data.buffer, data.byteOffset, data.byteLength), dtype, shape };
}

/** Max over f x f cells of a [r, c] array (edges padded with zeros) -> {data, rows, cols}. */
export function maxPool(data, rows, cols, f) {
  const r2 = Math.ceil(rows / f);
  const c2 = Math.ceil(cols / f);
  const out = new data.constructor(r2 * c2);
  for (let i = 0; i < rows; i++) {
    const oi = Math.floor(i / f) * c2;
    for (let j = 0; j < cols; j++) {
      const v = data[i * cols + j];
      const o = oi + Math.floor(j / f);
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
 * Pure accessors over the decoded arrays.
 * arrays: {heat uint8 [L, H+1, s, s], heat_scale [L, H+1], full? uint8 [H+1, n, n], full_scale? [H+1],
 *          rollout float32 [R, n], color_by? [L, H], flow? [n], graph_pos/edges/weights?}
 * meta: {n, heat_factor, full_layer, rollout_rows: null (all) | [row], graph: {layer, head} | null, flow_row}
 */
export function createData(arrays, meta) {
  const { heat, heat_scale: heatScale } = arrays;
  const [layers, slots, side] = heat.shape;
  const heads = slots - 1;
  const n = meta.n;
  const f = meta.heat_factor ?? 1;
  const slot = (head) => (head == null ? heads : head);
  const isFull = (layer) => arrays.full != null && meta.full_layer === layer;

  /** The whole [n, n] (full) or [s, s] (pooled) matrix of one head / mean as float32 weights. */
  function matrix(layer, head) {
    if (isFull(layer)) {
      const s = slot(head);
      return { data: dequantise(arrays.full.data, s * n * n, n * n, arrays.full_scale.data[s]), rows: n, cols: n, pooled: false };
    }
    const s = slot(head);
    const index = layer * slots + s;
    return { data: dequantise(heat.data, index * side * side, side * side, heatScale.data[index]),
      rows: side, cols: side, pooled: f > 1 };
  }

  /** heatmap_data of a window (default: everything), max-pooled to TILE_SIDE like reduce.heatmap_tile. */
  function heatmap(layer, head, win = null) {
    const m = matrix(layer, head);
    if (m.pooled) {
      return { matrix: wire(m.data, "float32", [m.rows, m.cols]), row0: 0, col0: 0, n_rows: n, n_cols: n };
    }
    const row0 = Math.max(0, Math.floor(win?.row0 ?? 0));
    const col0 = Math.max(0, Math.floor(win?.col0 ?? 0));
    const rows = Math.max(1, Math.min(Math.floor(win?.rows ?? n - row0), n - row0));
    const cols = Math.max(1, Math.min(Math.floor(win?.cols ?? n - col0), n - col0));
    let block = new Float32Array(rows * cols);
    for (let i = 0; i < rows; i++) block.set(m.data.subarray((row0 + i) * n + col0, (row0 + i) * n + col0 + cols), i * cols);
    const factor = Math.max(1, Math.ceil(Math.max(rows, cols) / TILE_SIDE));
    let shape = [rows, cols];
    if (factor > 1) {
      const pooled = maxPool(block, rows, cols, factor);
      block = pooled.data;
      shape = [pooled.rows, pooled.cols];
    }
    return { matrix: wire(block, "float32", shape), row0, col0, n_rows: rows, n_cols: cols };
  }

  /** lines_data: every head (head null) or one head; row `token` ("from") or column ("to"). */
  function lines(layer, head, token, direction = "from") {
    const list = head == null ? Array.from({ length: heads }, (_, h) => h) : [head];
    const weights = new Float32Array(list.length * n);
    const full = isFull(layer);
    const cellSide = full ? n : side;
    const step = full ? 1 : f;
    list.forEach((h, k) => {
      const index = full ? h : layer * slots + h;
      const q = full ? arrays.full.data : heat.data;
      const scale = (full ? arrays.full_scale.data[h] : heatScale.data[index]) / 255;
      const base = index * cellSide * cellSide;
      const t = Math.floor(token / step);
      for (let j = 0; j < n; j++) {
        const c = Math.floor(j / step);
        const cell = direction === "to" ? c * cellSide + t : t * cellSide + c;
        weights[k * n + j] = q[base + cell] * scale;
      }
    });
    return { weights: wire(weights, "float32", [list.length, n]), token, direction, heads: list };
  }

  function hasRolloutRow(row) {
    return meta.rollout_rows == null || meta.rollout_rows.includes(row);
  }

  /** rollout_data for `row`, or null when that row is not embedded. */
  function rollout(row) {
    if (!hasRolloutRow(row)) return null;
    const index = meta.rollout_rows == null ? row : meta.rollout_rows.indexOf(row);
    const values = arrays.rollout.data.slice(index * n, (index + 1) * n);
    const data = { values: wire(values, "float32", [n]), row };
    if (arrays.flow && meta.flow_row === row) data.flow = wire(arrays.flow.data.slice(), "float32", [n]);
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

  /** grid_data: thumbnails max-pooled from the heatmaps to at most THUMB_SIDE, each scaled to its max. */
  function grid() {
    const g = Math.max(1, Math.ceil(side / THUMB_SIDE));
    const t = Math.ceil(side / g);
    const thumbs = new Uint8Array(layers * heads * t * t);
    const means = new Uint8Array(layers * t * t);
    for (let layer = 0; layer < layers; layer++) {
      for (let s = 0; s < slots; s++) {
        const index = layer * slots + s;
        const pooled = maxPool(heat.data.subarray(index * side * side, (index + 1) * side * side), side, side, g).data;
        let top = 0;
        for (const v of pooled) if (v > top) top = v;
        const target = s < heads ? thumbs.subarray((layer * heads + s) * t * t) : means.subarray(layer * t * t);
        for (let i = 0; i < t * t; i++) target[i] = top > 0 ? Math.round((pooled[i] * 255) / top) : 0;
      }
    }
    const data = { thumbs: wire(thumbs, "uint8", [layers, heads, t, t]),
      layer_mean: wire(means, "uint8", [layers, t, t]), size: t };
    if (arrays.color_by) data.color_by = wire(arrays.color_by.data, "float32", arrays.color_by.shape);
    return data;
  }

  return { layers, heads, n, factor: f, isFull, heatmap, lines, rollout, hasRolloutRow, graph, hasGraph, grid };
}

const same = (a, b) => a === b || (Array.isArray(a) && Array.isArray(b) && a.length === b.length &&
  a.every((v, i) => v === b[i]));

/** The anywidget model over embedded data (state: initial trait values, data: createData()). */
export class StaticModel {
  constructor(state, data, meta = {}) {
    this.state = { ...state };
    this.data = data;
    this.meta = meta;
    this.listeners = new Map();
    this.dirty = new Set();
    this.direction = "from";
    this.saves = 0;
    this.sent = [];
    this.put("grid_data", data.grid(), false);
    this.pushSelection(false);
    if (this.state.view === "rollout") this.pushRollout(false);
    if (this.state.view === "text") this.pushText(false);
  }

  get(name) { return this.state[name]; }

  set(name, value) {
    if (typeof name === "object" && name !== null) {
      for (const [key, v] of Object.entries(name)) this.set(key, v);
      return;
    }
    if (same(this.state[name], value)) return;
    this.state[name] = value;
    this.dirty.add(name);
    this.emit(`change:${name}`, value);
  }

  /** Like the kernel: react to what the page changed since the last save. */
  save_changes() {
    this.saves += 1;
    const changed = this.dirty;
    this.dirty = new Set();
    if (changed.has("layer") || changed.has("head")) this.pushSelection();
    if (changed.has("hovered_token")) {
      if (this.state.hovered_token != null) this.pushLines(this.state.hovered_token);
      if (this.state.view === "rollout") this.pushRollout();
    }
    if (changed.has("selected_tokens") && this.state.view === "rollout") this.pushRollout();
    const textInputs = ["hovered_token", "selected_tokens", "text_source", "layer", "head"];
    if (this.state.view === "text" && textInputs.some((name) => changed.has(name))) this.pushText();
    if (changed.has("view")) {
      if (this.state.view === "graph") this.pushGraph();
      else if (this.state.view === "rollout") this.pushRollout();
      else if (this.state.view === "text") this.pushText();
      else if (this.state.view === "lines" && !this.state.lines_data?.weights) this.pushLines(this.focus());
      this.pushStatus();
    }
  }

  /** Messages the widget sends to the kernel, answered from the embedded data. */
  send(message) {
    this.sent.push(message);
    if (message?.type === "lines_hover") {
      this.direction = message.direction === "to" ? "to" : "from";
      if (message.token != null) this.pushLines(message.token);
    } else if (message?.type === "tile_request" && this.data.isFull(this.state.layer)) {
      const layer = this.state.layer;
      const head = this.state.head ?? null;
      const tile = this.data.heatmap(layer, head, message);
      setTimeout(() => { // a kernel answers later; drop answers for a selection that changed meanwhile
        if (this.state.layer !== layer || (this.state.head ?? null) !== head) return;
        const { matrix, ...rest } = tile;
        this.emit("msg:custom", { type: "tile", ...rest, dtype: matrix.dtype, shape: matrix.shape }, [matrix.buffer]);
      }, 0);
    }
  }

  on(event, handler) {
    for (const name of String(event).split(/\s+/).filter(Boolean)) {
      if (!this.listeners.has(name)) this.listeners.set(name, new Set());
      this.listeners.get(name).add(handler);
    }
  }

  off(event, handler) {
    if (event == null) { this.listeners.clear(); return; }
    for (const name of String(event).split(/\s+/).filter(Boolean)) {
      if (handler == null) this.listeners.delete(name);
      else this.listeners.get(name)?.delete(handler);
    }
  }

  emit(event, ...args) {
    for (const handler of [...(this.listeners.get(event) ?? [])]) handler(...args);
  }

  /** Set a trait as the kernel would (no save needed). */
  put(name, value, notify = true) {
    this.state[name] = value;
    if (notify) this.emit(`change:${name}`, value);
  }

  focus() {
    const { hovered_token: hovered, selected_tokens: selected, is_causal: causal } = this.state;
    if (hovered != null) return hovered;
    if (selected?.length) return selected[selected.length - 1];
    return causal ? this.data.n - 1 : 0;
  }

  statusText() {
    const { layer, head, view } = this.state;
    let text = `layer ${layer}, ${head == null ? "mean of heads" : `head ${head}`}`;
    if (view === "graph" && !this.data.hasGraph(layer, head ?? null)) {
      const g = this.meta.graph;
      text += g ? ` (graph embedded for layer ${g.layer}, ${g.head == null ? "mean of heads" : `head ${g.head}`} only)` : " (graph not embedded)";
    } else if (view === "rollout" && !this.data.hasRolloutRow(this.focus())) {
      text += ` (rollout embedded for row ${this.meta.rollout_rows.join(", ")} only)`;
    }
    return text;
  }

  pushStatus(notify = true) {
    const text = this.statusText();
    if (text !== this.state.status || !notify) this.put("status", text, notify);
  }

  pushSelection(notify = true) {
    const { layer } = this.state;
    const head = this.state.head ?? null;
    this.put("heatmap_data", this.data.heatmap(layer, head), notify);
    if (this.state.hovered_token != null || this.state.view === "lines") this.pushLines(this.focus(), notify);
    else if (!notify) this.state.lines_data = {};
    if (this.state.view === "graph") this.pushGraph(notify);
    else this.put("graph_data", {}, notify);
    this.pushStatus(notify);
  }

  pushLines(token, notify = true) {
    const head = this.state.head ?? null;
    this.put("lines_data", this.data.lines(this.state.layer, head, token, this.direction), notify);
  }

  pushGraph(notify = true) {
    this.put("graph_data", this.data.graph(this.state.layer, this.state.head ?? null) ?? {}, notify);
    this.pushStatus(notify);
  }

  pushRollout(notify = true) {
    this.put("rollout_data", this.data.rollout(this.focus()) ?? {}, notify);
    this.pushStatus(notify);
  }

  /** text_data for the focus token from the embedded data: its attention row in the selected layer
   * (each head, or the mean; at block resolution where the heatmaps are pooled), its rollout row or
   * its flow, where embedded. */
  pushText(notify = true) {
    const token = this.focus();
    const source = this.state.text_source ?? "attention";
    const { layer } = this.state;
    const head = this.state.head ?? null;
    let values = null;
    let note;
    if (source === "rollout") {
      const row = this.data.rollout(token);
      values = row ? row.values : null;
      note = row ? `rollout of token ${token} over all layers`
        : `rollout embedded for row ${this.meta.rollout_rows.join(", ")} only`;
    } else if (source === "flow") {
      const row = this.meta.flow_row === token ? this.data.rollout(token) : null;
      values = row?.flow ?? null;
      note = values ? `attention flow into token ${token}` : `flow embedded for row ${this.meta.flow_row ?? "none"} only`;
    } else {
      // one row: the selected head, or the layer-mean slot (index = heads) for the mean of heads
      const row = this.data.lines(layer, head ?? this.data.heads, token, "from").weights;
      values = { ...row, shape: [row.shape[1]] };
      note = `attention of token ${token}, layer ${layer}, ${head == null ? "mean of heads" : `head ${head}`}` +
        (this.data.isFull(layer) || this.data.factor === 1 ? "" : " (embedded at block resolution)");
    }
    const data = { token, source, note };
    if (values) data.values = values;
    this.put("text_data", data, notify);
    this.pushStatus(notify);
  }
}

/** Decode every embedded array of a payload (JSON from the page). */
export async function decodeArrays(payload) {
  const entries = await Promise.all(Object.entries(payload.arrays).map(
    async ([name, entry]) => [name, await decodeEmbedded(entry)]));
  return Object.fromEntries(entries);
}

/** The page's entry point: payload JSON -> a ready StaticModel. */
export async function modelFromPayload(payload) {
  if (payload?.format !== "attnwidget-static") throw new Error("not an attnwidget export payload");
  if (payload.version !== 1) throw new Error(`unsupported export format version ${payload.version}`);
  const arrays = await decodeArrays(payload);
  return new StaticModel(payload.state, createData(arrays, payload.meta), payload.meta);
}
