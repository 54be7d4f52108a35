"""amaranth.sim tests of the FP16 baseline unit (rtl/fp16_unit.py), bit for bit.

Two independent references: the golden model (``nmpu_model.golden.baselines.fma`` / ``quantize_real`` /
``nmpu_model.apply(..., arith="fp16")``, numpy with round-to-odd) and the slow exact one of
``tests/model/reference.py`` (``fractions.Fraction``). The cocotb/Verilator suite
(tests/cosim/test_fp16_cosim.py) runs the long streams through the exported Verilog.
"""
from __future__ import annotations

import math
import zlib
from fractions import Fraction

import numpy as np
import pytest
from amaranth.sim import Simulator

from nmpu_model import Fmt, NMPUConfig, RTLParams, apply
from nmpu_model.golden.baselines import fma, quantize_real
from nmpu_model.golden.formats import OVERFLOW_MODES, ROUNDING_MODES
from rtl.fp16_unit import F16_NAN, FMA16, FP16ToFixed, FP16Unit, int_to_f16, latency
from unit_sim import stream_through, write_coefficients
from tests.model.reference import q_real_ref, round_binary


# -- helpers ------------------------------------------------------------------------------------
def f16(bits) -> np.ndarray:
    """binary16 bit patterns -> float64 values."""
    return np.asarray(bits, dtype=np.int64).astype(np.uint16).view(np.float16).astype(np.float64)


