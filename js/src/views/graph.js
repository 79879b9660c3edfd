// Directed attention graph: nodes are tokens, edges query -> key weighted by attention.
//
// data: {pos: decoded float32 [n, 2] in [-1, 1], edges: decoded uint32 [m, 2] (query, key),
//        weights: decoded float32 [m], start, stop, total}: the graph shows tokens start..stop-1 of
//        total (a window around the focused token for long inputs, which the caption says).
// options: {theme, tokens, size, threshold}
// callbacks: {hover(token|null), click(token)}

import { withAlpha } from "../colors.js";
import { fitPositions, isPlaced, maxOf, nearestPoint, placedIndices, truncateLabel, visibleText } from "../layout.js";
import { createListeners, createStack, createTooltip, setFont, trackTokenPointer, viewHandle } from "./canvas.js";

const RADIUS = 5;
const PAD = 30;
const CAPTION = 30; // px at the top for the caption
const MAX_LABELS = 80;

function arrow(ctx, x0, y0, x1, y1, head) {
  const angle = Math.atan2(y1 - y0, x1 - x0);
  const length = Math.hypot(x1 - x0, y1 - y0);
  if (length < 2 * RADIUS + 1) return;
  const sx = x0 + Math.cos(angle) * RADIUS;
  const sy = y0 + Math.sin(angle) * RADIUS;
  const ex = x1 - Math.cos(angle) * (RADIUS + 1);
  const ey = y1 - Math.sin(angle) * (RADIUS + 1);
  ctx.beginPath();
  ctx.moveTo(sx, sy);
  ctx.lineTo(ex, ey);
  ctx.stroke();
  ctx.beginPath();
  ctx.moveTo(ex, ey);
  ctx.lineTo(ex - head * Math.cos(angle - 0.45), ey - head * Math.sin(angle - 0.45));
  ctx.lineTo(ex - head * Math.cos(angle + 0.45), ey - head * Math.sin(angle + 0.45));
  ctx.closePath();
  ctx.fill();
}

function loop(ctx, x, y) {
  ctx.beginPath();
  ctx.arc(x, y - RADIUS - 4, 4, 0, 2 * Math.PI);
  ctx.stroke();
}

