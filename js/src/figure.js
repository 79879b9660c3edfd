// Figures as data: the heatmap and the grid, with their title, axis titles, tick labels and colour
// bars, composed as a list of drawing items in CSS pixels. Pure: no DOM. The page draws the items on
// its canvases (views/canvas.js drawScene), the PNG export draws the same items at any scale, and
// svg.js writes them as SVG: one composition, so the screen, the PNG and the SVG agree.
//
// A scene: {width, height, title, background, fonts: {ui, mono}, items}. Items:
//   {kind: "text", x, y, text, size, mono?, weight?, color, align: "start"|"middle"|"end",
//    baseline: "top"|"middle"|"bottom", rotate?: degrees (about x, y)}
//   {kind: "rect", x, y, width, height, fill?, stroke?, lineWidth?, hatch?: colour of a diagonal hatch}
//   {kind: "rects", rects: [[x, y, width, height], ...], fill?, hatch?}  (one path: the causal mask)
//   {kind: "image", x, y, width, height, source: {id, rows, cols, rgba: Uint8ClampedArray [rows*cols*4]},
//    sx, sy, sw, sh (the source's cells drawn, default all), smooth?}  (cells of a matrix)
//   {kind: "gradient", x, y, width, height, stops: [{offset 0..1, color}], direction: "up"|"right"}
//   {kind: "clip", x, y, width, height, items}
// Text widths come from measure(text, {size, mono, weight}) -> px (the page's canvas measureText).

import { withAlpha } from "./colors.js";
import { cellOrigin, gridCellSize, gridLayout, labelIndices, matrixLayout, matrixSize, thinStep, truncateLabel } from "./layout.js";
import { formatTick } from "./scale.js";

export const TITLE_HEIGHT = 18; // px above everything for the figure's title
export const AXIS_TITLE = 14; // px for an axis title ("key" above the columns, "query" left of the rows)
export const BAR_WIDTH = 12; // the colour bar's gradient
export const BAR_SPACE = 78; // px right of a plot for one colour bar, its ticks and titles
export const LABEL_CHARS = 14;
/** The colour bar's caption for each colour_scale. */
export const SCALE_NAMES = { linear: "linear", log: "log scale", no_sink: "sink removed" };

// ---- text ------------------------------------------------------------------------------------

/** A label: "12 cat" (index, then the token as visible text, shortened). */
export function tokenLabel(tokens, i, chars = LABEL_CHARS) {
  return `${i} ${truncateLabel(tokens[i] ?? "", Math.max(1, chars - String(i).length - 1))}`;
}

/** The figure's title: the model, then what is shown ("SmolLM2-135M · layer 3, head 2"). */
export function figureTitle(modelName, what) {
  const model = String(modelName ?? "").trim();
  const shown = String(what ?? "").trim();
  return model && shown ? `${model} · ${shown}` : model || shown;
}

/** `text` shortened with an ellipsis so that measure(text, font) <= width (at least one character). */
export function fitText(text, width, measure, font) {
  const full = String(text ?? "");
  if (!full || measure(full, font) <= width) return full;
  let lo = 1;
  let hi = full.length - 1;
  while (lo < hi) { // the longest prefix that fits with its ellipsis
    const mid = Math.ceil((lo + hi) / 2);
    if (measure(full.slice(0, mid) + "…", font) <= width) lo = mid;
    else hi = mid - 1;
  }
  return full.slice(0, lo) + "…";
}

/** A short number for a metric's range: three significant digits, no trailing zeros. */
export function formatValue(value) {
  if (!Number.isFinite(value)) return "";
  if (value === 0) return "0";
  const abs = Math.abs(value);
  if (abs >= 1e4 || abs < 1e-3) return value.toExponential(1).replace("e+", "e");
  return String(Number(value.toPrecision(3)));
}

const text = (x, y, value, style) => ({ kind: "text", x, y, text: value, ...style });

// ---- colours ---------------------------------------------------------------------------------

const hex2 = (v) => v.toString(16).padStart(2, "0");
/** "#rrggbb" of LUT entry i (0..255). */
export function lutHex(lut, i) {
  const k = Math.max(0, Math.min(255, Math.round(i))) * 4;
  return `#${hex2(lut[k])}${hex2(lut[k + 1])}${hex2(lut[k + 2])}`;
}

