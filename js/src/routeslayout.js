// The routes view's pure layout: a layered drawing (never a spring layout). Rows are the residual
// stream entering each block ("res", row 2l) and after its attention ("mid", row 2l + 1), bottom-up;
// columns are the tokens in order at a fixed width, so long inputs scroll sideways. FFN nodes are small
// markers right of their mid node. Edges are vertical-tangent cubic curves from the lower node to the
// upper one; hit tests sample them. Content x includes the row labels' gutter on the left (the view
// keeps the gutter in place while the columns scroll under it).

/** Sizes in CSS px: column width, row pitch, the layer labels' gutter, the token labels' band, margins. */
export const ROUTES_LAYOUT = { column: 56, row: 46, gutter: 64, labels: 40, top: 12, pad: 8, ffnShift: 0.3 };

/**
 * The slots rows take: with the residual stream every row 0..2L has one; without it (values only) the
 * graph has res nodes alone, on even rows, and slot = row / 2 (no empty mid rows).
 */
export function rowSlot(row, usesResidual) {
  return usesResidual ? row : Math.round(row / 2);
}

/**
 * The layered geometry: {slots, width (the scrolled content, gutter included), plotHeight, height,
 * x(token), y(row)}. `fitHeight`: the row pitch shrinks (down to `minRow`) so the rows fit it.
 */
export function routesLayout({ numLayers, numTokens, usesResidual }, options = {}) {
  const o = { minRow: 22, ...ROUTES_LAYOUT, ...options };
  const slots = usesResidual ? 2 * numLayers + 1 : numLayers + 1;
  if (o.fitHeight != null) {
    const fit = Math.floor((o.fitHeight - o.labels - o.top) / slots);
    o.row = Math.max(o.minRow, Math.min(o.row, fit));
  }
  const plotHeight = o.top + slots * o.row;
  const width = o.gutter + 2 * o.pad + Math.max(1, numTokens) * o.column;
  const x = (token) => o.gutter + o.pad + (token + 0.5) * o.column;
  const y = (row) => o.top + (slots - 1 - rowSlot(row, usesResidual) + 0.5) * o.row;
  return { ...o, slots, width, plotHeight, height: plotHeight + o.labels, x, y, usesResidual: !!usesResidual };
}

/** Node positions: Float32Array [2N] (x, y in content px); `kindNames[kind[i]] === "ffn"` shifts right. */
export function nodePositions(nodes, kindNames, layout) {
  const count = nodes.kind.length;
  const points = new Float32Array(2 * count);
  for (let i = 0; i < count; i++) {
    const ffn = kindNames[nodes.kind[i]] === "ffn";
    points[2 * i] = layout.x(nodes.token[i]) + (ffn ? layout.ffnShift * layout.column : 0);
    points[2 * i + 1] = layout.y(nodes.row[i]);
  }
  return points;
}

/** The row labels, bottom-up: "L0 res" (block 0's input), "L0 mid" (after its attention), ..., "output". */
export function rowLabels(numLayers, usesResidual) {
  const labels = [];
  for (let layer = 0; layer <= numLayers; layer++) {
    labels.push({ row: 2 * layer, text: layer === numLayers ? "output" : `L${layer} res` });
    if (usesResidual && layer < numLayers) labels.push({ row: 2 * layer + 1, text: `L${layer} mid` });
  }
  return labels;
}

/**
 * Tokens whose columns show right of the gutter in a `viewWidth` window scrolled by `scrollLeft`:
 * {first, last} (inclusive; last < first when there are none).
 */
export function visibleTokens(scrollLeft, viewWidth, layout, count) {
  if (!(count > 0)) return { first: 0, last: -1 };
  const first = Math.floor((scrollLeft - layout.pad) / layout.column);
  const last = Math.floor((scrollLeft + viewWidth - layout.gutter - layout.pad) / layout.column);
  return { first: Math.max(0, Math.min(count - 1, first)), last: Math.max(0, Math.min(count - 1, last)) };
}

/** The scroll offset that centres `token`'s column right of the gutter in a `viewWidth` window (clamped). */
export function scrollFor(token, viewWidth, layout) {
  const max = Math.max(0, layout.width - viewWidth);
  return Math.max(0, Math.min(max, Math.round(layout.x(token) - (layout.gutter + viewWidth) / 2)));
}

