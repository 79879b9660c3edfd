// Image view of a vision transformer: the picture, with the focused token's row (attention of the
// selected layer and head, rollout or flow) laid over its patch grid as a semi-transparent colour
// map, a colour bar, and the weight of the tokens that are not patches ([CLS], registers) as text.
//
// picture (options.picture): {picture: decoded uint8 [H, W, 3], grid: [rows, cols], patchStart}, sent once.
// data: {token (focus), values: decoded float32 [rows, cols] | null, others: decoded float32 [k] | null,
//        source, note}: the kernel pushes it for each focus.
// options: {theme, tokens, picture, scale: "linear" | "log" | "no_sink", size}
// callbacks: {hover(token|null), click(token)}
// Keyboard: the picture is focusable; arrow keys (Home, End) move between patches (a hover),
// Enter or Space selects the patch, Escape leaves it.

import { makeLUT, withAlpha } from "../colors.js";
import { visibleText } from "../layout.js";
import { fitImage, movePatch, otherTokens, patchAt, patchRect, patchToken, tokenPatch } from "../patches.js";
import { scaleFor } from "../scale.js";
import { drawColorBar } from "./colorbar.js";
import { createListeners, createStack, createTooltip, localPoint, setFont, viewHandle } from "./canvas.js";

const TOP = 26; // px above the picture for the caption
const BOTTOM = 44; // px below it for the other tokens and the keyboard hint
const PAD = 6;
const BAR = 64; // px right of the picture for the colour bar and its ticks
const ALPHA = 0.6; // opacity of the colour map over the picture
const LUT = makeLUT("magma"); // dark (little weight) to bright (much): readable over a photo on any theme

/** An ImageData as an offscreen canvas of its size. */
function offscreen(image) {
  const canvas = document.createElement("canvas");
  canvas.width = image.width;
  canvas.height = image.height;
  canvas.getContext("2d").putImageData(image, 0, 0);
  return canvas;
}

/** The picture as an offscreen canvas (RGB -> opaque RGBA). */
function pictureCanvas(picture) {
  const [height, width] = picture.shape;
  const image = new ImageData(width, height);
  const rgb = picture.data;
  for (let p = 0, q = 0; p < width * height; p++, q += 3) {
    image.data[4 * p] = rgb[q];
    image.data[4 * p + 1] = rgb[q + 1];
    image.data[4 * p + 2] = rgb[q + 2];
    image.data[4 * p + 3] = 255;
  }
  return offscreen(image);
}

/** The values [rows, cols] through the LUT as an offscreen canvas, one pixel per patch. */
function heatCanvas(values, scale) {
  const [rows, cols] = values.shape;
  const image = new ImageData(cols, rows);
  for (let i = 0; i < rows * cols; i++) {
    const k = Math.round(scale.t(values.data[i]) * 255) * 4;
    image.data[4 * i] = LUT[k];
    image.data[4 * i + 1] = LUT[k + 1];
    image.data[4 * i + 2] = LUT[k + 2];
    image.data[4 * i + 3] = 255;
  }
  return offscreen(image);
}

