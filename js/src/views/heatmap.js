// One [query, key] attention matrix with token labels, hover, causal mask, zoom and pan.
//
// data: {matrix: decoded [r, c] (uint8 0..255 or float 0..1), row0, col0, n_rows, n_cols, title?}
//   The matrix covers query tokens row0..row0+n_rows and key tokens col0..col0+n_cols;
//   r < n_rows (or c < n_cols) means the tile is pooled, each cell covering several tokens.
//   title names what is shown ("layer 15, mean of heads"); drawn above the matrix.
// options: {theme, lut, tokens, keyTokens?, cross?, causal, size, scale: "linear" | "log" | "no_sink"}
//   tokens label the rows (queries), keyTokens the columns (keys; default: tokens). Cross-attention
//   (cross: true) is a rectangle: target tokens down, source tokens across, cells kept square.
// Labels read "index token"; a colour bar on the right shows the scale.
// callbacks: {hover(query|null, key|null), window({row0, col0, rows, cols}), click(query, key)}

import { withAlpha } from "../colors.js";
import {
  cellOrigin, clampWindow, hitMatrix, labelIndices, matrixLayout, matrixSize, panWindow, sameWindow,
  thinStep, tileIndex, truncateLabel, visibleText, zoomWindow,
} from "../layout.js";
import { scaleFor } from "../scale.js";
import { createListeners, createStack, createTooltip, hatchPattern, localPoint, setFont, viewHandle, weightsImage } from "./canvas.js";
import { drawColorBar } from "./colorbar.js";

const LABEL_CHARS = 14;
const TITLE = 18; // px above the matrix for its title
const BAR = 64; // px right of the matrix for the colour bar and its ticks

/** A label: "12 cat" (index, then the token as visible text, shortened). */
export function tokenLabel(tokens, i, chars = LABEL_CHARS) {
  return `${i} ${truncateLabel(tokens[i] ?? "", Math.max(1, chars - String(i).length - 1))}`;
}

