"""Helpers shared by the benchmark scripts: machine description, peak-RSS probes, table output."""

from __future__ import annotations

import datetime
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

PARAGRAPH = (
    "The history of natural language processing generally started in the 1950s, although work can be "
    "found from earlier periods. In 1950, Alan Turing published an article titled Computing Machinery "
    "and Intelligence which proposed what is now called the Turing test as a criterion of intelligence. "
    "The Georgetown experiment in 1954 involved fully automatic translation of more than sixty Russian "
    "sentences into English. The authors claimed that within three or five years, machine translation "
    "would be a solved problem. However, real progress was much slower, and after the ALPAC report in "
    "1966, which found that ten years of research had failed to fulfill the expectations, funding for "
    "machine translation was dramatically reduced. Little further research in machine translation was "
    "conducted in America until the late 1980s when the first statistical machine translation systems "
    "were developed. "
)


def token_ids(tokenizer, n: int) -> list[int]:
    """Exactly ``n`` token ids of real English prose (the paragraph repeated as needed)."""
    ids: list[int] = []
    while len(ids) < n:
        ids += tokenizer(PARAGRAPH, add_special_tokens=False).input_ids
    return ids[:n]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.system()}"


def today() -> str:
    return datetime.date.today().isoformat()


def _status(field: str) -> int:
    """A /proc/self/status field in bytes (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


class PeakRSS:
    """Peak resident memory of this process during a block, above the RSS when it started.

    Resets the kernel's high-water mark (``echo 5 > /proc/self/clear_refs``) so the peak is the
    block's own, not the model loading's."""

    def __enter__(self):
        import gc

        gc.collect()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        self.start = _status("VmRSS")
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self.peak = _status("VmHWM")
        self.above = self.peak - self.start
        return False


def write_table(name: str, title: str, header: list[str], rows: list[list], notes: list[str]) -> str:
    lines = [f"## {title}", "", f"Measured {today()} on {machine()}.", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(" --- " for _ in header) + "|")
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    lines += [""] + [f"- {n}" for n in notes] + [""]
    text = "\n".join(lines)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text(text)
    print(text)
    return text


def run_case(script: str, *args) -> dict:
    """Run ``script --case ARGS`` in a fresh process (its own memory high-water mark) and return the JSON
    its last line prints; a failing case raises with its last error line."""
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, script, "--case", *map(str, args)], capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise RuntimeError(f"case {args} failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
