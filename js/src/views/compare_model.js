// The comparison view's pure part: its traits decoded, the shared and the diverging colour scales,
// the diverging colour map, which panels can be subtracted, keyboard steps and the hover read-out.
// No DOM, so vitest checks it in node (js/test/compare.test.js).

import { isWireArray } from "../codec.js";
import { formatTick, makeScale } from "../scale.js";
import { gridData, heatmapData } from "../traits.js";

/**
 * heatmap_data {panels: [tile + name], max, max_no_sink, title, layer, head} ->
 * {panels: [{name, matrix, row0, col0, n_rows, n_cols, title}], max, maxNoSink, title, layer, head}, or null.
 * Every panel's tile is a heatmap_data of the single widget (float16 weights 0..1, maybe pooled).
 */
export function compareHeatmaps(value) {
  if (!value || !Array.isArray(value.panels)) return null;
  const panels = value.panels.map((tile, i) => {
    const decoded = heatmapData(tile);
    if (!decoded) throw new TypeError(`heatmap_data.panels[${i}]: expected a tile {matrix, ...}`);
    return { ...decoded, name: String(tile.name ?? i), title: value.title ?? decoded.title ?? "" };
  });
  return { panels, max: Number(value.max ?? 0), maxNoSink: Number(value.max_no_sink ?? value.max ?? 0),
    title: value.title ?? "", layer: value.layer ?? null, head: value.head ?? null };
}

/**
 * difference_data {matrix float32 [r, c], a, b, max_abs, max_abs_no_sink, title, ...} -> decoded, or
 * null when there is none ({}): the matrix holds b - a (negative where panel a attends more).
 */
export function differenceData(value) {
  if (!value || !isWireArray(value.matrix)) return null;
  const decoded = heatmapData(value);
  return { ...decoded, a: String(value.a ?? ""), b: String(value.b ?? ""), maxAbs: Number(value.max_abs ?? 0),
    maxAbsNoSink: Number(value.max_abs_no_sink ?? value.max_abs ?? 0), title: value.title ?? "" };
}

/** Every panel's grid of thumbnails decoded (null for a panel without one). */
export function compareGrids(value) {
  return Array.isArray(value) ? value.map((grid) => gridData(grid)) : [];
}

/**
 * The one colour scale of every panel: scale.js' scale of `kind` whose maximum is the largest weight
 * over all panels (for "no_sink", the largest without the first token), as the kernel computed it.
 */
export function sharedScale(kind, heatmaps) {
  if (!heatmaps) return makeScale(kind, 0);
  return makeScale(kind, kind === "no_sink" ? heatmaps.maxNoSink : heatmaps.max);
}

/**
 * A symmetric scale for differences in [-maxAbs, maxAbs]: t(v) = 0.5 + v / (2 maxAbs), clamped to
 * 0..1 (0: panel a attends more, 0.5: no change, 1: panel b attends more), ticks at -m, 0 and m.
 */
export function divergingScale(maxAbs) {
  const top = maxAbs > 0 && Number.isFinite(maxAbs) ? maxAbs : 0;
  const t = (v) => (top > 0 && Number.isFinite(v) ? Math.min(1, Math.max(0, 0.5 + v / (2 * top))) : 0.5);
  return { kind: "diverging", max: top, label: "difference", t,
    ticks: [{ value: -top, t: 0 }, { value: 0, t: 0.5 }, { value: top, t: 1 }] };
}

// ColorBrewer RdBu (11 classes) from blue (negative) to red (positive): white in the middle, for light
// backgrounds. On dark backgrounds the middle is near-black and the ends light, so that "no change"
// sinks into the page and large changes stand out, as the weight scale does.
const DIVERGING = {
  light: ["#053061", "#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7",
    "#fddbc7", "#f4a582", "#d6604d", "#b2182b", "#67001f"],
  dark: ["#d1e5f0", "#92c5de", "#4393c3", "#2166ac", "#17375e", "#1a1a1a",
    "#5c1a1f", "#b2182b", "#d6604d", "#f4a582", "#fddbc7"],
};

function hexRGB(hex) {
  return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
}

