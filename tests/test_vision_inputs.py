"""The vision side of capture: image loading, preprocessing, vision towers and patch-token layouts.

Every model is a tiny random one built from a config, every processor is built in code, and every
photograph is one of scikit-image's samples bundled in its wheel (nothing is downloaded).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

PIL_Image = pytest.importorskip("PIL.Image")
skdata = pytest.importorskip("skimage.data")
T = pytest.importorskip("transformers")

from attnwidget._vision import (  # noqa: E402
    TokenLayout,
    VisionInput,
    is_image_processor,
    load_image,
    prepare,
    token_layout,
    vision_config,
    vision_tower,
)
from attnwidget.errors import ArgumentError, ArgumentTypeError, UnsupportedAttentionError  # noqa: E402

KW = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, image_size=32,
          patch_size=8)
SQ = {"height": 32, "width": 32}
TEXT = dict(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
            bos_token_id=0, eos_token_id=1, pad_token_id=1)
REGISTERS = 4


def _photo(name: str) -> np.ndarray:
    return getattr(skdata, name)()  # bundled: astronaut 512x512, chelsea 300x451, coffee 400x600


def _family(name: str):
    """(model, processor, expected special tokens, photograph) for one family, tiny and random."""
    torch.manual_seed(0)
    clip_proc = T.CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size=SQ)
    bit_proc = T.BitImageProcessorPil(size={"shortest_edge": 64}, crop_size={"height": 56, "width": 56})
    dino = dict(KW, image_size=56, patch_size=14)  # DINOv2's real patch size is 14
    deit_proc = T.DeiTImageProcessorPil(size={"height": 40, "width": 40}, crop_size=SQ)
    table = {
        "vit": lambda: (T.ViTModel(T.ViTConfig(**KW)), T.ViTImageProcessorPil(size=SQ), ["[CLS]"], "astronaut"),
        "vit-classifier": lambda: (T.ViTForImageClassification(T.ViTConfig(**KW)),
                                   T.ViTImageProcessorPil(size=SQ), ["[CLS]"], "chelsea"),
        "vit-nonsquare": lambda: (T.ViTModel(T.ViTConfig(**dict(KW, image_size=[32, 48]))),
                                  T.ViTImageProcessorPil(size={"height": 32, "width": 48}), ["[CLS]"], "coffee"),
        "deit": lambda: (T.DeiTModel(T.DeiTConfig(**KW)), deit_proc, ["[CLS]", "[DIST]"], "chelsea"),
        "deit-teacher": lambda: (T.DeiTForImageClassificationWithTeacher(T.DeiTConfig(**KW)), deit_proc,
                                 ["[CLS]", "[DIST]"], "coffee"),
        "beit": lambda: (T.BeitModel(T.BeitConfig(**KW, use_relative_position_bias=True)),
                         T.BeitImageProcessorPil(size=SQ, crop_size=SQ), ["[CLS]"], "astronaut"),
        "dinov2": lambda: (T.Dinov2Model(T.Dinov2Config(**dino)), bit_proc, ["[CLS]"], "coffee"),
        "dinov2-nonsquare": lambda: (T.Dinov2Model(T.Dinov2Config(**dino)),
                                     T.BitImageProcessorPil(size={"height": 42, "width": 70}, do_center_crop=False),
                                     ["[CLS]"], "chelsea"),
        "dinov2-registers": lambda: (
            T.Dinov2WithRegistersModel(T.Dinov2WithRegistersConfig(**dino, num_register_tokens=REGISTERS)),
            bit_proc, ["[CLS]"] + [f"register {k}" for k in range(REGISTERS)], "astronaut"),
        "clip-vision": lambda: (T.CLIPVisionModel(T.CLIPVisionConfig(**KW)), clip_proc, ["[CLS]"], "chelsea"),
        "clip": lambda: (T.CLIPModel(T.CLIPConfig(text_config=TEXT, vision_config=KW, projection_dim=16)),
                         clip_proc, ["[CLS]"], "astronaut"),
        "siglip-vision": lambda: (T.SiglipVisionModel(T.SiglipVisionConfig(**KW)),
                                  T.SiglipImageProcessorPil(size=SQ), [], "coffee"),
        "siglip": lambda: (T.SiglipModel(T.SiglipConfig(text_config=TEXT, vision_config=KW)),
                           T.SiglipImageProcessorPil(size=SQ), [], "chelsea"),
    }
    model, processor, specials, photo = table[name]()
    return model.eval(), processor, specials, _photo(photo)


FAMILIES = ["vit", "vit-classifier", "vit-nonsquare", "deit", "deit-teacher", "beit", "dinov2",
            "dinov2-nonsquare", "dinov2-registers", "clip-vision", "clip", "siglip-vision", "siglip"]


def _embeddings_output(tower, pixel_values) -> torch.Tensor:
    """The token sequence right after the embeddings (what the first attention layer's norm sees)."""
    module = next(m for m in tower.modules()
                  if type(m).__name__.endswith("Embeddings") and "Patch" not in type(m).__name__)
    seen = []
    handle = module.register_forward_hook(lambda mod, args, out: seen.append(out[0] if isinstance(out, tuple)
                                                                              else out))
    try:
        with torch.no_grad():
            tower(pixel_values=pixel_values)
    finally:
        handle.remove()
    return seen[0][0]


@pytest.mark.parametrize("family", FAMILIES)
def test_layout_names_every_token_the_attention_sees(family):
    model, processor, specials, photo = _family(family)
    tower = vision_tower(model)
    composite = family in ("clip", "siglip")
    assert tower is (model.vision_model if composite else model)
    assert vision_config(model) is (model.config.vision_config if composite else model.config)
    vin = prepare(processor, photo)
    with torch.no_grad():
        out = tower(pixel_values=vin.pixel_values, output_hidden_states=True)
    hidden = getattr(out, "last_hidden_state", None)
    n_tokens = (hidden if hidden is not None else out.hidden_states[-1]).shape[1]
    assert out.hidden_states[-1].shape[1] == n_tokens

    layout = token_layout(model, n_tokens, vin.pixel_values.shape)
    assert isinstance(layout, TokenLayout)
    patch = vision_config(model).patch_size
    height, width = vin.pixel_values.shape[-2:]
    rows, cols = height // patch, width // patch
    assert layout.grid == (rows, cols) and layout.patch_size == (patch, patch)
    assert len(layout.tokens) == n_tokens == len(specials) + rows * cols
    assert layout.tokens == specials + [f"patch {r},{c}" for r in range(rows) for c in range(cols)]
    assert layout.patch_start == len(specials)
    assert layout.special.dtype == bool and layout.special.tolist() == [t in specials for t in layout.tokens]
    if family.startswith("siglip"):
        assert "[CLS]" not in layout.tokens and n_tokens == rows * cols  # no class token, no pooler token

    # Each name points at its patch: changing the pixels of patch (r, c) changes that token alone.
    base = _embeddings_output(tower, vin.pixel_values)
    for r, c in {(0, cols - 1), (rows - 1, 0), (1, 2), (rows - 1, cols - 1)}:
        pixels = vin.pixel_values.clone()
        pixels[..., r * patch:(r + 1) * patch, c * patch:(c + 1) * patch] += 1.0
        moved = (_embeddings_output(tower, pixels) - base).abs().amax(dim=-1) > 1e-6
        assert [layout.tokens[i] for i in torch.nonzero(moved).flatten().tolist()] == [f"patch {r},{c}"]


def test_non_square_grids_are_rows_by_columns():
    for family, grid in (("vit-nonsquare", (4, 6)), ("dinov2-nonsquare", (3, 5))):
        model, processor, _, photo = _family(family)
        vin = prepare(processor, photo)
        assert token_layout(model, 1 + grid[0] * grid[1], vin.pixel_values.shape).grid == grid


def test_layout_that_does_not_add_up_is_refused():
    model, processor, _, photo = _family("deit")
    vin = prepare(processor, photo)
    with pytest.raises(UnsupportedAttentionError) as err:
        token_layout(model, 20, vin.pixel_values.shape)
    message = str(err.value)
    assert "DeiTModel" in message and "18 tokens" in message and "[CLS], [DIST] + 4 x 4 patches" in message
    assert "n_tokens=20" in message
    assert isinstance(err.value, NotImplementedError)

    # A real tower that drops tokens: ViT-MAE masks 75% of the patches at random.
    torch.manual_seed(0)
    mae = T.ViTMAEModel(T.ViTMAEConfig(**KW, mask_ratio=0.75)).eval()
    with torch.no_grad():
        n = mae(pixel_values=vin.pixel_values).last_hidden_state.shape[1]
    assert n == 5
    with pytest.raises(UnsupportedAttentionError, match=r"ViTMAEModel.*17 tokens.*n_tokens=5"):
        token_layout(mae, n, vin.pixel_values.shape)


def test_text_models_have_no_vision_tower():
    bert = T.BertModel(T.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                    intermediate_size=37))
    with pytest.raises(ArgumentError, match=r"BertModel.*tokenizer"):
        vision_tower(bert)


