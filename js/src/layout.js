// Pure geometry: cell layouts, hit tests, zoom/pan windows, label thinning, pooling.
// Coordinates are CSS pixels relative to a canvas' top-left corner.

// ---- layer x head grid ---------------------------------------------------

/**
 * Grid of `layers` rows and `heads + 1` columns (the last is the layer mean).
 * The mean column sits one extra gap to the right.
 */
export function gridLayout({ layers, heads, cell, gap = 4, left = 0, top = 0 }) {
  const meanGap = gap * 3;
  const columnX = (col) => left + col * (cell + gap) + (col === heads ? meanGap : 0);
  const rowY = (layer) => top + layer * (cell + gap);
  return {
    layers, heads, cell, gap, left, top, columnX, rowY,
    width: columnX(heads) + cell,
    height: rowY(layers - 1) + cell,
  };
}

/**
 * Cell size (CSS px) of a grid that fits in maxWidth x maxHeight (labels and gaps included),
 * clamped to [min, max]: a deep model (30 layers) gets small cells instead of a very tall grid.
 */
export function gridCellSize({ layers, heads, maxWidth, maxHeight, gap = 4, left = 0, top = 0, min = 10, max = 56 }) {
  const byWidth = Math.floor((maxWidth - left - 3 * gap) / (heads + 1)) - gap;
  const byHeight = Math.floor((maxHeight - top) / Math.max(1, layers)) - gap;
  return Math.max(min, Math.min(max, byWidth, byHeight));
}

/** Pixel -> {layer, head} (head null for the mean column), or null in gaps/margins. */
export function hitGrid(grid, x, y) {
  const { layers, heads, cell, gap, left, top } = grid;
  const layer = Math.floor((y - top) / (cell + gap));
  if (layer < 0 || layer >= layers || y - grid.rowY(layer) >= cell) return null;
  for (let col = 0; col <= heads; col++) {
    const x0 = grid.columnX(col);
    if (x >= x0 && x < x0 + cell) return { layer, head: col === heads ? null : col };
  }
  return null;
}

// ---- matrix window -------------------------------------------------------

/** Clamp a window {row0, col0, rows, cols} inside total {rows, cols}; sizes >= 1. */
export function clampWindow(win, total) {
  const rows = Math.max(1, Math.min(Math.round(win.rows), total.rows));
  const cols = Math.max(1, Math.min(Math.round(win.cols), total.cols));
  const row0 = Math.max(0, Math.min(Math.round(win.row0), total.rows - rows));
  const col0 = Math.max(0, Math.min(Math.round(win.col0), total.cols - cols));
  return { row0, col0, rows, cols };
}

/**
 * Zoom a window by `factor` (< 1 zooms in) around a fractional anchor
 * {row, col} in token coordinates, which stays under the pointer.
 */
export function zoomWindow(win, factor, anchor, total, minSize = 4) {
  const scale = (size, limit) => Math.max(Math.min(minSize, limit), Math.min(limit, size * factor));
  const rows = Math.round(scale(win.rows, total.rows));
  const cols = Math.round(scale(win.cols, total.cols));
  const fy = (anchor.row - win.row0) / win.rows;
  const fx = (anchor.col - win.col0) / win.cols;
  return clampWindow({ row0: anchor.row - fy * rows, col0: anchor.col - fx * cols, rows, cols }, total);
}

/** Move a window by whole tokens, clamped. */
export function panWindow(win, dRows, dCols, total) {
  return clampWindow({ ...win, row0: win.row0 + dRows, col0: win.col0 + dCols }, total);
}

export function sameWindow(a, b) {
  return !!a && !!b && a.row0 === b.row0 && a.col0 === b.col0 && a.rows === b.rows && a.cols === b.cols;
}

/**
 * Plot {width, height} (CSS px) of a `rows` x `cols` token matrix in at most `size` px a side: square
 * cells, the long side `size`; a rectangle's short side at least `minSide` px (or `size`, if smaller),
 * so 1 target token over 300 source tokens stays visible. A square matrix is `size` x `size`.
 */
export function matrixSize(rows, cols, size, minSide = 96) {
  const long = Math.max(rows, cols, 1);
  const short = (n) => Math.max(Math.min(size, minSide), Math.round((size * n) / long));
  return { width: cols >= rows ? size : short(cols), height: rows >= cols ? size : short(rows) };
}

/** Matrix plot area: token window `view` drawn in a `width` x `height` box at (left, top). */
export function matrixLayout({ left, top, width, height, view }) {
  return { left, top, width, height, view, cellW: width / view.cols, cellH: height / view.rows };
}

