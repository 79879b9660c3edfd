// The widget's toolbar: part selector (encoder-decoder captures), measure selector (captures with
// values), view tabs, graph threshold slider, selectors, rollout options, routes threshold, PNG export
// button. Built with DOM APIs; every text goes through textContent.

import { radioGroup } from "./radio.js";
import { SCALE_LABELS, SCALES } from "./scale.js";
import { createListeners, element } from "./views/canvas.js";

export const VIEW_NAMES = ["heatmap", "text", "lines", "graph", "rollout", "query-key", "routes", "image"];
/** The views a model without a `views` trait offers (an older static page): those that need no kernel
 * beyond weights and no picture. */
export const DEFAULT_VIEWS = VIEW_NAMES.filter((name) => !["image", "query-key", "routes"].includes(name));
export const HEATMAP_KINDS = ["attention", "rollout"];
export const TEXT_SOURCES = ["attention", "rollout", "flow"];
export const PART_LABELS = { encoder: "encoder", decoder: "decoder", cross: "cross-attention" };
/** What the views measure (the kernel's `measure`), with their captions and tooltips. */
export const MEASURE_LABELS = { attention: "attention", contribution: "contribution" };
export const MEASURE_TITLES = {
  attention: "attention weights",
  contribution: "value-weighted contributions ||αf(x)|| (Kobayashi et al. 2020), each row's share",
};
/** The routes threshold box: 0 .. ROUTES_MAX in steps of ROUTES_STEP (any value below 1 can be typed). */
export const ROUTES_STEP = 0.01;
export const ROUTES_MAX = 0.99;
/** Rollout's head fusions (the kernel's `rollout_fusion`), with their captions. */
export const ROLLOUT_FUSIONS = ["mean", "max", "min"];
export const FUSION_LABELS = { mean: "mean of heads", max: "max of heads", min: "min of heads" };
/** The discard ratio box: 0 .. DISCARD_MAX in steps of DISCARD_STEP (the arrow keys; any value can be typed). */
export const DISCARD_STEP = 0.05;
export const DISCARD_MAX = 0.99;
/** What each tab shows (its tooltip). */
export const VIEW_TITLES = {
  heatmap: "query x key weights of the selected layer and head",
  text: "the prompt, coloured by the focused token's attention, rollout or flow",
  lines: "lines from each query to the keys it attends to",
  graph: "tokens as nodes, attention above the threshold as edges",
  rollout: "attention rollout (and flow) of the focused token over all layers",
  "query-key": "one score taken apart: the query and key vectors and their products, dimension by dimension",
  routes: "information-flow routes into one token, layer by layer (click a token label to change it)",
  image: "the picture's patches, coloured by the focused token's attention",
};

/**
 * Whether the view shows rollout, so that the rollout options apply: the rollout strip, the heatmap of
 * the rollout, the text or image view coloured by it. Never for cross-attention (it has none).
 */
export function rolloutShown({ view, heatmapKind, textSource, rolloutOffered = true }) {
  if (!rolloutOffered) return false;
  if (view === "rollout") return true;
  if (view === "heatmap") return heatmapKind === "rollout";
  if (view === "text" || view === "image") return textSource === "rollout";
  return false;
}

/**
 * The discard ratio typed in its box -> the number to send, or null when there is none (an empty box,
 * or text that is no finite number: the box then shows the kernel's value again). A number out of
 * range is sent as it is: the kernel refuses it with its reason, shown in the status line.
 */
export function parseDiscard(text) {
  const trimmed = String(text ?? "").trim();
  if (!trimmed) return null;
  const value = Number(trimmed);
  return Number.isFinite(value) ? value : null;
}

/** A ratio for its box: at most four decimals, no trailing zeros ("0.9", "0", "0.875"). */
export function formatDiscard(value) {
  const v = value == null ? Number.NaN : Number(value);
  return Number.isFinite(v) ? String(Number(v.toFixed(4))) : "";
}

/** Form controls in the theme's colours (a dark notebook gets dark controls, not white boxes). */
function controlStyle(theme) {
  return {
    font: `12px ${theme.fontFamily}`, color: theme.foreground, background: theme.background,
    border: `1px solid ${theme.border}`, borderRadius: "3px", padding: "1px 2px",
    colorScheme: theme.isDark ? "dark" : "light",
  };
}

/** A button: the foreground on no fill, or (active) the accent fill with text that reads on it. */
export function buttonStyle(theme, active) {
  return {
    font: `12px ${theme.fontFamily}`, padding: "2px 8px", cursor: "pointer",
    border: `1px solid ${active ? theme.accent : theme.border}`, borderRadius: "3px",
    color: active ? theme.onAccent ?? theme.background : theme.foreground,
    background: active ? theme.accent : "transparent",
  };
}

