// anywidget adapter: model events in, view callbacks out, one cleanup.
// Drawing lives in views/*.js; decoding in traits.js. See docs/frontend.md.

import { readTheme, themeLUT } from "./colors.js";
import { createToolbar, DEFAULT_VIEWS } from "./toolbar.js";
import {
  gridData, graphData, heatmapData, imageData, linesData, pictureData, rolloutData, textData, tileData, toggleToken,
} from "./traits.js";
import { canvasToPNGBytes, downloadPNG, element } from "./views/canvas.js";
import { mountGraph } from "./views/graph.js";
import { mountGrid } from "./views/grid.js";
import { mountHeatmap } from "./views/heatmap.js";
import { mountImage } from "./views/image.js";
import { mountLines } from "./views/lines.js";
import { mountStrip } from "./views/strip.js";
import { mountText } from "./views/text.js";

const VIEWS = {
  heatmap: { trait: "heatmap_data", mount: mountHeatmap, data: heatmapData },
  text: { trait: "text_data", mount: mountText, data: textData },
  lines: { trait: "lines_data", mount: mountLines, data: linesData },
  graph: { trait: "graph_data", mount: mountGraph, data: graphData },
  rollout: { trait: "rollout_data", mount: mountStrip, data: rolloutData },
  image: { trait: "image_data", mount: mountImage, data: imageData },
};

