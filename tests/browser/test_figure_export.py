"""Readable figures in real Chromium, with the real widget behind the page (kernel_bridge.py): the colour
bars beside the heatmap and the grid, the titles, save_png at a scale and without hover decorations,
the PNG button, save_svg (parsed with xml.etree), and failures raised in Python and said in the status
line."""

from __future__ import annotations

import io
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the hand-built captures
from widget_captures import make_capture, make_seq2seq  # noqa: E402


from attnwidget import SaveError  # noqa: E402
from attnwidget.errors import SaveFolderError  # noqa: E402
from attnwidget.widget import AttentionWidget  # noqa: E402
from page_checks import settle  # noqa: E402

pytestmark = pytest.mark.browser

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>window.__pwned=1</script>"
WORDS = ["▁The", "▁cat", "▁sat", "▁on", "▁the", "▁mat", HOSTILE, "▁and", "▁a&b", "▁dog", "▁slept", "."]


@pytest.fixture(scope="module")
def cap():
    return make_capture(WORDS, causal=True, layers=3, heads=4, seed=7, name="toy-lm")


@pytest.fixture
def widget(cap):
    w = AttentionWidget(cap, head=2, background=False)
    yield w
    w.close()


# ---- helpers -------------------------------------------------------------------------------------

def deliver(page) -> None:
    """What the kernel sent since the page last heard from it (trait changes, custom messages)
    reaches the page, as a kernel's messages would."""
    answer = page.bridge.changes()
    page.evaluate("""answer => {
        window.__model.kernelUpdate(answer.state);
        for (const {content} of answer.messages) window.__model.emit("msg:custom", content, []);
    }""", answer)


def finish(page, save, timeout: float = 15.0):
    """Deliver the save's request to the page and let its answer come back; the saved path."""
    deliver(page)
    deadline = time.monotonic() + timeout
    while not save.done() and time.monotonic() < deadline:
        page.wait_for_timeout(25)  # Playwright runs the page's calls into the bridge meanwhile
    return save.result(0)



def shown(page):
    """The page once it has painted and told the kernel so (save_png needs a page that shows the widget)."""
    page.wait_for_function("!!document.querySelector('.attnwidget')?.dataset.paintedAt", timeout=15000)
    settle(page)
    return page


def box(page, name: str) -> dict:
    return page.evaluate("""name => {
        const box = document.querySelector(`.attnwidget-${name}`);
        const rect = box.querySelector("canvas").getBoundingClientRect();
        return {geometry: JSON.parse(box.dataset.geometry), bars: JSON.parse(box.dataset.colorbars),
                title: box.dataset.title, x: rect.x, y: rect.y, width: box.offsetWidth, height: box.offsetHeight};
    }""", name)


def heatmap_cell(page, query: int, key: int) -> tuple[float, float]:
    b = box(page, "heatmap")
    g = b["geometry"]
    return (b["x"] + g["left"] + (key - g["col0"] + 0.5) * g["cellW"],
            b["y"] + g["top"] + (query - g["row0"] + 0.5) * g["cellH"])


def pixels(page, selector: str, x: float, y: float, width: float, height: float) -> np.ndarray:
    """RGBA [h, w, 4] of a canvas region given in CSS px."""
    data = page.evaluate("""([sel, x, y, w, h]) => {
        const canvas = document.querySelector(sel);
        const d = canvas.width / canvas.clientWidth;
        const image = canvas.getContext("2d").getImageData(Math.round(x * d), Math.round(y * d),
            Math.max(1, Math.round(w * d)), Math.max(1, Math.round(h * d)));
        return {data: Array.from(image.data), width: image.width, height: image.height};
    }""", [selector, x, y, width, height])
    return np.array(data["data"], np.uint8).reshape(data["height"], data["width"], 4)


def status(page) -> str:
    return page.locator(".attnwidget-status").text_content()


def png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(path.read_bytes())).convert("RGBA"))


# ---- colour bars and titles ------------------------------------------------------------------------