/** A caption beside a control (muted text). */
function captionStyle(theme) {
  return { font: `12px ${theme.fontFamily}`, color: theme.muted };
}

/**
 * Styles that follow the theme: `add(el, style(theme))` styles an element now and again on `set(theme)`
 * (a JupyterLab theme switch restyles the toolbar in place: focus and values stay).
 */
function themed(initial) {
  const entries = [];
  const registry = {
    theme: initial,
    add(el, style) {
      entries.push([el, style]);
      Object.assign(el.style, style(registry.theme));
      return el;
    },
    set(theme) {
      registry.theme = theme;
      for (const [el, style] of entries) Object.assign(el.style, style(theme));
    },
  };
  return registry;
}

/**
 * A labelled <select> shown only on some views, and only once its value is known (a model without
 * the trait, like an older static export, never shows it). Returns {box, set(value|null), show(view)}.
 */
function selector(listeners, styles, { name, label, aria, options, views, onChange }) {
  const box = styles.add(element("label", `attnwidget-${name}`, { display: "none", alignItems: "center", gap: "4px" }),
    captionStyle);
  const text = element("span");
  text.textContent = label;
  const select = styles.add(element("select"), controlStyle);
  select.setAttribute("aria-label", aria);
  for (const [value, caption] of options) {
    const option = element("option");
    option.value = value;
    option.textContent = caption;
    select.append(option);
  }
  box.append(text, select);
  listeners.on(select, "change", () => onChange?.(select.value));
  let known = false;
  let view = null;
  const refresh = () => { box.style.display = known && views.includes(view) ? "inline-flex" : "none"; };
  return {
    box,
    set(value) {
      known = options.some(([v]) => v === value);
      if (known) select.value = value;
      refresh();
    },
    show(active) { view = active; refresh(); },
    /** Offer only some options (the others stay listed, disabled: e.g. no rollout for cross-attention). */
    allow(allowed) {
      for (const option of select.options) option.disabled = !allowed(option.value);
    },
    /** Caption option `value` anew (the measure renames what "attention" shows). */
    caption(value, text) {
      for (const option of select.options) if (option.value === value) option.textContent = text;
    },
  };
}

/**
 * The rollout options: a <select> for the head fusion and a number box for the discard ratio, shown
 * where rollout shows (see rolloutShown) and only once the model has both traits (an older static
 * export has neither). A change is sent when committed (select: on choosing; box: Enter, leaving it, or
 * its arrow keys), not on every keystroke: each value recomputes the rollout in the kernel.
 * Returns {box, set(fusion|null, discard|null), show(visible)}.
 */
function rolloutOptions(listeners, styles, { onFusion, onDiscard }) {
  const box = styles.add(element("div", "attnwidget-rollout-options", { display: "none", alignItems: "center", gap: "4px" }),
    captionStyle);
  box.setAttribute("role", "group");
  box.setAttribute("aria-label", "rollout options");
  const caption = element("span");
  caption.textContent = "rollout";
  const fusion = styles.add(element("select", "attnwidget-rollout-fusion"), controlStyle);
  fusion.setAttribute("aria-label", "rollout head fusion");
  fusion.title = "How each layer's heads are fused before rollout multiplies the layers";
  for (const value of ROLLOUT_FUSIONS) {
    const option = element("option");
    option.value = value;
    option.textContent = FUSION_LABELS[value];
    fusion.append(option);
  }
  const discardLabel = element("label", null, { display: "inline-flex", alignItems: "center", gap: "4px" });
  const discardText = element("span");
  discardText.textContent = "discard";
  const discard = styles.add(element("input", "attnwidget-discard-ratio", { width: "4.5em" }), controlStyle);
  discard.type = "number";
  discard.min = "0";
  discard.max = String(DISCARD_MAX);
  discard.step = String(DISCARD_STEP);
  discard.setAttribute("aria-label", "rollout discard ratio: the lowest fraction of each layer's weights set to 0");
  discard.title = "Fraction of each layer's lowest fused weights set to 0 before rollout (0 to below 1; ViT recipe: max, 0.9)";
  discardLabel.append(discardText, discard);
  box.append(caption, fusion, discardLabel);

  let fusionValue = null;
  let discardValue = null;
  let visible = false;
  const refresh = () => {
    const known = fusionValue != null && discardValue != null;
    box.style.display = known && visible ? "inline-flex" : "none";
  };
  listeners.on(fusion, "change", () => onFusion?.(fusion.value));
  listeners.on(discard, "change", () => {
    const value = parseDiscard(discard.value);
    if (value == null) discard.value = formatDiscard(discardValue);  // nothing to send: the kernel's value
    else if (value !== discardValue) onDiscard?.(value);
  });
  return {
    box,
    set(fusionNext, discardNext) {
      fusionValue = ROLLOUT_FUSIONS.includes(fusionNext) ? fusionNext : null;
      discardValue = typeof discardNext === "number" && Number.isFinite(discardNext) ? discardNext : null;
      if (fusionValue != null) fusion.value = fusionValue;
      if (discardValue != null) discard.value = formatDiscard(discardValue);
      refresh();
    },
    show(next) { visible = !!next; refresh(); },
  };
}

