"""``capture(model, image_processor, image)`` for vision transformers (ViT, DeiT, BEiT, DINOv2, the
CLIP and SigLIP vision towers): the image is preprocessed, the vision tower runs once under the
recorder, and the tokens are named ``[CLS]`` / ``patch r,c`` (see :mod:`attnwidget._vision`).

The Capture keeps the preprocessed picture (uint8) and the patch grid, so views can lay a row of
attention over the patches. Images have no token ids: ``token_ids`` are the positions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ._forward import model_name, run
from ._memory import release_free_memory
from ._recorder import model_lock
from ._vision import _inner_processor, prepare, token_layout, vision_tower
from .errors import UnsupportedAttentionError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from .capture import Capture


def capture_image(model: PreTrainedModel, processor: object, image: object, *, method: str,
                  store_dtype: torch.dtype | None, values: bool = False, residual: bool = False) -> Capture:
    from .capture import capture_of

    tower = vision_tower(model)
    pixels = prepare(_inner_processor(processor), image)
    picture = pixels.pixel_values.to(device=model.device, dtype=_float_dtype(tower))
    with model_lock(model), torch.no_grad():
        recording = run(model, method, store_dtype,
                        lambda weights: tower(pixel_values=picture, output_attentions=True) if weights
                        else tower(pixel_values=picture), values=values, residual=residual)
    release_free_memory()
    records = recording.ordered("self")
    lengths = {tuple(r.weights.shape[-2:]) if hasattr(r, "weights") else (r.query.shape[1], r.key.shape[1])
               for r in records}
    if len(lengths) != 1 or len({n for pair in lengths for n in pair}) != 1:
        raise UnsupportedAttentionError(
            f"{type(model).__name__}'s attention layers saw different sequences ([query, key] sizes "
            f"{sorted(lengths)}); attnwidget shows one sequence of patch tokens"
        )
    n = next(iter(lengths))[0]
    layout = token_layout(model, n, tuple(pixels.pixel_values.shape))
    zeros = np.zeros(n, dtype=bool)
    return capture_of(recording, "self", token_ids=np.arange(n), tokens=layout.tokens,
                      offsets=np.zeros((n, 2), np.int64), special=layout.special, generated=zeros,
                      partial=zeros, text=None, model_name=model_name(model), is_causal=False,
                      image=pixels.picture, patch_grid=layout.grid, patch_start=layout.patch_start)


def _float_dtype(module: torch.nn.Module) -> torch.dtype:
    return next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)
