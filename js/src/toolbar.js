// The widget's toolbar: part selector (encoder-decoder captures), view tabs, graph threshold slider,
// selectors, PNG export button. Built with DOM APIs; every text goes through textContent.

import { SCALE_LABELS, SCALES } from "./scale.js";
import { createListeners, element } from "./views/canvas.js";

export const VIEW_NAMES = ["heatmap", "text", "lines", "graph", "rollout", "image"];
/** The views a model without a `views` trait offers (an older static page): all but the image. */
export const DEFAULT_VIEWS = VIEW_NAMES.filter((name) => name !== "image");
export const HEATMAP_KINDS = ["attention", "rollout"];
export const TEXT_SOURCES = ["attention", "rollout", "flow"];
export const PART_LABELS = { encoder: "encoder", decoder: "decoder", cross: "cross-attention" };

function buttonStyle(theme, active) {
  return {
    font: `12px ${theme.fontFamily}`, padding: "2px 8px", cursor: "pointer",
    border: `1px solid ${theme.border}`, borderRadius: "3px",
    color: active ? theme.background : theme.foreground,
    background: active ? theme.accent : "transparent",
  };
}

/**
 * A labelled <select> shown only on some views, and only once its value is known (a model without
 * the trait, like an older static export, never shows it). Returns {box, set(value|null), show(view)}.
 */
function selector(listeners, theme, { name, label, aria, options, views, onChange }) {
  const box = element("label", `attnwidget-${name}`, {
    display: "none", alignItems: "center", gap: "4px", font: `12px ${theme.fontFamily}`, color: theme.muted,
  });
  const text = element("span");
  text.textContent = label;
  const select = element("select");
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
  };
}

/**
 * The part selector of an encoder-decoder capture: a radio group of buttons (encoder, decoder,
 * cross-attention). Tab reaches the checked one; the arrow keys move and choose, as in any radio
 * group. Hidden while the model has no parts. Returns {box, set(parts, part)}.
 */
function partSelector(listeners, theme, onPart) {
  const box = element("div", "attnwidget-parts", { display: "none", gap: "0", marginRight: "8px" });
  box.setAttribute("role", "radiogroup");
  box.setAttribute("aria-label", "part of the encoder-decoder model");
  let buttons = [];
  let names = [];
  let current = null;
  const paint = () => {
    buttons.forEach((button, i) => {
      const on = names[i] === current;
      Object.assign(button.style, buttonStyle(theme, on), { borderRadius: i === 0 ? "3px 0 0 3px"
        : i === buttons.length - 1 ? "0 3px 3px 0" : "0", marginLeft: i ? "-1px" : "0" });
      button.setAttribute("aria-checked", String(on));
      button.tabIndex = on || (current == null && i === 0) ? 0 : -1;
    });
  };
  const choose = (i, focus) => {
    if (focus) buttons[i].focus();
    if (names[i] !== current) onPart?.(names[i]);
  };
  return {
    box,
    set(parts, part) {
      const list = Array.isArray(parts) ? parts : [];
      if (list.join() !== names.join()) {
        box.replaceChildren();
        names = list;
        buttons = list.map((name, i) => {
          const button = element("button", "attnwidget-part");
          button.type = "button";
          button.dataset.part = name;
          button.setAttribute("role", "radio");
          button.textContent = PART_LABELS[name] ?? name;
          listeners.on(button, "click", () => choose(i, false));
          listeners.on(button, "keydown", (event) => {
            const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[event.key];
            if (step == null) return;
            event.preventDefault();
            choose((i + step + names.length) % names.length, true);
          });
          box.append(button);
          return button;
        });
      }
      current = part ?? null;
      box.style.display = names.length ? "inline-flex" : "none";
      paint();
    },
  };
}

/**
 * toolbar = createToolbar(parent, theme, {onView(name), onThreshold(value), onExport(),
 *   onHeatmapKind?(kind), onScale?(kind), onTextSource?(source), onPart?(part)})
 * toolbar.setView(name), setViews(names|null), setParts(parts, part), setRollout(offered),
 * setThreshold(value), setHeatmapKind(kind|null), setScale(kind|null), setTextSource(source|null), destroy()
 */
