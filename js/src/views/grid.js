// Layer x head grid of pooled attention thumbnails, plus a layer-mean column.
//
// data: {thumbs: uint8 [L, H, sq, sk], layer_mean: uint8 [L, sq, sk], color_by: float32 [L, H] | null,
//        ready: uint8 [L] | null} (decoded arrays {data, shape, dtype}); a layer whose ready flag is 0
//        is still being computed in the kernel: its cells are drawn as placeholders. Thumbnails are
//        square (sq = sk) for self-attention; cross-attention's rectangles are stretched to the cells.
// options: {theme, lut, layer, head, numTokens, maxWidth, maxHeight}
// callbacks: {select(layer, head | null)}

import { makeLUT, withAlpha } from "../colors.js";
import { gridCellSize, gridLayout, hitGrid, thinStep } from "../layout.js";
import { createListeners, createStack, createTooltip, hatchPattern, localPoint, setFont, viewHandle } from "./canvas.js";

const LEFT = 30;
const TOP = 18;
const GAP = 3;

/** Paint every thumbnail into one offscreen canvas: row = layer, column = head (+ mean). */
function paintAtlas(thumbs, layerMean, lut) {
  const [layers, heads, rows, cols] = thumbs.shape;
  const width = (heads + 1) * cols;
  const image = new ImageData(width, layers * rows);
  const put = (source, offset, layer, col) => {
    for (let y = 0; y < rows; y++) {
      for (let x = 0; x < cols; x++) {
        const k = source[offset + y * cols + x] * 4;
        const p = ((layer * rows + y) * width + col * cols + x) * 4;
        image.data[p] = lut[k];
        image.data[p + 1] = lut[k + 1];
        image.data[p + 2] = lut[k + 2];
        image.data[p + 3] = 255;
      }
    }
  };
  for (let layer = 0; layer < layers; layer++) {
    for (let head = 0; head < heads; head++) put(thumbs.data, (layer * heads + head) * rows * cols, layer, head);
    if (layerMean) put(layerMean.data, layer * rows * cols, layer, heads);
  }
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = layers * rows;
  canvas.getContext("2d").putImageData(image, 0, 0);
  return canvas;
}

function normalise(values) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  const span = hi > lo ? hi - lo : 1;
  return Array.from(values, (v) => (Number.isFinite(v) ? (v - lo) / span : 0));
}

