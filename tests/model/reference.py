"""An independent, slow, exact reference of docs/datapath.md, written from the spec's text.

Everything is ``fractions.Fraction`` and Python ints, one element at a time; nothing is shared
with ``nmpu_model`` except the plain attributes of the configuration objects.
"""
from __future__ import annotations

import math
from fractions import Fraction

HALF = Fraction(1, 2)


def code_range(bits: int, signed: bool) -> tuple[int, int]:
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)


def round_ref(t: Fraction, mode: str) -> int:
    fl = math.floor(t)
    r = t - fl
    if mode == "TRN":
        return fl
    if mode == "TRN_ZERO":
        return fl if t >= 0 or r == 0 else fl + 1
    if r != HALF:
        return fl + 1 if r > HALF else fl
    # an exact tie between fl and fl + 1
    return {
        "RND": fl + 1,
        "RND_ZERO": fl if t > 0 else fl + 1,
        "RND_INF": fl + 1 if t > 0 else fl,
        "RND_MIN_INF": fl,
        "RND_CONV": fl if fl % 2 == 0 else fl + 1,
    }[mode]


def fit_ref(n: int, bits: int, signed: bool, overflow: str) -> int:
    lo, hi = code_range(bits, signed)
    if lo <= n <= hi and overflow != "SAT_SYM":
        return n
    if overflow == "SAT":
        return min(max(n, lo), hi)
    if overflow == "SAT_SYM":
        return min(max(n, -hi if signed else lo), hi)
    if overflow == "SAT_ZERO":
        return 0
    # WRAP: keep the low bits, two's complement when signed
    low = n % (2 ** bits)
    return low - 2 ** bits if signed and low > hi else low


def q_ref(v: Fraction, fmt) -> int:
    """Q(v, fmt) of the spec; ``fmt`` has bits, frac, signed, rounding, overflow, pre_truncate."""
    t = v * Fraction(2) ** fmt.frac
    k = fmt.pre_truncate
    if k > 0:
        t = Fraction(math.floor(t * 2 ** k), 2 ** k)
    return fit_ref(round_ref(t, fmt.rounding), fmt.bits, fmt.signed, fmt.overflow)


def value(code: int, frac: int) -> Fraction:
    return Fraction(code) * Fraction(2) ** (-frac)


def apply_ref(x: int, s: int, o: int, config, out_frac: int, g: int = 0, h: int = 0) -> int:
    """One output code of the fixed-point datapath, exactly by the spec."""
    a = x * value(s, config.scale.frac) + value(o, config.offset.frac)
    if config.bn_stage:
        a2 = q_ref(a, config.mid)
        b = value(a2, config.mid.frac) * value(g, config.bn_scale.frac) + value(h, config.bn_offset.frac)
    else:
        b = a
    if config.relu:
        b = max(b, Fraction(0))
    return q_ref(b, config.output.with_frac(out_frac))


# --- IEEE binary formats, round to nearest even, from the definition -------------------------------
BINARY = {"fp16": (11, -14, 15), "fp32": (24, -126, 127)}  # precision, emin, emax


def round_binary(q: Fraction, arith: str) -> Fraction | float:
    """Round an exact rational to binary16/32 (RNE, subnormals, overflow to +-inf)."""
    p, emin, emax = BINARY[arith]
    if q == 0:
        return Fraction(0)
    sign = -1 if q < 0 else 1
    a = abs(q)
    e = math.floor(math.log2(a.numerator)) - math.floor(math.log2(a.denominator))
    while Fraction(2) ** e > a:  # fix the estimate so that 2^e <= a < 2^(e+1)
        e -= 1
    while Fraction(2) ** (e + 1) <= a:
        e += 1
    e = max(e, emin)
    ulp = Fraction(2) ** (e - (p - 1))
    m = round_ref(a / ulp, "RND_CONV")
    r = m * ulp
    if r >= Fraction(2) ** (emax + 1):
        return sign * math.inf
    return sign * r


def q_real_ref(v, fmt) -> int:
    """Q of a binary value, with the documented rules for infinities (saturate; SAT_ZERO gives 0)."""
    if isinstance(v, float) and math.isnan(v):
        return 0
    if isinstance(v, float) and math.isinf(v):
        lo, hi = code_range(fmt.bits, fmt.signed)
        if fmt.overflow == "SAT_ZERO":
            return 0
        if fmt.overflow == "SAT_SYM" and fmt.signed:
            lo = -hi
        return hi if v > 0 else lo
    return q_ref(Fraction(v), fmt)


def fma_ref(s, x, o, arith):
    if isinstance(s, float) or isinstance(x, float) or isinstance(o, float):
        # infinity propagates (inputs here are never NaN-producing by construction)
        return float(s) * float(x) + float(o)
    return round_binary(s * x + o, arith)


def apply_float_ref(x: int, s: float, o: float, config, out_frac: int, arith: str,
                    g: float = 0.0, h: float = 0.0) -> int:
    fs, fo = Fraction(s), Fraction(o)
    a = fma_ref(fs, Fraction(x), fo, arith)
    if config.bn_stage:
        a = fma_ref(Fraction(g), a, Fraction(h), arith)
    if config.relu and a < 0:
        a = Fraction(0)
    return q_real_ref(a, config.output.with_frac(out_frac))
