import { describe, expect, it } from "vitest";
import * as layout from "../src/layout.js";
import {
  binMax, cellOrigin, clampWindow, fitPositions, gridCellSize, gridLayout, hitGrid, hitMatrix, isPlaced, labelIndices,
  matrixLayout, nearestPoint, panWindow, placedIndices, rowAt, thinStep, tileIndex, truncateLabel, visibleText, zoomWindow,
} from "../src/layout.js";

describe("grid hit test", () => {
  const grid = gridLayout({ layers: 3, heads: 4, cell: 20, gap: 4, left: 30, top: 10 });

  it("finds layer and head at cell centres, null for the mean column head", () => {
    expect(hitGrid(grid, 30 + 10, 10 + 10)).toEqual({ layer: 0, head: 0 });
    expect(hitGrid(grid, grid.columnX(3) + 19, grid.rowY(2) + 19)).toEqual({ layer: 2, head: 3 });
    expect(hitGrid(grid, grid.columnX(4) + 5, grid.rowY(1) + 5)).toEqual({ layer: 1, head: null });
  });

  it("misses gaps and margins", () => {
    expect(hitGrid(grid, 30 + 21, 15)).toBe(null); // gap between head 0 and 1
    expect(hitGrid(grid, 5, 15)).toBe(null);
    expect(hitGrid(grid, 40, 10 + 3 * 24 + 1)).toBe(null);
    expect(grid.width).toBe(grid.columnX(4) + 20);
  });
});

describe("grid cell size", () => {
  const box = { maxWidth: 420, maxHeight: 500, gap: 3, left: 30, top: 18 };

  it("is limited by the width for shallow models and by the height for deep ones", () => {
    expect(gridCellSize({ ...box, layers: 3, heads: 4 })).toBe(56); // clamped to max
    expect(gridCellSize({ ...box, layers: 12, heads: 12 })).toBe(26); // width-bound
    const deep = gridCellSize({ ...box, layers: 30, heads: 9 }); // SmolLM2-135M: 30 x 9
    expect(deep).toBe(13);
    const grid = gridLayout({ layers: 30, heads: 9, cell: deep, gap: 3, left: 30, top: 18 });
    expect(grid.height).toBeLessThanOrEqual(500);
    expect(grid.width).toBeLessThanOrEqual(420);
  });

  it("never goes below the minimum", () => {
    expect(gridCellSize({ ...box, layers: 96, heads: 64 })).toBe(10);
  });
});

describe("matrix window", () => {
  const total = { rows: 100, cols: 100 };

  it("maps pixels to tokens and back", () => {
    const view = { row0: 10, col0: 20, rows: 10, cols: 40 };
    const plot = matrixLayout({ left: 50, top: 40, width: 400, height: 200, view });
    expect(hitMatrix(plot, 50, 40)).toMatchObject({ row: 10, col: 20 });
    expect(hitMatrix(plot, 50 + 10 * 5 + 5, 40 + 20 * 3 + 1)).toMatchObject({ row: 13, col: 25 });
    expect(hitMatrix(plot, 49, 40)).toBe(null);
    expect(hitMatrix(plot, 450, 40)).toBe(null);
    expect(cellOrigin(plot, 13, 25)).toEqual({ x: 100, y: 100 });
  });

  it("zooms around the anchor and clamps", () => {
    const full = { row0: 0, col0: 0, rows: 100, cols: 100 };
    const zoomed = zoomWindow(full, 0.5, { row: 50, col: 50 }, total);
    expect(zoomed).toEqual({ row0: 25, col0: 25, rows: 50, cols: 50 });
    const corner = zoomWindow(full, 0.5, { row: 0, col: 100 }, total);
    expect(corner).toEqual({ row0: 0, col0: 50, rows: 50, cols: 50 });
    expect(zoomWindow(zoomed, 10, { row: 50, col: 50 }, total)).toEqual(full);
    expect(zoomWindow(full, 0.001, { row: 3, col: 3 }, total, 4).rows).toBe(4);
  });

  it("keeps the anchor token under the pointer", () => {
    const win = { row0: 0, col0: 0, rows: 100, cols: 100 };
    const anchor = { row: 30, col: 70 };
    const zoomed = zoomWindow(win, 0.5, anchor, total);
    expect((anchor.row - zoomed.row0) / zoomed.rows).toBeCloseTo(0.3, 1);
    expect((anchor.col - zoomed.col0) / zoomed.cols).toBeCloseTo(0.7, 1);
  });

  it("pans and clamps", () => {
    const win = { row0: 10, col0: 10, rows: 20, cols: 20 };
    expect(panWindow(win, 5, -3, total)).toEqual({ row0: 15, col0: 7, rows: 20, cols: 20 });
    expect(panWindow(win, -50, 500, total)).toEqual({ row0: 0, col0: 80, rows: 20, cols: 20 });
    expect(clampWindow({ row0: -3, col0: 0, rows: 500, cols: 0 }, total)).toEqual({ row0: 0, col0: 0, rows: 100, cols: 1 });
  });

  it("indexes pooled tiles", () => {
    const tile = { row0: 8, col0: 0, n_rows: 8, n_cols: 16, shape: [4, 4] };
    expect(tileIndex(tile, 8, 0)).toBe(0);
    expect(tileIndex(tile, 15, 15)).toBe(15);
    expect(tileIndex(tile, 10, 4)).toBe(5);
    expect(tileIndex(tile, 7, 0)).toBe(-1);
    expect(tileIndex(tile, 8, 16)).toBe(-1);
  });
});