export function mountGrid(parent, data, options, callbacks = {}) {
  const { theme } = options;
  const borderLUT = makeLUT("viridis");
  const listeners = createListeners();
  let state = { layer: options.layer ?? 0, head: options.head ?? null, hoveredToken: null,
    numTokens: options.numTokens ?? 0, hoverCell: null };
  let current = null;
  const stack = createStack(parent, { name: "grid", width: 100, height: 100 });
  const tooltip = createTooltip(stack.box, theme);

  function layout(layers, heads) {
    const cell = gridCellSize({ layers, heads, maxWidth: options.maxWidth ?? 420, maxHeight: options.maxHeight ?? 500,
      gap: GAP, left: LEFT, top: TOP });
    return gridLayout({ layers, heads, cell, gap: GAP, left: LEFT, top: TOP });
  }

  const isReady = (layer) => !current.ready || current.ready.data[layer] !== 0;

  function drawBase() {
    const { grid, atlas, scores, rows, cols } = current;
    stack.resize(grid.width + 12, grid.height + 2); // room for the centred "mean" header
    stack.box.dataset.geometry = JSON.stringify({ cell: grid.cell, layers: grid.layers, heads: grid.heads,
      rows: Array.from({ length: grid.layers }, (_, l) => grid.rowY(l)),
      columns: Array.from({ length: grid.heads + 1 }, (_, c) => grid.columnX(c)) });
    const ctx = stack.baseCtx;
    stack.clear(ctx);
    ctx.imageSmoothingEnabled = Math.max(rows, cols) > grid.cell;
    const pending = hatchPattern(ctx, withAlpha(theme.muted, 0.6));
    for (let layer = 0; layer < grid.layers; layer++) {
      for (let col = 0; col <= grid.heads; col++) {
        const x = grid.columnX(col);
        const y = grid.rowY(layer);
        if (!isReady(layer)) {
          ctx.fillStyle = withAlpha(theme.border, 0.25);
          ctx.fillRect(x, y, grid.cell, grid.cell);
          ctx.fillStyle = pending;
          ctx.fillRect(x, y, grid.cell, grid.cell);
          continue;
        }
        ctx.drawImage(atlas, col * cols, layer * rows, cols, rows, x, y, grid.cell, grid.cell);
        if (scores && col < grid.heads) {
          const k = Math.round(scores[layer * grid.heads + col] * 255) * 4;
          ctx.strokeStyle = `rgb(${borderLUT[k]},${borderLUT[k + 1]},${borderLUT[k + 2]})`;
          ctx.lineWidth = 3;
          ctx.strokeRect(x + 1.5, y + 1.5, grid.cell - 3, grid.cell - 3);
        }
      }
    }
    drawLabels(ctx, grid);
    drawOverlay();
  }

  function drawLabels(ctx, grid) {
    setFont(ctx, 10, theme.fontFamily);
    ctx.fillStyle = theme.muted;
    // Thin the head labels so the widest one ("H{heads-1}") keeps a 4 px gap to its neighbours.
    const step = thinStep(grid.cell + grid.gap, ctx.measureText(`H${Math.max(0, grid.heads - 1)}`).width + 4);
    ctx.textAlign = "center";
    ctx.textBaseline = "bottom";
    for (let head = 0; head < grid.heads; head += step) {
      ctx.fillText(`H${head}`, grid.columnX(head) + grid.cell / 2, TOP - 4);
    }
    ctx.fillText("mean", grid.columnX(grid.heads) + grid.cell / 2, TOP - 4);
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let layer = 0; layer < grid.layers; layer += thinStep(grid.cell + grid.gap, 12)) {
      ctx.fillText(`L${layer}`, LEFT - 5, grid.rowY(layer) + grid.cell / 2);
    }
  }

  function outline(ctx, layer, col, color, width) {
    const { grid } = current;
    ctx.strokeStyle = color;
    ctx.lineWidth = width;
    ctx.strokeRect(grid.columnX(col) - width / 2, grid.rowY(layer) - width / 2,
      grid.cell + width, grid.cell + width);
  }

  function drawOverlay() {
    const ctx = stack.overlayCtx;
    stack.clear(ctx);
    if (!current) return;
    const { grid } = current;
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
      stack.clear(stack.baseCtx);
      drawOverlay();
      return;
    }
    const [layers, heads, rows, cols] = next.thumbs.shape;
    const scores = next.color_by ? normalise(next.color_by.data) : null;
    current = { grid: layout(layers, heads), atlas: paintAtlas(next.thumbs, next.layer_mean, options.lut),
      scores, raw: next.color_by, ready: next.ready ?? null, rows, cols };
    drawBase();
  }

  function describe(hit) {
    const head = hit.head == null ? "mean of heads" : `head ${hit.head}`;
    let text = `layer ${hit.layer} · ${head}`;
    if (!isReady(hit.layer)) return `${text} · being computed`;
    if (hit.head != null && current.raw) {
      text += ` · ${current.raw.data[hit.layer * current.grid.heads + hit.head].toFixed(3)}`;
    }
    return text;
  }

  listeners.on(stack.base, "pointermove", (event) => {
    if (!current) return;
    const point = localPoint(event, stack.base);
    const hit = hitGrid(current.grid, point.x, point.y);
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
    const hit = hitGrid(current.grid, point.x, point.y);
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
      const { grid } = current;
      const col = head == null ? grid.heads : head;
      return { x: grid.columnX(col) + grid.cell / 2, y: grid.rowY(layer) + grid.cell / 2 };
    },
  });
}
