import { describe, expect, it } from "vitest";
import { makeLUT } from "../src/colors.js";
import {
  atlasColors, BAR_SPACE, colorBarItems, figureTitle, finiteRange, fitText, flatItems, formatValue, gridFigureLayout,
  gridScene, heatmapLayout, heatmapScene, lutHex, lutStops, matrixColors, SCALE_NAMES, tokenLabel,
} from "../src/figure.js";
import { makeScale } from "../src/scale.js";

const theme = {
  background: "#ffffff", foreground: "rgba(0, 0, 0, 0.87)", muted: "rgba(0, 0, 0, 0.54)", border: "#bdbdbd",
  accent: "#1976d2", highlight: "#ff9800", fontFamily: "sans-serif", monoFamily: "monospace", isDark: false,
};
const measure = (text, font = {}) => String(text).length * (font.size ?? 10) * 0.6;
const lut = makeLUT("magma");
const texts = (scene) => flatItems(scene.items).filter((item) => item.kind === "text");
const byRole = (scene, role) => flatItems(scene.items).filter((item) => item.role === role);

const tokens = ["<s>", " The", " cat", " sat", "\n", " on"];
const matrix = { dtype: "uint8", shape: [6, 6], data: Uint8Array.from({ length: 36 }, (_, i) => (i * 7) % 256) };

function heatmap(overrides = {}) {
  const layout = heatmapLayout({ tokens, size: 240, total: { rows: 6, cols: 6 }, measure, ...overrides.layout });
  const source = { id: "heatmap", rows: 6, cols: 6, rgba: matrixColors(matrix, lut) };
  const state = {
    tile: { source, row0: 0, col0: 0, n_rows: 6, n_cols: 6 }, view: { row0: 0, col0: 0, rows: 6, cols: 6 },
    causal: true, scale: makeScale("linear", 1), selected: new Set([2]), title: "layer 3, head 2", ...overrides.state,
  };
  return { layout, scene: heatmapScene(layout, state, { theme, lut, tokens, measure, modelName: "SmolLM2-135M", ...overrides.options }) };
}

describe("titles and labels", () => {
  it("names the model, then what is shown", () => {
    expect(figureTitle("SmolLM2-135M", "layer 3, head 2")).toBe("SmolLM2-135M · layer 3, head 2");
    expect(figureTitle("", "layer 3, mean of heads")).toBe("layer 3, mean of heads");
    expect(figureTitle("gpt2", "")).toBe("gpt2");
    expect(figureTitle(null, undefined)).toBe("");
  });

  it("token labels are index then visible text", () => {
    expect(tokenLabel(tokens, 1)).toBe("1  The");
    expect(tokenLabel(tokens, 4)).toBe("4 ↵");
    expect(tokenLabel(["a-very-long-token-indeed"], 0)).toBe("0 a-very-long…");
  });

  it("fits text to a width with an ellipsis", () => {
    expect(fitText("short", 100, measure, { size: 10 })).toBe("short");
    const fitted = fitText("a long title that does not fit", 60, measure, { size: 10 });
    expect(fitted.endsWith("…")).toBe(true);
    expect(measure(fitted, { size: 10 })).toBeLessThanOrEqual(60);
  });

  it("formats metric values to three significant digits", () => {
    expect(formatValue(0.123456)).toBe("0.123");
    expect(formatValue(2.5)).toBe("2.5");
    expect(formatValue(0)).toBe("0");
    expect(formatValue(12345)).toBe("1.2e4");
    expect(formatValue(0.00012)).toBe("1.2e-4");
    expect(formatValue(Number.NaN)).toBe("");
  });
});