# ----------------------------------------------------------------------------- processors


def _clip_tokenizer():
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2, "b</w>": 3, "a": 4, "b": 5}
    return T.CLIPTokenizer(vocab=vocab, merges=[])


def test_is_image_processor():
    image_proc = T.CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size=SQ)
    tokenizer = _clip_tokenizer()
    combined = T.CLIPProcessor(image_processor=image_proc, tokenizer=tokenizer)
    for processor in (image_proc, combined, T.ViTImageProcessorPil(), T.SiglipImageProcessorPil()):
        assert is_image_processor(processor)
    assert hasattr(tokenizer, "convert_ids_to_tokens")
    for other in (tokenizer, None, "openai/clip-vit-base-patch32", T.ViTModel(T.ViTConfig(**KW)), object()):
        assert not is_image_processor(other)

    # A combined processor is used through its image processor.
    photo = _photo("chelsea")
    a, b = prepare(combined, photo), prepare(image_proc, photo)
    assert torch.equal(a.pixel_values, b.pixel_values) and np.array_equal(a.picture, b.picture)
    with pytest.raises(ArgumentTypeError, match=r"image processor.*got CLIPTokenizer.*tokenizer"):
        prepare(tokenizer, photo)


PROCESSORS = {
    "vit": lambda: T.ViTImageProcessorPil(size=SQ),
    "clip": lambda: T.CLIPImageProcessorPil(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 36}),
    "deit": lambda: T.DeiTImageProcessorPil(size={"height": 48, "width": 48}, crop_size=SQ),
    "bit": lambda: T.BitImageProcessorPil(size={"shortest_edge": 64}, crop_size={"height": 56, "width": 56}),
    "siglip": lambda: T.SiglipImageProcessorPil(size={"height": 24, "width": 40}),
    "beit": lambda: T.BeitImageProcessorPil(size=SQ, crop_size=SQ),
    "no-normalize": lambda: T.ViTImageProcessorPil(size=SQ, do_normalize=False),
    "raw-255": lambda: T.ViTImageProcessorPil(size=SQ, do_normalize=False, do_rescale=False),
    "odd-rescale": lambda: T.ViTImageProcessorPil(size=SQ, rescale_factor=1 / 127.5, image_mean=[1, 1, 1],
                                                  image_std=[1, 1, 1]),
}


