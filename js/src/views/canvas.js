// Shared DOM helpers for the views: listener bookkeeping, DPR-aware stacked
// canvases, a text-only tooltip, and PNG export. No widget model in here.

/** Records every listener so destroy() can remove them all. */
export function createListeners() {
  const records = [];
  return {
    on(target, type, handler, options) {
      target.addEventListener(type, handler, options);
      records.push([target, type, handler, options]);
    },
    removeAll() {
      for (const [target, type, handler, options] of records) {
        target.removeEventListener(type, handler, options);
      }
      records.length = 0;
    },
    get count() { return records.length; },
  };
}

/** Create an element with a class and inline style (no HTML parsing). */
export function element(tag, className, style = {}) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  Object.assign(node.style, style);
  return node;
}

/** Size a canvas in CSS px with a device-pixel backing store; returns its scaled 2-D context. */
export function sizeCanvas(canvas, width, height) {
  const dpr = globalThis.devicePixelRatio || 1;
  canvas.width = Math.max(1, Math.round(width * dpr));
  canvas.height = Math.max(1, Math.round(height * dpr));
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return ctx;
}

/**
 * A positioned box holding stacked canvases (`base` for the slow drawing,
 * `overlay` for hover feedback), sized in CSS pixels, drawn at device pixels.
 */
export function createStack(parent, { name, width, height }) {
  const box = element("div", `attnwidget-view attnwidget-${name}`, {
    position: "relative", width: `${width}px`, height: `${height}px`, flex: "none",
  });
  box.dataset.view = name;
  const base = element("canvas", `attnwidget-${name}-base`, { position: "absolute", left: "0", top: "0" });
  const overlay = element("canvas", `attnwidget-${name}-overlay`, {
    position: "absolute", left: "0", top: "0", pointerEvents: "none",
  });
  box.append(base, overlay);
  parent.append(box);
  const stack = {
    box, base, overlay, width, height,
    baseCtx: sizeCanvas(base, width, height),
    overlayCtx: sizeCanvas(overlay, width, height),
    resize(w, h) {
      stack.width = w;
      stack.height = h;
      box.style.width = `${w}px`;
      box.style.height = `${h}px`;
      stack.baseCtx = sizeCanvas(base, w, h);
      stack.overlayCtx = sizeCanvas(overlay, w, h);
    },
    clear(ctx) {
      ctx.clearRect(0, 0, stack.width, stack.height);
    },
    /** Both layers flattened onto a new canvas with a solid background. */
    toCanvas(background) {
      const out = document.createElement("canvas");
      out.width = base.width;
      out.height = base.height;
      const ctx = out.getContext("2d");
      if (background) {
        ctx.fillStyle = background;
        ctx.fillRect(0, 0, out.width, out.height);
      }
      ctx.drawImage(base, 0, 0);
      ctx.drawImage(overlay, 0, 0);
      return out;
    },
    remove() {
      box.remove();
    },
  };
  return stack;
}

/** Pointer position in CSS pixels relative to an element. */
export function localPoint(event, target) {
  const rect = target.getBoundingClientRect();
  return { x: event.clientX - rect.left, y: event.clientY - rect.top };
}

/** A small tooltip whose content is only ever set through textContent. */
export function createTooltip(box, theme) {
  const tip = element("div", "attnwidget-tooltip", {
    position: "absolute", display: "none", pointerEvents: "none", zIndex: "2",
    padding: "2px 6px", borderRadius: "3px", whiteSpace: "pre", maxWidth: "360px",
    overflow: "hidden", textOverflow: "ellipsis",
    font: `12px ${theme.fontFamily}`, color: theme.foreground, background: theme.background,
    border: `1px solid ${theme.border}`, boxShadow: "0 1px 4px rgba(0,0,0,0.25)",
  });
  box.append(tip);
  return {
    el: tip,
    show(text, x, y) {
      tip.textContent = text;
      tip.style.display = "block";
      const width = box.clientWidth || 0;
      const left = x + 12 + tip.offsetWidth > width ? Math.max(0, x - 12 - tip.offsetWidth) : x + 12;
      tip.style.left = `${left}px`;
      tip.style.top = `${Math.max(0, y + 12)}px`;
    },
    hide() {
      tip.style.display = "none";
    },
  };
}

