import { describe, expect, it } from "vitest";
import { fitImage, movePatch, otherTokens, patchAt, patchRect, patchToken, tokenPatch } from "../src/patches.js";

describe("the picture in its box", () => {
  it("keeps the aspect ratio and centres the picture", () => {
    const fit = fitImage(64, 48, { left: 10, top: 20, width: 320, height: 320 });
    expect(fit).toEqual({ left: 10, top: 20 + 40, width: 320, height: 240, scale: 5 });
    const tall = fitImage(100, 200, { left: 0, top: 0, width: 300, height: 300 });
    expect(tall).toMatchObject({ left: 75, top: 0, width: 150, height: 300 });
  });
});

describe("pointer -> patch -> token", () => {
  const fit = fitImage(64, 48, { left: 0, top: 0, width: 320, height: 240 }); // 80 x 80 px patches
  const grid = [3, 4];

  it("finds the patch under the pointer and its token", () => {
    expect(patchAt(fit, grid, 1, 1)).toEqual({ r: 0, c: 0 });
    expect(patchAt(fit, grid, 2 * 80 + 40, 1 * 80 + 40)).toEqual({ r: 1, c: 2 });
    expect(patchAt(fit, grid, 319.9, 239.9)).toEqual({ r: 2, c: 3 });
    const { r, c } = patchAt(fit, grid, 170, 90);
    expect(patchToken(1, grid, r, c)).toBe(1 + 1 * 4 + 2); // after [CLS]
  });

  it("misses outside the picture (the letterbox, the colour bar)", () => {
    expect(patchAt(fit, grid, -1, 10)).toBe(null);
    expect(patchAt(fit, grid, 320, 10)).toBe(null);
    expect(patchAt(fit, grid, 10, 240)).toBe(null);
    const boxed = fitImage(64, 48, { left: 0, top: 0, width: 320, height: 320 });
    expect(patchAt(boxed, grid, 100, 20)).toBe(null); // above the picture
  });

  it("goes back from a token to its patch and rectangle", () => {
    expect(tokenPatch(1, grid, 7)).toEqual({ r: 1, c: 2 });
    expect(tokenPatch(1, grid, 0)).toBe(null); // [CLS]
    expect(tokenPatch(1, grid, 13)).toBe(null); // past the grid
    expect(tokenPatch(1, grid, null)).toBe(null);
    expect(patchRect(fit, grid, 1, 2)).toEqual({ x: 160, y: 80, width: 80, height: 80 });
  });

  it("lists the tokens that are not patches", () => {
    expect(otherTokens(1, grid, 13)).toEqual([0]);
    expect(otherTokens(3, [2, 2], 9)).toEqual([0, 1, 2, 7, 8]);
  });
});

describe("keyboard moves", () => {
  const grid = [3, 4];
  it("moves one patch per arrow, clamped at the edges", () => {
    expect(movePatch({ r: 1, c: 1 }, "ArrowRight", grid)).toEqual({ r: 1, c: 2 });
    expect(movePatch({ r: 1, c: 1 }, "ArrowUp", grid)).toEqual({ r: 0, c: 1 });
    expect(movePatch({ r: 0, c: 0 }, "ArrowLeft", grid)).toEqual({ r: 0, c: 0 });
    expect(movePatch({ r: 2, c: 3 }, "ArrowDown", grid)).toEqual({ r: 2, c: 3 });
    expect(movePatch(null, "ArrowDown", grid)).toEqual({ r: 0, c: 0 });
    expect(movePatch({ r: 1, c: 1 }, "End", grid)).toEqual({ r: 2, c: 3 });
    expect(movePatch({ r: 1, c: 1 }, "Home", grid)).toEqual({ r: 0, c: 0 });
    expect(movePatch({ r: 1, c: 1 }, "a", grid)).toBe(null);
  });
});
