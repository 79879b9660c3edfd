// anywidget adapter: model events in, view callbacks out, one cleanup.
// Drawing lives in views/*.js; decoding in traits.js. See docs/frontend.md.

import { themeLUT } from "./colors.js";
import { focusable, gridKey, keepKeys, liveRegion, matrixKey, windowShowing } from "./keyboard.js";
import { fitSize, gridBudget, layoutWidth, planLayout, sameWindow, viewSizeOptions, WIDGET_LAYOUT } from "./layout.js";
import { watchTheme } from "./theme.js";
import { createToolbar, DEFAULT_VIEWS } from "./toolbar.js";
import {
  gridData, graphData, heatmapData, imageData, linesData, pictureData, queryKeyData, rolloutData, routesData, textData,
  tileData, toggleToken,
} from "./traits.js";
import { answerFigureRequest, createListeners, downloadPNG, element, figureCanvas, modelBinding } from "./views/canvas.js";
import { mountGraph } from "./views/graph.js";
import { mountGrid } from "./views/grid.js";
import { mountHeatmap } from "./views/heatmap.js";
import { mountImage } from "./views/image.js";
import { mountLines } from "./views/lines.js";
import { mountQueryKey } from "./views/querykey.js";
import { mountRoutes } from "./views/routes.js";
import { mountStrip } from "./views/strip.js";
import { mountText } from "./views/text.js";

const VIEWS = {
  heatmap: { trait: "heatmap_data", mount: mountHeatmap, data: heatmapData },
  text: { trait: "text_data", mount: mountText, data: textData },
  lines: { trait: "lines_data", mount: mountLines, data: linesData },
  graph: { trait: "graph_data", mount: mountGraph, data: graphData },
  rollout: { trait: "rollout_data", mount: mountStrip, data: rolloutData },
  image: { trait: "image_data", mount: mountImage, data: imageData },
  "query-key": { trait: "query_key_data", mount: mountQueryKey, data: queryKeyData },
  routes: { trait: "routes_data", mount: mountRoutes, data: routesData },
};
/** What the grid's and heatmap's colour bars and titles call a value, per measure. */
const QUANTITY = { attention: "weight", contribution: "contribution" };

