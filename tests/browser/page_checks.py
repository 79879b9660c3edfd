"""Checks run in the page for the theme and layout tests: text contrast (WCAG 2) of DOM text and of
text drawn on canvases, and overflow of the widget's root. Shared by test_theme_layout.py (harness)
and test_jupyter_theme.py (real JupyterLab)."""

from __future__ import annotations

import json

AA = 4.5  # WCAG AA: normal text against its background

#: Functions defined in the page (idempotent): window.__contrast.{dom(selector), canvas(selector, box)}.
CONTRAST_JS = r"""
(() => {
  if (window.__contrast) return;
  const parse = (text) => {
    const m = /rgba?\(([^)]*)\)/.exec(text || "");
    if (!m) return null;
    const p = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, under) => [0, 1, 2].map((i) => top[i] * top[3] + under[i] * (1 - top[3]));
  const lum = (rgb) => {
    const lin = (c) => { const s = c / 255; return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * lin(rgb[0]) + 0.7152 * lin(rgb[1]) + 0.0722 * lin(rgb[2]);
  };
  const ratio = (a, b) => { const x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); };
  // The colour behind an element: every translucent background up the tree laid over the first opaque one.
  const background = (el) => {
    const layers = [];
    for (let n = el; n; n = n.parentElement) {
      const c = parse(getComputedStyle(n).backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    let bg = [255, 255, 255];
    for (const c of layers.reverse()) bg = over(c, bg);
    return bg;
  };
  const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
  window.__contrast = {
    background,
    /** Every visible element matching `selector` with text: its text colour's contrast on what is behind it. */
    dom(selector) {
      return [...document.querySelectorAll(selector)].filter((el) => visible(el) && el.textContent.trim())
        .map((el) => {
          const bg = background(el);
          const fg = over(parse(getComputedStyle(el).color), bg);
          return { text: el.textContent.trim().slice(0, 40), ratio: ratio(fg, bg), fg, bg };
        });
    },
    /**
     * Text drawn on a canvas: within box {x, y, width, height} (CSS px), the pixel that contrasts most
     * with the canvas' background (the glyphs' solid pixels), laid over that background.
     */
    canvas(selector, box) {
      const canvas = document.querySelector(selector);
      const bg = background(canvas);
      const dpr = canvas.width / canvas.getBoundingClientRect().width;
      const x0 = Math.max(0, Math.floor(box.x * dpr)), y0 = Math.max(0, Math.floor(box.y * dpr));
      const w = Math.max(1, Math.min(canvas.width - x0, Math.ceil(box.width * dpr)));
      const h = Math.max(1, Math.min(canvas.height - y0, Math.ceil(box.height * dpr)));
      const data = canvas.getContext("2d").getImageData(x0, y0, w, h).data;
      let best = { ratio: 1, fg: bg, count: 0 };
      let inked = 0;
      for (let i = 0; i < data.length; i += 4) {
        if (data[i + 3] === 0) continue;
        inked += 1;
        const fg = over([data[i], data[i + 1], data[i + 2], data[i + 3] / 255], bg);
        const r = ratio(fg, bg);
        if (r > best.ratio) best = { ratio: r, fg };
      }
      return { ...best, bg, inked };
    },
  };
})()
"""


def install(page) -> None:
    page.evaluate(CONTRAST_JS)


def dom_contrast(page, selector: str) -> list[dict]:
    install(page)
    return page.evaluate("sel => window.__contrast.dom(sel)", selector)


def canvas_contrast(page, selector: str, box: dict) -> dict:
    install(page)
    return page.evaluate("([sel, box]) => window.__contrast.canvas(sel, box)", [selector, box])


def overflow(page, selector: str = ".attnwidget") -> list[dict]:
    """scrollWidth and clientWidth of every widget root (equal: nothing sticks out to the right)."""
    return page.evaluate("""sel => [...document.querySelectorAll(sel)].map(el => ({
        scrollWidth: el.scrollWidth, clientWidth: el.clientWidth,
        right: Math.max(...[...el.querySelectorAll('*')].map(c => c.getBoundingClientRect().right)),
        rootRight: el.getBoundingClientRect().right}))""", selector)


def settle(page) -> None:
    """Wait until every request of the page has been answered by the Python widget."""
    page.wait_for_function("window.__model.inFlight === 0", timeout=15000)


def view_box(page, view: str) -> dict:
    """The view's published geometry, with its first canvas' page position (``x``, ``y``)."""
    info = page.evaluate("""name => {
        const box = document.querySelector(`.attnwidget-${name}`);
        const rect = box.querySelector("canvas").getBoundingClientRect();
        return {geometry: box.dataset.geometry, x: rect.x, y: rect.y};
    }""", view)
    return {**json.loads(info["geometry"]), "x": info["x"], "y": info["y"]}


def geometry(page, view: str, nth: int = 0) -> dict:
    """The published geometry of the nth widget's view (``.attnwidget-{view}``)."""
    return json.loads(page.evaluate("([v, i]) => document.querySelectorAll(`.attnwidget-${v}`)[i].dataset.geometry",
                                    [view, nth]))


def assert_readable(page, where: str) -> None:
    """Tabs, controls, status line and the labels drawn on the grid and heatmap canvases read at >= 4.5:1."""
    texts = dom_contrast(page, ".attnwidget-tab, .attnwidget-export, .attnwidget-status, "
                               ".attnwidget-toolbar label > span, .attnwidget-toolbar select")
    assert len(texts) >= 6, texts
    low = [t for t in texts if t["ratio"] < AA]
    assert not low, f"{where}: text below {AA}:1: {low}"
    g = geometry(page, "heatmap")
    labels = canvas_contrast(page, ".attnwidget-heatmap-base",
                             {"x": 0, "y": g["top"], "width": g["left"] - 2, "height": g["height"]})
    assert labels["inked"] > 50 and labels["ratio"] >= AA, f"{where}: heatmap token labels {labels}"
    grid = geometry(page, "grid")
    labels = canvas_contrast(page, ".attnwidget-grid-base",
                             {"x": 0, "y": grid["rows"][0], "width": grid["columns"][0] - 2,
                              "height": grid["rows"][-1] + grid["cell"] - grid["rows"][0]})
    assert labels["inked"] > 10 and labels["ratio"] >= AA, f"{where}: grid layer labels {labels}"