export function createToolbar(parent, theme, handlers) {
  const listeners = createListeners();
  const bar = element("div", "attnwidget-toolbar", {
    display: "flex", alignItems: "center", gap: "6px", flexWrap: "wrap", margin: "0 0 6px 0",
  });
  bar.setAttribute("role", "toolbar");
  const parts = partSelector(listeners, theme, handlers.onPart);
  bar.append(parts.box);
  const tabs = new Map();
  let offered = DEFAULT_VIEWS;
  for (const name of VIEW_NAMES) {
    const button = element("button", "attnwidget-tab");
    button.type = "button";
    button.textContent = name;
    button.dataset.view = name;
    listeners.on(button, "click", () => handlers.onView(name));
    tabs.set(name, button);
    bar.append(button);
  }

  const sliderBox = element("label", "attnwidget-threshold", {
    display: "none", alignItems: "center", gap: "4px", font: `12px ${theme.fontFamily}`, color: theme.muted,
  });
  const sliderText = element("span");
  const slider = element("input");
  slider.type = "range";
  slider.min = "0";
  slider.max = "1";
  slider.step = "0.01";
  slider.setAttribute("aria-label", "edge threshold");
  sliderBox.append(sliderText, slider);
  listeners.on(slider, "input", () => {
    sliderText.textContent = `threshold ${Number(slider.value).toFixed(2)}`;
    handlers.onThreshold(Number(slider.value));
  });

  const kind = selector(listeners, theme, {
    name: "heatmap-kind", label: "of", aria: "heatmap of", views: ["heatmap"], onChange: handlers.onHeatmapKind,
    options: HEATMAP_KINDS.map((k) => [k, k === "rollout" ? "rollout (all layers)" : "attention (layer, head)"]),
  });
  const source = selector(listeners, theme, {
    name: "text-source", label: "colour by", aria: "text colour source", views: ["text", "image"],
    onChange: handlers.onTextSource, options: TEXT_SOURCES.map((k) => [k, k]),
  });
  const scale = selector(listeners, theme, {
    name: "color-scale", label: "scale", aria: "colour scale", views: ["heatmap", "text", "rollout", "image"],
    onChange: handlers.onScale, options: SCALES.map((k) => [k, SCALE_LABELS[k]]),
  });

  const exportButton = element("button", "attnwidget-export");
  exportButton.type = "button";
  exportButton.textContent = "PNG";
  exportButton.title = "Download the current view as a PNG image";
  Object.assign(exportButton.style, buttonStyle(theme, false), { marginLeft: "auto" });
  listeners.on(exportButton, "click", () => handlers.onExport());

  bar.append(sliderBox, kind.box, source.box, scale.box, exportButton);
  parent.append(bar);

  return {
    el: bar,
    setView(active) {
      for (const [name, button] of tabs) {
        Object.assign(button.style, buttonStyle(theme, name === active));
        button.setAttribute("aria-pressed", String(name === active));
        button.style.display = offered.includes(name) ? "" : "none";
      }
      sliderBox.style.display = active === "graph" ? "inline-flex" : "none";
      for (const s of [kind, source, scale]) s.show(active);
    },
    /** The views the model offers (null: the default five); the others' tabs are hidden. */
    setViews(names) {
      offered = Array.isArray(names) && names.length ? names : DEFAULT_VIEWS;
      for (const [name, button] of tabs) button.style.display = offered.includes(name) ? "" : "none";
    },
    setParts: (list, part) => parts.set(list, part),
    /** Rollout and flow offered (false for cross-attention: their options are disabled). */
    setRollout(offeredRollout) {
      kind.allow((value) => offeredRollout || value === "attention");
      source.allow((value) => offeredRollout || value === "attention");
    },
    setHeatmapKind: (value) => kind.set(value),
    setTextSource: (value) => source.set(value),
    setScale: (value) => scale.set(value),
    setThreshold(value) {
      const v = Number(value ?? 0);
      slider.value = String(v);
      sliderText.textContent = `threshold ${v.toFixed(2)}`;
    },
    destroy() {
      listeners.removeAll();
      bar.remove();
    },
  };
}
