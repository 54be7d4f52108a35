"""Every input of the default configuration through the RTL, and the bulk harness against cocotb on that stream.

    .venv/bin/python benchmarks/bench_exhaustive.py [--no-fault] [--slice-columns 256] [--json OUT]

1. Same stream: the first ``--slice-columns`` coefficient combinations of the default configuration's
   exhaustive plan (every ADC code each, one ``out_frac``), at full throughput, through the default NMPU
   in cocotb mode and in bulk mode. Both must give the golden model's outputs and the same cycle count;
   the ratio bulk/cocotb of values/s is measured in this run, on wall time (simulator start-up, stimulus
   file and output read included) and on the clock loop alone, with the bulk harness's time per cycle.
2. ``nmpu verify --exhaustive``'s run on the default configuration: the whole input space (2^28 values),
   values checked, mismatches, time, values/s.
3. Unless ``--no-fault``: the same run on an RTL whose output rounding breaks ties the wrong way
   (``fault="tie"``): the mismatches it must find.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cosim.sim import bulk, cocotb_mode, exhaustive  # noqa: E402
from nmpu_model import apply, load_config  # noqa: E402
from timing import save_json  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slice-columns", type=int, default=256,
                    help="coefficient combinations of the same-stream comparison (default 256: 65,536 values)")
    ap.add_argument("--no-fault", action="store_true", help="skip the whole-space run of the broken RTL")
    ap.add_argument("--json", help="write the figures as JSON")
    args = ap.parse_args()

    cfg = load_config()
    plan = exhaustive.plan_space(cfg)
    sub, frac, lo, _ = next(plan.chunks())
    coeffs = sub.coefficients(cfg, lo, lo + args.slice_columns)
    x = np.ascontiguousarray(np.broadcast_to(plan.codes[:, None], (len(plan.codes), args.slice_columns)))
    want = apply(x, cfg, coeffs, out_frac=frac)
    bulk.build(cfg)
    cocotb_mode.build_cached(cfg)
    b = min((bulk.run_layer(x, coeffs, frac, cfg, p_valid=1.0, p_ready=1.0) for _ in range(5)),
            key=lambda r: r.seconds)
    c = cocotb_mode.run_layer(x, coeffs, frac, cfg, p_valid=1.0, p_ready=1.0, tag="bench-exhaustive")
    for r in (b, c):
        assert np.array_equal(r.outputs, want) and r.protocol_errors == 0, f"{r.mode}: outputs differ from the model"
    assert b.cycles == c.cycles, (b.cycles, c.cycles)
    n = int(x.size)
    same = {"values": n, "cycles": b.cycles, "out_frac": frac,
            "cocotb": {"seconds": round(c.seconds, 3), "sim_seconds": round(c.sim_seconds, 3),
                       "values_per_s": round(n / c.seconds), "values_per_s_loop": round(n / c.sim_seconds)},
            "bulk": {"seconds": round(b.seconds, 4), "sim_seconds": round(b.sim_seconds, 4),
                     "values_per_s": round(n / b.seconds), "values_per_s_loop": round(n / b.sim_seconds),
                     "ns_per_cycle_loop": round(1e9 * b.sim_seconds / b.cycles, 1),
                     "outside_loop_seconds": round(b.seconds - b.sim_seconds, 4)},
            "ratio_wall": round(c.seconds / b.seconds, 1), "ratio_loop": round(c.sim_seconds / b.sim_seconds, 1)}

    runs = {}
    for fault in (None,) if args.no_fault else (None, "tie"):
        t0 = time.perf_counter()
        r = exhaustive.run(plan, fault=fault)
        runs[fault or "correct"] = {**r.to_dict(), "wall_s_with_build": round(time.perf_counter() - t0, 1)}

    res = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
           "load_avg_1min": round(os.getloadavg()[0], 2), "config": cfg.identity(), "space": plan.describe(),
           "same_stream": same, "exhaustive": runs}
    print(f"same stream ({n:,} values of the exhaustive plan, {b.cycles:,} cycles, full throughput, identical "
          f"outputs and cycles):")
    for m in ("cocotb", "bulk"):
        e = same[m]
        print(f"  {m:6s} {e['values_per_s']:>12,d} values/s wall ({e['seconds']} s)   "
              f"{e['values_per_s_loop']:>12,d} values/s clock loop")
    print(f"  bulk / cocotb: {same['ratio_wall']}x wall, {same['ratio_loop']}x clock loop (target >= 1000x); the "
          f"bulk clock loop {same['bulk']['ns_per_cycle_loop']} ns a cycle, "
          f"{same['bulk']['outside_loop_seconds']} s outside it")
    print(f"exhaustive: {plan.describe()}")
    for name, r in runs.items():
        print(f"  {name:8s} RTL: {r['values']:,} values, {r['mismatches']:,} mismatches, {r['seconds']} s "
              f"({r['values_per_second'] / 1e6:.2f} M values/s, {r['runs']} harness runs; clock loops "
              f"{r['sim_seconds']} s, model {r['model_seconds']} s, build {r['build_seconds']} s)"
              + (f", first {r['first_mismatch']}" if r["first_mismatch"] else ""))
    print(f"load average during the run: {res['load_avg_1min']} on {res['cpus']} CPUs")
    save_json(args.json, res)


if __name__ == "__main__":
    main()
