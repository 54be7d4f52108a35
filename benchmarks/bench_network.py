"""What the analog simulation of a network costs: images/s of the analog run against the float model, same inputs.

    .venv/bin/python benchmarks/bench_network.py [--model mnist-resnet] [--images 500] [--repeat 3] [--json OUT]

One programmed network (seed 0, t = 1 h) runs the first ``--images`` test images with the fixed-point NMPU
after every analog layer; the float model runs the same images. Both with one torch thread and with all
threads, best of ``--repeat``, ratio measured in this run. Also the time of ``AnalogNetwork.build``
(programming and calibration) against the analog run of its calibration batch. Run it before a big sweep:
a sweep point costs one analog run per seed.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch
from timing import best_of

from nmpu_model import NMPUConfig
from nmpu_model.evaluate import load_workload
from nmpu_model.models import accuracy
from nmpu_model.network import AnalogNetwork


def measure(work, cfg: NMPUConfig, x: torch.Tensor, repeat: int) -> dict:
    t0 = time.perf_counter()
    net = AnalogNetwork.build(work.model, work.x_cal, seed=0, t=3600.0, digital=work.digital)
    build_s = time.perf_counter() - t0
    net.run(x[:8], cfg, "fixed")                      # warm up
    model = work.model.module() if isinstance(work.model, torch.export.ExportedProgram) else work.model.eval()
    with torch.no_grad():
        model(x[:8])
        float_s = best_of(lambda: model(x), repeat)
    analog_s = best_of(lambda: net.run(x, cfg, "fixed"), repeat)
    cal_run_s = best_of(lambda: net.run(work.x_cal, cfg, "fixed"), repeat)
    return {"float_images_per_s": len(x) / float_s, "analog_images_per_s": len(x) / analog_s,
            "analog_over_float": analog_s / float_s, "build_seconds": build_s,
            "build_over_calibration_run": build_s / cal_run_s, "calibration_images": int(len(work.x_cal))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mnist-resnet")
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="write the figures as JSON")
    args = ap.parse_args()

    cfg = NMPUConfig()
    work = load_workload(args.model, images=args.images)
    x = work.x_test
    res = {"machine": platform.processor() or platform.machine(), "model": work.name, "images": int(len(x)),
           "float_accuracy": accuracy(work.model, x, work.y_test)}
    for threads in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(threads)
        r = measure(work, cfg, x, args.repeat)
        res[f"threads_{threads}"] = r
        print(f"{work.name}, {len(x)} images, {threads} thread(s): float {r['float_images_per_s']:.0f} images/s, "
              f"analog + fixed NMPU {r['analog_images_per_s']:.0f} images/s = {r['analog_over_float']:.1f}x the "
              f"float time; build (programming + calibration on {r['calibration_images']} images) "
              f"{r['build_seconds']:.2f} s = {r['build_over_calibration_run']:.1f}x the analog run of that batch")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
