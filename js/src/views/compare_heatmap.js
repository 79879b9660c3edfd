// One panel's heatmap in the comparison view, and the comparison's colour bars.
//
// mountCompareHeatmap(parent, data, options, callbacks)
//   data: {matrix: decoded [r, c] (weights, or differences b - a), row0, col0, n_rows, n_cols, title}
//   options: {theme, lut, scale (scale.js, or compare_model's divergingScale), tokens, keyTokens, causal,
//             size (px of the matrix's long side), name (the panel, for labels), diverging,
//             otherTokens / otherKeyTokens (the difference panel: panel a's tokens, named in the tooltip)}
//   callbacks: {hover(row | null), click(row)}
//   The scale is given, not computed from the tile: every panel draws on the one shared scale.
//   Keyboard: the canvas takes focus; arrows, Page keys, Home and End move the hovered query row,
//   Enter or Space click it, Escape clears the hover.
// mountColorBar(parent, options): a horizontal bar of a LUT with its scale's ticks and a title.
// Text is drawn on the canvas or set through textContent only.

import { withAlpha } from "../colors.js";
import { formatTick } from "../scale.js";
import {
  cellOrigin, hitMatrix, labelIndices, matrixLayout, matrixSize, thinStep, tileIndex, truncateLabel, visibleText,
} from "../layout.js";
import { createListeners, createStack, createTooltip, hatchPattern, localPoint, setFont, viewHandle, weightsImage } from "./canvas.js";
import { formatSigned, nextRow } from "./compare_model.js";

const TITLE = 18; // px above the column labels for the title
const LABEL_CHARS = 12;
const PAD = 6;

/** "12 cat": index, then the token as visible text, shortened. */
export function rowLabel(tokens, i, chars = LABEL_CHARS) {
  return `${i} ${truncateLabel(tokens[i] ?? "", Math.max(1, chars - String(i).length - 1))}`;
}

