"""The image view of a vision capture in the page, with the real widget behind it (kernel_bridge.py):
hover, click and keys on the picture's patches drive the kernel, whose rows redraw the overlay."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the hand-built captures
from harness_data import image_row, image_state  # noqa: E402
from widget_captures import make_vision  # noqa: E402

from attnwidget.widget import AttentionWidget  # noqa: E402
from page_checks import settle  # noqa: E402

pytestmark = pytest.mark.browser

DARK = {"--jp-layout-color0": "hsl(0, 0%, 7%)", "--jp-ui-font-color1": "rgba(255,255,255,0.87)",
        "--jp-ui-font-color2": "rgba(255,255,255,0.54)"}



def geometry(page) -> dict:
    info = page.evaluate("""() => {
        const box = document.querySelector('.attnwidget-image');
        const rect = box.querySelector('canvas').getBoundingClientRect();
        return {geometry: box.dataset.geometry, x: rect.x, y: rect.y};
    }""")
    return {**json.loads(info["geometry"]), "x": info["x"], "y": info["y"]}


def patch_centre(g: dict, r: int, c: int) -> tuple[float, float]:
    """Canvas-relative centre of patch (r, c)."""
    return g["left"] + (c + 0.5) * g["width"] / g["cols"], g["top"] + (r + 0.5) * g["height"] / g["rows"]


def pixels(page, layer: str, points) -> list[tuple[int, ...]]:
    """RGBA at canvas-relative CSS points of the image view's base or overlay canvas."""
    return [tuple(p) for p in page.evaluate("""([layer, points]) => {
        const ctx = document.querySelector(`.attnwidget-image-${layer}`).getContext('2d');
        return points.map(([x, y]) => Array.from(ctx.getImageData(Math.round(x * devicePixelRatio),
            Math.round(y * devicePixelRatio), 1, 1).data));
    }""", [layer, [list(p) for p in points]])]


@pytest.fixture
def vit_widget():
    widget = AttentionWidget(make_vision(), background=False)  # [CLS] + 3 x 4 patches
    yield widget
    widget.close()


def test_hovering_a_patch_drives_the_overlay(mount_kernel, vit_widget):
    page = mount_kernel(vit_widget)
    g = geometry(page)
    assert (g["rows"], g["cols"], g["patchStart"]) == (3, 4, 1)
    assert g["width"] / g["height"] == pytest.approx(64 / 48)  # the picture keeps its aspect ratio
    centres = [patch_centre(g, r, c) for r in range(3) for c in range(4)]
    before = pixels(page, "base", centres)
    assert len(set(before)) > 4  # picture and colour map drawn
    assert page.locator(".attnwidget-image .attnwidget-tooltip").count() == 1

    x, y = patch_centre(g, 1, 2)
    page.mouse.move(g["x"] + x, g["y"] + y)
    settle(page)
    token = 1 + 1 * 4 + 2
    assert vit_widget.hovered_token == token and vit_widget.image_data["token"] == token
    assert page.evaluate("window.__model.get('image_data').token") == token
    after = pixels(page, "base", centres)
    assert after != before  # the overlay is the hovered patch's row now
    assert pixels(page, "overlay", [(x, y)])[0][3] > 0  # the hovered patch is outlined
    assert "token 7: patch 1,2" in page.locator(".attnwidget-image .attnwidget-tooltip").text_content()

    page.mouse.click(g["x"] + x, g["y"] + y)
    settle(page)
    assert vit_widget.selected_tokens == [token]
    page.mouse.move(g["x"] + 2, g["y"] + 2)  # off the picture: the focus is the selected patch
    settle(page)
    assert vit_widget.hovered_token is None and vit_widget.image_data["token"] == token


def test_the_keyboard_moves_between_patches(mount_kernel, vit_widget):
    page = mount_kernel(vit_widget)
    canvas = page.locator(".attnwidget-image-base")
    canvas.focus()
    assert page.evaluate("document.activeElement.classList.contains('attnwidget-image-base')")
    assert "Arrow keys move between patches" in canvas.get_attribute("aria-label")
    page.keyboard.press("ArrowRight")  # from the focused token ([CLS], no patch): the first patch
    settle(page)
    assert vit_widget.hovered_token == 1
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    settle(page)
    assert vit_widget.hovered_token == 1 + 1 * 4 + 1
    page.keyboard.press("Enter")
    settle(page)
    assert vit_widget.selected_tokens == [6]
    page.keyboard.press("End")
    settle(page)
    assert vit_widget.hovered_token == 12
    page.keyboard.press("Escape")
    settle(page)
    assert vit_widget.hovered_token is None and vit_widget.image_data["token"] == 6


@pytest.mark.parametrize("dark", [False, True])
def test_the_captions_are_readable_on_either_theme(mount_kernel, vit_widget, dark):
    page = mount_kernel(vit_widget, css=DARK if dark else None)
    g = geometry(page)
    # The caption above the picture is drawn in the theme's foreground: light on dark, dark on light.
    caption = page.evaluate("""([w, h]) => {
        const ctx = document.querySelector('.attnwidget-image-base').getContext('2d');
        const d = ctx.getImageData(0, 0, Math.round(w * devicePixelRatio), Math.round(h * devicePixelRatio)).data;
        let lo = 255, hi = 0;
        for (let i = 0; i < d.length; i += 4) {
            if (d[i + 3] < 200) continue;
            const v = (d[i] + d[i + 1] + d[i + 2]) / 3;
            lo = Math.min(lo, v); hi = Math.max(hi, v);
        }
        return [lo, hi];
    }""", [g["left"] + g["width"], g["top"] - 4])
    assert (caption[1] > 180) if dark else (caption[0] < 90), caption


def test_the_overlay_is_the_row_the_kernel_sends(mount):
    """Without a kernel (harness state): a one-hot row lights its patch, and a new row moves the light."""
    one_hot = np.zeros((3, 4), np.float32)
    one_hot[2, 1] = 1.0
    page = mount(**image_state(one_hot, token=10))
    g = geometry(page)
    lit, dark = pixels(page, "base", [patch_centre(g, 2, 1), patch_centre(g, 0, 3)])
    assert sum(lit[:3]) > sum(dark[:3]) + 150  # magma: bright where the weight is
    moved = np.zeros((3, 4), np.float32)
    moved[0, 3] = 1.0
    page.evaluate("row => window.__model.kernelSet('image_data', row)", image_row(moved, token=4))
    lit2, dark2 = pixels(page, "base", [patch_centre(g, 0, 3), patch_centre(g, 2, 1)])
    assert sum(lit2[:3]) > sum(dark2[:3]) + 150
    assert pixels(page, "base", [patch_centre(g, 2, 1)])[0] != lit  # the light moved with the row
    # Hovering patch (0, 0) names token 1 (after [CLS]).
    page.mouse.move(g["x"] + patch_centre(g, 0, 0)[0], g["y"] + patch_centre(g, 0, 0)[1])
    assert page.evaluate("window.__model.calls.set").pop() == ["hovered_token", 1]