def assert_colour_bar(page, name: str, bar: dict, right_of: float) -> None:
    assert bar["x"] > right_of, (bar, right_of)
    column = pixels(page, f".attnwidget-{name}-base", bar["x"] + bar["width"] / 2, bar["y"], 1, bar["height"])[:, 0, :3]
    assert len({tuple(px) for px in column}) > 20  # a gradient, not a flat box
    luminance = column.astype(float) @ [0.2126, 0.7152, 0.0722]
    assert abs(luminance[0] - luminance[-1]) > 120  # from one end of the colour map to the other
    ticks = pixels(page, f".attnwidget-{name}-base", bar["x"] + bar["width"] + 3, bar["y"] - 4, 40, bar["height"] + 8)
    background = ticks[0, -1]
    assert (np.abs(ticks.astype(int) - background.astype(int)).sum(-1) > 60).sum() > 30  # tick labels drawn


def test_colour_bars_beside_the_heatmap_and_the_grid(mount_kernel, widget):
    page = shown(mount_kernel(widget))
    heatmap = box(page, "heatmap")
    g = heatmap["geometry"]
    assert len(heatmap["bars"]) == 1
    assert_colour_bar(page, "heatmap", heatmap["bars"][0], g["left"] + g["width"])
    grid = box(page, "grid")
    assert len(grid["bars"]) == 1
    right = grid["geometry"]["columns"][-1] + grid["geometry"]["cell"]
    assert_colour_bar(page, "grid", grid["bars"][0], right)
    assert heatmap["title"] == "toy-lm · layer 1, head 2"
    assert grid["title"] == "toy-lm · every layer and head"
    # The kernel's selection changes the title; a colour_by metric adds its own bar to the grid.
    widget.head = None
    widget.color_by = "entropy"
    deliver(page)
    assert box(page, "heatmap")["title"] == "toy-lm · layer 1, mean of heads"
    grid = box(page, "grid")
    assert len(grid["bars"]) == 2
    assert_colour_bar(page, "grid", grid["bars"][1], grid["bars"][0]["x"] + 40)
    # Renaming the model renames the figures.
    widget.model_name = "renamed"
    deliver(page)
    assert box(page, "heatmap")["title"] == "renamed · layer 1, mean of heads"


def test_the_scale_is_named_under_the_bar(mount_kernel, widget):
    page = shown(mount_kernel(widget))
    bar = box(page, "heatmap")["bars"][0]
    region = (bar["x"] - 2, bar["y"] + bar["height"] + 2, 70, 14)
    linear = pixels(page, ".attnwidget-heatmap-base", *region)
    widget.color_scale = "no_sink"
    deliver(page)
    assert not np.array_equal(pixels(page, ".attnwidget-heatmap-base", *region), linear)  # "sink removed"


# ---- PNG -------------------------------------------------------------------------------------------

def test_png_at_scale_2_has_twice_the_pixels_and_no_hover_band(mount_kernel, widget, tmp_path):
    page = shown(mount_kernel(widget))
    heatmap = box(page, "heatmap")
    g = heatmap["geometry"]
    query = 4
    page.mouse.move(*heatmap_cell(page, query, 2))
    settle(page)
    assert widget.hovered_token == query
    row_y = g["top"] + (query + 0.5) * g["cellH"]
    overlay = pixels(page, ".attnwidget-heatmap-overlay", g["left"], row_y, g["width"], 1)
    assert (overlay[..., 3] > 0).mean() > 0.9  # the hover band is on screen, across the row

    hovered = finish(page, widget.save_png(tmp_path / "hovered.png", scale=2))
    page.mouse.move(1, 1)  # leave the heatmap: no hover any more
    settle(page)
    assert widget.hovered_token is None
    assert pixels(page, ".attnwidget-heatmap-overlay", g["left"], row_y, g["width"], 1)[..., 3].max() == 0
    plain = finish(page, widget.save_png(tmp_path / "plain.png", scale=2))
    single = finish(page, widget.save_png(tmp_path / "single.png", scale=1))
    assert widget.status == f"saved {tmp_path / 'single.png'}" and widget.error == ""

    a, b, c = png(hovered), png(plain), png(single)
    assert c.shape[:2] == (heatmap["height"], heatmap["width"])
    assert a.shape[:2] == (2 * heatmap["height"], 2 * heatmap["width"]) == b.shape[:2]
    y = int(round(row_y * 2))
    x0, x1 = int(g["left"] * 2) + 1, int((g["left"] + g["width"]) * 2) - 1
    assert np.array_equal(a[y - 2:y + 3, x0:x1], b[y - 2:y + 3, x0:x1])  # the hovered row, as without hover
    assert np.array_equal(a, b)  # and everything else
    assert len({tuple(px) for px in a[y, x0:x1]}) > 3  # the row holds the matrix's colours
    assert (a[..., 3] == 255).all()  # on the theme's background, opaque


