"""Shared fixtures: a byte-level tokenizer built in code and the real example models (loaded once per
session). Plain helpers (tiny random models, texts) live in helpers.py."""

from __future__ import annotations

import pytest

CORPUS = [
    "The cat sat on the mat. The dog sat on the log.",
    "Attention is all you need; attention patterns tell stories.",
    "猫坐在垫子上。狗坐在木头上。注意力机制很有趣。",
    "Привет мир! Bonjour le monde. 12345 + 678 = 13023",
]
SPECIALS = ["<bos>", "<eos>", "<pad>"]


@pytest.fixture(scope="session")
def byte_tokenizer():
    """A byte-level BPE tokenizer (like GPT-2 / SmolLM2) trained in memory on a tiny corpus."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    backend.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>",
                                   pad_token="<pad>")


@pytest.fixture(scope="session")
def smollm2():
    import attnwidget

    return attnwidget.load_model("smollm2")


@pytest.fixture(scope="session")
def minilm():
    import attnwidget

    return attnwidget.load_model("minilm")