describe("labels and lists", () => {
  it("thins labels with nice steps", () => {
    expect(thinStep(14, 12)).toBe(1);
    expect(thinStep(5, 12)).toBe(5);
    expect(thinStep(1, 12)).toBe(20);
    expect(thinStep(0.05, 12)).toBe(500);
    expect(labelIndices(3, 25, 5)).toEqual([5, 10, 15, 20]);
    expect(labelIndices(0, 3, 1)).toEqual([0, 1, 2]);
  });

  it("truncates and shows whitespace", () => {
    expect(truncateLabel("hello", 12)).toBe("hello");
    expect(truncateLabel("a very long token indeed", 8)).toBe("a very …");
    expect(truncateLabel("a\nb")).toBe("a↵b");
  });

  it("finds rows", () => {
    expect(rowAt(25, 20, 10, 3)).toBe(0);
    expect(rowAt(49.9, 20, 10, 3)).toBe(2);
    expect(rowAt(50, 20, 10, 3)).toBe(null);
    expect(rowAt(10, 20, 10, 3)).toBe(null);
  });
});

describe("pooling and points", () => {
  it("max-pools into bins", () => {
    expect(Array.from(binMax([1, 5, 2, 0, 3, 3], 3))).toEqual([5, 2, 3]);
    expect(Array.from(binMax([1, 2], 10))).toEqual([1, 2]);
  });

  it("fits [-1, 1] positions into a box with y up", () => {
    const points = fitPositions(new Float32Array([-1, -1, 1, 1, 0, 0]), 220, 120, 10);
    expect(Array.from(points)).toEqual([10, 110, 210, 10, 110, 60]);
    expect(nearestPoint(points, 108, 62, 5)).toBe(2);
    expect(nearestPoint(points, 150, 62, 5)).toBe(null);
  });

  it("keeps NaN positions (tokens outside the graph window) unplaced and never hits them", () => {
    // Tokens 0 and 2 lie outside the window: the kernel sends NaN for them.
    const pos = new Float32Array([NaN, NaN, 0, 0, NaN, 0.5, 1, 1]);
    const points = fitPositions(pos, 220, 120, 10);
    expect(Number.isNaN(points[0]) && Number.isNaN(points[1]) && Number.isNaN(points[4])).toBe(true);
    expect(placedIndices(points)).toEqual([1, 3]);
    expect(isPlaced(points, 0)).toBe(false);
    expect(isPlaced(points, 2)).toBe(false);
    expect(isPlaced(points, 1)).toBe(true);
    // A huge radius still finds only placed points; with nothing placed there is no hit.
    expect(nearestPoint(points, 0, 0, 1e6)).toBe(1);
    expect(nearestPoint(points, 200, 15, 1e6)).toBe(3);
    expect(nearestPoint(new Float32Array([NaN, NaN, NaN, NaN]), 0, 0, 1e6)).toBe(null);
    expect(placedIndices(new Float32Array([Infinity, 0]))).toEqual([]);
  });
});

