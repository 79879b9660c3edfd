// A figure scene (figure.js) as an SVG document. Pure: no DOM; the page passes imageHref(source) to
// embed large matrices as PNG data URLs.
//
// Cells: a scene whose matrices hold at most CELL_BUDGET cells in all is written as rects (runs of one
// colour in a row merged into one rect), so every cell is a vector shape a paper can recolour or
// inspect; above the budget (a long prompt's 256 x 256 tile, or a large model's grid of thumbnails)
// each matrix is one embedded PNG, drawn pixelated, and the text, axes and colour bars stay vectors.
// Token text is XML text, escaped: never markup.

import { parseColor } from "./colors.js";

export const CELL_BUDGET = 16384; // 128 x 128 cells as rects; more go into an embedded image
const SVG_NS = "http://www.w3.org/2000/svg";
const XLINK_NS = "http://www.w3.org/1999/xlink";

// Characters XML 1.0 does not allow: C0 controls but tab, newline and return; lone surrogates;
// U+FFFE and U+FFFF. C0 controls become their visible Control Pictures (U+2400 + code), the rest U+FFFD.
const INVALID_XML = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** Text safe as XML character data or an attribute value: & < > " ' escaped, invalid characters replaced. */
export function escapeXML(value) {
  return String(value ?? "")
    .replace(INVALID_XML, (c) => (c.charCodeAt(0) < 0x20 ? String.fromCharCode(0x2400 + c.charCodeAt(0)) : "\ufffd"))
    .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&apos;")
    .replace(/\t/g, "&#9;").replace(/\n/g, "&#10;").replace(/\r/g, "&#13;");
}

/** A coordinate: at most two decimals, no "-0". */
export function num(value) {
  const v = Number.isFinite(value) ? Math.round(value * 100) / 100 : 0;
  return String(Object.is(v, -0) ? 0 : v);
}

/** A CSS colour as SVG 1.1 paint: {color: "#rrggbb" (or the text as given), opacity (1 when opaque)}. */
export function paint(color) {
  const rgba = parseColor(color);
  if (!rgba) return { color: String(color ?? "none"), opacity: 1 };
  const hex = rgba.slice(0, 3).map((v) => Math.max(0, Math.min(255, Math.round(v))).toString(16).padStart(2, "0")).join("");
  return { color: `#${hex}`, opacity: Math.max(0, Math.min(1, rgba[3])) };
}

const attrs = (pairs) => Object.entries(pairs)
  .filter(([, v]) => v !== undefined && v !== null && v !== "")
  .map(([k, v]) => ` ${k}="${escapeXML(v)}"`).join("");

function paintAttrs(name, color) {
  if (!color) return { [name]: "none" };
  const { color: value, opacity } = paint(color);
  return opacity < 1 ? { [name]: value, [`${name}-opacity`]: num(opacity) } : { [name]: value };
}

const ANCHOR = { start: "start", middle: "middle", end: "end", left: "start", center: "middle", right: "end" };
const BASELINE = { top: "text-before-edge", middle: "central", bottom: "text-after-edge" };

/** Cells of image items, clip groups included (what the budget counts). */
export function cellCount(items) {
  let count = 0;
  for (const item of items) {
    if (item.kind === "clip") count += cellCount(item.items);
    else if (item.kind === "image") count += (item.sw ?? item.source.cols) * (item.sh ?? item.source.rows);
  }
  return count;
}

/**
 * The SVG document of `scene` (figure.js): title (<title> and drawn), axis titles, tick labels, colour
 * bars, matrices as rects (up to CELL_BUDGET cells in all) or embedded images (`imageHref(source)` ->
 * a data URL; without it, always rects).
 */