export function mountCompareHeatmap(parent, data, options, callbacks = {}) {
  const { theme } = options;
  const tokens = options.tokens ?? [];
  const keyTokens = options.keyTokens ?? tokens;
  const listeners = createListeners();
  const size = options.size ?? 240;
  const stack = createStack(parent, { name: options.diverging ? "compare-difference" : "compare-heatmap", width: size, height: size });
  const tooltip = createTooltip(stack.box, theme);
  const hatch = hatchPattern(stack.baseCtx, withAlpha(theme.muted, 0.5));
  const canvas = stack.base;
  canvas.tabIndex = 0;
  canvas.setAttribute("role", "group");
  canvas.setAttribute("aria-roledescription", "heatmap");
  canvas.setAttribute("aria-label", `${options.label ?? options.name ?? "heatmap"}: query rows down, key columns `
    + "across. Arrow keys move the query row, Enter selects it, Escape clears.");
  stack.box.dataset.panel = options.name ?? "";

  let tile = null;
  let image = null;
  let plot = null;
  let scale = options.scale;
  let hover = null; // {row, col} under the pointer
  let hoveredRow = null; // the row hovered anywhere (the kernel's hovered_token for this panel)
  let selectedRow = null;
  let focused = false;

  const total = () => ({ rows: tokens.length || tile?.n_rows || 1, cols: keyTokens.length || tile?.n_cols || 1 });

  function margin(labels) {
    const ctx = stack.baseCtx;
    setFont(ctx, 10, theme.monoFamily);
    let widest = 0;
    for (let i = 0; i < Math.min(labels.length, 1000); i++) widest = Math.max(widest, ctx.measureText(rowLabel(labels, i)).width);
    return Math.ceil(Math.min(96, Math.max(20, widest + 8)));
  }
  const marginLeft = margin(tokens);
  const marginTop = margin(keyTokens);
  const area = matrixSize(total().rows, total().cols, size);
  stack.resize(marginLeft + area.width + PAD, TITLE + marginTop + area.height + PAD);

  function drawLabels(ctx) {
    const { view, cellW, cellH, left, top } = plot;
    const fontSize = Math.min(cellW, cellH) >= 9 ? Math.min(10, Math.floor(Math.min(cellW, cellH)) - 1) : 9;
    setFont(ctx, fontSize, theme.monoFamily);
    ctx.textBaseline = "middle";
    ctx.textAlign = "right";
    for (const i of labelIndices(0, view.rows, thinStep(cellH, fontSize + 2))) {
      ctx.fillStyle = i === selectedRow ? theme.accent : theme.foreground;
      ctx.fillText(rowLabel(tokens, i), left - 4, top + (i + 0.5) * cellH);
    }
    ctx.textAlign = "left";
    ctx.fillStyle = theme.foreground;
    for (const j of labelIndices(0, view.cols, thinStep(cellW, fontSize + 2))) {
      ctx.save();
      ctx.translate(left + (j + 0.5) * cellW, top - 4);
      ctx.rotate(-Math.PI / 2);
      ctx.fillText(rowLabel(keyTokens, j), 0, 0);
      ctx.restore();
    }
  }

  function drawMask(ctx) {
    const { view, cellH, left, width } = plot;
    ctx.beginPath();
    for (let row = 0; row < view.rows; row++) {
      if (row + 1 >= view.cols) continue;
      const origin = cellOrigin(plot, row, row + 1);
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
    const { rows, cols } = total();
    plot = matrixLayout({ left: marginLeft, top: TITLE + marginTop, width: area.width, height: area.height,
      view: { row0: 0, col0: 0, rows, cols } });
    stack.box.dataset.geometry = JSON.stringify({ left: plot.left, top: plot.top, cellW: plot.cellW, cellH: plot.cellH,
      width: plot.width, height: plot.height, rows, cols });
    stack.box.dataset.title = tile?.title ?? "";
    ctx.fillStyle = withAlpha(theme.border, 0.3);
    ctx.fillRect(plot.left, plot.top, plot.width, plot.height);
    if (tile && image) {
      ctx.imageSmoothingEnabled = false;
      const origin = cellOrigin(plot, tile.row0, tile.col0);
      ctx.drawImage(image, origin.x, origin.y, tile.n_cols * plot.cellW, tile.n_rows * plot.cellH);
    }
    if (options.causal) drawMask(ctx);
    ctx.strokeStyle = theme.border;
    ctx.lineWidth = 1;
    ctx.strokeRect(plot.left - 0.5, plot.top - 0.5, plot.width + 1, plot.height + 1);
    drawLabels(ctx);
    setFont(ctx, 11, theme.fontFamily, "bold");
    ctx.fillStyle = theme.foreground;
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    ctx.fillText(truncateLabel(tile?.title ?? "", 48), 2, 2);
    drawOverlay();
  }

  function band(ctx, row, color) {
    ctx.fillStyle = color;
    ctx.fillRect(plot.left, cellOrigin(plot, row, 0).y, plot.width, plot.cellH);
  }

  function drawOverlay() {
    const ctx = stack.overlayCtx;
    stack.clear(ctx);
    if (!plot) return;
    if (selectedRow != null && selectedRow < plot.view.rows) {
      const y = cellOrigin(plot, selectedRow, 0).y;
      ctx.strokeStyle = theme.accent;
      ctx.lineWidth = 2;
      ctx.strokeRect(plot.left - 1, y - 1, plot.width + 2, plot.cellH + 2);
    }
    if (hoveredRow != null && hoveredRow < plot.view.rows) band(ctx, hoveredRow, withAlpha(theme.highlight, 0.3));
    if (hover) {
      const { x, y } = cellOrigin(plot, hover.row, hover.col);
      ctx.strokeStyle = theme.accent;
      ctx.lineWidth = 2;
      ctx.strokeRect(x, y, plot.cellW, plot.cellH);
    }
    if (focused) {
      ctx.strokeStyle = theme.accent;
      ctx.lineWidth = 2;
      ctx.setLineDash([4, 3]);
      ctx.strokeRect(plot.left - 3, plot.top - 3, plot.width + 6, plot.height + 6);
      ctx.setLineDash([]);
    }
  }

  function valueText(row, col) {
    if (options.causal && col > row) return "masked (causal)";
    const index = tile ? tileIndex({ ...tile, shape: tile.matrix.shape }, row, col) : -1;
    if (index < 0) return "";
    const value = tile.matrix.data[index];
    return options.diverging ? `change ${formatSigned(Number(value.toFixed(4)))}` : `weight ${value.toFixed(4)}`;
  }

  // The difference panel is labelled with panel b's tokens; where panel a has another token at a
  // position, the tooltip names both ("b's token | a's token").
  const other = options.otherTokens ?? null;
  const otherKeys = options.otherKeyTokens ?? other;
  const both = (list, others, i) => {
    const own = visibleText(list[i]);
    return others && others[i] !== undefined && others[i] !== list[i] ? `${own} | ${visibleText(others[i])}` : own;
  };

  function describe(row, col) {
    return `query ${row}: ${both(tokens, other, row)}\nkey ${col}: ${both(keyTokens, otherKeys, col)}\n${valueText(row, col)}`;
  }

  function setPointer(next, point) {
    const changed = (next?.row ?? null) !== (hover?.row ?? null);
    hover = next;
    if (next && point) tooltip.show(describe(next.row, next.col), point.x, point.y);
    else tooltip.hide();
    drawOverlay();
    if (changed) callbacks.hover?.(next ? next.row : null);
  }

  listeners.on(canvas, "pointermove", (event) => {
    if (!plot) return;
    const point = localPoint(event, canvas);
    const hit = hitMatrix(plot, point.x, point.y);
    setPointer(hit ? { row: hit.row, col: hit.col } : null, point);
  });
  listeners.on(canvas, "pointerleave", () => setPointer(null));
  listeners.on(canvas, "click", () => { if (hover) callbacks.click?.(hover.row); });
  listeners.on(canvas, "focus", () => { focused = true; drawOverlay(); });
  listeners.on(canvas, "blur", () => { focused = false; drawOverlay(); });
  listeners.on(canvas, "keydown", (event) => {
    const rows = total().rows;
    if (event.key === "Escape") {
      callbacks.hover?.(null);
    } else if (event.key === "Enter" || event.key === " ") {
      const row = hoveredRow ?? selectedRow;
      if (row != null) callbacks.click?.(row);
    } else {
      const row = nextRow(event.key, hoveredRow ?? selectedRow, rows);
      if (row === undefined) return;
      callbacks.hover?.(row);
    }
    event.preventDefault();
  });

  function update(next) {
    tile = next && next.matrix ? { ...next, n_rows: next.n_rows ?? next.matrix.shape[0], n_cols: next.n_cols ?? next.matrix.shape[1],
      row0: next.row0 ?? 0, col0: next.col0 ?? 0 } : null;
    image = tile ? weightsImage(tile.matrix, options.lut, scale) : null;
    drawBase();
  }

  update(data);

  return viewHandle(stack, listeners, theme, {
    update,
    setScale(next) {
      scale = next;
      image = tile ? weightsImage(tile.matrix, options.lut, scale) : null;
      drawBase();
    },
    setHovered(row) { hoveredRow = row ?? null; drawOverlay(); },
    setSelected(row) { selectedRow = row ?? null; drawBase(); },
    /** Centre (CSS px, canvas coordinates) of cell (row, col): for tests and tools. */
    cellCenter(row, col) {
      const { x, y } = cellOrigin(plot, row, col);
      return { x: x + plot.cellW / 2, y: y + plot.cellH / 2 };
    },
  });
}

/**
 * A horizontal colour bar: `lut` across `width` px, the scale's ticks below (signed for a diverging
 * scale), `title` above. Returns {canvas, update(scale, title), destroy}.
 */
export function mountColorBar(parent, { theme, lut, scale, title = "", width = 240, name = "colorbar" }) {
  const listeners = createListeners();
  const height = 44;
  const stack = createStack(parent, { name, width, height });
  stack.base.setAttribute("role", "img");
  const bar = { x: 8, y: 16, width: width - 16, height: 10 };

  function draw(current, text) {
    const ctx = stack.baseCtx;
    stack.clear(ctx);
    for (let s = 0; s < bar.width; s++) {
      const k = Math.round((s / Math.max(1, bar.width - 1)) * 255) * 4;
      ctx.fillStyle = `rgb(${lut[k]},${lut[k + 1]},${lut[k + 2]})`;
      ctx.fillRect(bar.x + s, bar.y, 1, bar.height);
    }
    ctx.strokeStyle = theme.border;
    ctx.lineWidth = 1;
    ctx.strokeRect(bar.x - 0.5, bar.y - 0.5, bar.width + 1, bar.height + 1);
    setFont(ctx, 10, theme.fontFamily);
    ctx.fillStyle = theme.foreground;
    ctx.textBaseline = "bottom";
    ctx.textAlign = "left";
    ctx.fillText(text, bar.x, bar.y - 3);
    ctx.textBaseline = "top";
    const format = current.kind === "diverging" ? formatSigned : formatTick;
    const labels = [];
    for (const tick of current.ticks ?? []) {
      ctx.textAlign = tick.t === 0 ? "left" : tick.t === 1 ? "right" : "center";
      const label = format(tick.value);
      labels.push(label);
      ctx.fillText(label, bar.x + tick.t * bar.width, bar.y + bar.height + 3);
    }
    stack.base.setAttribute("aria-label", `colour bar: ${text}; ${labels.join(", ")}`);
    stack.box.dataset.title = text;
    stack.box.dataset.max = String(current.max ?? 0);
  }

  draw(scale, title);
  return viewHandle(stack, listeners, theme, {
    update(next, text = title) { title = text; draw(next, text); },
  });
}
