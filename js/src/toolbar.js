// The widget's toolbar: view tabs, graph threshold slider, PNG export button.
// Built with DOM APIs; every text goes through textContent.

import { createListeners, element } from "./views/canvas.js";

export const VIEW_NAMES = ["heatmap", "lines", "graph", "rollout"];

function buttonStyle(theme, active) {
  return {
    font: `12px ${theme.fontFamily}`, padding: "2px 8px", cursor: "pointer",
    border: `1px solid ${theme.border}`, borderRadius: "3px",
    color: active ? theme.background : theme.foreground,
    background: active ? theme.accent : "transparent",
  };
}

export const HEATMAP_KINDS = ["attention", "rollout"];

/**
 * toolbar = createToolbar(parent, theme, {onView(name), onThreshold(value), onExport(), onHeatmapKind?(kind)})
 * toolbar.setView(name), toolbar.setThreshold(value), toolbar.setHeatmapKind(kind|null), toolbar.destroy()
 * The heatmap-kind selector shows only on the heatmap tab, and only after setHeatmapKind(kind) with a
 * known kind (a model without that trait, like the static export, never shows it).
 */
export function createToolbar(parent, theme, handlers) {
  const listeners = createListeners();
  const bar = element("div", "attnwidget-toolbar", {
    display: "flex", alignItems: "center", gap: "6px", flexWrap: "wrap", margin: "0 0 6px 0",
  });
  bar.setAttribute("role", "toolbar");
  const tabs = new Map();
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

  const kindBox = element("label", "attnwidget-heatmap-kind", {
    display: "none", alignItems: "center", gap: "4px", font: `12px ${theme.fontFamily}`, color: theme.muted,
  });
  const kindText = element("span");
  kindText.textContent = "of";
  const kind = element("select");
  kind.setAttribute("aria-label", "heatmap of");
  for (const name of HEATMAP_KINDS) {
    const option = element("option");
    option.value = name;
    option.textContent = name === "rollout" ? "rollout (all layers)" : "attention (layer, head)";
    kind.append(option);
  }
  kindBox.append(kindText, kind);
  listeners.on(kind, "change", () => handlers.onHeatmapKind?.(kind.value));
  let kindKnown = false;
  let activeView = null;
  const showKind = () => { kindBox.style.display = kindKnown && activeView === "heatmap" ? "inline-flex" : "none"; };

  const exportButton = element("button", "attnwidget-export");
  exportButton.type = "button";
  exportButton.textContent = "PNG";
  exportButton.title = "Download the current view as a PNG image";
  Object.assign(exportButton.style, buttonStyle(theme, false), { marginLeft: "auto" });
  listeners.on(exportButton, "click", () => handlers.onExport());

  bar.append(sliderBox, kindBox, exportButton);
  parent.append(bar);

  return {
    el: bar,
    setView(active) {
      for (const [name, button] of tabs) {
        Object.assign(button.style, buttonStyle(theme, name === active));
        button.setAttribute("aria-pressed", String(name === active));
      }
      sliderBox.style.display = active === "graph" ? "inline-flex" : "none";
      activeView = active;
      showKind();
    },
    setHeatmapKind(value) {
      kindKnown = HEATMAP_KINDS.includes(value);
      if (kindKnown) kind.value = value;
      showKind();
    },
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
