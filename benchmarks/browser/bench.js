// Browser benchmark page: renders the built bundle (/widget.js) on a minimal stand-in for
// anywidget's model and times first paint and hover repaint. Its own copy, independent of
// tests/browser (the tests and the benchmarks must not depend on each other).
import widget from "/widget.js";

/** base64 -> DataView over a fresh buffer (what anywidget hands a view for a bytes value). */
function dataView(b64) {
  const text = atob(b64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return new DataView(bytes.buffer);
}

function revive(value) {
  if (Array.isArray(value)) return value.map(revive);
  if (value && typeof value === "object") {
    if (typeof value.__b64 === "string") return dataView(value.__b64);
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, revive(v)]));
  }
  return value;
}

/** The parts of anywidget's model API the view uses: get/set/on/off/save_changes/send. */
class Model {
  constructor(state) {
    this.state = { ...state };
    this.listeners = new Map();
    this.sets = [];
  }
  get(name) { return this.state[name]; }
  set(name, value) {
    this.sets.push(name);
    this.state[name] = value;
    for (const handler of [...(this.listeners.get(`change:${name}`) ?? [])]) handler();
  }
  save_changes() {}
  send() {}
  on(event, handler) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(handler);
  }
  off(event, handler) {
    if (!handler) this.listeners.delete(event);
    else this.listeners.get(event)?.delete(handler);
  }
}

/** Resolves inside the next requestAnimationFrame callback: the start of a frame. */
const frameStart = () => new Promise((resolve) => requestAnimationFrame(() => resolve()));
/** Resolves in a task queued now: when called during a frame, after that frame's style, layout and paint. */
const afterFrame = () => new Promise((resolve) => {
  const channel = new MessageChannel();
  channel.port1.onmessage = () => resolve();
  channel.port2.postMessage(0);
});

let state = null;
let model = null;

/** Decode the state (not timed: in a notebook the comm delivers the buffers already decoded);
 * `overrides` replaces traits (e.g. {view: "text"}). */
window.loadState = (json, overrides = {}) => {
  state = { ...revive(json), ...overrides };
  return true;
};

/** Time render({model, el}) inside a frame, and that frame's rendering. */
window.firstPaint = async () => {
  const el = document.getElementById("root");
  model = new Model(state);
  await frameStart();
  const t0 = performance.now();
  window.__cleanup = widget.render({ model, el });
  const t1 = performance.now();
  await afterFrame();
  const t2 = performance.now();
  return { render_ms: t1 - t0, paint_ms: t2 - t0 };
};

/** Painted (non-transparent) pixels of a canvas: proves the view drew something. */
window.paintedPixels = (selector) => {
  const canvas = document.querySelector(selector);
  if (!canvas) return -1;
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted += 1;
  return painted;
};

/** A small deterministic PRNG (mulberry32). */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `count` pointer moves over random heatmap cells (lower triangle for causal models), each
 * dispatched at the start of a frame; per move: the synchronous handler time (hit test, tooltip,
 * overlay redraw, model.set -> grid + heatmap hover highlight) and the time to the end of that
 * frame's rendering. Plus `count` idle frames (no event) for the baseline.
 */
window.hoverBench = async (count, seed = 1) => {
  const base = document.querySelector(".attnwidget-heatmap-base");
  const geometry = JSON.parse(base.parentElement.dataset.geometry);
  const rect = base.getBoundingClientRect();
  const random = rng(seed);
  const causal = !!state.is_causal;
  const moves = [];
  const idle = [];
  const before = model.sets.filter((n) => n === "hovered_token").length;
  for (let i = 0; i < count; i++) {
    const row = geometry.row0 + Math.floor(random() * geometry.rows);
    const span = causal ? row - geometry.col0 + 1 : geometry.cols;
    const col = geometry.col0 + Math.floor(random() * Math.max(1, Math.min(span, geometry.cols)));
    const x = rect.left + geometry.left + (col - geometry.col0 + 0.5) * geometry.cellW;
    const y = rect.top + geometry.top + (row - geometry.row0 + 0.5) * geometry.cellH;
    await frameStart();
    const t0 = performance.now();
    base.dispatchEvent(new PointerEvent("pointermove", {
      clientX: x, clientY: y, bubbles: true, cancelable: true, pointerId: 1, pointerType: "mouse", isPrimary: true,
    }));
    const t1 = performance.now();
    await afterFrame();
    const t2 = performance.now();
    moves.push([t1 - t0, t2 - t0]);
  }
  for (let i = 0; i < count; i++) {
    await frameStart();
    const t0 = performance.now();
    await afterFrame();
    idle.push(performance.now() - t0);
  }
  const hovers = model.sets.filter((n) => n === "hovered_token").length - before;
  return { moves, idle, hovers, cellW: geometry.cellW, cellH: geometry.cellH };
};

/**
 * The text view: `count` pointer moves over random visible tokens, each dispatched at the start of a
 * frame (time to the end of that frame: hit test, tooltip, overlay, hovered_token -> grid highlight);
 * then `count` new text_data values (what the kernel sends after a hover: another focus token's row),
 * each set at the start of a frame (time to the end of that frame: recolouring the visible lines and
 * the minimap).
 */
window.textHoverBench = async (count, seed = 2) => {
  const box = document.querySelector(".attnwidget-text");
  const target = box.querySelector(".attnwidget-text-scroll");
  const base = box.querySelector(".attnwidget-text-base");
  const random = rng(seed);
  const geometry = JSON.parse(box.dataset.geometry);
  const indices = Object.keys(geometry.boxes).map(Number);
  const rect = base.getBoundingClientRect();
  const moves = [];
  for (let i = 0; i < count; i++) {
    const [x, y, w, h] = geometry.boxes[indices[Math.floor(random() * indices.length)]];
    await frameStart();
    const t0 = performance.now();
    target.dispatchEvent(new PointerEvent("pointermove", {
      clientX: rect.left + x + w / 2, clientY: rect.top + y + h / 2, bubbles: true, cancelable: true,
      pointerId: 1, pointerType: "mouse", isPrimary: true,
    }));
    const t1 = performance.now();
    await afterFrame();
    moves.push([t1 - t0, performance.now() - t0]);
  }
  const original = state.text_data;
  const values = new Float32Array(original.values.buffer.byteLength / 4);
  new Uint8Array(values.buffer).set(new Uint8Array(original.values.buffer.buffer, original.values.buffer.byteOffset,
    original.values.buffer.byteLength));
  const updates = [];
  for (let i = 0; i < count; i++) {
    const shifted = new Float32Array(values.length);
    const by = 1 + Math.floor(random() * 64);
    shifted.set(values.subarray(by));
    const next = { ...original, token: Math.max(0, original.token - by),
      values: { ...original.values, buffer: new DataView(shifted.buffer) } };
    await frameStart();
    const t0 = performance.now();
    model.set("text_data", next);
    const t1 = performance.now();
    await afterFrame();
    updates.push([t1 - t0, performance.now() - t0]);
  }
  return { moves, updates, tokens: indices.length };
};

window.benchReady = true;
