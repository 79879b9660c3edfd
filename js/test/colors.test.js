import { describe, expect, it } from "vitest";
import COLORMAPS from "../src/colormaps.json";
import {
  composite, contrastRatio, ensureContrast, headColor, luminance, lutColor, lutIndex, makeLUT, MIN_CONTRAST, parseColor,
  readableOn, sameTheme, SCALE_TABLES, textContrast, themeFrom, themeLUT, withAlpha,
} from "../src/colors.js";

const rgbAt = (lut, i) => [lut[4 * i], lut[4 * i + 1], lut[4 * i + 2]];

describe("sequential scale", () => {
  it("has 256 opaque entries with the named endpoints", () => {
    const lut = makeLUT("magma");
    expect(lut.length).toBe(1024);
    expect(rgbAt(lut, 0)).toEqual([0, 0, 4]);
    expect(rgbAt(lut, 255)).toEqual([252, 253, 191]);
    for (let i = 0; i < 256; i++) expect(lut[4 * i + 3]).toBe(255);
    const reversed = makeLUT("magma", { reverse: true });
    expect(rgbAt(reversed, 0)).toEqual([252, 253, 191]);
    expect(rgbAt(reversed, 255)).toEqual([0, 0, 4]);
  });

  it.each(["magma", "viridis"])("%s is matplotlib's 256-entry table, entry for entry", (name) => {
    const lut = makeLUT(name);
    const table = COLORMAPS[name];
    expect(table).toHaveLength(256);
    expect(SCALE_TABLES[name]).toBe(table);
    for (let i = 0; i < 256; i++) expect(rgbAt(lut, i)).toEqual(parseColor(table[i]).slice(0, 3));
    const reversed = makeLUT(name, { reverse: true });
    for (let i = 0; i < 256; i++) expect(rgbAt(reversed, i)).toEqual(rgbAt(lut, 255 - i));
  });

  it("has viridis where the old 11 anchors were wrong", () => {
    // 0.8 rendered #b5de2b (viridis' 0.9) and 0.9..1 was flat yellow.
    const lut = makeLUT("viridis");
    expect(lutColor(lut, 0.8)).toBe("rgb(122,209,81)"); // #7ad151
    expect(lutColor(lut, 0.9)).toBe("rgb(189,223,38)"); // #bddf26
    expect(lutColor(lut, 1)).toBe("rgb(253,231,37)"); // #fde725
    expect(lutColor(lut, 0.5)).toBe("rgb(33,145,140)"); // #21918c
    expect(lutColor(makeLUT("magma"), 0.5)).toBe("rgb(183,55,121)"); // #b73779
  });

  it.each(["magma", "viridis"])("%s luminance rises (within 8-bit rounding)", (name) => {
    const lut = makeLUT(name);
    let previous = -1;
    for (let i = 0; i < 256; i++) {
      const l = luminance(rgbAt(lut, i));
      expect(l).toBeGreaterThanOrEqual(previous - 0.001);
      previous = Math.max(previous, l);
    }
    expect(luminance(rgbAt(lut, 255)) - luminance(rgbAt(lut, 0))).toBeGreaterThan(0.6);
  });

  it("maps weights to indices with clamping", () => {
    expect(lutIndex(-1)).toBe(0);
    expect(lutIndex(Number.NaN)).toBe(0);
    expect(lutIndex(0.5)).toBe(128);
    expect(lutIndex(2)).toBe(255);
    expect(lutColor(makeLUT("magma"), 0)).toBe("rgb(0,0,4)");
  });

  it("rejects unknown scales", () => {
    expect(() => makeLUT("jet")).toThrow(/unknown colour scale/);
  });
});

describe("palette and theme", () => {
  it("gives distinct head colours", () => {
    const colors = Array.from({ length: 16 }, (_, i) => headColor(i));
    expect(new Set(colors).size).toBe(16);
    expect(headColor(null)).toBe(null);
  });

  it("parses hex and rgb colours", () => {
    expect(parseColor("#fff")).toEqual([255, 255, 255, 1]);
    expect(parseColor("#11223380")[3]).toBeCloseTo(0.5, 2);
    expect(parseColor("rgba(0, 0, 0, 0.87)")).toEqual([0, 0, 0, 0.87]);
    expect(parseColor("rgb(10 20 30)")).toEqual([10, 20, 30, 1]);
    expect(parseColor("not a colour")).toBe(null);
    expect(withAlpha("#ff0000", 0.5)).toBe("rgba(255,0,0,0.5)");
  });

  it("reads JupyterLab variables with fallbacks, light and dark", () => {
    const light = themeFrom(() => "");
    expect(light.background).toBe("#ffffff");
    expect(light.isDark).toBe(false);
    const darkVars = { "--jp-layout-color0": " #111111", "--jp-ui-font-color1": "rgba(255,255,255,0.87)" };
    const dark = themeFrom((name) => darkVars[name] ?? "");
    expect(dark.isDark).toBe(true);
    expect(dark.background).toBe("#111111");
    expect(dark.border).toBe("#bdbdbd");
    expect(themeFrom(() => "", { prefersDark: true }).isDark).toBe(true);
    expect(themeFrom(() => "", { themeLight: false }).isDark).toBe(true);
    // A page's own choice (data-jp-theme-light, e.g. an exported page's toggle) beats the browser's.
    const chosenLight = themeFrom(() => "", { prefersDark: true, themeLight: true });
    expect(chosenLight.isDark).toBe(false);
    expect(chosenLight.background).toBe("#ffffff");
    expect(themeFrom(() => "", { prefersDark: true }).background).toBe("#111111");
  });

  it("takes the empty end of the scale from the theme: light on light, dark on dark", () => {
    const light = themeLUT(themeFrom(() => ""));
    const dark = themeLUT(themeFrom(() => "", { themeLight: false }));
    expect(luminance(rgbAt(light, 0))).toBeGreaterThan(0.8);
    expect(luminance(rgbAt(dark, 0))).toBeLessThan(0.01);
  });
});

