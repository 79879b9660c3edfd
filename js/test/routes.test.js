import { describe, expect, it } from "vitest";
import { radioStep } from "../src/radio.js";
import {
  ROUTES_LAYOUT, curvePoint, describeEdge, edgeCurve, edgeStroke, hitEdge, nodePositions, routesLayout, rowLabels,
  rowSlot, scrollFor, scrollToShow, visibleTokens,
} from "../src/routeslayout.js";
import { DEFAULT_VIEWS, VIEW_NAMES } from "../src/toolbar.js";
import { queryKeyData, routesData } from "../src/traits.js";
import { dimensionStep, formatScore, queryKeyCaption } from "../src/views/querykey.js";

const wire = (typed, dtype, shape = [typed.length]) => ({ buffer: new DataView(typed.buffer), dtype, shape });

describe("the routes layout", () => {
  const layout = routesLayout({ numLayers: 3, numTokens: 10, usesResidual: true });

  it("puts rows bottom-up, one slot per res and mid row", () => {
    expect(layout.slots).toBe(7);
    expect(layout.y(0)).toBeGreaterThan(layout.y(1)); // row 0 (L0 res) is the lowest
    expect(layout.y(1) - layout.y(2)).toBeCloseTo(layout.row);
    expect(layout.y(6)).toBeCloseTo(layout.top + layout.row / 2); // the output row on top
    expect(layout.plotHeight).toBe(layout.top + 7 * layout.row);
    expect(layout.height).toBe(layout.plotHeight + layout.labels);
  });

  it("puts tokens in order at a fixed column width right of the gutter", () => {
    expect(layout.x(0)).toBe(ROUTES_LAYOUT.gutter + ROUTES_LAYOUT.pad + ROUTES_LAYOUT.column / 2);
    expect(layout.x(4) - layout.x(3)).toBe(ROUTES_LAYOUT.column);
    expect(layout.width).toBe(ROUTES_LAYOUT.gutter + 2 * ROUTES_LAYOUT.pad + 10 * ROUTES_LAYOUT.column);
    const long = routesLayout({ numLayers: 3, numTokens: 2000, usesResidual: true });
    expect(long.width).toBe(ROUTES_LAYOUT.gutter + 2 * ROUTES_LAYOUT.pad + 2000 * ROUTES_LAYOUT.column); // scrolls
  });

  it("drops the empty mid rows without the residual stream", () => {
    const bare = routesLayout({ numLayers: 3, numTokens: 4, usesResidual: false });
    expect(bare.slots).toBe(4);
    expect(rowSlot(4, false)).toBe(2);
    expect(bare.y(2) - bare.y(4)).toBeCloseTo(bare.row);
    expect(rowLabels(3, false).map((l) => l.text)).toEqual(["L0 res", "L1 res", "L2 res", "output"]);
    expect(rowLabels(2, true).map((l) => [l.row, l.text])).toEqual([[0, "L0 res"], [1, "L0 mid"], [2, "L1 res"],
      [3, "L1 mid"], [4, "output"]]);
  });

  it("shrinks the row pitch to fit a height, down to a minimum", () => {
    const fit = routesLayout({ numLayers: 3, numTokens: 4, usesResidual: true }, { fitHeight: 260 });
    expect(fit.row).toBe(Math.floor((260 - fit.labels - fit.top) / 7));
    expect(fit.row).toBeLessThan(ROUTES_LAYOUT.row);
    const tall = routesLayout({ numLayers: 30, numTokens: 4, usesResidual: true }, { fitHeight: 300 });
    expect(tall.row).toBe(22);
  });

  it("places nodes by row and token, FFN markers beside their mid node", () => {
    const nodes = { kind: Uint8Array.from([0, 1, 2]), token: Int32Array.from([2, 5, 5]), row: Int32Array.from([0, 1, 1]),
      layer: Int32Array.from([0, 0, 0]) };
    const points = nodePositions(nodes, ["res", "mid", "ffn"], layout);
    expect([points[0], points[1]]).toEqual([layout.x(2), layout.y(0)]);
    expect(points[3]).toBe(points[5]); // same row
    expect(points[4] - points[2]).toBeCloseTo(layout.ffnShift * layout.column);
  });

  it("knows the visible columns and scrolls a token into view", () => {
    expect(visibleTokens(0, 300, layout, 10)).toEqual({ first: 0, last: Math.floor((300 - 64 - 8) / 56) });
    const scrolled = visibleTokens(56 * 3 + 8, 300, layout, 10);
    expect(scrolled.first).toBe(3);
    expect(visibleTokens(0, 300, layout, 0).last).toBeLessThan(0);
    const long = routesLayout({ numLayers: 2, numTokens: 500, usesResidual: true });
    const s = scrollFor(400, 600, long);
    expect(long.x(400) - s).toBeCloseTo((long.gutter + 600) / 2, 0);
    expect(scrollFor(0, 600, long)).toBe(0);
    expect(scrollFor(499, 600, long)).toBe(long.width - 600);
    const shown = scrollToShow(long.x(100), long.x(100), 0, 600, long);
    expect(long.x(100) + long.column / 2).toBeLessThanOrEqual(shown + 600);
    expect(scrollToShow(long.x(3), long.x(4), 0, 600, long)).toBe(0); // already visible: no move
  });
});

