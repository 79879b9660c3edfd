// Following the theme: read it once the element is attached, and again whenever JupyterLab switches
// theme (it marks document.body with data-jp-theme-light and data-jp-theme-name once the new theme's
// CSS is in) or the page's colour scheme changes. DOM only; the theme itself is colors.js' readTheme.

import { readTheme, sameTheme } from "./colors.js";

/** The attributes of document.body (and <html>) that say which theme is on. */
export const THEME_ATTRIBUTES = ["data-jp-theme-light", "data-jp-theme-name"];

/** Delays (ms) after a theme switch at which the theme is read again: JupyterLab hides and shows the shell around it. */
const SETTLE = [0, 150, 600];

/**
 * watchTheme(el, onChange) -> {theme, check(), stop()}: `theme` is the current theme (read at once:
 * from el when attached, else from the document's body); `onChange(theme)` runs when a new reading
 * differs: after el is first attached (`check()`, which the widget calls when its size changes, also
 * catches this), after a JupyterLab theme switch, and after a prefers-color-scheme change. `stop()`
 * disconnects the observer and the media query listener and cancels pending reads.
 */
export function watchTheme(el, onChange) {
  const doc = el.ownerDocument ?? document;
  const state = { theme: readTheme(el), attached: el.isConnected, stopped: false };
  const timers = new Set();
  let frame = 0;

  function check() {
    if (state.stopped) return;
    const next = readTheme(el);
    if (el.isConnected) state.attached = true;
    if (sameTheme(next, state.theme)) return;
    state.theme = next;
    onChange(next);
  }

  function soon() {
    if (state.stopped) return;
    for (const delay of SETTLE) {
      const timer = setTimeout(() => { timers.delete(timer); check(); }, delay);
      timers.add(timer);
    }
  }

  // Not attached yet (anywidget renders before the output is in the page): read again on the next
  // frames until it is.
  function untilAttached() {
    if (state.stopped) return;
    if (el.isConnected) { check(); return; }
    frame = requestAnimationFrame(untilAttached);
  }
  if (!state.attached) frame = requestAnimationFrame(untilAttached);

  const observer = typeof MutationObserver === "function" ? new MutationObserver(soon) : null;
  for (const node of [doc.body, doc.documentElement]) {
    if (node) observer?.observe(node, { attributes: true, attributeFilter: THEME_ATTRIBUTES });
  }
  const media = typeof matchMedia === "function" ? matchMedia("(prefers-color-scheme: dark)") : null;
  media?.addEventListener?.("change", soon);

  return {
    get theme() { return state.theme; },
    check,
    stop() {
      state.stopped = true;
      observer?.disconnect();
      media?.removeEventListener?.("change", soon);
      cancelAnimationFrame(frame);
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
    },
  };
}
