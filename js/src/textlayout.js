// Pure paragraph layout for the text view: tokens wrapped into lines, hit tests, visible lines.
// No DOM: text widths come from a `measure(text) -> px` function (canvas measureText in the view).
// Coordinates are CSS pixels relative to the top-left of the text block.

import { visibleText } from "./layout.js";

/** Number of "\n" characters in a string. */
function countNewlines(text) {
  let count = 0;
  for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) count++;
  return count;
}

/**
 * Wrap tokens into lines like a paragraph.
 *
 * texts: raw token strings; measure(visible) gives the width of a token's drawn text (newlines,
 * tabs and carriage returns made visible as ↵ ⇥ ␍, leading spaces kept). A token that does not
 * fit on the current line starts a new one; a token wider than the whole line sits alone on its
 * line and is clipped to `width`. A token containing k newlines ends its line after it and leaves
 * k - 1 empty lines (a paragraph break). `gap` px separate neighbours; every token is at least
 * `minWidth` px wide (empty tokens stay hoverable). `breakAfter`: token indices after which a paragraph
 * ends (a new line after one blank line), e.g. between the target and source text of cross-attention.
 *
 * Returns {count, lines, width, lineHeight, gap, height, x, line, widths, clipped, lineStart}:
 * per token i: x[i], line[i], widths[i] (after clipping; typed arrays), clipped[i] = 1 when cut;
 * the tokens of line l are lineStart[l] .. lineStart[l + 1] - 1 (empty lines have none).
 * No tokens: zero lines.
 */
export function layoutTokens(texts, measure, { width, lineHeight, gap = 0, minWidth = 4, breakAfter = [] }) {
  const paragraphEnds = new Set(breakAfter);
  const count = texts.length;
  const x = new Float32Array(count);
  const line = new Int32Array(count);
  const widths = new Float32Array(count);
  const clipped = new Uint8Array(count);
  const starts = [0];
  let current = 0;
  let cursor = 0; // x where the next token on the current line goes
  let empty = true; // the current line holds no token yet
  const newLine = (at, blank = 0) => {
    for (let k = 0; k <= blank; k++) starts.push(at);
    current += 1 + blank;
    cursor = 0;
    empty = true;
  };
  for (let i = 0; i < count; i++) {
    const raw = String(texts[i] ?? "");
    let w = Math.max(minWidth, measure(visibleText(raw)));
    if (!empty && cursor + w > width) newLine(i);
    if (w > width) {
      w = width;
      clipped[i] = 1;
    }
    x[i] = cursor;
    line[i] = current;
    widths[i] = w;
    cursor += w + gap;
    empty = false;
    const breaks = Math.max(countNewlines(raw), paragraphEnds.has(i) ? 2 : 0);
    if (breaks > 0) newLine(i + 1, breaks - 1);
    else if (clipped[i]) newLine(i + 1); // an over-wide token has its line to itself
  }
  // A trailing break leaves one empty line open at the end; it closes here (lines >= 1).
  if (empty && current > 0) {
    starts.pop();
    current -= 1;
  }
  starts.push(count);
  const lines = count ? current + 1 : 0;
  return {
    count, lines, lineHeight, width, gap, height: lines * lineHeight,
    x, line, widths, clipped, lineStart: Int32Array.from(starts),
  };
}

/** Token i as {x, line, width}. */
export function tokenBox(layout, i) {
  return { x: layout.x[i], line: layout.line[i], width: layout.widths[i] };
}

/** Tokens [start, end) of line l (start === end for an empty line or a line out of range). */
export function lineTokens(layout, l) {
  if (l < 0 || l >= layout.lines) return [0, 0];
  return [layout.lineStart[l], layout.lineStart[l + 1]];
}

/**
 * The token under (x, y), or null in a gap, past the end of a line, or outside the text.
 * `left`/`top` shift the text block (e.g. padding, or -scrollTop for a scrolled viewport).
 * Binary search within the line: O(log tokens per line).
 */