/** 256-entry RGBA table of the diverging map (index 0: most negative, 128: zero, 255: most positive). */
export function divergingLUT(dark = false) {
  const anchors = (dark ? DIVERGING.dark : DIVERGING.light).map(hexRGB);
  const lut = new Uint8ClampedArray(256 * 4);
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * (anchors.length - 1);
    const k = Math.min(Math.floor(t), anchors.length - 2);
    const f = t - k;
    for (let c = 0; c < 3; c++) lut[i * 4 + c] = Math.round(anchors[k][c] * (1 - f) + anchors[k + 1][c] * f);
    lut[i * 4 + 3] = 255;
  }
  return lut;
}

/** A tick label with its sign: "-0.25", "0", "+0.25", "+3e-5". */
export function formatSigned(value) {
  if (!value) return "0";
  return (value < 0 ? "-" : "+") + formatTick(Math.abs(value));
}

/**
 * Which panels can be subtracted from panel `a`: the others with as many query and key tokens, in
 * panel order. `tokens` and `keyTokens` are per panel lists.
 */
export function partnersOf(a, names, tokens, keyTokens = tokens) {
  const i = names.indexOf(a);
  if (i < 0) return [];
  const rows = (tokens[i] ?? []).length;
  const cols = (keyTokens?.[i] ?? tokens[i] ?? []).length;
  return names.filter((name, j) => j !== i && (tokens[j] ?? []).length === rows &&
    (keyTokens?.[j] ?? tokens[j] ?? []).length === cols);
}

/**
 * The pair to send when the "minus" panel (a) changes: keep b when it still fits, else the first
 * panel that fits, else null (no difference).
 */
export function pairFor(a, b, names, tokens, keyTokens = tokens) {
  if (a == null) return null;
  const partners = partnersOf(a, names, tokens, keyTokens);
  if (!partners.length) return null;
  return [a, partners.includes(b) ? b : partners[0]];
}

/**
 * The query row after a key press in a heatmap of `n` rows, from row `current` (null: none yet):
 * ArrowDown/ArrowUp one row, PageDown/PageUp ten, Home/End the first and last; undefined for other keys.
 */
export function nextRow(key, current, n) {
  if (n <= 0) return undefined;
  const from = current == null ? -1 : current;
  const clamp = (row) => Math.max(0, Math.min(n - 1, row));
  switch (key) {
    case "ArrowDown": return clamp(current == null ? 0 : from + 1);
    case "ArrowUp": return clamp(current == null ? n - 1 : from - 1);
    case "PageDown": return clamp(current == null ? 0 : from + 10);
    case "PageUp": return clamp(current == null ? n - 1 : from - 10);
    case "Home": return 0;
    case "End": return n - 1;
    default: return undefined;
  }
}

/** The clicked row after a click on (panel, row): a second click on the same row clears it. */
export function toggleSelection(current, panel, row) {
  if (current && current.panel === panel && current.token === row) return { panel: null, token: null };
  return { panel, token: row };
}

/** A token as a short visible text: quotes, whitespace shown (↵ ⇥ ␍), at most `max` characters. */
export function quoted(token, max = 24) {
  let text = String(token ?? "").replace(/\n/g, "↵").replace(/\t/g, "⇥").replace(/\r/g, "␍");
  if (text.length > max) text = text.slice(0, max - 1) + "…";
  return `“${text}”`;
}

/**
 * The read-out of the hovered row (plain text, set through textContent): the panel, the row and its
 * token, and the same row's token in each other panel that has one.
 */
export function describeHover(names, tokens, panel, token) {
  if (token == null) return "";
  if (panel == null) {
    return `row ${token}: ` + names.map((name, i) => (token < (tokens[i] ?? []).length
      ? `${name} ${quoted(tokens[i][token])}` : `${name} -`)).join(" · ");
  }
  const i = names.indexOf(panel);
  const own = `${panel} · query ${token} ${quoted(tokens[i]?.[token])}`;
  const others = names.filter((name, j) => j !== i && token < (tokens[j] ?? []).length)
    .map((name) => `${name} ${quoted(tokens[names.indexOf(name)][token])}`);
  return others.length ? `${own} · same row in ${others.join(", ")}` : own;
}