/** Set a canvas font from a size in px, a family and a weight. */
export function setFont(ctx, size, family, weight = "normal") {
  ctx.font = `${weight} ${size}px ${family}`;
}

/** A canvas as a PNG Blob (null when the canvas cannot be encoded, e.g. zero-sized). */
export function canvasToBlob(canvas) {
  return new Promise((resolve) => {
    try {
      canvas.toBlob((blob) => resolve(blob ?? null), "image/png");
    } catch (error) {
      console.warn("attnwidget", error);
      resolve(null);
    }
  });
}

/** A canvas as PNG bytes (an ArrayBuffer starting with the PNG signature), or null. */
export async function canvasToPNGBytes(canvas) {
  const blob = await canvasToBlob(canvas);
  return blob ? blob.arrayBuffer() : null;
}

/** Download a canvas as a PNG through canvas.toBlob and a temporary <a download>. */
export async function downloadPNG(canvas, filename = "attention.png") {
  const blob = await canvasToBlob(canvas);
  if (!blob) return false;
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.style.display = "none";
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
  return true;
}

/** Diagonal hatch pattern used to mask cells a causal model cannot attend to. */
export function hatchPattern(ctx, color) {
  const tile = document.createElement("canvas");
  tile.width = 8;
  tile.height = 8;
  const t = tile.getContext("2d");
  t.strokeStyle = color;
  t.lineWidth = 1;
  t.beginPath();
  t.moveTo(0, 8);
  t.lineTo(8, 0);
  t.moveTo(-2, 2);
  t.lineTo(2, -2);
  t.moveTo(6, 10);
  t.lineTo(10, 6);
  t.stroke();
  return ctx.createPattern(tile, "repeat");
}

/**
 * Paint a [rows, cols] weight array into an offscreen canvas through a LUT. uint8 arrays hold
 * weight * 255; float arrays hold weights. `scale` (scale.js) maps a weight to 0..1; without one,
 * weights map linearly from 0 to 1.
 */
export function weightsImage(array, lut, scale = null) {
  const [rows, cols] = array.shape.slice(-2);
  const image = new ImageData(cols, rows);
  const unit = array.dtype === "uint8" ? 1 / 255 : 1;
  const { data } = array;
  for (let i = 0; i < rows * cols; i++) {
    const weight = data[i] * unit;
    const value = scale ? scale.t(weight) * 255 : weight * 255;
    const k = (value > 0 ? (value >= 255 ? 255 : Math.round(value)) : 0) * 4;
    image.data[i * 4] = lut[k];
    image.data[i * 4 + 1] = lut[k + 1];
    image.data[i * 4 + 2] = lut[k + 2];
    image.data[i * 4 + 3] = 255;
  }
  const canvas = document.createElement("canvas");
  canvas.width = cols;
  canvas.height = rows;
  canvas.getContext("2d").putImageData(image, 0, 0);
  return canvas;
}

/**
 * The handle every view returns: its canvas and box, a PNG-ready canvas, and a cleanup that removes
 * every listener and element. `methods` adds the view's own (update, setHovered, ...).
 */
export function viewHandle(stack, listeners, theme, methods) {
  return {
    canvas: stack.base,
    box: stack.box,
    toCanvas: () => stack.toCanvas(theme.background),
    destroy() {
      listeners.removeAll();
      stack.remove();
    },
    ...methods,
  };
}

/**
 * Follow the token under the pointer on `canvas`: `hitAt(point)` names it (or null), the tooltip
 * shows `describe(token)`, and `changed(token)` runs when it changes (null on leaving). A click
 * calls `click(token)` for the token under the pointer. Returns a getter for the current token.
 */
export function trackTokenPointer(listeners, canvas, tooltip, { hitAt, describe, changed, click }) {
  let token = null;
  const set = (next) => {
    if (next === token) return;
    token = next;
    changed(next);
  };
  listeners.on(canvas, "pointermove", (event) => {
    const point = localPoint(event, canvas);
    const hit = hitAt(point);
    if (hit != null) tooltip.show(describe(hit), point.x, point.y);
    else tooltip.hide();
    set(hit);
  });
  listeners.on(canvas, "pointerleave", () => {
    tooltip.hide();
    set(null);
  });
  listeners.on(canvas, "click", () => {
    if (token != null) click?.(token);
  });
  return () => token;
}
