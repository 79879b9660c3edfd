import { describe, expect, it } from "vitest";
import {
  DISCARD_MAX, FUSION_LABELS, ROLLOUT_FUSIONS, formatDiscard, parseDiscard, rolloutShown,
} from "../src/toolbar.js";
import { rolloutData } from "../src/traits.js";

const wire = (typed, dtype, shape) => ({ buffer: new DataView(typed.buffer), dtype, shape });

describe("the rollout options", () => {
  it("show where rollout shows", () => {
    expect(rolloutShown({ view: "rollout" })).toBe(true);
    expect(rolloutShown({ view: "heatmap", heatmapKind: "rollout" })).toBe(true);
    expect(rolloutShown({ view: "heatmap", heatmapKind: "attention" })).toBe(false);
    for (const view of ["text", "image"]) {
      expect(rolloutShown({ view, textSource: "rollout" })).toBe(true);
      expect(rolloutShown({ view, textSource: "attention" })).toBe(false);
      expect(rolloutShown({ view, textSource: "flow" })).toBe(false);
    }
    expect(rolloutShown({ view: "graph", heatmapKind: "rollout", textSource: "rollout" })).toBe(false);
    expect(rolloutShown({ view: "lines", heatmapKind: "rollout" })).toBe(false);
    expect(rolloutShown({ view: null })).toBe(false);
  });

  it("never show for cross-attention, which has no rollout", () => {
    expect(rolloutShown({ view: "rollout", rolloutOffered: false })).toBe(false);
    expect(rolloutShown({ view: "text", textSource: "rollout", rolloutOffered: false })).toBe(false);
  });

  it("offer the kernel's fusions with readable captions", () => {
    expect(ROLLOUT_FUSIONS).toEqual(["mean", "max", "min"]);
    expect(ROLLOUT_FUSIONS.map((f) => FUSION_LABELS[f])).toEqual(["mean of heads", "max of heads", "min of heads"]);
    expect(DISCARD_MAX).toBeLessThan(1);
  });

  it("read a typed discard ratio, leaving range checks to the kernel", () => {
    expect(parseDiscard("0.9")).toBe(0.9);
    expect(parseDiscard(" 0 ")).toBe(0);
    expect(parseDiscard(".5")).toBe(0.5);
    expect(parseDiscard("1.5")).toBe(1.5); // sent: the kernel refuses it with its reason
    expect(parseDiscard("-0.1")).toBe(-0.1);
    for (const text of ["", "  ", "abc", "NaN", "Infinity", null, undefined]) expect(parseDiscard(text)).toBe(null);
  });

  it("write a ratio back compactly", () => {
    expect(formatDiscard(0.9)).toBe("0.9");
    expect(formatDiscard(0)).toBe("0");
    expect(formatDiscard(0.875)).toBe("0.875");
    expect(formatDiscard(0.30000000000000004)).toBe("0.3");
    expect(formatDiscard(null)).toBe("");
    expect(formatDiscard(Number.NaN)).toBe("");
  });
});

describe("rollout data", () => {
  it("keeps the kernel's label and defaults to plain rollout", () => {
    const values = wire(new Float32Array([0.5, 0.5]), "float32", [2]);
    expect(rolloutData({ values, row: 1, label: "rollout (max of heads, lowest 90% discarded)" }).label)
      .toBe("rollout (max of heads, lowest 90% discarded)");
    expect(rolloutData({ values, row: 1 }).label).toBe("rollout");
    expect(rolloutData({ values, row: 1, label: 3 }).label).toBe("rollout");
  });
});
