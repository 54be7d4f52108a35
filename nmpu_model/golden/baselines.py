"""Floating-point baselines: the HERMES-style FP16 unit and an FP32 reference.

``fma(s, x, o)`` rounds the exact ``s*x + o`` once to binary16/binary32 (round to nearest
even, overflow to inf), as a fused multiply-add does. ``torch.half`` arithmetic would round
twice (after the multiply and after the add), so it is not used.

How the single rounding is made exact with numpy: the product of two binary16/32 values
(or a value and an ADC code) is exact in binary64; the sum is computed in binary64 with
*round to odd* (TwoSum gives the exact error, an inexact even result is moved one ulp toward
it), and round-to-odd at 53 bits followed by round-to-nearest-even at 11 or 24 bits equals
one round-to-nearest-even of the exact sum (Boldo and Melquiond, IEEE TC 2008).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .config import NMPUConfig
from .formats import Fmt

FLOAT_TYPES = {"fp16": np.float16, "fp32": np.float32}


def to_binary(values: np.ndarray, arith: str, what: str) -> np.ndarray:
    """Round real coefficients to the unit's binary format (RNE); refuse ones that overflow it."""
    ft = FLOAT_TYPES[arith]
    with np.errstate(over="ignore"):
        r = values.astype(ft)
    bad = np.isinf(r) & ~np.isinf(values)
    if bad.any():
        i = int(np.argwhere(bad)[0][0])
        n = int(bad.sum())
        raise ValueError(f"{what}: value {values[i].item()!r} at index {i} overflows {arith} "
                         f"(max {float(np.finfo(ft).max)}); {n} such value{'s' if n != 1 else ''}")
    return r.astype(np.float64)


def fma(s: np.ndarray, x: np.ndarray, o: np.ndarray, arith: str) -> np.ndarray:
    """``round(s*x + o)`` to binary16/binary32 with a single rounding, returned as float64.

    ``s``, ``x``, ``o`` are float64 arrays holding values of the target format (``x`` may also
    hold integers of up to 29 bits); their exact product must fit 53 bits, which holds for
    every pair of binary32 values and for a binary32 value times a 29-bit integer.
    """
    with np.errstate(invalid="ignore"):  # inf * 0 and inf - inf give NaN, as IEEE says
        p = s * x  # exact: at most 24 + 29 significant bits
        t = p + o
        # TwoSum: err = (p + o) - t exactly
        bp = t - p
        ap = t - bp
        err = (p - ap) + (o - bp)
    inexact = (err != 0) & np.isfinite(t)
    even = (t.view(np.int64) & 1) == 0
    fix = inexact & even
    if fix.any():
        t = t.copy()
        t[fix] = np.nextafter(t[fix], np.where(err[fix] > 0, np.inf, -np.inf))
    with np.errstate(over="ignore"):
        return t.astype(FLOAT_TYPES[arith]).astype(np.float64)


def quantize_real(v: np.ndarray, fmt: Fmt) -> np.ndarray:
    """``Q(v, fmt)`` of the spec for real values held exactly in float64.

    ``+-inf`` (an FP16 overflow) saturates to the format's extreme codes under every overflow
    mode but ``SAT_ZERO`` (where it gives 0): infinity has no low bits to wrap. NaN gives 0.
    """
    v = np.asarray(v, dtype=np.float64)
    with np.errstate(invalid="ignore"):  # NaN and inf are handled explicitly below
        t = np.ldexp(v, fmt.frac)
        if fmt.pre_truncate > 0:
            t = np.ldexp(np.floor(np.ldexp(t, fmt.pre_truncate)), -fmt.pre_truncate)
    fin = np.isfinite(t)
    tf = np.where(fin, t, 0.0)
    fl = np.floor(tf)
    r = tf - fl  # exact
    rule = fmt.rounding.up.of(tf < 0, np.fmod(fl, 2.0) != 0)
    if fmt.rounding.nearest:
        up = (r > 0.5) | ((r == 0.5) & rule)
    else:
        up = (r > 0) & rule
    n = fl + up
    lo, hi = fmt.min, fmt.max
    if fmt.overflow.wraps:  # exactly: fmod of a float is exact, the rest are small integers
        m = float(1 << fmt.bits)
        w = np.fmod(n, m) - lo
        w = np.where(w < 0, w + m, w)
        w = np.where(w >= m, w - m, w)
        n = w + lo
    elif fmt.overflow.to_zero:
        n = np.where((n < lo) | (n > hi), 0.0, n)
    else:
        n = np.clip(n, *fmt.overflow.bounds(fmt))
    inf_code = fmt.overflow.extremes(fmt)
    n = np.where(np.isposinf(t), inf_code[1], n)
    n = np.where(np.isneginf(t), inf_code[0], n)
    n = np.where(np.isnan(t), 0.0, n)
    return n.astype(np.int64)


def apply_float(x: np.ndarray, config: NMPUConfig, c: Mapping[str, np.ndarray], out_frac: int,
                arith: str) -> np.ndarray:
    """The ``fp16``/``fp32`` baseline on validated inputs (see :func:`nmpu_model.apply`)."""
    if arith not in FLOAT_TYPES:
        raise ValueError(f"arith must be fp16 or fp32 here, not {arith!r}")
    if config.adc_bits > 29:
        raise ValueError(f"the {arith} baseline handles adc_bits <= 29, not {config.adc_bits}")
    xf = x.astype(np.float64)
    s = to_binary(c["scale"], arith, "scale")
    o = to_binary(c["offset"], arith, "offset")
    b = fma(s, xf, o, arith)
    if config.bn_stage:
        g = to_binary(c["bn_scale"], arith, "bn_scale")
        h = to_binary(c["bn_offset"], arith, "bn_offset")
        b = fma(g, b, h, arith)
    if config.relu:
        b = np.where(b < 0, 0.0, b)  # keeps NaN, which the output stage maps to 0
    return quantize_real(b, config.output.with_frac(out_frac))
