"""The text view in headless Chromium: colours, hover, selection, hostile tokens, 8192 tokens."""

from __future__ import annotations

import json
import statistics

import numpy as np
import pytest
from harness_data import MALICIOUS_IMG, MALICIOUS_SCRIPT, wire

pytestmark = pytest.mark.browser

ACCENT = (25, 118, 210)  # THEME_FALLBACKS.accent (#1976d2) on the harness' plain page
LUT_HIGH = (0, 0, 4)  # weight 1 on the light theme (magma reversed)
LUT_LOW = (252, 253, 191)  # weight 0


def geometry(page, view: str = "text") -> dict:
    """The view's published geometry plus its base canvas' page offset."""
    info = page.evaluate("""name => {
        const box = document.querySelector(`.attnwidget-${name}`);
        const rect = box.querySelector(`.attnwidget-${name}-base`).getBoundingClientRect();
        return {geometry: box.dataset.geometry, x: rect.x, y: rect.y};
    }""", view)
    return {**json.loads(info["geometry"]), "x": info["x"], "y": info["y"]}


def token_point(page, token: int) -> tuple[float, float]:
    """Page coordinates of the centre of a token drawn in the text viewport."""
    g = geometry(page)
    x, y, w, h = g["boxes"][str(token)]
    return g["x"] + x + w / 2, g["y"] + y + h / 2


def pixels(page, selector: str, x: float, y: float, w: float = 1, h: float = 1) -> list[tuple[int, int, int]]:
    """RGB of the device pixels under a CSS-pixel rectangle of a canvas."""
    data = page.evaluate("""([sel, x, y, w, h]) => {
        const canvas = document.querySelector(sel);
        const d = devicePixelRatio;
        const [x0, y0] = [Math.round(x * d), Math.round(y * d)];
        const [dw, dh] = [Math.max(1, Math.round(w * d)), Math.max(1, Math.round(h * d))];
        return Array.from(canvas.getContext("2d").getImageData(x0, y0, dw, dh).data);
    }""", [selector, x, y, w, h])
    return [tuple(data[i:i + 3]) for i in range(0, len(data), 4)]


def background(page, token: int) -> tuple[int, int, int]:
    """Background colour of a token: a pixel in the top row of its box, above the glyphs."""
    x, y, w, _ = geometry(page)["boxes"][str(token)]
    return pixels(page, ".attnwidget-text-base", x + w / 2, y + 1)[0]


def opaque(page, selector: str, x: float, y: float, w: float, h: float) -> int:
    """How many device pixels of a CSS-pixel rectangle of a canvas are painted."""
    return page.evaluate("""([sel, x, y, w, h]) => {
        const d = devicePixelRatio;
        const data = document.querySelector(sel).getContext("2d")
            .getImageData(Math.round(x * d), Math.round(y * d), Math.round(w * d), Math.round(h * d)).data;
        let count = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i] > 0) count += 1;
        return count;
    }""", [selector, x, y, w, h])


def near(rgb, target, tolerance: int = 24) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(rgb, target))


def calls(page) -> dict:
    return page.evaluate("window.__model.calls")


def painted(page, selector: str) -> dict:
    return page.evaluate("sel => window.paintedPixels(sel)", selector)


def text_data(values: np.ndarray, token: int, note: str = "") -> dict:
    return {"values": wire(values.astype(np.float32)), "token": token, "source": "attention", "note": note}


