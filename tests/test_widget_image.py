"""The image view of a vision capture: the picture once, the focused token's row over its patches."""

from __future__ import annotations

import numpy as np
import pytest
from widget_captures import make_picture, make_vision, make_seq2seq

import attnwidget
from attnwidget.errors import ArgumentError
from attnwidget.widget import AttentionWidget


def decode(wire: dict) -> np.ndarray:
    return np.frombuffer(wire["buffer"], dtype=wire["dtype"]).reshape(wire["shape"])


@pytest.fixture(scope="module")
def vit():
    return make_vision()  # [CLS] + 3 x 4 patches


@pytest.fixture
def widget(vit):
    w = AttentionWidget(vit, background=False)
    yield w
    w.close()


def expected(cap, layer, head, token):
    row = cap.pattern(layer, head, rows=[token])[0]
    rows, cols = cap.patch_grid
    return row[cap.patch_start:cap.patch_start + rows * cols].reshape(rows, cols), row[:cap.patch_start]


def test_a_vision_capture_opens_on_the_image(widget, vit):
    assert widget.view == "image" and widget.views[-1] == "image"
    assert widget.image["grid"] == [3, 4] and widget.image["patch_start"] == 1
    picture = decode(widget.image["picture"])
    assert picture.dtype == np.uint8 and picture.shape == (48, 64, 3)
    np.testing.assert_array_equal(picture, make_picture())
    data = widget.image_data
    assert data["token"] == 0  # [CLS]: the natural row of bidirectional attention
    patches, others = expected(vit, 1, None, 0)
    np.testing.assert_allclose(decode(data["values"]), patches, atol=1e-6)
    np.testing.assert_allclose(decode(data["others"]), others, atol=1e-6)
    assert decode(data["values"]).dtype == np.float32 and "picture" not in data


def test_hovering_a_patch_from_python_updates_the_overlay(widget, vit):
    changes = []
    widget.observe(lambda change: changes.append(change["name"]), names=["image", "image_data"])
    token = widget.patch_token(1, 2)
    assert token == 1 + 1 * 4 + 2
    widget.hovered_token = token
    assert widget.image_data["token"] == token
    np.testing.assert_allclose(decode(widget.image_data["values"]), expected(vit, 1, None, token)[0], atol=1e-6)
    widget.head = 3
    np.testing.assert_allclose(decode(widget.image_data["values"]), expected(vit, 1, 3, token)[0], atol=1e-6)
    widget.layer = 0
    np.testing.assert_allclose(decode(widget.image_data["values"]), expected(vit, 0, 3, token)[0], atol=1e-6)
    widget.hovered_token = None
    widget.selected_tokens = [5]  # the focus falls back on the last selected token
    assert widget.image_data["token"] == 5
    assert "image" not in changes and changes.count("image_data") == 5  # the picture was sent once
    with pytest.raises(IndexError, match="row 3 is out of range: there are 3 patch rows"):
        widget.patch_token(3, 0)


def test_the_image_follows_the_text_source(widget, vit):
    widget.hovered_token = 4
    widget.text_source = "rollout"
    rollout = attnwidget.rollout(vit)[4]
    np.testing.assert_allclose(decode(widget.image_data["values"]).ravel(), rollout[1:], atol=1e-6)
    np.testing.assert_allclose(decode(widget.image_data["others"]), rollout[:1], atol=1e-6)
    widget.text_source = "flow"
    assert "values" not in widget.image_data and "compute_flow(4)" in widget.image_data["note"]
    flow = widget.compute_flow(4)
    np.testing.assert_allclose(decode(widget.image_data["values"]).ravel(), flow[1:], atol=1e-6)


def test_registers_and_cls_are_the_other_tokens():
    cap = make_vision(2, 3, extra_tokens=("[CLS]", "[REG0]", "[REG1]"))
    widget = AttentionWidget(cap, background=False)
    widget.hovered_token = widget.patch_token(1, 1)
    patches, others = expected(cap, 1, None, 3 + 4)
    np.testing.assert_allclose(decode(widget.image_data["values"]), patches, atol=1e-6)
    assert decode(widget.image_data["others"]).shape == (3,)
    np.testing.assert_allclose(decode(widget.image_data["others"]), others, atol=1e-6)
    widget.close()


def test_the_image_view_needs_a_picture():
    s2s = make_seq2seq()
    widget = AttentionWidget(s2s.encoder, background=False)
    assert "image" not in widget.views and widget.image == {} and widget.view == "heatmap"
    with pytest.raises(ArgumentError, match=r"the image view needs a vision capture \(capture.image"):
        widget.view = "image"
    with pytest.raises(ArgumentError, match="image view needs a vision capture"):
        widget.patch_token(0, 0)
    widget.close()


def test_other_views_still_work_on_a_vision_capture(widget, vit):
    widget.view = "heatmap"
    np.testing.assert_allclose(decode(widget.heatmap_data["matrix"]), vit.pattern(1), atol=1e-3)
    widget.hovered_token = 6
    assert widget.image_data["token"] == 0  # the hidden image view is not recomputed
    widget.view = "image"
    assert widget.image_data["token"] == 6


def test_a_real_vit_capture():
    """capture(model, image_processor, picture) on a tiny random ViT: the picture the model saw."""
    from families import image_processor, pair
    from skimage import data

    model, _ = pair("vit")
    cap = attnwidget.capture(model, image_processor(model), data.chelsea())
    widget = AttentionWidget(cap, background=False)
    assert widget.view == "image" and widget.image["grid"] == list(cap.patch_grid)
    np.testing.assert_array_equal(decode(widget.image["picture"]), cap.image)
    widget.hovered_token = widget.patch_token(2, 1)
    patches, others = expected(cap, 1, None, widget.hovered_token)
    np.testing.assert_allclose(decode(widget.image_data["values"]), patches, atol=1e-6)
    np.testing.assert_allclose(decode(widget.image_data["others"]), others, atol=1e-6)
    widget.close()
