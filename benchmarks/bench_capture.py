"""Capture cost on SmolLM2: memory at 2048 tokens without patterns, time against a plain forward.

Run: ``python benchmarks/bench_capture.py`` (``make bench`` runs every benchmark). Each measurement
runs in a fresh subprocess so one case's allocations do not flatter or burden the next.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PeakRSS, token_ids, write_table  # noqa: E402

GOAL_RSS = 1.5 * 2**30


def case(kind: str, n: int) -> dict:
    import time

    import torch

    import attnwidget

    torch.set_num_threads(torch.get_num_threads())
    model, tok = attnwidget.load_model("smollm2")
    ids = token_ids(tok, n)
    warm = torch.tensor([ids])
    with torch.no_grad():
        model(warm, use_cache=False, logits_to_keep=1)  # first call at this length pays one-off costs: keep them out
    if kind == "capture":
        with PeakRSS() as peak:
            cap = attnwidget.capture(model, tok, ids)
        return {"seconds": peak.seconds, "peak_above": peak.above, "recorded": cap.nbytes}
    with PeakRSS() as peak, torch.no_grad():
        model(torch.tensor([ids]), use_cache=False, logits_to_keep=1)
    return {"seconds": peak.seconds, "peak_above": peak.above}


def run_case(kind: str, n: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--case", kind, str(n)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--case", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="256 and 512 tokens instead of 1024 and 2048")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(case(args.case[0], int(args.case[1]))))
        return
    sizes = [256, 512] if args.quick else [1024, 2048]
    rows = []
    for n in sizes:
        plain = run_case("forward", n)
        cap = run_case("capture", n)
        rows.append([n, f"{plain['seconds']:.2f}", f"{cap['seconds']:.2f}",
                     f"{cap['seconds'] / plain['seconds']:.2f}x", f"{cap['recorded'] / 2**20:.0f} MiB",
                     f"{plain['peak_above'] / 2**20:.0f} MiB", f"{cap['peak_above'] / 2**20:.0f} MiB",
                     "yes" if cap["peak_above"] < GOAL_RSS else "NO"])
    write_table(
        "capture", "Capture on SmolLM2-135M-Instruct (no patterns requested)",
        ["tokens", "sdpa forward s", "capture s", "capture / forward", "recorded q+k",
         "forward peak RSS above model", "capture peak RSS above model", "< 1.5 GB"],
        rows,
        ["Each cell is a fresh process: load the model, one warm-up forward of the same length (the first call at a new length pays one-off kernel setup), then the measured call.",
         "Peak RSS is the kernel's high-water mark after resetting it (clear_refs) once the model is loaded.",
         "The forward is the model's own sdpa forward with use_cache=False and logits_to_keep=1, as in capture."],
    )


if __name__ == "__main__":
    main()
