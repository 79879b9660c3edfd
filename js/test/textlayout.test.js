import { describe, expect, it } from "vitest";
import {
  layoutTokens, lineTokens, minimapGrid, minimapScale, minimapScroll, scrollToLine, tokenAt, tokenBox,
  visibleLines, visibleTokens,
} from "../src/textlayout.js";

// 10 px per visible character: easy arithmetic.
const measure = (text) => text.length * 10;
const lay = (texts, options = {}) => layoutTokens(texts, measure, { width: 100, lineHeight: 20, ...options });
const lineOf = (layout) => Array.from(layout.line);
const xOf = (layout) => Array.from(layout.x);

describe("paragraph wrapping", () => {
  it("fills lines left to right and wraps a token that does not fit", () => {
    const layout = lay(["The", " cat", " sat", " on"], { gap: 1 });
    // 30 + 1 + 40 + 1 = 72; " sat" (40) would end at 112 > 100: new line.
    expect(lineOf(layout)).toEqual([0, 0, 1, 1]);
    expect(xOf(layout)).toEqual([0, 31, 0, 41]);
    expect(Array.from(layout.widths)).toEqual([30, 40, 40, 30]);
    expect(layout.lines).toBe(2);
    expect(layout.height).toBe(40);
    expect(Array.from(layout.lineStart)).toEqual([0, 2, 4]);
    expect(tokenBox(layout, 3)).toEqual({ x: 41, line: 1, width: 30 });
  });

  it("fits a token that ends exactly at the line width", () => {
    expect(lineOf(lay(["aaaaa", "bbbbb", "c"]))).toEqual([0, 0, 1]);
  });

  it("measures the visible text: leading spaces kept, newline/tab/CR as one symbol", () => {
    const seen = [];
    layoutTokens(["  x", "a\tb", "\r\n"], (t) => { seen.push(t); return 10; }, { width: 100, lineHeight: 20 });
    expect(seen).toEqual(["  x", "a⇥b", "␍↵"]);
  });

  it("ends the line after a token with a newline; several newlines leave empty lines", () => {
    const layout = lay(["a", "b\n", "c", "\n\n", "d"]);
    expect(lineOf(layout)).toEqual([0, 0, 1, 1, 3]);
    expect(xOf(layout)).toEqual([0, 10, 0, 10, 0]);
    expect(layout.lines).toBe(4);
    expect(lineTokens(layout, 2)).toEqual([4, 4]); // the paragraph break: an empty line
    expect(lineTokens(layout, 3)).toEqual([4, 5]);
  });

  it("does not open an empty last line after a trailing newline", () => {
    const layout = lay(["a", "\n"]);
    expect(layout.lines).toBe(1);
    expect(Array.from(layout.lineStart)).toEqual([0, 2]);
  });

  it("puts an over-wide token alone on its line and clips it", () => {
    const layout = lay(["ab", "x".repeat(30), "cd"]);
    expect(lineOf(layout)).toEqual([0, 1, 2]);
    expect(layout.widths[1]).toBe(100);
    expect(Array.from(layout.clipped)).toEqual([0, 1, 0]);
    // At the start of the text it needs no extra line before it.
    expect(lineOf(lay(["x".repeat(30), "a"]))).toEqual([0, 1]);
  });

  it("gives empty tokens a minimum width", () => {
    const layout = lay(["", "a"], { minWidth: 4 });
    expect(Array.from(layout.widths)).toEqual([4, 10]);
    expect(xOf(layout)).toEqual([0, 4]);
  });

  it("has no lines without tokens", () => {
    const layout = lay([]);
    expect(layout.lines).toBe(0);
    expect(visibleLines(layout, 0, 100)).toEqual({ first: 0, last: -1 });
    expect(tokenAt(layout, 1, 1)).toBe(null);
  });

  it("wraps 8192 tokens quickly", () => {
    const texts = Array.from({ length: 8192 }, (_, i) => (i % 50 === 49 ? ".\n" : ` w${i % 97}`));
    const layout = layoutTokens(texts, measure, { width: 500, lineHeight: 18, gap: 1 });
    expect(layout.count).toBe(8192);
    expect(layout.lineStart[layout.lines]).toBe(8192);
    for (let l = 0; l < layout.lines; l++) expect(layout.lineStart[l + 1]).toBeGreaterThanOrEqual(layout.lineStart[l]);
    for (let i = 0; i < 8192; i++) expect(layout.x[i] + layout.widths[i]).toBeLessThanOrEqual(500);
  });
});