export function mountHeatmap(parent, data, options, callbacks = {}) {
  const { theme } = options;
  const tokens = options.tokens ?? [];
  const keyTokens = options.keyTokens ?? tokens;
  const cross = !!options.cross;
  const [rowName, colName] = cross ? ["target", "source"] : ["query", "key"];
  const listeners = createListeners();
  const size = options.size ?? 420;
  const stack = createStack(parent, { name: "heatmap", width: size, height: size });
  const tooltip = createTooltip(stack.box, theme);
  const hatch = hatchPattern(stack.baseCtx, withAlpha(theme.muted, 0.5));

  let tile = null;
  let image = null;
  let view = null;
  let userWindow = false;
  let hover = null;
  let hoveredToken = null;
  let selected = new Set();
  let drag = null;
  let plot = null;
  let scaleKind = options.scale ?? "linear";
  let scale = null;

  const total = () => {
    const extent = tile ? Math.max(tile.row0 + tile.n_rows, tile.col0 + tile.n_cols) : 1;
    return { rows: tokens.length || tile?.n_queries || extent, cols: keyTokens.length || tile?.n_keys || extent };
  };

  function margin(labels) {
    const ctx = stack.baseCtx;
    setFont(ctx, 11, theme.monoFamily);
    let widest = 0;
    for (let i = 0; i < Math.min(labels.length, 2000); i++) {
      widest = Math.max(widest, ctx.measureText(tokenLabel(labels, i)).width);
    }
    return Math.ceil(Math.min(120, Math.max(24, widest + 10)));
  }
  const marginLeft = margin(tokens);
  const marginTop = cross ? margin(keyTokens) : marginLeft;
  const area = matrixSize(total().rows, total().cols, size);
  stack.resize(marginLeft + area.width + BAR, TITLE + marginTop + area.height + 6);

  function drawLabels(ctx) {
    const { view: win, cellW, cellH, left, top } = plot;
    const cell = Math.min(cellW, cellH);
    const fontSize = cell >= 9 ? Math.min(11, Math.floor(cell) - 1) : 10; // thinned labels keep a readable size
    setFont(ctx, fontSize, theme.monoFamily);
    const label = (i, x, y, rotate) => {
      const isSelected = selected.has(i);
      ctx.fillStyle = isSelected ? theme.accent : theme.foreground;
      ctx.save();
      ctx.translate(x, y);
      if (rotate) ctx.rotate(-Math.PI / 2);
      ctx.fillText(tokenLabel(rotate ? keyTokens : tokens, i), 0, 0);
      ctx.restore();
    };
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    const rowStep = thinStep(cellH, fontSize + 2);
    for (const i of labelIndices(win.row0, win.row0 + win.rows, rowStep)) {
      label(i, left - 4, top + (i - win.row0 + 0.5) * cellH, false);
    }
    ctx.textAlign = "left";
    const colStep = thinStep(cellW, fontSize + 2);
    for (const j of labelIndices(win.col0, win.col0 + win.cols, colStep)) {
      label(j, left + (j - win.col0 + 0.5) * cellW, top - 4, true);
    }
  }

  function drawMask(ctx) {
    const { view: win, cellH, left, top, width } = plot;
    ctx.beginPath();
    for (let row = win.row0; row < win.row0 + win.rows; row++) {
      const first = Math.max(row + 1, win.col0);
      if (first >= win.col0 + win.cols) continue;
      const origin = cellOrigin(plot, row, first);
      ctx.rect(origin.x, origin.y, left + width - origin.x, cellH);
    }
    ctx.fillStyle = withAlpha(theme.background, 0.55);
    ctx.fill();
    ctx.fillStyle = hatch;
    ctx.fill();
  }

  function drawBase() {
    const ctx = stack.baseCtx;
    stack.clear(ctx);
    if (!view) return drawOverlay();
    plot = matrixLayout({ left: marginLeft, top: TITLE + marginTop, width: area.width, height: area.height, view });
    stack.box.dataset.geometry = JSON.stringify({ left: plot.left, top: plot.top, cellW: plot.cellW,
      cellH: plot.cellH, width: plot.width, height: plot.height, total: total(), cross, ...view });
    ctx.save();
    ctx.beginPath();
    ctx.rect(plot.left, plot.top, plot.width, plot.height);
    ctx.clip();
    ctx.fillStyle = withAlpha(theme.border, 0.3);
    ctx.fillRect(plot.left, plot.top, plot.width, plot.height);
    if (tile && image) {
      const origin = cellOrigin(plot, tile.row0, tile.col0);
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(image, origin.x, origin.y, tile.n_cols * plot.cellW, tile.n_rows * plot.cellH);
    }
    if (options.causal) drawMask(ctx);
    ctx.restore();
    ctx.strokeStyle = theme.border;
    ctx.lineWidth = 1;
    ctx.strokeRect(plot.left - 0.5, plot.top - 0.5, plot.width + 1, plot.height + 1);
    drawLabels(ctx);
    drawTitle(ctx);
    if (scale) {
      drawColorBar(ctx, options.lut, scale, { x: plot.left + plot.width + 10, y: plot.top + 14, width: 12,
        height: plot.height - 14 }, theme, "weight");
      setFont(ctx, 10, theme.fontFamily);
      ctx.fillStyle = theme.muted;
      ctx.textAlign = "left";
      ctx.textBaseline = "top";
      ctx.fillText(scale.kind === "linear" ? "" : scale.kind === "log" ? "log" : "no sink", plot.left + plot.width + 10,
        plot.top + plot.height + 4);
    }
    drawOverlay();
  }

  function drawTitle(ctx) {
    const text = tile?.title ?? "";
    if (!text) return;
    setFont(ctx, 12, theme.fontFamily, "bold");
    ctx.fillStyle = theme.foreground;
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    ctx.fillText(text, 2, 2);
    setFont(ctx, 10, theme.fontFamily);
    ctx.fillStyle = theme.muted;
    ctx.textAlign = "right";
    ctx.fillText(`${rowName} ↓  ${colName} →`, plot.left + plot.width, 4);
  }

  function band(ctx, row, col, color) {
    const { left, top, width, height, cellW, cellH } = plot;
    ctx.fillStyle = color;
    if (row != null) ctx.fillRect(left, cellOrigin(plot, row, 0).y, width, cellH);
    if (col != null) ctx.fillRect(cellOrigin(plot, 0, col).x, top, cellW, height);
  }

  function drawOverlay() {
    const ctx = stack.overlayCtx;
    stack.clear(ctx);
    if (!plot) return;
    ctx.save();
    ctx.beginPath();
    ctx.rect(plot.left, plot.top, plot.width, plot.height);
    ctx.clip();
    if (hoveredToken != null && !hover) band(ctx, hoveredToken, cross ? null : hoveredToken, withAlpha(theme.highlight, 0.25));
    if (hover) {
      band(ctx, hover.row, hover.col, withAlpha(theme.accent, 0.18));
      const { x, y } = cellOrigin(plot, hover.row, hover.col);
      const cx = x + plot.cellW / 2;
      const cy = y + plot.cellH / 2;
      ctx.strokeStyle = withAlpha(theme.foreground, 0.6);
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(plot.left, cy);
      ctx.lineTo(plot.left + plot.width, cy);
      ctx.moveTo(cx, plot.top);
      ctx.lineTo(cx, plot.top + plot.height);
      ctx.stroke();
      ctx.strokeStyle = theme.accent;
      ctx.lineWidth = 2;
      ctx.strokeRect(x, y, plot.cellW, plot.cellH);
    }
    ctx.restore();
  }

  function weightText(row, col) {
    if (options.causal && col > row) return "masked (causal)";
    const index = tile ? tileIndex({ ...tile, shape: tile.matrix.shape }, row, col) : -1;
    if (index < 0) return "weight not loaded";
    const raw = tile.matrix.data[index];
    const weight = tile.matrix.dtype === "uint8" ? raw / 255 : raw;
    return `weight ${weight.toFixed(4)}`;
  }

  function setHover(next, point) {
    const changed = (next?.row ?? null) !== (hover?.row ?? null) || (next?.col ?? null) !== (hover?.col ?? null);
    hover = next;
    if (next && point) {
      const text = `${rowName} ${next.row}: ${visibleText(tokens[next.row])}\n` +
        `${colName} ${next.col}: ${visibleText(keyTokens[next.col])}\n${weightText(next.row, next.col)}`;
      tooltip.show(text, point.x, point.y);
    } else {
      tooltip.hide();
    }
    if (changed) {
      drawOverlay();
      callbacks.hover?.(next ? next.row : null, next ? next.col : null);
    }
  }

  function setView(next, notify = true) {
    if (sameWindow(next, view)) return false;
    view = next;
    userWindow = true;
    drawBase();
    if (notify) callbacks.window?.({ ...view });
    return true;
  }

  listeners.on(stack.base, "pointermove", (event) => {
    if (!plot) return;
    const point = localPoint(event, stack.base);
    if (drag) {
      const dRows = Math.round((drag.y - point.y) / plot.cellH);
      const dCols = Math.round((drag.x - point.x) / plot.cellW);
      if (dRows || dCols) drag.moved = true;
      if (drag.moved) {
        const next = panWindow(drag.view, dRows, dCols, total());
        if (!sameWindow(next, view)) { view = next; userWindow = true; drawBase(); }
      }
      return;
    }
    const hit = hitMatrix(plot, point.x, point.y);
    setHover(hit ? { row: hit.row, col: hit.col } : null, point);
  });
  listeners.on(stack.base, "pointerleave", () => {
    if (!drag) setHover(null);
  });
  listeners.on(stack.base, "pointerdown", (event) => {
    if (!plot || event.button !== 0) return;
    const point = localPoint(event, stack.base);
    drag = { ...point, view: { ...view }, moved: false };
    stack.base.setPointerCapture?.(event.pointerId);
  });
  listeners.on(stack.base, "pointerup", (event) => {
    if (!drag) return;
    const { moved, view: before } = drag;
    drag = null;
    stack.base.releasePointerCapture?.(event.pointerId);
    if (moved && !sameWindow(before, view)) {
      callbacks.window?.({ ...view });
    } else if (!moved && hover) {
      callbacks.click?.(hover.row, hover.col);
    }
  });
  listeners.on(stack.base, "wheel", (event) => {
    if (!plot) return;
    const point = localPoint(event, stack.base);
    const hit = hitMatrix(plot, point.x, point.y);
    if (!hit) return;
    const delta = event.deltaY * (event.deltaMode === 1 ? 16 : 1);
    const next = zoomWindow(view, Math.exp(delta * 0.002), { row: hit.rowF, col: hit.colF }, total());
    if (setView(next)) event.preventDefault(); // at full extent the page scrolls as usual
  }, { passive: false });
  listeners.on(stack.base, "dblclick", () => {
    setView(clampWindow({ row0: 0, col0: 0, ...total() }, total()));
  });

  /** The colour scale of the current tile: its maximum (without the first key column for "no_sink"). */
  function tileScale() {
    const m = tile.matrix;
    const unit = m.dtype === "uint8" ? 1 / 255 : 1;
    const raw = scaleFor(scaleKind, m.data, m.shape[1]);
    if (unit === 1) return raw;
    return scaleFor(scaleKind, Float32Array.from(m.data, (v) => v * unit), m.shape[1]);
  }

  function update(next) {
    const title = tile?.title;
    tile = next && next.matrix ? { ...next, title: next.title ?? title } : null;  // zoom tiles keep the title
    if (tile) {
      tile = { ...tile, n_rows: tile.n_rows ?? tile.matrix.shape[0], n_cols: tile.n_cols ?? tile.matrix.shape[1],
        row0: tile.row0 ?? 0, col0: tile.col0 ?? 0 };
      scale = tileScale();
      image = weightsImage(tile.matrix, options.lut, scale);
      if (!userWindow || !view) {
        view = clampWindow({ row0: tile.row0, col0: tile.col0, rows: tile.n_rows, cols: tile.n_cols }, total());
      }
    } else {
      image = null;
    }
    drawBase();
  }

  update(data);

  return viewHandle(stack, listeners, theme, {
    update,
    setHovered(token) { hoveredToken = token; drawOverlay(); },
    setSelected(list) { selected = new Set(list ?? []); drawBase(); },
    setWindow(next) { setView(clampWindow(next, total()), false); },
    setScale(kind) {
      scaleKind = kind ?? "linear";
      if (tile) {
        scale = tileScale();
        image = weightsImage(tile.matrix, options.lut, scale);
      }
      drawBase();
    },
    get window() { return view ? { ...view } : null; },
  });
}
