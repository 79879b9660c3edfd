// Pure geometry of the image view: the picture fitted in a box, its patch grid, pointer -> patch ->
// token and back, and keyboard moves between patches. No DOM. Coordinates are CSS pixels relative
// to the canvas' top-left corner.
//
// A vision transformer's tokens: `patchStart` tokens first ([CLS], [DIST], registers), then the
// patches row by row: patch (r, c) is token patchStart + r * cols + c.

/**
 * The picture (imageWidth x imageHeight pixels) scaled to fit a box {left, top, width, height}
 * keeping its aspect ratio, centred: {left, top, width, height, scale}.
 */
export function fitImage(imageWidth, imageHeight, box) {
  const scale = Math.min(box.width / Math.max(1, imageWidth), box.height / Math.max(1, imageHeight));
  const width = imageWidth * scale;
  const height = imageHeight * scale;
  return { left: box.left + (box.width - width) / 2, top: box.top + (box.height - height) / 2, width, height, scale };
}

/** Patch {r, c} under (x, y) in a fitted picture with a [rows, cols] grid, or null outside it. */
export function patchAt(fit, grid, x, y) {
  const [rows, cols] = grid;
  const fx = (x - fit.left) / fit.width;
  const fy = (y - fit.top) / fit.height;
  if (!(fx >= 0 && fx < 1 && fy >= 0 && fy < 1)) return null;
  return { r: Math.min(rows - 1, Math.floor(fy * rows)), c: Math.min(cols - 1, Math.floor(fx * cols)) };
}

/** The rectangle {x, y, width, height} of patch (r, c) in a fitted picture. */
export function patchRect(fit, grid, r, c) {
  const [rows, cols] = grid;
  const width = fit.width / cols;
  const height = fit.height / rows;
  return { x: fit.left + c * width, y: fit.top + r * height, width, height };
}

/** Token index of patch (r, c). */
export function patchToken(patchStart, grid, r, c) {
  return patchStart + r * grid[1] + c;
}

/** Patch {r, c} of a token, or null for a token that is not a patch ([CLS], registers, past the grid). */
export function tokenPatch(patchStart, grid, token) {
  if (token == null) return null;
  const i = token - patchStart;
  if (!(i >= 0 && i < grid[0] * grid[1])) return null;
  return { r: Math.floor(i / grid[1]), c: i % grid[1] };
}

const MOVES = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };

/**
 * The patch a key moves to from `from` ({r, c} or null: start at the top-left): arrows move one
 * patch (clamped at the edges), Home / End go to the first / last patch. Null for other keys.
 */
export function movePatch(from, key, grid) {
  const [rows, cols] = grid;
  if (key === "Home") return { r: 0, c: 0 };
  if (key === "End") return { r: rows - 1, c: cols - 1 };
  const move = MOVES[key];
  if (!move) return null;
  if (!from) return { r: 0, c: 0 };
  return {
    r: Math.max(0, Math.min(rows - 1, from.r + move[0])),
    c: Math.max(0, Math.min(cols - 1, from.c + move[1])),
  };
}

/** Indices of the tokens that are not patches, in order: 0..patchStart-1, then any after the grid. */
export function otherTokens(patchStart, grid, count) {
  const out = [];
  for (let i = 0; i < Math.min(patchStart, count); i++) out.push(i);
  for (let i = patchStart + grid[0] * grid[1]; i < count; i++) out.push(i);
  return out;
}