/** Pixel -> {row, col} token indices (fractional too), or null outside the plot. */
export function hitMatrix(layout, x, y) {
  const { left, top, width, height, view, cellW, cellH } = layout;
  if (x < left || y < top || x >= left + width || y >= top + height) return null;
  const rowF = view.row0 + (y - top) / cellH;
  const colF = view.col0 + (x - left) / cellW;
  return { row: Math.floor(rowF), col: Math.floor(colF), rowF, colF };
}

/** Top-left pixel of token cell (row, col). */
export function cellOrigin(layout, row, col) {
  return {
    x: layout.left + (col - layout.view.col0) * layout.cellW,
    y: layout.top + (row - layout.view.row0) * layout.cellH,
  };
}

/**
 * Index into a (maybe pooled) data tile for token (row, col), or -1 outside.
 * tile = {row0, col0, n_rows, n_cols, shape: [r, c]}: r x c cells covering
 * n_rows x n_cols tokens.
 */
export function tileIndex(tile, row, col) {
  const r = row - tile.row0;
  const c = col - tile.col0;
  if (r < 0 || c < 0 || r >= tile.n_rows || c >= tile.n_cols) return -1;
  const [rows, cols] = tile.shape;
  const i = Math.floor(r * rows / tile.n_rows);
  const j = Math.floor(c * cols / tile.n_cols);
  return i * cols + j;
}

// ---- lists of tokens -----------------------------------------------------

/** Row index of y in a list of `count` rows `lineHeight` apart from `top`, or null. */
export function rowAt(y, top, lineHeight, count) {
  const row = Math.floor((y - top) / lineHeight);
  return row >= 0 && row < count ? row : null;
}

/** Smallest nice step (1, 2, 5, 10, 20, 50, ..) so labels are >= minPixels apart. */
export function thinStep(pixelsPerItem, minPixels) {
  if (pixelsPerItem >= minPixels) return 1;
  const need = minPixels / Math.max(pixelsPerItem, 1e-9);
  for (let base = 1; ; base *= 10) {
    for (const m of [1, 2, 5]) if (base * m >= need) return base * m;
  }
}

/** Indices start..end-1 to label with a step: multiples of step, always inside the range. */
export function labelIndices(start, end, step) {
  const out = [];
  for (let i = Math.ceil(start / step) * step; i < end; i += step) out.push(i);
  return out;
}

/** A token with newlines, tabs and carriage returns made visible (↵ ⇥ ␍). */
export function visibleText(text) {
  return String(text ?? "").replace(/\n/g, "↵").replace(/\t/g, "⇥").replace(/\r/g, "␍");
}

/** Shorten a label to `max` characters with an ellipsis; makes whitespace visible. */
export function truncateLabel(text, max = 12) {
  const visible = visibleText(text);
  return visible.length <= max ? visible : visible.slice(0, Math.max(1, max - 1)) + "…";
}

// ---- pooling and points --------------------------------------------------

/** Max-pool a 1-D array into `bins` bins (returns a Float32Array; bins >= length copies). */
export function binMax(values, bins) {
  const n = values.length;
  if (bins >= n) return Float32Array.from(values);
  const out = new Float32Array(bins).fill(-Infinity);
  for (let i = 0; i < n; i++) {
    const b = Math.floor(i * bins / n);
    if (values[i] > out[b]) out[b] = values[i];
  }
  return out;
}

/** Maximum of an array (0 for empty or all-negative input). */
export function maxOf(values) {
  let max = 0;
  for (let i = 0; i < values.length; i++) if (values[i] > max) max = values[i];
  return max;
}

/** Map positions in [-1, 1]^2 (flat [x0, y0, x1, y1, ..]) into a padded box. */
export function fitPositions(pos, width, height, pad) {
  const n = pos.length / 2;
  const out = new Float32Array(pos.length);
  const w = (width - 2 * pad) / 2;
  const h = (height - 2 * pad) / 2;
  for (let i = 0; i < n; i++) {
    out[2 * i] = pad + (pos[2 * i] + 1) * w;
    out[2 * i + 1] = pad + (1 - pos[2 * i + 1]) * h; // y up in the layout, down on screen
  }
  return out;
}

/** Whether point i of a flat [x0, y0, x1, y1, ...] array has finite coordinates (NaN = not drawn). */
export function isPlaced(points, i) {
  return Number.isFinite(points[2 * i]) && Number.isFinite(points[2 * i + 1]);
}

/** Indices of the points with finite coordinates (the kernel sends NaN for tokens outside the graph window). */
export function placedIndices(points) {
  const out = [];
  for (let i = 0; i < points.length / 2; i++) if (isPlaced(points, i)) out.push(i);
  return out;
}