@pytest.mark.parametrize("name", list(PROCESSORS))
def test_picture_is_what_the_model_saw(name):
    processor = PROCESSORS[name]()
    photo = _photo("coffee")
    vin = prepare(processor, photo)
    assert isinstance(vin, VisionInput) and vin.original_size == (600, 400)
    pv = vin.pixel_values
    assert isinstance(pv, torch.Tensor) and pv.dtype == torch.float32 and pv.shape[:2] == (1, 3)
    expected_hw = {"clip": (32, 36), "bit": (56, 56), "siglip": (24, 40)}.get(name, (32, 32))
    assert tuple(pv.shape[-2:]) == expected_hw
    assert vin.picture.dtype == np.uint8 and vin.picture.shape == expected_hw + (3,)
    assert vin.picture.flags.c_contiguous

    # Independent de-normalisation: x * std + mean, then back to 0..255 by the rescale factor.
    x = pv[0].double().numpy().transpose(1, 2, 0)
    if processor.do_normalize:
        x = x * np.array(processor.image_std) + np.array(processor.image_mean)
    if processor.do_rescale:
        x = x * (1.0 / processor.rescale_factor)
    expected = np.clip(x, 0, 255)
    assert np.abs(vin.picture.astype(np.float64) - expected).max() <= 1.0
    # ... and the picture is the photograph, resized (and cropped): close to a plain resize of it.
    if name in ("vit", "no-normalize", "raw-255", "odd-rescale"):
        plain = np.asarray(PIL_Image.fromarray(photo).resize((32, 32), PIL_Image.Resampling.BILINEAR))
        assert np.abs(vin.picture.astype(int) - plain.astype(int)).mean() < 3
    with pytest.raises(Exception):  # frozen
        vin.picture = None