describe("visible text", () => {
  it("shows control whitespace and keeps everything else literal", () => {
    expect(visibleText("\n")).toBe("↵");
    expect(visibleText("a\tb\r")).toBe("a⇥b␍");
    expect(visibleText("<img src=x>")).toBe("<img src=x>");
    expect(visibleText(null)).toBe("");
  });
});

describe("matrix plot size", () => {
  it("is square for self-attention and keeps square cells for a rectangle", () => {
    const { matrixSize } = layout;
    expect(matrixSize(12, 12, 420)).toEqual({ width: 420, height: 420 });
    expect(matrixSize(6, 8, 420)).toEqual({ width: 420, height: 315 });
    expect(matrixSize(8, 6, 420)).toEqual({ width: 315, height: 420 });
    expect(matrixSize(1, 300, 420)).toEqual({ width: 420, height: 96 }); // flat: a readable band
    expect(matrixSize(1, 300, 60)).toEqual({ width: 60, height: 60 });
  });
});

describe("the widget's layout", () => {
  const { fitSize, gridBudget, layoutWidth, planLayout, viewSizeOptions, WIDGET_LAYOUT } = layout;

  it("fills the width up to the cap, in steps, with a fallback while detached", () => {
    expect(layoutWidth(600)).toBe(600);
    expect(layoutWidth(1187)).toBe(1184);
    expect(layoutWidth(1900)).toBe(WIDGET_LAYOUT.cap);
    expect(layoutWidth(0)).toBe(WIDGET_LAYOUT.fallback);
  });

  it("puts the view beside the grid while it keeps its minimum width, else under it", () => {
    const wide = planLayout(1184, 300);
    expect(wide).toMatchObject({ width: 1184, wrap: false, viewWidth: 1184 - 300 - WIDGET_LAYOUT.gap });
    expect(wide.viewHeight).toBe(WIDGET_LAYOUT.maxViewHeight);
    const narrow = planLayout(600, 240);
    expect(narrow).toMatchObject({ wrap: true, viewWidth: 600, viewHeight: 600 });
    // The breakpoint: the view's minimum width beside the grid.
    expect(planLayout(300 + 16 + WIDGET_LAYOUT.minView, 300).wrap).toBe(false);
    expect(planLayout(300 + 16 + WIDGET_LAYOUT.minView - 1, 300).wrap).toBe(true);
    expect(planLayout(320, 300).viewHeight).toBe(WIDGET_LAYOUT.minViewHeight);
  });

  it("gives the grid 40% beside the view and a whole row (up to 640) under it", () => {
    expect(gridBudget(1400)).toEqual({ maxWidth: 560, maxHeight: 600 });
    expect(gridBudget(1000)).toEqual({ maxWidth: 400, maxHeight: 600 });
    expect(gridBudget(800)).toEqual({ maxWidth: 320, maxHeight: 480 });
    expect(gridBudget(600)).toEqual({ maxWidth: 240, maxHeight: 360 });
    expect(gridBudget(600, { wrapped: true }).maxWidth).toBe(600);
    expect(gridBudget(1000, { wrapped: true }).maxWidth).toBe(640);
    expect(gridBudget(150).maxWidth).toBe(150);
  });

  it("sizes every view for the same box", () => {
    const box = { viewWidth: 700, viewHeight: 600 };
    expect(viewSizeOptions("text", box)).toEqual({ width: 700, height: 600 });
    expect(viewSizeOptions("graph", box)).toEqual({ size: 600 });
    expect(viewSizeOptions("rollout", box)).toEqual({ width: 700, height: 360 });
    expect(viewSizeOptions("lines", box)).toEqual({ width: 700, maxHeight: 600 });
    expect(viewSizeOptions("lines", { viewWidth: 1200, viewHeight: 600 }).width).toBe(720);
    expect(viewSizeOptions("heatmap", box).size).toBeLessThan(700);
  });

  it("corrects a view's size by the room its box leaves or lacks", () => {
    const box = { viewWidth: 700, viewHeight: 600 };
    expect(fitSize(480, { width: 650, height: 560 }, box)).toBe(520); // 40 px left on the tighter side
    expect(fitSize(480, { width: 760, height: 560 }, box)).toBe(420); // 60 px too wide
    expect(fitSize(480, { width: 698, height: 590 }, box)).toBe(null); // fits within the slack
    expect(fitSize(96, { width: 900, height: 900 }, box)).toBe(null); // already the minimum
  });
});
