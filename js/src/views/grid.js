// Layer x head grid of pooled attention thumbnails, plus a layer-mean column.
//
// data: {thumbs: uint8 [L, H, sq, sk], layer_mean: uint8 [L, sq, sk], color_by: float32 [L, H] | null,
//        ready: uint8 [L] | null} (decoded arrays {data, shape, dtype}); a layer whose ready flag is 0
//        is still being computed in the kernel: its cells are drawn as placeholders. Thumbnails are
//        square (sq = sk) for self-attention; cross-attention's rectangles are stretched to the cells.
//        color_by comes with metric, its name (the kernel's color_by).
// options: {theme, lut, layer, head, numTokens, maxWidth, maxHeight, modelName?, part?, quantity? ("weight",
//   or "contribution" for measure="contribution": the title and the colour bar name it)}
// The figure (figure.js): a title naming the model, "head" and "layer" axis titles, the H/L labels, and
// colour bars on the right: the thumbnails' (0 .. each thumbnail's own maximum) and, with color_by,
// the metric's (its range; the borders' colours). maxWidth includes the bars. Hover and selection
// are drawn on the overlay canvas only, so toFigure(scale) (PNG) and toSVG() leave them out.
// callbacks: {select(layer, head | null)}

import { makeLUT, withAlpha } from "../colors.js";
import { atlasColors, BAR_SPACE, finiteRange, gridBars, gridFigureLayout, gridScene } from "../figure.js";
import { hitGrid } from "../layout.js";
import { sceneToSVG } from "../svg.js";
import {
  canvasMeasure, createListeners, createStack, createTooltip, drawScene, localPoint, sceneCanvas, sourceDataURL, viewHandle,
} from "./canvas.js";

/** Metric values -> 0..1 over their finite range (non-finite: 0). */
function normalise(values) {
  const range = finiteRange(values);
  const lo = range ? range.lo : 0;
  const span = range && range.hi > range.lo ? range.hi - range.lo : 1;
  return Array.from(values, (v) => (Number.isFinite(v) ? (v - lo) / span : 0));
}

