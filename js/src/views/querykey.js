// The query-key view: one score of one head taken apart, dimension by dimension.
//
// data: queryKeyData (traits.js): {q, k, products: Float32Array [d], dot, scaling, bias, softcap, score,
//   masked, weight, layer, head, keyHead, query, key, queryToken, keyToken, cross, note}
// options: {theme, tokens, keyTokens?, cross?, width, height}
// callbacks: {cell(query, key)}: the arrow keys move the cell (up/down: query, left/right: key).
//
// Three aligned bar rows over one dimension axis: q (the query vector, after rotary), k (the key vector)
// on one shared value scale, and q x k (their products, on their own scale; positive bars push the
// score up). Each row has a zero line and value ticks; the caption reads "q·k = sum x scaling = score
// -> weight". Hovering a dimension shows its three values.

import { withAlpha } from "../colors.js";
import { focusable } from "../keyboard.js";
import { truncateLabel, visibleText } from "../layout.js";
import { createListeners, createStack, createTooltip, localPoint, setFont, viewHandle } from "./canvas.js";

const LEFT = 78; // row names and value ticks
const RIGHT = 12;
const HEAD = 62; // title, note, caption
const BOTTOM = 34; // dimension ticks and axis title
const GAP = 14;

/** A number for the caption: 4 significant digits, "-0" as "0". */
export function formatScore(value) {
  if (!Number.isFinite(value)) return String(value);
  const text = Number(value.toPrecision(4)).toString();
  return text === "-0" ? "0" : text;
}

/** The caption: "q·k = 0.1271 × scaling 0.25 = score 0.03178 → weight 0.2542" (+ bias, soft-cap, mask). */
export function queryKeyCaption(d) {
  let text = `q·k = ${formatScore(d.dot)} × scaling ${formatScore(d.scaling)}`;
  if (d.bias) text += ` + bias ${formatScore(d.bias)}`;
  if (d.softcap != null) text += `, soft-capped at ${formatScore(d.softcap)}`;
  text += ` = score ${formatScore(d.score)} → weight ${formatScore(d.weight)}`;
  return d.masked ? `${text} (masked: the key is hidden from the query)` : text;
}

/** Largest |value| of arrays (at least a tiny positive number, so a zero vector still has a scale). */
function extent(...arrays) {
  let max = 0;
  for (const array of arrays) for (const v of array) if (Math.abs(v) > max) max = Math.abs(v);
  return max > 0 ? max : 1e-6;
}

/** Tick step for `count` dimensions in `width` px: 1, 2, 4, 8, ... so labels stay >= 28 px apart. */
export function dimensionStep(count, width) {
  let step = 1;
  while (step < count && (width / count) * step < 28) step *= 2;
  return step;
}