/** Gradient stops of a LUT, `count` of them from entry 0 (offset 0) to entry 255 (offset 1). */
export function lutStops(lut, count = 33) {
  return Array.from({ length: count }, (_, s) => {
    const offset = s / (count - 1);
    return { offset, color: lutHex(lut, offset * 255) };
  });
}

/**
 * RGBA of a [rows, cols] weight matrix through a LUT: uint8 holds weight * 255, floats hold weights;
 * `scale` (scale.js) maps a weight to 0..1 (none: linear 0..1).
 */
export function matrixColors(matrix, lut, scale = null) {
  const [rows, cols] = matrix.shape.slice(-2);
  const rgba = new Uint8ClampedArray(rows * cols * 4);
  const unit = matrix.dtype === "uint8" ? 1 / 255 : 1;
  for (let i = 0; i < rows * cols; i++) {
    const weight = matrix.data[i] * unit;
    const value = scale ? scale.t(weight) * 255 : weight * 255;
    const k = (value > 0 ? (value >= 255 ? 255 : Math.round(value)) : 0) * 4;
    rgba[i * 4] = lut[k];
    rgba[i * 4 + 1] = lut[k + 1];
    rgba[i * 4 + 2] = lut[k + 2];
    rgba[i * 4 + 3] = 255;
  }
  return rgba;
}

/**
 * The grid's atlas: every thumbnail ([L, H, r, c] uint8, 0..255 of its own maximum) and the layer
 * means ([L, r, c]) in one RGBA image, row = layer, column = head (the means last).
 */
export function atlasColors(thumbs, layerMean, lut) {
  const [layers, heads, rows, cols] = thumbs.shape;
  const width = (heads + 1) * cols;
  const rgba = new Uint8ClampedArray(width * layers * rows * 4);
  const put = (source, offset, layer, col) => {
    for (let y = 0; y < rows; y++) {
      for (let x = 0; x < cols; x++) {
        const k = source[offset + y * cols + x] * 4;
        const p = ((layer * rows + y) * width + col * cols + x) * 4;
        rgba[p] = lut[k];
        rgba[p + 1] = lut[k + 1];
        rgba[p + 2] = lut[k + 2];
        rgba[p + 3] = 255;
      }
    }
  };
  for (let layer = 0; layer < layers; layer++) {
    for (let head = 0; head < heads; head++) put(thumbs.data, (layer * heads + head) * rows * cols, layer, head);
    if (layerMean) put(layerMean.data, layer * rows * cols, layer, heads);
  }
  return { rows: layers * rows, cols: width, rgba };
}

/** {lo, hi} of the finite values (null when there is none). */
export function finiteRange(values) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values ?? []) if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  return lo <= hi ? { lo, hi } : null;
}

// ---- colour bar ------------------------------------------------------------------------------

/**
 * A vertical colour bar: the LUT bottom (0) to top (1) in box {x, y, width, height}, ticks [{t, label}]
 * on its right, `title` above it and `note` under it (both optional).
 */
export function colorBarItems({ lut, ticks, box, theme, title = "", note = "", measure = null, room = BAR_SPACE - 6 }) {
  const { x, y, width, height } = box;
  const fit = (value, font) => (measure ? fitText(value, room, measure, font) : value);
  const small = { size: 10, color: theme.muted };
  const items = [
    { kind: "gradient", x, y, width, height, stops: lutStops(lut), direction: "up" },
    { kind: "rect", x: x - 0.5, y: y - 0.5, width: width + 1, height: height + 1, stroke: theme.border, lineWidth: 1 },
  ];
  for (const tick of ticks) {
    const label = measure ? fitText(tick.label, room - width - 4, measure, small) : tick.label;
    items.push(text(x + width + 4, y + height - tick.t * height, label, { ...small, align: "start", baseline: "middle" }));
  }
  // Title and note clear the end ticks, which are centred on the bar's ends.
  if (title) items.push(text(x, y - 8, fit(title, small), { ...small, align: "start", baseline: "bottom" }));
  if (note) items.push(text(x, y + height + 7, fit(note, small), { ...small, align: "start", baseline: "top" }));
  items.forEach((item) => { item.role = "colorbar"; });
  return items;
}