export function sceneToSVG(scene, { imageHref = null, budget = CELL_BUDGET } = {}) {
  const defs = [];
  const ids = new Map(); // key (a string, or an image's source) -> id of its definition
  let next = 0;
  const define = (key, make) => {
    if (!ids.has(key)) {
      const id = `f${next++}`;
      ids.set(key, id);
      defs.push(make(id));
    }
    return ids.get(key);
  };
  const asRects = !imageHref || cellCount(scene.items) <= budget;
  const fonts = scene.fonts ?? {};

  const hatch = (color) => define(`hatch ${color}`, (id) => {
    const stroke = paintAttrs("stroke", color);
    return `<pattern id="${id}" width="8" height="8" patternUnits="userSpaceOnUse">` +
      `<path d="M0 8L8 0M-2 2L2 -2M6 10L10 6"${attrs({ ...stroke, "stroke-width": 1 })}/></pattern>`;
  });

  function text(item) {
    const transform = item.rotate ? `rotate(${num(item.rotate)} ${num(item.x)} ${num(item.y)})` : "";
    return `<text${attrs({
      x: num(item.x), y: num(item.y), "font-family": item.mono ? fonts.mono : fonts.ui, "font-size": num(item.size ?? 10),
      "font-weight": item.weight && item.weight !== "normal" ? item.weight : "", ...paintAttrs("fill", item.color),
      "text-anchor": ANCHOR[item.align] ?? "start", "dominant-baseline": BASELINE[item.baseline] ?? "",
      transform, class: item.role ?? "",
    })} xml:space="preserve">${escapeXML(item.text)}</text>`;
  }

  function rect(item) {
    const geometry = { x: num(item.x), y: num(item.y), width: num(item.width), height: num(item.height) };
    const out = [];
    if (item.fill || !item.stroke) out.push(`<rect${attrs({ ...geometry, ...paintAttrs("fill", item.fill) })}/>`);
    if (item.hatch) out.push(`<rect${attrs({ ...geometry, fill: `url(#${hatch(item.hatch)})` })}/>`);
    if (item.stroke) {
      out.push(`<rect${attrs({ ...geometry, fill: "none", ...paintAttrs("stroke", item.stroke), "stroke-width": num(item.lineWidth ?? 1) })}/>`);
    }
    return out.join("");
  }

  function rects(item) {
    const d = item.rects.map(([x, y, w, h]) => `M${num(x)} ${num(y)}h${num(w)}v${num(h)}h${num(-w)}z`).join("");
    const out = [];
    if (item.fill) out.push(`<path${attrs({ d, ...paintAttrs("fill", item.fill) })}/>`);
    if (item.hatch) out.push(`<path${attrs({ d, fill: `url(#${hatch(item.hatch)})` })}/>`);
    return out.join("");
  }

  function gradient(item) {
    const up = item.direction !== "right";
    const id = define(`gradient ${up} ${item.stops.map((s) => `${s.offset}:${s.color}`).join(",")}`, (gid) =>
      `<linearGradient id="${gid}" x1="0" y1="${up ? 1 : 0}" x2="${up ? 0 : 1}" y2="0">` +
      item.stops.map((s) => `<stop${attrs({ offset: num(s.offset), "stop-color": paint(s.color).color })}/>`).join("") +
      "</linearGradient>");
    return `<rect${attrs({ x: num(item.x), y: num(item.y), width: num(item.width), height: num(item.height), fill: `url(#${id})` })}/>`;
  }

  function imageRects(item, clip) {
    const { source } = item;
    const sx = item.sx ?? 0;
    const sy = item.sy ?? 0;
    const sw = item.sw ?? source.cols;
    const sh = item.sh ?? source.rows;
    const cw = item.width / sw;
    const ch = item.height / sh;
    const out = [];
    for (let r = 0; r < sh; r++) {
      const y = item.y + r * ch;
      if (clip && (y + ch <= clip.y || y >= clip.y + clip.height)) continue;
      let c = 0;
      while (c < sw) {
        const k = ((sy + r) * source.cols + sx + c) * 4;
        const color = [source.rgba[k], source.rgba[k + 1], source.rgba[k + 2]];
        let end = c + 1;
        while (end < sw) {
          const j = ((sy + r) * source.cols + sx + end) * 4;
          if (source.rgba[j] !== color[0] || source.rgba[j + 1] !== color[1] || source.rgba[j + 2] !== color[2]) break;
          end += 1;
        }
        const x = item.x + c * cw;
        const w = (end - c) * cw;
        if (!clip || (x + w > clip.x && x < clip.x + clip.width)) {
          const hex = color.map((v) => v.toString(16).padStart(2, "0")).join("");
          out.push(`<rect x="${num(x)}" y="${num(y)}" width="${num(w)}" height="${num(ch)}" fill="#${hex}"/>`);
        }
        c = end;
      }
    }
    return `<g shape-rendering="crispEdges"${attrs({ class: item.role ?? "" })}>${out.join("")}</g>`;
  }

  function imageEmbedded(item) {
    const { source } = item;
    const id = define(source, (iid) => {
      const href = imageHref(source);
      return `<image${attrs({ id: iid, x: 0, y: 0, width: source.cols, height: source.rows, preserveAspectRatio: "none",
        href, "xlink:href": href })}/>`;
    });
    const view = [item.sx ?? 0, item.sy ?? 0, item.sw ?? source.cols, item.sh ?? source.rows].map(num).join(" ");
    return `<svg${attrs({ x: num(item.x), y: num(item.y), width: num(item.width), height: num(item.height),
      viewBox: view, preserveAspectRatio: "none", class: item.role ?? "",
      style: item.smooth ? "" : "image-rendering:pixelated;image-rendering:optimizeSpeed" })}>` +
      `<use${attrs({ href: `#${id}`, "xlink:href": `#${id}` })}/></svg>`;
  }

  function draw(items, clip = null) {
    const out = [];
    for (const item of items) {
      if (item.kind === "text") out.push(text(item));
      else if (item.kind === "rect") out.push(rect(item));
      else if (item.kind === "rects") out.push(rects(item));
      else if (item.kind === "gradient") out.push(gradient(item));
      else if (item.kind === "image") out.push(asRects ? imageRects(item, clip) : imageEmbedded(item));
      else if (item.kind === "clip") {
        const box = { x: item.x, y: item.y, width: item.width, height: item.height };
        const id = define(`clip ${box.x} ${box.y} ${box.width} ${box.height}`, (cid) =>
          `<clipPath id="${cid}"><rect${attrs({ x: num(box.x), y: num(box.y), width: num(box.width), height: num(box.height) })}/></clipPath>`);
        out.push(`<g clip-path="url(#${id})">${draw(item.items, box).join("\n")}</g>`);
      }
    }
    return out;
  }

  const body = draw(scene.items);
  const width = num(scene.width);
  const height = num(scene.height);
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="${SVG_NS}" xmlns:xlink="${XLINK_NS}" version="1.1" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<title>${escapeXML(scene.title ?? "")}</title>`,
    defs.length ? `<defs>${defs.join("\n")}</defs>` : "",
    scene.background ? `<rect${attrs({ x: 0, y: 0, width, height, ...paintAttrs("fill", scene.background) })}/>` : "",
    ...body,
    "</svg>",
    "",
  ].filter((line) => line !== "").join("\n");
}
