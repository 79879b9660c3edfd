// Information-flow routes into one token (attnwidget.flow_routes), drawn layer by layer.
//
// data: routesData (traits.js): {nodes: {kind, layer, token, row}, edges: {source, target, importance,
//   attention, residual, head, layer, kind}, nodeKinds, edgeKinds, target, threshold, numLayers,
//   numTokens, usesResidual, maxImportance}
// options: {theme, tokens, width, height}
// callbacks: {hover(token|null), target(token), edge(index)}: a click on a token label makes it the
//   target; a click on an attention edge selects its layer and head (the kernel looks the edge up).
//
// Layout (routeslayout.js): rows bottom-up (the residual stream entering each block, after its attention,
// and the output), columns = tokens at a fixed width in a scroll container; the row labels' gutter and
// the canvases stay in place (sticky) while the columns scroll, and only the visible columns are drawn.
// Token labels are buttons along the bottom (textContent; the arrow keys move between them, Enter
// makes one the target). Edge width and opacity follow importance; attention edges take their head's
// colour. Hovering an edge shows its kind, layer, head and importance and highlights it; from the
// keyboard, the drawing takes focus and the arrows step through the edges (most important first),
// Enter selects an attention edge's layer and head.

import { headColor, withAlpha } from "../colors.js";
import { focusable } from "../keyboard.js";
import { truncateLabel, visibleText } from "../layout.js";
import {
  describeEdge, edgeCurve, edgeStroke, hitEdge, nodePositions, routesLayout, rowLabels, scrollFor, scrollToShow,
  visibleTokens,
} from "../routeslayout.js";
import { createListeners, createTooltip, element, localPoint, resample, setFont, sizeCanvas } from "./canvas.js";

const HEADER = 40; // px: the caption and the legend above the drawing
const RADIUS = 4.5;

