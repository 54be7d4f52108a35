"""Speed of the bit-accurate golden model against baselines measured in the same run.

    make bench            (or: .venv/bin/python benchmarks/bench_model.py [--rows 16384] [--json OUT])

The model (``nmpu_model.apply``, input validation included) on the same codes three ways: int64 codes into
its default int64 result (codes as ``np.load`` of a plain integer file gives them), int64 codes into the
narrowest integer result that holds the output format (``dtype=``), and the codes in the narrowest integer
type that holds the ADC's range (int8 for the default 8-bit ADC: then no code can be out of range and the
check costs nothing) into that narrow result.

Baselines: the same affine + ReLU + round + clamp in float32 torch (not bit-accurate in general), on the
codes as float32: the expression as first written (fresh results), the same written into a preallocated
result, and torch at its best (one fused ``addcmul`` into a preallocated result, then ``clamp_`` to
``[0, max]`` and ``round_``: three passes; equal to the others with ReLU on, as in the default); and a
straightforward per-element Python implementation of the spec (timed on a slice, reported per value).
Single thread for all, so that the ratios compare algorithms rather than core counts. The bandwidth limit
of each is this machine's copy rate for an array of its input's size (``np.copyto``, measured in the same
run) over the bytes a value moves: its code read, its output written.
"""
from __future__ import annotations

import argparse
import platform

import numpy as np
import torch
from timing import best_of, save_json

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

    fmt = config.output
    narrow = next(np.dtype(d) for d in (np.int8, np.int16, np.int32, np.int64)
                  if np.iinfo(d).min <= fmt.min and fmt.max <= np.iinfo(d).max)
    code_dtype = next(np.dtype(d) for d in (np.int8, np.int16, np.int32, np.int64)
                      if np.iinfo(d).min <= config.adc.min and config.adc.max <= np.iinfo(d).max)
    x_narrow = x.astype(code_dtype)
    want = apply(x, config, coeffs)
    variants = {  # label -> (codes, output dtype)
        "int64 codes -> int64 (default)": (x, np.dtype(np.int64)),
        f"int64 codes -> {narrow}": (x, narrow),
        f"{code_dtype} codes -> {narrow}": (x_narrow, narrow),
    }
    t_model = {}
    for label, (codes, dt) in variants.items():
        assert (apply(codes, config, coeffs, dtype=dt) == want).all()
        t_model[label] = best_of(lambda: apply(codes, config, coeffs, dtype=dt), args.repeat)

    def copy_rate(a: np.ndarray) -> float:       # bytes read + written per second
        dst = np.empty_like(a)
        return 2 * a.nbytes / best_of(lambda: np.copyto(dst, a), args.repeat)
    rate = {np.dtype(np.int64): copy_rate(x), code_dtype: copy_rate(x_narrow)}
    limit = {label: rate[codes.dtype] / (codes.itemsize + dt.itemsize) for label, (codes, dt) in variants.items()}

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

    def torch_f32_best():
        torch.addcmul(ot, xt, st, out=y)
        y.clamp_(0, config.output.max).round_()
        return y
    t_torch_best = best_of(torch_f32_best, args.repeat)
    assert torch.equal(torch_f32_best(), torch_f32_preallocated())

    k = 64  # rows for the per-element baseline
    t_py = best_of(lambda: python_per_element(x[:k], s.tolist(), o.tolist(), config), 1) * (args.rows / k)
    # the per-element code is a check of the model as well
    assert (np.array(python_per_element(x[:k], s.tolist(), o.tolist(), config)) == apply(x[:k], config, coeffs)).all()

    res = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "threads": 1,
        "shape": [args.rows, args.cols], "config": "examples/default.toml (spec defaults)",
        "model_Mvalues_s": {k: n / t / 1e6 for k, t in t_model.items()},
        "bandwidth_limit_Mvalues_s": {k: v / 1e6 for k, v in limit.items()},
        "copy_GB_s": {str(k): v / 1e9 for k, v in rate.items()},
        "torch_f32_Mvalues_s": n / t_torch / 1e6, "torch_f32_preallocated_Mvalues_s": n / t_torch_pre / 1e6,
        "torch_f32_best_Mvalues_s": n / t_torch_best / 1e6, "python_Mvalues_s": n / t_py / 1e6,
        "speedup_over_torch_f32": {k: t_torch / t for k, t in t_model.items()},
        "speedup_over_torch_f32_best": {k: t_torch_best / t for k, t in t_model.items()},
        "speedup_over_python": {k: t_py / t for k, t in t_model.items()},
    }
    for label, t in t_model.items():
        print(f"apply, {label:32s} {n / t / 1e6:8.1f} Mvalues/s = {t_torch / t:5.2f}x float32 torch as written, "
              f"{t_torch_pre / t:.2f}x into a preallocated result, {t_torch_best / t:.2f}x torch at its best "
              f"(target >= 3x); {100 * n / t / limit[label]:.0f}% of the bandwidth limit "
              f"{limit[label] / 1e6:.0f} Mvalues/s")
    print(f"float32 torch affine+ReLU+round   {res['torch_f32_Mvalues_s']:8.1f} Mvalues/s as written, "
          f"{res['torch_f32_preallocated_Mvalues_s']:.1f} into a preallocated result, "
          f"{res['torch_f32_best_Mvalues_s']:.1f} at its best (fused addcmul, 3 passes)")
    print(f"per-element Python                {res['python_Mvalues_s']:8.3f} Mvalues/s  (the model is "
          f"{min(res['speedup_over_python'].values()):.0f}x-{max(res['speedup_over_python'].values()):.0f}x faster)")
    save_json(args.json, res)


if __name__ == "__main__":
    main()
