// A kernel-free anywidget model for pages written by attnwidget.export_html (docs/export.md).
//
// The page embeds precomputed arrays (base64, optionally zlib) and the initial trait values.
// StaticModel implements get/set/on/off/save_changes/send like anywidget's model and answers the
// widget's changes the way the Python observers in attnwidget/widget.py do, from the embedded data:
// layer/head -> heatmap_data (+ lines/graph), hovered_token -> lines_data (+ rollout, text, image),
// view -> ..., part -> every trait of the part (an encoder-decoder capture; see _widget_parts.py).
// The data accessors live in static_data.js; everything except modelFromPayload is synchronous.

import { createData, decodeArrays, wire } from "./static_data.js";

export {
  base64ToBytes, createData, decodeArrays, decodeEmbedded, inflate, maxPool, splitPatches, toArray, wire,
} from "./static_data.js";

const same = (a, b) => a === b || (Array.isArray(a) && Array.isArray(b) && a.length === b.length &&
  a.every((v, i) => v === b[i]));
/** The traits a part switch sets from the part (besides the selection and the data). */
const PART_TRAITS = ["tokens", "key_tokens", "num_layers", "num_heads", "is_causal", "is_cross", "views"];
const ROW_VIEWS = ["text", "rollout", "image"]; // views that follow the focus token

/** The anywidget model over embedded data.
 * state: initial trait values; data: createData() of the part shown; meta: its meta;
 * parts: {name: {state: part traits, meta, data}} of an encoder-decoder capture (default: one part). */
