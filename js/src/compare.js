// anywidget entry of the comparison view (attnwidget.compare / ComparisonWidget): linked panels, one
// per capture. Each panel has its layer x head grid and its heatmap, on one shared colour scale; two
// panels with as many tokens can be subtracted (b - a, diverging colours). The selection lives in the
// kernel's traits: layer, head, hovered_panel/hovered_token, selected_panel/selected_token,
// difference, color_scale. Every text is set through textContent or drawn on a canvas.

import { readTheme, themeLUT } from "./colors.js";
import { gridKey } from "./keyboard.js";
import { SCALE_LABELS, SCALES } from "./scale.js";
import { createListeners, element, modelBinding } from "./views/canvas.js";
import { mountColorBar, mountCompareHeatmap } from "./views/compare_heatmap.js";
import {
  compareGrids, compareHeatmaps, describeHover, differenceData, divergingLUT, divergingScale, pairFor, partnersOf,
  sharedScale, toggleSelection,
} from "./views/compare_model.js";
import { mountGrid } from "./views/grid.js";

/** A CSS colour that follows the notebook's theme variable, with the theme read now as fallback. */
const themed = (variable, fallback) => `var(${variable}, ${fallback})`;

function controlStyle(theme) {
  return {
    font: `12px ${theme.fontFamily}`, color: themed("--jp-ui-font-color1", theme.foreground),
    background: themed("--jp-layout-color0", theme.background), border: `1px solid ${themed("--jp-border-color1", theme.border)}`,
    borderRadius: "3px", padding: "1px 2px", colorScheme: theme.isDark ? "dark" : "light",
  };
}

/** A labelled <select>: options [[value, text, disabled?]]; returns {label, select}. */
function labelledSelect(text, name, theme) {
  const label = element("label", `attnwidget-compare-${name}-label`, { display: "inline-flex", gap: "4px", alignItems: "center" });
  const caption = element("span");
  caption.textContent = text;
  const select = element("select", `attnwidget-compare-${name}`, controlStyle(theme));
  select.dataset.control = name;
  label.append(caption, select);
  return { label, select };
}

function setOptions(select, options, value) {
  select.replaceChildren(...options.map(([v, text, disabled]) => {
    const option = document.createElement("option");
    option.value = v;
    option.textContent = text;
    option.disabled = !!disabled;
    return option;
  }));
  select.value = value;
}

