"""Where models run: the device "auto" picks, and torch's threads on a CPU."""

from __future__ import annotations

import math
import os
from pathlib import Path


CGROUP = Path("/sys/fs/cgroup")


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity where the OS has one, fewer when a container's CPU quota
    (`docker run --cpus 2` on a 16-core host) allows less."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    return max(1, min(cpus, math.ceil(quota))) if quota else cpus


def cgroup_cpu_quota(root: Path = CGROUP) -> float | None:
    """The CPUs a cgroup v2 (`cpu.max`) or v1 (`cpu.cfs_quota_us`) quota allows this process; None without one."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:  # "max": no quota
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def llm_threads(configured: int) -> int:
    """llama.cpp's threads: `configured`, or with 0 (the default) half the usable CPUs, at least one.

    Half: llama.cpp's own default is the physical cores (half the logical CPUs where cores run two threads), and
    the speech, picture and voice models need cores beside it. A 2-CPU machine (a free Space, this project's
    test machine) gets 1 thread, which holds its speed when another process takes a core, where 2 threads fell
    to a fraction of it (docs/performance.md); a 4-CPU machine 2, a 16-CPU one 8."""
    return configured if configured > 0 else max(1, usable_cpus() // 2)


def configure_threads() -> int:
    """Use one intra-op thread per CPU this process may run on (torch may count fewer, e.g. physical cores only)."""
    import torch

    cpus = usable_cpus()
    if torch.get_num_threads() != cpus:
        torch.set_num_threads(cpus)
    return cpus


def resolve_device(device: str) -> str:
    """'auto' becomes 'cuda' when a GPU is visible, else 'cpu'."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
