"""The vision side of ``capture(model, image_processor, image)``: images in, named patch tokens out.

:func:`is_image_processor` tells an image processor from a tokenizer, :func:`load_image` turns what a
user holds (a PIL image, a path, an array or a tensor of pixels) into an RGB PIL image,
:func:`prepare` runs the processor and recovers the picture the model saw, :func:`vision_tower` finds
the module to run with ``pixel_values``, and :func:`token_layout` names the tokens its attention sees:
the special tokens (``[CLS]``, DeiT's ``[DIST]``, DINOv2's ``register k``) then ``patch r,c`` row by row.
Pure functions: nothing here changes the model, the processor or the image given.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from ._checks import _shown, is_int
from .errors import ArgumentError, ArgumentTypeError, MissingModelError, UnsupportedAttentionError

if TYPE_CHECKING:
    import torch
    from PIL import Image as PILImage
    from transformers import PretrainedConfig, PreTrainedModel
    from transformers.image_processing_base import ImageProcessingMixin

__all__ = ["TokenLayout", "VisionInput", "is_image_processor", "load_image", "prepare", "token_layout",
           "vision_config", "vision_tower"]

_ACCEPTED = ("a PIL image, a path to an image file (str or pathlib.Path), or pixels as a NumPy array or "
             "torch tensor (H x W, H x W x 1/3/4 or 3 x H x W; uint8 0..255 or float 0..1)")


@dataclass(frozen=True, eq=False)
class VisionInput:
    """One image, ready for a vision tower.

    ``pixel_values``: float tensor ``[1, 3, H, W]`` as the processor returns it; ``picture``: uint8
    ``[H, W, 3]``, those pixels de-normalised back to 0..255 (what the model saw, resized and cropped);
    ``original_size``: ``(width, height)`` of the image given."""

    pixel_values: torch.Tensor
    picture: np.ndarray
    original_size: tuple[int, int]


@dataclass(frozen=True, eq=False)
class TokenLayout:
    """Names of the tokens a vision tower's attention sees.

    ``tokens``: ``[CLS]`` / ``[DIST]`` / ``register k`` first, then ``patch r,c`` row by row;
    ``special``: True for the non-patch tokens; ``grid``: ``(rows, cols)`` of patches, which start at
    token ``patch_start``; ``patch_size``: ``(height, width)`` in pixels of ``VisionInput.picture``."""

    tokens: list[str]
    special: np.ndarray
    grid: tuple[int, int]
    patch_start: int
    patch_size: tuple[int, int] = (1, 1)


def _pil() -> ModuleType:
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - Pillow comes with transformers' vision extra
        raise MissingModelError("Images need Pillow, which is not installed: pip install pillow") from exc
    return Image


def _inner_processor(obj: object) -> ImageProcessingMixin | None:
    """The image processor itself: ``obj``, or ``obj.image_processor`` for a combined processor."""
    from transformers.image_processing_base import ImageProcessingMixin

    if isinstance(obj, ImageProcessingMixin):
        return obj
    inner = getattr(obj, "image_processor", None)
    return inner if isinstance(inner, ImageProcessingMixin) else None


def is_image_processor(obj: object) -> bool:
    """True for a transformers image processor (any backend) or a processor holding one as
    ``.image_processor`` (CLIPProcessor, SiglipProcessor, ...); False for tokenizers and the rest."""
    return _inner_processor(obj) is not None


def _to_rgb(img: PILImage.Image) -> PILImage.Image:
    """An RGB copy of a PIL image; transparency is composited onto white, as transformers does."""
    Image = _pil()
    if img.mode.startswith("I;16"):  # 16-bit greyscale: scale 0..65535 to 0..255
        img = Image.fromarray(np.rint(np.asarray(img, dtype=np.float64) / 257.0).astype(np.uint8))
    if "A" in img.getbands() or img.info.get("transparency") is not None:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")  # a new image, also for an RGB one


def _open(image: str | os.PathLike[str]) -> PILImage.Image:
    Image = _pil()
    text = os.fsdecode(os.fspath(image))
    if text.startswith(("http://", "https://")):
        raise ArgumentError(
            f"image must be a local file, a PIL image or an array; got the URL {_shown(text)}. attnwidget "
            "downloads nothing: fetch the file yourself and pass its path.")
    path = Path(text).expanduser()
    if not path.exists():
        raise ArgumentError(
            f"image must be an existing image file; got the path {str(path)!r}, which does not exist "
            f"(relative paths start from {os.getcwd()!r}). Check the spelling, or pass a PIL image.")
    if path.is_dir():
        raise ArgumentError(f"image must be an image file; got the folder {str(path)!r}. Pass one file in it.")
    try:
        with Image.open(path) as img:
            img.load()
            return _to_rgb(img)
    except (OSError, ValueError, SyntaxError) as exc:
        raise ArgumentError(
            f"image must be a file Pillow can read (PNG, JPEG, ...); got {str(path)!r}, which it could not "
            f"open ({exc}). Check it is an image, or load it yourself and pass a PIL image.") from exc


def _array_to_rgb(arr: np.ndarray, kind: str) -> PILImage.Image:
    """Pixels of a NumPy array (from ``kind``: "array" or "tensor") -> RGB PIL image."""
    Image = _pil()
    if arr.ndim == 3 and arr.shape[-1] not in (1, 3, 4) and arr.shape[0] in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # channels first -> channels last
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (1, 3, 4))):
        hint = " For a batch, pass one image (x[0])." if arr.ndim == 4 else ""
        raise ArgumentError(
            f"image {kind} must have shape H x W, H x W x C or C x H x W with C = 1, 3 or 4 channels; got "
            f"shape {tuple(arr.shape)}.{hint}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ArgumentError(f"image {kind} must have at least one pixel; got shape {tuple(arr.shape)}.")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ArgumentError(f"image {kind} of floats must be finite (in [0, 1]); got a NaN or infinite "
                                "pixel. Replace them (np.nan_to_num) or pass the original image.")
        low, high = float(arr.min()), float(arr.max())
        if low < 0 or high > 1:
            hint = ("It looks normalised (e.g. pixel_values of a processor): pass the original image."
                    if low < 0 else "It looks like 0..255 values: divide by 255, or use .astype(np.uint8).")
            raise ArgumentError(
                f"image {kind} of floats must lie in [0, 1]; got values in [{low:.4g}, {high:.4g}]. {hint}")
        arr = np.rint(arr.astype(np.float64) * 255.0).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise ArgumentError(
            f"image {kind} must be of dtype uint8 (0..255) or float (0..1); got dtype {arr.dtype}. Convert "
            "it: .astype(np.uint8) for 0..255 integers, x / 65535 for 16-bit, x.astype(np.uint8) * 255 "
            "for a bool mask.")
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    return _to_rgb(Image.fromarray(np.ascontiguousarray(arr)))  # uint8: L, RGB or RGBA


def load_image(image: object) -> PILImage.Image:
    """A PIL image (any mode), a path, or pixels (array / tensor: H x W, H x W x 1/3/4, or C x H x W when
    only the first axis is 1/3/4; uint8, or float in [0, 1]) -> a new RGB ``PIL.Image.Image``.

    Transparent pixels become white (as transformers' ``convert_to_rgb``); greyscale is replicated."""
    Image = _pil()
    if isinstance(image, Image.Image):
        return _to_rgb(image)
    if isinstance(image, (str, os.PathLike)):
        return _open(image)
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image, "array")
    if type(image).__module__.split(".")[0] == "torch" and hasattr(image, "detach"):
        import torch

        t = image.detach().cpu()
        if t.dtype == torch.uint8:
            return _array_to_rgb(t.numpy(), "tensor")
        if t.is_floating_point():
            return _array_to_rgb(t.to(torch.float64).numpy(), "tensor")
        raise ArgumentError(
            f"image tensor must be of dtype torch.uint8 (0..255) or a float dtype (0..1); got {t.dtype}. "
            "Convert it: x.to(torch.uint8) for 0..255 integers, x.float() / 255 otherwise.")
    raise ArgumentTypeError(
        f"image must be {_ACCEPTED}; got {type(image).__name__} {_shown(image)}. Convert it to one of "
        "those (e.g. np.asarray(...), or PIL.Image.open(io.BytesIO(data)) for encoded bytes).")


