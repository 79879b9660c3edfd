// Text view: the prompt in reading order, wrapped like a paragraph, each token on a background
// coloured by its value (attention, rollout or flow from the focus token), a colour bar on top and
// a minimap of the whole document on the right. Only the visible lines are drawn, so 8192 tokens
// stay fast; hover feedback goes to the overlay canvas without any new layout.
//
// data: {values: decoded float [n] | null, token: int (focus), source: "attention"|"rollout"|"flow", note}
// options: {theme, lut, tokens, keyTokens?, cross?, scale: "linear"|"log"|"no_sink", width, height}
//   Cross-attention (cross: true): the target tokens (tokens, the queries) come first, then a blank
//   line and the source tokens (keyTokens), coloured by the focused target token's row (values [keys]);
//   hovering or clicking a target token focuses or selects it, a source token only shows its weight.
// callbacks: {hover(token|null), click(token)} (token: a query index)

import { contrastRatio, parseColor, withAlpha } from "../colors.js";
import { visibleText } from "../layout.js";
import { scaleFor } from "../scale.js";
import {
  layoutTokens, minimapGrid, minimapScale, minimapScroll, scrollToLine, tokenAt, visibleLines, visibleTokens,
} from "../textlayout.js";
import { drawColorBar } from "./colorbar.js";
import {
  createListeners, createStack, createTooltip, element, localPoint, setFont, sizeCanvas, trackTokenPointer, viewHandle,
} from "./canvas.js";

const LEGEND = 48; // colour bar and caption above the text
const MINIMAP = 40; // minimap strip on the right
const MINIMAP_GAP = 6;
const PAD_X = 6; // text padding inside the viewport
const PAD_Y = 4;
const FONT_SIZE = 13;
const LINE_HEIGHT = 20;
const BOX_INSET = 1; // token background: the line minus 1 px above and below
const GAP = 1; // px between neighbouring tokens
const TEXT_PAD = 1; // px between a token's background edge and its text
const DARK_TEXT = "#000000";
const LIGHT_TEXT = "#ffffff";

/**
 * Per LUT entry: its CSS colour and the text colour that contrasts with it most, black or white (at
 * least 4.58:1 on any colour: WCAG AA).
 */
export function lutStyles(lut) {
  const fill = new Array(256);
  const text = new Array(256);
  for (let k = 0; k < 256; k++) {
    const rgb = [lut[4 * k], lut[4 * k + 1], lut[4 * k + 2]];
    fill[k] = `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`;
    text[k] = contrastRatio(rgb, [0, 0, 0]) >= contrastRatio(rgb, [255, 255, 255]) ? DARK_TEXT : LIGHT_TEXT;
  }
  return { fill, text };
}

/** Shorten `text` with an ellipsis until it fits `width` px in the context's font. */
function fitText(ctx, text, width) {
  if (ctx.measureText(text).width <= width) return text;
  let lo = 0;
  let hi = text.length;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (ctx.measureText(text.slice(0, mid) + "…").width <= width) lo = mid;
    else hi = mid - 1;
  }
  return text.slice(0, lo) + "…";
}