def test_text_view_paints_tokens_and_legend(mount):
    page = mount(view="text")
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    result = painted(page, ".attnwidget-text-base")
    assert result["painted"] > 2000 and result["colors"] > 5, result
    g = geometry(page)
    assert (g["first"], g["last"], g["scrollTop"]) == (0, 11, 0)
    assert sorted(map(int, g["boxes"])) == list(range(12))
    # The legend: a horizontal colour bar from weight 0 (light) to the maximum (dark) above the text.
    top = g["text"]["top"]
    assert all(box[1] >= top for box in g["boxes"].values())
    bar = [pixels(page, ".attnwidget-text-base", x, 23)[0] for x in (8, 90, 174)]
    assert near(bar[0], LUT_LOW, 40) and near(bar[2], LUT_HIGH, 40), bar
    assert len(set(bar)) == 3
    # Title above the bar, tick labels below it, the note to its right.
    assert opaque(page, ".attnwidget-text-base", 6, 2, 120, 14) > 20
    assert opaque(page, ".attnwidget-text-base", 6, 30, 170, 12) > 20
    assert opaque(page, ".attnwidget-text-base", 190, 16, 200, 14) > 50
    assert errors == []


def test_png_export_includes_the_minimap(mount):
    page = mount(view="text")
    page.evaluate("""() => window.__model.emit("msg:custom", {type: "png_request", request_id: 3, view: "current"}, [])""")
    page.wait_for_function("window.__model.calls.send.some(m => m.type === 'png')", timeout=5000)
    g = geometry(page)
    image = page.evaluate("""async (m) => {
        const calls = window.__model.calls;
        const index = calls.send.findIndex((message) => message.type === 'png');
        const bitmap = await createImageBitmap(new Blob([new Uint8Array(calls.buffers[index][0])], {type: 'image/png'}));
        const canvas = document.createElement('canvas');
        canvas.width = bitmap.width;
        canvas.height = bitmap.height;
        const ctx = canvas.getContext('2d');
        ctx.drawImage(bitmap, 0, 0);
        const d = devicePixelRatio;
        const column = ctx.getImageData(Math.round((m.left + 4) * d), Math.round(m.top * d), 1, 4 * d).data;
        const base = document.querySelector('.attnwidget-text-base');
        return {size: [bitmap.width, bitmap.height], base: [base.width, base.height], column: Array.from(column)};
    }""", g["minimap"])
    assert image["size"] == image["base"]
    column = [tuple(image["column"][i:i + 4]) for i in range(0, len(image["column"]), 4)]
    assert all(px[3] == 255 for px in column)  # the theme background under everything
    assert any(px[:3] != (255, 255, 255) for px in column), column  # the minimap's rows of tokens


def test_hover_then_kernel_values_recolour_tokens(mount):
    page = mount(view="text")
    page.mouse.move(*token_point(page, 5))
    assert ["hovered_token", 5] in calls(page)["set"]
    tooltip = page.locator(".attnwidget-text .attnwidget-tooltip")
    assert tooltip.is_visible()
    assert tooltip.text_content().startswith("token 5:  the\nattention 0.")
    assert painted(page, ".attnwidget-text-overlay")["painted"] > 50  # hover outline on the overlay
    before = background(page, 2)
    # The kernel answers the hover with the row of token 5: all of it on " cat" (token 2).
    values = np.zeros(12, np.float32)
    values[2] = 1.0
    values[4] = 0.5
    page.evaluate("data => window.__model.kernelSet('text_data', data)", text_data(values, 5, "attention of token 5"))
    after = background(page, 2)
    assert near(after, LUT_HIGH), after
    assert before != after
    assert near(background(page, 0), LUT_LOW), background(page, 0)
    middle = background(page, 4)
    assert not near(middle, LUT_HIGH, 60) and not near(middle, LUT_LOW, 60), middle
    # Text on the dark background is light (contrast), text on the pale ones dark.
    x, y, w, h = geometry(page)["boxes"]["2"]
    glyphs = pixels(page, ".attnwidget-text-base", x, y, w, h)
    assert sum(1 for rgb in glyphs if min(rgb) > 200) > 5
    x, y, w, h = geometry(page)["boxes"]["0"]
    assert sum(1 for rgb in pixels(page, ".attnwidget-text-base", x, y, w, h) if max(rgb) < 80) > 5
    # Leaving the text clears the hover.
    page.mouse.move(2, 2)
    assert calls(page)["set"][-1] == ["hovered_token", None]
    assert not tooltip.is_visible()


