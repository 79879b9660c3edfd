"""Time compute_metrics (all metrics), head_roles and similar_heads on SmolLM2-sized synthetic attention.

30 layers x 9 heads x 1024 tokens of causal softmax patterns in float32 (1.1 GB if held at once).
The source behaves like a Capture: ``patterns([layer])`` hands out one stored layer. Three distinct
layers are generated and served in turn, so memory stays ~110 MB while every call still reads a
layer that is not in cache. Only the analysis calls are timed (best of ``--repeat``).

    python benchmarks/bench_metrics.py [--tokens 1024] [--layers 30] [--heads 9] [--repeat 3]

Writes benchmarks/results/metrics.md and prints it.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from attnwidget.heads import head_distances, head_roles, similar_heads  # noqa: E402
from attnwidget.metrics import METRICS, compute_metrics  # noqa: E402


def causal_softmax(rng, heads: int, n: int) -> np.ndarray:
    """``[heads, n, n]`` float32 causal softmax of random logits, with some sink and previous-token heads."""
    logits = rng.standard_normal((heads, n, n), dtype=np.float32) * 2.0
    logits[:, :, 0] += np.linspace(0, 6, heads, dtype=np.float32)[:, None]  # sink strength varies by head
    idx = np.arange(1, n)
    logits[heads // 2, idx, idx - 1] += 8.0  # one previous-token head
    logits[:, np.triu(np.ones((n, n), dtype=bool), 1)] = -np.inf
    logits -= logits.max(-1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(-1, keepdims=True)
    return logits


class SyntheticCapture:
    """Duck-typed Capture serving ``bank[layer % len(bank)]`` in row blocks, like a real Capture."""

    is_causal = True

    def __init__(self, bank, num_layers: int):
        self.bank = bank
        self.num_layers = num_layers
        self.num_heads, self.num_tokens = bank[0].shape[:2]
        n = self.num_tokens
        self.token_ids = np.arange(n) % max(1, (n - 1) // 2)  # a repeated sequence

    def head_patterns(self, layer, rows=None):  # the row-block path a real Capture takes
        return self.bank[layer % len(self.bank)][:, rows if rows is not None else slice(None)]

    def patterns(self, layers=None):
        layers = list(range(self.num_layers) if layers is None else layers)
        if len(layers) == 1:  # a view, no copy: the timing is the analysis only
            return self.bank[layers[0] % len(self.bank)][None]
        return np.stack([self.bank[l % len(self.bank)] for l in layers])


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=30)
    ap.add_argument("--heads", type=int, default=9)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--distance-tokens", type=int, default=256, help="sequence length for similar_heads")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    bank = [causal_softmax(rng, args.heads, args.tokens) for _ in range(3)]
    cap = SyntheticCapture(bank, args.layers)
    names = [m for m in METRICS if m != "pattern_match"]
    shape = f"{args.layers} layers x {args.heads} heads x {args.tokens} tokens, float32"

    rows = []
    t = best_of(lambda: compute_metrics(cap, names), args.repeat)
    rows.append((f"compute_metrics, {len(names)} metrics", shape, t))
    t = best_of(lambda: compute_metrics(cap, expected="previous"), args.repeat)
    rows.append((f"compute_metrics, {len(names)} metrics + pattern_match", shape, t))
    t = best_of(lambda: head_roles(cap), args.repeat)
    rows.append(("head_roles (6 roles, token ids)", shape, t))

    small = [causal_softmax(rng, args.heads, args.distance_tokens) for _ in range(3)]
    small_cap = SyntheticCapture(small, args.layers)
    dshape = f"{args.layers} x {args.heads} heads x {args.distance_tokens} tokens"
    t = best_of(lambda: similar_heads(small_cap), 1)
    rows.append(("similar_heads (JS, max_rows=128)", dshape, t))
    t = best_of(lambda: head_distances(cap, max_rows=64), 1)
    rows.append(("head_distances (JS, max_rows=64)", shape, t))

    lines = [
        "# Metrics benchmark",
        "",
        "Produced by `python benchmarks/bench_metrics.py`: synthetic causal softmax patterns served one layer",
        f"at a time by a Capture-like source; best of {args.repeat} runs (1 for the distance rows).",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, NumPy {np.__version__}.",
        "",
        "| call | input | seconds |",
        "| --- | --- | ---: |",
    ]
    lines += [f"| {name} | {inp} | {sec:.3f} |" for name, inp, sec in rows]
    text = "\n".join(lines) + "\n"
    out = Path(__file__).resolve().parent / "results" / "metrics.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(text)
    return text


if __name__ == "__main__":
    main()
