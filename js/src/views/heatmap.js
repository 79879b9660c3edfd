// One [query, key] attention matrix with token labels, hover, causal mask, zoom and pan.
//
// data: {matrix: decoded [r, c] (uint8 0..255 or float 0..1), row0, col0, n_rows, n_cols, title?}
//   The matrix covers query tokens row0..row0+n_rows and key tokens col0..col0+n_cols;
//   r < n_rows (or c < n_cols) means the tile is pooled, each cell covering several tokens.
//   title names what is shown ("layer 15, mean of heads"); drawn above the matrix.
// options: {theme, lut, tokens, keyTokens?, cross?, causal, size, scale: "linear" | "log" | "no_sink",
//   modelName?, quantity? ("weight", or "contribution": the colour bar's title and the tooltip)}
//   tokens label the rows (queries), keyTokens the columns (keys; default: tokens). Cross-attention
//   (cross: true) is a rectangle: target tokens down, source tokens across, cells kept square.
// The figure (figure.js): the title names the model and what is shown, axis titles say query/key
// (target/source), labels read "index token", a colour bar on the right shows the scale. Hover
// feedback is drawn on the overlay canvas only, so toFigure(scale) (PNG) and toSVG() leave it out.
// callbacks: {hover(query|null, key|null), window({row0, col0, rows, cols}), click(query, key)}

import { withAlpha } from "../colors.js";
import { heatmapLayout, heatmapScene, LABEL_CHARS, matrixColors, tokenLabel as figureTokenLabel } from "../figure.js";
import { cellOrigin, clampWindow, hitMatrix, panWindow, sameWindow, tileIndex, visibleText, zoomWindow } from "../layout.js";
import { scaleFor } from "../scale.js";
import { sceneToSVG } from "../svg.js";
import {
  canvasMeasure, createListeners, createStack, createTooltip, drawScene, localPoint, sceneCanvas, sourceDataURL, viewHandle,
} from "./canvas.js";

/** A label: "12 cat" (index, then the token as visible text, shortened). */
export function tokenLabel(tokens, i, chars = LABEL_CHARS) {
  return figureTokenLabel(tokens, i, chars);
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
  const measure = canvasMeasure(() => stack.baseCtx, theme);

  let tile = null;
  let view = null;
  let userWindow = false;
  let hover = null;
  let hoveredToken = null;
  let selected = new Set();
  let drag = null;
  let plot = null;
  let scene = null;
  let scaleKind = options.scale ?? "linear";
  let scale = null;

  const total = () => {
    const extent = tile ? Math.max(tile.row0 + tile.n_rows, tile.col0 + tile.n_cols) : 1;
    return { rows: tokens.length || tile?.n_queries || extent, cols: keyTokens.length || tile?.n_keys || extent };
  };

  const layout = heatmapLayout({ tokens, keyTokens, cross, size, total: total(), measure });
  stack.resize(layout.width, layout.height);

  /** The figure as it stands: title, axis titles, labels, matrix, mask, colour bar (no hover). */
  function currentScene() {
    return heatmapScene(layout, {
      tile: tile && tile.source ? tile : null, view, causal: !!options.causal, scale, selected, title: tile?.title ?? "",
      quantity: options.quantity ?? "weight",
    }, { theme, lut: options.lut, tokens, keyTokens, measure, modelName: options.modelName ?? "" });
  }

  function drawBase() {
    const ctx = stack.baseCtx;
    stack.clear(ctx);
    scene = currentScene();
    plot = scene.plot;
    if (plot) {
      stack.box.dataset.geometry = JSON.stringify({ left: plot.left, top: plot.top, cellW: plot.cellW,
        cellH: plot.cellH, width: plot.width, height: plot.height, total: total(), cross, ...view });
    }
    stack.box.dataset.title = scene.title;
    stack.box.dataset.colorbars = JSON.stringify(scene.items.filter((item) => item.kind === "gradient")
      .map(({ x, y, width, height }) => ({ x, y, width, height }))); // where the colour bars are, for tests
    drawScene(ctx, scene.items, scene.fonts);
    drawOverlay();
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
    return `${options.quantity ?? "weight"} ${weight.toFixed(4)}`;
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

  /** The tile's cells in colour (figure.js image source). */
  function tileSource() {
    const [rows, cols] = tile.matrix.shape.slice(-2);
    return { id: "heatmap", rows, cols, rgba: matrixColors(tile.matrix, options.lut, scale) };
  }

  function update(next) {
    const title = tile?.title;
    tile = next && next.matrix ? { ...next, title: next.title ?? title } : null;  // zoom tiles keep the title
    if (tile) {
      tile = { ...tile, n_rows: tile.n_rows ?? tile.matrix.shape[0], n_cols: tile.n_cols ?? tile.matrix.shape[1],
        row0: tile.row0 ?? 0, col0: tile.col0 ?? 0 };
      scale = tileScale();
      tile.source = tileSource();
      if (!userWindow || !view) {
        view = clampWindow({ row0: tile.row0, col0: tile.col0, rows: tile.n_rows, cols: tile.n_cols }, total());
      }
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
        tile.source = tileSource();
      }
      drawBase();
    },
    get window() { return view ? { ...view } : null; },
    /** The figure (title, axis titles, tick labels, colour bar; no hover) at `scale` px per CSS px. */
    toFigure(scale = 2) { return sceneCanvas(scene ?? currentScene(), scale); },
    /** The figure as an SVG document (svg.js: cells as rects up to its budget, else an embedded PNG). */
    toSVG() { return sceneToSVG(scene ?? currentScene(), { imageHref: sourceDataURL }); },
    /** The figure's items (figure.js), for tests and tools. */
    scene: () => scene ?? currentScene(),
  });
}
