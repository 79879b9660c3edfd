import { describe, expect, it } from "vitest";
import { formatTick, LOG_DECADES, makeScale, SCALE_LABELS, SCALES, scaleFor, scaleIndex, scaleMax } from "../src/scale.js";

describe("scale maximum", () => {
  it("is the largest finite value, 0 for empty or non-positive data", () => {
    expect(scaleMax(Float32Array.from([0.1, 0.7, 0.2]))).toBeCloseTo(0.7);
    expect(scaleMax([0.1, Number.NaN, Infinity, 0.3])).toBe(0.3);
    expect(scaleMax([])).toBe(0);
    expect(scaleMax([-1, -2])).toBe(0);
  });

  it("skips the first token of a vector", () => {
    expect(scaleMax([0.9, 0.05, 0.05], { skipFirst: true })).toBe(0.05);
    expect(scaleMax([0.9], { skipFirst: true })).toBe(0);
  });

  it("skips column 0 of every row of a row-major matrix", () => {
    const matrix = Float32Array.from([
      1.0, 0.0, 0.0,
      0.8, 0.2, 0.0,
      0.6, 0.1, 0.3,
    ]);
    expect(scaleMax(matrix, { skipFirst: true, cols: 3 })).toBeCloseTo(0.3);
    expect(scaleMax(matrix, { cols: 3 })).toBe(1);
  });
});

describe("linear scale", () => {
  const scale = makeScale("linear", 0.5);

  it("maps 0..max onto 0..1 and clamps outside", () => {
    expect(scale.t(0)).toBe(0);
    expect(scale.t(0.25)).toBe(0.5);
    expect(scale.t(0.5)).toBe(1);
    expect(scale.t(2)).toBe(1);
    expect(scale.t(-1)).toBe(0);
    expect(scale.t(Number.NaN)).toBe(0);
    expect(scaleIndex(scale, 0.25)).toBe(128);
    expect(scaleIndex(scale, 9)).toBe(255);
  });

  it("has ticks at 0, half and the maximum, and its label", () => {
    expect(scale.ticks).toEqual([{ value: 0, t: 0 }, { value: 0.25, t: 0.5 }, { value: 0.5, t: 1 }]);
    expect(scale).toMatchObject({ kind: "linear", max: 0.5, label: SCALE_LABELS.linear });
  });

  it("maps everything to 0 with a zero, negative or missing maximum", () => {
    for (const max of [0, -1, Number.NaN, undefined, Infinity]) {
      const empty = makeScale("linear", max);
      expect(empty.max).toBe(0);
      expect(empty.t(0.3)).toBe(0);
      expect(empty.ticks.map((tick) => tick.value)).toEqual([0, 0, 0]);
    }
    expect(makeScale("log", 0).t(0.3)).toBe(0);
  });

  it("falls back to linear for unknown kinds", () => {
    expect(makeScale("cubic", 1).kind).toBe("linear");
    expect(SCALES).toEqual(["linear", "log", "no_sink"]);
  });
});

describe("log scale", () => {
  const scale = makeScale("log", 1);

  it("spans LOG_DECADES decades below the maximum", () => {
    expect(LOG_DECADES).toBe(4);
    expect(scale.t(1)).toBeCloseTo(1);
    expect(scale.t(0.1)).toBeCloseTo(0.75);
    expect(scale.t(0.01)).toBeCloseTo(0.5);
    expect(scale.t(1e-3)).toBeCloseTo(0.25);
    expect(scale.label).toBe(SCALE_LABELS.log);
  });

  it("clamps below the floor and above the maximum", () => {
    expect(scale.t(1e-4)).toBe(0);
    expect(scale.t(1e-7)).toBe(0);
    expect(scale.t(0)).toBe(0);
    expect(scale.t(-1)).toBe(0);
    expect(scale.t(5)).toBe(1);
  });

  it("has one tick per decade", () => {
    const ticks = makeScale("log", 0.5).ticks;
    expect(ticks.map((tick) => tick.t)).toEqual([0, 0.25, 0.5, 0.75, 1]);
    const expected = [5e-5, 5e-4, 5e-3, 5e-2, 0.5];
    ticks.forEach((tick, i) => expect(tick.value).toBeCloseTo(expected[i], 12));
  });
});

describe("scale for data", () => {
  const sink = Float32Array.from([0.9, 0.06, 0.03, 0.01]);

  it("no_sink puts the first token off scale", () => {
    const scale = scaleFor("no_sink", sink);
    expect(scale.kind).toBe("no_sink");
    expect(scale.max).toBeCloseTo(0.06);
    expect(scale.t(sink[0])).toBe(1);
    expect(scale.t(sink[2])).toBeCloseTo(0.5);
    expect(scale.label).toBe(SCALE_LABELS.no_sink);
  });

  it("linear and log use the whole vector", () => {
    expect(scaleFor("linear", sink).max).toBeCloseTo(0.9);
    const log = scaleFor("log", sink);
    expect(log.max).toBeCloseTo(0.9);
    expect(log.t(0.09)).toBeCloseTo(0.75);
  });

  it("no_sink on a matrix ignores column 0 of each row", () => {
    const matrix = Float32Array.from([1, 0, 0.7, 0.3]);
    expect(scaleFor("no_sink", matrix, 2).max).toBeCloseTo(0.3);
    expect(scaleFor("linear", matrix, 2).max).toBe(1);
  });
});

describe("tick labels", () => {
  it("are short", () => {
    expect(formatTick(0)).toBe("0");
    expect(formatTick(0.5)).toBe("0.5");
    expect(formatTick(0.123456)).toBe("0.12");
    expect(formatTick(0.01)).toBe("0.01");
    expect(formatTick(0.003)).toBe("3e-3");
    expect(formatTick(3e-5)).toBe("3e-5");
  });
});