export function tokenAt(layout, x, y, { left = 0, top = 0 } = {}) {
  const px = x - left;
  const l = Math.floor((y - top) / layout.lineHeight);
  if (px < 0 || l < 0 || l >= layout.lines) return null;
  let lo = layout.lineStart[l];
  let hi = layout.lineStart[l + 1] - 1;
  if (hi < lo) return null;
  // Last token of the line whose x <= px.
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (layout.x[mid] <= px) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  if (found < 0 || px >= layout.x[found] + layout.widths[found]) return null;
  return found;
}

/**
 * Lines visible in a viewport `viewHeight` px tall scrolled by `scrollTop` (text block starting
 * at `top` inside the scrolled content): {first, last} inclusive, partially visible lines
 * included; {first: 0, last: -1} when none is.
 */
export function visibleLines(layout, scrollTop, viewHeight, { top = 0 } = {}) {
  const y0 = scrollTop - top;
  const first = Math.max(0, Math.floor(y0 / layout.lineHeight));
  const last = Math.min(layout.lines - 1, Math.ceil((y0 + viewHeight) / layout.lineHeight) - 1);
  return last < first ? { first: 0, last: -1 } : { first, last };
}

/** First and last token of lines first..last (inclusive), or null when they hold no token. */
export function visibleTokens(layout, { first, last }) {
  if (last < first) return null;
  const start = layout.lineStart[first];
  const end = layout.lineStart[last + 1] - 1;
  return end < start ? null : { first: start, last: end };
}

/**
 * scrollTop that brings line l into a viewport of `viewHeight` px: unchanged when the line is
 * already fully visible, else the line centred, clamped to the scrollable range.
 */
export function scrollToLine(layout, l, scrollTop, viewHeight, { top = 0, bottom = 0 } = {}) {
  const lh = layout.lineHeight;
  const y = top + l * lh;
  const max = Math.max(0, top + layout.height + bottom - viewHeight);
  if (y >= scrollTop && y + lh <= scrollTop + viewHeight) return Math.min(scrollTop, max);
  return Math.max(0, Math.min(max, Math.round(y + lh / 2 - viewHeight / 2)));
}

/**
 * Pixel rows of the minimap: the document (`lines` lines) scaled into `height` px, at most
 * `maxRow` px per line (a short text stays short). Returns {rowHeight, height}.
 */
export function minimapScale(lines, height, maxRow = 3) {
  const rowHeight = Math.min(maxRow, height / Math.max(1, lines));
  return { rowHeight, height: Math.min(height, lines * rowHeight) };
}

/**
 * Max-pool token values onto a minimap grid of `cols` x `rows` pixels. Each line l covers rows
 * [l * rowHeight, (l + 1) * rowHeight); each token its share of the line width `textWidth`.
 * values[i] in 0..1 (NaN or missing = 0). Cells without a token stay -1.
 */
export function minimapGrid(layout, values, { cols, rows, rowHeight, textWidth }) {
  const grid = new Float32Array(cols * rows).fill(-1);
  const sx = cols / Math.max(1, textWidth);
  for (let i = 0; i < layout.count; i++) {
    const l = layout.line[i];
    const r0 = Math.min(rows - 1, Math.floor(l * rowHeight));
    // Leave a one-pixel gap between lines when there is room for it.
    const r1 = Math.min(rows, Math.max(r0 + 1, Math.floor((l + 1) * rowHeight) - (rowHeight >= 3 ? 1 : 0)));
    const c0 = Math.min(cols - 1, Math.floor(layout.x[i] * sx));
    const c1 = Math.min(cols, Math.max(c0 + 1, Math.ceil((layout.x[i] + layout.widths[i]) * sx)));
    const v = values && values[i] > 0 ? values[i] : 0;
    for (let r = r0; r < r1; r++) {
      for (let c = c0; c < c1; c++) {
        const k = r * cols + c;
        if (v > grid[k]) grid[k] = v;
      }
    }
  }
  return grid;
}

/** The scroll offset that centres minimap row `y` (px) in a viewport of `viewHeight`. */
export function minimapScroll(layout, y, rowHeight, viewHeight, { top = 0, bottom = 0 } = {}) {
  const lineF = y / rowHeight;
  const max = Math.max(0, top + layout.height + bottom - viewHeight);
  return Math.max(0, Math.min(max, Math.round(top + lineF * layout.lineHeight - viewHeight / 2)));
}