def prepare(processor: object, image: object) -> VisionInput:
    """Run ``processor`` on ``image`` (see :func:`load_image`) and recover the picture the model saw."""
    import torch

    ip = _inner_processor(processor) if is_image_processor(processor) else None
    if ip is None:
        raise ArgumentTypeError(
            f"processor must be a transformers image processor (or a processor with one, e.g. "
            f"CLIPProcessor); got {type(processor).__name__}. Build one for the model, e.g. "
            "ViTImageProcessor(...), or pass a tokenizer with text instead of an image.")
    pil = load_image(image)
    pixel_values = ip(images=pil, return_tensors="pt")["pixel_values"]
    if not (isinstance(pixel_values, torch.Tensor) and pixel_values.ndim == 4 and pixel_values.shape[0] == 1
            and not pixel_values.is_complex()):
        shape = tuple(pixel_values.shape) if hasattr(pixel_values, "shape") else type(pixel_values).__name__
        raise ArgumentError(
            f"the image processor must return one image, pixel_values of shape [1, C, H, W]; "
            f"{type(ip).__name__} returned {shape}. Processors that tile or batch an image are not "
            "supported: use the model's plain image processor.")
    if not pixel_values.is_floating_point():  # no rescale, no normalise: 0..255 integers
        pixel_values = pixel_values.to(torch.float32)
    x = pixel_values[0].detach().cpu().to(torch.float64).numpy()
    channels = x.shape[0]
    if getattr(ip, "do_normalize", False):
        mean = np.broadcast_to(np.asarray(ip.image_mean, dtype=np.float64).reshape(-1), (channels,))
        std = np.broadcast_to(np.asarray(ip.image_std, dtype=np.float64).reshape(-1), (channels,))
        x = x * std[:, None, None] + mean[:, None, None]
    if getattr(ip, "do_rescale", False):
        x = x / float(ip.rescale_factor)
    if getattr(ip, "do_flip_channel_order", False):  # RGB -> BGR processors (MobileViT)
        x = x[::-1]
    x = np.repeat(x, 3, axis=0) if channels == 1 else x[:3]  # grey -> RGB; extra channels dropped
    picture = np.clip(np.rint(x), 0, 255).astype(np.uint8).transpose(1, 2, 0)
    return VisionInput(pixel_values=pixel_values, picture=np.ascontiguousarray(picture),
                       original_size=(int(pil.size[0]), int(pil.size[1])))