function render({ model, el }) {
  const binding = modelBinding(model);
  const { on, save } = binding;
  const domListeners = createListeners();

  const root = element("div", "attnwidget attnwidget-compare", { position: "relative", maxWidth: "100%" });
  el.append(root);
  let theme = readTheme(root); // read once attached: the notebook's variables resolve here
  let lut = themeLUT(theme);
  let diffLUT = divergingLUT(theme.isDark);

  // Keys typed inside the widget are the widget's: JupyterLab's shortcuts (which listen on the document)
  // must not take them, as JupyterLab's own widgets do.
  domListeners.on(root, "keydown", (event) => event.stopPropagation());

  const toolbar = element("div", "attnwidget-compare-toolbar", {
    display: "flex", flexWrap: "wrap", gap: "12px", alignItems: "center", marginBottom: "6px",
  });
  toolbar.setAttribute("role", "toolbar");
  toolbar.setAttribute("aria-label", "comparison controls");
  const barBox = element("div", "attnwidget-compare-bar", { marginBottom: "4px" });
  const panelsBox = element("div", "attnwidget-compare-panels", {
    display: "flex", flexWrap: "wrap", gap: "16px", alignItems: "flex-start",
  });
  const readout = element("div", "attnwidget-compare-readout", { minHeight: "1.2em", marginTop: "4px", whiteSpace: "pre-wrap" });
  readout.setAttribute("aria-live", "polite");
  const status = element("div", "attnwidget-compare-status", { minHeight: "1.2em", marginTop: "2px" });
  root.append(toolbar, barBox, panelsBox, readout, status);

  const names = () => model.get("names") ?? [];
  const tokens = () => model.get("tokens") ?? [];
  const keyTokens = () => model.get("key_tokens") ?? tokens();
  const causal = () => model.get("causal") ?? [];
  const indexOf = (name) => names().indexOf(name);

  let controls = null;
  let bar = null;
  let panels = []; // [{name, box, grid, heatmap}]
  let diff = null; // {box, heatmap, bar}
  let heatmaps = null;
  let difference = null;

  const showStatus = (problem) => {
    const failed = problem ? problem.message : (model.get("error") ?? "");
    status.textContent = failed ? `attnwidget: ${failed}` : (model.get("status") ?? "");
    status.style.color = failed ? (theme.isDark ? "#ff8a80" : "#c62828") : themed("--jp-ui-font-color2", theme.muted);
    if (failed) status.setAttribute("role", "alert");
    else status.removeAttribute("role");
  };
  const decoded = (convert, value) => {
    try {
      return convert(value);
    } catch (problem) {
      console.warn("attnwidget", problem);
      showStatus(problem);
      return null;
    }
  };

  function styleRoot() {
    Object.assign(root.style, { font: `12px ${theme.fontFamily}`, color: themed("--jp-ui-font-color1", theme.foreground) });
    readout.style.color = themed("--jp-ui-font-color1", theme.foreground);
    root.dataset.theme = theme.isDark ? "dark" : "light";
  }

  // ---- controls ----------------------------------------------------------------------------------
  let controlListeners = createListeners();

  function buildControls() {
    controlListeners.removeAll();
    controlListeners = createListeners();
    toolbar.replaceChildren();
    const layer = labelledSelect("layer", "layer", theme);
    const head = labelledSelect("head", "head", theme);
    const scale = labelledSelect("scale", "scale", theme);
    const minus = labelledSelect("difference: ", "difference-b", theme);
    const from = labelledSelect("minus", "difference-a", theme);
    const note = element("span", "attnwidget-compare-difference-note", { color: themed("--jp-ui-font-color2", theme.muted) });
    toolbar.append(layer.label, head.label, scale.label, minus.label, from.label, note);
    controlListeners.on(layer.select, "change", () => save({ layer: Number(layer.select.value) }));
    controlListeners.on(head.select, "change", () => save({ head: head.select.value === "mean" ? null : Number(head.select.value) }));
    controlListeners.on(scale.select, "change", () => save({ color_scale: scale.select.value }));
    controlListeners.on(from.select, "change", () => {
      const a = from.select.value === "" ? null : from.select.value;
      save({ difference: pairFor(a, (model.get("difference") ?? [])[1], names(), tokens(), keyTokens()) });
    });
    controlListeners.on(minus.select, "change", () => {
      const a = (model.get("difference") ?? [])[0];
      if (a != null && minus.select.value) save({ difference: [a, minus.select.value] });
    });
    controls = { layer: layer.select, head: head.select, scale: scale.select, a: from.select, b: minus.select, note,
      diffLabels: [minus.label, from.label] };
    showControls();
  }

  function showControls() {
    if (!controls) return;
    const L = model.get("num_layers") ?? 0;
    const H = model.get("num_heads") ?? 0;
    setOptions(controls.layer, Array.from({ length: L }, (_, l) => [String(l), `L${l}`]), String(model.get("layer") ?? 0));
    const head = model.get("head");
    setOptions(controls.head, [["mean", "mean of heads"], ...Array.from({ length: H }, (_, h) => [String(h), `H${h}`])],
      head == null ? "mean" : String(head));
    setOptions(controls.scale, SCALES.map((kind) => [kind, SCALE_LABELS[kind]]), model.get("color_scale") ?? "linear");
    const pair = model.get("difference") ?? null;
    const any = (model.get("pairs") ?? []).length > 0;
    for (const label of controls.diffLabels) label.style.display = any ? "inline-flex" : "none";
    controls.note.textContent = any ? "" : "difference: needs two panels with as many tokens";
    setOptions(controls.a, [["", "(none)"], ...names().map((name) => [name, name, !partnersOf(name, names(), tokens(), keyTokens()).length])],
      pair ? pair[0] : "");
    const partners = pair ? partnersOf(pair[0], names(), tokens(), keyTokens()) : [];
    setOptions(controls.b, names().map((name) => [name, name, !partners.includes(name)]), pair ? pair[1] : "");
    controls.b.disabled = !pair;
  }

  // ---- panels ------------------------------------------------------------------------------------
  /** Long side of each heatmap: the output's width shared by up to three panels in a row. */
  function heatmapSize(count) {
    const width = el.clientWidth || root.clientWidth || 900;
    const perRow = Math.max(1, Math.min(count, Math.floor(width / 300)));
    return Math.max(140, Math.min(320, Math.floor((width - 16 * (perRow - 1)) / perRow) - 110));
  }

  function scaleNow() {
    return sharedScale(model.get("color_scale") ?? "linear", heatmaps);
  }

  function diffScaleNow() {
    if (!difference) return divergingScale(0);
    return divergingScale(model.get("color_scale") === "no_sink" ? difference.maxAbsNoSink : difference.maxAbs);
  }

  function scaleTitle() {
    const kind = model.get("color_scale") ?? "linear";
    const top = kind === "no_sink" ? heatmaps?.maxNoSink : heatmaps?.max;
    return `weight, one scale for every panel (max ${Number(top ?? 0).toPrecision(3)}; ${SCALE_LABELS[kind] ?? kind})`;
  }

  function destroyPanels() {
    for (const panel of panels) { panel.grid?.destroy(); panel.heatmap?.destroy(); panel.box.remove(); }
    panels = [];
    destroyDifference();
    bar?.destroy();
    bar = null;
  }

  function destroyDifference() {
    if (!diff) return;
    diff.heatmap.destroy();
    diff.bar.destroy();
    diff.box.remove();
    diff = null;
  }

  function panelBox(name, caption) {
    const box = element("section", "attnwidget-compare-panel", {
      display: "flex", flexDirection: "column", gap: "4px", padding: "6px", borderRadius: "4px",
      border: `1px solid ${themed("--jp-border-color2", theme.border)}`, minWidth: "0",
    });
    box.dataset.panel = name;
    box.setAttribute("aria-label", caption);
    const title = element("div", "attnwidget-compare-panel-title", { fontWeight: "600" });
    title.textContent = caption;
    box.append(title);
    return box;
  }

  function mountPanels() {
    destroyPanels();
    heatmaps = decoded(compareHeatmaps, model.get("heatmap_data"));
    const grids = decoded(compareGrids, model.get("grid_data")) ?? [];
    const count = names().length + (model.get("difference") ? 1 : 0);
    const size = heatmapSize(count);
    bar = mountColorBar(barBox, { theme, lut, scale: scaleNow(), title: scaleTitle(), width: Math.min(420, size + 120), name: "compare-colorbar" });
    const scale = scaleNow();
    names().forEach((name, i) => {
      const n = (tokens()[i] ?? []).length;
      const box = panelBox(name, `${name} · ${n} tokens`);
      panelsBox.append(box);
      const gridBox = element("div", "attnwidget-compare-grid-box");
      const heatBox = element("div", "attnwidget-compare-heatmap-box");
      box.append(gridBox, heatBox);
      const grid = grids[i] ? mountGrid(gridBox, grids[i], {
        theme, lut, layer: model.get("layer") ?? 0, head: model.get("head") ?? null, numTokens: n,
        maxWidth: size + 90, maxHeight: 260,
      }, { select: (layer, head) => save({ layer, head }) }) : null;
      if (grid?.canvas) gridKeyboard(grid.canvas, name);
      const tile = heatmaps?.panels[i] ?? null;
      const heatmap = mountCompareHeatmap(heatBox, tile, {
        theme, lut, scale, tokens: tokens()[i] ?? [], keyTokens: keyTokens()[i] ?? tokens()[i] ?? [],
        causal: !!causal()[i], size, name, label: `heatmap of ${name}`,
      }, {
        hover: (row) => hover(name, row),
        click: (row) => click(name, row),
      });
      panels.push({ name, box, grid, heatmap, n });
    });
    mountDifference(size);
    showHover();
    showSelected();
  }

  function mountDifference(size = heatmapSize(names().length + 1)) {
    destroyDifference();
    difference = decoded(differenceData, model.get("difference_data"));
    root.dataset.difference = difference ? `${difference.b}-${difference.a}` : "";
    if (!difference) return;
    const i = indexOf(difference.b);
    const box = panelBox("difference", `${difference.b} − ${difference.a} (difference)`);
    box.classList.add("attnwidget-compare-difference-panel");
    panelsBox.append(box);
    const scale = diffScaleNow();
    const heatmap = mountCompareHeatmap(box, difference, {
      theme, lut: diffLUT, scale, tokens: tokens()[i] ?? [], keyTokens: keyTokens()[i] ?? tokens()[i] ?? [],
      causal: !!causal()[i], size, name: "difference", diverging: true,
      otherTokens: tokens()[indexOf(difference.a)] ?? null, otherKeyTokens: keyTokens()[indexOf(difference.a)] ?? null,
      label: `difference heatmap, ${difference.b} minus ${difference.a}`,
    }, {
      hover: (row) => hover(difference.b, row),
      click: (row) => click(difference.b, row),
    });
    const diffBar = mountColorBar(box, { theme, lut: diffLUT, scale, width: Math.min(360, size + 80),
      title: `${difference.b} − ${difference.a} (blue: ${difference.a} attends more, red: ${difference.b})`,
      name: "compare-difference-colorbar" });
    diff = { box, heatmap, bar: diffBar };
    showHover();
    showSelected();
  }

  /** A panel's grid from the keyboard: arrows move the shared layer (up, down) and head (left, right;
   * the last column is the mean), Home/End the first head and the mean, Page Up/Down the first and
   * last layer. The grid's own listeners go with it when the panels are remade. */
  function gridKeyboard(canvas, name) {
    canvas.tabIndex = 0;
    canvas.setAttribute("role", "group");
    canvas.setAttribute("aria-roledescription", "layer by head grid");
    canvas.setAttribute("aria-label", `layer by head grid of ${name}: arrow keys choose the layer (up, down) `
      + "and the head (left, right; the last column is the mean of heads), for every panel");
    const onKey = (event) => {
      const current = { layer: model.get("layer") ?? 0, head: model.get("head") ?? null };
      const next = gridKey(event.key, { ...current, layers: model.get("num_layers") ?? 0, heads: model.get("num_heads") ?? 0 });
      if (!next) return;
      event.preventDefault();
      if (next.layer !== current.layer || next.head !== current.head) save({ layer: next.layer, head: next.head });
    };
    const ring = (on) => () => { canvas.style.outline = on ? `2px solid ${theme.accent}` : ""; canvas.style.outlineOffset = "2px"; };
    canvas.addEventListener("keydown", onKey);
    canvas.addEventListener("focus", ring(true));
    canvas.addEventListener("blur", ring(false));
  }

  // ---- selection ---------------------------------------------------------------------------------
  function hover(name, row) {
    const panel = row == null ? null : name;
    if ((model.get("hovered_panel") ?? null) !== panel || (model.get("hovered_token") ?? null) !== row) {
      save({ hovered_panel: panel, hovered_token: row });
    }
  }

  function click(name, row) {
    const next = toggleSelection({ panel: model.get("selected_panel") ?? null, token: model.get("selected_token") ?? null }, name, row);
    save({ selected_panel: next.panel, selected_token: next.token });
  }

  /** The hovered row shows in its panel (every panel when the kernel names none), and in the difference
   * when its panel is one of the two subtracted. */
  function showHover() {
    const panel = model.get("hovered_panel") ?? null;
    const token = model.get("hovered_token") ?? null;
    for (const p of panels) {
      const row = token != null && (panel == null || panel === p.name) && token < p.n ? token : null;
      p.heatmap.setHovered(row);
      p.grid?.setHovered(row, p.n);
    }
    if (diff) {
      const inPair = panel == null || panel === difference.a || panel === difference.b;
      diff.heatmap.setHovered(inPair ? token : null);
    }
    readout.textContent = describeHover(names(), tokens(), panel, token);
  }

  function showSelected() {
    const panel = model.get("selected_panel") ?? null;
    const token = model.get("selected_token") ?? null;
    for (const p of panels) p.heatmap.setSelected(panel === p.name ? token : null);
    if (diff) diff.heatmap.setSelected(panel === difference.a || panel === difference.b ? token : null);
  }

  function showLayerHead() {
    const layer = model.get("layer") ?? 0;
    const head = model.get("head") ?? null;
    for (const p of panels) p.grid?.select(layer, head);
    root.dataset.layer = String(layer);
    root.dataset.head = head == null ? "mean" : String(head);
    if (controls) {
      controls.layer.value = String(layer);
      controls.head.value = head == null ? "mean" : String(head);
    }
  }

  function updateHeatmaps() {
    heatmaps = decoded(compareHeatmaps, model.get("heatmap_data"));
    const scale = scaleNow();
    panels.forEach((p, i) => {
      p.heatmap.setScale(scale);
      p.heatmap.update(heatmaps?.panels[i] ?? null);
    });
    bar?.update(scale, scaleTitle());
  }

  function updateDifference() {
    const next = decoded(differenceData, model.get("difference_data"));
    const samePair = diff && next && difference && next.a === difference.a && next.b === difference.b;
    if (!samePair) {
      // a new pair (or none): its panel is remade, with the size every panel has
      mountDifference(heatmapSize(names().length + (next ? 1 : 0)));
      return;
    }
    difference = next;
    const scale = diffScaleNow();
    diff.heatmap.setScale(scale);
    diff.heatmap.update(difference);
    diff.bar.update(scale);
  }

  function rescale() {
    const scale = scaleNow();
    for (const p of panels) p.heatmap.setScale(scale);
    bar?.update(scale, scaleTitle());
    if (diff) {
      const d = diffScaleNow();
      diff.heatmap.setScale(d);
      diff.bar.update(d);
    }
  }

  /** Everything drawn again with the theme read now (a JupyterLab theme switch, the page's scheme). */
  function rebuild() {
    theme = readTheme(root);
    lut = themeLUT(theme);
    diffLUT = divergingLUT(theme.isDark);
    styleRoot();
    buildControls();
    mountPanels();
    showLayerHead();
    showStatus(null);
  }

  on("change:layer", showLayerHead);
  on("change:head", showLayerHead);
  on("change:heatmap_data", updateHeatmaps);
  on("change:difference_data", updateDifference);
  on("change:difference", showControls);
  on("change:pairs", showControls);
  on("change:color_scale", () => { if (controls) controls.scale.value = model.get("color_scale") ?? "linear"; rescale(); });
  on("change:hovered_panel", showHover);
  on("change:hovered_token", showHover);
  on("change:selected_panel", showSelected);
  on("change:selected_token", showSelected);
  on("change:status", () => showStatus(null));
  on("change:error", () => showStatus(null));
  for (const name of ["names", "tokens", "key_tokens", "causal", "grid_data", "num_layers", "num_heads"]) {
    on(`change:${name}`, rebuild);
  }

  // Follow the notebook's theme live: JupyterLab marks <body> with data-jp-theme-light/-name; a plain
  // page follows prefers-color-scheme.
  const observer = typeof MutationObserver === "function" ? new MutationObserver(rebuild) : null;
  if (observer && document.body) {
    observer.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light", "data-jp-theme-name"] });
  }
  const scheme = typeof matchMedia === "function" ? matchMedia("(prefers-color-scheme: dark)") : null;
  scheme?.addEventListener?.("change", rebuild);

  rebuild();
  // Where the element is attached only after render (the theme's variables and the output's width are
  // then unknown), look again on the first frame.
  const firstLook = { theme: JSON.stringify(theme), size: heatmapSize(names().length) };
  const frame = requestAnimationFrame(() => {
    if (JSON.stringify(readTheme(root)) !== firstLook.theme || heatmapSize(names().length) !== firstLook.size) rebuild();
    root.dataset.paintedAt = String(Date.now());
  });

  return () => {
    cancelAnimationFrame(frame);
    observer?.disconnect();
    scheme?.removeEventListener?.("change", rebuild);
    binding.removeAll();
    domListeners.removeAll();
    controlListeners.removeAll();
    destroyPanels();
    root.remove();
  };
}

export default { render };