/** Index of the nearest placed point within `radius` of (x, y), or null; NaN points are skipped. */
export function nearestPoint(points, x, y, radius) {
  let best = null;
  let bestDistance = radius * radius;
  for (let i = 0; i < points.length / 2; i++) {
    if (!isPlaced(points, i)) continue;
    const d = (points[2 * i] - x) ** 2 + (points[2 * i + 1] - y) ** 2;
    if (d <= bestDistance) { bestDistance = d; best = i; }
  }
  return best;
}

// ---- the widget's layout ---------------------------------------------------

/**
 * The widget's box model: it fills the output width up to `cap` px; the grid and the view share the
 * width side by side while the view keeps at least `minView` px, and below that the view wraps under
 * the grid and takes the whole width. Widths are floored to `step` px so that a drag of the sidebar
 * does not remount the views on every pixel.
 */
export const WIDGET_LAYOUT = {
  cap: 1400, gap: 16, minView: 420, step: 8, fallback: 960,
  minViewHeight: 320, maxViewHeight: 600, minGridHeight: 360,
};

const clamp = (value, lo, hi) => Math.max(lo, Math.min(hi, value));

/** The width the widget lays out in: the root's width (0 while detached or hidden: the fallback), capped and floored. */
export function layoutWidth(available, options = {}) {
  const { cap, step, fallback } = { ...WIDGET_LAYOUT, ...options };
  const width = available > 0 ? Math.min(available, cap) : Math.min(fallback, cap);
  return Math.max(step, Math.floor(width / step) * step);
}

/**
 * How much room the grid may take at a layout width: {maxWidth, maxHeight} (CSS px). Beside the view
 * it takes at most 40% of the width; `wrapped` (the view under it) it may take the whole row, up to 640.
 */
export function gridBudget(width, { wrapped = false, ...options } = {}) {
  const { maxViewHeight, minGridHeight } = { ...WIDGET_LAYOUT, ...options };
  return {
    maxWidth: Math.min(width, wrapped ? 640 : clamp(Math.round(width * 0.4), 200, 560)),
    maxHeight: clamp(Math.round(width * 0.6), minGridHeight, maxViewHeight),
  };
}

/**
 * Where the view goes once the grid is `gridWidth` px wide: beside it (wrap false) or under it, and the
 * view box every view draws in: {width, wrap, viewWidth, viewHeight}. The box is the same for every
 * view (tab), so switching tabs does not move the panels around it.
 */
export function planLayout(width, gridWidth, options = {}) {
  const { gap, minView, minViewHeight, maxViewHeight } = { ...WIDGET_LAYOUT, ...options };
  const beside = width - gridWidth - gap;
  const wrap = beside < minView;
  const viewWidth = Math.max(1, Math.floor(wrap ? width : beside));
  return { width, wrap, viewWidth, viewHeight: clamp(viewWidth, minViewHeight, maxViewHeight) };
}

/**
 * The size options a view is mounted with so that it fits a viewWidth x viewHeight box. Views sized
 * by one `size` (heatmap, graph, image) draw labels, titles and colour bars around it: `size` is a
 * first guess that the widget corrects once it sees the mounted view's box (fitSize).
 */
export function viewSizeOptions(name, { viewWidth, viewHeight }) {
  switch (name) {
    case "heatmap": return { size: Math.max(96, Math.min(viewWidth - 190, viewHeight - 120)) };
    case "graph": return { size: Math.max(160, Math.min(viewWidth, viewHeight)) };
    case "image": return { size: Math.max(96, Math.min(viewWidth - 70, viewHeight - 70)) };
    case "lines": return { width: Math.max(240, Math.min(viewWidth, 720)), maxHeight: viewHeight };
    case "rollout": return { width: viewWidth, height: clamp(Math.round(viewHeight * 0.6), 240, 360) };
    case "text": return { width: viewWidth, height: viewHeight };
    default: return { width: viewWidth, height: viewHeight };
  }
}

/**
 * The corrected `size` of a view mounted with `size` whose box came out `box` = {width, height} px:
 * grown or shrunk by the room left (or missing) on its tighter side, at least `min`; null when it fits
 * within `slack` px.
 */
export function fitSize(size, box, { viewWidth, viewHeight }, { slack = 4, min = 96 } = {}) {
  const room = Math.min(viewWidth - box.width, viewHeight - box.height);
  if (room >= 0 && room <= slack) return null;
  const next = Math.max(min, Math.floor(size + room));
  return next === size ? null : next;
}
