"""Beyond raw weights on SmolLM2 at 2048 tokens: ``capture(values=True)`` and ``flow_routes`` against
the plain (query/key) capture.

Run: ``python benchmarks/bench_beyond.py [--quick]`` (``make bench`` runs every benchmark).

Time: one process loads the model, warms up each call once at the measured length, then runs
``--repeats`` rounds of (plain capture, ``capture(values=True)``, ``flow_routes`` on a capture made
with ``values=True, residual=True``) back to back; each figure is the median of the per-round ratios
to the plain capture of the same round (the calls of a round see the same machine load).

Memory: each case is a fresh process that loads the model, makes one 16-token call of the same kind
(paging in the memory-mapped weights), resets the RSS high-water mark and runs one call: the plain
capture, ``capture(values=True)``, and ``capture(values=True, residual=True)``, after which
``flow_routes`` runs with the capture held (its own peak, and the pipeline's: routes from scratch). The
figure is the peak RSS above the loaded model, against the plain capture's.

Goals (issue 13): ``values=True`` and ``flow_routes`` within 2x the memory and 3x the time of the
query/key capture. Writes ``benchmarks/results/beyond.md`` and ``beyond.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import RESULTS, PeakRSS, token_ids, write_table  # noqa: E402

GOAL_MEM = 2.0
GOAL_TIME = 3.0
MiB = 2**20


def case_time(n: int, repeats: int) -> dict:
    import attnwidget

    model, tok = attnwidget.load_model("smollm2")
    ids = token_ids(tok, n)

    def plain():
        return attnwidget.capture(model, tok, ids)

    def values():
        return attnwidget.capture(model, tok, ids, values=True)

    def residual():
        return attnwidget.capture(model, tok, ids, values=True, residual=True)

    full = residual()

    def routes():
        return attnwidget.flow_routes(full)

    for call in (plain, values, residual, routes):  # warm-up at this length
        call()
    rounds = []
    for _ in range(repeats):
        times = []
        for call in (plain, values, residual, routes):
            t0 = time.perf_counter()
            result = call()
            times.append(time.perf_counter() - t0)
            del result
        rounds.append(times)
    graph = routes()
    return {"tokens": n, "rounds": rounds, "nodes": graph.number_of_nodes(), "edges": graph.number_of_edges(),
            "plain_bytes": plain().nbytes, "values_bytes": values().nbytes, "full_bytes": full.nbytes}


def case_mem(kind: str, n: int) -> dict:
    import attnwidget

    model, tok = attnwidget.load_model("smollm2")
    ids = token_ids(tok, n)
    options = {"plain": {}, "values": {"values": True}, "routes": {"values": True, "residual": True}}[kind]
    warm = attnwidget.capture(model, tok, ids[:16], **options)
    if kind == "routes":
        attnwidget.flow_routes(warm)
    del warm
    with PeakRSS() as peak:
        held = attnwidget.capture(model, tok, ids, **options)
    out = {"kind": kind, "tokens": n, "seconds": peak.seconds, "above": peak.above, "peak": peak.peak,
           "held": held.nbytes}
    if kind == "routes":  # then flow_routes with the capture held: its own peak, and the pipeline's
        with PeakRSS() as routes:
            graph = attnwidget.flow_routes(held)
        out.update(routes_above=routes.above, edges=graph.number_of_edges(),
                   pipeline=max(peak.above, routes.peak - peak.start))
    return out


def run_case(*args) -> dict:
    return _common.run_case(__file__, *args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="512 tokens, 2 rounds")
    parser.add_argument("--tokens", type=int, help="length (default 2048)")
    parser.add_argument("--repeats", type=int, help="rounds for the time comparison (default 5)")
    args = parser.parse_args()
    if args.case:
        kind = args.case[0]
        result = case_time(int(args.case[1]), int(args.case[2])) if kind == "time" else case_mem(kind, int(args.case[1]))
        print(json.dumps(result))
        return
    n = args.tokens or (512 if args.quick else 2048)
    repeats = args.repeats or (2 if args.quick else 5)

    t = run_case("time", n, repeats)
    rounds = t["rounds"]
    ratio = [statistics.median(r[i] / r[0] for r in rounds) for i in range(4)]
    pipeline_time = statistics.median((r[2] + r[3]) / r[0] for r in rounds)
    med = [statistics.median(r[i] for r in rounds) for i in range(4)]
    mem = {kind: run_case(kind, n) for kind in ("plain", "values", "routes")}
    base = mem["plain"]["above"]
    mem_values = mem["values"]["above"] / base
    mem_residual = mem["routes"]["above"] / base
    mem_routes = mem["routes"]["routes_above"] / base
    mem_pipeline = mem["routes"]["pipeline"] / base

    def met(ok: bool) -> str:
        return "yes" if ok else "**NO**"

    def mib(b) -> str:
        return f"{b / MiB:.0f} MiB"

    rows = [
        ["plain capture (queries and keys)", f"{med[0]:.2f} s", "1.00x", mib(base), "1.00x", mib(t["plain_bytes"]), ""],
        ["capture(values=True)", f"{med[1]:.2f} s", f"{ratio[1]:.2f}x", mib(mem["values"]["above"]), f"{mem_values:.2f}x",
         mib(t["values_bytes"]), met(ratio[1] <= GOAL_TIME and mem_values <= GOAL_MEM)],
        ["capture(values=True, residual=True)", f"{med[2]:.2f} s", f"{ratio[2]:.2f}x", mib(mem["routes"]["above"]),
         f"{mem_residual:.2f}x", mib(t["full_bytes"]), ""],
        ["flow_routes alone (on that capture, held)", f"{med[3]:.2f} s", f"{ratio[3]:.2f}x",
         mib(mem["routes"]["routes_above"]), f"{mem_routes:.2f}x", "", met(ratio[3] <= GOAL_TIME and mem_routes <= GOAL_MEM)],
        ["routes from scratch: capture(values, residual) + flow_routes", f"{med[2] + med[3]:.2f} s",
         f"{pipeline_time:.2f}x", mib(mem["routes"]["pipeline"]), f"{mem_pipeline:.2f}x", "",
         met(pipeline_time <= GOAL_TIME and mem_pipeline <= GOAL_MEM)],
    ]
    notes = [
        f"SmolLM2-135M-Instruct, {n} tokens of English prose. Time: one process, {repeats} rounds of the four "
        "calls back to back after one warm-up each; ratios are medians of the per-round ratios to the plain "
        "capture of the same round.",
        "Memory: a fresh process per capture kind; peak RSS above the loaded model (after a 16-token call of the "
        "same kind). flow_routes alone: its peak above the RSS with the capture held; from scratch: the higher "
        "of the capture's peak and flow_routes' peak, both above the loaded model.",
        f"Goals (issue 13): <= {GOAL_MEM:g}x memory and <= {GOAL_TIME:g}x time of the plain capture. flow_routes to "
        f"the last token kept {t['nodes']} nodes and {t['edges']} edges (threshold 0.04).",
    ]
    write_table("beyond", f"Beyond raw weights: values=True and flow_routes at {n} tokens",
                ["call", "time (median)", "time / plain", "peak RSS above model", "memory / plain", "kept", "goal met?"],
                rows, notes)
    summary = {"tokens": n, "time_values": ratio[1], "time_routes": ratio[3], "time_pipeline": pipeline_time,
               "mem_values": mem_values, "mem_routes": mem_routes, "mem_pipeline": mem_pipeline,
               "goal_time": GOAL_TIME, "goal_mem": GOAL_MEM, "seconds": med,
               "above": {k: v["above"] for k, v in mem.items()}, "rounds": rounds}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "beyond.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
