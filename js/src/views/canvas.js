// Shared DOM helpers for the views: listener bookkeeping, DPR-aware stacked canvases, a text-only
// tooltip, figure scenes (figure.js) drawn on canvases, PNG and SVG export. No widget model in here,
// except answerFigureRequest, which answers the kernel through the model it is given.

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

/**
 * A widget model's events and writes for one rendered view: on(event, handler) subscribes and records
 * it, save({name: value, ...}) sets the traits and syncs them in one message, removeAll() unsubscribes
 * everything on(...) subscribed (the view's teardown).
 */
export function modelBinding(model) {
  const subscriptions = [];
  return {
    on(event, handler) {
      model.on(event, handler);
      subscriptions.push([event, handler]);
    },
    save(changes) {
      for (const [name, value] of Object.entries(changes)) model.set(name, value);
      model.save_changes();
    },
    removeAll() {
      for (const [event, handler] of subscriptions) model.off(event, handler);
      subscriptions.length = 0;
    },
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
    /** Both layers (or the base alone: {overlay: false}) flattened onto a new canvas with a solid background. */
    toCanvas(background, { overlay: withOverlay = true } = {}) {
      const out = document.createElement("canvas");
      out.width = base.width;
      out.height = base.height;
      const ctx = out.getContext("2d");
      if (background) {
        ctx.fillStyle = background;
        ctx.fillRect(0, 0, out.width, out.height);
      }
      ctx.drawImage(base, 0, 0);
      if (withOverlay) ctx.drawImage(overlay, 0, 0);
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

/**
 * measure(text, {size, mono, weight}) -> width in CSS px, for figure.js layouts, on the context that
 * `context()` returns (a stack's base context changes when it is resized).
 */
export function canvasMeasure(context, theme) {
  return (text, font = {}) => {
    const ctx = context();
    setFont(ctx, font.size ?? 10, font.mono ? theme.monoFamily : theme.fontFamily, font.weight ?? "normal");
    return ctx.measureText(String(text)).width;
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
  const handle = {
    canvas: stack.base,
    box: stack.box,
    toCanvas: () => stack.toCanvas(theme.background),
    /** The base drawing alone (no hover overlay) at `scale` px per CSS px: the view's PNG export. */
    toFigure: (scale = 2) => resample(stack.toCanvas(theme.background, { overlay: false }),
      Math.round(stack.width * scale), Math.round(stack.height * scale)),
    destroy() {
      listeners.removeAll();
      stack.remove();
    },
    ...methods,
  };
  // A view with its own toCanvas (the text view adds its minimap) and no toFigure exports that canvas.
  if (methods.toCanvas && !methods.toFigure) delete handle.toFigure;
  return handle;
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

// ---- figures (figure.js scenes) ---------------------------------------------------------------

const sourceCanvases = new WeakMap(); // a scene image's source -> its canvas (one pixel a cell)

/** The canvas of a scene image's source ({rows, cols, rgba}), made once per source. */
export function sourceCanvas(source) {
  let canvas = sourceCanvases.get(source);
  if (!canvas) {
    canvas = document.createElement("canvas");
    canvas.width = Math.max(1, source.cols);
    canvas.height = Math.max(1, source.rows);
    if (source.cols > 0 && source.rows > 0) {
      canvas.getContext("2d").putImageData(new ImageData(source.rgba, source.cols, source.rows), 0, 0);
    }
    sourceCanvases.set(source, canvas);
  }
  return canvas;
}

const CANVAS_ALIGN = { start: "left", middle: "center", end: "right" };

/** Draw figure.js items on a 2-D context (CSS px; the context's transform sets the pixel scale). */
export function drawScene(ctx, items, fonts) {
  const patterns = new Map();
  const hatchOf = (color) => {
    if (!patterns.has(color)) patterns.set(color, hatchPattern(ctx, color));
    return patterns.get(color);
  };
  for (const item of items) {
    if (item.kind === "text") {
      setFont(ctx, item.size ?? 10, item.mono ? fonts.mono : fonts.ui, item.weight ?? "normal");
      ctx.fillStyle = item.color;
      ctx.textAlign = CANVAS_ALIGN[item.align] ?? "left";
      ctx.textBaseline = item.baseline ?? "alphabetic";
      if (item.rotate) {
        ctx.save();
        ctx.translate(item.x, item.y);
        ctx.rotate((item.rotate * Math.PI) / 180);
        ctx.fillText(item.text, 0, 0);
        ctx.restore();
      } else {
        ctx.fillText(item.text, item.x, item.y);
      }
    } else if (item.kind === "rect") {
      if (item.fill) {
        ctx.fillStyle = item.fill;
        ctx.fillRect(item.x, item.y, item.width, item.height);
      }
      if (item.hatch) {
        ctx.fillStyle = hatchOf(item.hatch);
        ctx.fillRect(item.x, item.y, item.width, item.height);
      }
      if (item.stroke) {
        ctx.strokeStyle = item.stroke;
        ctx.lineWidth = item.lineWidth ?? 1;
        ctx.strokeRect(item.x, item.y, item.width, item.height);
      }
    } else if (item.kind === "rects") {
      ctx.beginPath();
      for (const [x, y, w, h] of item.rects) ctx.rect(x, y, w, h);
      if (item.fill) { ctx.fillStyle = item.fill; ctx.fill(); }
      if (item.hatch) { ctx.fillStyle = hatchOf(item.hatch); ctx.fill(); }
    } else if (item.kind === "image") {
      const { source } = item;
      ctx.imageSmoothingEnabled = !!item.smooth;
      ctx.drawImage(sourceCanvas(source), item.sx ?? 0, item.sy ?? 0, item.sw ?? source.cols, item.sh ?? source.rows,
        item.x, item.y, item.width, item.height);
    } else if (item.kind === "gradient") {
      const up = item.direction !== "right";
      const gradient = up ? ctx.createLinearGradient(0, item.y + item.height, 0, item.y)
        : ctx.createLinearGradient(item.x, 0, item.x + item.width, 0);
      for (const stop of item.stops) gradient.addColorStop(stop.offset, stop.color);
      ctx.fillStyle = gradient;
      ctx.fillRect(item.x, item.y, item.width, item.height);
    } else if (item.kind === "clip") {
      ctx.save();
      ctx.beginPath();
      ctx.rect(item.x, item.y, item.width, item.height);
      ctx.clip();
      drawScene(ctx, item.items, fonts);
      ctx.restore();
    }
  }
}

/** A scene drawn on a new canvas at `scale` device pixels per CSS pixel, on its background. */
export function sceneCanvas(scene, scale = 2) {
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(scene.width * scale));
  canvas.height = Math.max(1, Math.round(scene.height * scale));
  const ctx = canvas.getContext("2d");
  ctx.setTransform(scale, 0, 0, scale, 0, 0);
  if (scene.background) {
    ctx.fillStyle = scene.background;
    ctx.fillRect(0, 0, scene.width, scene.height);
  }
  drawScene(ctx, scene.items, scene.fonts ?? {});
  return canvas;
}

/** A scene image's source as a PNG data URL (what svg.js embeds for large matrices). */
export function sourceDataURL(source) {
  return sourceCanvas(source).toDataURL("image/png");
}

/** `canvas` redrawn at width x height pixels (smoothed). */
export function resample(canvas, width, height) {
  if (canvas.width === width && canvas.height === height) return canvas;
  const out = document.createElement("canvas");
  out.width = Math.max(1, width);
  out.height = Math.max(1, height);
  const ctx = out.getContext("2d");
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(canvas, 0, 0, out.width, out.height);
  return out;
}

/**
 * What a view exports as PNG at `scale` pixels per CSS pixel: its figure (title, axes, colour bar,
 * no hover decorations) where it composes one (heatmap, grid: `toFigure`), otherwise its canvas
 * (`toCanvas`) resampled to the scale.
 */
export function figureCanvas(view, scale = 2) {
  if (typeof view.toFigure === "function") return view.toFigure(scale);
  const canvas = view.toCanvas();
  const css = view.box?.getBoundingClientRect?.();
  const width = css?.width || canvas.width / (globalThis.devicePixelRatio || 1);
  const height = css?.height || canvas.height / (globalThis.devicePixelRatio || 1);
  return resample(canvas, Math.round(width * scale), Math.round(height * scale));
}

/**
 * Answer the kernel's {type: "png_request" | "svg_request", request_id, view: "current" | "grid" |
 * "heatmap", scale?}: {type: "png" | "svg", request_id} with the file's bytes as
 * buffers[0], or {type, request_id, error} saying what failed. `views`: {grid, view, viewName}.
 */
export async function answerFigureRequest(model, message, { grid, view, viewName }) {
  const svg = message.type === "svg_request";
  const type = svg ? "svg" : "png";
  const { request_id: requestId } = message;
  try {
    const wanted = message.view ?? "current";
    const target = wanted === "grid" ? grid : view;
    const name = wanted === "grid" ? "grid" : viewName;
    if (!target) throw new Error(`the page has no ${wanted === "grid" ? "grid" : "view"} to export yet`);
    if (wanted === "heatmap" && viewName !== "heatmap") {
      throw new Error(`the page shows the ${viewName} view, not the heatmap: set view = "heatmap" first`);
    }
    if (svg) {
      if (typeof target.toSVG !== "function") throw new Error(`SVG export covers the heatmap and the grid, not the ${name} view`);
      const text = target.toSVG();
      if (!text) throw new Error(`the ${name} has nothing drawn yet`);
      const bytes = new TextEncoder().encode(text);
      model.send({ type, request_id: requestId }, undefined, [bytes.buffer]);
      return true;
    }
    const scale = Number(message.scale) > 0 ? Number(message.scale) : (globalThis.devicePixelRatio || 1);
    const canvas = figureCanvas(target, scale);
    const bytes = await canvasToPNGBytes(canvas);
    if (!bytes) throw new Error(`the browser could not encode the ${canvas.width} x ${canvas.height} px canvas as PNG`);
    model.send({ type, request_id: requestId }, undefined, [bytes]);
    return true;
  } catch (error) {
    console.warn("attnwidget", error);
    model.send({ type, request_id: requestId, error: String(error?.message ?? error) });
    return false;
  }
}