export function mountGrid(parent, data, options, callbacks = {}) {
  const { theme } = options;
  const borderLUT = makeLUT("viridis");
  const listeners = createListeners();
  let state = { layer: options.layer ?? 0, head: options.head ?? null, hoveredToken: null,
    numTokens: options.numTokens ?? 0, hoverCell: null };
  let current = null;
  let scene = null;
  const stack = createStack(parent, { name: "grid", width: 100, height: 100 });
  const tooltip = createTooltip(stack.box, theme);
  const measure = canvasMeasure(() => stack.baseCtx, theme);

  function layout(layers, heads, metric) {
    const bars = gridBars(metric);
    return gridFigureLayout({ layers, heads, maxWidth: options.maxWidth ?? 420 + 12 + bars * BAR_SPACE,
      maxHeight: options.maxHeight ?? 500, bars });
  }

  const isReady = (layer) => !current.ready || current.ready.data[layer] !== 0;

  function currentScene() {
    const { figure, atlas, scores, range, metric, rows, cols, ready } = current;
    return gridScene(figure, { atlas, rows, cols, ready: ready?.data ?? null, scores, range, metric },
      { theme, lut: options.lut, borderLUT, measure, modelName: options.modelName ?? "", part: options.part ?? "",
        quantity: options.quantity ?? "weight" });
  }

  function drawBase() {
    const { figure } = current;
    const { grid } = figure;
    stack.resize(figure.width, figure.height);
    stack.box.dataset.geometry = JSON.stringify({ cell: grid.cell, layers: grid.layers, heads: grid.heads,
      rows: Array.from({ length: grid.layers }, (_, l) => grid.rowY(l)),
      columns: Array.from({ length: grid.heads + 1 }, (_, c) => grid.columnX(c)) });
    const ctx = stack.baseCtx;
    stack.clear(ctx);
    scene = currentScene();
    stack.box.dataset.title = scene.title;
    stack.box.dataset.colorbars = JSON.stringify(scene.items.filter((item) => item.kind === "gradient")
      .map(({ x, y, width, height }) => ({ x, y, width, height }))); // where the colour bars are, for tests
    drawScene(ctx, scene.items, scene.fonts);
    drawOverlay();
  }

  function outline(ctx, layer, col, color, width) {
    const { grid } = current.figure;
    ctx.strokeStyle = color;
    ctx.lineWidth = width;
    ctx.strokeRect(grid.columnX(col) - width / 2, grid.rowY(layer) - width / 2,
      grid.cell + width, grid.cell + width);
  }

  function drawOverlay() {
    const ctx = stack.overlayCtx;
    stack.clear(ctx);
    if (!current) return;
    const { grid } = current.figure;
    const token = state.hoveredToken;
    if (token != null && state.numTokens > 0) {
      ctx.fillStyle = withAlpha(theme.highlight, 0.45);
      const band = Math.max(1, grid.cell / state.numTokens);
      for (let layer = 0; layer < grid.layers; layer++) {
        for (let col = 0; col <= grid.heads; col++) {
          ctx.fillRect(grid.columnX(col), grid.rowY(layer) + token * grid.cell / state.numTokens, grid.cell, band);
        }
      }
    }
    if (state.layer != null && state.layer < grid.layers) {
      outline(ctx, state.layer, state.head == null ? grid.heads : state.head, theme.accent, 3);
    }
    if (state.hoverCell) {
      const { layer, head } = state.hoverCell;
      outline(ctx, layer, head == null ? grid.heads : head, theme.foreground, 1);
    }
  }

  function update(next) {
    if (!next || !next.thumbs) {
      current = null;
      scene = null;
      stack.clear(stack.baseCtx);
      drawOverlay();
      return;
    }
    const [layers, heads, rows, cols] = next.thumbs.shape;
    const metric = next.color_by ? (next.metric || "color_by") : null;
    const atlas = { id: "grid", ...atlasColors(next.thumbs, next.layer_mean, options.lut) };
    current = { figure: layout(layers, heads, metric), atlas, rows, cols, ready: next.ready ?? null, metric,
      scores: next.color_by ? normalise(next.color_by.data) : null, raw: next.color_by,
      range: next.color_by ? finiteRange(next.color_by.data) : null };
    drawBase();
  }

  function describe(hit) {
    const head = hit.head == null ? "mean of heads" : `head ${hit.head}`;
    let text = `layer ${hit.layer} · ${head}`;
    if (!isReady(hit.layer)) return `${text} · being computed`;
    if (hit.head != null && current.raw) {
      text += ` · ${current.metric}: ${current.raw.data[hit.layer * current.figure.grid.heads + hit.head].toFixed(3)}`;
    }
    return text;
  }

  listeners.on(stack.base, "pointermove", (event) => {
    if (!current) return;
    const point = localPoint(event, stack.base);
    const hit = hitGrid(current.figure.grid, point.x, point.y);
    const same = hit && state.hoverCell && hit.layer === state.hoverCell.layer && hit.head === state.hoverCell.head;
    if (!same) {
      state.hoverCell = hit;
      drawOverlay();
    }
    stack.base.style.cursor = hit ? "pointer" : "default";
    if (hit) tooltip.show(describe(hit), point.x, point.y);
    else tooltip.hide();
  });
  listeners.on(stack.base, "pointerleave", () => {
    state.hoverCell = null;
    tooltip.hide();
    drawOverlay();
  });
  listeners.on(stack.base, "click", (event) => {
    if (!current) return;
    const point = localPoint(event, stack.base);
    const hit = hitGrid(current.figure.grid, point.x, point.y);
    if (hit) callbacks.select?.(hit.layer, hit.head);
  });

  update(data);

  return viewHandle(stack, listeners, theme, {
    update,
    select(layer, head) {
      state.layer = layer;
      state.head = head;
      drawOverlay();
    },
    setHovered(token, numTokens = state.numTokens) {
      state.hoveredToken = token;
      state.numTokens = numTokens;
      drawOverlay();
    },
    /** Geometry for tests and tools: centre of the cell of (layer, head|null). */
    cellCenter(layer, head) {
      const { grid } = current.figure;
      const col = head == null ? grid.heads : head;
      return { x: grid.columnX(col) + grid.cell / 2, y: grid.rowY(layer) + grid.cell / 2 };
    },
    /** The figure (title, labels, colour bars; no hover or selection outline) at `scale` px per CSS px. */
    toFigure(scale = 2) { return scene ? sceneCanvas(scene, scale) : null; },
    /** The figure as an SVG document (svg.js). */
    toSVG() { return scene ? sceneToSVG(scene, { imageHref: sourceDataURL }) : null; },
    /** The figure's items (figure.js), for tests and tools. */
    scene: () => scene,
  });
}