describe("colours", () => {
  it("LUT entries as hex and gradient stops from 0 to 1", () => {
    expect(lutHex(lut, 0)).toMatch(/^#[0-9a-f]{6}$/);
    const stops = lutStops(lut, 5);
    expect(stops.map((s) => s.offset)).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(stops[0].color).toBe(lutHex(lut, 0));
    expect(stops[4].color).toBe(lutHex(lut, 255));
  });

  it("matrix colours follow the LUT and the scale", () => {
    const rgba = matrixColors({ dtype: "float32", shape: [1, 3], data: Float32Array.from([0, 0.5, 1]) }, lut);
    expect(Array.from(rgba.slice(0, 4))).toEqual([lut[0], lut[1], lut[2], 255]);
    expect(Array.from(rgba.slice(8, 11))).toEqual([lut[1020], lut[1021], lut[1022]]);
    const half = matrixColors({ dtype: "float32", shape: [1, 1], data: Float32Array.from([0.5]) }, lut, makeScale("linear", 0.5));
    expect(Array.from(half.slice(0, 3))).toEqual([lut[1020], lut[1021], lut[1022]]);
  });

  it("the grid atlas puts layer rows and head columns, the mean last", () => {
    const thumbs = { shape: [2, 2, 1, 1], data: Uint8Array.from([0, 255, 10, 20]) };
    const means = { shape: [2, 1, 1], data: Uint8Array.from([128, 30]) };
    const atlas = atlasColors(thumbs, means, lut);
    expect([atlas.rows, atlas.cols]).toEqual([2, 3]);
    const at = (row, col) => Array.from(atlas.rgba.slice((row * 3 + col) * 4, (row * 3 + col) * 4 + 3));
    expect(at(0, 1)).toEqual([lut[1020], lut[1021], lut[1022]]);
    expect(at(0, 2)).toEqual([lut[512], lut[513], lut[514]]);
    expect(at(1, 2)).toEqual([lut[120], lut[121], lut[122]]);
  });

  it("finite range skips NaN", () => {
    expect(finiteRange([Number.NaN, 2, -1, Infinity])).toEqual({ lo: -1, hi: 2 });
    expect(finiteRange([Number.NaN])).toBe(null);
  });
});

describe("colour bar", () => {
  it("is a gradient with its border, ticks from bottom to top, a title and a note", () => {
    const items = colorBarItems({ lut, theme, title: "weight", note: "log scale", box: { x: 10, y: 20, width: 12, height: 100 },
      ticks: [{ t: 0, label: "0" }, { t: 1, label: "0.5" }] });
    const gradient = items.find((item) => item.kind === "gradient");
    expect(gradient).toMatchObject({ x: 10, y: 20, width: 12, height: 100, direction: "up" });
    const labels = items.filter((item) => item.kind === "text");
    expect(labels.map((item) => item.text)).toEqual(["0", "0.5", "weight", "log scale"]);
    expect(labels[0].y).toBe(120); // t = 0 at the bottom
    expect(labels[1].y).toBe(20);
    expect(items.every((item) => item.role === "colorbar")).toBe(true);
  });
});

describe("heatmap figure", () => {
  it("has the title, both axis titles, token labels and a colour bar naming its scale", () => {
    const { scene } = heatmap();
    expect(scene.title).toBe("SmolLM2-135M · layer 3, head 2");
    expect(byRole(scene, "title").map((t) => t.text)).toEqual([scene.title]);
    expect(byRole(scene, "axis-title").map((t) => t.text).sort()).toEqual(["key", "query"]);
    const ticks = byRole(scene, "tick").map((t) => t.text);
    expect(ticks).toContain("2  cat");
    expect(ticks.filter((t) => t === "2  cat")).toHaveLength(2); // row and column
    const bar = byRole(scene, "colorbar");
    expect(bar.some((item) => item.kind === "gradient")).toBe(true);
    expect(bar.map((item) => item.text)).toContain(SCALE_NAMES.linear);
    expect(bar.map((item) => item.text)).toContain("weight");
  });

  it("says target and source for cross-attention", () => {
    const { scene } = heatmap({ layout: { cross: true, keyTokens: tokens } });
    expect(byRole(scene, "axis-title").map((t) => t.text).sort()).toEqual(["source", "target"]);
  });

  it("names the log and sink-removed scales", () => {
    for (const kind of ["log", "no_sink"]) {
      const { scene } = heatmap({ state: { scale: makeScale(kind, 1) } });
      expect(byRole(scene, "colorbar").map((item) => item.text)).toContain(SCALE_NAMES[kind]);
    }
    expect(SCALE_NAMES.no_sink).toBe("sink removed");
  });

  it("selected tokens' labels take the accent colour", () => {
    const { scene } = heatmap();
    const selected = byRole(scene, "tick").filter((t) => t.text.startsWith("2 "));
    expect(selected.every((t) => t.color === theme.accent)).toBe(true);
    expect(byRole(scene, "tick").filter((t) => t.text.startsWith("1 ")).every((t) => t.color === theme.foreground)).toBe(true);
  });

  it("places everything inside the figure, the bar right of the plot", () => {
    const { layout, scene } = heatmap();
    expect(scene.width).toBe(layout.width);
    expect(Number.isInteger(scene.width) && Number.isInteger(scene.height)).toBe(true);
    const plot = layout.plot;
    const gradient = byRole(scene, "colorbar").find((item) => item.kind === "gradient");
    expect(gradient.x).toBeGreaterThan(plot.left + plot.width);
    expect(gradient.x + BAR_SPACE - 10).toBeLessThanOrEqual(scene.width);
    for (const item of texts(scene)) {
      expect(item.x).toBeGreaterThanOrEqual(0);
      expect(item.x).toBeLessThanOrEqual(scene.width);
      expect(item.y).toBeGreaterThanOrEqual(0);
      expect(item.y).toBeLessThanOrEqual(scene.height);
    }
  });

  it("masks the causal upper triangle inside the plot's clip, and not without causality", () => {
    const { scene } = heatmap();
    const clip = scene.items.find((item) => item.kind === "clip");
    const mask = clip.items.find((item) => item.kind === "rects");
    expect(mask.rects).toHaveLength(5); // rows 0..4 have keys after them
    expect(clip.items.find((item) => item.kind === "image").source.rows).toBe(6);
    const open = heatmap({ state: { causal: false } }).scene;
    expect(open.items.find((item) => item.kind === "clip").items.some((item) => item.kind === "rects")).toBe(false);
  });

  it("without data keeps the title only", () => {
    const { scene } = heatmap({ state: { tile: null, view: null } });
    expect(scene.plot).toBe(null);
    expect(byRole(scene, "colorbar")).toHaveLength(0);
  });
});

describe("grid figure", () => {
  const thumbs = { shape: [3, 2, 2, 2], data: Uint8Array.from({ length: 24 }, (_, i) => i * 10) };
  const means = { shape: [3, 2, 2], data: Uint8Array.from({ length: 12 }, (_, i) => i * 20) };
  const atlas = { id: "grid", ...atlasColors(thumbs, means, lut) };
  const viridis = makeLUT("viridis");

  it("keeps within maxWidth with its bars", () => {
    for (const bars of [1, 2]) {
      const layout = gridFigureLayout({ layers: 30, heads: 9, maxWidth: 500, maxHeight: 500, bars });
      expect(layout.width).toBeLessThanOrEqual(500);
      expect(layout.bars).toBe(bars);
    }
  });

  it("has a title, head and layer axis titles, thumbnails and the weight bar", () => {
    const layout = gridFigureLayout({ layers: 3, heads: 2, bars: 1 });
    const scene = gridScene(layout, { atlas, rows: 2, cols: 2, ready: null, scores: null, range: null, metric: null },
      { theme, lut, borderLUT: viridis, measure, modelName: "SmolLM2-135M", part: "" });
    expect(scene.title).toBe("SmolLM2-135M · every layer and head");
    expect(byRole(scene, "axis-title").map((t) => t.text).sort()).toEqual(["head", "layer"]);
    expect(byRole(scene, "thumbnail")).toHaveLength(9);
    const bars = byRole(scene, "colorbar").filter((item) => item.kind === "gradient");
    expect(bars).toHaveLength(1);
    expect(byRole(scene, "colorbar").map((item) => item.text)).toContain("own max");
  });

  it("adds the metric's bar with its range, and hatches pending layers", () => {
    const layout = gridFigureLayout({ layers: 3, heads: 2, bars: 2 });
    const scene = gridScene(layout, { atlas, rows: 2, cols: 2, ready: Uint8Array.from([1, 0, 1]),
      scores: [0, 0.5, 1, 0, 0.2, 0.4], range: { lo: 1.5, hi: 3.5 }, metric: "entropy" },
    { theme, lut, borderLUT: viridis, measure, part: "cross" });
    expect(scene.title).toBe("cross: every layer and head");
    const bars = byRole(scene, "colorbar");
    expect(bars.filter((item) => item.kind === "gradient")).toHaveLength(2);
    expect(bars.map((item) => item.text)).toEqual(expect.arrayContaining(["entropy", "1.5", "2.5", "3.5"]));
    expect(byRole(scene, "thumbnail")).toHaveLength(6); // layer 1 is pending
    expect(scene.items.filter((item) => item.kind === "rect" && item.hatch)).toHaveLength(3);
    expect(scene.items.filter((item) => item.kind === "rect" && item.lineWidth === 3)).toHaveLength(4);
  });
});