export function mountImage(parent, data, options, callbacks = {}) {
  const { theme } = options;
  const tokens = options.tokens ?? [];
  const size = options.size ?? 384;
  const source = options.picture ?? null;
  const grid = source?.grid ?? [1, 1];
  const patchStart = source?.patchStart ?? 0;
  const photo = source ? pictureCanvas(source.picture) : null;
  // The picture at most `size` px a side, its aspect kept, right under the caption.
  const fit = source ? fitImage(source.picture.shape[1], source.picture.shape[0], { left: PAD, top: TOP, width: size, height: size })
    : { left: PAD, top: TOP, width: size, height: size, scale: 1 };
  fit.top = TOP;
  fit.left = PAD;
  const width = PAD + Math.max(fit.width, 240) + BAR;
  const height = TOP + fit.height + BOTTOM;
  const listeners = createListeners();
  const stack = createStack(parent, { name: "image", width, height });
  const tooltip = createTooltip(stack.box, theme);
  stack.box.dataset.geometry = JSON.stringify({ ...fit, rows: grid[0], cols: grid[1], patchStart });

  const canvas = stack.base;
  canvas.tabIndex = 0;
  canvas.setAttribute("role", "application");
  canvas.setAttribute("aria-label", "Attention over the picture's patches. Arrow keys move between patches, "
    + "Enter selects the patch, Escape leaves it.");

  let current = null;
  let heat = null;
  let scale = null;
  let scaleKind = options.scale ?? "linear";
  let hoveredToken = null;
  let pointer = null; // patch under the pointer
  let cursor = null; // patch chosen with the keyboard
  let selected = new Set();

  function rescale() {
    const values = current?.values;
    // "no_sink" leaves out the first token; the map already leaves out [CLS] and the registers.
    scale = values ? scaleFor(scaleKind === "log" ? "log" : "linear", values.data) : null;
    heat = values && scale ? heatCanvas(values, scale) : null;
  }

  function outlinePatch(ctx, patch, color, lineWidth, fill = null) {
    if (!patch) return;
    const rect = patchRect(fit, grid, patch.r, patch.c);
    if (fill) {
      ctx.fillStyle = fill;
      ctx.fillRect(rect.x, rect.y, rect.width, rect.height);
    }
    ctx.strokeStyle = color;
    ctx.lineWidth = lineWidth;
    ctx.strokeRect(rect.x + lineWidth / 2, rect.y + lineWidth / 2, rect.width - lineWidth, rect.height - lineWidth);
  }

  function drawCaption(ctx) {
    setFont(ctx, 11, theme.fontFamily);
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    ctx.fillStyle = current?.values ? theme.foreground : theme.muted;
    const note = current ? current.note || `${current.source} of token ${current.token}` : "no values";
    ctx.fillText(note, PAD, TOP / 2, width - 2 * PAD);
  }

  function drawOthers(ctx) {
    const y = fit.top + fit.height + 14;
    setFont(ctx, 11, theme.fontFamily);
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    ctx.fillStyle = theme.foreground;
    const others = current?.others?.data;
    const parts = [];
    if (others && current.values) {
      const indices = otherTokens(patchStart, grid, tokens.length);
      let patches = 0;
      for (const v of current.values.data) patches += v;
      indices.forEach((token, k) => {
        if (k < others.length) parts.push(`${visibleText(tokens[token] ?? token)} ${others[k].toFixed(3)}`);
      });
      parts.push(`all patches ${patches.toFixed(3)}`);
    }
    ctx.fillText(parts.length ? `not on the map: ${parts.join(" · ")}` : "", PAD, y, width - 2 * PAD);
    ctx.fillStyle = theme.muted;
    setFont(ctx, 10, theme.fontFamily);
    ctx.fillText("hover or use the arrow keys to move between patches; click or Enter selects", PAD, y + 18,
      width - 2 * PAD);
  }

  function drawBase() {
    const ctx = stack.baseCtx;
    stack.clear(ctx);
    drawCaption(ctx);
    ctx.fillStyle = withAlpha(theme.border, 0.3);
    ctx.fillRect(fit.left, fit.top, fit.width, fit.height);
    if (photo) {
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(photo, fit.left, fit.top, fit.width, fit.height);
    }
    if (heat) {
      ctx.save();
      ctx.globalAlpha = ALPHA;
      ctx.imageSmoothingEnabled = false; // one block per patch
      ctx.drawImage(heat, fit.left, fit.top, fit.width, fit.height);
      ctx.restore();
    }
    ctx.strokeStyle = "rgba(255,255,255,0.22)"; // the patch grid, faint on any picture
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (let r = 1; r < grid[0]; r++) {
      const y = Math.round(fit.top + (r * fit.height) / grid[0]) + 0.5;
      ctx.moveTo(fit.left, y);
      ctx.lineTo(fit.left + fit.width, y);
    }
    for (let c = 1; c < grid[1]; c++) {
      const x = Math.round(fit.left + (c * fit.width) / grid[1]) + 0.5;
      ctx.moveTo(x, fit.top);
      ctx.lineTo(x, fit.top + fit.height);
    }
    ctx.stroke();
    for (const token of selected) outlinePatch(ctx, tokenPatch(patchStart, grid, token), theme.accent, 2);
    outlinePatch(ctx, tokenPatch(patchStart, grid, current?.token), theme.foreground, 2);
    ctx.strokeStyle = theme.border;
    ctx.strokeRect(fit.left - 0.5, fit.top - 0.5, fit.width + 1, fit.height + 1);
    if (scale) {
      drawColorBar(ctx, LUT, scale, { x: fit.left + fit.width + 10, y: fit.top + 14, width: 12, height: fit.height - 14 },
        theme, current.source);
    }
    drawOthers(ctx);
    drawOverlay();
  }

  function drawOverlay() {
    const ctx = stack.overlayCtx;
    stack.clear(ctx);
    const patch = pointer ?? cursor ?? tokenPatch(patchStart, grid, hoveredToken);
    outlinePatch(ctx, patch, theme.highlight, 3, withAlpha(theme.highlight, 0.15));
  }

  function describe(patch) {
    const token = patchToken(patchStart, grid, patch.r, patch.c);
    const i = patch.r * grid[1] + patch.c;
    const value = current?.values ? `\n${current.source} ${current.values.data[i].toFixed(4)} (from token ${current.token})` : "";
    return `token ${token}: ${visibleText(tokens[token] ?? `patch ${patch.r},${patch.c}`)}${value}`;
  }

  const hoverPatch = (patch) => callbacks.hover?.(patch ? patchToken(patchStart, grid, patch.r, patch.c) : null);

  listeners.on(canvas, "pointermove", (event) => {
    const point = localPoint(event, canvas);
    const hit = source ? patchAt(fit, grid, point.x, point.y) : null;
    if (hit) tooltip.show(describe(hit), point.x, point.y);
    else tooltip.hide();
    if (hit?.r === pointer?.r && hit?.c === pointer?.c) return;
    pointer = hit;
    cursor = null;
    drawOverlay();
    hoverPatch(hit);
  });
  listeners.on(canvas, "pointerleave", () => {
    tooltip.hide();
    if (!pointer) return;
    pointer = null;
    drawOverlay();
    hoverPatch(null);
  });
  listeners.on(canvas, "click", () => {
    if (pointer) callbacks.click?.(patchToken(patchStart, grid, pointer.r, pointer.c));
  });
  listeners.on(canvas, "keydown", (event) => {
    if (!source) return;
    if (event.key === "Enter" || event.key === " ") {
      const patch = cursor ?? pointer;
      if (patch) callbacks.click?.(patchToken(patchStart, grid, patch.r, patch.c));
      event.preventDefault();
      return;
    }
    if (event.key === "Escape") {
      if (cursor) { cursor = null; drawOverlay(); hoverPatch(null); }
      return;
    }
    const start = cursor ?? pointer ?? tokenPatch(patchStart, grid, hoveredToken ?? current?.token);
    const next = movePatch(start, event.key, grid);
    if (!next) return;
    event.preventDefault(); // the arrows move the patch, not the page
    cursor = next;
    pointer = null;
    drawOverlay();
    hoverPatch(next);
  });
  listeners.on(canvas, "blur", () => {
    if (!cursor) return;
    cursor = null;
    drawOverlay();
    hoverPatch(null);
  });

  function update(next) {
    current = next ?? null;
    rescale();
    drawBase();
  }

  if (!source) {
    // The image trait is missing (e.g. an older static page): say so instead of a blank box.
    data = data ? { ...data, note: "no picture: this capture has no image" } : null;
  }
  update(data);

  return viewHandle(stack, listeners, theme, {
    update,
    setHovered(token) { hoveredToken = token; drawOverlay(); },
    setSelected(list) { selected = new Set(list ?? []); drawBase(); },
    setScale(kind) {
      scaleKind = kind ?? "linear";
      rescale();
      drawBase();
    },
  });
}
