// Trait values (wire dicts from Python) -> view data. Pure; no widget model.
// Empty or missing trait values give null (the view then draws nothing).

import { decode, decodeOptional, isWireArray } from "./codec.js";

/** grid_data {thumbs, layer_mean, color_by?, color_by_name?, ready?, size} -> {thumbs, layer_mean, color_by, ready, size, metric}
 * (ready: uint8 [L], 0 for a layer the kernel's background pass has not reached yet; absent = all ready).
 * Thumbnails are [L, H, sq, sk]: square for self-attention, a rectangle for cross-attention. */
export function gridData(value) {
  if (!value || !isWireArray(value.thumbs)) return null;
  const thumbs = decode(value.thumbs);
  if (thumbs.shape.length !== 4 || thumbs.dtype !== "uint8") {
    throw new TypeError(`grid_data.thumbs: expected uint8 [L, H, s, s] (or [L, H, sq, sk]), got ${thumbs.dtype} [${thumbs.shape}]`);
  }
  return { thumbs, layer_mean: decodeOptional(value.layer_mean), color_by: decodeOptional(value.color_by),
    ready: decodeOptional(value.ready), size: value.size ?? thumbs.shape[2],
    metric: typeof value.color_by_name === "string" ? value.color_by_name : null };
}

/** heatmap_data {matrix, row0, col0, n_rows, n_cols, n_queries?, n_keys?, title?} (tile messages have the
 * same fields): the matrix covers query rows row0..row0+n_rows and keys col0..col0+n_cols of the whole
 * n_queries x n_keys pattern (a rectangle for cross-attention; absent: unknown, the view uses its tokens). */
export function heatmapData(value) {
  if (!value || !isWireArray(value.matrix)) return null;
  const matrix = decode(value.matrix);
  if (matrix.shape.length !== 2) throw new TypeError(`heatmap_data.matrix: expected 2-D, got [${matrix.shape}]`);
  return { matrix, row0: value.row0 ?? 0, col0: value.col0 ?? 0,
    n_rows: value.n_rows ?? matrix.shape[0], n_cols: value.n_cols ?? matrix.shape[1], title: value.title,
    n_queries: value.n_queries ?? null, n_keys: value.n_keys ?? null };
}

/** lines_data {weights [heads, n], token, direction, heads}: "from": token is a query, weights over the keys;
 * "to": token is a key, weights over the queries (cross-attention: queries are target tokens, keys source). */
export function linesData(value) {
  if (!value || !isWireArray(value.weights) || value.token == null) return null;
  const weights = decode(value.weights);
  if (weights.shape.length === 1) weights.shape = [1, weights.shape[0]];
  return { weights, token: value.token, direction: value.direction === "to" ? "to" : "from",
    heads: Array.isArray(value.heads) ? value.heads : [] };
}

/** graph_data {pos [n, 2], edges [m, 2], weights [m], start?, stop?, total?} (the token window shown) */
export function graphData(value) {
  if (!value || !isWireArray(value.pos) || !isWireArray(value.edges) || !isWireArray(value.weights)) return null;
  const pos = decode(value.pos);
  return { pos, edges: decode(value.edges), weights: decode(value.weights), start: value.start ?? 0,
    stop: value.stop ?? pos.shape[0], total: value.total ?? pos.shape[0] };
}

/** rollout_data {values [n], flow? [n], row, label?} (label: which rollout, e.g. "rollout (max of heads,
 * lowest 90% discarded)"; absent from older exports: plain "rollout") */
export function rolloutData(value) {
  if (!value || !isWireArray(value.values)) return null;
  return { values: decode(value.values), flow: decodeOptional(value.flow), row: value.row ?? null,
    label: typeof value.label === "string" && value.label ? value.label : "rollout" };
}

/** A custom "tile" message plus its binary buffers -> heatmap data. */
export function tileData(message, buffers) {
  const buffer = buffers?.[message.buffer_index ?? 0];
  if (buffer == null) throw new TypeError("tile message without a binary buffer");
  return heatmapData({ ...message, matrix: { buffer, dtype: message.dtype, shape: message.shape } });
}

/** Toggle a token in a sorted list of selected tokens (returns a new array). */
export function toggleToken(list, token) {
  const current = Array.isArray(list) ? list : [];
  return current.includes(token) ? current.filter((t) => t !== token) : [...current, token].sort((a, b) => a - b);
}

/** text_data {values? [n], token, source, note} -> {values (decoded or null), token, source, note} */
export function textData(value) {
  if (!value || value.token == null) return null;
  const values = decodeOptional(value.values);
  if (values && values.shape.length !== 1) throw new TypeError(`text_data.values: expected 1-D, got [${values.shape}]`);
  return { values, token: value.token, source: value.source ?? "attention", note: value.note ?? "" };
}

