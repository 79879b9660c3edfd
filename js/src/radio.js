// A radio group of buttons (the part selector, the measure selector): Tab reaches the checked one, the
// arrow keys move and choose, as in any radio group. DOM + textContent only.

import { element } from "./views/canvas.js";

/** The index the arrow key `key` moves to from `index` among `count` buttons (wrapping), or null. */
export function radioStep(key, index, count) {
  const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[key];
  if (step == null || !(count > 0)) return null;
  return (index + step + count) % count;
}

/**
 * radioGroup(listeners, styles, {name, aria, labels, onChoose, minimum, buttonStyle}) -> {box, paint(),
 * set(names, current)}: `labels` maps a name to its caption; hidden while fewer than `minimum` (default 1)
 * names are offered. `styles` is the toolbar's themed registry ({theme}); `buttonStyle(theme, active)`
 * styles a button (toolbar.js).
 */
export function radioGroup(listeners, styles, { name, aria, labels = {}, onChoose, minimum = 1, buttonStyle }) {
  const box = element("div", `attnwidget-${name}s`, { display: "none", gap: "0", marginRight: "8px" });
  box.setAttribute("role", "radiogroup");
  box.setAttribute("aria-label", aria);
  let buttons = [];
  let names = [];
  let current = null;
  const paint = () => {
    buttons.forEach((button, i) => {
      const on = names[i] === current;
      Object.assign(button.style, buttonStyle(styles.theme, on), { borderRadius: i === 0 ? "3px 0 0 3px"
        : i === buttons.length - 1 ? "0 3px 3px 0" : "0", marginLeft: i ? "-1px" : "0" });
      if (buttons.length === 1) button.style.borderRadius = "3px";
      button.setAttribute("aria-checked", String(on));
      button.tabIndex = on || (current == null && i === 0) ? 0 : -1;
    });
  };
  const choose = (i, focus) => {
    if (focus) buttons[i].focus();
    if (names[i] !== current) onChoose?.(names[i]);
  };
  return {
    box,
    paint,
    set(list, value) {
      const next = Array.isArray(list) ? list : [];
      if (next.join() !== names.join()) {
        box.replaceChildren();
        names = next;
        buttons = next.map((item, i) => {
          const button = element("button", `attnwidget-${name}`);
          button.type = "button";
          button.dataset[name] = item;
          button.setAttribute("role", "radio");
          button.textContent = labels[item] ?? item;
          listeners.on(button, "click", () => choose(i, false));
          listeners.on(button, "keydown", (event) => {
            const to = radioStep(event.key, i, names.length);
            if (to == null) return;
            event.preventDefault();
            choose(to, true);
          });
          box.append(button);
          return button;
        });
      }
      current = value ?? null;
      box.style.display = names.length >= minimum ? "inline-flex" : "none";
      paint();
    },
  };
}