/**
 * A number box for a ratio in [0, 1) (the routes threshold), sent when committed (Enter, leaving it, its
 * arrows), shown on `views` once its value is known. Returns {box, set(value|null), show(view)}.
 */
function ratioBox(listeners, styles, { name, label, aria, title, step, max, views, onChange }) {
  const box = styles.add(element("label", `attnwidget-${name}`, { display: "none", alignItems: "center", gap: "4px" }),
    captionStyle);
  const text = element("span");
  text.textContent = label;
  const input = styles.add(element("input", `attnwidget-${name}-input`, { width: "4.5em" }), controlStyle);
  input.type = "number";
  input.min = "0";
  input.max = String(max);
  input.step = String(step);
  input.setAttribute("aria-label", aria);
  input.title = title;
  box.append(text, input);
  let value = null;
  let view = null;
  const refresh = () => { box.style.display = value != null && views.includes(view) ? "inline-flex" : "none"; };
  listeners.on(input, "change", () => {
    const next = parseDiscard(input.value);
    if (next == null) input.value = formatDiscard(value);
    else if (next !== value) onChange?.(next);
  });
  return {
    box,
    set(next) {
      value = typeof next === "number" && Number.isFinite(next) ? next : null;
      if (value != null) input.value = formatDiscard(value);
      refresh();
    },
    show(active) { view = active; refresh(); },
  };
}

/**
 * toolbar = createToolbar(parent, theme, {onView(name), onThreshold(value), onExport(),
 *   onHeatmapKind?(kind), onScale?(kind), onTextSource?(source), onPart?(part), onMeasure?(measure),
 *   onRolloutFusion?(fusion), onDiscardRatio?(ratio), onRoutesThreshold?(value)})
 * toolbar.setView(name), setViews(names|null), setParts(parts, part), setMeasures(measures, measure),
 * setRollout(offered), setThreshold(value), setHeatmapKind(kind|null), setScale(kind|null),
 * setTextSource(source|null), setRolloutOptions(fusion|null, discard|null), setRoutesThreshold(value|null),
 * setTheme(theme), destroy()
 */
