import { describe, expect, it } from "vitest";
import {
  compareGrids, compareHeatmaps, describeHover, differenceData, divergingLUT, divergingScale, formatSigned, nextRow,
  pairFor, partnersOf, quoted, sharedScale, toggleSelection,
} from "../src/views/compare_model.js";

const wire = (typed, shape) => ({ buffer: new Uint8Array(typed.buffer), dtype: typed instanceof Float32Array ? "float32" : "uint8", shape });
const half = (values, shape) => {
  // float16 bits of a few exact values (0, 0.5, 0.25, 1)
  const bits = { 0: 0x0000, 0.5: 0x3800, 0.25: 0x3400, 1: 0x3c00 };
  const u16 = Uint16Array.from(values, (v) => bits[v]);
  return { buffer: new Uint8Array(u16.buffer), dtype: "float16", shape };
};

describe("compareHeatmaps", () => {
  it("decodes every panel's tile and the shared maxima", () => {
    const value = {
      panels: [
        { matrix: half([1, 0, 0.5, 0.5], [2, 2]), row0: 0, col0: 0, n_rows: 2, n_cols: 2, name: "a" },
        { matrix: half([1, 0, 0.25, 0.5], [2, 2]), n_rows: 2, n_cols: 2, name: "b" },
      ],
      max: 1, max_no_sink: 0.5, title: "layer 3, head 1", layer: 3, head: 1,
    };
    const out = compareHeatmaps(value);
    expect(out.panels.map((p) => p.name)).toEqual(["a", "b"]);
    expect(Array.from(out.panels[1].matrix.data)).toEqual([1, 0, 0.25, 0.5]);
    expect(out.panels[0].title).toBe("layer 3, head 1");
    expect([out.max, out.maxNoSink, out.layer, out.head]).toEqual([1, 0.5, 3, 1]);
  });

  it("gives null without panels and names a broken tile", () => {
    expect(compareHeatmaps({})).toBeNull();
    expect(compareHeatmaps(null)).toBeNull();
    expect(() => compareHeatmaps({ panels: [{ name: "a" }] })).toThrow(/panels\[0\]/);
  });
});

describe("differenceData", () => {
  it("decodes b - a with its pair and magnitudes", () => {
    const out = differenceData({ matrix: wire(new Float32Array([0, -0.25, 0.5, 0]), [2, 2]), a: "x", b: "y",
      max_abs: 0.5, max_abs_no_sink: 0.25, n_rows: 2, n_cols: 2, title: "y − x" });
    expect(Array.from(out.matrix.data)).toEqual([0, -0.25, 0.5, 0]);
    expect([out.a, out.b, out.maxAbs, out.maxAbsNoSink, out.title]).toEqual(["x", "y", 0.5, 0.25, "y − x"]);
  });

  it("is null when the kernel draws none", () => {
    expect(differenceData({})).toBeNull();
  });
});

describe("compareGrids", () => {
  it("decodes each panel's grid", () => {
    const thumbs = wire(new Uint8Array(2 * 3 * 2 * 2), [2, 3, 2, 2]);
    const grids = compareGrids([{ thumbs, layer_mean: wire(new Uint8Array(8), [2, 2, 2]), size: 2 }, {}]);
    expect(grids[0].thumbs.shape).toEqual([2, 3, 2, 2]);
    expect(grids[1]).toBeNull();
    expect(compareGrids(undefined)).toEqual([]);
  });
});

