"""Cost of bit-accurate evaluation: the same analog run with `fixed` vs `fp32` post-processing.

    .venv/bin/python benchmarks/bench_eval.py [--repeat 7] [--seeds 5] [--json OUT]

One programmed network (digits CNN, seed 0, t = 1 h) runs the 360 test images with each
post-processor, interleaved, best of ``--repeat``; the ratio `fixed / fp32` is measured in this
run (target: at most 1.25). Also reported: the time of the post-processing alone on recorded ADC
codes, and the wall time of the whole default ``nmpu eval`` (5 seeds x 4 drift times x 3 posts).
"""
from __future__ import annotations

import argparse
import platform
import time

import torch
from timing import best_of, save_json

from nmpu_model import NMPUConfig
from nmpu_model.studies.evaluate import DEFAULT_DRIFTS, evaluate
from nmpu_model.workloads.registry import digits_workload
from nmpu_model.network.analog_network import AnalogNetwork, replay


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--seeds", type=int, default=5, help="seeds of the whole-eval timing")
    ap.add_argument("--json", help="write the figures as JSON")
    args = ap.parse_args()

    cfg = NMPUConfig()
    work = digits_workload()
    net = AnalogNetwork.build(work.model, work.x_cal, seed=0, t=3600.0)
    net.coefficients(cfg)  # calibration coefficients are shared; not part of either run
    run = {p: (lambda p=p: net.run(work.x_test, cfg, p)) for p in ("fp32", "fp16", "fixed")}
    for f in run.values():
        f()  # warm up
    t = {p: [] for p in run}
    for _ in range(args.repeat):  # interleaved, so drifts in machine speed hit all alike
        for p, f in run.items():
            t[p].append(best_of(f, 1))
    run_s = {p: min(v) for p, v in t.items()}
    _, trace = net.run(work.x_test, cfg, "fixed", record=True)
    post_s = {p: best_of(lambda p=p: replay(trace, net, cfg, p), args.repeat) for p in ("fp32", "fp16", "fixed")}
    t0 = time.perf_counter()
    evaluate(work, cfg, drifts=DEFAULT_DRIFTS, seeds=args.seeds)
    eval_s = time.perf_counter() - t0

    res = {
        "machine": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
        "images": int(len(work.y_test)),
        "analog_run_seconds": run_s,
        "fixed_over_fp32": run_s["fixed"] / run_s["fp32"],
        "post_only_seconds": post_s,
        "post_only_fixed_over_fp32": post_s["fixed"] / post_s["fp32"],
        "eval_seconds": eval_s, "eval_seeds": args.seeds, "eval_drifts": list(DEFAULT_DRIFTS),
    }
    print(f"analog run of {res['images']} images (tiles + post-processing), best of {args.repeat}:")
    for p, s in run_s.items():
        print(f"  {p:6s} {1e3 * s:8.1f} ms")
    print(f"  fixed / fp32 = {res['fixed_over_fp32']:.3f}   (target <= 1.25)")
    print("post-processing alone on recorded ADC codes:")
    for p, s in post_s.items():
        print(f"  {p:6s} {1e3 * s:8.2f} ms")
    print(f"whole evaluation ({args.seeds} seeds x {len(DEFAULT_DRIFTS)} drift times x 3 posts): {eval_s:.1f} s")
    save_json(args.json, res)


if __name__ == "__main__":
    main()