/**
 * The scroll offset that shows content x from `x0` to `x1` (a column's or an edge's span) right of the
 * gutter, moving as little as possible from `scrollLeft` (a column's width of margin on each side).
 */
export function scrollToShow(x0, x1, scrollLeft, viewWidth, layout) {
  const lo = Math.min(x0, x1) - layout.column / 2;
  const hi = Math.max(x0, x1) + layout.column / 2;
  let next = scrollLeft;
  if (hi > next + viewWidth) next = hi - viewWidth;
  if (lo < next + layout.gutter) next = lo - layout.gutter;
  const max = Math.max(0, layout.width - viewWidth);
  return Math.max(0, Math.min(max, Math.round(next)));
}

/** Control points of the edge from (x0, y0) to (x1, y1): a cubic with vertical tangents. */
export function edgeCurve(x0, y0, x1, y1) {
  const mid = (y0 + y1) / 2;
  return [x0, y0, x0, mid, x1, mid, x1, y1];
}

/** The point at t (0..1) of a cubic [x0, y0, c0x, c0y, c1x, c1y, x1, y1]. */
export function curvePoint(curve, t) {
  const u = 1 - t;
  const a = u * u * u;
  const b = 3 * u * u * t;
  const c = 3 * u * t * t;
  const d = t * t * t;
  return [a * curve[0] + b * curve[2] + c * curve[4] + d * curve[6], a * curve[1] + b * curve[3] + c * curve[5] + d * curve[7]];
}

/** Distance from (px, py) to the segment (ax, ay)-(bx, by). */
export function segmentDistance(px, py, ax, ay, bx, by) {
  const dx = bx - ax;
  const dy = by - ay;
  const length = dx * dx + dy * dy;
  const t = length > 0 ? Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / length)) : 0;
  return Math.hypot(px - (ax + t * dx), py - (ay + t * dy));
}

/**
 * The edge under (x, y) (content px): the nearest within `tolerance` px of its curve (sampled in
 * `steps` segments), the more important on a tie; -1 for none. `edges`: {source, target, importance};
 * `points`: nodePositions. `only(e)`: a filter (e.g. the edges in the visible columns).
 */
export function hitEdge(points, edges, x, y, { tolerance = 5, steps = 12, only = null } = {}) {
  let best = -1;
  let bestDistance = tolerance;
  for (let e = 0; e < edges.source.length; e++) {
    if (only && !only(e)) continue;
    const s = edges.source[e];
    const t = edges.target[e];
    const curve = edgeCurve(points[2 * s], points[2 * s + 1], points[2 * t], points[2 * t + 1]);
    if (x < Math.min(curve[0], curve[6]) - tolerance || x > Math.max(curve[0], curve[6]) + tolerance) continue;
    if (y < Math.min(curve[1], curve[7]) - tolerance || y > Math.max(curve[1], curve[7]) + tolerance) continue;
    let [ax, ay] = curvePoint(curve, 0);
    for (let k = 1; k <= steps; k++) {
      const [bx, by] = curvePoint(curve, k / steps);
      const d = segmentDistance(x, y, ax, ay, bx, by);
      if (d < bestDistance || (d === bestDistance && best >= 0 && edges.importance[e] > edges.importance[best])) {
        best = e;
        bestDistance = d;
      }
      ax = bx;
      ay = by;
    }
  }
  return best;
}

/** Line width and opacity of an edge of `importance` relative to the largest. */
export function edgeStroke(importance, maxImportance) {
  const t = maxImportance > 0 ? Math.max(0, Math.min(1, importance / maxImportance)) : 0;
  return { width: 0.75 + 4.25 * t, alpha: 0.25 + 0.7 * t };
}

/**
 * An edge in words for its tooltip: "attention: layer 3, head 5 (importance 0.31)", "residual: layer 3
 * (importance 0.52)", "ffn: layer 2 (importance 0.10)"; merged self edges name both terms.
 */
export function describeEdge({ kind, layer, head, importance, attention = null, residual = null }) {
  const where = head != null && head >= 0 && kind !== "residual" && kind !== "ffn" ? `layer ${layer}, head ${head}` : `layer ${layer}`;
  let text = `${kind}: ${where} (importance ${importance.toFixed(2)})`;
  if (kind === "attention+residual" && attention != null && residual != null) {
    text += `\nattention ${attention.toFixed(2)} + residual ${residual.toFixed(2)}`;
  }
  return text;
}