/** Ticks of a scale.js scale as colour bar ticks. */
export function scaleTicks(scale) {
  return (scale?.ticks ?? []).map((tick) => ({ t: tick.t, label: formatTick(tick.value) }));
}

// ---- heatmap ---------------------------------------------------------------------------------

/**
 * Where everything of a heatmap figure goes, from what is fixed at mount: the tokens (their label
 * widths set the margins), the matrix's extent and the plot's long side `size`.
 * Returns {width, height, plot: {left, top, width, height}, rowName, colName, total}.
 */
export function heatmapLayout({ tokens, keyTokens = tokens, cross = false, size = 420, total, measure }) {
  const margin = (labels) => {
    let widest = 0;
    for (let i = 0; i < Math.min(labels.length, 2000); i++) {
      widest = Math.max(widest, measure(tokenLabel(labels, i), { size: 11, mono: true }));
    }
    return Math.ceil(Math.min(120, Math.max(24, widest + 10)));
  };
  const marginLeft = margin(tokens);
  const marginTop = cross ? margin(keyTokens) : marginLeft;
  const area = matrixSize(total.rows, total.cols, size);
  const plot = { left: AXIS_TITLE + marginLeft, top: TITLE_HEIGHT + AXIS_TITLE + marginTop, ...area };
  return {
    width: plot.left + plot.width + BAR_SPACE, height: plot.top + plot.height + 6, plot, total,
    rowName: cross ? "target" : "query", colName: cross ? "source" : "key",
  };
}

/**
 * The heatmap's items. state: {tile: {rgba, rows, cols, row0, col0, n_rows, n_cols} | null, view:
 * {row0, col0, rows, cols} (the token window shown), causal, scale (scale.js) | null, scaleKind,
 * selected: Set, title, quantity? (the colour bar's title: "weight", or "contribution")}. Returns {width,
 * height, title, plot (matrixLayout), items}.
 */
export function heatmapScene(layout, state, { theme, lut, tokens, keyTokens = tokens, measure, modelName = "" }) {
  const items = [];
  const title = figureTitle(modelName, state.title);
  const scene = { width: layout.width, height: layout.height, title, background: theme.background,
    fonts: { ui: theme.fontFamily, mono: theme.monoFamily }, items, plot: null };
  if (title) {
    const font = { size: 12, weight: "bold" };
    items.push(text(2, 2, fitText(title, layout.width - 4, measure, font), { ...font, color: theme.foreground,
      align: "start", baseline: "top", role: "title" }));
  }
  if (!state.view) return scene;
  const box = layout.plot;
  const plot = matrixLayout({ ...box, view: state.view });
  scene.plot = plot;
  const inside = [{ kind: "rect", x: box.left, y: box.top, width: box.width, height: box.height,
    fill: withAlpha(theme.border, 0.3) }];
  const tile = state.tile;
  if (tile) {
    const origin = cellOrigin(plot, tile.row0, tile.col0);
    inside.push({ kind: "image", x: origin.x, y: origin.y, width: tile.n_cols * plot.cellW,
      height: tile.n_rows * plot.cellH, source: tile.source, smooth: false, role: "matrix" });
  }
  if (state.causal) {
    const win = plot.view;
    const rects = [];
    for (let row = win.row0; row < win.row0 + win.rows; row++) {
      const first = Math.max(row + 1, win.col0);
      if (first >= win.col0 + win.cols) continue;
      const o = cellOrigin(plot, row, first);
      rects.push([o.x, o.y, box.left + box.width - o.x, plot.cellH]);
    }
    if (rects.length) inside.push({ kind: "rects", rects, fill: withAlpha(theme.background, 0.55), hatch: withAlpha(theme.muted, 0.5) });
  }
  items.push({ kind: "clip", x: box.left, y: box.top, width: box.width, height: box.height, items: inside });
  items.push({ kind: "rect", x: box.left - 0.5, y: box.top - 0.5, width: box.width + 1, height: box.height + 1,
    stroke: theme.border, lineWidth: 1 });
  heatmapLabels(items, plot, { theme, tokens, keyTokens, selected: state.selected ?? new Set() });
  const axis = { size: 10, color: theme.muted, role: "axis-title" };
  items.push(text(box.left + box.width / 2, TITLE_HEIGHT + 1, layout.colName, { ...axis, align: "middle", baseline: "top" }));
  items.push(text(2, box.top + box.height / 2, layout.rowName, { ...axis, align: "middle", baseline: "top", rotate: -90 }));
  if (state.scale) {
    items.push(...colorBarItems({ lut, ticks: scaleTicks(state.scale), theme, measure, title: state.quantity ?? "weight",
      note: SCALE_NAMES[state.scale.kind] ?? state.scale.kind,
      box: { x: box.left + box.width + 10, y: box.top + 14, width: BAR_WIDTH, height: Math.max(20, box.height - 30) } }));
  }
  return scene;
}

