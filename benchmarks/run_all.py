"""Run every benchmark and write benchmarks/results/README.md: one "goal | measured | met?" table.

    python benchmarks/run_all.py            # full sizes (~10-25 min on 2 cores), what `make bench` runs
    python benchmarks/run_all.py --quick    # small sizes (~3 min); results go to benchmarks/results/quick/
    python benchmarks/run_all.py --only capture browser

Each script runs as its own process, one after another (nothing else of ours runs beside it), and
writes its detailed table(s) to benchmarks/results/*.md; this runner reads them back (the ``*.json``
files of the scripts that write one, the tables of bench_bytes.py and bench_flow.py), samples the
machine's load average while it runs, and writes the summary with a section per script. A script
that fails is reported as failed (its old results are removed first, so nothing stale is quoted) and
the runner exits non-zero after writing the summary.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import RESULTS, machine, today  # noqa: E402

PY = sys.executable


def steps(quick: bool, state_dir: Path) -> list[dict]:
    """name, command, result files (relative to RESULTS), what it measures."""
    state_n = 1024 if quick else 8192
    state = state_dir / f"{state_n}.json"
    q = ["--quick"] if quick else []
    return [
        {"name": "capture", "cmd": [PY, "bench_capture.py", *q], "files": ["capture.md", "capture.json"],
         "title": "Capture: time vs plain forward, memory vs eager output_attentions"},
        {"name": "beyond", "cmd": [PY, "bench_beyond.py", *q], "files": ["beyond.md", "beyond.json"],
         "title": "Beyond raw weights: values=True and flow_routes vs the plain capture"},
        {"name": "bytes", "cmd": [PY, "bench_bytes.py", *(["--tokens", "128"] if quick else [])],
         "files": ["bytes.md"], "title": "Bytes to the browser vs BertViz"},
        {"name": "flow", "cmd": [PY, "bench_flow.py", *q], "files": ["flow.md"],
         "title": "Exact attention flow vs the networkx reference"},
        {"name": "metrics", "cmd": [PY, "bench_metrics.py", *(["--tokens", "256", "--repeat", "1"] if quick else [])],
         "files": ["metrics.md"], "title": "Metrics (synthetic attention)"},
        {"name": "long", "cmd": [PY, "bench_long.py", *q, "--save-state", str(state)],
         "files": ["long.md", "long.json"], "title": "Long inputs (2048 and 8192 tokens), side by side"},
        {"name": "browser", "cmd": [PY, "bench_browser.py", *q, "--state", f"{state_n}={state}"],
         "files": ["browser.md", "browser.json"], "title": "Headless Chromium: first paint and hover"},
    ]


class LoadSampler(threading.Thread):
    """os.getloadavg()[0] every few seconds, so the summary can say how busy the shared machine was."""

    def __init__(self, every: float = 5.0):
        super().__init__(daemon=True)
        self.every, self.samples, self._halt = every, [], threading.Event()

    def run(self):
        while not self._halt.is_set():
            self.samples.append((time.time(), os.getloadavg()[0]))
            self._halt.wait(self.every)

    def stop(self):
        self._halt.set()

    def between(self, t0: float, t1: float) -> list[float]:
        return [v for t, v in self.samples if t0 <= t <= t1]


def run_step(step: dict, log: Path) -> dict:
    """Run one script, streaming its output to the console and a log; keep the tail for the summary."""
    t0 = time.time()
    tail: list[str] = []
    with open(log, "w") as f:
        proc = subprocess.Popen(step["cmd"], cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                bufsize=1)
        for line in proc.stdout:
            f.write(line)
            if "Warning" in line or "warn(" in line:
                continue
            sys.stdout.write(line)
            sys.stdout.flush()
            tail = (tail + [line.rstrip()])[-20:]
        rc = proc.wait()
    return {"rc": rc, "t0": t0, "t1": time.time(), "seconds": time.time() - t0, "tail": tail}


# -- reading results ---------------------------------------------------------------------------------

OUT = RESULTS  # where the scripts' files are read from (results/quick/ after a quick run)


def _read(name: str):
    path = OUT / name
    if not path.is_file():
        return None
    return json.loads(path.read_text()) if name.endswith(".json") else path.read_text()


def _yes(ok: bool | None) -> str:
    return "—" if ok is None else ("yes" if ok else "**NO**")


def summary_rows(ran: dict) -> list[list[str]]:
    rows = []

    def failed(name):
        r = ran.get(name)
        if r is None:
            return "not run"
        return None if r["rc"] == 0 else f"failed (exit {r['rc']}, see {name} below)"

    def _miss(name):
        return "—" if name not in ran else _yes(False)

    # 1, 2: capture
    cap = _read("capture.json") if not failed("capture") else None
    if cap:
        t, m = cap["time"], cap["memory"]
        rows.append([f"capture time / plain sdpa forward, {t['tokens']} tokens (median of "
                     f"{len(t['ratios'])} alternating pairs)", f"<= {t['goal']}x",
                     f"{t['ratio']:.2f}x ({t['capture_s']:.2f} s vs {t['forward_s']:.2f} s; pairs "
                     f"{min(t['ratios']):.2f}x..{max(t['ratios']):.2f}x)", _yes(t["ratio"] <= t["goal"])])
        view, eager = m["cases"]["view"], m["cases"]["eager"]
        rows.append([f"peak RSS above the loaded model, capture + default view (AttentionWidget) / eager "
                     f"output_attentions, {m['tokens']} tokens", f"<= {m['goal']}x",
                     f"{m['ratio']:.3f}x ({view['above'] / 2**20:.0f} MiB vs {eager['above'] / 2**30:.2f} GiB)",
                     _yes(m["ratio"] <= m["goal"])])
    else:
        rows.append(["capture time / plain sdpa forward", "<= 1.5x", failed("capture") or "no result", _miss("capture")])
        rows.append(["peak RSS, capture + default view / eager output_attentions", "<= 0.2x",
                     failed("capture") or "no result", _miss("capture")])

    # beyond raw weights (issue 13): values=True and flow_routes vs the plain capture
    bey = _read("beyond.json") if not failed("beyond") else None
    if bey:
        for what, t_key, m_key in (("capture(values=True)", "time_values", "mem_values"),
                                   ("flow_routes on a values + residual capture", "time_routes", "mem_routes"),
                                   ("routes from scratch (capture with values and residual, then flow_routes)",
                                    "time_pipeline", "mem_pipeline")):
            rows.append([f"{what} / plain capture, {bey['tokens']} tokens: time, peak RSS",
                         f"<= {bey['goal_time']:g}x, <= {bey['goal_mem']:g}x",
                         f"{bey[t_key]:.2f}x, {bey[m_key]:.2f}x",
                         _yes(bey[t_key] <= bey["goal_time"] and bey[m_key] <= bey["goal_mem"])])
    else:
        rows.append(["values=True and flow_routes / plain capture: time, peak RSS", "<= 3x, <= 2x",
                     failed("beyond") or "no result", _miss("beyond")])

    # 3: bytes (bench_bytes.md)
    text = _read("bytes.md") if not failed("bytes") else None
    match = text and re.search(r"ratio attnwidget / \(head_view \+ model_view\) = ([0-9.e-]+) \(goal <= ([0-9.e-]+)", text)
    ours = text and re.search(r"\| attnwidget explorer[^|]*\| ([^|]+) \|", text)
    tokens = text and re.search(r"SmolLM2 at (\d+) tokens", text)
    if match:
        ratio, goal = float(match.group(1)), float(match.group(2))
        peers = re.findall(r"\| BertViz (\w+) \(html_action='return'\) \| ([^|]+) \|", text)
        rows.append([f"bytes for the default view (explorer) / BertViz head_view + model_view HTML, "
                     f"{tokens.group(1)} tokens", f"<= {goal:g}",
                     f"{ratio:.5f} ({ours.group(1).strip()} vs " + " + ".join(f"{b.strip()} {v}" for v, b in peers) + ")",
                     _yes(ratio <= goal)])
    else:
        why = failed("bytes") or ("BertViz side failed, see bytes below" if text else "no result")
        rows.append(["bytes for the default view / BertViz head_view + model_view HTML", "<= 0.001", why, _miss("bytes")])

    # 4: browser
    br = _read("browser.json") if not failed("browser") else None
    if br:
        for r in br["results"]:
            rows.append([f"first paint in headless Chromium, {r['tokens']} tokens (grid + heatmap)",
                         f"<= {br['goal_paint_ms']:.0f} ms", f"{r['paint_median']:.0f} ms",
                         _yes(r["paint_median"] <= br["goal_paint_ms"])])
        for r in br["results"]:
            rows.append([f"hover repaint (event to end of frame), {r['tokens']} tokens",
                         f"<= {br['goal_hover_ms']:.0f} ms",
                         f"{r['hover_median']:.1f} ms median (p95 {r['hover_p95']:.1f} ms)",
                         _yes(r["hover_median"] <= br["goal_hover_ms"])])
    else:
        rows.append(["first paint / hover repaint in headless Chromium", "<= 500 ms / <= 16 ms",
                     failed("browser") or "no result", _miss("browser")])

    # 5: long inputs (bench_long.py's table: one row per measure and length)
    text = _read("long.md") if not failed("long") else None
    if text:
        for line in text.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 3 and cells[0] not in ("measure", "---"):
                measure, goal, measured = cells
                rows.append([measure, goal, measured, "**NO**" if "(over)" in measured or "not raised" in measured
                             else ("—" if measured.startswith("not run") else "yes")])
    else:
        rows.append(["long inputs (2048 and 8192 tokens)", "see bench_long.py", failed("long") or "no result",
                     _miss("long")])

    # 6: flow (bench_flow.md)
    text = _read("flow.md") if not failed("flow") else None
    found = text and re.findall(r"\| last token's row \| (\d+) x (\d+) \| ([0-9.]+) \| not run", text)
    if found:
        n, layers, secs = max(found, key=lambda f: int(f[0]))
        rows.append([f"exact attention flow, last token's row, {n} tokens x {layers} layers", "<= 10 s",
                     f"{float(secs):.2f} s", _yes(float(secs) <= 10)])
    else:
        rows.append(["exact attention flow, last token's row", "<= 10 s", failed("flow") or "no result", _miss("flow")])

    # metrics: no goal, quoted by the README
    text = _read("metrics.md") if not failed("metrics") else None
    found = text and re.search(r"\| compute_metrics, (\d+) metrics \| ([^|]+) \| ([0-9.]+) \|", text)
    if found:
        rows.append([f"compute_metrics, {found.group(1)} metrics, {found.group(2).strip()} (synthetic)", "—",
                     f"{float(found.group(3)):.2f} s", "—"])
    return rows


def write_summary(out: Path, ran: dict, quick: bool, total: float, loads: LoadSampler, load_start, load_end) -> str:
    global OUT
    OUT = out
    allv = [v for _, v in loads.samples] or [load_start[0]]
    lines = [
        "# Benchmark results" + (" (quick sizes: not the figures the README quotes)" if quick else ""), "",
        f"Produced by `make bench` (`python benchmarks/run_all.py{' --quick' if quick else ''}`) on {today()}, "
        f"{machine()}; total {total / 60:.1f} min. The machine is shared: load average (1 min) "
        f"{load_start[0]:.2f} at the start, {load_end[0]:.2f} at the end, mean {sum(allv) / len(allv):.2f} "
        f"and max {max(allv):.2f} while it ran (sampled every 5 s; {os.cpu_count()} cores).",
        "", "| goal | target | measured | met? |", "| --- | --- | --- | --- |",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in summary_rows(ran)]
    lines += ["", "Every ratio is measured side by side in the same run. Detailed tables, with how each figure "
              "was taken and, for a goal not met, what limits it, are below and in the files linked.", "",
              "| script | section | seconds | exit | mean load during |", "| --- | --- | --- | --- | --- |"]
    for name, r in ran.items():
        during = loads.between(r["t0"], r["t1"])
        load = f"{sum(during) / len(during):.2f}" if during else ""
        links = ", ".join(f"[{f}]({f})" for f in r["files"] if (out / f).exists())
        lines.append(f"| `{' '.join(Path(c).name for c in r['cmd'][1:])}` | {links} | {r['seconds']:.0f} | "
                     f"{r['rc']} | {load} |")
    for name, r in ran.items():
        lines += ["", "---", ""]
        md = [f for f in r["files"] if f.endswith(".md") and (out / f).exists()]
        if r["rc"] != 0:
            lines += [f"## {r['title']}: FAILED (exit {r['rc']})", "", "Last lines of its output:", "", "```",
                      *r["tail"], "```"]
        for f in md:
            body = (out / f).read_text()
            lines.append(re.sub(r"(?m)^# ", "## ", body).rstrip())
    text = "\n".join(lines) + "\n"
    (out / "README.md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes; results in benchmarks/results/quick/")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="run only these: capture bytes flow metrics long browser")
    args = parser.parse_args()

    started = time.time()
    load_start = os.getloadavg()
    sampler = LoadSampler()
    sampler.start()
    RESULTS.mkdir(exist_ok=True)
    # Quick runs must not overwrite the committed full-size tables: keep them aside, restore after.
    kept = {p.name: p.read_bytes() for p in RESULTS.iterdir() if p.is_file()} if args.quick else {}
    out = RESULTS / "quick" if args.quick else RESULTS
    ran = {}
    with tempfile.TemporaryDirectory(prefix="attnwidget-bench-") as tmp:
        todo = [s for s in steps(args.quick, Path(tmp)) if not args.only or s["name"] in args.only]
        try:
            for step in todo:
                for f in step["files"]:  # nothing stale: a failed script leaves no old figures behind
                    (RESULTS / f).unlink(missing_ok=True)
                print(f"\n=== {step['name']}: {' '.join(Path(c).name for c in step['cmd'][1:])} "
                      f"(load {os.getloadavg()[0]:.2f}) ===", flush=True)
                r = run_step(step, Path(tmp) / f"{step['name']}.log")
                ran[step["name"]] = {**step, **r}
                print(f"=== {step['name']}: exit {r['rc']} after {r['seconds']:.0f} s ===", flush=True)
        finally:
            sampler.stop()
            if args.quick:
                out.mkdir(exist_ok=True)
                for step in todo:
                    for f in step["files"]:
                        if (RESULTS / f).exists():
                            shutil.move(str(RESULTS / f), out / f)
                for name, data in kept.items():
                    (RESULTS / name).write_bytes(data)
        text = write_summary(out, ran, args.quick, time.time() - started, sampler, load_start, os.getloadavg())
    print("\n" + text.split("\n---\n")[0])
    print(f"Wrote {out / 'README.md'} in {(time.time() - started) / 60:.1f} min.")
    if any(r["rc"] != 0 for r in ran.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