def test_scale_switch_recolours(mount):
    values = np.full(12, 0.002, np.float32)
    values[0] = 0.9
    values[3] = 0.05
    page = mount(view="text", text_data=text_data(values, 11))
    linear = background(page, 3)
    page.evaluate("window.__model.kernelSet('color_scale', 'log')")
    log = background(page, 3)
    assert sum(log) < sum(linear) - 60, (linear, log)  # small weights darken on the log scale
    page.evaluate("window.__model.kernelSet('color_scale', 'no_sink')")
    assert near(background(page, 3), LUT_HIGH)  # 0.05 is the largest weight after the first token
    assert near(background(page, 0), LUT_HIGH)  # the sink draws off the scale, clamped to the top


def heatmap_cell(page, query: int, key: int) -> tuple[float, float]:
    g = geometry(page, "heatmap")
    return (g["x"] + g["left"] + (key - g["col0"] + 0.5) * g["cellW"],
            g["y"] + g["top"] + (query - g["row0"] + 0.5) * g["cellH"])


def test_click_selects_and_links_to_heatmap(mount):
    page = mount(view="text")
    page.mouse.click(*token_point(page, 6))
    assert calls(page)["set"][-1] == ["selected_tokens", [6]]
    x, y, w, h = geometry(page)["boxes"]["6"]
    underline = pixels(page, ".attnwidget-text-base", x + 1, y + h - 2, w - 2, 2)
    assert sum(near(rgb, ACCENT, 30) for rgb in underline) > len(underline) // 2, underline[:4]
    page.get_by_role("button", name="heatmap").click()
    assert ["view", "heatmap"] in calls(page)["set"]
    g = geometry(page, "heatmap")

    def accent_pixels(row: int) -> int:
        y0 = g["top"] + (row - g["row0"]) * g["cellH"]
        label = pixels(page, ".attnwidget-heatmap-base", 0, y0, g["left"] - 2, g["cellH"])
        return sum(near(rgb, ACCENT, 40) for rgb in label)

    assert accent_pixels(6) > 5  # the selected token's row label is drawn in the accent colour
    assert accent_pixels(5) == 0
    page.mouse.click(*heatmap_cell(page, 6, 2))  # and the heatmap toggles it off again
    assert calls(page)["set"][-1] == ["selected_tokens", []]


def test_hostile_tokens_render_as_text(mount):
    page = mount(view="text")
    page.mouse.move(*token_point(page, 3))
    tooltip = page.locator(".attnwidget-text .attnwidget-tooltip")
    assert MALICIOUS_IMG in tooltip.text_content()
    page.mouse.move(*token_point(page, 7))
    assert MALICIOUS_SCRIPT in tooltip.text_content()
    page.mouse.click(*token_point(page, 7))
    assert calls(page)["set"][-1] == ["selected_tokens", [7]]
    assert page.evaluate("document.querySelectorAll('#root img, #root script, #root iframe').length") == 0
    assert page.evaluate("window.__pwned") is None


def long_prompt(n: int = 8192) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(5)
    words = [" the", " cat", " sat", " on", " a", " mat", ",", " and", " then", " it", " slept", ".", " under",
             " warm", " sun", "ing", MALICIOUS_IMG]
    tokens = [words[i] for i in rng.integers(0, len(words), n)]
    for i in range(37, n, 41):
        tokens[i] = ".\n" if i % 3 else "\n\n"
    tokens[0] = "⟨bos⟩"
    tokens[500] = "x" * 300  # wider than a line: alone and clipped
    tokens[501] = ""
    values = (rng.random(n) ** 6 * 0.05).astype(np.float32)
    values[0] = 0.6
    return tokens, values