export function mountQueryKey(parent, data, options, callbacks = {}) {
  const { theme } = options;
  const tokens = options.tokens ?? [];
  const keyTokens = options.keyTokens ?? tokens;
  const [rowName, colName] = options.cross ? ["target", "source"] : ["query", "key"];
  const width = Math.max(320, options.width ?? 560);
  const height = Math.max(300, Math.min(options.height ?? 420, 560));
  const listeners = createListeners();
  const stack = createStack(parent, { name: "query-key", width, height });
  const tooltip = createTooltip(stack.box, theme);
  const plot = { left: LEFT, width: width - LEFT - RIGHT, top: HEAD, height: height - HEAD - BOTTOM };
  const rowHeight = (plot.height - 2 * GAP) / 3;
  const rows = [0, 1, 2].map((i) => ({ top: plot.top + i * (rowHeight + GAP), height: rowHeight }));
  let current = null;
  let hoverDim = null;
  focusable(listeners, stack.base, { color: () => theme.accent, role: "img", label: `Query-key view: the ${rowName} `
    + `and ${colName} vectors of one head and their products by dimension. Arrow keys move the cell: up and down `
    + `the ${rowName} token, left and right the ${colName} token.` });

  const barX = (i) => plot.left + (i / current.size) * plot.width;

  function drawRow(ctx, row, values, scale, name, colorOf) {
    const zero = row.top + row.height / 2;
    const half = row.height / 2 - 2;
    const w = plot.width / current.size;
    const inset = w > 3 ? 0.5 : 0;
    for (let i = 0; i < values.length; i++) {
      const h = (values[i] / scale) * half;
      ctx.fillStyle = colorOf(values[i]);
      ctx.fillRect(barX(i) + inset, h >= 0 ? zero - h : zero, Math.max(0.5, w - 2 * inset), Math.abs(h));
    }
    ctx.strokeStyle = theme.foreground;
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(plot.left, Math.round(zero) + 0.5);
    ctx.lineTo(plot.left + plot.width, Math.round(zero) + 0.5);
    ctx.stroke();
    ctx.strokeStyle = withAlpha(theme.border, 0.8);
    ctx.strokeRect(plot.left - 0.5, row.top - 0.5, plot.width + 1, row.height + 1);
    setFont(ctx, 10, theme.fontFamily);
    ctx.fillStyle = theme.muted;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const [y, v] of [[row.top + 2, scale], [zero, 0], [row.top + row.height - 2, -scale]]) {
      ctx.fillText(formatScore(v), plot.left - 4, y);
    }
    setFont(ctx, 11, theme.fontFamily, "bold");
    ctx.fillStyle = theme.foreground;
    ctx.textAlign = "left";
    ctx.fillText(name, 16, zero);
  }

  function drawBase() {
    const ctx = stack.baseCtx;
    stack.clear(ctx);
    if (!current) {
      setFont(ctx, 12, theme.fontFamily);
      ctx.fillStyle = theme.muted;
      ctx.textAlign = "left";
      ctx.textBaseline = "top";
      ctx.fillText("no cell: click a heatmap cell, or set widget.query_key_cell = [query, key]", 4, 4);
      drawOverlay();
      return;
    }
    const d = current;
    const head = d.keyHead !== d.head ? `head ${d.head} (key head ${d.keyHead})` : `head ${d.head}`;
    const quoted = (text) => `"${truncateLabel(text, 14)}"`;
    const title = `layer ${d.layer}, ${head} · ${rowName} ${d.query} ${quoted(d.queryToken)} → `
      + `${colName} ${d.key} ${quoted(d.keyToken)}`;
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    setFont(ctx, 12, theme.fontFamily, "bold");
    ctx.fillStyle = theme.foreground;
    ctx.fillText(title, 4, 2);
    setFont(ctx, 11, theme.fontFamily);
    ctx.fillStyle = theme.muted;
    if (d.note) ctx.fillText(d.note, 4, 19);
    setFont(ctx, 12, theme.monoFamily);
    ctx.fillStyle = theme.foreground;
    ctx.fillText(caption, 4, 36);
    const shared = extent(d.q, d.k);
    drawRow(ctx, rows[0], d.q, shared, "q", () => withAlpha(theme.accent, 0.85));
    drawRow(ctx, rows[1], d.k, shared, "k", () => withAlpha(theme.highlight, 0.9));
    drawRow(ctx, rows[2], d.products, extent(d.products), "q × k",
      (v) => (v >= 0 ? theme.accent : theme.error));
    // The dimension axis and the value axis' title.
    setFont(ctx, 10, theme.fontFamily);
    ctx.fillStyle = theme.muted;
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const step = dimensionStep(d.size, plot.width);
    const bottom = plot.top + plot.height;
    for (let i = 0; i < d.size; i += step) ctx.fillText(String(i), barX(i + 0.5), bottom + 3);
    ctx.fillText(`dimension (0..${d.size - 1}; q·k is the sum of the q × k row)`, plot.left + plot.width / 2, bottom + 17);
    ctx.save();
    ctx.translate(4, plot.top + plot.height / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textBaseline = "top";
    ctx.fillText("value", 0, 0);
    ctx.restore();
    drawOverlay();
  }

  let caption = "";

  function drawOverlay() {
    const ctx = stack.overlayCtx;
    stack.clear(ctx);
    if (!current || hoverDim == null) return;
    ctx.fillStyle = withAlpha(theme.highlight, 0.2);
    ctx.fillRect(barX(hoverDim), plot.top, Math.max(2, plot.width / current.size), plot.height);
  }

  listeners.on(stack.base, "pointermove", (event) => {
    if (!current) return;
    const point = localPoint(event, stack.base);
    const i = Math.floor(((point.x - plot.left) / plot.width) * current.size);
    const inside = i >= 0 && i < current.size && point.y >= plot.top && point.y <= plot.top + plot.height;
    const next = inside ? i : null;
    if (next != null) {
      const f = (v) => formatScore(v);
      tooltip.show(`dimension ${i}\nq ${f(current.q[i])}   k ${f(current.k[i])}   q × k ${f(current.products[i])}`,
        point.x, point.y);
    } else {
      tooltip.hide();
    }
    if (next !== hoverDim) { hoverDim = next; drawOverlay(); }
  });
  listeners.on(stack.base, "pointerleave", () => { tooltip.hide(); hoverDim = null; drawOverlay(); });
  listeners.on(stack.base, "keydown", (event) => {
    if (!current) return;
    const move = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] }[event.key];
    if (!move) return;
    event.preventDefault();
    const query = Math.max(0, Math.min((tokens.length || 1) - 1, current.query + move[0]));
    const key = Math.max(0, Math.min((keyTokens.length || 1) - 1, current.key + move[1]));
    if (query !== current.query || key !== current.key) callbacks.cell?.(query, key);
  });

  function update(next) {
    current = next && next.q ? next : null;
    caption = current ? queryKeyCaption(current) : "";
    stack.box.dataset.caption = caption;
    stack.box.dataset.geometry = JSON.stringify(current ? { ...plot, rows, size: current.size, query: current.query,
      key: current.key, layer: current.layer, head: current.head, q: Array.from(current.q.slice(0, 256)) } : {});
    if (current) {
      stack.base.setAttribute("aria-description", `${rowName} ${current.query} ${visibleText(current.queryToken)}, `
        + `${colName} ${current.key} ${visibleText(current.keyToken)}: ${caption}`);
    }
    drawBase();
  }

  update(data);

  return viewHandle(stack, listeners, theme, {
    update,
    setHovered() {},
    setSelected() {},
  });
}
