import { describe, expect, it } from "vitest";
import { makeLUT } from "../src/colors.js";
import { heatmapLayout, heatmapScene, matrixColors } from "../src/figure.js";
import { makeScale } from "../src/scale.js";
import { CELL_BUDGET, cellCount, escapeXML, num, paint, sceneToSVG } from "../src/svg.js";

const theme = {
  background: "#ffffff", foreground: "rgba(0, 0, 0, 0.87)", muted: "rgba(0, 0, 0, 0.54)", border: "#bdbdbd",
  accent: "#1976d2", highlight: "#ff9800", fontFamily: "system-ui, 'Segoe UI', sans-serif", monoFamily: "monospace",
};
const measure = (text, font = {}) => String(text).length * (font.size ?? 10) * 0.6;
const lut = makeLUT("magma");

/**
 * A strict well-formedness check of the XML subset an SVG document uses (no DTD, no CDATA): every
 * tag closed in order, attributes quoted and unique, only the five named entities and numeric ones,
 * no "<" or raw "&" in text. Returns the element names in document order.
 */
function parseXML(text) {
  const names = [];
  const stack = [];
  let i = 0;
  const fail = (why) => { throw new Error(`${why} at ${i}: ${JSON.stringify(text.slice(i, i + 60))}`); };
  const checkText = (chunk) => {
    if (chunk.includes("<")) fail("< in text");
    for (const m of chunk.matchAll(/&([^;]*);?/g)) {
      if (!/^&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);$/.test(m[0])) fail(`bad entity ${m[0]}`);
    }
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/.test(chunk)) fail("a character XML forbids");
  };
  if (text.startsWith("<?xml")) i = text.indexOf("?>") + 2;
  while (i < text.length) {
    const lt = text.indexOf("<", i);
    if (lt < 0) { checkText(text.slice(i)); break; }
    checkText(text.slice(i, lt));
    i = lt;
    const gt = text.indexOf(">", i);
    if (gt < 0) fail("unclosed tag");
    const tag = text.slice(i + 1, gt);
    if (tag.startsWith("/")) {
      const name = tag.slice(1).trim();
      if (stack.pop() !== name) fail(`mismatched </${name}>`);
    } else {
      const selfClosing = tag.endsWith("/");
      const body = selfClosing ? tag.slice(0, -1) : tag;
      const match = /^([A-Za-z][\w:.-]*)/.exec(body);
      if (!match) fail("bad tag name");
      let rest = body.slice(match[1].length);
      const seen = new Set();
      for (;;) {
        rest = rest.replace(/^\s+/, "");
        if (!rest) break;
        const attr = /^([A-Za-z_:][\w:.-]*)="([^"<]*)"/.exec(rest);
        if (!attr) { i += 1 + match[1].length; fail("bad attribute"); }
        if (seen.has(attr[1])) fail(`duplicate attribute ${attr[1]}`);
        seen.add(attr[1]);
        checkText(attr[2]);
        rest = rest.slice(attr[0].length);
      }
      names.push(match[1]);
      if (!selfClosing) stack.push(match[1]);
    }
    i = gt + 1;
  }
  if (stack.length) throw new Error(`unclosed ${stack.join(", ")}`);
  return names;
}

function heatmapSVG({ n = 6, tokens = null, title = "layer 3, head 2", imageHref = null, causal = true } = {}) {
  const labels = tokens ?? Array.from({ length: n }, (_, i) => ` t${i}`);
  const matrix = { dtype: "uint8", shape: [n, n], data: Uint8Array.from({ length: n * n }, (_, i) => (i * 13) % 256) };
  const layout = heatmapLayout({ tokens: labels, size: 300, total: { rows: n, cols: n }, measure });
  const scene = heatmapScene(layout, {
    tile: { source: { id: "heatmap", rows: n, cols: n, rgba: matrixColors(matrix, lut) }, row0: 0, col0: 0, n_rows: n, n_cols: n },
    view: { row0: 0, col0: 0, rows: n, cols: n }, causal, scale: makeScale("log", 1), selected: new Set(), title,
  }, { theme, lut, tokens: labels, measure, modelName: "SmolLM2-135M" });
  return { scene, svg: sceneToSVG(scene, { imageHref }) };
}

describe("escaping", () => {
  it("escapes markup characters and quotes", () => {
    expect(escapeXML(`<img src=x onerror="alert(1)"> & 'q'`))
      .toBe("&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; &apos;q&apos;");
  });

  it("replaces characters XML cannot hold; keeps astral characters", () => {
    expect(escapeXML("a\u0000b\u001bc")).toBe("a\u2400b\u241bc");
    expect(escapeXML("x\ud800y")).toBe("x\ufffdy");
    expect(escapeXML("\udc00")).toBe("\ufffd");
    expect(escapeXML("\uffff")).toBe("\ufffd");
    expect(escapeXML("🙂 ok")).toBe("🙂 ok");
    expect(escapeXML("tab\tline\n")).toBe("tab&#9;line&#10;");
  });

  it("numbers and paints", () => {
    expect(num(1.23456)).toBe("1.23");
    expect(num(-0.001)).toBe("0");
    expect(num(Number.NaN)).toBe("0");
    expect(paint("rgba(0, 0, 0, 0.54)")).toEqual({ color: "#000000", opacity: 0.54 });
    expect(paint("#1976d2")).toEqual({ color: "#1976d2", opacity: 1 });
  });
});

