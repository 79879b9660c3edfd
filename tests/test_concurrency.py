"""Captures of one model from several threads, exact restore of training flags, and repair of a model
left on a recorder that no longer exists."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import attnwidget
from helpers import tiny_model

TEXTS = ["The cat sat on the mat.", "Attention is all you need; attention patterns tell stories.",
         "猫坐在垫子上。狗坐在木头上。", "Привет мир! Bonjour le monde. 12345 + 678 = 13023"]


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits.clone()


def _state(model):
    return ([(n, m.training) for n, m in model.named_modules()],
            [(id(c), c._attn_implementation) for c in _configs(model)])


def _configs(model):
    seen = {}
    for m in model.modules():
        c = getattr(m, "config", None)
        if c is not None and hasattr(c, "_attn_implementation"):
            seen[id(c)] = c
    return list(seen.values())


def test_two_threads_capturing_one_model_get_their_own_text_exactly(byte_tokenizer):
    model = tiny_model("llama")
    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11]])
    before_logits, before_state = _logits(model, ids), _state(model)
    reference = {t: attnwidget.capture(model, byte_tokenizer, t).patterns() for t in TEXTS[:2]}
    failures = []
    for trial in range(10):
        results: dict[int, object] = {}
        start = threading.Barrier(2)

        def run(k, text):
            start.wait()
            try:
                results[k] = (text, attnwidget.capture(model, byte_tokenizer, text))
            except Exception as error:  # noqa: BLE001 - collected, checked below
                results[k] = (text, error)

        threads = [threading.Thread(target=run, args=(k, TEXTS[k])) for k in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        for k, (text, out) in results.items():
            if isinstance(out, Exception):
                failures.append(f"trial {trial}, thread {k}: {type(out).__name__}: {out}")
                continue
            assert out.text == text
            np.testing.assert_allclose(out.patterns(), reference[text], atol=1e-6, rtol=0)
    assert not failures, failures  # serialised per model: no capture needs to fail
    assert _state(model) == before_state
    assert torch.equal(_logits(model, ids), before_logits)  # bit-identical afterwards


def test_a_plain_forward_in_another_thread_during_a_capture_is_untouched(byte_tokenizer):
    model = tiny_model("llama")
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    expected = _logits(model, ids)
    reference = attnwidget.capture(model, byte_tokenizer, TEXTS[1]).patterns()
    seen, stop = [], threading.Event()

    def forwards():
        while not stop.is_set():
            seen.append(_logits(model, ids))

    worker = threading.Thread(target=forwards)
    worker.start()
    try:
        for _ in range(5):
            cap = attnwidget.capture(model, byte_tokenizer, TEXTS[1])
            np.testing.assert_allclose(cap.patterns(), reference, atol=1e-6, rtol=0)
    finally:
        stop.set()
        worker.join()
    assert seen and all(torch.allclose(s, expected, atol=1e-6) for s in seen)


def test_captures_of_different_models_run_at_once(byte_tokenizer):
    models = [tiny_model("llama", seed=s) for s in (0, 1)]
    refs = [attnwidget.capture(m, byte_tokenizer, TEXTS[0]).patterns() for m in models]
    out = [None, None]

    def run(k):
        out[k] = attnwidget.capture(models[k], byte_tokenizer, TEXTS[0]).patterns()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for k in range(2):
        np.testing.assert_allclose(out[k], refs[k], atol=1e-6, rtol=0)


@pytest.mark.parametrize("method", ["qk", "weights"])
def test_mixed_training_flags_are_restored_exactly(byte_tokenizer, method):
    model = tiny_model("llama")
    model.train()
    model.model.layers[0].eval()
    model.model.layers[2].self_attn.eval()
    before = _state(model)
    assert any(flag for _, flag in before[0]) and not all(flag for _, flag in before[0])
    attnwidget.capture(model, byte_tokenizer, TEXTS[0], method=method)
    assert _state(model) == before


def test_flags_and_implementation_are_restored_after_an_exception(byte_tokenizer, monkeypatch):
    import attnwidget._recorder as recorder

    model = tiny_model("llama")
    model.train()
    model.model.layers[1].eval()
    ids = torch.tensor([[5, 6, 7]])
    before = _state(model)

    def boom(*args, **kwargs):
        raise RuntimeError("failure inside the forward")

    monkeypatch.setattr(recorder, "_record", boom)
    with pytest.raises(RuntimeError, match="failure inside the forward"):
        attnwidget.capture(model, byte_tokenizer, TEXTS[0])
    assert _state(model) == before
    model.eval()
    _logits(model, ids)  # the model still runs


def test_a_model_left_on_a_stale_recorder_is_repaired_with_a_warning(byte_tokenizer):
    model = tiny_model("llama")
    ids = torch.tensor([[5, 6, 7, 8]])
    expected = _logits(model, ids)
    for config in _configs(model):
        config._attn_implementation = "attnwidget_recorder_999999"  # what an interrupted capture leaves
    with pytest.raises(KeyError):
        _logits(model, ids)  # broken, as users found it
    with pytest.warns(RuntimeWarning, match=r"left using attnwidget's recorder 'attnwidget_recorder_999999'.*'sdpa'"):
        attnwidget.capture(model, byte_tokenizer, TEXTS[0])
    assert all(c._attn_implementation == "sdpa" for c in _configs(model))
    assert torch.equal(_logits(model, ids), expected)