function render({ model, el }) {
  const started = performance.timeOrigin + performance.now();
  const subscriptions = [];
  const on = (event, handler) => {
    model.on(event, handler);
    subscriptions.push([event, handler]);
  };
  const save = (changes) => {
    for (const [name, value] of Object.entries(changes)) model.set(name, value);
    model.save_changes();
  };

  const theme = readTheme(el);
  const lut = themeLUT(theme);
  const root = element("div", "attnwidget", {
    font: `12px ${theme.fontFamily}`, color: theme.foreground, position: "relative",
  });
  const toolbar = createToolbar(root, theme, {
    onView: (name) => save({ view: name }),
    onThreshold: (value) => save({ threshold: value }),
    onExport: () => exportPNG(),
    onHeatmapKind: (kind) => save({ heatmap_kind: kind }),
    onScale: (kind) => save({ color_scale: kind }),
    onTextSource: (source) => save({ text_source: source }),
    onPart: (part) => save({ part }),
    onRolloutFusion: (fusion) => save({ rollout_fusion: fusion }),
    onDiscardRatio: (ratio) => save({ discard_ratio: ratio }),
  });
  const body = element("div", "attnwidget-body", { display: "flex", gap: "16px", flexWrap: "wrap", alignItems: "flex-start" });
  const gridBox = element("div", "attnwidget-grid-box");
  const viewBox = element("div", "attnwidget-view-box");
  const statusLine = element("div", "attnwidget-status-line", {
    display: "flex", gap: "12px", minHeight: "1.2em", marginTop: "4px", color: theme.muted,
  });
  const status = element("div", "attnwidget-status", { flex: "1 1 auto" });
  const progress = element("div", "attnwidget-progress", { flex: "0 0 auto", fontVariantNumeric: "tabular-nums" });
  progress.setAttribute("role", "status");
  statusLine.append(status, progress);
  body.append(gridBox, viewBox);
  root.append(body, statusLine);
  el.append(root);

  let grid = null;
  let view = null;
  let viewName = null;

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
  const showStatus = (error) => {
    const failed = error ? error.message : (model.get("error") ?? "");
    status.textContent = failed ? `attnwidget: ${failed}` : (model.get("status") ?? "");
    status.style.color = failed ? "#d32f2f" : theme.muted;
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

  const callbacks = {
    heatmap: {
      hover: (query) => hover(query),
      window: (win) => model.send({ type: "tile_request", ...win }),
      click: (query) => toggle(query),
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
  };

  function mountGridView() {
    grid?.destroy();
    grid = mountGrid(gridBox, dataOf(gridData, model.get("grid_data")), {
      theme, lut, layer: model.get("layer"), head: model.get("head") ?? null, numTokens: tokens().length,
    }, { select: (layer, head) => save({ layer, head }) });
    grid.setHovered(model.get("hovered_token") ?? null, tokens().length);
  }

  // What a mounted view depends on besides its data trait: a change of any of these remounts it
  // (a part switch changes several at once; the view is remounted once).
  let mounted = null;
  const mountKey = () => [model.get("view"), model.get("part"), model.get("tokens"), model.get("key_tokens"),
    model.get("is_causal"), model.get("is_cross"), model.get("image"), model.get("views")];
  const sameKey = (a, b) => !!a && a.length === b.length && a.every((v, i) => v === b[i]);

  function mountView() {
    view?.destroy();
    mounted = mountKey();
    const wanted = model.get("view");
    viewName = offeredViews().includes(wanted) && VIEWS[wanted] ? wanted : "heatmap";
    const spec = VIEWS[viewName];
    view = spec.mount(viewBox, dataOf(spec.data, model.get(spec.trait)), {
      theme, lut, tokens: tokens(), keyTokens: keyTokens(), cross: isCross(), causal: !!model.get("is_causal"),
      threshold: model.get("threshold") ?? 0, scale: model.get("color_scale") ?? "linear",
      picture: viewName === "image" ? dataOf(pictureData, model.get("image")) : null,
    }, callbacks[viewName]);
    view.setHovered(model.get("hovered_token") ?? null);
    view.setSelected(model.get("selected_tokens") ?? []);
    toolbar.setViews(offeredViews());
    toolbar.setView(viewName);
  }

  /** Remount the view if what it was mounted with changed (idempotent within one batch of changes). */
  function remountView() {
    if (!sameKey(mounted, mountKey())) mountView();
  }

  function showParts() {
    toolbar.setParts(model.get("parts") ?? [], model.get("part") ?? null);
    toolbar.setRollout(!isCross());
  }

  function exportPNG() {
    const head = model.get("head");
    const part = model.get("part") ? `${model.get("part")}-` : "";
    const name = `attention-${part}${viewName}-L${model.get("layer") ?? 0}-${head == null ? "mean" : `H${head}`}.png`;
    return downloadPNG(view.toCanvas(), name);
  }

  async function answerPNG({ request_id, view: which }) {
    const target = which === "grid" ? grid : view;
    const bytes = target ? await canvasToPNGBytes(target.toCanvas()) : null;
    if (bytes) model.send({ type: "png", request_id }, undefined, [bytes]);
    else model.send({ type: "png", request_id, error: "the page could not encode the canvas as PNG" });
  }

  on("change:view", remountView);
  on("change:tokens", () => { mountGridView(); remountView(); });
  for (const name of ["key_tokens", "is_causal", "image", "views"]) on(`change:${name}`, remountView);
  on("change:is_cross", () => { showParts(); remountView(); });
  on("change:part", () => { showParts(); remountView(); });
  on("change:parts", showParts);
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
  // dtype, shape} + buffers[0]); a "png_request" ({request_id, view: "current"|"grid"}), answered with
  // {type: "png", request_id} + the PNG bytes as buffers[0] (or {type: "png", request_id, error}).
  on("msg:custom", (message, buffers) => {
    if (message?.type === "tile" && viewName === "heatmap") view.update(dataOf((m) => tileData(m, buffers), message));
    else if (message?.type === "png_request") answerPNG(message);
  });

  toolbar.setThreshold(model.get("threshold"));
  showParts();
  toolbar.setHeatmapKind(model.get("heatmap_kind") ?? null);
  toolbar.setScale(model.get("color_scale") ?? null);
  toolbar.setTextSource(model.get("text_source") ?? null);
  showRolloutOptions();
  showStatus(null);
  showProgress();
  mountGridView();
  mountView();
  // When the first frame with the grid and the view has been painted: a task queued from that frame
  // runs after its style, layout and paint. Benchmarks and tests read it (epoch milliseconds).
  root.dataset.renderStartedAt = String(started);
  const frame = requestAnimationFrame(() => setTimeout(() => {
    root.dataset.paintedAt = String(performance.timeOrigin + performance.now());
    model.send({ type: "painted" }); // the kernel starts its background pass now, off the first paint's CPUs
  }, 0));

  return () => {
    cancelAnimationFrame(frame);
    for (const [event, handler] of subscriptions) model.off(event, handler);
    subscriptions.length = 0;
    grid?.destroy();
    view?.destroy();
    toolbar.destroy();
    root.remove();
  };
}

export default { render };
