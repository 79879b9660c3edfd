import { describe, expect, it } from "vitest";
import { gridKey, keepKeys, matrixKey, windowShowing } from "../src/keyboard.js";

describe("grid keys", () => {
  const dims = { layers: 3, heads: 4 };

  it("moves the head with left/right and the layer with up/down", () => {
    expect(gridKey("ArrowRight", { layer: 1, head: 1, ...dims })).toEqual({ layer: 1, head: 2 });
    expect(gridKey("ArrowLeft", { layer: 1, head: 1, ...dims })).toEqual({ layer: 1, head: 0 });
    expect(gridKey("ArrowDown", { layer: 1, head: 1, ...dims })).toEqual({ layer: 2, head: 1 });
    expect(gridKey("ArrowUp", { layer: 1, head: 1, ...dims })).toEqual({ layer: 0, head: 1 });
  });

  it("reaches the mean column (head null) right of the last head, and leaves it to the left", () => {
    expect(gridKey("ArrowRight", { layer: 0, head: 3, ...dims })).toEqual({ layer: 0, head: null });
    expect(gridKey("ArrowRight", { layer: 0, head: null, ...dims })).toEqual({ layer: 0, head: null });
    expect(gridKey("ArrowLeft", { layer: 0, head: null, ...dims })).toEqual({ layer: 0, head: 3 });
    expect(gridKey("ArrowDown", { layer: 0, head: null, ...dims })).toEqual({ layer: 1, head: null });
  });

  it("stops at the edges and jumps with Home/End/PageUp/PageDown", () => {
    expect(gridKey("ArrowLeft", { layer: 0, head: 0, ...dims })).toEqual({ layer: 0, head: 0 });
    expect(gridKey("ArrowUp", { layer: 0, head: 2, ...dims })).toEqual({ layer: 0, head: 2 });
    expect(gridKey("ArrowDown", { layer: 2, head: 2, ...dims })).toEqual({ layer: 2, head: 2 });
    expect(gridKey("Home", { layer: 2, head: 2, ...dims })).toEqual({ layer: 2, head: 0 });
    expect(gridKey("End", { layer: 2, head: 2, ...dims })).toEqual({ layer: 2, head: null });
    expect(gridKey("PageUp", { layer: 2, head: 2, ...dims })).toEqual({ layer: 0, head: 2 });
    expect(gridKey("PageDown", { layer: 0, head: null, ...dims })).toEqual({ layer: 2, head: null });
  });

  it("ignores other keys and an empty grid", () => {
    expect(gridKey("a", { layer: 0, head: 0, ...dims })).toBe(null);
    expect(gridKey("Tab", { layer: 0, head: 0, ...dims })).toBe(null);
    expect(gridKey("ArrowRight", { layer: 0, head: 0, layers: 0, heads: 4 })).toBe(null);
  });
});

describe("heatmap keys", () => {
  const size = { rows: 5, cols: 7, page: 3 };

  it("shows the cursor at the start cell first, then moves it", () => {
    expect(matrixKey("ArrowDown", null, { ...size, start: { row: 2, col: 2 } })).toEqual({ action: "move", row: 2, col: 2 });
    expect(matrixKey("ArrowDown", { row: 2, col: 2 }, size)).toEqual({ action: "move", row: 3, col: 2 });
    expect(matrixKey("ArrowRight", { row: 2, col: 2 }, size)).toEqual({ action: "move", row: 2, col: 3 });
    expect(matrixKey("ArrowLeft", { row: 2, col: 0 }, size)).toEqual({ action: "move", row: 2, col: 0 });
    expect(matrixKey("ArrowDown", { row: 4, col: 6 }, size)).toEqual({ action: "move", row: 4, col: 6 });
  });

  it("clamps a start outside the matrix (a hovered token beyond the keys of a rectangle)", () => {
    expect(matrixKey("ArrowUp", null, { ...size, start: { row: 9, col: 9 } })).toEqual({ action: "move", row: 4, col: 6 });
  });

  it("jumps with Home/End and pages", () => {
    expect(matrixKey("Home", { row: 1, col: 4 }, size)).toEqual({ action: "move", row: 1, col: 0 });
    expect(matrixKey("End", { row: 1, col: 4 }, size)).toEqual({ action: "move", row: 1, col: 6 });
    expect(matrixKey("PageDown", { row: 1, col: 4 }, size)).toEqual({ action: "move", row: 4, col: 4 });
    expect(matrixKey("PageUp", { row: 1, col: 4 }, size)).toEqual({ action: "move", row: 0, col: 4 });
  });

  it("selects with Enter or Space only where there is a cursor, and clears with Escape", () => {
    expect(matrixKey("Enter", { row: 1, col: 1 }, size)).toEqual({ action: "select" });
    expect(matrixKey(" ", { row: 1, col: 1 }, size)).toEqual({ action: "select" });
    expect(matrixKey("Enter", null, size)).toBe(null);
    expect(matrixKey("Escape", null, size)).toEqual({ action: "clear" });
    expect(matrixKey("x", { row: 1, col: 1 }, size)).toBe(null);
  });

  it("pans a zoomed window just enough to show the cursor", () => {
    const win = { row0: 10, col0: 20, rows: 5, cols: 5 };
    expect(windowShowing(win, 12, 22)).toBe(win);
    expect(windowShowing(win, 15, 22)).toEqual({ ...win, row0: 11 });
    expect(windowShowing(win, 9, 26)).toEqual({ ...win, row0: 9, col0: 22 });
  });
});

describe("keys stay in the widget", () => {
  it("stops keydown, keypress and keyup at the root without preventing their default", () => {
    const added = [];
    const listeners = { on: (target, type, handler) => added.push([type, handler]) };
    keepKeys(listeners, {});
    expect(added.map(([type]) => type)).toEqual(["keydown", "keypress", "keyup"]);
    let stopped = 0;
    let prevented = 0;
    const event = { stopPropagation: () => { stopped += 1; }, preventDefault: () => { prevented += 1; } };
    for (const [, handler] of added) handler(event);
    expect([stopped, prevented]).toEqual([3, 0]); // a slider still gets its arrows
  });
});
