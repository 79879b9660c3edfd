// Colour scales, the head palette and the JupyterLab theme.
// Pure except readTheme(), which reads computed CSS variables of an element.

// Anchors sampled from matplotlib's perceptually uniform maps (0, 0.1, .., 1).
const ANCHORS = {
  magma: ["#000004", "#140e36", "#3b0f70", "#641a80", "#8c2981", "#b73779",
    "#de4968", "#f7705c", "#fe9f6d", "#fecf92", "#fcfdbf"],
  viridis: ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89",
    "#35b779", "#6ece58", "#b5de2b", "#fde725", "#fde725"],
};

// Tableau 10: distinct on light and dark backgrounds.
const HEAD_PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
  "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

/** "#rgb", "#rrggbb", "#rrggbbaa", "rgb(..)" or "rgba(..)" -> [r, g, b, a 0..1] or null. */
export function parseColor(text) {
  if (typeof text !== "string") return null;
  const value = text.trim().toLowerCase();
  let match = /^#([0-9a-f]{3,8})$/.exec(value);
  if (match) {
    let hex = match[1];
    if (hex.length === 3 || hex.length === 4) hex = [...hex].map((c) => c + c).join("");
    if (hex.length !== 6 && hex.length !== 8) return null;
    const channel = (i) => parseInt(hex.slice(i, i + 2), 16);
    return [channel(0), channel(2), channel(4), hex.length === 8 ? channel(6) / 255 : 1];
  }
  match = /^rgba?\(([^)]*)\)$/.exec(value);
  if (match) {
    const parts = match[1].split(/[\s,/]+/).filter(Boolean).map(parseFloat);
    if (parts.length < 3 || parts.some(Number.isNaN)) return null;
    return [parts[0], parts[1], parts[2], parts.length > 3 ? parts[3] : 1];
  }
  if (value === "white") return [255, 255, 255, 1];
  if (value === "black") return [0, 0, 0, 1];
  return null;
}

/** WCAG relative luminance of an [r, g, b] in 0..255. */
export function luminance([r, g, b]) {
  const linear = (c) => {
    const s = c / 255;
    return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
}

/**
 * 256-entry RGBA lookup table (Uint8ClampedArray of 1024) for a named scale.
 * Entry 0 is weight 0, entry 255 is weight 1. `reverse` flips the scale.
 */
export function makeLUT(name = "magma", { reverse = false } = {}) {
  const anchors = ANCHORS[name];
  if (!anchors) throw new Error(`unknown colour scale ${name}; expected ${Object.keys(ANCHORS).join(", ")}`);
  const rgb = anchors.map(parseColor);
  const lut = new Uint8ClampedArray(256 * 4);
  for (let i = 0; i < 256; i++) {
    const t = (reverse ? 255 - i : i) / 255 * (rgb.length - 1);
    const k = Math.min(Math.floor(t), rgb.length - 2);
    const f = t - k;
    for (let c = 0; c < 3; c++) lut[i * 4 + c] = Math.round(rgb[k][c] * (1 - f) + rgb[k + 1][c] * f);
    lut[i * 4 + 3] = 255;
  }
  return lut;
}

/** The scale that fades into the background: dark-to-light on dark themes, reversed on light. */
export function themeLUT(theme) {
  return makeLUT("magma", { reverse: !theme.isDark });
}

/** Index 0..255 of a weight (number 0..1, clamped). */
export function lutIndex(weight) {
  if (!(weight > 0)) return 0;
  return weight >= 1 ? 255 : Math.round(weight * 255);
}

/** CSS "rgb(r,g,b)" of a weight in 0..1 through a LUT. */
export function lutColor(lut, weight) {
  const i = lutIndex(weight) * 4;
  return `rgb(${lut[i]},${lut[i + 1]},${lut[i + 2]})`;
}

/** Categorical colour of head `index` (Tableau 10, then golden-angle hues). */
export function headColor(index) {
  if (index == null || index < 0) return null;
  if (index < HEAD_PALETTE.length) return HEAD_PALETTE[index];
  return `hsl(${Math.round((index * 137.508) % 360)}, 60%, 52%)`;
}

/** "rgba(r,g,b,a)" of a colour string with a new alpha (hex or rgb input). */
export function withAlpha(color, alpha) {
  const rgb = parseColor(color);
  if (!rgb) return color;
  return `rgba(${rgb[0]},${rgb[1]},${rgb[2]},${alpha})`;
}

export const THEME_FALLBACKS = {
  background: "#ffffff",
  foreground: "rgba(0, 0, 0, 0.87)",
  muted: "rgba(0, 0, 0, 0.54)",
  border: "#bdbdbd",
  accent: "#1976d2",
  highlight: "#ff9800",
  fontFamily: "system-ui, -apple-system, 'Segoe UI', sans-serif",
  monoFamily: "ui-monospace, 'SFMono-Regular', Menlo, monospace",
};

const THEME_VARIABLES = {
  background: "--jp-layout-color0",
  foreground: "--jp-ui-font-color1",
  muted: "--jp-ui-font-color2",
  border: "--jp-border-color1",
  accent: "--jp-brand-color1",
  highlight: "--jp-warn-color1",
  fontFamily: "--jp-ui-font-family",
  monoFamily: "--jp-code-font-family",
};

/**
 * Build a theme from a lookup of CSS variables (name -> string or "").
 * Pure: readTheme() passes getComputedStyle's getPropertyValue.
 */
export function themeFrom(lookup, { prefersDark = false, themeLight = null } = {}) {
  const theme = {};
  let found = false;
  for (const [key, variable] of Object.entries(THEME_VARIABLES)) {
    const value = (lookup(variable) || "").trim();
    if (value) found = true;
    theme[key] = value || THEME_FALLBACKS[key];
  }
  const background = parseColor(theme.background);
  if (!found && prefersDark) {
    Object.assign(theme, { background: "#111111", foreground: "rgba(255,255,255,0.87)",
      muted: "rgba(255,255,255,0.54)", border: "#616161", accent: "#64b5f6" });
  }
  const bg = parseColor(theme.background) || background || [255, 255, 255, 1];
  theme.isDark = themeLight == null ? luminance(bg) < 0.3 : !themeLight;
  return theme;
}

/** Theme of the element's context (JupyterLab variables, or the page's colour scheme). */
export function readTheme(el) {
  const style = getComputedStyle(el);
  const prefersDark = typeof matchMedia === "function" &&
    matchMedia("(prefers-color-scheme: dark)").matches;
  // JupyterLab marks the body with data-jp-theme-light="true"|"false".
  const flag = typeof document !== "undefined" ? document.body?.dataset?.jpThemeLight : undefined;
  const themeLight = flag === "true" ? true : flag === "false" ? false : null;
  const theme = themeFrom((name) => style.getPropertyValue(name), { prefersDark, themeLight });
  // Let the browser resolve any CSS colour (names, hsl()) to hex/rgba so withAlpha() works.
  const probe = document.createElement("canvas").getContext("2d");
  for (const key of ["background", "foreground", "muted", "border", "accent", "highlight"]) {
    if (parseColor(theme[key])) continue;
    probe.fillStyle = THEME_FALLBACKS[key];
    probe.fillStyle = theme[key];
    theme[key] = probe.fillStyle;
  }
  if (themeLight == null) theme.isDark = luminance(parseColor(theme.background) ?? [255, 255, 255]) < 0.3;
  return theme;
}