export function mountRoutes(parent, data, options, callbacks = {}) {
  const { theme } = options;
  const tokens = options.tokens ?? [];
  const width = options.width ?? 560;
  const height = options.height ?? 420;
  const listeners = createListeners();
  const box = element("div", "attnwidget-view attnwidget-routes", {
    position: "relative", width: `${width}px`, height: `${height}px`, flex: "none", display: "flex",
    flexDirection: "column", font: `12px ${theme.fontFamily}`, color: theme.foreground,
  });
  box.dataset.view = "routes";
  const caption = element("div", "attnwidget-routes-caption", {
    height: "18px", lineHeight: "18px", whiteSpace: "nowrap", overflow: "hidden", textOverflow: "ellipsis",
    color: theme.foreground,
  });
  const legend = element("div", "attnwidget-routes-legend", {
    minHeight: `${HEADER - 20}px`, display: "flex", flexWrap: "wrap", columnGap: "10px", rowGap: "2px",
    alignItems: "center", color: theme.muted, font: `11px ${theme.fontFamily}`, whiteSpace: "nowrap",
  });
  const scroller = element("div", "attnwidget-routes-scroll", { overflow: "auto", flex: "1 1 auto", position: "relative" });
  const content = element("div", "attnwidget-routes-content", { position: "relative" });
  const stage = element("div", "attnwidget-routes-stage", { position: "sticky", left: "0" });
  const base = element("canvas", "attnwidget-routes-base", { position: "absolute", left: "0", top: "0" });
  const overlay = element("canvas", "attnwidget-routes-overlay", { position: "absolute", left: "0", top: "0", pointerEvents: "none" });
  const labels = element("div", "attnwidget-routes-labels", { position: "absolute", left: "0" });
  // The gutter under the drawing stays put too, over the token labels scrolled under it.
  const corner = element("div", "attnwidget-routes-corner", { position: "sticky", left: "0", zIndex: "1",
    background: theme.background, color: theme.muted, font: `10px ${theme.fontFamily}`, textAlign: "right",
    boxSizing: "border-box", paddingRight: "6px", paddingTop: "4px" });
  corner.textContent = "token";
  labels.setAttribute("role", "group");
  labels.setAttribute("aria-label", "tokens: activate one to trace the routes into it");
  stage.append(base, overlay);
  content.append(stage, corner, labels);
  scroller.append(content);
  box.append(caption, legend, scroller);
  parent.append(box);
  const tooltip = createTooltip(box, theme);
  base.setAttribute("aria-label", "Information-flow routes: rows are the residual stream entering each layer and "
    + "after its attention, columns the tokens; hover an edge for its layer and head, click an attention edge "
    + "to select them.");
  focusable(listeners, base, { color: () => theme.accent, label: `${base.getAttribute("aria-label")} Arrow keys `
    + "step through the edges, most important first; Enter selects an attention edge's layer and head." });

  let current = null;
  let layout = null;
  let points = null;
  let ctx = null;
  let overlayCtx = null;
  let viewWidth = width;
  let hoveredToken = null;
  let hoverEdge = -1;
  let hoverNode = -1;
  let selected = new Set();
  const buttons = new Map(); // token -> its label button (the visible columns' only)

  const scrollLeft = () => scroller.scrollLeft;
  const nodeKind = (i) => current.nodeKinds[current.nodes.kind[i]] ?? "res";
  const edgeKind = (e) => current.edgeKinds[current.edges.kind[e]] ?? "attention";
  const edgeColor = (e) => {
    const kind = edgeKind(e);
    if (kind === "residual") return theme.border; // the stream itself: quieter than what attention moves
    if (kind === "ffn") return theme.highlight;
    return headColor(current.edges.head[e]) ?? theme.accent;
  };
  const edgeInfo = (e) => ({ kind: edgeKind(e), layer: current.edges.layer[e], head: current.edges.head[e],
    importance: current.edges.importance[e], attention: current.edges.attention?.[e] ?? null,
    residual: current.edges.residual?.[e] ?? null });

  function legendEntry(text, color, shape) {
    const entry = element("span", null, { display: "inline-flex", alignItems: "center", gap: "4px" });
    const swatch = element("span", null, shape === "line"
      ? { width: "14px", height: "3px", background: color }
      : { width: "9px", height: "9px", borderRadius: shape === "dot" ? "50%" : "1px", background: color });
    const label = element("span");
    label.textContent = text;
    entry.append(swatch, label);
    return entry;
  }

  function drawLegend() {
    legend.replaceChildren();
    if (!current) return;
    const heading = (text) => {
      const span = element("span", null, { fontWeight: "bold" });
      span.textContent = text;
      return span;
    };
    legend.append(heading("edges"), legendEntry("attention (colour: head)", headColor(0), "line"));
    if (current.usesResidual) {
      legend.append(legendEntry("residual", theme.border, "line"), legendEntry("ffn", theme.highlight, "line"),
        heading("nodes"), legendEntry("res (layer input)", theme.accent, "dot"),
        legendEntry("mid (after attention)", theme.foreground, "dot"), legendEntry("ffn", theme.highlight, "square"));
    }
    legend.append(legendEntry("width: importance", theme.muted, "line"));
  }

  function drawCaption() {
    if (!current) {
      caption.textContent = "no routes yet";
      return;
    }
    const t = current.target;
    const what = `routes into token ${t} ${JSON.stringify(visibleText(tokens[t] ?? ""))}`;
    const extra = current.usesResidual ? "" : " · values only (capture with residual=True for residual and FFN nodes)";
    caption.textContent = `${what} · threshold ${current.threshold} · ${current.nodes.kind.length} nodes, `
      + `${current.edges.source.length} edges${extra}`;
  }

  /** Token labels for the visible columns (buttons kept while they stay visible, so focus survives a scroll). */
  function placeLabels() {
    if (!current) {
      for (const button of buttons.values()) button.remove();
      buttons.clear();
      return;
    }
    const { first, last } = visibleTokens(scrollLeft(), viewWidth, layout, tokens.length || current.numTokens);
    const lo = Math.max(0, first - 2);
    const hi = last + 2;
    for (const [token, button] of buttons) {
      if ((token < lo || token > hi) && document.activeElement !== button) { button.remove(); buttons.delete(token); }
    }
    for (let token = lo; token <= hi && token < (tokens.length || current.numTokens); token++) {
      let button = buttons.get(token);
      if (!button) {
        button = labelButton(token);
        buttons.set(token, button);
        labels.append(button);
      }
      const target = token === current.target;
      Object.assign(button.style, { color: target || selected.has(token) ? theme.accent : theme.foreground,
        fontWeight: target ? "bold" : "normal" });
      button.setAttribute("aria-pressed", String(target));
    }
  }

  function labelButton(token) {
    const button = element("button", "attnwidget-routes-token", {
      position: "absolute", left: `${layout.x(token) - layout.column / 2}px`, top: "2px", width: `${layout.column}px`,
      height: `${layout.labels - 4}px`, padding: "0 2px", border: "none", background: "transparent", cursor: "pointer",
      display: "flex", flexDirection: "column", alignItems: "center", justifyContent: "flex-start",
      font: `11px ${theme.monoFamily}`, color: theme.foreground, overflow: "hidden",
    });
    button.type = "button";
    button.dataset.token = String(token);
    const index = element("span", null, { font: `10px ${theme.fontFamily}`, color: "inherit", opacity: "0.9" });
    index.textContent = String(token);
    const text = element("span", "attnwidget-routes-token-text", { whiteSpace: "pre", maxWidth: "100%", overflow: "hidden",
      textOverflow: "ellipsis" });
    text.textContent = truncateLabel(tokens[token] ?? "", 7);
    button.append(index, text);
    button.title = `token ${token}: ${visibleText(tokens[token] ?? "")}`;
    button.setAttribute("aria-label", `token ${token} ${visibleText(tokens[token] ?? "")}: trace the routes into it`);
    listeners.on(button, "click", () => callbacks.target?.(token));
    listeners.on(button, "keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1, Home: -Infinity, End: Infinity }[event.key];
      if (step == null) return;
      event.preventDefault();
      const count = tokens.length || current?.numTokens || 0;
      const next = Math.max(0, Math.min(count - 1, Number.isFinite(step) ? token + step : step < 0 ? 0 : count - 1));
      scroller.scrollLeft = scrollToShow(layout.x(next), layout.x(next), scrollLeft(), viewWidth, layout);
      placeLabels();
      draw();
      buttons.get(next)?.focus();
    });
    return button;
  }

  function visibleEdge(e) {
    const s = current.edges.source[e];
    const t = current.edges.target[e];
    const lo = Math.min(points[2 * s], points[2 * t]);
    const hi = Math.max(points[2 * s], points[2 * t]);
    return hi >= scrollLeft() + layout.gutter - 8 && lo <= scrollLeft() + viewWidth + 8;
  }

  function strokeEdge(c, e, color, extra = 0, alphaOverride = null) {
    const s = current.edges.source[e];
    const t = current.edges.target[e];
    const curve = edgeCurve(points[2 * s], points[2 * s + 1], points[2 * t], points[2 * t + 1]);
    const { width: w, alpha } = edgeStroke(current.edges.importance[e], current.maxImportance);
    c.strokeStyle = withAlpha(color, alphaOverride ?? alpha);
    c.lineWidth = w + extra;
    c.beginPath();
    c.moveTo(curve[0], curve[1]);
    c.bezierCurveTo(curve[2], curve[3], curve[4], curve[5], curve[6], curve[7]);
    c.stroke();
  }

  function drawNode(c, i, ring = false) {
    const x = points[2 * i];
    const y = points[2 * i + 1];
    const kind = nodeKind(i);
    c.fillStyle = kind === "res" ? theme.accent : kind === "ffn" ? theme.highlight : theme.foreground;
    c.strokeStyle = theme.background;
    c.lineWidth = 1.5;
    c.beginPath();
    if (kind === "ffn") c.rect(x - RADIUS + 1, y - RADIUS + 1, 2 * RADIUS - 2, 2 * RADIUS - 2);
    else c.arc(x, y, RADIUS, 0, 2 * Math.PI);
    c.fill();
    c.stroke();
    if (ring) {
      c.strokeStyle = theme.foreground;
      c.lineWidth = 2;
      c.beginPath();
      c.arc(x, y, RADIUS + 3, 0, 2 * Math.PI);
      c.stroke();
    }
  }

  function draw() {
    if (!ctx) return;
    ctx.clearRect(0, 0, width, layout?.plotHeight ?? 0);
    if (current) {
      ctx.save();
      ctx.translate(-scrollLeft(), 0);
      ctx.strokeStyle = withAlpha(theme.border, 0.5);
      ctx.lineWidth = 1;
      for (const { row } of rowLabels(current.numLayers, current.usesResidual)) {
        const y = Math.round(layout.y(row)) + 0.5;
        ctx.beginPath();
        ctx.moveTo(layout.gutter, y);
        ctx.lineTo(layout.width, y);
        ctx.stroke();
      }
      for (let e = 0; e < current.edges.source.length; e++) if (visibleEdge(e)) strokeEdge(ctx, e, edgeColor(e));
      const target = current.nodes.kind.findIndex((_, i) => nodeKind(i) === "res"
        && current.nodes.row[i] === 2 * current.numLayers && current.nodes.token[i] === current.target);
      for (let i = 0; i < current.nodes.kind.length; i++) drawNode(ctx, i, i === target);
      ctx.restore();
    }
    // The gutter stays put: the row labels on the theme's background, over the columns scrolled under it.
    ctx.fillStyle = theme.background;
    ctx.fillRect(0, 0, layout?.gutter ?? 0, layout?.plotHeight ?? 0);
    if (current) {
      setFont(ctx, 10, theme.fontFamily);
      ctx.fillStyle = theme.muted;
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      for (const { row, text } of rowLabels(current.numLayers, current.usesResidual)) {
        ctx.fillText(text, layout.gutter - 6, layout.y(row));
      }
    }
    drawOverlay();
    publish();
  }

  function drawOverlay() {
    if (!overlayCtx) return;
    overlayCtx.clearRect(0, 0, width, layout?.plotHeight ?? 0);
    if (!current) return;
    overlayCtx.save();
    overlayCtx.beginPath();
    overlayCtx.rect(layout.gutter, 0, viewWidth - layout.gutter, layout.plotHeight);
    overlayCtx.clip();
    overlayCtx.translate(-scrollLeft(), 0);
    const token = hoverNode >= 0 ? current.nodes.token[hoverNode] : hoveredToken;
    if (token != null) {
      overlayCtx.fillStyle = withAlpha(theme.highlight, 0.12);
      overlayCtx.fillRect(layout.x(token) - layout.column / 2, 0, layout.column, layout.plotHeight);
    }
    if (hoverEdge >= 0) {
      strokeEdge(overlayCtx, hoverEdge, theme.foreground, 3, 0.9);
      strokeEdge(overlayCtx, hoverEdge, edgeColor(hoverEdge), 0, 1);
      drawNode(overlayCtx, current.edges.source[hoverEdge]);
      drawNode(overlayCtx, current.edges.target[hoverEdge]);
    }
    if (hoverNode >= 0) drawNode(overlayCtx, hoverNode, true);
    overlayCtx.restore();
  }

  function publish() {
    box.dataset.geometry = JSON.stringify(current ? {
      gutter: layout.gutter, pad: layout.pad, column: layout.column, row: layout.row, top: layout.top,
      plotHeight: layout.plotHeight, width: layout.width, viewWidth, scrollLeft: scrollLeft(), slots: layout.slots,
      nodes: current.nodes.kind.length, edges: current.edges.source.length, target: current.target,
      points: points.length <= 4000 ? Array.from(points) : null,
    } : { nodes: 0, edges: 0 });
    box.dataset.hoveredEdge = String(hoverEdge);
  }

  function nodeAt(x, y) {
    let best = -1;
    let bestDistance = RADIUS + 3;
    for (let i = 0; i < current.nodes.kind.length; i++) {
      const d = Math.hypot(points[2 * i] - x, points[2 * i + 1] - y);
      if (d < bestDistance) { best = i; bestDistance = d; }
    }
    return best;
  }

  listeners.on(base, "pointermove", (event) => {
    if (!current) return;
    const point = localPoint(event, base);
    if (point.x < layout.gutter) { leave(); return; }
    const x = point.x + scrollLeft();
    const node = nodeAt(x, point.y);
    const edge = node >= 0 ? -1 : hitEdge(points, current.edges, x, point.y, { only: visibleEdge });
    const boxPoint = localPoint(event, box);
    if (node >= 0) {
      const t = current.nodes.token[node];
      tooltip.show(`token ${t}: ${visibleText(tokens[t] ?? "")}\n${nodeKind(node)}, layer ${current.nodes.layer[node]}`,
        boxPoint.x, boxPoint.y);
    } else if (edge >= 0) {
      const s = current.nodes.token[current.edges.source[edge]];
      const t = current.nodes.token[current.edges.target[edge]];
      const click = edgeKind(edge).includes("attention") ? "\nclick: select this layer and head" : "";
      tooltip.show(`${describeEdge(edgeInfo(edge))}\ntoken ${s} → token ${t}${click}`, boxPoint.x, boxPoint.y);
    } else {
      tooltip.hide();
    }
    setHover(edge, node);
  });

  function setHover(edge, node) {
    if (edge === hoverEdge && node === hoverNode) return;
    const previousToken = hoverNode >= 0 ? current.nodes.token[hoverNode] : null;
    hoverEdge = edge;
    hoverNode = node;
    base.style.cursor = edge >= 0 && edgeKind(edge).includes("attention") ? "pointer" : "default";
    drawOverlay();
    publish();
    const token = node >= 0 ? current.nodes.token[node] : null;
    if (token !== previousToken) callbacks.hover?.(token);
  }

  /** The edges from the keyboard: most important first (routes_data lists them by importance, rising). */
  listeners.on(base, "keydown", (event) => {
    if (!current || !current.edges.source.length) return;
    const count = current.edges.source.length;
    const rank = hoverEdge >= 0 ? count - 1 - hoverEdge : -1;
    const moves = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1, Home: -rank, End: count - 1 - rank };
    if (event.key === "Enter" || event.key === " ") {
      if (hoverEdge >= 0 && edgeKind(hoverEdge).includes("attention")) callbacks.edge?.(hoverEdge);
      event.preventDefault();
      return;
    }
    if (event.key === "Escape") { leave(); return; }
    if (!(event.key in moves)) return;
    event.preventDefault();
    const edge = count - 1 - Math.max(0, Math.min(count - 1, rank < 0 ? 0 : rank + moves[event.key]));
    const s = current.edges.source[edge];
    const t = current.edges.target[edge];
    scroller.scrollLeft = scrollToShow(points[2 * s], points[2 * t], scrollLeft(), viewWidth, layout);
    placeLabels();
    draw();
    setHover(edge, -1);
    const canvasBox = base.getBoundingClientRect();
    const boxRect = box.getBoundingClientRect();
    const x = (points[2 * s] + points[2 * t]) / 2 - scrollLeft() + canvasBox.left - boxRect.left;
    const y = (points[2 * s + 1] + points[2 * t + 1]) / 2 + canvasBox.top - boxRect.top;
    tooltip.show(`${describeEdge(edgeInfo(edge))}\ntoken ${current.nodes.token[s]} → token ${current.nodes.token[t]}`, x, y);
  });

  function leave() {
    tooltip.hide();
    if (hoverEdge < 0 && hoverNode < 0) return;
    const hadNode = hoverNode >= 0;
    hoverEdge = -1;
    hoverNode = -1;
    drawOverlay();
    publish();
    if (hadNode) callbacks.hover?.(null);
  }
  listeners.on(base, "pointerleave", leave);
  listeners.on(base, "click", () => {
    if (current && hoverEdge >= 0 && edgeKind(hoverEdge).includes("attention")) callbacks.edge?.(hoverEdge);
  });
  let frame = 0;
  listeners.on(scroller, "scroll", () => {
    tooltip.hide();
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(() => { placeLabels(); draw(); });
  });

  function update(next) {
    const sameShape = current && next && current.numLayers === next.numLayers && current.usesResidual === next.usesResidual;
    const previousTarget = current?.target;
    current = next && next.nodes ? next : null;
    hoverEdge = -1;
    hoverNode = -1;
    if (current) {
      layout = routesLayout({ numLayers: current.numLayers, numTokens: tokens.length || current.numTokens,
        usesResidual: current.usesResidual }, { fitHeight: height - HEADER - 16 });
      points = nodePositions(current.nodes, current.nodeKinds, layout);
      content.style.width = `${Math.max(layout.width, width)}px`;
      content.style.height = `${layout.height}px`;
      stage.style.width = `${width}px`;
      stage.style.height = `${layout.plotHeight}px`;
      Object.assign(labels.style, { top: `${layout.plotHeight}px`, width: `${layout.width}px`, height: `${layout.labels}px` });
      Object.assign(corner.style, { width: `${layout.gutter}px`, height: `${layout.labels}px` });
      viewWidth = scroller.clientWidth || width;
      ctx = sizeCanvas(base, width, layout.plotHeight);
      overlayCtx = sizeCanvas(overlay, width, layout.plotHeight);
      for (const button of buttons.values()) button.remove();
      buttons.clear();
      if (!sameShape || previousTarget !== current.target) scroller.scrollLeft = scrollFor(current.target, viewWidth, layout);
    } else {
      layout = null;
      ctx = sizeCanvas(base, 1, 1);
      overlayCtx = sizeCanvas(overlay, 1, 1);
    }
    drawCaption();
    drawLegend();
    placeLabels();
    draw();
    if (!current) publish();
  }

  update(data);
  // Attached later than mounted (the view box may be detached): measure the scroller once laid out.
  const settle = requestAnimationFrame(() => {
    if (!current) return;
    const measured = scroller.clientWidth;
    if (measured && measured !== viewWidth) {
      viewWidth = measured;
      scroller.scrollLeft = scrollFor(current.target, viewWidth, layout);
      placeLabels();
      draw();
    }
  });

  return {
    canvas: base,
    box,
    update,
    setHovered(token) { hoveredToken = token; drawOverlay(); },
    setSelected(list) { selected = new Set(list ?? []); placeLabels(); },
    /** The drawing as it shows (rows, edges, nodes; not the token buttons) at `scale` px per CSS px. */
    toFigure(scale = 2) {
      return resample(this.toCanvas(), Math.round(width * scale), Math.round((layout?.plotHeight ?? 1) * scale));
    },
    /** The drawing as it shows (rows, edges, nodes; not the token buttons) on the theme's background. */
    toCanvas() {
      const out = document.createElement("canvas");
      out.width = base.width;
      out.height = base.height;
      const c = out.getContext("2d");
      c.fillStyle = theme.background;
      c.fillRect(0, 0, out.width, out.height);
      c.drawImage(base, 0, 0);
      return out;
    },
    destroy() {
      cancelAnimationFrame(frame);
      cancelAnimationFrame(settle);
      listeners.removeAll();
      box.remove();
    },
  };
}
