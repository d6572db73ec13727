"""What the benchmark scripts measure about the machine itself, so their ratios can be read against it.

Imported by the scripts in this folder (``python benchmarks/X.py`` puts this folder on ``sys.path``).
"""

from __future__ import annotations

import resource
import time

import torch


def cpu_seconds() -> float:
    """User + system CPU time of this process (on 2 cores, about 2 × wall time when busy)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def matmul_gflops(dtype: torch.dtype = torch.float32, n: int = 1024, seconds: float = 1.0) -> float:
    """Measured n×n @ n×n rate in GFLOP/s: the practical compute limit of this machine for ``dtype``."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    k, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        k += 1
    return 2 * n**3 * k / (time.perf_counter() - t0) / 1e9