export function mountText(parent, data, options, callbacks = {}) {
  const { theme, lut } = options;
  const tokens = options.tokens ?? [];
  const cross = !!options.cross && Array.isArray(options.keyTokens);
  const keyTokens = cross ? options.keyTokens : tokens;
  // What is laid out: the tokens, or for cross-attention the targets then the sources (display index
  // keyOffset + j is source token j; below keyOffset, display index = target token index).
  const shown = cross ? [...tokens, ...keyTokens] : tokens;
  const keyOffset = cross ? tokens.length : 0;
  const width = options.width ?? 560;
  const height = options.height ?? 420;
  const textWidth = width - MINIMAP - MINIMAP_GAP;
  const viewHeight = height - LEGEND;
  const listeners = createListeners();
  const stack = createStack(parent, { name: "text", width, height });
  const tooltip = createTooltip(stack.box, theme);
  const styles = lutStyles(lut);

  // Scroll container over the text area: its spacer has the full text height; the canvases
  // underneath never move, and draw the lines the scroll offset makes visible.
  const scroller = element("div", "attnwidget-text-scroll", {
    position: "absolute", left: "0", top: `${LEGEND}px`, width: `${textWidth}px`, height: `${viewHeight}px`,
    overflowX: "hidden", overflowY: "auto", zIndex: "1", scrollbarWidth: "none",
  });
  const spacer = element("div", "attnwidget-text-spacer", { width: "1px" });
  scroller.append(spacer);
  // The scroller takes focus so the keyboard scrolls the text (the arrows, Page Up/Down).
  scroller.tabIndex = 0;
  scroller.setAttribute("role", "region");
  scroller.setAttribute("aria-label", "The prompt's text, each token on a background coloured by its value; "
    + "hover a token to focus it. The minimap on the right shows the whole document.");
  const minimap = element("canvas", "attnwidget-text-minimap", {
    position: "absolute", left: `${width - MINIMAP}px`, top: `${LEGEND}px`, cursor: "pointer",
  });
  stack.box.append(scroller, minimap);
  const minimapCtx = sizeCanvas(minimap, MINIMAP, viewHeight);
  minimap.setAttribute("role", "img");
  minimap.setAttribute("aria-label", "minimap of the whole text: click or drag to scroll there");

  // Measure every token once (widths cached per distinct text), then wrap.
  const measureCtx = stack.baseCtx;
  setFont(measureCtx, FONT_SIZE, theme.fontFamily);
  const widths = new Map();
  const measure = (text) => {
    let w = widths.get(text);
    if (w === undefined) {
      w = Math.ceil(measureCtx.measureText(text).width) + 2 * TEXT_PAD;
      widths.set(text, w);
    }
    return w;
  };
  const drawn = shown.map((t) => visibleText(t));
  const layout = layoutTokens(shown, measure, { width: textWidth - 2 * PAD_X, lineHeight: LINE_HEIGHT, gap: GAP,
    breakAfter: cross && tokens.length ? [tokens.length - 1] : [] });
  spacer.style.height = `${layout.height + 2 * PAD_Y}px`;
  const mini = minimapScale(layout.lines, viewHeight);
  const miniImage = document.createElement("canvas");
  miniImage.width = MINIMAP;
  miniImage.height = Math.max(1, Math.ceil(mini.height));

  let current = null; // {values, token, source, note}
  let scale = null;
  let indices = null; // LUT index per displayed token (-1: uncoloured), or null when nothing is
  let scaleKind = options.scale ?? "linear";
  let hoveredToken = null;
  let selected = new Set();
  let scrollTop = 0;
  let pendingScroll = 0;
  let visible = null; // {first, last} lines drawn

  /** [x, y, w, h] of token i's background in base-canvas CSS px at the current scroll offset. */
  const tokenRect = (i) => [PAD_X + layout.x[i], LEGEND + PAD_Y + layout.line[i] * LINE_HEIGHT - scrollTop + BOX_INSET,
    layout.widths[i], LINE_HEIGHT - 2 * BOX_INSET];
  const isVisible = (i) => visible && i >= 0 && i < layout.count &&
    layout.line[i] >= visible.first && layout.line[i] <= visible.last;
  const valueOf = (i) => (current?.values && i >= keyOffset && i - keyOffset < current.values.data.length
    ? current.values.data[i - keyOffset] : null);

  function recolor() {
    const values = current?.values?.data;
    scale = values ? scaleFor(scaleKind, values) : null;
    indices = values ? new Int16Array(layout.count).fill(cross ? -1 : 0) : null;
    if (!values) return;
    for (let j = 0; j < Math.min(layout.count - keyOffset, values.length); j++) {
      indices[keyOffset + j] = Math.round(scale.t(values[j]) * 255);
    }
  }

  function renderMinimapImage() {
    const rows = miniImage.height;
    let pooled = null;
    if (indices) {
      pooled = new Float32Array(layout.count);
      for (let i = 0; i < layout.count; i++) pooled[i] = Math.max(0, indices[i]) / 255;
    }
    const grid = minimapGrid(layout, pooled, { cols: MINIMAP, rows, rowHeight: mini.rowHeight, textWidth: textWidth - 2 * PAD_X });
    const image = new ImageData(MINIMAP, rows);
    const pixels = image.data;
    const border = parseColor(theme.border) ?? [189, 189, 189];
    for (let p = 0; p < grid.length; p++) {
      const v = grid[p];
      if (v < 0) continue; // no token: transparent
      const k = Math.round(v * 255);
      const o = 4 * p;
      // A token of weight 0 is grey, so the shape of the text shows on any theme.
      pixels[o] = k ? lut[4 * k] : border[0];
      pixels[o + 1] = k ? lut[4 * k + 1] : border[1];
      pixels[o + 2] = k ? lut[4 * k + 2] : border[2];
      pixels[o + 3] = k ? 255 : 150;
    }
    miniImage.getContext("2d").putImageData(image, 0, 0);
  }

  function drawMinimap() {
    const ctx = minimapCtx;
    ctx.clearRect(0, 0, MINIMAP, viewHeight);
    ctx.fillStyle = withAlpha(theme.border, 0.12);
    ctx.fillRect(0, 0, MINIMAP, viewHeight);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(miniImage, 0, 0, MINIMAP, miniImage.height);
    // The visible part: the viewport scaled like the lines, at least 4 px, inside the document.
    const scaleY = mini.rowHeight / LINE_HEIGHT;
    const h = Math.max(4, Math.min(viewHeight * scaleY, mini.height));
    const y = Math.max(0, Math.min((scrollTop - PAD_Y) * scaleY, viewHeight - h));
    ctx.fillStyle = withAlpha(theme.foreground, 0.08);
    ctx.fillRect(0, y, MINIMAP, h);
    ctx.strokeStyle = theme.foreground;
    ctx.lineWidth = 1;
    ctx.strokeRect(0.5, y + 0.5, MINIMAP - 1, h - 1);
    const focus = current?.token;
    if (focus != null && focus >= 0 && focus < layout.count) {
      const fy = Math.min(viewHeight - 2, (layout.line[focus] + 0.5) * mini.rowHeight);
      ctx.fillStyle = theme.foreground;
      ctx.beginPath(); // a small triangle pointing at the focus line
      ctx.moveTo(0, fy - 4);
      ctx.lineTo(6, fy);
      ctx.lineTo(0, fy + 4);
      ctx.closePath();
      ctx.fill();
      ctx.fillRect(6, fy - 0.5, MINIMAP - 6, 1);
    }
  }

  function drawLegend(ctx) {
    if (scale) {
      const bar = { x: PAD_X, y: 18, width: 170, height: 10 };
      drawColorBar(ctx, lut, scale, bar, theme, `${current.source} · ${scale.label}`);
    }
    const left = scale ? PAD_X + 170 + 16 : PAD_X;
    setFont(ctx, 11, theme.fontFamily);
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    ctx.fillStyle = scale ? theme.foreground : theme.muted;
    const note = current?.note || (current ? "" : "no values");
    ctx.fillText(fitText(ctx, note, width - left - PAD_X), left, 23);
  }

  function drawToken(ctx, i) {
    const [x, y, w, h] = tokenRect(i);
    const k = indices ? indices[i] : -1;
    if (k >= 0) {
      ctx.fillStyle = styles.fill[k];
      ctx.fillRect(x, y, w, h);
      ctx.fillStyle = styles.text[k];
    } else {
      ctx.fillStyle = withAlpha(theme.border, 0.18);
      ctx.fillRect(x, y, w, h);
      ctx.fillStyle = theme.foreground;
    }
    if (layout.clipped[i]) {
      ctx.save();
      ctx.beginPath();
      ctx.rect(x, y, w, h);
      ctx.clip();
      ctx.fillText(drawn[i], x + TEXT_PAD, y + h / 2);
      ctx.restore();
    } else {
      ctx.fillText(drawn[i], x + TEXT_PAD, y + h / 2);
    }
  }

  function outline(ctx, i, color, lineWidth) {
    const [x, y, w, h] = tokenRect(i);
    ctx.strokeStyle = color;
    ctx.lineWidth = lineWidth;
    ctx.strokeRect(x - lineWidth / 2, y - lineWidth / 2, w + lineWidth, h + lineWidth);
  }

  function drawBase() {
    const ctx = stack.baseCtx;
    stack.clear(ctx);
    drawLegend(ctx);
    visible = visibleLines(layout, scrollTop, viewHeight, { top: PAD_Y });
    const range = visibleTokens(layout, visible);
    const boxes = {};
    ctx.save();
    ctx.beginPath();
    ctx.rect(0, LEGEND, textWidth, viewHeight);
    ctx.clip();
    if (range) {
      setFont(ctx, FONT_SIZE, theme.fontFamily);
      ctx.textAlign = "left";
      ctx.textBaseline = "middle";
      for (let i = range.first; i <= range.last; i++) {
        drawToken(ctx, i);
        boxes[i] = tokenRect(i).map((v) => Math.round(v * 100) / 100);
      }
      for (const i of selected) {
        if (!isVisible(i)) continue;
        const [x, y, w, h] = tokenRect(i);
        outline(ctx, i, theme.accent, 1);
        ctx.fillStyle = theme.accent;
        ctx.fillRect(x, y + h - 2, w, 2); // underline
      }
      if (isVisible(current?.token)) outline(ctx, current.token, theme.foreground, 2);
    }
    ctx.restore();
    stack.box.dataset.geometry = JSON.stringify({
      scrollTop, lineHeight: LINE_HEIGHT, lines: layout.lines,
      first: range ? range.first : null, last: range ? range.last : null, boxes,
      text: { left: 0, top: LEGEND, width: textWidth, height: viewHeight },
      minimap: { left: width - MINIMAP, top: LEGEND, width: MINIMAP, height: viewHeight, rows: mini.height },
    });
    drawMinimap();
    drawOverlay();
  }

  function drawOverlay() {
    const ctx = stack.overlayCtx;
    stack.clear(ctx);
    const token = pointerToken() ?? hoveredToken;
    if (token == null || !isVisible(token)) return;
    ctx.save();
    ctx.beginPath();
    ctx.rect(0, LEGEND, textWidth, viewHeight);
    ctx.clip();
    const [x, y, w, h] = tokenRect(token);
    ctx.fillStyle = withAlpha(theme.highlight, 0.2);
    ctx.fillRect(x, y, w, h);
    outline(ctx, token, theme.highlight, 2);
    ctx.restore();
  }

  function describe(i) {
    const head = !cross ? `token ${i}: ${visibleText(tokens[i])}`
      : i < keyOffset ? `target ${i}: ${visibleText(tokens[i])}` : `source ${i - keyOffset}: ${visibleText(keyTokens[i - keyOffset])}`;
    const value = valueOf(i);
    return value == null ? head : `${head}\n${current.source} ${value.toFixed(4)}`;
  }

  // The scroller receives the pointer; points are shifted into base-canvas coordinates.
  const shiftedTooltip = {
    show: (text, x, y) => tooltip.show(text, x, y + LEGEND),
    hide: () => tooltip.hide(),
  };
  const pointerToken = trackTokenPointer(listeners, scroller, shiftedTooltip, {
    hitAt: (point) => tokenAt(layout, point.x, point.y, { left: PAD_X, top: PAD_Y - scrollTop }),
    describe,
    changed: (hit) => { drawOverlay(); callbacks.hover?.(hit != null && cross && hit >= keyOffset ? null : hit); },
    click: (hit) => { if (!(cross && hit >= keyOffset)) callbacks.click?.(hit); },
  });

  function onScroll() {
    if (scroller.scrollTop === scrollTop) return;
    scrollTop = scroller.scrollTop;
    drawBase();
  }
  listeners.on(scroller, "scroll", onScroll, { passive: true });

  /** Scroll to `target` px; retried on the next frame when the box was not laid out yet. */
  function scrollTo(target) {
    scroller.scrollTop = target;
    if (scroller.scrollTop !== target && scroller.clientHeight === 0) {
      cancelAnimationFrame(pendingScroll);
      pendingScroll = requestAnimationFrame(() => { scroller.scrollTop = target; onScroll(); });
    }
    onScroll();
  }

  // Minimap: click or drag scrolls the text there.
  let dragging = false;
  const scrollFromMinimap = (event) => {
    const { y } = localPoint(event, minimap);
    scrollTo(minimapScroll(layout, Math.min(y, mini.height), mini.rowHeight, viewHeight, { top: PAD_Y, bottom: PAD_Y }));
  };
  listeners.on(minimap, "pointerdown", (event) => {
    if (event.button !== 0) return;
    dragging = true;
    minimap.setPointerCapture?.(event.pointerId);
    scrollFromMinimap(event);
  });
  listeners.on(minimap, "pointermove", (event) => { if (dragging) scrollFromMinimap(event); });
  const endDrag = (event) => {
    dragging = false;
    minimap.releasePointerCapture?.(event.pointerId);
  };
  listeners.on(minimap, "pointerup", endDrag);
  listeners.on(minimap, "pointercancel", endDrag);
  listeners.on(minimap, "wheel", (event) => {
    event.preventDefault();
    scrollTo(scroller.scrollTop + event.deltaY * (event.deltaMode === 1 ? LINE_HEIGHT : 1));
  }, { passive: false });

  function update(next) {
    const previous = current?.token ?? null;
    current = next ?? null;
    recolor();
    renderMinimapImage();
    const focus = current?.token;
    if (focus != null && focus !== previous && focus >= 0 && focus < layout.count) {
      const target = scrollToLine(layout, layout.line[focus], scroller.scrollTop, viewHeight, { top: PAD_Y, bottom: PAD_Y });
      if (target !== scroller.scrollTop) {
        scrollTo(target);
        if (scrollTop === target) return; // onScroll drew everything
      }
    }
    drawBase();
  }

  update(data);

  const handle = viewHandle(stack, listeners, theme, {
    update,
    setHovered(token) { hoveredToken = token; drawOverlay(); },
    setSelected(list) { selected = new Set(list ?? []); drawBase(); },
    setScale(kind) {
      scaleKind = kind ?? "linear";
      recolor();
      renderMinimapImage();
      drawBase();
    },
    /** Legend, visible text and minimap on the theme background (device pixels). */
    toCanvas() {
      const out = stack.toCanvas(theme.background);
      const dpr = out.width / width;
      out.getContext("2d").drawImage(minimap, Math.round((width - MINIMAP) * dpr), Math.round(LEGEND * dpr));
      return out;
    },
  });
  const destroy = handle.destroy;
  handle.destroy = () => {
    cancelAnimationFrame(pendingScroll);
    destroy();
  };
  return handle;
}