def test_long_text_scrolls_minimap_and_hovers_fast(mount):
    n = 8192
    tokens, values = long_prompt(n)
    page = mount(view="text", tokens=tokens, text_data=text_data(values, 4000, "attention of token 4000"))
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    g = geometry(page)
    assert g["lines"] > 300
    assert g["first"] <= 4000 <= g["last"] and g["scrollTop"] > 0  # the focus token was scrolled into view
    assert len(g["boxes"]) < 600  # only the visible tokens are drawn

    scroll = "top => { document.querySelector('.attnwidget-text-scroll').scrollTop = top; }"
    first = "() => JSON.parse(document.querySelector('.attnwidget-text').dataset.geometry).first"
    page.evaluate(scroll, 0)
    page.wait_for_function(f"({first})() === 0")
    page.evaluate(scroll, 3000)
    page.wait_for_function(f"({first})() > 0")
    g = geometry(page)
    assert g["scrollTop"] == 3000 and 0 < g["first"] < g["last"] < n
    assert str(g["first"]) in g["boxes"] and str(g["last"]) in g["boxes"]

    minimap = painted(page, ".attnwidget-text-minimap")
    assert minimap["painted"] > 40 * 300 * 0.5 and minimap["colors"] > 10, minimap
    rect = page.evaluate("""() => { const r = document.querySelector('.attnwidget-text-minimap')
        .getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; }""")
    page.mouse.click(rect[0] + rect[2] / 2, rect[1] + rect[3] - 2)
    page.wait_for_function("JSON.parse(document.querySelector('.attnwidget-text').dataset.geometry).last === 8191")
    page.mouse.click(rect[0] + rect[2] / 2, rect[1] + 1)
    page.wait_for_function(f"({first})() === 0")

    timing = page.evaluate(HOVER_TIMING)
    work, framed = timing["work"], timing["framed"]
    print(f"\nhover repaint at {n} tokens: median {statistics.median(work):.2f} ms (handler + overlay raster), "
          f"median {statistics.median(framed):.2f} ms to the next frame")
    assert timing["hovered"] >= 19
    assert timing["geometryUnchanged"]  # hovering repainted the overlay only: no base redraw, no layout
    assert statistics.median(work) < 16, work
    assert statistics.median(framed) < 16, framed
    assert errors == []


# 20 synthetic hovers over visible tokens: time the pointermove dispatch (handler, overlay drawing,
# a 1-pixel readback that forces the overlay to rasterise) and the time until the next frame.
HOVER_TIMING = """async () => {
    const box = document.querySelector('.attnwidget-text');
    const base = box.querySelector('.attnwidget-text-base');
    const overlay = box.querySelector('.attnwidget-text-overlay').getContext('2d');
    const g = JSON.parse(box.dataset.geometry);
    const rect = base.getBoundingClientRect();
    const inside = Object.entries(g.boxes).filter(([, [x, y, w, h]]) =>
        y > g.text.top + 2 && y + h < g.text.top + g.text.height - 2);
    const before = box.dataset.geometry;
    const setsBefore = window.__model.calls.set.length;
    const work = [];
    const framed = [];
    for (let k = 0; k < 20; k++) {
        const [, [x, y, w, h]] = inside[Math.floor((k + 0.5) * inside.length / 20)];
        const clientX = rect.left + x + w / 2;
        const clientY = rect.top + y + h / 2;
        const target = document.elementFromPoint(clientX, clientY);
        await new Promise((resolve) => setTimeout(resolve, 3 + (k * 7) % 11));  // vary the frame phase
        const t0 = performance.now();
        target.dispatchEvent(new PointerEvent('pointermove', {clientX, clientY, bubbles: true}));
        overlay.getImageData(0, 0, 1, 1);
        work.push(performance.now() - t0);
        await new Promise((resolve) => requestAnimationFrame(resolve));
        framed.push(performance.now() - t0);
    }
    const hovered = window.__model.calls.set.slice(setsBefore).filter(([name]) => name === 'hovered_token').length;
    return {work, framed, hovered, geometryUnchanged: box.dataset.geometry === before};
}"""