export function createToolbar(parent, theme, handlers) {
  const listeners = createListeners();
  const styles = themed(theme);
  const bar = element("div", "attnwidget-toolbar", {
    display: "flex", alignItems: "center", gap: "6px", flexWrap: "wrap", margin: "0 0 6px 0",
  });
  bar.setAttribute("role", "toolbar");
  bar.setAttribute("aria-label", "attention views and options");
  const parts = radioGroup(listeners, styles, { name: "part", aria: "part of the encoder-decoder model",
    labels: PART_LABELS, onChoose: handlers.onPart, buttonStyle });
  // Shown only when there is a choice: a capture without values offers attention alone.
  const measures = radioGroup(listeners, styles, { name: "measure", aria: "what the views measure",
    labels: MEASURE_LABELS, onChoose: handlers.onMeasure, minimum: 2, buttonStyle });
  bar.append(parts.box, measures.box);
  const tabs = new Map();
  let offered = DEFAULT_VIEWS;
  for (const name of VIEW_NAMES) {
    const button = element("button", "attnwidget-tab");
    button.type = "button";
    button.textContent = name;
    button.dataset.view = name;
    button.title = VIEW_TITLES[name];
    listeners.on(button, "click", () => handlers.onView(name));
    tabs.set(name, button);
    bar.append(button);
  }

  const sliderBox = styles.add(element("label", "attnwidget-threshold", { display: "none", alignItems: "center", gap: "4px" }),
    captionStyle);
  const sliderText = element("span");
  const slider = styles.add(element("input"), (t) => ({ accentColor: t.accent, colorScheme: t.isDark ? "dark" : "light" }));
  slider.type = "range";
  slider.min = "0";
  slider.max = "1";
  slider.step = "0.01";
  slider.setAttribute("aria-label", "edge threshold: the graph's edges below it are hidden");
  sliderBox.append(sliderText, slider);
  const showThreshold = (v) => {
    sliderText.textContent = `threshold ${v.toFixed(2)}`;
    slider.setAttribute("aria-valuetext", v.toFixed(2));
  };
  listeners.on(slider, "input", () => {
    showThreshold(Number(slider.value));
    handlers.onThreshold(Number(slider.value));
  });

  const kind = selector(listeners, styles, {
    name: "heatmap-kind", label: "of", aria: "heatmap of", views: ["heatmap"], onChange: handlers.onHeatmapKind,
    options: HEATMAP_KINDS.map((k) => [k, k === "rollout" ? "rollout (all layers)" : "attention (layer, head)"]),
  });
  const source = selector(listeners, styles, {
    name: "text-source", label: "colour by", aria: "text colour source", views: ["text", "image"],
    onChange: handlers.onTextSource, options: TEXT_SOURCES.map((k) => [k, k]),
  });
  const scale = selector(listeners, styles, {
    name: "color-scale", label: "scale", aria: "colour scale", views: ["heatmap", "text", "rollout", "image"],
    onChange: handlers.onScale, options: SCALES.map((k) => [k, SCALE_LABELS[k]]),
  });

  const options = rolloutOptions(listeners, styles, { onFusion: handlers.onRolloutFusion,
    onDiscard: handlers.onDiscardRatio });
  const routesThreshold = ratioBox(listeners, styles, { name: "routes-threshold", label: "threshold",
    aria: "routes threshold: edges whose importance is below it are left out", step: ROUTES_STEP, max: ROUTES_MAX,
    title: "The routes keep the edges whose importance is at least this (0 to below 1; default 0.04)",
    views: ["routes"], onChange: handlers.onRoutesThreshold });
  // What decides whether rollout shows (and so its options): kept here as the setters below learn it.
  const shown = { view: null, heatmapKind: null, textSource: null, rolloutOffered: true };
  const refreshOptions = (change) => {
    Object.assign(shown, change);
    options.show(rolloutShown(shown));
  };

  const exportButton = element("button", "attnwidget-export");
  exportButton.type = "button";
  exportButton.textContent = "PNG";
  exportButton.title = "Download the current view as a PNG image";
  exportButton.setAttribute("aria-label", "Download the current view as a PNG image");
  styles.add(exportButton, (t) => ({ ...buttonStyle(t, false), marginLeft: "auto" }));
  listeners.on(exportButton, "click", () => handlers.onExport());

  bar.append(sliderBox, kind.box, source.box, scale.box, options.box, routesThreshold.box, exportButton);
  parent.append(bar);

  let activeView = null;
  return {
    el: bar,
    setView(active) {
      activeView = active;
      for (const [name, button] of tabs) {
        Object.assign(button.style, buttonStyle(styles.theme, name === active));
        button.setAttribute("aria-pressed", String(name === active));
        button.style.display = offered.includes(name) ? "" : "none";
      }
      sliderBox.style.display = active === "graph" ? "inline-flex" : "none";
      for (const s of [kind, source, scale, routesThreshold]) s.show(active);
      refreshOptions({ view: active });
    },
    /** The views the model offers (null: the default five); the others' tabs are hidden. */
    setViews(names) {
      offered = Array.isArray(names) && names.length ? names : DEFAULT_VIEWS;
      for (const [name, button] of tabs) button.style.display = offered.includes(name) ? "" : "none";
    },
    setParts: (list, part) => parts.set(list, part),
    /** The measures the part offers and the one shown (the selector shows when there are two). */
    setMeasures(list, measure) {
      measures.set(list, measure);
      const what = measure === "contribution" ? "contribution" : "attention"; // what the layer's own matrix is
      kind.caption("attention", `${what} (layer, head)`);
      source.caption("attention", what);
      measures.box.querySelectorAll("button").forEach((b) => { b.title = MEASURE_TITLES[b.dataset.measure] ?? ""; });
    },
    /** The kernel's routes_threshold (null: the model has no such trait, nothing shown). */
    setRoutesThreshold: (value) => routesThreshold.set(value),
    /** Rollout and flow offered (false for cross-attention: their options are disabled). */
    setRollout(offeredRollout) {
      kind.allow((value) => offeredRollout || value === "attention");
      source.allow((value) => offeredRollout || value === "attention");
      refreshOptions({ rolloutOffered: !!offeredRollout });
    },
    setHeatmapKind(value) {
      kind.set(value);
      refreshOptions({ heatmapKind: value });
    },
    setTextSource(value) {
      source.set(value);
      refreshOptions({ textSource: value });
    },
    /** The kernel's rollout_fusion and discard_ratio (null: the model has no such trait, nothing shown). */
    setRolloutOptions: (fusion, discard) => options.set(fusion, discard),
    setScale: (value) => scale.set(value),
    setThreshold(value) {
      const v = Number(value ?? 0);
      slider.value = String(v);
      showThreshold(v);
    },
    /** Restyle every control for another theme (values, focus and visibility stay). */
    setTheme(next) {
      styles.set(next);
      if (activeView != null) this.setView(activeView);
      parts.paint();
      measures.paint();
    },
    destroy() {
      listeners.removeAll();
      bar.remove();
    },
  };
}
