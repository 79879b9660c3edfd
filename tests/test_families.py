"""Every family, one table: capture under the default loading (and with padding where the family
takes it) equals the model's own eager attention to <= 1e-5, or raises a named refusal; the model's
outputs are bit-identical before and after (issue 11). The models are tiny and random
(tests/families.py); tests/test_capture_exact.py holds the deeper checks of each mechanism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import attnwidget
from families import FAMILIES, image_processor, pair

TOL = 1e-5
TEXT = "the cat sat on the mat and the dog"
TARGET = "a dog sat"


@pytest.fixture(scope="module")
def photo():
    from skimage import data

    return data.chelsea()  # a photograph bundled with scikit-image (nothing is downloaded)


def _text_cases(tokenizer, kind, padding):
    ids = tokenizer(TEXT)["input_ids"]
    yield "plain", {"input_ids": torch.tensor([ids])}, np.ones(len(ids), bool)
    if padding:  # decoders pad on the left, encoders on the right
        mask = [0, 0] + [1] * len(ids) if kind == "causal" else [1] * len(ids) + [0, 0]
        padded = [2, 2] + ids if kind == "causal" else ids + [2, 2]
        yield "padded", {"input_ids": torch.tensor([padded]), "attention_mask": torch.tensor([mask])}, np.array(mask, bool)


def _first_output(out):
    return out[0] if isinstance(out, tuple) else next(iter(out.values()))


def _max_diff(cap, reference, rows) -> float:
    """Largest difference over layers, heads and the real (unpadded) query rows."""
    assert cap.num_layers == len(reference)
    return max(float(np.abs(cap.head_patterns(layer) - reference[layer][0].float().numpy())[:, rows].max())
               for layer in range(cap.num_layers))


def _capture_text(name, model, eager, tokenizer, kind, padding):
    for case, inputs, real in _text_cases(tokenizer, kind, padding):
        with torch.no_grad():
            before = _first_output(model(**inputs))
            ids = inputs["input_ids"][0].tolist()
            mask = inputs.get("attention_mask")
            cap = attnwidget.capture(model, tokenizer, ids, attention_mask=None if mask is None else mask[0].tolist())
            after = _first_output(model(**inputs))
            reference = eager(**inputs, output_attentions=True).attentions
        assert torch.equal(before, after), f"{name} ({case}): the model's output changed"
        assert cap.is_causal == (kind == "causal")
        diff = _max_diff(cap, reference, real)
        assert diff <= TOL, f"{name} ({case}): {diff:.2e} from eager"
        yield case, diff, _method(cap)


def _method(cap) -> str:
    """How the capture was made, for the README's table."""
    from attnwidget._recorder import WeightsRecord

    if any(isinstance(r, WeightsRecord) for r in cap._records):
        return "returned weights (checked)"
    extras = ["T5 position-bias table"] if cap._biases else []
    extras += ["per-head bias"] if any(m.dim() == 3 for m in cap._masks) else []
    return "queries and keys" + (f" + {', '.join(extras)}" if extras else "")


def _capture_seq2seq(name, model, eager, tokenizer):
    ids = tokenizer(TEXT)["input_ids"]
    for case, source, mask in (("plain", ids, None), ("padded", ids + [2, 2], [1] * len(ids) + [0, 0])):
        inputs = {"input_ids": torch.tensor([source])}
        if mask is not None:
            inputs["attention_mask"] = torch.tensor([mask])
        cap = attnwidget.capture(model, tokenizer, source, attention_mask=mask, target=TARGET)
        inputs["decoder_input_ids"] = torch.tensor(cap.decoder.token_ids[None])
        with torch.no_grad():
            before = _first_output(model(**inputs))
            attnwidget.capture(model, tokenizer, source, attention_mask=mask, target=TARGET)
            after = _first_output(model(**inputs))
            out = eager(**inputs, output_attentions=True)
        assert torch.equal(before, after), f"{name} ({case}): the model's output changed"
        assert cap.cross.key_tokens == cap.encoder.tokens and cap.cross.tokens == cap.decoder.tokens
        n_target = cap.decoder.num_tokens
        for part, reference, causal in (("encoder", out.encoder_attentions, False),
                                        ("decoder", out.decoder_attentions, True),
                                        ("cross", out.cross_attentions, False)):
            got = cap.part(part)
            assert got.is_causal == causal
            rows = np.ones(got.num_tokens, bool)
            diff = _max_diff(got, reference, rows)
            assert diff <= TOL, f"{name} ({case}) {part}: {diff:.2e} from eager"
            assert got.pattern(0).shape == (got.num_tokens, len(source) if part != "decoder" else n_target)
            yield f"{case} {part}", diff, _method(got)


def _capture_vision(name, model, eager, photo):
    from attnwidget._vision import prepare, vision_tower

    processor = image_processor(model)
    pixels = prepare(processor, photo).pixel_values
    with torch.no_grad():
        before = _first_output(vision_tower(model)(pixel_values=pixels))
        cap = attnwidget.capture(model, processor, photo)
        after = _first_output(vision_tower(model)(pixel_values=pixels))
        reference = vision_tower(eager)(pixel_values=pixels, output_attentions=True).attentions
    assert torch.equal(before, after), f"{name}: the model's output changed"
    assert cap.image.dtype == np.uint8 and cap.image.shape == (32, 32, 3)
    rows, cols = cap.patch_grid
    assert cap.tokens[cap.patch_start] == "patch 0,0" and cap.tokens[-1] == f"patch {rows - 1},{cols - 1}"
    assert cap.num_tokens == cap.patch_start + rows * cols
    diff = _max_diff(cap, reference, np.ones(cap.num_tokens, bool))
    assert diff <= TOL, f"{name}: {diff:.2e} from eager"
    yield "image", diff, _method(cap)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family(name, byte_tokenizer, photo, record_property):
    family = FAMILIES[name]
    model, eager = pair(name)
    if family.refusal is not None:
        with pytest.raises(attnwidget.UnsupportedAttentionError, match=family.refusal):
            attnwidget.capture(model, byte_tokenizer, TEXT)
        return
    if family.kind == "seq2seq":
        results = list(_capture_seq2seq(name, model, eager, byte_tokenizer))
    elif family.kind == "vision":
        results = list(_capture_vision(name, model, eager, photo))
    else:
        results = list(_capture_text(name, model, eager, byte_tokenizer, family.kind, family.padding))
    record_property("max_diff", max(d for _, d, _ in results))
    record_property("method", " / ".join(sorted({m for _, _, m in results})))
    record_property("cases", ", ".join(sorted({c.split()[0] for c, _, _ in results})))
    assert results