def test_grid_png_leaves_out_hover_and_selection(mount_kernel, widget, tmp_path):
    page = shown(mount_kernel(widget))
    grid = box(page, "grid")
    g = grid["geometry"]
    page.mouse.move(grid["x"] + g["columns"][1] + g["cell"] / 2, grid["y"] + g["rows"][0] + g["cell"] / 2)
    page.wait_for_timeout(50)
    hovered = png(finish(page, widget.save_png(tmp_path / "grid-hover.png", view="grid", scale=2)))
    page.mouse.move(1, 1)
    widget.layer, widget.head = 2, 0  # another selection outline
    deliver(page)
    plain = png(finish(page, widget.save_png(tmp_path / "grid.png", view="grid", scale=2)))
    assert hovered.shape[:2] == (2 * grid["height"], 2 * grid["width"])
    assert np.array_equal(hovered, plain)


def test_the_png_button_downloads_the_figure_at_scale_2(mount_kernel, widget, tmp_path):
    page = shown(mount_kernel(widget))
    heatmap = box(page, "heatmap")
    page.mouse.move(*heatmap_cell(page, 3, 1))
    with page.expect_download() as download:
        page.get_by_role("button", name="PNG").click()
    path = tmp_path / "button.png"
    download.value.save_as(path)
    assert download.value.suggested_filename == "attention-heatmap-L1-H2.png"
    image = png(path)
    assert image.shape[:2] == (2 * heatmap["height"], 2 * heatmap["width"])
    page.mouse.move(1, 1)
    settle(page)
    assert np.array_equal(image, png(finish(page, widget.save_png(tmp_path / "kernel.png"))))  # the same figure


# ---- SVG -------------------------------------------------------------------------------------------

def svg_texts(root) -> list[str]:
    return ["".join(element.itertext()) for element in root.iter(f"{SVG}text")]


def test_svg_of_the_heatmap_parses_with_its_title_axes_ticks_and_bar(mount_kernel, widget, tmp_path):
    page = shown(mount_kernel(widget))
    path = finish(page, widget.save_svg(tmp_path / "heatmap.svg"))
    assert widget.status == f"saved {path}"
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    assert root.find(f"{SVG}title").text == "toy-lm · layer 1, head 2"
    texts = svg_texts(root)
    assert "toy-lm · layer 1, head 2" in texts
    assert {"query", "key", "weight", "linear"} <= set(texts)
    assert any(t.startswith("6 <script>") for t in texts)  # the hostile token is text, shortened like on screen
    assert any("a&b" in t for t in texts)
    assert not [e for e in root.iter() if e.tag in (f"{SVG}script", "script", f"{SVG}foreignObject")]
    assert root.find(f".//{SVG}linearGradient") is not None  # the colour bar
    cells = root.findall(f".//{SVG}g[@class='matrix']/{SVG}rect")
    assert 12 <= len(cells) <= 144  # 12 x 12 tokens as rects (runs of a colour merged)
    width, height = float(root.get("width")), float(root.get("height"))
    heatmap = box(page, "heatmap")
    assert (width, height) == (heatmap["width"], heatmap["height"])
    assert page.evaluate("window.__pwned") is None


