"""Where models run: the device "auto" picks, and torch's threads on a CPU."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


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