describe("routes edges", () => {
  const points = Float32Array.from([100, 200, 300, 100, 100, 100]); // node 0 low left, 1 high right, 2 high left
  const edges = { source: Int32Array.from([0, 0]), target: Int32Array.from([1, 2]), importance: Float32Array.from([0.2, 0.7]) };

  it("are vertical-tangent curves through the midpoint", () => {
    const curve = edgeCurve(100, 200, 300, 100);
    expect(curvePoint(curve, 0)).toEqual([100, 200]);
    expect(curvePoint(curve, 1)).toEqual([300, 100]);
    expect(curvePoint(curve, 0.5)).toEqual([200, 150]);
  });

  it("are hit near their curve, the nearest first", () => {
    expect(hitEdge(points, edges, 200, 150)).toBe(0);
    expect(hitEdge(points, edges, 100, 150)).toBe(1); // the straight one
    expect(hitEdge(points, edges, 400, 150)).toBe(-1);
    expect(hitEdge(points, edges, 200, 150, { only: (e) => e !== 0 })).toBe(-1);
  });

  it("get width and opacity by importance", () => {
    const weak = edgeStroke(0.1, 1);
    const strong = edgeStroke(1, 1);
    expect(strong.width).toBeGreaterThan(weak.width);
    expect(strong.alpha).toBeGreaterThan(weak.alpha);
    expect(edgeStroke(0.5, 0).width).toBeGreaterThan(0);
  });

  it("say their kind, layer, head and importance", () => {
    expect(describeEdge({ kind: "attention", layer: 3, head: 5, importance: 0.314 }))
      .toBe("attention: layer 3, head 5 (importance 0.31)");
    expect(describeEdge({ kind: "residual", layer: 1, head: -1, importance: 0.5 })).toBe("residual: layer 1 (importance 0.50)");
    expect(describeEdge({ kind: "ffn", layer: 2, head: -1, importance: 0.1 })).toBe("ffn: layer 2 (importance 0.10)");
    expect(describeEdge({ kind: "attention+residual", layer: 0, head: 2, importance: 0.9, attention: 0.4, residual: 0.5 }))
      .toBe("attention+residual: layer 0, head 2 (importance 0.90)\nattention 0.40 + residual 0.50");
  });
});

describe("routes_data and query_key_data", () => {
  it("decode node and edge arrays", () => {
    const value = {
      nodes: { kind: wire(Uint8Array.from([0, 0]), "uint8"), layer: wire(Int32Array.from([0, 1]), "int32"),
        token: wire(Int32Array.from([1, 1]), "int32"), row: wire(Int32Array.from([0, 2]), "int32") },
      edges: { source: wire(Int32Array.from([0]), "int32"), target: wire(Int32Array.from([1]), "int32"),
        importance: wire(Float32Array.from([0.5]), "float32"), head: wire(Int16Array.from([3]), "int16"),
        layer: wire(Int16Array.from([0]), "int16"), kind: wire(Uint8Array.from([0]), "uint8") },
      node_kinds: ["res", "mid", "ffn"], edge_kinds: ["attention"], target: 1, threshold: 0.04, num_layers: 1,
      num_tokens: 2, uses_residual: false,
    };
    const data = routesData(value);
    expect(Array.from(data.edges.head)).toEqual([3]);
    expect(data.edges.attention).toBeNull();
    expect(data.maxImportance).toBeCloseTo(0.5);
    expect(data.rows).toBe(3);
    expect(routesData({})).toBeNull();
    value.edges.head = wire(Int16Array.from([3, 4]), "int16");
    expect(() => routesData(value)).toThrow(/routes_data.edges.head/);
  });

  it("decode a query-key cell and caption it", () => {
    const q = Float32Array.from([1, -2]);
    const data = queryKeyData({ q: wire(q, "float32"), k: wire(Float32Array.from([0.5, 0.5]), "float32"),
      products: wire(Float32Array.from([0.5, -1]), "float32"), dot: -0.5, scaling: 0.25, bias: 0, softcap: null,
      score: -0.125, masked: false, weight: 0.3, layer: 1, head: 2, key_head: 1, query: 4, key: 0,
      query_token: " cat", key_token: "<bos>", note: "" });
    expect(data.size).toBe(2);
    expect(data.keyHead).toBe(1);
    expect(queryKeyCaption(data)).toBe("q·k = -0.5 × scaling 0.25 = score -0.125 → weight 0.3");
    expect(queryKeyCaption({ ...data, bias: 1.5, masked: true })).toContain("+ bias 1.5");
    expect(queryKeyCaption({ ...data, masked: true })).toContain("(masked");
    expect(formatScore(-0)).toBe("0");
    expect(formatScore(0.123456)).toBe("0.1235");
    expect(dimensionStep(64, 400)).toBe(8);
    expect(dimensionStep(8, 400)).toBe(1);
  });
});

describe("the toolbar's new controls", () => {
  it("offer the kernel views only where the model lists them", () => {
    expect(VIEW_NAMES).toContain("query-key");
    expect(VIEW_NAMES.indexOf("routes")).toBeLessThan(VIEW_NAMES.indexOf("image"));
    expect(DEFAULT_VIEWS).toEqual(["heatmap", "text", "lines", "graph", "rollout"]);
  });

  it("step a radio group with the arrows, wrapping", () => {
    expect(radioStep("ArrowRight", 1, 2)).toBe(0);
    expect(radioStep("ArrowLeft", 0, 2)).toBe(1);
    expect(radioStep("ArrowDown", 0, 3)).toBe(1);
    expect(radioStep("Enter", 0, 3)).toBeNull();
  });
});