# ----------------------------------------------------------------------------- images


def _forms_of(rgb: np.ndarray, tmp_path) -> dict:
    """Every accepted form of the same RGB uint8 picture."""
    png = tmp_path / "photo.png"
    PIL_Image.fromarray(rgb).save(png)
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    chw = np.ascontiguousarray(rgb.transpose(2, 0, 1))
    return {
        "pil": PIL_Image.fromarray(rgb),
        "pil-rgba": PIL_Image.fromarray(rgba),
        "path-str": str(png),
        "path": png,
        "uint8-hwc": rgb,
        "uint8-hwc4": rgba,
        "uint8-chw": chw,
        "float32": rgb.astype(np.float32) / 255,
        "float64-chw": chw / 255.0,
        "float16": (rgb / 255.0).astype(np.float16),
        "torch-uint8-hwc": torch.from_numpy(rgb),
        "torch-uint8-chw": torch.from_numpy(chw),
        "torch-float-chw": torch.from_numpy(chw).float() / 255,
        "torch-bfloat16-hwc": (torch.from_numpy(rgb).float() / 255).to(torch.bfloat16).requires_grad_(),
    }


def test_every_form_gives_the_same_rgb_pixels(tmp_path):
    rgb = _photo("chelsea")[::3, ::3].copy()  # 100 x 151: not square, so a transposition would show
    for form, image in _forms_of(rgb, tmp_path).items():
        out = load_image(image)
        assert isinstance(out, PIL_Image.Image) and out.mode == "RGB", form
        assert out.size == (151, 100), form
        got = np.asarray(out)
        tolerance = {"float16": 1, "torch-bfloat16-hwc": 2}.get(form, 0)  # their rounding of k / 255
        assert np.abs(got.astype(int) - rgb.astype(int)).max() <= tolerance, form


def test_greyscale_palette_and_16_bit_forms(tmp_path):
    grey = _photo("camera")[::4, ::4].copy()  # 128 x 128 uint8
    want = np.stack([grey] * 3, axis=-1)
    forms = {"2d": grey, "hw1": grey[..., None], "1hw": grey[None], "float": grey / 255.0,
             "torch-1hw": torch.from_numpy(grey[None].copy()), "pil-L": PIL_Image.fromarray(grey),
             "pil-LA": PIL_Image.fromarray(np.stack([grey, np.full_like(grey, 255)], axis=-1)),
             "pil-I;16": PIL_Image.fromarray(grey.astype(np.uint16) * 257)}
    for form, image in forms.items():
        assert np.array_equal(np.asarray(load_image(image)), want), form

    few = np.zeros((20, 30, 3), np.uint8)
    few[:10] = (200, 30, 10)
    few[10:, :15] = (0, 90, 255)
    palette = PIL_Image.fromarray(few).convert("P", palette=PIL_Image.Palette.ADAPTIVE, colors=4)
    assert palette.mode == "P" and np.array_equal(np.asarray(load_image(palette)), few)
    palette.save(tmp_path / "few.gif")
    assert np.array_equal(np.asarray(load_image(tmp_path / "few.gif")), few)


