"""``capture`` for encoder-decoder models: one forward over source and target, three parts recorded.

The recorder runs once over the whole model; each attention call is filed under the part its module
belongs to (the encoder's self-attention, the decoder's self-attention, the decoder's
cross-attention), so each part keeps its own layers in order. See :mod:`attnwidget.seq2seq`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ._forward import check_ids, context_length, model_name, run
from ._inputs import Encoded, describe, encode
from ._recorder import _eval_mode, model_lock
from ._tokens import token_text
from .errors import ArgumentError, UnsupportedAttentionError

if TYPE_CHECKING:
    import numpy.typing as npt
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from ._recorder import PartOf, Recording
    from ._types import TextInput
    from .seq2seq import Seq2SeqCapture

#: Attribute names of cross-attention modules in transformers' encoder-decoder families.
CROSS_NAMES = ("encoder_attn", "EncDecAttention", "crossattention", "cross_attn", "cross_attention")


def is_seq2seq(model: PreTrainedModel) -> bool:
    """A whole encoder-decoder model (not its encoder alone, which shares the seq2seq config)."""
    if not getattr(model.config, "is_encoder_decoder", False):
        return False
    try:
        encoder, decoder = model.get_encoder(), model.get_decoder()
    except (AttributeError, NotImplementedError, TypeError):
        return False
    modules = {id(m) for m in model.modules()}
    return all(isinstance(m, torch.nn.Module) and m is not model and id(m) in modules for m in (encoder, decoder))


def part_classifier(model: PreTrainedModel) -> PartOf:
    """``part_of(name, module)`` -> ``"encoder"``, ``"decoder"`` or ``"cross"`` for the recorder."""
    names = {id(m): n for n, m in model.named_modules()}
    encoder, decoder = names[id(model.get_encoder())], names[id(model.get_decoder())]

    def inside(name: str, prefix: str) -> bool:
        return not prefix or name == prefix or name.startswith(prefix + ".")

    def part_of(name: str, module: torch.nn.Module) -> str:
        if inside(name, encoder):
            return "encoder"
        if inside(name, decoder):
            cross = any(piece in CROSS_NAMES for piece in name.split(".")) or not getattr(module, "is_causal", True)
            return "cross" if cross else "decoder"
        raise UnsupportedAttentionError(
            f"{name} ran attention outside the encoder ({encoder}) and decoder ({decoder}) of "
            f"{type(model).__name__}; attnwidget cannot tell which part it belongs to"
        )

    return part_of


def capture_seq2seq(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, inputs: TextInput | object, *,
                    target: TextInput | None, generate: int, attention_mask: torch.Tensor | npt.ArrayLike | None,
                    method: str,
                    store_dtype: torch.dtype | None, values: bool = False) -> Seq2SeqCapture:
    from .seq2seq import Seq2SeqCapture

    if method == "weights":
        raise ArgumentError(
            f"method='weights' reads one stack of returned weights; {type(model).__name__} is an encoder-decoder, "
            "whose three parts attnwidget records through the attention interface: use method='auto' (the default)."
        )
    if target is None and not generate:
        raise ArgumentError(
            f"{type(model).__name__} is an encoder-decoder model: besides the source it needs the decoder's side. "
            "Pass target='...' (the decoder's text, or its token ids) to see how the model reads a given "
            "output, or generate=N to let it write N tokens greedily."
        )
    if target is not None and generate:
        raise ArgumentError(f"pass either target= or generate=, not both (got generate={generate} and a target)")
    source = encode(tokenizer, inputs, attention_mask=attention_mask, add_generation_prompt=False)
    check_ids(model, source.ids)
    limit = context_length(model)
    with model_lock(model), torch.no_grad():
        if generate:
            decoder_ids = _generate(model, source, generate)
        else:
            assert target is not None  # refused above: neither a target nor generate=
            decoder_ids = _decoder_ids(model, tokenizer, target)
        for what, ids in (("source", source.ids), ("target", decoder_ids)):
            if limit is not None and ids.shape[1] > limit:
                raise ArgumentError(f"the {what} is {ids.shape[1]} tokens but {type(model).__name__} handles at "
                                    f"most {limit} positions; shorten it")
        check_ids(model, decoder_ids)
        kwargs: dict[str, Any] = {"input_ids": source.ids.to(model.device),
                                  "decoder_input_ids": decoder_ids.to(model.device), "use_cache": False}
        if source.attention_mask is not None:
            kwargs["attention_mask"] = source.attention_mask.to(model.device)
        recording = run(model, method, store_dtype, lambda weights: model(**kwargs), part_classifier(model),
                        values=values)
    missing = {"encoder", "decoder", "cross"} - recording.parts()
    if missing:
        raise UnsupportedAttentionError(
            f"{type(model).__name__} ran no {', '.join(sorted(missing))} attention that attnwidget could record "
            f"(recorded: {sorted(recording.parts())}); its attention is not supported yet"
        )
    return _parts(Seq2SeqCapture, recording, model, tokenizer, source, decoder_ids, generate)


def _parts(cls: type[Seq2SeqCapture], recording: Recording, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
           source: Encoded, decoder_ids: torch.Tensor, generate: int) -> Seq2SeqCapture:
    from .capture import capture_of

    name = model_name(model)
    src, src_text, src_offsets = describe(tokenizer, source, source.ids[0])
    dec = token_text(tokenizer, decoder_ids[0].tolist())
    generated = np.zeros(decoder_ids.shape[1], dtype=bool)
    if generate:
        generated[1:] = True  # everything after the decoder's start token
    src_ids, dec_ids = source.ids[0].numpy(), decoder_ids[0].numpy()
    common: dict[str, Any] = {"model_name": name}
    encoder = capture_of(recording, "encoder", token_ids=src_ids, tokens=src.tokens, offsets=src_offsets,
                         special=src.special, generated=np.zeros(len(src_ids), bool), partial=src.partial,
                         text=src_text, is_causal=False, **common)
    target: dict[str, Any] = {
              "token_ids": dec_ids, "tokens": dec.tokens, "offsets": dec.offsets, "special": dec.special,
              "generated": generated, "partial": dec.partial, "text": dec.text, **common}
    decoder = capture_of(recording, "decoder", is_causal=True, **target)
    cross = capture_of(recording, "cross", is_causal=False, key_tokens=src.tokens, key_token_ids=src_ids, **target)
    return cls(encoder=encoder, decoder=decoder, cross=cross)


def _decoder_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, target: TextInput) -> torch.Tensor:
    """The decoder's input: token ids as given, or a text tokenized as the model's labels (with its
    end token), after the decoder start token, as in training (``labels`` shifted right) plus the
    last label: every target token is read."""
    if isinstance(target, str):
        if not target.strip():
            raise ArgumentError(f"target needs some text; got {target!r}. Pass the decoder's text or token ids.")
        labels = tokenizer(text_target=target, add_special_tokens=True)["input_ids"]
        start = model.config.decoder_start_token_id
        if start is None:
            start = getattr(getattr(model, "generation_config", None), "decoder_start_token_id", None)
        if start is None:
            raise ArgumentError(
                f"{type(model).__name__} names no decoder_start_token_id, so a target text cannot be turned into "
                "decoder inputs; pass target as token ids (starting with the token the decoder starts from)"
            )
        return torch.tensor([[int(start)] + list(labels)], dtype=torch.long)
    return encode(tokenizer, target).ids


def _generate(model: PreTrainedModel, source: Encoded, steps: int) -> torch.Tensor:
    mask = source.attention_mask if source.attention_mask is not None else torch.ones_like(source.ids)
    with _eval_mode(model):
        out = model.generate(input_ids=source.ids.to(model.device), attention_mask=mask.to(model.device),
                             max_new_tokens=steps, do_sample=False, num_beams=1)
    return out.cpu()
