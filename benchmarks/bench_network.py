"""What the analog simulation of a network costs: the analog run against the float model, same inputs.

    .venv/bin/python benchmarks/bench_network.py [--model mnist-resnet,resnet9-random,char-gpt] [--images 256]
                                                 [--repeat 3]
                                                 [--rss N] [--json OUT]

One programmed network (seed 0, t = 1 h) runs the first ``--images`` test images with the fixed-point NMPU
after every analog layer; the float model runs the same images. Both with one torch thread and with all
threads, best of ``--repeat``, ratio measured in this run (targets: analog <= 2.5x the float time on one
thread for the CNNs, <= 3x for ``char-gpt``, whose 64-character windows are 64 rows per sample in every
projection and whose float attention and layer norms the analog run computes as the float model does). Also the time of ``AnalogNetwork.build`` (programming and calibration) against the analog run of its
calibration batch (target <= 3x): best of ``--repeat`` builds of the same model object (its torch.export
program is kept between builds, :func:`nmpu_model.network.graph.export_model`, as in an evaluation over seeds), and the
first build of the process apart (it also traces the model and loads the compiled kernels it is the first to
call). Run it before a big sweep: a sweep point
costs one analog run per seed.

``resnet9-random`` is a CIFAR-size network without a data set: ``nmpu_model.workloads.models.resnet9()`` with random
weights, random 3 x 32 x 32 inputs and 64 random calibration images. ``--rss N`` also runs the analog
evaluation of N such images in a child process and reports its peak resident memory (target < 4 GB).
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from timing import best_of, save_json

from nmpu_model import NMPUConfig
from nmpu_model.workloads.registry import load_workload
from nmpu_model.workloads.models import accuracy
from nmpu_model.network.analog_network import AnalogNetwork

TARGET_RUN, TARGET_BUILD = 2.5, 3.0
TARGET_RUN_LM = 3.0


def measure(work, cfg: NMPUConfig, x: torch.Tensor, repeat: int) -> dict:
    def build():
        return AnalogNetwork.build(work.model, work.x_cal, seed=0, t=3600.0, digital=work.digital)

    t0 = time.perf_counter()
    net = build()
    first_build_s = time.perf_counter() - t0
    build_s = best_of(build, repeat)
    net.run(x[:8], cfg, "fixed")                      # warm up
    model = work.model.module() if isinstance(work.model, torch.export.ExportedProgram) else work.model.eval()
    with torch.no_grad():
        model(x[:8])
        float_s = best_of(lambda: model(x), repeat)
    analog_s = best_of(lambda: net.run(x, cfg, "fixed"), repeat)
    cal_run_s = best_of(lambda: net.run(work.x_cal, cfg, "fixed"), repeat)
    return {"float_images_per_s": len(x) / float_s, "analog_images_per_s": len(x) / analog_s,
            "analog_over_float": analog_s / float_s, "build_seconds": build_s, "first_build_seconds": first_build_s,
            "build_over_calibration_run": build_s / cal_run_s, "first_build_over_calibration_run": first_build_s / cal_run_s,
            "calibration_images": int(len(work.x_cal))}


def random_resnet9(images: int):
    """A ResNet9-size workload without data: random weights, inputs and calibration images (seeded)."""
    from nmpu_model.workloads.registry import Workload
    from nmpu_model.workloads.models import resnet9

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    return Workload(name="resnet9-random", model=resnet9().eval(), x_test=torch.randn(images, 3, 32, 32, generator=g),
                    y_test=torch.zeros(images, dtype=torch.long), x_cal=torch.randn(64, 3, 32, 32, generator=g))


def peak_rss(images: int) -> float:
    """Peak resident memory (GB) of a child process that builds resnet9-random and runs ``images`` images."""
    import resource
    import subprocess
    import sys
    code = ("import sys; sys.path.insert(0, 'benchmarks'); import torch; from bench_network import random_resnet9; "
            "from nmpu_model import NMPUConfig; from nmpu_model import AnalogNetwork; "
            f"w = random_resnet9({images}); "
            "net = AnalogNetwork.build(w.model, w.x_cal, seed=0, t=3600.0, digital=w.digital); "
            "net.run(w.x_test, NMPUConfig(), 'fixed')")
    subprocess.run([sys.executable, "-c", code], check=True)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2     # KB -> GB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mnist-resnet,resnet9-random,char-gpt",
                    help="comma-separated (default %(default)s)")
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rss", type=int, metavar="N", help="peak memory of an N-image resnet9-random evaluation")
    ap.add_argument("--json", help="write the figures as JSON")
    args = ap.parse_args()

    cfg = NMPUConfig()
    out = {"machine": platform.processor() or platform.machine(), "models": {}}
    for name in args.model.split(","):
        work = random_resnet9(args.images) if name == "resnet9-random" else load_workload(name, images=args.images)
        x = work.x_test
        res = out["models"][work.name] = {"images": int(len(x))}
        if name != "resnet9-random":
            res[f"float_{work.metric.name}"] = accuracy(work.model, x, work.y_test, metric=work.metric)
        target = TARGET_RUN if work.metric.percent else TARGET_RUN_LM
        for threads in sorted({1, os.cpu_count() or 1}):
            torch.set_num_threads(threads)
            r = measure(work, cfg, x, args.repeat)
            res[f"threads_{threads}"] = r
            what = work.metric.samples
            print(f"{work.name}, {len(x)} {what}, {threads} thread(s): float {r['float_images_per_s']:.0f} {what}/s, "
                  f"analog + fixed NMPU {r['analog_images_per_s']:.0f} {what}/s = {r['analog_over_float']:.2f}x the "
                  f"float time (target <= {target}x on one thread); build (programming + calibration on "
                  f"{r['calibration_images']} {what}) {r['build_seconds']:.2f} s = "
                  f"{r['build_over_calibration_run']:.2f}x the analog run of that batch (target <= {TARGET_BUILD}x; "
                  f"the first build of the model in the process, which traces it with torch.export, "
                  f"{r['first_build_seconds']:.2f} s = {r['first_build_over_calibration_run']:.2f}x)", flush=True)
    if args.rss:
        out["peak_rss_gb"] = {"images": args.rss, "gb": peak_rss(args.rss)}
        print(f"resnet9-random, {args.rss} images, analog evaluation in one call: peak resident memory "
              f"{out['peak_rss_gb']['gb']:.2f} GB")
    save_json(args.json, out)


if __name__ == "__main__":
    main()