function heatmapLabels(items, plot, { theme, tokens, keyTokens, selected }) {
  const { view: win, cellW, cellH, left, top } = plot;
  const cell = Math.min(cellW, cellH);
  const size = cell >= 9 ? Math.min(11, Math.floor(cell) - 1) : 10; // thinned labels keep a readable size
  const label = (i, labels, x, y, rotate) => text(x, y, tokenLabel(labels, i), {
    size, mono: true, color: selected.has(i) ? theme.accent : theme.foreground,
    align: rotate ? "start" : "end", baseline: "middle", ...(rotate ? { rotate: -90 } : {}), role: "tick",
  });
  for (const i of labelIndices(win.row0, win.row0 + win.rows, thinStep(cellH, size + 2))) {
    items.push(label(i, tokens, left - 4, top + (i - win.row0 + 0.5) * cellH, false));
  }
  for (const j of labelIndices(win.col0, win.col0 + win.cols, thinStep(cellW, size + 2))) {
    items.push(label(j, keyTokens, left + (j - win.col0 + 0.5) * cellW, top - 4, true));
  }
}

// ---- grid ------------------------------------------------------------------------------------

export const GRID_GAP = 3;
const GRID_LEFT = AXIS_TITLE + 30; // the "layer" title, then the L0.. labels
const GRID_TOP = TITLE_HEIGHT + AXIS_TITLE + 16; // the title, the "head" title, then the H0.. labels

/** Colour bars the grid shows: one for the thumbnails, one more for a color_by metric. */
export const gridBars = (metric) => (metric ? 2 : 1);

/**
 * The grid's geometry in at most maxWidth x maxHeight px (colour bars included): {grid (layout.js
 * gridLayout), width, height, bars}.
 */
export function gridFigureLayout({ layers, heads, maxWidth = 420, maxHeight = 500, bars = 1 }) {
  const cell = gridCellSize({ layers, heads, maxWidth: maxWidth - bars * BAR_SPACE - 12, maxHeight,
    gap: GRID_GAP, left: GRID_LEFT, top: GRID_TOP });
  const grid = gridLayout({ layers, heads, cell, gap: GRID_GAP, left: GRID_LEFT, top: GRID_TOP });
  const barTop = GRID_TOP + 14;
  const height = Math.max(grid.height + 2, barTop + 60 + 18);
  return { grid, bars, width: grid.width + 12 + bars * BAR_SPACE, height };
}

/**
 * The grid's items. data: {atlas: {id, rows, cols, rgba} (atlasColors), rows, cols (one thumbnail's
 * cells), ready: [L] | null, scores: [L*H] 0..1 | null, range: {lo, hi} | null, metric: name | null}.
 * `borderLUT` colours the metric's borders and its bar (viridis).
 */
