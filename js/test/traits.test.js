import { describe, expect, it } from "vitest";
import { gridData, heatmapData, linesData, rolloutData, tileData, toggleToken } from "../src/traits.js";

const wire = (typed, dtype, shape) => ({ buffer: new DataView(typed.buffer), dtype, shape });

describe("trait values to view data", () => {
  it("returns null for empty traits", () => {
    for (const convert of [gridData, heatmapData, linesData, rolloutData]) {
      expect(convert(null)).toBe(null);
      expect(convert({})).toBe(null);
    }
  });

  it("fills heatmap defaults from the matrix shape", () => {
    const data = heatmapData({ matrix: wire(new Uint8Array(6), "uint8", [2, 3]) });
    expect(data).toMatchObject({ row0: 0, col0: 0, n_rows: 2, n_cols: 3 });
  });

  it("checks grid thumbs", () => {
    expect(() => gridData({ thumbs: wire(new Uint8Array(4), "uint8", [2, 2]) })).toThrow(/uint8 \[L, H, s, s\]/);
    const data = gridData({ thumbs: wire(new Uint8Array(16), "uint8", [1, 1, 4, 4]), size: 4 });
    expect(data.layer_mean).toBe(null);
    expect(data.size).toBe(4);
  });

  it("normalises lines data", () => {
    const data = linesData({ weights: wire(new Float32Array(3), "float32", [3]), token: 1, direction: "sideways" });
    expect(data.weights.shape).toEqual([1, 3]);
    expect(data.direction).toBe("from");
    expect(data.heads).toEqual([]);
  });

  it("decodes tile messages with their buffer", () => {
    const data = tileData({ type: "tile", row0: 4, col0: 2, n_rows: 8, n_cols: 8, dtype: "uint8", shape: [2, 2] },
      [new DataView(new Uint8Array([1, 2, 3, 4]).buffer)]);
    expect(Array.from(data.matrix.data)).toEqual([1, 2, 3, 4]);
    expect(data.row0).toBe(4);
    expect(() => tileData({ dtype: "uint8", shape: [1] }, [])).toThrow(/without a binary buffer/);
  });

  it("toggles selected tokens", () => {
    expect(toggleToken([3, 1], 2)).toEqual([1, 2, 3]);
    expect(toggleToken([1, 2], 2)).toEqual([1]);
    expect(toggleToken(null, 0)).toEqual([0]);
  });
});
