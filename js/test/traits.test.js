import { describe, expect, it } from "vitest";
import {
  gridData, heatmapData, imageData, linesData, pictureData, rolloutData, tileData, toggleToken,
} from "../src/traits.js";

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

  it("keeps a rectangle's extents (cross-attention: target rows over source keys)", () => {
    const data = heatmapData({ matrix: wire(new Uint8Array(48), "uint8", [6, 8]), n_rows: 6, n_cols: 8,
      n_queries: 6, n_keys: 8 });
    expect(data).toMatchObject({ n_rows: 6, n_cols: 8, n_queries: 6, n_keys: 8 });
    expect(heatmapData({ matrix: wire(new Uint8Array(4), "uint8", [2, 2]) }).n_keys).toBe(null);
    const grid = gridData({ thumbs: wire(new Uint8Array(2 * 3 * 4), "uint8", [1, 2, 3, 4]) });
    expect(grid.thumbs.shape).toEqual([1, 2, 3, 4]);
  });

  it("decodes the picture and the image view's rows", () => {
    expect(pictureData({})).toBe(null);
    const picture = pictureData({ picture: wire(new Uint8Array(2 * 3 * 3), "uint8", [2, 3, 3]), grid: [1, 3],
      patch_start: 1 });
    expect(picture.picture.shape).toEqual([2, 3, 3]);
    expect(picture).toMatchObject({ grid: [1, 3], patchStart: 1 });
    expect(() => pictureData({ picture: wire(new Uint8Array(4), "uint8", [2, 2]), grid: [1, 1] })).toThrow(/\[H, W, 3\]/);
    expect(() => pictureData({ picture: wire(new Uint8Array(3), "uint8", [1, 1, 3]), grid: [0, 1] })).toThrow(/rows, cols/);
    expect(imageData({ token: null })).toBe(null);
    const row = imageData({ token: 4, values: wire(new Float32Array(6), "float32", [2, 3]),
      others: wire(new Float32Array([0.5]), "float32", [1]), note: "n" });
    expect(row.values.shape).toEqual([2, 3]);
    expect(Array.from(row.others.data)).toEqual([0.5]);
    expect(row).toMatchObject({ token: 4, source: "attention", note: "n" });
    expect(imageData({ token: 2, note: "no flow" }).values).toBe(null);
    expect(() => imageData({ token: 1, values: wire(new Float32Array(3), "float32", [3]) })).toThrow(/rows, cols/);
  });
});
