"""Where models run: the device "auto" picks, and torch's threads on a CPU."""

from __future__ import annotations

import math
import os
from pathlib import Path


CGROUP = Path("/sys/fs/cgroup")
SYS_CPU = Path("/sys/devices/system/cpu")


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity where the OS has one, fewer when a container's CPU quota
    (`docker run --cpus 2` on a 16-core host) allows less."""
    cpus = len(affinity())
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


def physical_cores(cpus: set[int], root: Path = SYS_CPU) -> int | None:
    """How many physical cores the logical CPUs `cpus` sit on (CPUs that are threads of one core count once, by
    the OS's `thread_siblings_list`); None where the OS does not say."""
    cores = set()
    for cpu in cpus:
        try:
            cores.add((root / f"cpu{cpu}" / "topology" / "thread_siblings_list").read_text().strip())
        except OSError:
            return None
    return len(cores) or None


def affinity() -> set[int]:
    """The logical CPUs this process may run on (all of them where the OS has no affinity)."""
    return os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))


def llm_threads(configured: int) -> int:
    """llama.cpp's threads: `configured`, or with 0 (the default) one per CPU where they can be pinned, one to each
    (`llm_pinned_cpus`), else half the usable CPUs, at least one.

    A 2-CPU machine of 2 cores (a free Space, this project's test machine) gets 2 pinned threads, which stay faster
    than 1 while another process keeps a core busy (docs/performance.md); unpinned, llama.cpp's threads wait for
    each other spinning whenever the OS moves one onto the busy core, so where they cannot be pinned (hyperthreads,
    a container's quota narrower than its CPUs) the rule stays half the usable CPUs: llama.cpp's own default counts
    physical cores, and a 2-CPU container on a 16-core host gets 1 thread, a 16-CPU machine of 8 cores 8."""
    if configured > 0:
        return configured
    cpus = affinity()
    return len(cpus) if _pinnable(cpus) else max(1, usable_cpus() // 2)


def llm_pinned_cpus(threads: int) -> tuple[int, ...]:
    """The CPUs to pin llama.cpp's `threads` to, one each: every CPU this process may run on, when there are
    exactly `threads` of them, each its own core, and no quota narrower than them; () otherwise (the OS places
    the threads). On 2 cores beside a busy process, 2 unpinned threads took 2.3x as long as 1 thread for four
    candidates; pinned, 0.92x (bench/threads.py)."""
    cpus = affinity()
    return tuple(sorted(cpus)) if len(cpus) == threads and _pinnable(cpus) else ()


def _pinnable(cpus: set[int]) -> bool:
    """Whether a thread can have each of these CPUs to itself: each its own physical core, none held back by a
    CPU quota."""
    quota = cgroup_cpu_quota()
    return physical_cores(cpus) == len(cpus) and (quota is None or quota >= len(cpus))


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
