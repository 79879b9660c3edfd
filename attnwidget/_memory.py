"""How much memory this process may still use, honouring container limits; one place for memory checks.

Jupyter kernels often run in containers (JupyterHub, Kubernetes, Docker, Binder) whose memory limit
is a cgroup's, far below what ``/proc/meminfo`` reports for the host. Asking only ``/proc/meminfo``
lets a request pass that the kernel then OOM-kills: a dead kernel and lost work. So the memory
available is the smallest of:

* ``MemAvailable`` from ``/proc/meminfo`` (the host or VM);
* for every cgroup on this process's path, v2 (``memory.max``) or v1 (``memory.limit_in_bytes``),
  its limit minus what the group uses now, not counting the reclaimable page cache
  (``inactive_file``), as the kernel's OOM killer and Kubernetes count it; parents count too;
* ``ATTNWIDGET_MEMORY_LIMIT`` (bytes, or with a K/M/G suffix) minus this process's resident memory,
  for users who want attnwidget to keep to a smaller share of a shared machine.

:func:`check_fits` turns that into one clear ``MemoryError`` that says what was asked for, what is
available and what to do instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import ArgumentError, MemoryBudgetError

_UNLIMITED = 1 << 60  # cgroup v1 reports "no limit" as a huge number (PAGE_COUNTER_MAX)
PROC = "/proc"  # where /proc is (tests point it at a fake tree)


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except (OSError, ValueError):
        return None
    if text == "max":
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return None if value >= _UNLIMITED else value


def _stat_value(path: Path, *keys: str) -> int:
    """The first of ``keys`` in a cgroup ``memory.stat`` file (0 when absent)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return 0
    values = dict(line.split(maxsplit=1) for line in lines if " " in line)
    for key in keys:
        if key in values:
            try:
                return int(values[key])
            except ValueError:
                return 0
    return 0


def _mounts(proc: Path) -> dict[str, tuple[Path, str]]:
    """Cgroup mount points: ``{"v2": (mount, root)}`` and ``{"v1": (mount, root)}`` for the memory controller."""
    out: dict[str, tuple[Path, str]] = {}
    try:
        lines = (proc / "self" / "mountinfo").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or not tail:
            continue
        fstype, options = tail[0], (tail[2] if len(tail) > 2 else "")
        if fstype == "cgroup2":
            out.setdefault("v2", (Path(fields[4]), fields[3]))
        elif fstype == "cgroup" and "memory" in options.split(","):
            out.setdefault("v1", (Path(fields[4]), fields[3]))
    return out


def _cgroup_dirs(proc: Path) -> list[tuple[str, Path]]:
    """``[(version, directory)]`` of this process's memory cgroup and all its parents, innermost first."""
    try:
        lines = (proc / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return []
    mounts = _mounts(proc)
    found = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "" and "v2" in mounts:
            version = "v2"
        elif "memory" in controllers.split(",") and "v1" in mounts:
            version = "v1"
        else:
            continue
        mount, root = mounts[version]
        # Inside a cgroup namespace the path is relative to the mount's root; outside, strip the root.
        rel = path[len(root):] if root != "/" and path.startswith(root) else path
        here = mount / rel.lstrip("/")
        if not here.is_dir():
            here = mount
        chain = [here]
        while chain[-1] != mount and mount in chain[-1].parents:
            chain.append(chain[-1].parent)
        found += [(version, d) for d in chain]
    return found


def cgroup_available(proc: str | Path | None = None) -> int | None:
    """Bytes left under the tightest cgroup memory limit on this process's path, or None (no limit)."""
    best = None
    for version, d in _cgroup_dirs(Path(proc or PROC)):
        if version == "v2":
            limit = _read_int(d / "memory.max")
            usage = _read_int(d / "memory.current")
            cache = _stat_value(d / "memory.stat", "inactive_file")
        else:
            limit = _read_int(d / "memory.limit_in_bytes")
            usage = _read_int(d / "memory.usage_in_bytes")
            cache = _stat_value(d / "memory.stat", "total_inactive_file", "inactive_file")
        if limit is None:
            continue
        left = max(0, limit - max(0, (usage or 0) - cache))
        best = left if best is None else min(best, left)
    return best


def meminfo_available(proc: str | Path | None = None) -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes (or free physical pages elsewhere), or None."""
    try:
        for line in (Path(proc or PROC) / "meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def _parse_size(text: str) -> int | None:
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in "KMGT" and text[-1:] else text
    try:
        return int(float(number) * scale)
    except ValueError:
        return None


def _resident() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def available_memory(proc: str | Path | None = None) -> int | None:
    """Bytes this process can still allocate: the smallest of the host's ``MemAvailable``, every cgroup
    limit minus its usage (v1 and v2), and ``ATTNWIDGET_MEMORY_LIMIT`` minus our resident memory.
    None when nothing is known."""
    candidates = [meminfo_available(proc), cgroup_available(proc)]
    setting = os.environ.get("ATTNWIDGET_MEMORY_LIMIT")
    if setting:
        limit = _parse_size(setting)
        if limit is None:
            raise ArgumentError(
                f"ATTNWIDGET_MEMORY_LIMIT={setting!r} is not a size; use bytes or a number with K, M or G "
                "(for example 6G)"
            )
        candidates.append(max(0, limit - _resident()))
    known = [c for c in candidates if c is not None]
    return min(known) if known else None


def check_fits(need: int, what: str, advice: str) -> None:
    """Raise ``MemoryError`` when ``need`` bytes for ``what`` exceed :func:`available_memory`."""
    available = available_memory()
    if available is not None and need > available:
        raise MemoryBudgetError(
            f"{what} needs {need / 2**30:.2f} GiB; {available / 2**30:.2f} GiB is available to this process "
            f"(the smallest of the system's free memory, its container (cgroup) limit and "
            f"ATTNWIDGET_MEMORY_LIMIT). {advice}"
        )


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim  # glibc only; musl and others have no such symbol
    except (OSError, AttributeError):
        return None


def release_free_memory() -> None:
    """Hand memory that was freed back to the operating system (glibc's ``malloc_trim``; no-op elsewhere).

    A long forward pass frees hundreds of MB of activations, but glibc keeps freed heap pages mapped for
    later use, so the process still counts them as resident (0.55 GiB after an 8192-token capture of
    SmolLM2). In a container that is memory the cgroup limit charges for nothing. Called after a
    capture and after kept patterns are dropped; costs a few milliseconds.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
