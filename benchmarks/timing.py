"""Timing helper shared by the benchmark scripts (run from the repository root: `python benchmarks/bench_*.py`)."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    """The shortest wall time of ``repeat`` calls: the run least disturbed by the rest of the machine."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def save_json(path: str | None, result: Any) -> None:
    """Write a benchmark's figures as JSON when ``--json`` named a file."""
    if path:
        Path(path).write_text(json.dumps(result, indent=2) + "\n")