def test_transparency_is_composited_onto_white():
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)
    rgba[0, :, 3] = 0      # fully transparent row -> white
    rgba[1, :, 3] = 255    # opaque row -> its colour
    rgba[2:, :, 3] = 128   # half -> halfway to white
    for image in (rgba, PIL_Image.fromarray(rgba), torch.from_numpy(rgba).permute(2, 0, 1)):
        got = np.asarray(load_image(image)).astype(int)
        assert (got[0] == 255).all() and (got[1] == (10, 20, 30)).all()
        assert np.abs(got[2] - (133, 138, 143)).max() <= 1


def test_load_image_returns_a_new_image():
    pil = PIL_Image.fromarray(_photo("astronaut")[:8, :8].copy())
    out = load_image(pil)
    assert out is not pil
    out.putpixel((0, 0), (1, 2, 3))
    assert pil.getpixel((0, 0)) != (1, 2, 3)


@pytest.mark.parametrize("value, type_name", [
    ([[0, 1], [2, 3]], "list"), (b"\x89PNG\r\n", "bytes"), (None, "NoneType"), (3, "int"),
    ({"pixels": 1}, "dict"),
])
def test_wrong_kinds_are_refused(value, type_name):
    with pytest.raises(ArgumentTypeError) as err:
        load_image(value)
    message = str(err.value)
    assert "PIL image" in message and "path" in message and "uint8" in message  # what was expected
    assert f"got {type_name}" in message and "Convert it" in message  # what arrived, what to do
    assert isinstance(err.value, TypeError)


@pytest.mark.parametrize("image, parts", [
    (np.full((4, 4, 3), 200.0), ["[0, 1]", "[200, 200]", "divide by 255"]),
    (np.linspace(-2, 2, 48).reshape(4, 4, 3), ["[0, 1]", "[-2, 2]", "normalised", "original image"]),
    (torch.full((3, 4, 4), 1.5), ["[0, 1]", "[1.5, 1.5]"]),
    (np.array([[0.5, np.nan]]), ["finite", "NaN"]),
    (np.zeros((4, 4, 3), np.int64), ["uint8", "int64", "astype(np.uint8)"]),
    (np.zeros((4, 4), bool), ["uint8", "bool"]),
    (np.zeros((4, 4, 3), np.uint16), ["uint16", "16-bit"]),
    (torch.zeros((4, 4, 3), dtype=torch.int32), ["torch.uint8", "torch.int32"]),
    (torch.zeros((4, 4, 3), dtype=torch.complex64), ["torch.complex64"]),
    (np.zeros((5, 5, 2), np.uint8), ["1, 3 or 4 channels", "(5, 5, 2)"]),
    (np.zeros((5, 4, 6), np.uint8), ["(5, 4, 6)"]),
    (np.zeros((1, 3, 8, 8), np.uint8), ["(1, 3, 8, 8)", "x[0]"]),
    (np.zeros(12, np.uint8), ["H x W", "(12,)"]),
    (np.zeros((0, 4, 3), np.uint8), ["at least one pixel", "(0, 4, 3)"]),
])
def test_bad_pixels_are_refused_with_useful_messages(image, parts):
    with pytest.raises(ArgumentError) as err:
        load_image(image)
    for part in parts:
        assert part in str(err.value), (part, str(err.value))
    assert isinstance(err.value, ValueError)


def test_bad_paths_are_refused(tmp_path):
    missing = tmp_path / "nope" / "cat.png"
    with pytest.raises(ArgumentError, match=r"does not exist.*Check the spelling") as err:
        load_image(missing)
    assert str(missing) in str(err.value)
    with pytest.raises(ArgumentError, match="does not exist"):
        load_image(str(missing))
    with pytest.raises(ArgumentError, match=r"got the folder .*Pass one file"):
        load_image(tmp_path)
    notes = tmp_path / "notes.png"
    notes.write_text("not an image")
    with pytest.raises(ArgumentError, match=r"could not open.*notes\.png|notes\.png.*could not open"):
        load_image(notes)
    with pytest.raises(ArgumentError, match=r"URL .*downloads nothing.*pass its path"):
        load_image("https://example.com/cat.png")