describe("heatmap SVG", () => {
  it("is well-formed, has the title as <title> and as text, and the colour bar", () => {
    const { scene, svg } = heatmapSVG();
    const names = parseXML(svg);
    expect(names[0]).toBe("svg");
    expect(svg).toContain(`<title>${scene.title}</title>`);
    expect(svg).toMatch(/<text[^>]*class="title"[^>]*>SmolLM2-135M · layer 3, head 2<\/text>/);
    expect(svg).toContain(">query</text>");
    expect(svg).toContain(">key</text>");
    expect(svg).toContain(">log scale</text>");
    expect(names).toContain("linearGradient");
    expect(names).toContain("clipPath");
    expect(svg).toMatch(/<svg [^>]*width="\d+" height="\d+" viewBox="0 0 \d+ \d+"/);
  });

  it("writes token text as text, never markup", () => {
    const tokens = ["<script>alert(1)</script>", "a&b", "\"q\"", "\u0000nul", "<img src=x>", "ok"];
    const { svg } = heatmapSVG({ tokens, title: "</title><script>bad()</script>" });
    const names = parseXML(svg);
    expect(names).not.toContain("script");
    expect(names).not.toContain("img");
    expect(svg).toContain("&lt;script&gt;");
    expect(svg).toContain("a&amp;b");
    expect(svg).toContain("\u2400nul");
  });

  it("draws small matrices as rects, runs of a colour merged", () => {
    const { svg } = heatmapSVG({ n: 6 });
    const cells = svg.match(/<g shape-rendering="crispEdges" class="matrix">(.*?)<\/g>/s)[1];
    const rects = cells.match(/<rect /g).length;
    expect(rects).toBeGreaterThan(0);
    expect(rects).toBeLessThanOrEqual(36);
    expect(svg).not.toContain("<image");
  });

  it("embeds an image above the cell budget when the page can encode one", () => {
    const n = Math.ceil(Math.sqrt(CELL_BUDGET)) + 1;
    const seen = [];
    const { scene, svg } = heatmapSVG({ n, imageHref: (source) => { seen.push(source); return "data:image/png;base64,AAAA"; } });
    expect(cellCount(scene.items)).toBeGreaterThan(CELL_BUDGET);
    parseXML(svg);
    expect(seen).toHaveLength(1);
    expect((svg.match(/<image /g) ?? []).length).toBe(1);
    expect(svg).toContain('href="data:image/png;base64,AAAA"');
    expect(svg).toContain("image-rendering:pixelated");
    expect(svg).toContain(`viewBox="0 0 ${n} ${n}"`);
    expect((svg.match(/<rect /g) ?? []).length).toBeLessThan(100); // no cell rects
  });

  it("without an image encoder, large matrices are rects too", () => {
    const { svg } = heatmapSVG({ n: 130 });
    expect(svg).not.toContain("<image");
  });

  it("the causal mask is one hatched path", () => {
    const { svg } = heatmapSVG();
    expect(svg).toMatch(/<pattern id="f\d+" width="8" height="8" patternUnits="userSpaceOnUse">/);
    expect(svg).toMatch(/<path d="M[^"]+" fill="url\(#f\d+\)"\/>/);
    expect(heatmapSVG({ causal: false }).svg).not.toContain("<pattern");
  });
});

describe("scene items", () => {
  it("rotated text, strokes, shared atlas sources", () => {
    const source = { id: "atlas", rows: 2, cols: 4, rgba: new Uint8ClampedArray(2 * 4 * 4).fill(200) };
    const scene = {
      width: 100, height: 50, title: "t", background: "#fff", fonts: { ui: "sans-serif", mono: "monospace" },
      items: [
        { kind: "text", x: 5, y: 25, text: "layer", size: 10, color: "#000", align: "middle", baseline: "top", rotate: -90 },
        { kind: "rect", x: 1, y: 1, width: 10, height: 10, stroke: "#123456", lineWidth: 3 },
        { kind: "image", x: 20, y: 0, width: 20, height: 20, source, sx: 0, sy: 0, sw: 2, sh: 2, smooth: true },
        { kind: "image", x: 50, y: 0, width: 20, height: 20, source, sx: 2, sy: 0, sw: 2, sh: 2, smooth: true },
      ],
    };
    const svg = sceneToSVG(scene, { imageHref: () => "data:image/png;base64,AA", budget: 4 });
    parseXML(svg);
    expect(svg).toContain('transform="rotate(-90 5 25)"');
    expect(svg).toContain('dominant-baseline="text-before-edge"');
    expect(svg).toContain('stroke="#123456" stroke-width="3"');
    expect((svg.match(/<image /g) ?? []).length).toBe(1); // one definition, used twice
    expect((svg.match(/<use /g) ?? []).length).toBe(2);
    expect(svg).toContain('viewBox="2 0 2 2"');
  });
});