def bits16(values) -> np.ndarray:
    """float64 values (exact in binary16) -> bit patterns."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(values, dtype=np.float64).astype(np.float16).view(np.uint16).astype(np.int64)


def run_block(dut, inputs: dict[str, np.ndarray], output: str, latency: int) -> np.ndarray:
    """Feed one vector per cycle through a pipelined block (``en`` high) and return its outputs."""
    n = len(next(iter(inputs.values())))
    out: list[int] = []

    async def bench(ctx):
        for i in range(n + latency - 1):
            j = min(i, n - 1)
            for name, vals in inputs.items():
                ctx.set(getattr(dut, name), int(vals[j]))
            await ctx.tick()
            out.append(ctx.get(getattr(dut, output)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return np.array(out[latency - 1:latency - 1 + n], dtype=np.int64)


def same_f16(got: np.ndarray, ref_bits: np.ndarray) -> np.ndarray:
    """Bit equality, except that any NaN matches any NaN (the unit makes the canonical one)."""
    gnan = np.isnan(f16(got))
    rnan = np.isnan(f16(ref_bits))
    return np.where(rnan, gnan & (got == F16_NAN), got == ref_bits)


def golden_fma_bits(a_bits, b, c_bits, b_is_f16: bool) -> np.ndarray:
    bv = f16(b) if b_is_f16 else np.asarray(b, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        return bits16(fma(f16(a_bits), bv, f16(c_bits), "fp16"))


def fraction_fma_bits(a: int, b: int | float, c: int) -> int:
    """The exact reference, for finite operands: round_binary(a*b + c) of tests/model/reference.py."""
    av, cv = Fraction(float(f16(a))), Fraction(float(f16(c)))
    exact = av * Fraction(b) + cv
    r = round_binary(exact, "fp16")
    if isinstance(r, float) and math.isinf(r):
        return 0x7C00 | (0x8000 if r < 0 else 0)
    if r == 0 and exact != 0:  # rounded to zero: the sign of the exact value
        return 0x8000 if exact < 0 else 0
    if r == 0:  # the sign of an exact zero sum (RNE): -0 only for (-0) + (-0)
        pneg = bool(np.signbit(f16(a))) != bool(np.signbit(np.float64(b)))
        return 0x8000 if (pneg and bool(np.signbit(f16(c)))) else 0
    return int(bits16([float(r)])[0])


# -- corner cases -----------------------------------------------------------------------------------
F16_MAX = 0x7BFF       # 65504
ONE = 0x3C00
TINY = 0x0001          # 2**-24, smallest subnormal
SUB_MAX = 0x03FF       # largest subnormal
MIN_NORMAL = 0x0400    # 2**-14

INT_CORNERS = [
    # (s bits, x, o bits, what)
    (F16_MAX, 127, 0, "overflow to +inf"),
    (F16_MAX, -128, 0, "overflow to -inf"),
    (0x6000, 127, int(bits16([496.0])[0]), "512*127 + 496 = 65520: tie at the overflow edge -> inf"),
    (0x6000, 127, int(bits16([495.0])[0]), "65519 -> 65504"),
    (ONE, 1, int(bits16([2048.0])[0]), "2049: tie -> 2048 (even)"),
    (ONE, 3, int(bits16([2048.0])[0]), "2051: tie -> 2052 (even)"),
    (ONE, -1, int(bits16([-2048.0])[0]), "-2049: tie -> -2048"),
    (0x3C01, 1, int(bits16([2048.0])[0]), "2049 + 2**-10: just above the tie, only the sticky says so"),
    (0x3C01, -1, ONE, "cancellation: 1 - (1 + 2**-10)"),
    (TINY, 5, 0, "subnormal product"),
    (TINY, -3, TINY, "subnormal sum"),
    (SUB_MAX, 2, 0, "subnormal x 2 -> normal"),
    (SUB_MAX, 1, TINY, "largest subnormal + tiny -> min normal"),
    (MIN_NORMAL, -1, TINY, "min normal - tiny -> largest subnormal"),
    (0x8000, 5, 0x8000, "-0*5 + -0 = -0"),
    (0x8000, 5, 0, "-0*5 + 0 = +0"),
    (ONE, -3, int(bits16([3.0])[0]), "-3 + 3 = +0"),
    (ONE, 0, 0x8000, "1*0 + -0 = +0"),
    (0x8000, -1, 0x8000, "-0 * -1 + -0 = +0"),
    (F16_MAX, 0, F16_MAX, "x = 0"),
    (ONE, -128, 0, "most negative code"),
    (int(bits16([1024.0])[0]), 127, int(bits16([-65504.0])[0]), "large cancellation"),
    (int(bits16([2.0 ** -14])[0]), 1, int(bits16([1024.0])[0]), "tiny product below the addend's ulp"),
    (0x141F, 1, 0x87C7, "cancellation near the smallest normal: fails with an alignment window of wp + 2"),
    (0x7C00, 3, 0, "s = inf"),
    (0x7C00, 0, 0, "inf * 0 = NaN"),
    (ONE, 1, 0xFC00, "o = -inf"),
]


def random_int_vectors(n: int, seed: int, adc_bits: int = 8):
    """Finite binary16 s and o and integer x, half of them with o near -s*x (cancellation)."""
    rng = np.random.default_rng(seed)
    s = rng.integers(0, 0x7C00, n) | (rng.integers(0, 2, n) << 15)
    x = rng.integers(-(1 << (adc_bits - 1)), 1 << (adc_bits - 1), n)
    with np.errstate(over="ignore"):
        near = bits16(-(f16(s) * x).astype(np.float16).astype(np.float64)) + rng.integers(-3, 4, n)
    near = np.where((near & 0x7FFF) >= 0x7C00, 0, near) & 0xFFFF
    o = np.where(rng.random(n) < 0.5, near, rng.integers(0, 0x7C00, n) | (rng.integers(0, 2, n) << 15))
    return s, x, o


# -- FMA16 ------------------------------------------------------------------------------------------
def test_fma_int_corner_cases() -> None:
    s, x, o = (np.array(v) for v in zip(*[c[:3] for c in INT_CORNERS]))
    got = run_block(FMA16(8), {"a": s, "b": x, "c": o}, "r", FMA16.LATENCY)
    ref = golden_fma_bits(s, x, o, False)
    ok = same_f16(got, ref)
    bad = [f"{c[3]}: got {int(g):#06x}, want {int(r):#06x}" for c, g, r, k in zip(INT_CORNERS, got, ref, ok) if not k]
    assert not bad, bad
    for (a, b, c, what), g in zip(INT_CORNERS, got):
        if (a & 0x7C00) != 0x7C00 and (c & 0x7C00) != 0x7C00:
            assert g == fraction_fma_bits(a, b, c), what


@pytest.mark.parametrize("adc_bits", [8, 12])
def test_fma_int_random_matches_both_references(adc_bits: int) -> None:
    s, x, o = random_int_vectors(4000, seed=adc_bits, adc_bits=adc_bits)
    got = run_block(FMA16(adc_bits), {"a": s, "b": x, "c": o}, "r", FMA16.LATENCY)
    ref = golden_fma_bits(s, x, o, False)
    bad = np.nonzero(~same_f16(got, ref))[0]
    assert bad.size == 0, [(hex(s[i]), int(x[i]), hex(o[i]), hex(got[i]), hex(ref[i])) for i in bad[:5]]
    # the exact reference on a slice (Fraction is slow)
    for i in range(0, 4000, 8):
        assert got[i] == fraction_fma_bits(int(s[i]), int(x[i]), int(o[i])), (hex(s[i]), x[i], hex(o[i]))
    # the set exercised what it should
    v = f16(ref)
    assert np.isinf(v).sum() > 10 and ((v != 0) & (np.abs(v) < 2.0 ** -14)).sum() > 10 and (v == 0).sum() >= 3


@pytest.mark.parametrize("stages", [3, 5])
def test_fma_f16_random_with_specials(stages: int) -> None:
    """The BN-stage FMA: every bit pattern (inf, NaN, subnormals), half the addends near -a*b; the same
    results from the 5-stage FMA (``rtl.fp16_fma_stages``), two cycles later."""
    rng = np.random.default_rng(7)
    n = 8000
    a = rng.integers(0, 0x10000, n)
    b = rng.integers(0, 0x10000, n)
    with np.errstate(all="ignore"):
        near = bits16(-(f16(a) * f16(b)).astype(np.float16).astype(np.float64)) + rng.integers(-3, 4, n)
    c = np.where(rng.random(n) < 0.5, near, rng.integers(0, 0x10000, n)) & 0xFFFF
    fma = FMA16(None, stages=stages)
    assert fma.LATENCY == stages
    got = run_block(fma, {"a": a, "b": b, "c": c}, "r", fma.LATENCY)
    ref = golden_fma_bits(a, b, c, True)
    bad = np.nonzero(~same_f16(got, ref))[0]
    assert bad.size == 0, [(hex(a[i]), hex(b[i]), hex(c[i]), hex(got[i]), hex(ref[i])) for i in bad[:5]]
    v = f16(ref)
    assert np.isnan(v).sum() > 10 and np.isinf(v).sum() > 10 and ((v != 0) & (np.abs(v) < 2.0 ** -14)).sum() > 10
    fin = np.nonzero(np.isfinite(f16(a)) & np.isfinite(f16(b)) & np.isfinite(f16(c)))[0]
    for i in fin[::16]:
        assert got[i] == fraction_fma_bits(int(a[i]), float(f16(b[i])), int(c[i])), (hex(a[i]), hex(b[i]), hex(c[i]))


def close_addends(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """binary16 addends within +-16 binades of the products ``p``, either sign: alignment, cancellation."""
    with np.errstate(divide="ignore", invalid="ignore"):
        e = np.floor(np.log2(np.abs(p) + 1e-300)).astype(int)
    eo = np.clip(e + rng.integers(-16, 17, len(p)), -24, 15)
    o = rng.integers(1, 2048, len(p)) * 2.0 ** np.maximum(eo - 10, -24)
    return bits16(np.clip(np.where(rng.random(len(p)) < 0.5, -o, o), -65504, 65504))


@pytest.mark.parametrize("b_int_bits, stages", [(8, 3), (None, 3), (8, 5)])
def test_fma_close_exponents(b_int_bits: int | None, stages: int) -> None:
    """Addends close to the product in magnitude: where the alignment window and the jammed sticky matter."""
    rng = np.random.default_rng(21)
    n = 6000
    a = rng.integers(0, 0x7C00, n) | (rng.integers(0, 2, n) << 15)
    if b_int_bits:
        b = np.where(rng.random(n) < 0.5, rng.integers(-3, 4, n), rng.integers(-128, 128, n))
        p = f16(a) * b
    else:
        b = rng.integers(0, 0x7C00, n) | (rng.integers(0, 2, n) << 15)
        p = f16(a) * f16(b)
    c = close_addends(p, rng)
    fma = FMA16(b_int_bits, stages=stages)
    got = run_block(fma, {"a": a, "b": b, "c": c}, "r", fma.LATENCY)
    ref = golden_fma_bits(a, b, c, b_int_bits is None)
    bad = np.nonzero(~same_f16(got, ref))[0]
    assert bad.size == 0, [(hex(a[i]), b[i], hex(c[i]), hex(got[i]), hex(ref[i])) for i in bad[:5]]


def test_fma_f16_tiny_products() -> None:
    """Products of subnormals and small normals (exponents down to 2**-48) with zero or tiny addends:
    results that underflow to zero, round up to the smallest subnormal, or stay subnormal."""
    rng = np.random.default_rng(9)
    n = 4000
    small = lambda: rng.integers(0, 0x1800, n) | (rng.integers(0, 2, n) << 15)   # |v| < 2**-9
    a, b = small(), small()
    c = np.where(rng.random(n) < 0.5, rng.choice([0x0000, 0x8000], n), rng.integers(0, 0x0800, n)
                 | (rng.integers(0, 2, n) << 15))
    got = run_block(FMA16(None), {"a": a, "b": b, "c": c}, "r", FMA16.LATENCY)
    ref = golden_fma_bits(a, b, c, True)
    bad = np.nonzero(~same_f16(got, ref))[0]
    assert bad.size == 0, [(hex(a[i]), hex(b[i]), hex(c[i]), hex(got[i]), hex(ref[i])) for i in bad[:5]]
    v = f16(ref)
    assert (v == 0).sum() > 100 and ((v != 0) & (np.abs(v) < 2.0 ** -14)).sum() > 100
    assert (np.abs(v) == 2.0 ** -24).sum() > 10          # rounded up from below half of the smallest subnormal


def test_fma_tie_fault_is_caught() -> None:
    """The verification must fail on a unit that rounds ties away from zero."""
    s, x, o = (np.array(v) for v in zip(*[c[:3] for c in INT_CORNERS]))
    got = run_block(FMA16(8, fault="tie"), {"a": s, "b": x, "c": o}, "r", FMA16.LATENCY)
    assert (~same_f16(got, golden_fma_bits(s, x, o, False))).sum() >= 2


def test_fma_constructor_checks() -> None:
    with pytest.raises(TypeError, match=r"b_int_bits must be None or a positive integer, not 0"):
        FMA16(0)
    with pytest.raises(ValueError, match=r"fault must be one of"):
        FMA16(8, fault="nope")
    with pytest.raises(ValueError, match=r"^stages must be 3 or 5, not 4$"):
        FMA16(8, stages=4)


@pytest.mark.parametrize("bits", [1, 8, 12])
def test_int_to_f16_exhaustive(bits: int) -> None:
    from amaranth.hdl import Module, Signal, signed
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    class Conv(wiring.Component):
        def __init__(self) -> None:
            super().__init__({"x": In(signed(bits)), "r": Out(16)})

        def elaborate(self, platform):
            m = Module()
            m.d.sync += self.r.eq(int_to_f16(self.x))
            return m

    xs = np.arange(-(1 << (bits - 1)), 1 << (bits - 1))
    got = run_block(Conv(), {"x": xs}, "r", 1)
    assert (got == bits16(xs.astype(np.float64))).all()
    with pytest.raises(ValueError, match="at most 12 bits, not 13"):
        int_to_f16(Signal(signed(13)))


# -- FP16ToFixed ------------------------------------------------------------------------------------
Q_CASES = ([(r, "SAT", True, 8, 0, True) for r in ROUNDING_MODES]
           + [("RND", o, sg, 8, 0, False) for o in OVERFLOW_MODES for sg in (True, False)]
           + [(r, o, True, 4, 2, False) for r in ("RND_CONV", "RND_MIN_INF", "TRN_ZERO") for o in ("WRAP", "SAT_SYM")]
           + [("RND_INF", "SAT_ZERO", False, 3, 1, True)])


@pytest.mark.parametrize("rounding,overflow,signed,bits,pre_truncate,relu", Q_CASES)
def test_fp16_to_fixed(rounding: str, overflow: str, signed: bool, bits: int, pre_truncate: int,
                       relu: bool) -> None:
    fmt = Fmt(bits, 0, signed, rounding, overflow, pre_truncate)
    fmin, fmax = -8, 10
    # a seed of the case's own text (crc32, not hash(): str hashes change per interpreter with PYTHONHASHSEED)
    rng = np.random.default_rng(zlib.crc32(repr((rounding, overflow, signed, bits, pre_truncate, relu)).encode()))
    n = 1500
    # ties and near-ties: small integers and halves scaled by 2**-out_frac, plus every class of value
    of = rng.integers(fmin, fmax + 1, n)
    ties = bits16((rng.integers(-40, 41, n) + rng.choice([0.0, 0.5, 0.25, 0.75, 0.125], n)) * 2.0 ** (-of))
    rand = rng.integers(0, 0x10000, n)
    special = rng.choice([0x7C00, 0xFC00, 0x7E00, 0xFE01, 0x0000, 0x8000, 0x0001, 0x8001, 0x7BFF, 0xFBFF], n)
    v = np.where(rng.random(n) < 0.45, ties, np.where(rng.random(n) < 0.85, rand, special))
    got = run_block(FP16ToFixed(fmt, fmin, fmax, relu), {"i": v, "out_frac": of}, "o", FP16ToFixed.LATENCY)
    b = f16(v)
    if relu:
        b = np.where(b < 0, 0.0, b)
    with np.errstate(invalid="ignore"):      # NaN inputs
        ref = np.array([quantize_real(b[i:i + 1], fmt.with_frac(int(of[i])))[0] for i in range(n)])
    bad = np.nonzero(got != ref)[0]
    assert bad.size == 0, [(hex(v[i]), int(of[i]), int(got[i]), int(ref[i])) for i in bad[:5]]
    for i in range(0, n, 5):
        assert got[i] == q_real_ref(float(b[i]), fmt.with_frac(int(of[i]))), (hex(v[i]), int(of[i]))


def test_fp16_to_fixed_exhaustive_default_format() -> None:
    """Every binary16 pattern through the default output format (RND, SAT, 8 bits) at out_frac 0 and 3."""
    fmt = Fmt(8, 0, True, "RND", "SAT")
    v = np.tile(np.arange(0x10000), 2)
    of = np.repeat([0, 3], 0x10000)
    got = run_block(FP16ToFixed(fmt, -8, 8, relu=False), {"i": v, "out_frac": of}, "o", FP16ToFixed.LATENCY)
    with np.errstate(invalid="ignore"):
        ref = np.concatenate([quantize_real(f16(v[:0x10000]), fmt), quantize_real(f16(v[:0x10000]), fmt.with_frac(3))])
    bad = np.nonzero(got != ref)[0]
    assert bad.size == 0, [(hex(v[i]), int(of[i]), int(got[i]), int(ref[i])) for i in bad[:5]]


# -- the whole unit -------------------------------------------------------------------------------
def simulate_unit(config: NMPUConfig, coef_bits: dict[str, np.ndarray], out_frac: int, codes: np.ndarray,
                  group: np.ndarray, seed: int, fault: str | None = None,
                  p_valid: float = 0.7, p_ready: float = 0.7) -> list[list[int]]:
    """Write binary16 coefficients and out_frac, stream beats with random gaps and stalls."""
    return stream_through(FP16Unit(config, fault=fault), coef_bits, out_frac, codes, group, seed, p_valid, p_ready)


def random_coefficients(config: NMPUConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """binary16 bit patterns per column: realistic magnitudes, extremes and subnormals mixed."""
    C = config.rtl.columns
    names = ["scale", "offset"] + (["bn_scale", "bn_offset"] if config.bn_stage else [])
    out = {}
    for name in names:
        real = bits16(rng.normal(0, 2.0 if "scale" in name else 20.0, C))
        wild = rng.integers(0, 0x7C00, C) | (rng.integers(0, 2, C) << 15)
        edge = rng.choice([0x7BFF, 0xFBFF, 0x0001, 0x83FF, 0x0000, 0x8000, 0x0400], C)
        pick = rng.random(C)
        out[name] = np.where(pick < 0.5, real, np.where(pick < 0.85, wild, edge))
    return out


def expected_unit(config, coef_bits, codes, group, out_frac) -> np.ndarray:
    L, C = config.rtl.lanes, config.rtl.columns
    full = np.zeros((len(codes), C), dtype=np.int64)
    for k, g in enumerate(group):
        full[k, g * L:(g + 1) * L] = codes[k]
    y = apply(full, config, {n: f16(v) for n, v in coef_bits.items()}, arith="fp16", out_frac=out_frac)
    return np.stack([y[k, g * L:(g + 1) * L] for k, g in enumerate(group)])


UNIT_CONFIGS = {
    "default_lanes2": NMPUConfig(rtl=RTLParams(lanes=2, columns=16)),
    "adc14_int_multiplier": NMPUConfig(adc_bits=14, output=Fmt(8, -6, True, "RND_INF", "SAT_SYM"),
                                       rtl=RTLParams(lanes=1, columns=4)),
    "bn_unsigned_norelu": NMPUConfig(adc_bits=6, relu=False, bn_stage=True,
                                     bn_scale=Fmt(8, 6, True), bn_offset=Fmt(8, 2, True),
                                     mid=Fmt(12, 4, True, "RND", "SAT"),
                                     output=Fmt(6, 1, False, "RND_CONV", "WRAP"),
                                     rtl=RTLParams(lanes=3, columns=12)),
}


@pytest.mark.parametrize("name", sorted(UNIT_CONFIGS))
def test_unit_matches_model_under_stalls(name: str) -> None:
    config = UNIT_CONFIGS[name]
    rng = np.random.default_rng(11)
    coef = random_coefficients(config, rng)
    n = 300
    codes = rng.integers(config.adc.min, config.adc.max + 1, (n, config.rtl.lanes))
    group = rng.integers(0, config.rtl.columns // config.rtl.lanes, n)
    out_frac = config.output.frac + 2
    got = np.array(simulate_unit(config, coef, out_frac, codes, group, seed=3))
    want = expected_unit(config, coef, codes, group, out_frac)
    bad = np.argwhere(got != want)
    assert bad.size == 0, f"{len(bad)} mismatches, first at beat/lane {bad[0].tolist()}"
    # saturation at the output happened, both ways when the format is signed
    lo, hi = config.output.min, config.output.max
    assert (want == hi).sum() > 5 and (config.relu or not config.output.signed or (want == lo).sum() > 5)


# The deepest FP16 unit: the BN stage and 5-stage FMAs (rtl.fp16_fma_stages), latency 1 + 2*5 + 2 = 13
DEEP = NMPUConfig(adc_bits=8, relu=False, bn_stage=True, bn_scale=Fmt(8, 6, True), bn_offset=Fmt(8, 2, True),
                  mid=Fmt(12, 4, True, "RND", "SAT"), output=Fmt(8, 1, True, "RND_CONV", "SAT"),
                  rtl=RTLParams(lanes=2, columns=8, fp16_fma_stages=5))


def stream_with_reset(dut, coef_bits: dict[str, np.ndarray], out_frac: int, before: tuple[np.ndarray, np.ndarray],
                      after: tuple[np.ndarray, np.ndarray], reset_at: int, seed: int, p_valid: float = 0.6,
                      p_ready: float = 0.6) -> tuple[list[list[int]], list[list[int]], int]:
    """Write the coefficients and ``out_frac``, stream the beats ``before`` with seeded random input gaps and
    output stalls until ``reset_at`` of them are accepted, hold ``rst`` high for two cycles (no valid, no
    ready), then stream the beats ``after`` the same way and idle for twice the latency with the output ready.
    Returns the output beats taken before and after the reset, and how many accepted beats were in flight."""
    from amaranth.hdl import Module, ResetInserter, Signal

    # the unit's synchronous reset (the exported Verilog's ``rst``), driven apart from the testbench's clock
    # domain, whose own reset would end the testbench's ticks
    top = Module()
    rst = Signal()
    top.submodules.dut = ResetInserter({"sync": rst})(dut)
    rng = np.random.default_rng(seed)
    outs: tuple[list[list[int]], list[list[int]]] = ([], [])
    flight = []

    async def bench(ctx):
        await write_coefficients(ctx, dut, coef_bits, out_frac)
        for phase, (codes, group) in enumerate((before, after)):
            stop = reset_at if phase == 0 else len(codes)
            k = 0
            while k < stop or (phase == 1 and len(outs[1]) < len(codes)):
                ctx.set(dut.i_stream.valid, k < stop and rng.random() < p_valid)
                if k < stop:
                    ctx.set(dut.i_stream.payload, {"codes": [int(c) for c in codes[k]], "group": int(group[k])})
                ctx.set(dut.o_stream.ready, rng.random() < p_ready)
                _, _, i_ok, o_ok, payload = await ctx.tick().sample(
                    dut.i_stream.valid & dut.i_stream.ready, dut.o_stream.valid & dut.o_stream.ready,
                    dut.o_stream.payload)
                k += bool(i_ok)
                if o_ok:
                    outs[phase].append([int(v) for v in payload])
            if phase == 0:
                flight.append(k - len(outs[0]))
                ctx.set(dut.i_stream.valid, 0)
                ctx.set(dut.o_stream.ready, 0)
                ctx.set(rst, 1)
                await ctx.tick().repeat(2)
                ctx.set(rst, 0)
        # nothing more may come out: no beat from before the reset, no beat twice
        ctx.set(dut.i_stream.valid, 0)
        ctx.set(dut.o_stream.ready, 1)
        for _ in range(2 * dut.LATENCY):
            _, _, o_valid, payload = await ctx.tick().sample(dut.o_stream.valid, dut.o_stream.payload)
            if o_valid:
                outs[1].append([int(v) for v in payload])

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return outs[0], outs[1], flight[0]


def test_deepest_unit_under_stalls_and_reset() -> None:
    """The 5-stage-FMA unit with the BN stage, under random stalls, reset in the middle of a stream: the beats
    out before the reset are the first ones in, at the written out_frac; after it, exactly the new beats, at
    the reset out_frac (output.frac), none of the beats that were in flight."""
    config = DEEP
    assert latency(config) == 13
    rng = np.random.default_rng(5)
    coef = random_coefficients(config, rng)
    L, G = config.rtl.lanes, config.rtl.columns // config.rtl.lanes
    beats = lambda n: (rng.integers(config.adc.min, config.adc.max + 1, (n, L)), rng.integers(0, G, n))
    before, after = beats(60), beats(120)
    out_frac = config.output.frac + 2
    got_before, got_after, in_flight = stream_with_reset(FP16Unit(config), coef, out_frac, before, after,
                                                         reset_at=60, seed=8)
    assert in_flight >= 3 and len(got_before) >= 30, (in_flight, len(got_before))   # the reset dropped beats in flight
    want_before = expected_unit(config, coef, before[0], before[1], out_frac)
    bad = np.argwhere(np.array(got_before) != want_before[:len(got_before)])
    assert bad.size == 0, f"{len(bad)} mismatches before the reset, first at beat/lane {bad[0].tolist()}"
    want_after = expected_unit(config, coef, after[0], after[1], config.output.frac)
    assert len(got_after) == len(after[0]), (len(got_after), len(after[0]))
    bad = np.argwhere(np.array(got_after) != want_after)
    assert bad.size == 0, f"{len(bad)} mismatches after the reset, first at beat/lane {bad[0].tolist()}"
    # what the references exercised: saturation both ways, and an out_frac that changes the codes
    assert (want_after == config.output.max).sum() > 5 and (want_after == config.output.min).sum() > 5
    assert (expected_unit(config, coef, after[0], after[1], out_frac) != want_after).sum() > 50


def test_unit_latency_and_ii_one() -> None:
    config = NMPUConfig(rtl=RTLParams(lanes=1, columns=4))
    unit = FP16Unit(config)
    unit._MustUse__silence = True          # only its attribute is read here
    assert unit.LATENCY == latency(config) == 6
    assert latency(UNIT_CONFIGS["bn_unsigned_norelu"]) == 9
    coef = {"scale": bits16([1.0] * 4), "offset": bits16([0.5, -1.0, 3.0, 100.0])}
    codes = np.arange(20).reshape(20, 1) - 10
    group = np.arange(20) % 4
    got = np.array(simulate_unit(config, coef, 0, codes, group, seed=0, p_valid=1.0, p_ready=1.0))
    assert (got == expected_unit(config, coef, codes, group, 0)).all()


def test_unit_tie_fault_is_caught() -> None:
    config = NMPUConfig(relu=False, output=Fmt(8, 0, True, "RND_ZERO", "SAT"), rtl=RTLParams(lanes=1, columns=2))
    # 2**-10 * (+-1) + (+-2.5) is a binary16 tie: to even gives +-2.5 (-> +-2 by RND_ZERO), away from
    # zero gives +-(2.5 + 2**-9) (-> +-3)
    coef = {"scale": bits16([2.0 ** -10] * 2), "offset": bits16([2.5, -2.5])}
    codes = np.array([[1], [-1], [3], [-1], [1]])
    group = np.array([0, 1, 0, 1, 0])
    want = expected_unit(config, coef, codes, group, 0)
    assert want[:2, 0].tolist() == [2, -2]
    assert (np.array(simulate_unit(config, coef, 0, codes, group, seed=0)) == want).all()
    broken = np.array(simulate_unit(config, coef, 0, codes, group, seed=0, fault="tie"))
    assert (broken != want).sum() >= 2


def test_unit_constructor_checks() -> None:
    with pytest.raises(TypeError, match=r"config must be an NMPUConfig, not 3"):
        FP16Unit(3)
    with pytest.raises(ValueError, match=r"fault must be one of"):
        FP16Unit(NMPUConfig(), fault="x")
