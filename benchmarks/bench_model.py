"""Speed of the bit-accurate golden model against baselines measured in the same run.

    make bench            (or: .venv/bin/python benchmarks/bench_model.py [--rows 16384] [--json OUT])

Baselines: the same affine + ReLU + round + clamp in float32 torch (not bit-accurate in general), as an expression
with fresh results and written into a preallocated result (its best case: a fresh 16 MB result runs at full rate
or at half of it from one process to the next, as the allocator happens to reuse memory or hand out new pages),
and a straightforward per-element Python implementation of the spec (timed on a slice, reported per value).
Single thread for all, so that the ratios compare algorithms rather than core counts. The model runs with
its default int64 output and with the narrowest integer output that holds the output format (``dtype=``);
the input check is included in both. The bandwidth limit is this machine's copy rate (``np.copyto`` of an
array of the input's size, measured in the same run) over the bytes a value moves: its code read, its
output written.
"""
from __future__ import annotations

import argparse
import json
import platform

import numpy as np
import torch
from timing import best_of

from nmpu_model import apply, load_config


def python_per_element(x, s, o, config):
    """The spec one value at a time, in Python ints (the obvious implementation)."""
    out = []
    fa = max(config.scale.frac, config.offset.frac)
    fmt = config.output
    for row in x.tolist():
        r = []
        for j, v in enumerate(row):
            a = (v * s[j] << (fa - config.scale.frac)) + (o[j] << (fa - config.offset.frac))
            a = max(a, 0)
            d = fa - fmt.frac
            n = (a + (1 << (d - 1))) >> d
            r.append(min(max(n, fmt.min), fmt.max))
        out.append(r)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=16384)
    ap.add_argument("--cols", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    config = load_config()
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (args.rows, args.cols))
    s = rng.integers(0, 256, args.cols)
    o = rng.integers(-128, 128, args.cols)
    coeffs = {"scale": s, "offset": o}
    n = x.size

    t_model = best_of(lambda: apply(x, config, coeffs), args.repeat)
    fmt = config.output
    narrow = next(np.dtype(d) for d in (np.int8, np.int16, np.int32, np.int64)
                  if np.iinfo(d).min <= fmt.min and fmt.max <= np.iinfo(d).max)
    t_narrow = best_of(lambda: apply(x, config, coeffs, dtype=narrow), args.repeat)
    assert (apply(x, config, coeffs, dtype=narrow) == apply(x, config, coeffs)).all()
    dst = np.empty_like(x)
    t_copy = best_of(lambda: np.copyto(dst, x), args.repeat)   # bytes read + written: 2 * x.nbytes
    copy_bw = 2 * x.nbytes / t_copy
    limit = {"int64": copy_bw / (x.itemsize + 8), str(narrow): copy_bw / (x.itemsize + narrow.itemsize)}

    xt = torch.from_numpy(x.astype(np.float32))
    st = torch.from_numpy((s / 2 ** config.scale.frac).astype(np.float32))
    ot = torch.from_numpy((o / 2 ** config.offset.frac).astype(np.float32))

    def torch_f32():
        y = xt * st + ot
        y.clamp_(min=0).round_().clamp_(config.output.min, config.output.max)
        return y
    t_torch = best_of(torch_f32, args.repeat)
    y = torch.empty_like(xt)

    def torch_f32_preallocated():
        torch.mul(xt, st, out=y)
        y.add_(ot).clamp_(min=0).round_().clamp_(config.output.min, config.output.max)
        return y
    t_torch_pre = best_of(torch_f32_preallocated, args.repeat)

    k = 64  # rows for the per-element baseline
    t_py = best_of(lambda: python_per_element(x[:k], s.tolist(), o.tolist(), config), 1) * (args.rows / k)
    # the per-element code is a check of the model as well
    assert (np.array(python_per_element(x[:k], s.tolist(), o.tolist(), config)) == apply(x[:k], config, coeffs)).all()

    res = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "threads": 1,
        "shape": [args.rows, args.cols], "config": "examples/default.toml (spec defaults)",
        "model_Mvalues_s": n / t_model / 1e6, "model_narrow_Mvalues_s": n / t_narrow / 1e6,
        "narrow_dtype": str(narrow), "torch_f32_Mvalues_s": n / t_torch / 1e6,
        "torch_f32_preallocated_Mvalues_s": n / t_torch_pre / 1e6,
        "python_Mvalues_s": n / t_py / 1e6,
        "model_speedup_over_torch_f32": t_torch / t_model, "model_narrow_speedup_over_torch_f32": t_torch / t_narrow,
        "model_speedup_over_python": t_py / t_model, "copy_GB_s": copy_bw / 1e9,
        "bandwidth_limit_Mvalues_s": {k: v / 1e6 for k, v in limit.items()},
    }
    for label, key, dt in ((f"apply, int64 output (default)  ", "model_Mvalues_s", "int64"),
                           (f"apply, {str(narrow):5s} output           ", "model_narrow_Mvalues_s", str(narrow))):
        print(f"{label} {res[key]:8.1f} Mvalues/s = {res[key] * 1e6 * t_torch / n:.2f}x float32 torch, "
              f"{res[key] * 1e6 * t_torch_pre / n:.2f}x its preallocated best (target >= 3x); "
              f"{100 * res[key] / res['bandwidth_limit_Mvalues_s'][dt]:.0f}% of the bandwidth "
              f"limit {res['bandwidth_limit_Mvalues_s'][dt]:.0f} Mvalues/s ({x.itemsize} + {np.dtype(dt).itemsize} "
              f"bytes a value at {res['copy_GB_s']:.1f} GB/s)")
    print(f"float32 torch affine+ReLU+round  {res['torch_f32_Mvalues_s']:8.1f} Mvalues/s "
          f"(into a preallocated result {res['torch_f32_preallocated_Mvalues_s']:.1f})")
    # what 3x torch's best would take, against what the memory allows for int64 codes in, narrow codes out
    need = 3 * res["torch_f32_preallocated_Mvalues_s"]
    res["three_x_preallocated_over_bandwidth_limit"] = need / res["bandwidth_limit_Mvalues_s"][str(narrow)]
    print(f"3x torch's preallocated rate is {need:.0f} Mvalues/s: "
          f"{res['three_x_preallocated_over_bandwidth_limit']:.2f}x the bandwidth limit for int64 codes in and "
          f"{narrow} codes out ({res['bandwidth_limit_Mvalues_s'][str(narrow)]:.0f} Mvalues/s)")
    print(f"per-element Python               {res['python_Mvalues_s']:8.3f} Mvalues/s  "
          f"(the model is {res['model_speedup_over_python']:.0f}x faster)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