def _takes_pixels(module: Any) -> bool:  # Any: duck-typed, a module without forward is answered False
    """A module whose main input is pixel_values, or whose forward takes pixel_values but no input_ids."""
    if getattr(module, "main_input_name", None) == "pixel_values":
        return True
    try:
        params = inspect.signature(module.forward).parameters
    except (TypeError, ValueError, AttributeError):
        return False
    return "pixel_values" in params and "input_ids" not in params


def _model_name(model: object) -> str:
    path = getattr(getattr(model, "config", None), "_name_or_path", "") or ""
    return type(model).__name__ + (f" ({path})" if path else "")


def vision_tower(model: PreTrainedModel) -> PreTrainedModel:
    """The module to run with ``pixel_values``: ``model`` itself for a vision model (ViT, DeiT, BEiT,
    DINOv2, CLIPVisionModel, ...), or ``model.vision_model`` for a composite one (CLIPModel, SiglipModel)."""
    inner = getattr(model, "vision_model", None)
    if inner is not None and getattr(getattr(model, "config", None), "vision_config", None) is not None:
        return inner
    if _takes_pixels(model):
        return model
    raise ArgumentError(
        f"an image needs a vision model (or one with a .vision_model, such as CLIPModel); got "
        f"{_model_name(model)}, which has no vision tower that runs on pixel_values alone. For a text model "
        "pass a tokenizer and text instead of an image processor and an image.")


def vision_config(model: PreTrainedModel) -> PretrainedConfig | None:
    """The config of :func:`vision_tower`: ``model.config.vision_config`` for composite models."""
    return model.config.vision_config if vision_tower(model) is not model else getattr(model, "config", None)


def _embeddings(tower: torch.nn.Module) -> Any:  # the patch-embedding module (attributes vary by family)
    """The module that turns pixels into tokens (it owns the patch projection), or None."""
    for module in tower.modules():
        if hasattr(module, "patch_embeddings") or hasattr(module, "patch_embedding"):
            return module
    return None


def token_layout(model: PreTrainedModel, n_tokens: int, pixel_shape: Sequence[int]) -> TokenLayout:
    """Name the ``n_tokens`` tokens the attention of ``model``'s vision tower saw for pixel_values of
    shape ``pixel_shape`` (``[..., H, W]``): specials in embedding order, then patches row by row."""
    tower = vision_tower(model)
    emb = _embeddings(tower)
    config = vision_config(model)
    specials: list[str] = []
    if emb is not None:
        if getattr(emb, "cls_token", None) is not None or getattr(emb, "class_embedding", None) is not None:
            specials.append("[CLS]")
        if getattr(emb, "distillation_token", None) is not None:
            specials.append("[DIST]")
        registers = getattr(emb, "register_tokens", None)
        if registers is not None:
            specials += [f"register {k}" for k in range(int(registers.shape[-2]))]
    patch = getattr(config, "patch_size", None)
    if emb is None or patch is None:
        raise UnsupportedAttentionError(
            f"a vision tower with a patch embedding (ViT-style: special tokens then patches) was expected; "
            f"{_model_name(model)} has none that attnwidget recognises (attention saw {n_tokens} tokens). "
            "Use a ViT, DeiT, BEiT, DINOv2, CLIP or SigLIP vision model.")
    ph, pw = (int(patch), int(patch)) if is_int(patch) else (int(patch[0]), int(patch[1]))
    height, width = int(pixel_shape[-2]), int(pixel_shape[-1])
    rows, cols = height // ph, width // pw
    expected = len(specials) + rows * cols
    if not is_int(n_tokens) or int(n_tokens) != expected:
        named = ", ".join(specials[:3]) + (f" and {len(specials) - 3} more" if len(specials) > 3 else "")
        layout = (f"{named} + " if specials else "") + f"{rows} x {cols} patches"
        raise UnsupportedAttentionError(
            f"{_model_name(model)} on pixel_values of {height} x {width} with {ph} x {pw} patches should "
            f"give {expected} tokens ({layout}); the attention saw n_tokens={_shown(n_tokens)}. This tower "
            "drops, merges or windows tokens (masking, pooling, Swin-style windows), which attnwidget does "
            "not lay out; use a plain ViT-style vision model.")
    tokens = specials + [f"patch {r},{c}" for r in range(rows) for c in range(cols)]
    special = np.zeros(len(tokens), dtype=bool)
    special[:len(specials)] = True
    return TokenLayout(tokens=tokens, special=special, grid=(rows, cols), patch_start=len(specials),
                       patch_size=(ph, pw))
