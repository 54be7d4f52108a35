"""Timing helper shared by the benchmark scripts (run from the repository root: `python benchmarks/bench_*.py`)."""
from __future__ import annotations

import time
from typing import Any, Callable


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    """The shortest wall time of ``repeat`` calls: the run least disturbed by the rest of the machine."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)
