"""The attention of an encoder-decoder model: three parts, each read like a Capture.

``capture(model, tokenizer, source, target=...)`` on T5, BART, Marian, Pegasus, mT5 (any model whose
config says ``is_encoder_decoder``) returns a :class:`Seq2SeqCapture`:

* ``.encoder``: the encoder's self-attention over the source tokens (bidirectional);
* ``.decoder``: the decoder's self-attention over the target tokens (causal);
* ``.cross``: the decoder's attention over the encoder's output: ``pattern(layer, head)`` is
  ``[target, source]``, its ``tokens`` are the decoder's and its ``key_tokens`` the encoder's.

Rollout is defined within the encoder and within the decoder; cross-attention has none on its own,
and attnwidget does not invent one across parts (see docs/DECISIONS.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ArgumentError

if TYPE_CHECKING:
    from ._types import AttentionSource, StrPath
    from .capture import Capture

PARTS = ("encoder", "decoder", "cross")


class Seq2SeqCapture:
    """Encoder, decoder and cross-attention of one source/target pair (see the module docstring)."""

    def __init__(self, *, encoder: Capture, decoder: Capture, cross: Capture) -> None:
        if cross.num_tokens != decoder.num_tokens or cross.num_keys != encoder.num_tokens:
            raise ArgumentError(
                f"cross-attention must be [target, source] = [{decoder.num_tokens}, {encoder.num_tokens}]; "
                f"got [{cross.num_tokens}, {cross.num_keys}]"
            )
        self.encoder = encoder
        self.decoder = decoder
        self.cross = cross

    @property
    def parts(self) -> dict[str, Capture]:
        """``{"encoder": Capture, "decoder": Capture, "cross": Capture}``."""
        return {"encoder": self.encoder, "decoder": self.decoder, "cross": self.cross}

    def part(self, name: str) -> Capture:
        """One part by name: 'encoder', 'decoder' or 'cross'."""
        from ._checks import check_choice

        return self.parts[check_choice(name, PARTS, "part")]

    @property
    def model_name(self) -> str:
        return self.encoder.model_name

    @property
    def source_tokens(self) -> list[str]:
        return self.encoder.tokens

    @property
    def target_tokens(self) -> list[str]:
        return self.decoder.tokens

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.parts.values())

    def __repr__(self) -> str:
        return (f"<Seq2SeqCapture {self.model_name}: {self.encoder.num_tokens} source tokens, "
                f"{self.decoder.num_tokens} target tokens; encoder {self.encoder.num_layers} layers x "
                f"{self.encoder.num_heads} heads, decoder {self.decoder.num_layers} x {self.decoder.num_heads}>")

    @classmethod
    def from_attentions(cls, encoder: AttentionSource, decoder: AttentionSource, cross: AttentionSource, *,
                        source_tokens: Sequence[str] | None = None, target_tokens: Sequence[str] | None = None,
                        model_name: str = "attentions") -> Seq2SeqCapture:
        """From the three attention tuples an encoder-decoder returns with ``output_attentions=True``
        (``encoder_attentions``, ``decoder_attentions``, ``cross_attentions``), each checked as attention."""
        from ._from_attentions import seq2seq_from_attentions

        return seq2seq_from_attentions(encoder, decoder, cross, source_tokens=source_tokens,
                                       target_tokens=target_tokens, model_name=model_name)

    @classmethod
    def from_output(cls, output: Any, *, source_tokens: Sequence[str] | None = None,
                    target_tokens: Sequence[str] | None = None) -> Seq2SeqCapture:
        """From a model output (``Seq2SeqLMOutput``...) computed with ``output_attentions=True``."""
        return cls.from_attentions(output.encoder_attentions, output.decoder_attentions, output.cross_attentions,
                                   source_tokens=source_tokens, target_tokens=target_tokens)

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path: StrPath) -> Path:
        """Write all three parts to one ``.safetensors`` file that :meth:`load` reopens."""
        from . import _capture_file

        return _capture_file.save_parts(self, path)

    @classmethod
    def load(cls, path: StrPath) -> Seq2SeqCapture:
        """Reopen a file written by :meth:`save` (checked as ``Capture.load`` checks its files)."""
        from . import _capture_file
        from .capture import Capture

        loaded = _capture_file.load(Capture, path)
        if not isinstance(loaded, cls):
            raise ArgumentError(f"{path} holds one Capture, not an encoder-decoder capture; open it with Capture.load")
        return loaded
