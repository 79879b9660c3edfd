// Rollout strip: one bar per token (max-pooled per pixel for long sequences),
// an optional second series (attention flow) as a line, token labels below.
//
// data: {values: decoded float32 [n], flow: decoded float32 [n] | null, row: int, label?: string}
//   row is the query token whose rollout/flow row is shown (marked with a triangle); label names the
//   rollout in the legend (e.g. "rollout (max of heads, lowest 90% discarded)"; default "rollout").
// options: {theme, tokens, width, height, scale: "linear" | "log" | "no_sink"}
//   The scale (scale.js) sets the bar heights: linear, log, or linear without the first token
//   (the sink usually holds nearly all the weight; its bar then runs off the top, marked).
// callbacks: {hover(token|null), click(token)}

import { withAlpha } from "../colors.js";
import { binMax, labelIndices, thinStep, truncateLabel, visibleText } from "../layout.js";
import { scaleFor } from "../scale.js";
import { createListeners, createStack, createTooltip, setFont, trackTokenPointer, viewHandle } from "./canvas.js";

const LEFT = 8;
const RIGHT = 8;
const TOP = 22;
const BOTTOM = 84;

export function mountStrip(parent, data, options, callbacks = {}) {
  const { theme } = options;
  const tokens = options.tokens ?? [];
  const width = options.width ?? 560;
  const height = options.height ?? 240;
  const plot = { left: LEFT, top: TOP, width: width - LEFT - RIGHT, height: height - TOP - BOTTOM };
  const listeners = createListeners();
  const stack = createStack(parent, { name: "strip", width, height });
  stack.base.setAttribute("role", "img");
  stack.base.setAttribute("aria-label", "Rollout strip: a bar per token for the focused token's rollout over "
    + "all layers, and attention flow as a line.");
  const tooltip = createTooltip(stack.box, theme);
  let current = null;
  let hoveredToken = null;
  let selected = new Set();
  let scaleKind = options.scale ?? "linear";

  const tokenX = (i) => plot.left + (i / current.n) * plot.width;
  const tokenAt = (x) => Math.floor(((x - plot.left) / plot.width) * current.n);

  function drawLegend(ctx) {
    setFont(ctx, 10, theme.fontFamily);
    ctx.textBaseline = "middle";
    ctx.textAlign = "left";
    const entries = [[current.label, theme.accent, current.valueScale.max]];
    if (current.flow) entries.push(["flow", theme.highlight, current.flowScale.max]);
    let x = plot.left;
    for (const [name, color, max] of entries) {
      ctx.fillStyle = color;
      ctx.fillRect(x, 6, 10, 10);
      ctx.fillStyle = theme.muted;
      const text = `${name} (max ${max.toPrecision(3)})`;
      ctx.fillText(text, x + 13, 11);
      x += 24 + ctx.measureText(text).width;
    }
    const row = `row ${current.row}: ${truncateLabel(tokens[current.row] ?? "", 16)}`;
    const text = `${row} · ${current.valueScale.label}`;
    ctx.fillText(ctx.measureText(text).width <= width - RIGHT - x ? text : row, x, 11);  // a long label: no scale
  }

  function drawBars(ctx) {
    const { values, valueScale, n } = current;
    const bins = Math.min(n, Math.floor(plot.width));
    const pooled = binMax(values, bins);
    const barWidth = plot.width / bins;
    const bottom = plot.top + plot.height;
    ctx.fillStyle = theme.accent;
    for (let b = 0; b < bins; b++) {
      const h = valueScale.t(pooled[b]) * plot.height;
      ctx.fillRect(plot.left + b * barWidth + (barWidth > 3 ? 0.5 : 0), bottom - h,
        Math.max(barWidth - (barWidth > 3 ? 1 : 0), 0.5), h);
    }
    if (valueScale.kind === "no_sink" && values[0] > valueScale.max) {  // the first token runs off the scale
      ctx.fillStyle = theme.foreground;
      ctx.beginPath();
      ctx.moveTo(plot.left + barWidth / 2, plot.top - 4);
      ctx.lineTo(plot.left + barWidth / 2 - 4, plot.top + 3);
      ctx.lineTo(plot.left + barWidth / 2 + 4, plot.top + 3);
      ctx.closePath();
      ctx.fill();
    }
    ctx.strokeStyle = theme.border;
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(plot.left, bottom + 0.5);
    ctx.lineTo(plot.left + plot.width, bottom + 0.5);
    ctx.stroke();
  }

  function drawFlow(ctx) {
    const { flow, flowScale, n } = current;
    if (!flow) return;
    const bins = Math.min(n, Math.floor(plot.width));
    const pooled = binMax(flow, bins);
    const barWidth = plot.width / bins;
    ctx.strokeStyle = theme.highlight;
    ctx.fillStyle = theme.highlight;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    for (let b = 0; b < bins; b++) {
      const x = plot.left + (b + 0.5) * barWidth;
      const y = plot.top + plot.height - flowScale.t(pooled[b]) * plot.height;
      if (b === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    }
    ctx.stroke();
  }

  function drawLabels(ctx) {
    const { n, row } = current;
    const fontSize = 10;
    setFont(ctx, fontSize, theme.monoFamily);
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    const step = thinStep(plot.width / n, fontSize + 2);
    const bottom = plot.top + plot.height;
    for (const i of labelIndices(0, n, step)) {
      ctx.fillStyle = selected.has(i) ? theme.accent : theme.foreground;
      ctx.save();
      ctx.translate(tokenX(i + 0.5), bottom + 12);
      ctx.rotate(-Math.PI / 2);
      ctx.fillText(`${i} ${truncateLabel(tokens[i] ?? "", 10)}`, 0, 0);
      ctx.restore();
    }
    if (row != null && row < n) {
      const x = tokenX(row + 0.5);
      ctx.fillStyle = theme.foreground;
      ctx.beginPath();
      ctx.moveTo(x, bottom + 2);
      ctx.lineTo(x - 4, bottom + 9);
      ctx.lineTo(x + 4, bottom + 9);
      ctx.closePath();
      ctx.fill();
    }
  }

  function drawBase() {
    const ctx = stack.baseCtx;
    stack.clear(ctx);
    if (current) {
      drawLegend(ctx);
      drawBars(ctx);
      drawFlow(ctx);
      drawLabels(ctx);
    }
    drawOverlay();
  }

  function drawOverlay() {
    const ctx = stack.overlayCtx;
    stack.clear(ctx);
    const token = pointerToken() ?? hoveredToken;
    if (!current || token == null || token >= current.n) return;
    const x = tokenX(token);
    const w = Math.max(plot.width / current.n, 2);
    ctx.fillStyle = withAlpha(theme.highlight, 0.15);
    ctx.fillRect(x, plot.top, w, plot.height);
    ctx.strokeStyle = theme.highlight;
    ctx.lineWidth = 1.5;
    ctx.strokeRect(x + 0.5, plot.top + 0.5, w - 1, plot.height - 1);
  }

  function describe(i) {
    let text = `token ${i}: ${visibleText(tokens[i])}\nrollout ${current.values[i].toFixed(4)}`;
    if (current.flow) text += `\nflow ${current.flow[i].toFixed(4)}`;
    return text;
  }

  const pointerToken = trackTokenPointer(listeners, stack.base, tooltip, {
    hitAt: (point) => {
      const inside = current && point.x >= plot.left && point.x < plot.left + plot.width && point.y < height;
      return inside ? tokenAt(point.x) : null;
    },
    describe,
    changed: (hit) => { drawOverlay(); callbacks.hover?.(hit); },
    click: (hit) => callbacks.click?.(hit),
  });

  function update(next) {
    if (!next || !next.values) {
      current = null;
    } else {
      const values = next.values.data;
      const flow = next.flow ? next.flow.data : null;
      current = { values, flow, n: values.length, row: next.row ?? null, label: next.label ?? "rollout" };
      rescale();
      stack.box.dataset.geometry = JSON.stringify({ ...plot, count: current.n });
    }
    drawBase();
  }

  function rescale() {
    current.valueScale = scaleFor(scaleKind, current.values);
    current.flowScale = current.flow ? scaleFor(scaleKind, current.flow) : null;
  }

  update(data);

  return viewHandle(stack, listeners, theme, {
    update,
    setScale(kind) {
      scaleKind = kind ?? "linear";
      if (current) rescale();
      drawBase();
    },
    setHovered(token) { hoveredToken = token; drawOverlay(); },
    setSelected(list) { selected = new Set(list ?? []); drawBase(); },
  });
}