describe("contrast", () => {
  it("computes WCAG ratios", () => {
    expect(contrastRatio([0, 0, 0], [255, 255, 255])).toBeCloseTo(21, 5);
    expect(contrastRatio([255, 255, 255], [255, 255, 255])).toBe(1);
    expect(textContrast("#767676", "#ffffff")).toBeCloseTo(4.54, 2); // the classic AA grey
    expect(composite([0, 0, 0, 0.5], [255, 255, 255])).toEqual([127.5, 127.5, 127.5]);
    // Translucent text is laid over its background first: 54% black on white is #757575.
    expect(textContrast("rgba(0,0,0,0.54)", "#fff")).toBeCloseTo(contrastRatio([117.3, 117.3, 117.3], [255, 255, 255]), 5);
    expect(Number.isNaN(textContrast("nonsense", "#fff"))).toBe(true);
  });

  it("keeps a readable colour and fixes an unreadable one, towards the far end", () => {
    expect(ensureContrast("rgba(0, 0, 0, 0.87)", "#ffffff")).toBe("rgba(0, 0, 0, 0.87)");
    const onDark = ensureContrast("rgba(0, 0, 0, 0.87)", "#111111"); // the bug: near-black on #111
    expect(textContrast(onDark, "#111111")).toBeGreaterThanOrEqual(MIN_CONTRAST);
    expect(luminance(parseColor(onDark))).toBeGreaterThan(0.15);
    const onLight = ensureContrast("#ffeb3b", "#ffffff");
    expect(textContrast(onLight, "#ffffff")).toBeGreaterThanOrEqual(MIN_CONTRAST);
    // The least change that reads: not pushed all the way to black.
    expect(textContrast(onLight, "#ffffff")).toBeLessThan(5);
    expect(ensureContrast("not a colour", "#fff")).toBe("not a colour");
    expect(readableOn("#1976d2", ["#ffffff"])).toBe("#ffffff");
    expect(readableOn("#ffeb3b", ["#ffffff"])).toBe("#000000");
  });

  const LIGHT = {}; // JupyterLab Light: the fallbacks are its values
  const DARK = { // JupyterLab Dark (theme-dark-extension/index.css)
    "--jp-layout-color0": "#111", "--jp-ui-font-color1": "rgba(255,255,255,.87)",
    "--jp-ui-font-color2": "rgba(255,255,255,.54)", "--jp-border-color1": "#616161", "--jp-brand-color1": "#2196f3",
    "--jp-warn-color1": "#ff9800", "--jp-error-color1": "#f44336",
  };
  it.each([["light", LIGHT, true], ["dark", DARK, false]])("gives %s themes readable text", (_, vars, themeLight) => {
    const theme = themeFrom((name) => vars[name] ?? "", { themeLight });
    for (const key of ["foreground", "muted", "accent", "error"]) {
      expect(textContrast(theme[key], theme.background), key).toBeGreaterThanOrEqual(MIN_CONTRAST);
    }
    expect(textContrast(theme.onAccent, theme.accent)).toBeGreaterThanOrEqual(MIN_CONTRAST);
    expect(theme.isDark).toBe(!themeLight);
    expect(theme.name).toBe(themeLight ? "light" : "dark");
  });

  it("makes a theme whose muted text is too faint readable, and names JupyterLab's theme", () => {
    const vars = { "--jp-layout-color0": "#ffffff", "--jp-ui-font-color2": "rgba(0,0,0,0.3)" };
    const theme = themeFrom((name) => vars[name] ?? "", { themeLight: true, name: "My Theme" });
    expect(textContrast(theme.muted, "#ffffff")).toBeGreaterThanOrEqual(MIN_CONTRAST);
    expect(theme.name).toBe("My Theme");
    expect(sameTheme(theme, themeFrom((name) => vars[name] ?? "", { themeLight: true, name: "My Theme" }))).toBe(true);
    expect(sameTheme(theme, themeFrom(() => ""))).toBe(false);
  });

  it("resolves colours it cannot parse through the browser's parser", () => {
    const vars = { "--jp-layout-color0": "hsl(0, 0%, 7%)" };
    const theme = themeFrom((name) => vars[name] ?? "", { resolve: () => "#121212" });
    expect(theme.background).toBe("#121212");
    expect(theme.isDark).toBe(true);
  });
});
