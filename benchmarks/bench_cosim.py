"""RTL in the loop: bulk (C++ harness) vs cocotb values/s on the same layer, and the whole test split in bulk mode.

    .venv/bin/python benchmarks/bench_cosim.py [--images 40] [--no-cold] [--json OUT]

1. Same layer, same configuration, same data, same stall seed: the first analog layer of the digits
   CNN (``3``, 32 columns) for the first ``--images`` test images, streamed through the default NMPU in
   cocotb mode and in bulk mode. Both must give the golden model's outputs and the same cycle count.
   The ratio bulk/cocotb of values/s is measured in this run (target: at least 100x), on wall time as
   seen from Python (simulator start-up included) and on the clock loop alone.
2. The whole digits test split (360 images), all analog layers, RTL in the loop, bulk mode: the
   ``nmpu cosim --layers all --mode bulk`` command end to end in a fresh process (target: under 2
   minutes), with a cached build and, unless ``--no-cold``, with a cold build in an empty build folder.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cosim.sim import bulk, cocotb_mode as tb_layer  # noqa: E402
from nmpu_model import apply, load_config  # noqa: E402
from nmpu_model.analog.tiles import TileParams
from nmpu_model.workloads.registry import digits_workload
from nmpu_model.network.analog_network import AnalogNetwork
from timing import save_json  # noqa: E402


def cli(args: list[str], env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "cosim.cli", *args], capture_output=True, text=True, cwd=REPO,
                       env={**os.environ, **(env or {})})
    return time.perf_counter() - t0, r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=40, help="images of the same-layer comparison (default 40)")
    ap.add_argument("--no-cold", action="store_true", help="skip the cold-build run of the whole test split")
    ap.add_argument("--json", help="write the figures as JSON")
    args = ap.parse_args()

    import torch
    torch.set_num_threads(1)   # as nmpu cosim does
    cfg = load_config()
    work = digits_workload(args.images)
    net = AnalogNetwork.build(work.model, work.x_cal, seed=0, t=3600.0, tile=TileParams())
    _, trace = net.run(work.x_test, cfg, "fixed", record=True)
    lt = trace[net.analog_layers[0]]
    x, lc = lt.adc_codes, lt.coeffs
    want = apply(x, lc.config, lc.codes, "fixed", lc.out_frac)

    t0 = time.perf_counter()
    bb = bulk.build(lc.config)
    bulk_build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    tb_layer.build_cached(lc.config)
    cocotb_build_s = time.perf_counter() - t0
    b = min((bulk.run_layer(x, lc.codes, lc.out_frac, lc.config, seed=1) for _ in range(5)), key=lambda r: r.seconds)
    c = tb_layer.run_layer(x, lc.codes, lc.out_frac, lc.config, seed=1, tag="bench")
    for r in (b, c):
        assert np.array_equal(r.outputs, want) and r.protocol_errors == 0, f"{r.mode}: outputs differ from the model"
    assert b.cycles == c.cycles, (b.cycles, c.cycles)
    n = int(x.size)
    same_layer = {
        "layer": lt.name, "values": n, "cycles": b.cycles,
        "cocotb": {"seconds": round(c.seconds, 3), "sim_seconds": round(c.sim_seconds, 3),
                   "values_per_s": round(n / c.seconds), "values_per_s_loop": round(n / c.sim_seconds),
                   "cycles_per_s_loop": round(c.cycles / c.sim_seconds)},
        "bulk": {"seconds": round(b.seconds, 4), "sim_seconds": round(b.sim_seconds, 4),
                 "values_per_s": round(n / b.seconds), "values_per_s_loop": round(n / b.sim_seconds),
                 "cycles_per_s_loop": round(b.cycles / b.sim_seconds)},
    }
    same_layer["ratio_wall"] = round(c.seconds / b.seconds, 1)
    same_layer["ratio_loop"] = round(c.sim_seconds / b.sim_seconds, 1)

    whole: dict = {}
    out = Path(tempfile.mkdtemp(prefix="bench-cosim-"))
    s, r = cli(["cosim", "--layers", "all", "--mode", "bulk", "--json", str(out / "warm.json")])
    assert r.returncode == 0, r.stdout + r.stderr
    d = json.loads((out / "warm.json").read_text())
    whole["cached_build"] = {"wall_s": round(s, 2), "stdout": r.stdout.strip().splitlines(),
                             "inner_seconds": d["seconds"], "accuracy_golden": d["accuracy_golden"],
                             "accuracy_rtl": d["accuracy_rtl"], "mismatches": d["mismatches"],
                             "layers": [{k: l[k] for k in ("name", "values", "mismatches", "cycles", "seconds",
                                                           "values_per_s")} for l in d["layers"]]}
    if not args.no_cold:
        with tempfile.TemporaryDirectory(prefix="bench-cosim-build-") as bd:
            s, r = cli(["cosim", "--layers", "all", "--mode", "bulk", "--json", str(out / "cold.json")],
                       env={"NMPU_CACHE_DIR": bd})
        assert r.returncode == 0, r.stdout + r.stderr
        d = json.loads((out / "cold.json").read_text())
        whole["cold_build"] = {"wall_s": round(s, 2), "inner_seconds": d["seconds"], "builds": d["builds"]}

    res = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
           "load_avg_1min": round(os.getloadavg()[0], 2), "config": cfg.identity(),
           "builds_in_this_run": {"bulk_s": round(bulk_build_s, 2), "bulk_cached": bb.cached,
                                  "cocotb_s": round(cocotb_build_s, 2)},
           "same_layer": same_layer, "whole_test_split": whole}
    sl = same_layer
    print(f"same layer ({sl['layer']}, {sl['values']} values, {sl['cycles']} cycles, identical outputs and cycles):")
    for m in ("cocotb", "bulk"):
        e = sl[m]
        print(f"  {m:6s} {e['values_per_s']:>12,d} values/s wall ({e['seconds']} s)   "
              f"{e['values_per_s_loop']:>12,d} values/s clock loop ({e['cycles_per_s_loop']:,d} cycles/s)")
    print(f"  bulk / cocotb: {sl['ratio_wall']}x wall, {sl['ratio_loop']}x clock loop (target >= 100x)")
    w = whole["cached_build"]
    print(f"whole test split, all layers, bulk, RTL in the loop: {w['wall_s']} s end to end, cached build "
          f"(target < 120 s); accuracy golden {100 * w['accuracy_golden']:.2f}% rtl {100 * w['accuracy_rtl']:.2f}%, "
          f"mismatches {w['mismatches']}")
    for line in w["stdout"]:
        print(f"  {line}")
    if "cold_build" in whole:
        print(f"  with a cold build: {whole['cold_build']['wall_s']} s "
              f"(harness build {list(whole['cold_build']['builds'].values())[0]['seconds']} s)")
    print(f"load average during the run: {res['load_avg_1min']} on {res['cpus']} CPUs")
    save_json(args.json, res)


if __name__ == "__main__":
    main()