function render({ model, el }) {
  const started = performance.timeOrigin + performance.now();
  const binding = modelBinding(model);
  const { on, save } = binding;

  // The theme is read again once el is attached (anywidget renders before the output is in the
  // page) and whenever JupyterLab switches theme: applyTheme repaints everything.
  const themeWatch = watchTheme(el, (next) => applyTheme(next));
  let theme = themeWatch.theme;
  let lut = themeLUT(theme);
  // The widget fills the output's width up to a cap; the grid and the view share it (layout.js).
  const root = element("div", "attnwidget", {
    position: "relative", width: "100%", maxWidth: `${WIDGET_LAYOUT.cap}px`, minWidth: "0", boxSizing: "border-box",
  });
  const paintRoot = () => {
    Object.assign(root.style, { font: `12px ${theme.fontFamily}`, color: theme.foreground });
    root.dataset.theme = theme.name;
    root.dataset.dark = String(theme.isDark);
  };
  paintRoot();
  const rootListeners = createListeners();
  keepKeys(rootListeners, root); // keys typed in the widget never reach JupyterLab's shortcuts
  const live = liveRegion();
  const toolbar = createToolbar(root, theme, {
    onView: (name) => save({ view: name }),
    onThreshold: (value) => save({ threshold: value }),
    onExport: () => exportPNG(),
    onHeatmapKind: (kind) => save({ heatmap_kind: kind }),
    onScale: (kind) => save({ color_scale: kind }),
    onTextSource: (source) => save({ text_source: source }),
    onPart: (part) => save({ part }),
    onMeasure: (measure) => save({ measure }),
    onRoutesThreshold: (value) => save({ routes_threshold: value }),
    onRolloutFusion: (fusion) => save({ rollout_fusion: fusion }),
    onDiscardRatio: (ratio) => save({ discard_ratio: ratio }),
  });
  const body = element("div", "attnwidget-body", {
    display: "flex", gap: `${WIDGET_LAYOUT.gap}px`, flexWrap: "wrap", alignItems: "flex-start",
  });
  const gridBox = element("div", "attnwidget-grid-box", { flex: "none", maxWidth: "100%" });
  const viewBox = element("div", "attnwidget-view-box", { flex: "none", maxWidth: "100%" });
  const statusLine = element("div", "attnwidget-status-line", {
    display: "flex", flexWrap: "wrap", gap: "12px", minHeight: "1.2em", marginTop: "4px", color: theme.muted,
  });
  const status = element("div", "attnwidget-status", { flex: "1 1 auto" });
  const progress = element("div", "attnwidget-progress", { flex: "0 0 auto", fontVariantNumeric: "tabular-nums" });
  progress.setAttribute("role", "status");
  statusLine.append(status, progress);
  body.append(gridBox, viewBox);
  root.append(body, statusLine, live);
  el.append(root);

  let grid = null;
  let view = null;
  let viewName = null;
  let plan = null; // the layout: {width, wrap, viewWidth, viewHeight, grid: {maxWidth, maxHeight}}
  const gridKeys = createListeners(); // the keyboard on the mounted grid and view (removed on remount)
  const viewKeys = createListeners();
  const announce = (text) => { live.textContent = text; };

  const tokens = () => model.get("tokens") ?? [];
  // Cross-attention (an encoder-decoder's "cross" part): queries are the target tokens, keys the
  // source tokens (key_tokens); every other part and plain captures are square (key_tokens = tokens).
  const isCross = () => !!model.get("is_cross") || model.get("part") === "cross";
  const keyTokens = () => (isCross() ? model.get("key_tokens") ?? tokens() : tokens());
  const offeredViews = () => {
    const views = model.get("views");
    return Array.isArray(views) && views.length ? views : DEFAULT_VIEWS;
  };
  // A failure in the page (error) or in answering the page (the "error" trait) shows in red until
  // the next successful request clears it; otherwise the kernel's status line.
  let pageError = null; // the page's own failure, shown until the next status
  const showStatus = (error) => {
    pageError = error ?? null;
    const failed = error ? error.message : (model.get("error") ?? "");
    status.textContent = failed ? `attnwidget: ${failed}` : (model.get("status") ?? "");
    status.style.color = failed ? theme.error : theme.muted;
    if (failed) status.setAttribute("role", "alert");
    else status.removeAttribute("role");
  };
  const showProgress = () => { progress.textContent = model.get("progress") ?? ""; };
  const dataOf = (convert, value) => {
    try {
      return convert(value);
    } catch (error) {
      console.warn("attnwidget", error);
      showStatus(error);
      return null;
    }
  };
  const hover = (token) => {
    if ((model.get("hovered_token") ?? null) !== token) save({ hovered_token: token });
  };
  const toggle = (token) => save({ selected_tokens: toggleToken(model.get("selected_tokens"), token) });
  const quantity = () => QUANTITY[model.get("measure")] ?? "weight";

  const callbacks = {
    heatmap: {
      hover: (query) => hover(query),
      window: (win) => model.send({ type: "tile_request", ...win }),
      click: (query, key) => { // also the cell the query-key view takes apart
        const cell = offeredViews().includes("query-key") && key != null ? { query_key_cell: [query, key] } : {};
        save({ selected_tokens: toggleToken(model.get("selected_tokens"), query), ...cell });
      },
    },
    lines: {
      hover: (token, side) => {
        // A source token (right side of cross-attention) is no query: hovered_token names target tokens.
        hover(side === "to" && isCross() ? null : token);
        if (token != null) model.send({ type: "lines_hover", token, direction: side });
      },
      click: (token, side) => { if (!(side === "to" && isCross())) toggle(token); },
    },
    text: { hover, click: toggle },
    graph: { hover, click: toggle },
    rollout: { hover, click: toggle },
    image: { hover, click: toggle },
    "query-key": { cell: (query, key) => save({ query_key_cell: [query, key] }) },
    routes: { hover, target: (token) => save({ routes_target: token }),
      edge: (index) => model.send({ type: "routes_edge", edge: index }) },
  };

  function mountGridView(budget = plan?.grid) {
    gridKeys.removeAll();
    grid?.destroy();
    grid = mountGrid(gridBox, dataOf(gridData, model.get("grid_data")), {
      theme, lut, layer: model.get("layer"), head: model.get("head") ?? null, numTokens: tokens().length,
      modelName: model.get("model_name") ?? "", part: model.get("part") ?? "", quantity: quantity(),
      ...(budget ?? {}),
    }, { select: (layer, head) => save({ layer, head }) });
    grid.setHovered(model.get("hovered_token") ?? null, tokens().length);
    gridKeyboard(grid);
  }

  /** The grid from the keyboard: arrows move the selected layer (up, down) and head (left, right). */
  function gridKeyboard(mounted) {
    if (!mounted?.canvas) return;
    focusable(gridKeys, mounted.canvas, { color: () => theme.accent, label: "Layer by head grid. Arrow keys choose "
      + "the layer (up, down) and the head (left, right; the last column is the mean of heads); Home and End "
      + "go to the first head and the mean, Page Up and Page Down to the first and last layer." });
    gridKeys.on(mounted.canvas, "keydown", (event) => {
      if (event.key === "Escape") { hover(null); return; } // clears the hovered token's band
      const shape = geometryOf(mounted) ?? {};
      const layers = shape.layers ?? model.get("num_layers");
      const heads = shape.heads ?? model.get("num_heads");
      const current = { layer: model.get("layer") ?? 0, head: model.get("head") ?? null };
      const next = event.key === "Enter" || event.key === " " ? current : gridKey(event.key, { ...current, layers, heads });
      if (!next) return;
      event.preventDefault(); // the arrows move the selection, not the page
      if (next.layer !== current.layer || next.head !== current.head) save({ layer: next.layer, head: next.head });
      announce(`layer ${next.layer}, ${next.head == null ? "mean of heads" : `head ${next.head}`}`);
    });
  }

  /**
   * The heatmap from the keyboard: a cursor cell that the arrows move (query: up, down; key: left,
   * right), shown like the pointer's (the heatmap's own hover, crosshair and tooltip: a pointer
   * event at the cell's centre), so hovered_token follows; the window pans to keep it in sight.
   * Enter does what a click on that cell does (selects the query token; picks the query-key view's
   * cell where that view is offered); Escape clears the cursor, and with no cursor the
   * selected tokens.
   */
  function heatmapKeyboard(mounted) {
    const canvas = mounted?.canvas;
    if (!canvas) return;
    const [rowName, colName] = isCross() ? ["target", "source"] : ["query", "key"];
    focusable(viewKeys, canvas, { color: () => theme.accent, label: `Attention heatmap, ${rowName} tokens down, `
      + `${colName} tokens across. Arrow keys move between cells, Enter selects the ${rowName} token and the cell, Escape clears.` });
    let cursor = null;
    const pointAt = (type, cell) => {
      const g = geometryOf(mounted);
      if (!g) return;
      const rect = canvas.getBoundingClientRect();
      const x = cell ? g.left + (cell.col - g.col0 + 0.5) * g.cellW : 0;
      const y = cell ? g.top + (cell.row - g.row0 + 0.5) * g.cellH : 0;
      canvas.dispatchEvent(new PointerEvent(type, { clientX: rect.left + x, clientY: rect.top + y, bubbles: true }));
    };
    const leave = () => {
      if (!cursor) return;
      cursor = null;
      pointAt("pointerleave", null);
    };
    viewKeys.on(canvas, "keydown", (event) => {
      const g = geometryOf(mounted);
      if (!g?.total) return;
      const hovered = model.get("hovered_token");
      const start = hovered != null ? { row: hovered, col: isCross() ? g.col0 : hovered } : { row: g.row0, col: g.col0 };
      const result = matrixKey(event.key, cursor, { rows: g.total.rows, cols: g.total.cols,
        page: Math.max(1, g.rows - 1), start });
      if (!result) return;
      event.preventDefault();
      if (result.action === "select") {
        callbacks.heatmap.click(cursor.row, cursor.col); // as a click: the token, and the query-key cell
        const on = (model.get("selected_tokens") ?? []).includes(cursor.row);
        announce(`${rowName} ${cursor.row} ${on ? "selected" : "unselected"}`);
      } else if (result.action === "clear") {
        const had = !!cursor;
        if (had) leave();
        else if ((model.get("selected_tokens") ?? []).length) save({ selected_tokens: [] });
        announce(had ? "" : "selection cleared");
      } else {
        cursor = { row: result.row, col: result.col };
        const win = { row0: g.row0, col0: g.col0, rows: g.rows, cols: g.cols };
        const shown = windowShowing(win, cursor.row, cursor.col);
        if (shown !== win && mounted.setWindow) {
          mounted.setWindow(shown);
          if (mounted.window) model.send({ type: "tile_request", ...mounted.window });
        }
        pointAt("pointermove", cursor);
        announce(`${rowName} ${cursor.row} ${tokens()[cursor.row] ?? ""}, ${colName} ${cursor.col} ${keyTokens()[cursor.col] ?? ""}`);
      }
    });
    viewKeys.on(canvas, "blur", leave);
  }

  /** A mounted view's published geometry (its box's data-geometry), or null. */
  function geometryOf(mounted) {
    try {
      return JSON.parse(mounted?.box?.dataset?.geometry ?? "null");
    } catch {
      return null;
    }
  }

  // What a mounted view depends on besides its data trait: a change of any of these remounts it
  // (a part switch changes several at once; the view is remounted once).
  let mounted = null;
  const mountKey = () => [model.get("view"), model.get("part"), model.get("tokens"), model.get("key_tokens"),
    model.get("is_causal"), model.get("is_cross"), model.get("image"), model.get("views"), model.get("measure")];
  const sameKey = (a, b) => !!a && a.length === b.length && a.every((v, i) => v === b[i]);

  /** Mount the view in the layout's view box; `keepWindow`: a remount of the same view (resize, theme) keeps the heatmap's zoom. */
  function mountView({ keepWindow = false } = {}) {
    const same = sameKey(mounted, mountKey()); // the same tokens and view: the zoom still applies
    const previous = keepWindow && same && viewName === "heatmap" ? view?.window ?? null : null;
    viewKeys.removeAll();
    view?.destroy();
    mounted = mountKey();
    const wanted = model.get("view");
    viewName = offeredViews().includes(wanted) && VIEWS[wanted] ? wanted : "heatmap";
    const spec = VIEWS[viewName];
    const mountWith = (sizes) => spec.mount(viewBox, dataOf(spec.data, model.get(spec.trait)), {
      theme, lut, tokens: tokens(), keyTokens: keyTokens(), cross: isCross(), causal: !!model.get("is_causal"),
      threshold: model.get("threshold") ?? 0, scale: model.get("color_scale") ?? "linear",
      picture: viewName === "image" ? dataOf(pictureData, model.get("image")) : null,
      modelName: model.get("model_name") ?? "", quantity: quantity(), ...sizes,
    }, callbacks[viewName]);
    const sizes = plan ? viewSizeOptions(viewName, plan) : {};
    view = mountWith(sizes);
    // A view sized by one `size` draws labels, a title and a colour bar around it: once mounted, its
    // box says how much; mounted again at the size that fills the view box.
    const corrected = plan && sizes.size != null ? fitSize(sizes.size, boxSize(view), plan) : null;
    if (corrected != null) {
      view.destroy();
      view = mountWith({ ...sizes, size: corrected });
    }
    if (previous && view.setWindow) { // the zoomed window again, and its full-resolution tile
      const full = view.window;
      view.setWindow(previous);
      if (view.window && !sameWindow(full, view.window)) model.send({ type: "tile_request", ...view.window });
    }
    if (viewName === "heatmap") heatmapKeyboard(view);
    view.setHovered(model.get("hovered_token") ?? null);
    view.setSelected(model.get("selected_tokens") ?? []);
    toolbar.setViews(offeredViews());
    toolbar.setView(viewName);
  }

  /** Remount the view if what it was mounted with changed (idempotent within one batch of changes). */
  function remountView() {
    if (!sameKey(mounted, mountKey())) mountView();
  }

  /** A view's box in CSS px (its inline size; laid out size when it has none). */
  function boxSize(mounted) {
    const box = mounted?.box;
    if (!box) return { width: 0, height: 0 };
    return { width: parseFloat(box.style.width) || box.offsetWidth, height: parseFloat(box.style.height) || box.offsetHeight };
  }

  /**
   * Lay the widget out for the root's width: the grid at its budget, then the view beside it or
   * wrapped under it in a box of one size for every tab. Remounts only what the new layout changes
   * (`force`: both, e.g. for a new theme; `replan`: the grid was remounted, e.g. for another part, and
   * may be wider or narrower). The plan is published on the root (data-layout) for tests.
   */
  function relayout(force = false, replan = false) {
    const width = layoutWidth(root.clientWidth);
    if (!force && !replan && plan && plan.width === width) return;
    const previous = plan;
    const sameBudget = (a, b) => !!a && !!b && a.maxWidth === b.maxWidth && a.maxHeight === b.maxHeight;
    let budget = gridBudget(width);
    if (force || !sameBudget(budget, previous?.grid)) mountGridView(budget);
    let next = planLayout(width, boxSize(grid).width);
    if (next.wrap) { // the grid has a row of its own: it may be wider
      const wide = gridBudget(width, { wrapped: true });
      if (!sameBudget(wide, budget)) {
        budget = wide;
        mountGridView(budget);
        next = { ...planLayout(width, boxSize(grid).width), wrap: true, viewWidth: width };
      }
    }
    plan = { ...next, grid: budget };
    gridBox.style.overflowX = boxSize(grid).width > width ? "auto" : "";
    Object.assign(viewBox.style, { width: `${plan.viewWidth}px`, minHeight: `${plan.viewHeight}px` });
    root.dataset.layout = JSON.stringify(plan);
    const resized = !previous || previous.viewWidth !== plan.viewWidth || previous.viewHeight !== plan.viewHeight;
    if (force || resized || !view) mountView({ keepWindow: !!view });
  }

  /** A new theme: every colour is read again, the toolbar restyled in place, the grid and view repainted. */
  function applyTheme(next) {
    theme = next;
    lut = themeLUT(theme);
    paintRoot();
    statusLine.style.color = theme.muted;
    toolbar.setTheme(theme);
    showStatus(pageError);
    relayout(true);
  }

  // Width changes (the window, JupyterLab's sidebars) re-lay the widget out: at once the first time,
  // then once the size has settled, so a sidebar drag does not remount the views at every step.
  let resizeTimer = 0;
  let measured = root.clientWidth > 0; // laid out for a real width (else for the fallback, while detached)
  const resizeObserver = typeof ResizeObserver === "function" ? new ResizeObserver(() => {
    themeWatch.check(); // attached (or shown) now: its own theme variables are readable
    const width = root.clientWidth;
    if (!(width > 0)) return; // hidden (a collapsed output, a background tab): keep the layout
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => relayout(), measured ? 120 : 0);
    measured = true;
  }) : null;

  function showParts() {
    toolbar.setParts(model.get("parts") ?? [], model.get("part") ?? null);
    toolbar.setMeasures(model.get("measures") ?? [], model.get("measure") ?? null);
    toolbar.setRollout(!isCross());
  }

  function exportPNG() {
    const head = model.get("head");
    const part = model.get("part") ? `${model.get("part")}-` : "";
    const name = `attention-${part}${viewName}-L${model.get("layer") ?? 0}-${head == null ? "mean" : `H${head}`}.png`;
    // The figure (title, colour bar, no hover decorations) at 2 px per CSS px, as save_png's default.
    return downloadPNG(figureCanvas(view, 2), name).then((saved) => {
      if (!saved) showStatus(new Error(`PNG export failed: the browser could not encode ${name}`));
      return saved;
    });
  }

  on("change:view", remountView);
  on("change:tokens", () => { mountGridView(); relayout(false, true); remountView(); });
  for (const name of ["key_tokens", "is_causal", "image", "views"]) on(`change:${name}`, remountView);
  on("change:is_cross", () => { showParts(); remountView(); });
  on("change:part", () => { showParts(); remountView(); });
  on("change:model_name", () => { mountGridView(); mountView(); }); // the figures' titles
  on("change:part", () => { mountGridView(); relayout(false, true); }); // another grid: lay out again
  on("change:parts", showParts);
  on("change:measures", showParts);
  on("change:measure", () => { showParts(); mountGridView(); remountView(); }); // titles and colour bars
  on("change:routes_threshold", () => toolbar.setRoutesThreshold(model.get("routes_threshold") ?? null));
  on("change:grid_data", () => grid.update(dataOf(gridData, model.get("grid_data"))));
  on("change:layer", () => grid.select(model.get("layer"), model.get("head") ?? null));
  on("change:head", () => grid.select(model.get("layer"), model.get("head") ?? null));
  on("change:hovered_token", () => {
    const token = model.get("hovered_token") ?? null;
    grid.setHovered(token, tokens().length);
    view.setHovered(token);
  });
  on("change:selected_tokens", () => view.setSelected(model.get("selected_tokens") ?? []));
  on("change:threshold", () => {
    toolbar.setThreshold(model.get("threshold"));
    view.setThreshold?.(model.get("threshold") ?? 0);
  });
  for (const [name, spec] of Object.entries(VIEWS)) {
    on(`change:${spec.trait}`, () => {
      if (viewName === name) view.update(dataOf(spec.data, model.get(spec.trait)));
    });
  }
  on("change:status", () => showStatus(null));
  on("change:error", () => showStatus(null));
  on("change:progress", showProgress);
  on("change:heatmap_kind", () => toolbar.setHeatmapKind(model.get("heatmap_kind") ?? null));
  on("change:color_scale", () => {
    toolbar.setScale(model.get("color_scale") ?? null);
    view.setScale?.(model.get("color_scale") ?? "linear");
  });
  on("change:text_source", () => toolbar.setTextSource(model.get("text_source") ?? null));
  const showRolloutOptions = () => toolbar.setRolloutOptions(model.get("rollout_fusion") ?? null,
    model.get("discard_ratio") ?? null);
  on("change:rollout_fusion", showRolloutOptions);
  on("change:discard_ratio", showRolloutOptions);
  // Kernel messages: a tile answering a "tile_request" ({type: "tile", row0, col0, n_rows, n_cols,
  // dtype, shape} + buffers[0]); a "png_request" ({request_id, view: "current"|"grid", scale}) or an
  // "svg_request" ({request_id, view: "heatmap"|"grid"}), answered with {type: "png"|"svg", request_id}
  // + the file's bytes as buffers[0], or {type, request_id, error} (views/canvas.js answerFigureRequest).
  on("msg:custom", (message, buffers) => {
    if (message?.type === "tile" && viewName === "heatmap") view.update(dataOf((m) => tileData(m, buffers), message));
    else if (message?.type === "png_request" || message?.type === "svg_request") {
      answerFigureRequest(model, message, { grid, view, viewName });
    }
  });

  toolbar.setThreshold(model.get("threshold"));
  toolbar.setRoutesThreshold(model.get("routes_threshold") ?? null);
  showParts();
  toolbar.setHeatmapKind(model.get("heatmap_kind") ?? null);
  toolbar.setScale(model.get("color_scale") ?? null);
  toolbar.setTextSource(model.get("text_source") ?? null);
  showRolloutOptions();
  showStatus(null);
  showProgress();
  relayout(true);
  resizeObserver?.observe(root);
  // When the first frame with the grid and the view has been painted: a task queued from that frame
  // runs after its style, layout and paint. Benchmarks and tests read it (epoch milliseconds).
  root.dataset.renderStartedAt = String(started);
  let shown = false; // "painted" sent: the kernel counts this page among those that answer save_png
  const frame = requestAnimationFrame(() => setTimeout(() => {
    if (shown === null) return; // cleaned up before the first paint
    root.dataset.paintedAt = String(performance.timeOrigin + performance.now());
    model.send({ type: "painted" }); // the kernel starts its background pass now, off the first paint's CPUs
    shown = true;
  }, 0));

  return () => {
    cancelAnimationFrame(frame);
    if (shown) {
      try { model.send({ type: "page_closed" }); } catch (error) { console.warn("attnwidget", error); } // comm closed
    }
    shown = null;
    binding.removeAll();
    themeWatch.stop();
    resizeObserver?.disconnect();
    clearTimeout(resizeTimer);
    rootListeners.removeAll();
    gridKeys.removeAll();
    viewKeys.removeAll();
    grid?.destroy();
    view?.destroy();
    toolbar.destroy();
    root.remove();
  };
}

export default { render };