export class StaticModel {
  constructor(state, data, meta = {}, parts = null) {
    this.state = { ...state };
    this.parts = parts ?? { [state.part ?? ""]: { state: {}, meta, data } };
    this.data = data;
    this.meta = meta;
    this.listeners = new Map();
    this.dirty = new Set();
    this.held = null;
    this.direction = "from";
    this.saves = 0;
    this.sent = [];
    // No listener is registered yet: these only fill the state.
    if (this.state.key_tokens == null) this.state.key_tokens = this.state.tokens;
    if (this.state.model_name == null) this.state.model_name = ""; // the figures' titles (version 1 pages: none)
    if (this.state.image == null) this.state.image = data.picture?.() ?? {};
    this.put("grid_data", data.grid());
    this.pushSelection();
    this.pushView();
    this.pushStatus();
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

  /** Like the kernel: react to what the page changed since the last save (attnwidget/widget.py's
   * observers), then send the changed traits back at once, as one message would. */
  save_changes() {
    this.saves += 1;
    const changed = this.dirty;
    this.dirty = new Set();
    const has = (name) => changed.has(name);
    this.hold(() => {
      if (has("part") && this.switchPart(this.state.part)) return; // the switch resets everything else
      const { view } = this.state;
      if (has("text_source") && this.state.is_cross && this.state.text_source !== "attention") {
        this.put("text_source", "attention"); // cross-attention has no rollout or flow (the kernel refuses)
      }
      if (has("layer") || has("head")) this.pushSelection();
      if (has("hovered_token")) {
        const token = this.state.hovered_token;
        if (token != null) {
          if (this.state.is_cross) this.direction = "from"; // a hovered token is a target token: its row
          this.pushLines(token);
        }
        if (ROW_VIEWS.includes(view)) this.pushView();
      }
      if (has("selected_tokens") && ROW_VIEWS.includes(view)) this.pushView();
      if (has("view")) this.pushView();
      if (has("text_source") && (view === "text" || view === "image")) this.pushView();
      this.pushStatus();
    });
  }

  /** Messages the widget sends to the kernel, answered from the embedded data. */
  send(message) {
    this.sent.push(message);
    if (message?.type === "lines_hover") {
      this.direction = message.direction === "to" ? "to" : "from";
      const size = this.direction === "to" ? this.data.nKeys ?? this.data.n : this.data.n;
      const token = message.token;
      if (Number.isInteger(token) && token >= 0 && token < size) this.pushLines(token);
    } else if (message?.type === "tile_request" && this.data.isExact(this.state.layer)) {
      const { layer, part } = this.state;
      const head = this.state.head ?? null;
      const tile = this.data.heatmap(layer, head, message);
      setTimeout(() => { // a kernel answers later; drop answers for a selection that changed meanwhile
        if (this.state.layer !== layer || (this.state.head ?? null) !== head || this.state.part !== part) return;
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

  /** Run `fn`, then fire one change event per trait it put: like a kernel's message, the page sees
   * every new value before the first event (Backbone's set of many attributes). */
  hold(fn) {
    if (this.held) return fn();
    this.held = new Set();
    try {
      return fn();
    } finally {
      const names = this.held;
      this.held = null;
      for (const name of names) this.emit(`change:${name}`, this.state[name]);
    }
  }

  /** Set a trait as the kernel would (no save needed). */
  put(name, value) {
    this.state[name] = value;
    if (this.held) this.held.add(name);
    else this.emit(`change:${name}`, value);
  }

  focus() {
    const { hovered_token: hovered, selected_tokens: selected, is_causal: causal } = this.state;
    if (hovered != null) return hovered;
    if (selected?.length) return selected[selected.length - 1];
    return causal ? this.data.n - 1 : 0;
  }

  /** Show part `name` like attnwidget/_widget_parts.py Parts._show: the part's traits, the layer
   * clamped, a head it lacks becomes the mean, the selection cleared, a view it does not offer falls
   * back to the heatmap, cross-attention's text source to attention. False for an unknown part. */
  switchPart(name) {
    const part = this.parts[name];
    if (!part) {
      this.put("part", this.current ?? Object.keys(this.parts)[0]);
      return false;
    }
    this.data = part.data;
    this.meta = part.meta;
    this.direction = "from";
    const traits = part.state ?? {};
    const layer = Math.min(this.state.layer ?? 0, traits.num_layers - 1);
    const head = this.state.head == null || this.state.head < traits.num_heads ? this.state.head ?? null : null;
    this.hold(() => {
      for (const trait of PART_TRAITS) if (trait in traits) this.put(trait, traits[trait]);
      if (this.state.image !== part.data.picture()) this.put("image", part.data.picture());
      this.put("hovered_token", null);
      this.put("selected_tokens", []);
      this.put("layer", layer);
      this.put("head", head);
      if (Array.isArray(traits.views) && !traits.views.includes(this.state.view)) this.put("view", "heatmap");
      if (traits.is_cross && this.state.text_source != null && this.state.text_source !== "attention") {
        this.put("text_source", "attention");
      }
      for (const trait of ["lines_data", "graph_data", "rollout_data", "text_data", "image_data"]) this.put(trait, {});
      this.put("grid_data", part.data.grid());
      this.pushSelection();
      this.pushView();
    });
    return true;
  }

  get current() {
    return Object.keys(this.parts).find((name) => this.parts[name].data === this.data);
  }

  statusText() {
    const { layer, head, view, part } = this.state;
    let text = `${part ? `${part}: ` : ""}layer ${layer}, ${head == null ? "mean of heads" : `head ${head}`}`;
    if (view === "graph" && !this.data.hasGraph(layer, head ?? null)) {
      const g = this.meta.graph;
      const which = g ? `${g.head == null ? "mean of heads" : `head ${g.head}`}` : "";
      text += g ? ` (graph embedded for layer ${g.layer}, ${which} only)` : " (graph not embedded)";
    } else if (view === "rollout" && !this.data.hasRolloutRow(this.focus()) && this.meta.rollout_rows) {
      text += ` (rollout embedded for row ${this.meta.rollout_rows.join(", ")} only)`;
    }
    return text;
  }

  pushStatus() {
    const text = this.statusText();
    if (text !== this.state.status) this.put("status", text);
  }

  title() {
    const { layer, head, part } = this.state;
    const what = `layer ${layer}, ${head == null ? "mean of heads" : `head ${head}`}`;
    return part ? `${part}: ${what}` : what;
  }

  /** attnwidget/widget.py _push_selection: heatmap, lines, graph, the row views, status. */
  pushSelection() {
    const { layer } = this.state;
    const head = this.state.head ?? null;
    this.put("heatmap_data", { ...this.data.heatmap(layer, head), title: this.title() });
    if (this.state.hovered_token != null || this.state.view === "lines") this.pushLines(this.focus());
    else if (this.state.lines_data == null) this.state.lines_data = {};
    if (this.state.view === "graph") this.pushGraph();
    else this.put("graph_data", {});
    if (this.state.view === "text" || this.state.view === "image") this.pushView();
    this.pushStatus();
  }

  /** attnwidget/widget.py _push_view: what the current view needs beyond the heatmap. */
  pushView() {
    const { view } = this.state;
    if (view === "graph") this.pushGraph();
    else if (view === "rollout") this.pushRollout();
    else if (view === "text") this.pushText();
    else if (view === "image") this.pushImage();
    else if (view === "lines" && !this.state.lines_data?.weights) this.pushLines(this.focus());
  }

  pushLines(token) {
    const head = this.state.head ?? null;
    this.put("lines_data", this.data.lines(this.state.layer, head, token, this.direction));
  }

  pushGraph() {
    this.put("graph_data", this.data.graph(this.state.layer, this.state.head ?? null) ?? {});
  }

  pushRollout() {
    this.put("rollout_data", this.data.rollout(this.focus()) ?? {});
  }

  /** The row of `token` the text and image views colour by (attnwidget/_widget_rollout.py
   * _text_values): its attention in the selected layer (each head, or the mean; at block resolution
   * where the heatmaps are pooled), its rollout row or its flow, where embedded.
   * {values: Float32Array | null, note}. */
  rowValues(token) {
    const source = this.state.text_source ?? "attention";
    const { layer } = this.state;
    const head = this.state.head ?? null;
    if (source === "rollout") {
      const row = this.data.rollout(token);
      const rows = this.meta.rollout_rows;
      const label = this.meta.rollout_label ?? "rollout";
      return row ? { values: floats(row.values), note: `${label} of token ${token} over all layers` }
        : { values: null, note: rows ? `rollout embedded for row ${rows.join(", ")} only` : "no rollout embedded" };
    }
    if (source === "flow") {
      const flow = this.meta.flow_row === token ? this.data.rollout(token)?.flow : null;
      return flow ? { values: floats(flow), note: `attention flow into token ${token}` }
        : { values: null, note: `flow embedded for row ${this.meta.flow_row ?? "none"} only` };
    }
    const what = head == null ? "mean of heads" : `head ${head}`;
    const pooled = this.data.isExact(layer) ? "" : " (embedded at block resolution)";
    const note = this.state.is_cross
      ? `cross-attention of target token ${token} over the source, layer ${layer}, ${what}${pooled}`
      : `attention of token ${token}, layer ${layer}, ${what}${pooled}`;
    return { values: this.data.row(layer, head, token), note };
  }

  pushText() {
    const token = this.focus();
    const { values, note } = this.rowValues(token);
    const data = { token, source: this.state.text_source ?? "attention", note };
    if (values) data.values = wire(values, "float32", [values.length]);
    this.put("text_data", data);
  }

  /** image_data: the focus token's row over the patch grid (attnwidget/_widget_image.py _push_image). */
  pushImage() {
    if (!this.data.picture().picture) {
      this.put("image_data", {});
      return;
    }
    const token = this.focus();
    const { values, note } = this.rowValues(token);
    const data = { token, source: this.state.text_source ?? "attention", note };
    if (values) Object.assign(data, this.data.patches(values));
    this.put("image_data", data);
  }
}

/** The float32 values of a wire dict. */
function floats(w) {
  return new Float32Array(w.buffer.buffer, w.buffer.byteOffset, w.buffer.byteLength / 4);
}

/** The page's entry point: payload JSON -> a ready StaticModel. Version 1: one part (meta, arrays);
 * version 2 adds `parts` ({name: {state, meta, arrays}}) for an encoder-decoder capture. */
export async function modelFromPayload(payload) {
  if (payload?.format !== "attnwidget-static") throw new Error("not an attnwidget export payload");
  if (payload.version !== 1 && payload.version !== 2) {
    throw new Error(`unsupported export format version ${payload.version}`);
  }
  const opening = payload.state?.part ?? "";
  const entries = payload.parts ?? { [opening]: { state: {}, meta: payload.meta, arrays: payload.arrays } };
  const parts = {};
  await Promise.all(Object.entries(entries).map(async ([name, entry]) => {
    const arrays = await decodeArrays(entry);
    parts[name] = { state: entry.state ?? {}, meta: entry.meta, data: createData(arrays, entry.meta) };
  }));
  const first = parts[opening] ?? Object.values(parts)[0];
  return new StaticModel({ ...first.state, ...payload.state }, first.data, first.meta, parts);
}
