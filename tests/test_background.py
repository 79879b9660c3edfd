"""The widget opens on the selected layer and passes over the others on a background thread: a
selection made meanwhile is answered at once, the grid and the progress line fill in, close() stops."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
import transformers as tf

import attnwidget
from attnwidget import _engine as E
from attnwidget.widget import AttentionWidget


def decode(wire: dict) -> np.ndarray:
    return np.frombuffer(wire["buffer"], dtype=wire["dtype"]).reshape(wire["shape"])


@pytest.fixture(scope="module")
def cap(byte_tokenizer):
    torch.manual_seed(0)
    config = tf.LlamaConfig(vocab_size=400, hidden_size=64, intermediate_size=96, num_hidden_layers=6,
                            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                            bos_token_id=0, eos_token_id=1, pad_token_id=2)
    model = tf.AutoModelForCausalLM.from_config(config).eval()
    return attnwidget.capture(model, byte_tokenizer, "The cat sat on the mat. The dog sat on the log.")


@pytest.fixture
def slow(monkeypatch, cap):
    """Each layer's fused pass takes 0.4 s; records (layer, thread name) in the order they ran."""
    cap.__dict__.pop("_summaries", None)
    if E._PRELOAD is not None:  # capture() loads the kernels on a thread: let it finish first
        E._PRELOAD.join()
    log = []
    original = E.Engine.summarize

    def summarize(self, layer, *args, **kwargs):
        log.append((layer, threading.current_thread().name))
        time.sleep(0.4)
        return original(self, layer, *args, **kwargs)

    monkeypatch.setattr(E.Engine, "summarize", summarize)
    yield log
    cap.__dict__.pop("_summaries", None)


def test_a_selection_during_the_background_pass_is_answered_first(cap, slow):
    t0 = time.perf_counter()
    widget = AttentionWidget(cap, layer=0)
    opened = time.perf_counter() - t0
    assert opened < 1.2  # only the selected layer was computed before returning (0.4 s here)
    assert slow[0] == (0, threading.current_thread().name)
    assert widget.layers_done < cap.num_layers
    time.sleep(0.6)
    assert len(slow) == 1  # the pass waits for the page to have painted the widget ...
    widget._on_message(widget, {"type": "painted"}, [])  # ... which the page says
    time.sleep(0.1)  # the background thread is inside layer 1 now
    t0 = time.perf_counter()
    widget.layer = 5
    answered = time.perf_counter() - t0
    # Answered by the main thread, before the background pass (which works outward from layer 0) got there
    assert (5, threading.current_thread().name) in slow
    background = [layer for layer, thread in slow if thread == "attnwidget-pass"]
    assert 5 not in background[:1] and answered < 1.2
    assert not widget._summary.complete()
    assert widget.heatmap_data["title"] == "layer 5, mean of heads"
    np.testing.assert_allclose(decode(widget.heatmap_data["matrix"]), cap.pattern(5), atol=1e-3)
    ready = decode(widget.grid_data["ready"])
    assert ready[5] == 0 or widget.layers_done >= 2  # the grid says which layers are still pending
    assert widget.progress.startswith("layers ") or widget.progress == ""
    assert widget.wait(timeout=30)
    assert widget.progress == "" and widget.layers_done == cap.num_layers
    assert decode(widget.grid_data["ready"]).all()
    assert sorted(layer for layer, _ in slow) == list(range(cap.num_layers))  # every layer once
    assert not np.isnan(widget.metric_grid("entropy")).any()


def test_closing_the_widget_stops_the_pass(cap, slow):
    widget = AttentionWidget(cap, layer=0)
    widget._on_message(widget, {"type": "painted"}, [])
    time.sleep(0.2)
    widget.close()
    widget._thread.join(timeout=10)
    assert not widget._thread.is_alive()
    assert len(slow) < cap.num_layers  # it stopped before the end


def test_the_pass_starts_without_a_page_after_a_few_seconds(cap, slow, monkeypatch):
    import attnwidget._widget_pass as module

    monkeypatch.setattr(module, "START_AFTER_SECONDS", 0.5)
    widget = AttentionWidget(cap, layer=0)
    time.sleep(1.5)
    assert len(slow) > 1 and widget._thread.is_alive()
    widget.close()


def test_progress_reports_layers_and_time_left(cap, slow):
    seen = []
    widget = AttentionWidget(cap, layer=2)
    widget.observe(lambda change: seen.append(change["new"]), "progress")
    widget.wait(timeout=30)
    assert any(text.startswith("layers 2/6, ") and text.endswith(" s left") for text in seen), seen
    assert seen[-1] == ""


def test_without_background_everything_is_done_on_return(cap, slow):
    widget = AttentionWidget(cap, background=False)
    assert widget._thread is None and widget._summary.complete()
    assert widget.layers_done == cap.num_layers and widget.progress == ""


def test_the_explorer_panels_fill_in(cap, slow):
    explorer = attnwidget.show(cap)
    assert np.isnan(np.asarray(explorer.metric_map.color)).any()  # pending layers
    explorer.wait(timeout=30)
    assert not np.isnan(np.asarray(explorer.metric_map.color)).any()


def test_closing_releases_the_kept_patterns_but_not_the_metrics(cap):
    cap.__dict__.pop("_summaries", None)
    widget = AttentionWidget(cap, background=False)
    summary = widget._summary
    assert all(summary.layer(l).means for l in range(cap.num_layers))
    before = widget.rollout_values(5).copy() if cap.num_tokens > 5 else None
    widget.close()
    assert not any(summary.layer(l).means for l in range(cap.num_layers))
    assert not np.isnan(summary.metrics()["entropy"]).any()
    np.testing.assert_allclose(summary.rollout_rows([5])[0], before, atol=1e-6)  # recomputed, the same
    cap.__dict__.pop("_summaries", None)


def test_a_script_that_exits_during_the_pass_exits_cleanly(tmp_path):
    """Interpreter exit stops the background pass first (a thread left in compiled code aborts)."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import time
        import numpy as np, torch, transformers as tf
        import attnwidget
        from attnwidget import _engine as E

        original = E.Engine.summarize
        def slow(self, layer, *a, **k):
            time.sleep(0.3)
            return original(self, layer, *a, **k)
        E.Engine.summarize = slow

        class Tok:
            def __call__(self, *a, **k): pass
            def convert_ids_to_tokens(self, ids): return [f"t{i}" for i in ids]

        torch.manual_seed(0)
        config = tf.LlamaConfig(vocab_size=400, hidden_size=64, intermediate_size=96, num_hidden_layers=8,
                                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                                bos_token_id=0, eos_token_id=1, pad_token_id=2)
        model = tf.AutoModelForCausalLM.from_config(config).eval()
        cap = attnwidget.capture(model, Tok(), list(np.random.default_rng(0).integers(3, 400, 300)))
        widget = attnwidget.AttentionWidget(cap)
        print("running", widget.layers_done < 8)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "running True" in out.stdout
    assert "terminate called" not in out.stderr
