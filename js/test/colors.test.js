import { describe, expect, it } from "vitest";
import { headColor, luminance, lutColor, lutIndex, makeLUT, parseColor, themeFrom, withAlpha } from "../src/colors.js";

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

  it.each(["magma", "viridis"])("%s luminance is monotonic", (name) => {
    const lut = makeLUT(name);
    let previous = -1;
    for (let i = 0; i < 256; i++) {
      const l = luminance(rgbAt(lut, i));
      expect(l).toBeGreaterThanOrEqual(previous);
      previous = l;
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
  });
});
