// Test harness: a fake anywidget model (records calls and listeners) and a mount helper.
import widget from "/widget.js";

/** base64 -> DataView at byte offset 1 of its buffer (unaligned, like a notebook's). */
function unalignedView(b64) {
  const text = atob(b64);
  const host = new Uint8Array(text.length + 1);
  for (let i = 0; i < text.length; i++) host[i + 1] = text.charCodeAt(i);
  return new DataView(host.buffer, 1, text.length);
}

/** Replace {__wire, b64, dtype, shape} markers with wire dicts holding DataViews. */
function revive(value) {
  if (Array.isArray(value)) return value.map(revive);
  if (value && typeof value === "object") {
    if (value.__wire) return { buffer: unalignedView(value.b64), dtype: value.dtype, shape: value.shape };
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, revive(v)]));
  }
  return value;
}

/** Bytes of an ArrayBuffer, typed array or DataView. */
const bytesOf = (b) => (b instanceof ArrayBuffer ? new Uint8Array(b) : new Uint8Array(b.buffer, b.byteOffset, b.byteLength));

/** Bytes -> base64 (in chunks: a PNG has more bytes than a call may take arguments). */
function toBase64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 8192) text += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return btoa(text);
}

class FakeModel {
  constructor(state) {
    this.state = { ...state };
    this.listeners = new Map();
    this.calls = { set: [], save: 0, send: [], buffers: [] };
    this.pending = {}; // values set since the last save_changes (what a kernel would receive)
    this.inFlight = 0; // kernel round trips not answered yet
  }
  get(name) { return this.state[name]; }
  set(name, value) {
    this.calls.set.push([name, value]);
    this.pending[name] = value;
    this.state[name] = value;
    this.emit(`change:${name}`);
  }
  save_changes() {
    this.calls.save += 1;
    const changes = this.pending;
    this.pending = {};
    this.toKernel({ state: changes });
  }
  /** anywidget's model.send(content, callbacks, buffers); buffers are recorded as byte arrays. */
  send(message, callbacks, buffers) {
    this.calls.send.push(message);
    this.calls.buffers.push((buffers ?? []).map((b) => Array.from(bytesOf(b))));
    if (typeof window.__kernel === "function") {
      this.toKernel({ msg: message, buffers: (buffers ?? []).map((b) => toBase64(bytesOf(b))) });
    }
  }
  /** With a Python widget behind the page (tests/browser/kernel_bridge.py): send, then apply its answer. */
  toKernel(payload) {
    if (typeof window.__kernel !== "function") return;
    this.inFlight += 1;
    window.__kernel(payload).then((answer) => {
      this.kernelUpdate(answer.state);
      for (const { content, buffers } of answer.messages) {
        this.emit("msg:custom", revive(content), buffers.map((b) => unalignedView(b)));
      }
    }).catch((error) => { window.__kernelErrors = [...(window.__kernelErrors ?? []), String(error)]; })
      .finally(() => { this.inFlight -= 1; });
  }
  /** Several kernel changes at once: every value first, then the change events (as Backbone does). */
  kernelUpdate(changes) {
    for (const [name, value] of Object.entries(changes)) this.state[name] = revive(value);
    for (const name of Object.keys(changes)) this.emit(`change:${name}`);
  }
  on(event, handler) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(handler);
  }
  off(event, handler) {
    if (!handler) this.listeners.delete(event);
    else this.listeners.get(event)?.delete(handler);
  }
  emit(event, ...args) {
    for (const handler of [...(this.listeners.get(event) ?? [])]) handler(...args);
  }
  /** What the kernel does: change state without recording a front-end set. */
  kernelSet(name, value) {
    this.state[name] = revive(value);
    this.emit(`change:${name}`);
  }
  listenerCount() {
    let count = 0;
    for (const handlers of this.listeners.values()) count += handlers.size;
    return count;
  }
}

window.mountWidget = (state) => {
  const el = document.getElementById("root");
  const model = new FakeModel(revive(state));
  window.__model = model;
  window.__cleanup = widget.render({ model, el });
  return model.listenerCount();
};

/** Count pixels of a canvas that are not transparent (the background shows through). */
window.paintedPixels = (selector) => {
  const canvas = document.querySelector(selector);
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  const colors = new Set();
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] > 0) {
      painted += 1;
      if (colors.size < 64) colors.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
    }
  }
  return { painted, colors: colors.size };
};

window.harnessReady = true;
