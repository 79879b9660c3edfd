// Keyboard and focus: which cell an arrow key moves to in the layer x head grid and in the heatmap,
// the focus ring of a focusable canvas, and the wall that keeps keys from JupyterLab's shortcuts.
// The key maps are pure; the helpers take a listener registry (views/canvas.js createListeners).

/** Keys the grid and the heatmap answer: a move, "select" (Enter, Space) or "clear" (Escape). */
const MOVES = {
  ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1],
};

/**
 * The grid cell an arrow key moves the selection to: {layer, head} (head null: the mean column, the
 * last one), or null for a key the grid does not use. Up/Down change the layer, Left/Right the head
 * (Right from the last head reaches the mean column); Home/End go to the first head and the mean
 * column, PageUp/PageDown to the first and last layer. Moves stop at the edges.
 */
export function gridKey(key, { layer, head, layers, heads }) {
  if (!(layers > 0) || !(heads > 0)) return null;
  const col = head == null ? heads : head;
  const at = (l, c) => ({ layer: Math.max(0, Math.min(layers - 1, l)), head: c >= heads ? null : Math.max(0, c) });
  const move = MOVES[key];
  if (move) return at((layer ?? 0) + move[0], Math.min(heads, col + move[1]));
  if (key === "Home") return at(layer ?? 0, 0);
  if (key === "End") return at(layer ?? 0, heads);
  if (key === "PageUp") return at(0, col);
  if (key === "PageDown") return at(layers - 1, col);
  return null;
}

/**
 * What a key does in a rows x cols matrix with the cursor at {row, col} (null: none yet, `start`
 * is where it appears): {action: "move", row, col}, {action: "select"} (Enter, Space),
 * {action: "clear"} (Escape), or null for another key. Up/Down move the query (row), Left/Right the
 * key (column); Home/End go to the row's first and last key, PageUp/PageDown by `page` rows.
 */
export function matrixKey(key, cursor, { rows, cols, page = 10, start = { row: 0, col: 0 } }) {
  if (key === "Enter" || key === " ") return cursor ? { action: "select" } : null;
  if (key === "Escape") return { action: "clear" };
  if (!(rows > 0) || !(cols > 0)) return null;
  const clampRow = (r) => Math.max(0, Math.min(rows - 1, r));
  const clampCol = (c) => Math.max(0, Math.min(cols - 1, c));
  const from = cursor ?? { row: clampRow(start.row), col: clampCol(start.col) };
  const move = MOVES[key];
  let next = null;
  if (move) next = cursor ? { row: from.row + move[0], col: from.col + move[1] } : from;
  else if (key === "Home") next = { row: from.row, col: 0 };
  else if (key === "End") next = { row: from.row, col: cols - 1 };
  else if (key === "PageUp") next = { row: from.row - page, col: from.col };
  else if (key === "PageDown") next = { row: from.row + page, col: from.col };
  if (!next) return null;
  return { action: "move", row: clampRow(next.row), col: clampCol(next.col) };
}

/**
 * The smallest shift of a token window {row0, col0, rows, cols} that shows cell (row, col): the window
 * itself when the cell is inside it.
 */
export function windowShowing(win, row, col) {
  const shift = (start, size, i) => (i < start ? i : i >= start + size ? i - size + 1 : start);
  const row0 = shift(win.row0, win.rows, row);
  const col0 = shift(win.col0, win.cols, col);
  return row0 === win.row0 && col0 === win.col0 ? win : { ...win, row0, col0 };
}

/**
 * Keys typed inside `root` stay there: JupyterLab (which listens for its shortcuts on the document, in
 * the bubbling phase) never sees them, so ArrowRight on a slider moves the slider, not the notebook's
 * cursor, and focus stays. The default actions (typing, sliders, Tab) are untouched.
 */
export function keepKeys(listeners, root) {
  const stop = (event) => event.stopPropagation();
  for (const type of ["keydown", "keypress", "keyup"]) listeners.on(root, type, stop);
}

/**
 * Make a canvas focusable, named for screen readers, with a visible focus ring in `color()` (the
 * theme's accent: read at focus time, so a theme change applies) when focused from the keyboard.
 */
export function focusable(listeners, target, { label, color, role = "application" }) {
  target.tabIndex = 0;
  target.setAttribute("role", role);
  target.setAttribute("aria-label", label);
  const ring = () => {
    const keyboard = typeof target.matches !== "function" || target.matches(":focus-visible");
    target.style.outline = keyboard ? `2px solid ${color()}` : "none";
    target.style.outlineOffset = "2px";
  };
  listeners.on(target, "focus", ring);
  listeners.on(target, "blur", () => { target.style.outline = "none"; });
}

/** A visually hidden live region: what the keyboard selected, read out by screen readers. */
export function liveRegion(doc = document) {
  const node = doc.createElement("div");
  node.className = "attnwidget-live";
  node.setAttribute("aria-live", "polite");
  Object.assign(node.style, {
    position: "absolute", width: "1px", height: "1px", overflow: "hidden", clipPath: "inset(50%)",
    whiteSpace: "nowrap", margin: "-1px", padding: "0", border: "0",
  });
  return node;
}