describe("hit testing", () => {
  const layout = lay(["The", " cat", " sat", " on", "\n", "end"], { gap: 2 });
  // line 0: The [0, 30) gap  cat [32, 72) gap; line 1:  sat [0, 40)  on [42, 72) ↵ [74, 84); line 2: end

  it("finds tokens by binary search within the line", () => {
    expect(tokenAt(layout, 0, 0)).toBe(0);
    expect(tokenAt(layout, 29.9, 19.9)).toBe(0);
    expect(tokenAt(layout, 32, 5)).toBe(1);
    expect(tokenAt(layout, 71, 5)).toBe(1);
    expect(tokenAt(layout, 50, 25)).toBe(3);
    expect(tokenAt(layout, 80, 25)).toBe(4);
    expect(tokenAt(layout, 5, 45)).toBe(5);
  });

  it("misses gaps, line ends and the outside", () => {
    expect(tokenAt(layout, 30, 5)).toBe(null); // gap after "The"
    expect(tokenAt(layout, 31.5, 5)).toBe(null);
    expect(tokenAt(layout, 72, 5)).toBe(null); // right after the last token of the line
    expect(tokenAt(layout, 99, 45)).toBe(null);
    expect(tokenAt(layout, -1, 5)).toBe(null);
    expect(tokenAt(layout, 5, -1)).toBe(null);
    expect(tokenAt(layout, 5, 60)).toBe(null); // below the last line
  });

  it("honours an offset (padding, scrolling)", () => {
    expect(tokenAt(layout, 8, 12, { left: 6, top: 10 })).toBe(0);
    expect(tokenAt(layout, 5, 12, { left: 6, top: 10 })).toBe(null);
    expect(tokenAt(layout, 10, 5, { top: -40 })).toBe(5); // scrolled down by 40 px
  });

  it("returns null on empty lines", () => {
    const broken = lay(["a\n\n", "b"]);
    expect(broken.lines).toBe(3);
    expect(tokenAt(broken, 5, 25)).toBe(null);
    expect(tokenAt(broken, 5, 45)).toBe(1);
  });
});

describe("visible lines and scrolling", () => {
  const texts = Array.from({ length: 100 }, () => "aaaaa\n"); // one token per line, 100 lines
  const layout = lay(texts);

  it("covers partially visible lines", () => {
    expect(visibleLines(layout, 0, 100)).toEqual({ first: 0, last: 4 });
    expect(visibleLines(layout, 10, 100)).toEqual({ first: 0, last: 5 });
    expect(visibleLines(layout, 20, 100)).toEqual({ first: 1, last: 5 });
    expect(visibleLines(layout, 1990, 100)).toEqual({ first: 99, last: 99 });
    expect(visibleLines(layout, 5000, 100)).toEqual({ first: 0, last: -1 });
  });

  it("accounts for padding above the text", () => {
    expect(visibleLines(layout, 0, 100, { top: 10 })).toEqual({ first: 0, last: 4 });
    expect(visibleLines(layout, 15, 100, { top: 10 })).toEqual({ first: 0, last: 5 });
  });

  it("names the visible token range", () => {
    expect(visibleTokens(layout, { first: 3, last: 7 })).toEqual({ first: 3, last: 7 });
    expect(visibleTokens(layout, { first: 0, last: -1 })).toBe(null);
  });

  it("scrolls a line into view only when it is off screen, centred and clamped", () => {
    expect(scrollToLine(layout, 2, 0, 100)).toBe(0);
    expect(scrollToLine(layout, 50, 0, 100)).toBe(50 * 20 + 10 - 50);
    expect(scrollToLine(layout, 0, 500, 100)).toBe(0);
    expect(scrollToLine(layout, 99, 0, 100)).toBe(2000 - 100);
    expect(scrollToLine(layout, 99, 0, 100, { top: 4, bottom: 4 })).toBe(2008 - 100);
  });
});

describe("minimap", () => {
  it("scales the document into the height, at most maxRow px per line", () => {
    expect(minimapScale(10, 300, 3)).toEqual({ rowHeight: 3, height: 30 });
    expect(minimapScale(600, 300, 3)).toEqual({ rowHeight: 0.5, height: 300 });
  });

  it("max-pools tokens sharing a pixel and leaves empty cells at -1", () => {
    const small = lay(["aa", "aa", "a\n", "aaaa", "aa"]); // line 0: 0..20, 20..40, 40..60; line 1: 0..40, 40..60
    const grid = minimapGrid(small, [0.2, 0.9, 0.1, 0.5, 0.3], { cols: 5, rows: 1, rowHeight: 0.5, textWidth: 100 });
    // Both lines share the single row; per column the maximum of the tokens covering it.
    expect(Array.from(grid).map((v) => Math.round(v * 10) / 10)).toEqual([0.5, 0.9, 0.3, -1, -1]);
  });

  it("gives each line its own rows when there is room, with a gap row", () => {
    const layout = lay(["aaaaaaaaaa\n", "aaaaa"]);
    const grid = minimapGrid(layout, null, { cols: 2, rows: 6, rowHeight: 3, textWidth: 100 });
    expect(Array.from(grid)).toEqual([0, 0, 0, 0, -1, -1, 0, -1, 0, -1, -1, -1]);
  });

  it("maps a minimap row to a centred, clamped scroll offset", () => {
    const layout = lay(Array.from({ length: 100 }, () => "a\n"));
    expect(minimapScroll(layout, 0, 3, 100)).toBe(0);
    expect(minimapScroll(layout, 150, 3, 100)).toBe(50 * 20 - 50);
    expect(minimapScroll(layout, 299, 3, 100)).toBe(2000 - 100);
  });
});

describe("paragraph ends (cross-attention: target text, then source text)", () => {
  it("starts the tokens after a paragraph end two lines down", () => {
    const layout = lay(["Die", " Katze", "The", " cat"], { breakAfter: [1] });
    expect(lineOf(layout)).toEqual([0, 0, 2, 2]);
    expect(xOf(layout)).toEqual([0, 30, 0, 30]);
    expect(layout.lines).toBe(3);
    expect(lineTokens(layout, 1)).toEqual([2, 2]); // the blank line between
    expect(tokenAt(layout, 5, 45)).toBe(2);
  });

  it("does not add a break to a token that already ends with newlines", () => {
    expect(lineOf(lay(["a\n\n", "b"], { breakAfter: [0] }))).toEqual([0, 2]);
  });
});