def test_svg_of_the_grid_and_of_cross_attention(mount_kernel, tmp_path):
    widget = AttentionWidget(make_seq2seq(), background=False)  # opens on cross-attention
    try:
        page = shown(mount_kernel(widget))
        root = ET.parse(finish(page, widget.save_svg(tmp_path / "cross.svg"))).getroot()
        assert root.find(f"{SVG}title").text == "toy-t5 · cross: layer 1, mean of heads"
        assert {"target", "source"} <= set(svg_texts(root))
        grid = ET.parse(finish(page, widget.save_svg(tmp_path / "grid.svg", view="grid"))).getroot()
        assert grid.find(f"{SVG}title").text == "toy-t5 · cross: every layer and head"
        texts = svg_texts(grid)
        assert {"head", "layer", "weight", "own max", "mean", "L0", "H0"} <= set(texts)
        assert grid.find(f".//{SVG}linearGradient") is not None
    finally:
        widget.close()


def test_svg_of_a_long_prompt_embeds_the_matrix_as_an_image(mount_kernel, tmp_path):
    long_cap = make_capture([f"▁w{i}" for i in range(140)], causal=True, layers=1, heads=1, seed=2, name="long")
    widget = AttentionWidget(long_cap, background=False)
    try:
        page = shown(mount_kernel(widget))
        root = ET.parse(finish(page, widget.save_svg(tmp_path / "long.svg"))).getroot()
        images = list(root.iter(f"{SVG}image"))
        assert len(images) == 1 and images[0].get("href").startswith("data:image/png;base64,")
        assert root.find(f"{SVG}title").text == "long · layer 0, mean of heads"
        assert "query" in svg_texts(root)
    finally:
        widget.close()


# ---- errors where the user looks -------------------------------------------------------------------

def test_bad_paths_raise_and_the_status_line_says_so(mount_kernel, widget, tmp_path):
    page = shown(mount_kernel(widget))
    missing = tmp_path / "no-such-folder" / "fig.png"
    with pytest.raises(SaveFolderError, match="the folder .*no-such-folder does not exist"):
        widget.save_png(missing)
    deliver(page)
    line = status(page)
    assert line.startswith("attnwidget: save_png: SaveFolderError: cannot save") and "no-such-folder" in line
    assert page.locator(".attnwidget-status").get_attribute("role") == "alert"
    with pytest.raises(PermissionError, match="it is a folder"):
        widget.save_svg(tmp_path)
    deliver(page)
    assert status(page).startswith("attnwidget: save_svg: SavePermissionError: cannot save")
    # The next save that works clears it.
    finish(page, widget.save_png(tmp_path / "ok.png"))
    deliver(page)
    assert status(page) == f"saved {tmp_path / 'ok.png'}"


def test_the_pages_failure_raises_and_is_said(mount_kernel, widget, tmp_path):
    page = shown(mount_kernel(widget))
    page.evaluate("window.__model.kernelSet('view', 'text')")  # the page moved on; the kernel has not heard yet
    save = widget.save_svg(tmp_path / "x.svg")
    with pytest.raises(SaveError, match="failed in the page: the page shows the text view, not the heatmap"):
        finish(page, save)
    deliver(page)
    assert "the page shows the text view, not the heatmap" in status(page)
    assert not (tmp_path / "x.svg").exists()


def test_no_page_or_a_silent_page_raises(mount_kernel, widget, tmp_path):
    page = shown(mount_kernel(widget))
    save = widget.save_png(tmp_path / "x.png", timeout=0.3)  # never delivered: nobody answers
    with pytest.raises(SaveError, match=r"no page answered within 0.3 s"):
        save.result()
    page.bridge.outbox.clear()  # the request is lost on the way: the page never hears of it
    deliver(page)
    assert "no page answered within 0.3 s" in status(page)
    page.evaluate("window.__cleanup()")  # the output is cleared: the page says it has gone
    settle(page)
    with pytest.raises(SaveError, match="every page that showed it has closed"):
        widget.save_png(tmp_path / "y.png")