export function gridScene(layout, data, { theme, lut, borderLUT, measure, modelName = "", part = "", quantity = "weight" }) {
  const { grid } = layout;
  const items = [];
  const what = quantity === "weight" ? "" : ` · ${quantity}`; // the measure shown, when not weights
  const title = figureTitle(modelName, `${part ? `${part}: ` : ""}every layer and head${what}`);
  const scene = { width: layout.width, height: layout.height, title, background: theme.background,
    fonts: { ui: theme.fontFamily, mono: theme.monoFamily }, items };
  const bold = { size: 12, weight: "bold" };
  items.push(text(2, 2, fitText(title, layout.width - 4, measure, bold), { ...bold, color: theme.foreground,
    align: "start", baseline: "top", role: "title" }));
  const ready = (layer) => !data.ready || data.ready[layer] !== 0;
  const smooth = Math.max(data.rows, data.cols) > grid.cell;
  for (let layer = 0; layer < grid.layers; layer++) {
    for (let col = 0; col <= grid.heads; col++) {
      const x = grid.columnX(col);
      const y = grid.rowY(layer);
      if (!ready(layer)) {
        items.push({ kind: "rect", x, y, width: grid.cell, height: grid.cell, fill: withAlpha(theme.border, 0.25),
          hatch: withAlpha(theme.muted, 0.6) });
        continue;
      }
      items.push({ kind: "image", x, y, width: grid.cell, height: grid.cell, source: data.atlas,
        sx: col * data.cols, sy: layer * data.rows, sw: data.cols, sh: data.rows, smooth, role: "thumbnail" });
      if (data.scores && col < grid.heads) {
        const score = data.scores[layer * grid.heads + col];
        items.push({ kind: "rect", x: x + 1.5, y: y + 1.5, width: grid.cell - 3, height: grid.cell - 3,
          stroke: lutHex(borderLUT, score * 255), lineWidth: 3 });
      }
    }
  }
  gridLabels(items, grid, theme, measure);
  const axis = { size: 10, color: theme.muted, role: "axis-title" };
  items.push(text(grid.left + (grid.width - grid.left) / 2, TITLE_HEIGHT + 1, "head", { ...axis, align: "middle", baseline: "top" }));
  items.push(text(2, grid.top + (grid.height - grid.top) / 2, "layer", { ...axis, align: "middle", baseline: "top", rotate: -90 }));
  const barTop = grid.top + 14;
  const barHeight = Math.max(60, grid.height - barTop - 16);
  const barX = grid.width + 12 + 8;
  items.push(...colorBarItems({ lut, theme, measure, title: quantity, note: "per thumbnail",
    ticks: [{ t: 0, label: "0" }, { t: 1, label: "own max" }],
    box: { x: barX, y: barTop, width: BAR_WIDTH, height: barHeight } }));
  if (data.metric && data.range) {
    const { lo, hi } = data.range;
    const ticks = hi > lo ? [0, 0.5, 1].map((t) => ({ t, label: formatValue(lo + t * (hi - lo)) }))
      : [{ t: 0, label: formatValue(lo) }];
    items.push(...colorBarItems({ lut: borderLUT, theme, measure, title: data.metric, note: "borders", ticks,
      box: { x: barX + BAR_SPACE, y: barTop, width: BAR_WIDTH, height: barHeight } }));
  }
  return scene;
}

function gridLabels(items, grid, theme, measure) {
  const style = { size: 10, color: theme.muted, role: "tick" };
  // Thin the head labels so the widest one ("H{heads-1}") keeps a 4 px gap to its neighbours.
  const step = thinStep(grid.cell + grid.gap, measure(`H${Math.max(0, grid.heads - 1)}`, style) + 4);
  for (let head = 0; head < grid.heads; head += step) {
    items.push(text(grid.columnX(head) + grid.cell / 2, grid.top - 4, `H${head}`, { ...style, align: "middle", baseline: "bottom" }));
  }
  items.push(text(grid.columnX(grid.heads) + grid.cell / 2, grid.top - 4, "mean", { ...style, align: "middle", baseline: "bottom" }));
  for (let layer = 0; layer < grid.layers; layer += thinStep(grid.cell + grid.gap, 12)) {
    items.push(text(grid.left - 5, grid.rowY(layer) + grid.cell / 2, `L${layer}`, { ...style, align: "end", baseline: "middle" }));
  }
}

/** Every item of a scene, clip groups flattened (for tests and tools). */
export function flatItems(items) {
  return items.flatMap((item) => (item.kind === "clip" ? [item, ...flatItems(item.items)] : [item]));
}
