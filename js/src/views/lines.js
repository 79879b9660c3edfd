// BertViz-style head view: queries on the left, keys on the right, lines by weight.
//
// data: {weights: decoded [heads, n] float, token, direction: "from"|"to", heads: [int]}
//   direction "from": row `token` (what the token attends to), lines left token -> every right key;
//   direction "to": column `token` (what attends to it), lines every left query -> right token.
//   heads lists the head index of each weights row ([] or null: one row, the mean over heads).
// options: {theme, tokens, keyTokens?, cross?, width, maxHeight}: tokens on the left (queries), keyTokens
//   on the right (keys; default tokens). Cross-attention: target tokens left, source tokens right.
// callbacks: {hover(token|null, side "from"|"to"|null), click(token, side)}

import { headColor, withAlpha } from "../colors.js";
import { labelIndices, rowAt, thinStep, truncateLabel, visibleText } from "../layout.js";
import { createListeners, createStack, createTooltip, localPoint, setFont, viewHandle } from "./canvas.js";

const LEGEND = 20;
const PAD = 6;
const MAX_HEIGHT = 2400;

export function mountLines(parent, data, options, callbacks = {}) {
  const { theme } = options;
  const tokens = options.tokens ?? [];
  const keyTokens = options.keyTokens ?? tokens;
  const cross = !!options.cross;
  const counts = { from: tokens.length, to: keyTokens.length }; // rows of the left and right columns
  const count = Math.max(counts.from, counts.to);
  const width = options.width ?? 420;
  // Fit maxHeight; long sequences may grow to MAX_HEIGHT, beyond that rows get thinner than a pixel.
  const fit = ((options.maxHeight ?? 560) - LEGEND - 2 * PAD) / Math.max(count, 1);
  const lineHeight = Math.min(18, Math.max(fit, Math.min(3, MAX_HEIGHT / Math.max(count, 1))));
  const top = LEGEND + PAD;
  const leftEdge = Math.round(width * 0.34);
  const rightEdge = width - leftEdge;
  const listeners = createListeners();
  const stack = createStack(parent, { name: "lines", width, height: top + count * lineHeight + PAD });
  stack.box.dataset.geometry = JSON.stringify({ leftEdge, rightEdge, top, lineHeight, count, left: counts.from,
    right: counts.to });
  stack.base.setAttribute("role", "img");
  stack.base.setAttribute("aria-label", `Token lines: ${cross ? "target" : "query"} tokens on the left, `
    + `${cross ? "source" : "key"} tokens on the right, a line for each weight of the hovered token.`);
  const tooltip = createTooltip(stack.box, theme);

  let current = null;
  let hoveredToken = null;
  let pointer = null; // {token, side}
  let selected = new Set();

  const rowY = (i) => top + (i + 0.5) * lineHeight;
  const fontSize = Math.max(8, Math.min(12, Math.floor(lineHeight) - 3));

  function drawLegend(ctx) {
    const heads = current?.heads ?? [];
    setFont(ctx, 10, theme.fontFamily);
    ctx.textBaseline = "middle";
    ctx.textAlign = "left";
    let x = PAD;
    const entries = heads.length ? heads.map((h) => [`H${h}`, headColor(h)]) : current ? [["mean", theme.accent]] : [];
    for (const [name, color] of entries) {
      if (x > width - 30) break;
      ctx.fillStyle = color;
      ctx.fillRect(x, LEGEND / 2 - 5, 10, 10);
      ctx.fillStyle = theme.muted;
      ctx.fillText(name, x + 13, LEGEND / 2);
      x += 16 + ctx.measureText(name).width + 6;
    }
  }

  function drawLines(ctx) {
    if (!current) return;
    const { weights, token, direction } = current;
    const [rows, n] = weights.shape;
    const heads = current.heads ?? [];
    ctx.lineWidth = rows > 1 ? 1.5 : 2;
    for (let k = 0; k < rows; k++) {
      ctx.strokeStyle = heads.length ? headColor(heads[k]) : theme.accent;
      for (let j = 0; j < Math.min(n, direction === "to" ? counts.from : counts.to); j++) {
        const w = weights.data[k * n + j];
        if (!(w > 0.004)) continue;
        ctx.globalAlpha = Math.min(1, w);
        const [from, to] = direction === "to" ? [j, token] : [token, j];
        ctx.beginPath();
        ctx.moveTo(leftEdge + 4, rowY(from));
        ctx.lineTo(rightEdge - 4, rowY(to));
        ctx.stroke();
      }
    }
    ctx.globalAlpha = 1;
  }

  function drawLabels(ctx) {
    setFont(ctx, fontSize, theme.monoFamily);
    ctx.textBaseline = "middle";
    const step = thinStep(lineHeight, fontSize + 1);
    const text = (list, i) => `${i} ${truncateLabel(list[i], Math.max(1, 17 - String(i).length))}`;
    for (const i of labelIndices(0, count, step)) {
      if (i < counts.from) {
        ctx.fillStyle = selected.has(i) ? theme.accent : theme.foreground;
        ctx.textAlign = "right";
        ctx.fillText(text(tokens, i), leftEdge - 4, rowY(i));
      }
      if (i < counts.to) {
        ctx.fillStyle = selected.has(i) && !cross ? theme.accent : theme.foreground;
        ctx.textAlign = "left";
        ctx.fillText(text(keyTokens, i), rightEdge + 4, rowY(i));
      }
    }
  }

  function drawBase() {
    const ctx = stack.baseCtx;
    stack.clear(ctx);
    drawLegend(ctx);
    if (current) {
      const { token, direction } = current;
      ctx.fillStyle = withAlpha(theme.accent, 0.18);
      const x = direction === "to" ? rightEdge : 0;
      ctx.fillRect(x, rowY(token) - lineHeight / 2, leftEdge, lineHeight);
    }
    drawLines(ctx);
    drawLabels(ctx);
    drawOverlay();
  }

  function drawOverlay() {
    const ctx = stack.overlayCtx;
    stack.clear(ctx);
    const mark = (i, side) => {
      if (i == null || i < 0 || i >= counts[side]) return;
      ctx.strokeStyle = theme.highlight;
      ctx.lineWidth = 2;
      const x = side === "to" ? rightEdge : 0;
      ctx.strokeRect(x + 1, rowY(i) - lineHeight / 2 + 1, leftEdge - 2, lineHeight - 2);
    };
    if (pointer) {
      mark(pointer.token, pointer.side);
    } else if (hoveredToken != null) {
      mark(hoveredToken, "from");
      if (!cross) mark(hoveredToken, "to"); // a hovered token is a query: a target token, left only
    }
  }

  function hitAt(point) {
    const side = point.x < width / 2 ? "from" : "to";
    const token = rowAt(point.y, top, lineHeight, counts[side]);
    return token == null ? null : { token, side };
  }

  listeners.on(stack.base, "pointermove", (event) => {
    const point = localPoint(event, stack.base);
    const hit = hitAt(point);
    if (hit) {
      const role = hit.side === "from" ? (cross ? "target" : "query") : (cross ? "source" : "key");
      const list = hit.side === "from" ? tokens : keyTokens;
      tooltip.show(`${role} ${hit.token}: ${visibleText(list[hit.token])}`, point.x, point.y);
    } else {
      tooltip.hide();
    }
    if (hit?.token === pointer?.token && hit?.side === pointer?.side) return;
    pointer = hit;
    drawOverlay();
    callbacks.hover?.(hit ? hit.token : null, hit ? hit.side : null);
  });
  listeners.on(stack.base, "pointerleave", () => {
    tooltip.hide();
    if (!pointer) return;
    pointer = null;
    drawOverlay();
    callbacks.hover?.(null, null);
  });
  listeners.on(stack.base, "click", (event) => {
    const hit = hitAt(localPoint(event, stack.base));
    if (hit) callbacks.click?.(hit.token, hit.side);
  });

  function update(next) {
    current = next && next.weights && next.token != null ? next : null;
    drawBase();
  }

  update(data);

  return viewHandle(stack, listeners, theme, {
    update,
    setHovered(token) { hoveredToken = token; drawOverlay(); },
    setSelected(list) { selected = new Set(list ?? []); drawBase(); },
  });
}