describe("scales", () => {
  const heatmaps = { max: 0.8, maxNoSink: 0.2 };

  it("shares one maximum across the panels, without the sink for no_sink", () => {
    expect(sharedScale("linear", heatmaps).max).toBe(0.8);
    expect(sharedScale("linear", heatmaps).t(0.4)).toBeCloseTo(0.5);
    expect(sharedScale("no_sink", heatmaps).max).toBe(0.2);
    expect(sharedScale("no_sink", heatmaps).t(0.8)).toBe(1);
    expect(sharedScale("log", heatmaps).t(0.8)).toBe(1);
    expect(sharedScale("linear", null).max).toBe(0);
  });

  it("maps differences symmetrically around the middle", () => {
    const s = divergingScale(0.5);
    expect(s.t(0)).toBe(0.5);
    expect(s.t(-0.5)).toBe(0);
    expect(s.t(0.25)).toBeCloseTo(0.75);
    expect(s.t(2)).toBe(1);
    expect(s.ticks.map((t) => t.value)).toEqual([-0.5, 0, 0.5]);
    expect(divergingScale(0).t(0.3)).toBe(0.5);
  });

  it("has a diverging map: blue below, red above, a neutral middle that fits the theme", () => {
    for (const dark of [false, true]) {
      const lut = divergingLUT(dark);
      expect(lut.length).toBe(1024);
      const at = (i) => Array.from(lut.slice(i * 4, i * 4 + 3));
      const [r0, , b0] = at(10);
      const [r1, , b1] = at(245);
      expect(b0).toBeGreaterThan(r0);
      expect(r1).toBeGreaterThan(b1);
      const middle = at(128);
      const spread = Math.max(...middle) - Math.min(...middle);
      expect(spread).toBeLessThan(30); // grey: neither blue nor red
      const brightness = middle.reduce((a, b) => a + b, 0) / 3;
      expect(dark ? brightness < 60 : brightness > 220).toBe(true);
    }
  });

  it("labels signed ticks", () => {
    expect(formatSigned(0)).toBe("0");
    expect(formatSigned(0.25)).toBe("+0.25");
    expect(formatSigned(-0.25)).toBe("-0.25");
    expect(formatSigned(-0.00003)).toBe("-3e-5");
  });
});

describe("pairs", () => {
  const names = ["a", "b", "c", "d"];
  const tokens = [["x", "y"], ["x", "z"], ["x"], ["p", "q"]];

  it("lists the panels with as many tokens", () => {
    expect(partnersOf("a", names, tokens)).toEqual(["b", "d"]);
    expect(partnersOf("c", names, tokens)).toEqual([]);
    expect(partnersOf("zz", names, tokens)).toEqual([]);
    const keys = [["k"], ["k", "l"], ["x"], ["p"]];
    expect(partnersOf("a", names, tokens, keys)).toEqual(["d"]);
  });

  it("keeps the other panel when it still fits", () => {
    expect(pairFor("d", "b", names, tokens)).toEqual(["d", "b"]);
    expect(pairFor("d", "c", names, tokens)).toEqual(["d", "a"]);
    expect(pairFor("c", "a", names, tokens)).toBeNull();
    expect(pairFor(null, "a", names, tokens)).toBeNull();
  });
});

describe("keyboard and selection", () => {
  it("moves the query row", () => {
    expect(nextRow("ArrowDown", null, 5)).toBe(0);
    expect(nextRow("ArrowDown", 4, 5)).toBe(4);
    expect(nextRow("ArrowUp", null, 5)).toBe(4);
    expect(nextRow("ArrowUp", 0, 5)).toBe(0);
    expect(nextRow("PageDown", 1, 30)).toBe(11);
    expect(nextRow("PageUp", 5, 30)).toBe(0);
    expect(nextRow("Home", 3, 5)).toBe(0);
    expect(nextRow("End", 3, 5)).toBe(4);
    expect(nextRow("x", 3, 5)).toBeUndefined();
    expect(nextRow("ArrowDown", null, 0)).toBeUndefined();
  });

  it("toggles a clicked row", () => {
    expect(toggleSelection({ panel: null, token: null }, "a", 2)).toEqual({ panel: "a", token: 2 });
    expect(toggleSelection({ panel: "a", token: 2 }, "a", 2)).toEqual({ panel: null, token: null });
    expect(toggleSelection({ panel: "a", token: 2 }, "b", 2)).toEqual({ panel: "b", token: 2 });
  });
});

describe("describeHover", () => {
  const names = ["en", "zh"];
  const tokens = [["The", " cat", "\n"], ["猫", "坐"]];

  it("names the panel, the row and its token, and the same row elsewhere", () => {
    expect(describeHover(names, tokens, "en", 1)).toBe("en · query 1 “ cat” · same row in zh “坐”");
    expect(describeHover(names, tokens, "en", 2)).toBe("en · query 2 “↵”");
    expect(describeHover(names, tokens, null, 1)).toBe("row 1: en “ cat” · zh “坐”");
    expect(describeHover(names, tokens, null, 2)).toBe("row 2: en “↵” · zh -");
    expect(describeHover(names, tokens, "en", null)).toBe("");
  });

  it("keeps markup as text and shortens long tokens", () => {
    expect(quoted("<img src=x onerror=alert(1)>", 40)).toBe("“<img src=x onerror=alert(1)>”");
    expect(quoted("a".repeat(30), 10)).toBe(`“${"a".repeat(9)}…”`);
  });
});