/** image {picture: uint8 [H, W, 3], grid: [rows, cols], patch_start} -> {picture, grid, patchStart}, or null. */
export function pictureData(value) {
  if (!value || !isWireArray(value.picture)) return null;
  const picture = decode(value.picture);
  if (picture.dtype !== "uint8" || picture.shape.length !== 3 || picture.shape[2] !== 3) {
    throw new TypeError(`image.picture: expected uint8 [H, W, 3], got ${picture.dtype} [${picture.shape}]`);
  }
  const grid = Array.isArray(value.grid) && value.grid.length === 2 ? value.grid.map(Number) : null;
  if (!grid || !(grid[0] > 0 && grid[1] > 0)) throw new TypeError(`image.grid: expected [rows, cols], got ${JSON.stringify(value.grid)}`);
  return { picture, grid, patchStart: value.patch_start ?? 0 };
}

/** image_data {token, values? float32 [rows, cols], others? float32 [k], source, note} -> decoded, or null. */
export function imageData(value) {
  if (!value || value.token == null) return null;
  const values = decodeOptional(value.values);
  if (values && values.shape.length !== 2) throw new TypeError(`image_data.values: expected [rows, cols], got [${values.shape}]`);
  return { token: value.token, values, others: decodeOptional(value.others), source: value.source ?? "attention",
    note: value.note ?? "" };
}

/**
 * query_key_data {q, k, products: float32 [d], dot, scaling, bias, softcap, score, masked, weight, layer, head,
 * key_head, query, key, query_token, key_token, note} -> the same with q, k, products decoded, or null.
 */
export function queryKeyData(value) {
  if (!value || !isWireArray(value.q) || !isWireArray(value.k) || !isWireArray(value.products)) return null;
  const [q, k, products] = [value.q, value.k, value.products].map((wire) => decode(wire));
  const size = q.data.length;
  if (k.data.length !== size || products.data.length !== size) {
    throw new TypeError(`query_key_data: q, k and products must have one length; got ${size}, ${k.data.length}, `
      + `${products.data.length}`);
  }
  const number = (x) => (typeof x === "number" ? x : Number.NaN);
  return { q: q.data, k: k.data, products: products.data, size, dot: number(value.dot), scaling: number(value.scaling),
    bias: number(value.bias ?? 0), softcap: typeof value.softcap === "number" ? value.softcap : null,
    score: number(value.score), masked: !!value.masked, weight: number(value.weight), layer: value.layer ?? 0,
    head: value.head ?? 0, keyHead: value.key_head ?? value.head ?? 0, query: value.query ?? 0, key: value.key ?? 0,
    queryToken: String(value.query_token ?? ""), keyToken: String(value.key_token ?? ""), cross: !!value.cross,
    note: String(value.note ?? "") };
}

const ROUTE_NODE_FIELDS = ["kind", "layer", "token", "row"];
const ROUTE_EDGE_FIELDS = ["source", "target", "importance", "head", "layer", "kind"];

/**
 * routes_data {nodes: {kind uint8, layer, token, row int32 [N]}, edges: {source, target int32 [M],
 * importance float32 [M], attention?, residual? float32 [M], head int16 [M] (-1: none), layer int16 [M],
 * kind uint8 [M]}, node_kinds, edge_kinds, target, threshold, num_layers, num_tokens, uses_residual, rows}
 * -> {nodes: {kind, layer, token, row}, edges: {...}, nodeKinds, edgeKinds, target, threshold, numLayers,
 * numTokens, usesResidual, rows, maxImportance} (typed arrays), or null.
 */
export function routesData(value) {
  if (!value || !value.nodes || !value.edges) return null;
  const column = (group, name, count) => {
    const wire = value[group][name];
    if (!isWireArray(wire)) throw new TypeError(`routes_data.${group}.${name}: expected a wire array`);
    const array = decode(wire);
    if (count != null && array.data.length !== count) {
      throw new TypeError(`routes_data.${group}.${name}: expected ${count} values, got ${array.data.length}`);
    }
    return array.data;
  };
  const kinds = column("nodes", "kind");
  const nodes = Object.fromEntries(ROUTE_NODE_FIELDS.map((name) => [name, column("nodes", name, kinds.length)]));
  const importance = column("edges", "importance");
  const edges = Object.fromEntries(ROUTE_EDGE_FIELDS.map((name) => [name, column("edges", name, importance.length)]));
  for (const name of ["attention", "residual"]) {
    edges[name] = isWireArray(value.edges[name]) ? column("edges", name, importance.length) : null;
  }
  const numLayers = value.num_layers ?? 0;
  let maxImportance = 0;
  for (const v of importance) if (v > maxImportance) maxImportance = v;
  return { nodes, edges, nodeKinds: value.node_kinds ?? ["res", "mid", "ffn"],
    edgeKinds: value.edge_kinds ?? ["attention", "residual", "attention+residual", "ffn"],
    target: value.target ?? 0, threshold: value.threshold ?? 0, numLayers, numTokens: value.num_tokens ?? 0,
    usesResidual: !!value.uses_residual, rows: value.rows ?? 2 * numLayers + 1, maxImportance };
}