export function mountGraph(parent, data, options, callbacks = {}) {
  const { theme } = options;
  const tokens = options.tokens ?? [];
  const size = options.size ?? 420;
  const listeners = createListeners();
  const stack = createStack(parent, { name: "graph", width: size, height: size });
  stack.base.setAttribute("role", "img");
  stack.base.setAttribute("aria-label", "Attention graph: tokens as nodes, an arrow from each query to the keys "
    + "it attends to above the threshold.");
  const tooltip = createTooltip(stack.box, theme);
  let current = null;
  let threshold = options.threshold ?? 0;
  let hoveredToken = null;
  let selected = new Set();

  function drawEdges(ctx, filter, color) {
    const { points, edges, weights, order, maxWeight } = current;
    for (const e of order) {
      const w = weights[e];
      if (w < threshold) continue;
      const q = edges[2 * e];
      const k = edges[2 * e + 1];
      if (filter && !filter(q, k)) continue;
      if (!isPlaced(points, q) || !isPlaced(points, k)) continue; // outside the graph window
      const t = w / maxWeight;
      ctx.strokeStyle = withAlpha(color, 0.15 + 0.85 * t);
      ctx.fillStyle = ctx.strokeStyle;
      ctx.lineWidth = 0.5 + 3 * t;
      if (q === k) loop(ctx, points[2 * q], points[2 * q + 1]);
      else arrow(ctx, points[2 * q], points[2 * q + 1], points[2 * k], points[2 * k + 1], 4 + 4 * t);
    }
  }

  function drawNodes(ctx, only) {
    const { points, placed } = current;
    setFont(ctx, 10, theme.monoFamily);
    ctx.textBaseline = "middle";
    ctx.textAlign = "left";
    for (const i of placed) {
      if (only && !only.has(i)) continue;
      ctx.beginPath();
      ctx.arc(points[2 * i], points[2 * i + 1], RADIUS, 0, 2 * Math.PI);
      ctx.fillStyle = selected.has(i) ? theme.highlight : theme.accent;
      ctx.fill();
      ctx.strokeStyle = theme.background;
      ctx.lineWidth = 1;
      ctx.stroke();
      if (only || placed.length <= MAX_LABELS || selected.has(i)) {
        ctx.fillStyle = theme.foreground;
        ctx.fillText(`${i} ${truncateLabel(tokens[i] ?? "", 10)}`, points[2 * i] + RADIUS + 2, points[2 * i + 1]);
      }
    }
  }

  function drawCaption(ctx) {
    const { start, stop, total } = current;
    setFont(ctx, 11, theme.fontFamily);
    ctx.fillStyle = theme.muted;
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    if (stop - start < total) {
      ctx.fillText(`tokens ${start}-${stop - 1} of ${total}: a ${stop - start}-token window ending at the focused token.`, 4, 2);
      ctx.fillText("The text view shows the whole prompt.", 4, 15);
    } else {
      ctx.fillText(`all ${total} tokens; edges above the threshold`, 4, 2);
    }
  }

  function drawBase() {
    const ctx = stack.baseCtx;
    stack.clear(ctx);
    if (current) {
      drawCaption(ctx);
      drawEdges(ctx, null, theme.muted);
      drawNodes(ctx, null);
    }
    drawOverlay();
  }

  function drawOverlay() {
    const ctx = stack.overlayCtx;
    stack.clear(ctx);
    const token = pointerToken() ?? hoveredToken;
    // A token outside the graph window (NaN position) has nothing to highlight.
    if (!current || token == null || token >= current.n || !isPlaced(current.points, token)) return;
    ctx.fillStyle = withAlpha(theme.background, 0.6);
    ctx.fillRect(0, 0, stack.width, stack.height);
    const touched = new Set([token]);
    drawEdges(ctx, (q, k) => {
      const hit = q === token || k === token;
      if (hit) { touched.add(q); touched.add(k); }
      return hit;
    }, theme.highlight);
    drawNodes(ctx, touched);
    const { points } = current;
    ctx.strokeStyle = theme.highlight;
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.arc(points[2 * token], points[2 * token + 1], RADIUS + 3, 0, 2 * Math.PI);
    ctx.stroke();
  }

  const pointerToken = trackTokenPointer(listeners, stack.base, tooltip, {
    hitAt: (point) => (current ? nearestPoint(current.points, point.x, point.y, RADIUS + 5) : null),
    describe: (hit) => `token ${hit}: ${visibleText(tokens[hit])}`,
    changed: (hit) => { drawOverlay(); callbacks.hover?.(hit); },
    click: (hit) => callbacks.click?.(hit),
  });

  function update(next) {
    if (!next || !next.pos || !next.edges || !next.weights) {
      current = null;
    } else {
      const n = next.pos.shape[0];
      const weights = next.weights.data;
      const order = Array.from(weights.keys()).sort((a, b) => weights[a] - weights[b]);
      const points = fitPositions(next.pos.data, size, size - CAPTION, PAD);
      for (let i = 1; i < points.length; i += 2) points[i] += CAPTION;
      const placed = placedIndices(points);
      current = { n, points, placed, edges: next.edges.data, weights, order, maxWeight: maxOf(weights) || 1,
        start: next.start ?? 0, stop: next.stop ?? n, total: next.total ?? n };
      if (n <= 500) stack.box.dataset.geometry = JSON.stringify({ points: Array.from(points) });
    }
    drawBase();
  }

  update(data);

  return viewHandle(stack, listeners, theme, {
    update,
    setThreshold(value) { threshold = value ?? 0; drawBase(); },
    setHovered(token) { hoveredToken = token; drawOverlay(); },
    setSelected(list) { selected = new Set(list ?? []); drawBase(); },
  });
}
