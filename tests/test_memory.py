"""Memory checks honour container limits: cgroup v2 and v1 (read through fake /proc and cgroup trees),
ATTNWIDGET_MEMORY_LIMIT, and the clear MemoryError of Capture.patterns() under such a limit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import attnwidget
from attnwidget import _memory
from helpers import tiny_model

GiB = 1 << 30


def fake_proc(tmp_path, version: str, limit: int | str, usage: int, inactive: int = 0,
              parent_limit: int | None = None, meminfo_gib: int = 64):
    """A /proc whose process sits in cgroup ``/user/jupyter`` (v1 or v2), under a parent ``/user``."""
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "self").mkdir(parents=True)
    (proc / "meminfo").write_text(f"MemTotal: {meminfo_gib * 2**20} kB\nMemAvailable: {meminfo_gib * 2**20} kB\n")
    leaf, parent = root / "user" / "jupyter", root / "user"
    leaf.mkdir(parents=True)
    if version == "v2":
        (proc / "self" / "cgroup").write_text("0::/user/jupyter\n")
        (proc / "self" / "mountinfo").write_text(
            f"30 23 0:26 / {root} rw,nosuid - cgroup2 cgroup2 rw\n")
        (leaf / "memory.max").write_text(f"{limit}\n")
        (leaf / "memory.current").write_text(f"{usage}\n")
        (leaf / "memory.stat").write_text(f"anon {usage}\ninactive_file {inactive}\n")
        (parent / "memory.max").write_text(f"{'max' if parent_limit is None else parent_limit}\n")
        (parent / "memory.current").write_text(f"{usage}\n")
    else:
        (proc / "self" / "cgroup").write_text("5:cpu,cpuacct:/user/jupyter\n4:memory:/user/jupyter\n0::/\n")
        (proc / "self" / "mountinfo").write_text(
            f"31 25 0:27 / {root} rw,nosuid - cgroup cgroup rw,memory\n"
            f"32 25 0:28 / {tmp_path / 'cpu'} rw,nosuid - cgroup cgroup rw,cpu,cpuacct\n")
        (leaf / "memory.limit_in_bytes").write_text(f"{limit}\n")
        (leaf / "memory.usage_in_bytes").write_text(f"{usage}\n")
        (leaf / "memory.stat").write_text(f"cache {inactive}\ntotal_inactive_file {inactive}\n")
        unlimited = 9223372036854771712
        (parent / "memory.limit_in_bytes").write_text(f"{unlimited if parent_limit is None else parent_limit}\n")
        (parent / "memory.usage_in_bytes").write_text(f"{usage}\n")
    return proc


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_the_cgroup_limit_bounds_the_memory_available(tmp_path, version):
    proc = fake_proc(tmp_path, version, limit=6 * GiB, usage=2 * GiB, inactive=GiB)
    # limit - (usage - reclaimable page cache), far below the host's 64 GiB
    assert _memory.cgroup_available(proc) == 5 * GiB
    assert _memory.available_memory(proc) == 5 * GiB
    assert _memory.meminfo_available(proc) == 64 * GiB


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_a_tighter_parent_cgroup_wins_and_no_limit_is_none(tmp_path, version):
    proc = fake_proc(tmp_path, version, limit=6 * GiB, usage=GiB, parent_limit=3 * GiB)
    assert _memory.cgroup_available(proc) == 2 * GiB
    unlimited = "max" if version == "v2" else 9223372036854771712
    proc = fake_proc(tmp_path / "free", version, limit=unlimited, usage=GiB)
    assert _memory.cgroup_available(proc) is None
    assert _memory.available_memory(proc) == 64 * GiB


def test_the_environment_setting_caps_it_too(tmp_path, monkeypatch):
    proc = fake_proc(tmp_path, "v2", limit="max", usage=0)
    monkeypatch.setenv("ATTNWIDGET_MEMORY_LIMIT", "1e15")
    assert _memory.available_memory(proc) == 64 * GiB
    monkeypatch.setenv("ATTNWIDGET_MEMORY_LIMIT", "2G")
    assert _memory.available_memory(proc) <= 2 * GiB
    monkeypatch.setenv("ATTNWIDGET_MEMORY_LIMIT", "lots")
    with pytest.raises(ValueError, match="ATTNWIDGET_MEMORY_LIMIT='lots' is not a size"):
        _memory.available_memory(proc)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_patterns_raise_a_clear_memory_error_under_a_small_cgroup(tmp_path, monkeypatch, byte_tokenizer, version):
    cap = attnwidget.capture(tiny_model("llama"), byte_tokenizer, "The cat sat on the mat. " * 8)
    n = cap.num_tokens
    need = 4 * 3 * 4 * n * n
    monkeypatch.setattr(_memory, "PROC", str(fake_proc(tmp_path, version, limit=need // 2, usage=0)))
    with pytest.raises(MemoryError) as info:
        cap.patterns()
    text = str(info.value)
    assert f"patterns() for 3 layers x 4 heads x {n}^2 tokens needs" in text
    assert "container (cgroup) limit" in text and "rows=" in text
    assert cap.patterns([0]).shape == (1, 4, n, n)  # a third of it fits
    cap.pattern(0, rows=[1])  # rows of one layer still work


def test_a_real_cgroup_when_this_machine_lets_us_make_one(tmp_path):
    """Where the session may create a memory cgroup (root, cgroup v1 or v2), a child process in a
    512 MiB cgroup asks patterns() for more: it gets the MemoryError instead of the OOM killer."""
    cgroup = _make_cgroup(tmp_path, 512 << 20)
    if cgroup is None:
        pytest.xfail("no writable memory cgroup here (not root or no cgroup filesystem); the fake "
                     "trees above cover the parsing")
    script = textwrap.dedent(f"""
        import os, sys
        open({str(cgroup / 'cgroup.procs')!r}, "w").write(str(os.getpid()))  # join the small cgroup
        from attnwidget import _memory
        try:
            _memory.check_fits(2 << 30, "a test allocation", "Ask for less.")
        except MemoryError as error:
            print("refused:", error)
        else:
            print("allowed", _memory.available_memory())
    """)
    try:
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                             cwd=os.path.dirname(attnwidget.__path__[0]))
    finally:
        _remove_cgroup(cgroup)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("refused:"), out.stdout
    assert "container (cgroup) limit" in out.stdout


def _make_cgroup(tmp_path, limit: int):
    from pathlib import Path

    if os.geteuid() != 0:
        return None
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for base, name, version in (("/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory" in controllers.split(",")),
                                    ("/sys/fs/cgroup", "memory.max", controllers == "")):
            if not version:
                continue
            parent = Path(base) / path.lstrip("/")
            child = parent / f"attnwidget-test-{os.getpid()}"
            try:
                child.mkdir()
                (child / name).write_text(str(limit))
                return child
            except OSError:
                if child.exists():
                    child.rmdir()
    return None


def _remove_cgroup(cgroup) -> None:
    import time

    for _ in range(50):
        try:
            cgroup.rmdir()
            return
        except OSError:
            time.sleep(0.1)
