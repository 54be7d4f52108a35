"""Scaling of `nmpu sweep`: the same sweep serial, on 1 and on 2 local Dask workers, in one run.

    .venv/bin/python benchmarks/bench_sweep.py [--json OUT]

Grid: scale.bits x offset.bits (6 x 4 = 24 points) x 3 seeds on the digits default, drift 1 h. Wall
times include starting the cluster and each worker's first load of the model; results must be the
same bits in every mode (checked here). It also measures what the machine's cores give at all: the
same pure-Python loop alone and in two processes at once (on the project's 2-vCPU machine each of the
two runs at ~0.57x of its speed alone, so no two-process program can be more than ~1.15x faster).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from nmpu_model import load_config
from nmpu_model.studies.sweep import Setup, precision_sweep, setup_workload
from timing import save_json

GRID = {"scale.bits": [1, 2, 3, 4, 6, 8], "offset.bits": [1, 2, 4, 8]}


def _spin(n: int) -> float:
    t = time.perf_counter()
    s = 0
    for i in range(n):
        s += i * i
    return time.perf_counter() - t


def core_scaling(n: int = 5_000_000) -> float:
    """Throughput of two processes at once over one alone (2.0 on two independent cores)."""
    import multiprocessing as mp
    alone = _spin(n)
    with mp.Pool(2) as p:
        both = p.map(_spin, [n, n])
    return 2 * alone / max(both)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json")
    args = ap.parse_args()
    cores = core_scaling()
    print(f"machine: two processes at once give {cores:.2f}x the throughput of one", flush=True)
    setup = Setup()
    setup_workload(setup)  # train or load once, outside the timings
    res, raws = {}, {}
    for label, workers in (("serial (no Dask)", 0), ("Dask, 1 worker", 1), ("Dask, 2 workers", 2)):
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            precision_sweep(load_config(), GRID, setup, 3, workers=workers, results=os.path.join(d, "r.json"),
                            progress=False)
            res[label] = time.perf_counter() - t0
            raws[label] = json.load(open(os.path.join(d, "r.json")))["raw"]
        print(f"{label:18s} {res[label]:6.1f} s", flush=True)
    same = all(r == raws["serial (no Dask)"] for r in raws.values())
    speedup = res["Dask, 1 worker"] / res["Dask, 2 workers"]
    print(f"2 workers vs 1: {speedup:.2f}x speed-up; identical results in all modes: {same}")
    save_json(args.json, {"seconds": res, "speedup_2_vs_1": speedup, "identical": same, "cores": os.cpu_count(),
                          "two_process_throughput": cores,
                          "tasks": len(GRID["scale.bits"]) * len(GRID["offset.bits"]) * 3 + 3})


if __name__ == "__main__":
    main()
