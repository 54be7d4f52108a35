"""FP16/FP32 baselines against IEEE round-to-nearest-even computed exactly from the definition.

The reference rounds the exact ``s*x + o`` once (a fused multiply-add). ``torch.half`` arithmetic
would round twice, which is what these tests must tell apart.
"""
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nmpu_model import Fmt, NMPUConfig, apply
from nmpu_model.golden.baselines import fma
from nmpu_model.golden.formats import OVERFLOW_MODES, ROUNDING_MODES

from .reference import apply_float_ref, round_binary

FT = {"fp16": np.float16, "fp32": np.float32}


def binary_values(arith):
    # any finite value of the format, by bit pattern: subnormals, extremes and zeros included
    if arith == "fp16":
        return st.integers(0, 0xFFFF).map(lambda b: np.array(b, np.uint16).view(np.float16)).filter(np.isfinite)
    return st.integers(0, 0xFFFFFFFF).map(lambda b: np.array(b, np.uint32).view(np.float32)).filter(np.isfinite)


@pytest.mark.parametrize("arith", ["fp16", "fp32"])
@given(data=st.data())
def test_fma_single_rounding(arith, data):
    s = float(data.draw(binary_values(arith)))
    o = float(data.draw(binary_values(arith)))
    x = data.draw(st.integers(-128, 127))
    got = fma(np.array([s]), np.array([float(x)]), np.array([o]), arith)[0]
    want = round_binary(Fraction(s) * x + Fraction(o), arith)
    if isinstance(want, float):
        assert got == want
    else:
        assert Fraction(float(got)) == want


def test_fma_differs_from_double_rounding():
    # s*x + o where rounding the product first to fp16 and then the sum gives a different answer:
    # s = 1 + 2^-10, x = 3: exact product 3 + 3*2^-10 needs 12 bits; o = -3 leaves 3*2^-10 exactly.
    s, x, o = 1 + 2 ** -10, 3.0, -3.0
    once = fma(np.array([s]), np.array([x]), np.array([o]), "fp16")[0]
    twice = float(np.float16(np.float16(s) * np.float16(x)) + np.float16(o))
    assert once == 3 * 2 ** -10
    assert twice != once


def test_overflow_to_inf_then_saturates():
    config = NMPUConfig()
    codes = np.array([[127, -128]])
    co = {"scale": np.array([65504.0, 65504.0]), "offset": np.array([0.0, 0.0])}
    assert np.isinf(fma(np.array([65504.0]), np.array([127.0]), np.array([0.0]), "fp16")[0])
    assert apply(codes, config, co, arith="fp16").tolist() == [[127, 0]]  # +inf saturates, -inf meets ReLU
    config = NMPUConfig(relu=False)
    assert apply(codes, config, co, arith="fp16").tolist() == [[127, -128]]


def test_subnormal_results_are_kept():
    # 2^-24 is fp16's smallest subnormal. Products of two fp16 values (the BN stage) fall below it:
    # 2^-12 * 2^-13 = 2^-25 is a tie between 0 and 2^-24 -> even 0; 2^-12 * 3*2^-13 = 1.5 * 2^-24 -> 2^-23
    def f(s, a):
        return fma(np.array([s]), np.array([a]), np.array([0.0]), "fp16")[0]
    assert f(2.0 ** -12, 2.0 ** -13) == 0.0
    assert f(2.0 ** -12, 3 * 2.0 ** -13) == 2.0 ** -23
    assert f(2.0 ** -12, 5 * 2.0 ** -14) == 2.0 ** -24  # 1.25 ulp rounds down
    assert fma(np.array([2.0 ** -24]), np.array([1.0]), np.array([-2.0 ** -24]), "fp16")[0] == 0.0


def test_coefficient_overflowing_fp16_is_refused():
    with pytest.raises(ValueError, match="scale: value 70000.0 at index 1 overflows fp16"):
        apply(np.zeros((1, 2), dtype=int), NMPUConfig(), {"scale": [1.0, 70000.0], "offset": [0.0, 0.0]}, arith="fp16")


@st.composite
def float_cases(draw):
    arith = draw(st.sampled_from(["fp16", "fp32"]))
    bn = draw(st.booleans())
    out = Fmt(draw(st.integers(2, 12)), draw(st.integers(-4, 6)), draw(st.booleans()),
              draw(st.sampled_from(ROUNDING_MODES)), draw(st.sampled_from(OVERFLOW_MODES)), draw(st.integers(0, 3)))
    config = NMPUConfig(output=out, relu=draw(st.booleans()), bn_stage=bn, bn_scale=Fmt(8, 4) if bn else None,
                        bn_offset=Fmt(8, 4) if bn else None, mid=Fmt(16, 8) if bn else None)
    vals = st.one_of(binary_values(arith), st.sampled_from([0.5, -1.5, 0.25, 3.0, 2.0 ** -14, 1000.0]))
    c = 4
    coeffs = {k: np.array([float(draw(vals)) for _ in range(c)])
              for k in (["scale", "offset"] + (["bn_scale", "bn_offset"] if bn else []))}
    x = np.array([[draw(st.integers(-128, 127)) for _ in range(c)] for _ in range(3)])
    return arith, config, coeffs, x, draw(st.integers(config.out_frac_min, config.out_frac_max))


@given(case=float_cases())
def test_apply_float_matches_reference(case):
    arith, config, coeffs, x, out_frac = case
    got = apply(x, config, coeffs, arith=arith, out_frac=out_frac)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            kw = {}
            if config.bn_stage:
                kw = dict(g=coeffs["bn_scale"][j], h=coeffs["bn_offset"][j])
            want = apply_float_ref(int(x[i, j]), coeffs["scale"][j], coeffs["offset"][j], config, out_frac, arith, **kw)
            assert got[i, j] == want, (arith, i, j)


@pytest.mark.parametrize("arith", ["fp16", "fp32"])
def test_real_coefficients_are_rounded_once_to_the_format(arith):
    """Coefficients that are no binary16/32 value (1/10, 1/3, ties between two neighbours) are rounded to
    the nearest (ties to even) before the unit uses them: the reference rounds the exact decimal."""
    from .reference import round_binary

    p = 11 if arith == "fp16" else 24
    tie_up, tie_even = 1 + 3 * 2.0 ** -p, 1 + 2.0 ** -p     # halfway: to 1 + 2^(2-p) (even) and to 1
    vals = [0.1, 1 / 3, -2 / 3, 0.7, 1.37, tie_up, tie_even, -tie_up, 1e-6, 3.14159]
    rng = np.random.default_rng(4)
    x = rng.integers(-128, 128, size=(40, len(vals)))
    s = np.array(vals)
    o = np.array(vals[::-1]) * 5
    cfg = NMPUConfig(relu=False, output=Fmt(16, 6, True, "RND_CONV", "SAT"), out_frac_min=0, out_frac_max=10)
    got = apply(x, cfg, {"scale": s, "offset": o}, arith, out_frac=6)
    inexact = 0
    for j in range(len(vals)):
        s_b, o_b = round_binary(Fraction(s[j]), arith), round_binary(Fraction(o[j]), arith)
        inexact += s_b != Fraction(s[j])
        for i in range(x.shape[0]):
            want = apply_float_ref(int(x[i, j]), float(s_b), float(o_b), cfg, 6, arith)
            assert got[i, j] == want, (arith, vals[j], int(x[i, j]))
    assert inexact >= 8            # the coefficients really needed rounding
    # the ties went the documented way
    assert float(round_binary(Fraction(tie_up), arith)) == 1 + 4 * 2.0 ** -p
    assert float(round_binary(Fraction(tie_even), arith)) == 1.0


def test_fp16_overflow_boundary_of_a_coefficient():
    """binary16's largest value is 65504; a real coefficient below 65520 (the midpoint to 2^16) rounds to it,
    one at or above 65520 rounds to infinity, which the unit refuses as a coefficient."""
    cfg = NMPUConfig(relu=False)
    x = np.array([[1, -1]])
    for v in (65504.0, 65519.99, 65510.0):
        y = apply(x, cfg, {"scale": [v, v], "offset": [0.0, 0.0]}, "fp16", out_frac=-8)
        assert y.tolist() == [[127, -128]]      # 65504 * 2^-8 = 255.9: saturates either side
        y = apply(x, cfg, {"scale": [1.0, 1.0], "offset": [v, -v]}, "fp16", out_frac=-8)
        assert y.tolist() == [[127, -128]]
    for v in (65520.0, 65536.0, -65520.0):
        with pytest.raises(ValueError, match=f"offset: value {v!r} at index 1 overflows fp16"):
            apply(x, cfg, {"scale": [1.0, 1.0], "offset": [0.0, v]}, "fp16")
    assert apply(x, cfg, {"scale": [65520.0, 1.0], "offset": [0.0, 0.0]}, "fp32", out_frac=-8).tolist() == [[127, 0]]


INF = float("inf")


@pytest.mark.parametrize("arith", ["fp16", "fp32"])
@pytest.mark.parametrize("coeffs, relu, want", [
    # an infinite offset: +inf saturates to the top code, -inf to the bottom one (0 after ReLU)
    ({"scale": [1.0, 1.0, 0.0], "offset": [INF, -INF, INF]}, False, [127, -128, 127]),
    ({"scale": [1.0, 1.0, 0.0], "offset": [INF, -INF, INF]}, True, [127, 0, 127]),
    # BN stage: inf * 0 is NaN, which gives 0; inf * (positive a) saturates; an infinite bn_offset too
    ({"scale": [0.0, 1.0, 1.0], "offset": [0.0, 0.0, 0.0], "bn_scale": [INF, INF, -INF],
      "bn_offset": [0.0, 0.0, 0.0]}, False, [0, 127, -128]),
    ({"scale": [1.0, 1.0, 1.0], "offset": [0.0, INF, 0.0], "bn_scale": [1.0, 0.0, 1.0],
      "bn_offset": [INF, 0.0, -INF]}, False, [127, 0, -128]),
])
def test_infinite_coefficients_by_hand(arith, coeffs, relu, want):
    bn = "bn_scale" in coeffs
    cfg = NMPUConfig(relu=relu, bn_stage=bn, bn_scale=Fmt(8, 4) if bn else None, bn_offset=Fmt(8, 4) if bn else None,
                     mid=Fmt(16, 8) if bn else None)
    assert apply(np.array([[3, 3, 3]]), cfg, coeffs, arith).tolist() == [want]
    # SAT_ZERO: an infinity is out of range, so 0
    z = cfg.with_fields(output=Fmt(8, 0, True, "RND", "SAT_ZERO"))
    assert apply(np.array([[3, 3, 3]]), z, coeffs, arith).tolist() == [[0, 0, 0]]


def test_float_output_ties_follow_the_spec_worked_table():
    """The float units' output quantization on exact ties, against docs/datapath.md's worked ties (the values are
    binary16/32 values, so only the output rounding decides)."""
    from nmpu_model.golden.baselines import quantize_real

    from .test_formats import SPEC_TIES

    for v, modes in SPEC_TIES.items():
        for mode, want in modes.items():
            got = quantize_real(np.array([float(v)]), Fmt(8, 0, True, mode, "SAT"))[0]
            assert got == want, (v, mode)
    # more ties: every mode at -1.5, -0.5, 0.5, 1.5, 3.5 against the exact reference
    from .reference import q_ref
    for v in (-3.5, -1.5, -0.5, 0.5, 1.5, 3.5):
        for mode in ROUNDING_MODES:
            fmt = Fmt(8, 0, True, mode, "SAT")
            assert quantize_real(np.array([v]), fmt)[0] == q_ref(Fraction(v), fmt), (v, mode)


def test_quantize_real_every_mode_on_a_grid_and_non_finite_values():
    """The float baselines' output stage on every quarter in [-75, 75], huge values, +-inf and NaN, in every
    rounding, overflow and pre-truncation, signed and unsigned, against the exact reference (with its documented
    rules for infinities and NaN)."""
    from nmpu_model.golden.baselines import quantize_real

    from .reference import q_real_ref

    vals = [k / 4 for k in range(-300, 301)] + [1e30, -1e30, 2.0 ** 60 + 2.0 ** 8, float("inf"), float("-inf"),
                                               float("nan")]
    for rounding in ROUNDING_MODES:
        for overflow in OVERFLOW_MODES:
            for bits, signed, frac, pre in ((3, True, 0, 0), (5, True, 2, 1), (4, False, 1, 0), (5, False, -1, 2)):
                fmt = Fmt(bits, frac, signed, rounding, overflow, pre_truncate=pre)
                got = quantize_real(np.array(vals), fmt)
                assert got.dtype == np.int64
                want = [q_real_ref(v, fmt) for v in vals]
                assert got.tolist() == want, (rounding, overflow, bits, signed, frac, pre)


def test_fma_double_rounding_ties_in_fp32():
    """s = 1 + 2^-23, x = 3: s*x = 3 + 2^-22 + 2^-23 is an exact tie between two binary32 values; o = +-2^-70 is
    lost when s*x + o is first rounded to float64, and decides the rounding: up for +, down for -. Rounding the
    float64 sum to binary32 again (ties to even) would give 3 + 2^-21 for both."""
    s, x = 1 + 2.0 ** -23, 3.0
    for o, want in ((2.0 ** -70, 3 + 2.0 ** -21), (-(2.0 ** -70), 3 + 2.0 ** -22),
                    (-(2.0 ** -70) - 2.0 ** -72, 3 + 2.0 ** -22)):
        got = fma(np.array([s]), np.array([x]), np.array([o]), "fp32")[0]
        assert got == want == float(round_binary(Fraction(s) * 3 + Fraction(o), "fp32")), o
        neg = fma(np.array([-s]), np.array([x]), np.array([-o]), "fp32")[0]
        assert neg == -want, o
    # the sum one float64 ulp above a binary32 tie, less a little: rounded to odd, not nudged back onto the tie
    # (found by search; s = 1 + 3 * 2^-23, x = 3)
    s3, o3 = 1 + 3 * 2.0 ** -23, float(np.float32(2.0 ** -51 - 2.0 ** -70))
    got = fma(np.array([s3]), np.array([3.0]), np.array([o3]), "fp32")[0]
    assert got == float(round_binary(Fraction(s3) * 3 + Fraction(o3), "fp32")) == 3 + 5 * 2.0 ** -22
    # and where float64 holds the sum exactly (no second rounding to undo): plain ties to even
    assert fma(np.array([s]), np.array([x]), np.array([0.0]), "fp32")[0] == 3 + 2.0 ** -21


def test_float_baseline_refusals_are_exact():
    x = np.zeros((1, 2), dtype=np.int64)
    with pytest.raises(ValueError) as e:
        apply(x, NMPUConfig(), {"scale": [70000.0, 1e6], "offset": [0.0, 0.0]}, arith="fp16")
    assert str(e.value) == "scale: value 70000.0 at index 0 overflows fp16 (max 65504.0); 2 such values"
    bn = NMPUConfig(bn_stage=True, bn_scale=Fmt(8, 4), bn_offset=Fmt(8, 4), mid=Fmt(16, 8))
    ok = {"scale": [1.0, 1.0], "offset": [0.0, 0.0], "bn_scale": [1.0, 1.0], "bn_offset": [0.0, 0.0]}
    for k in ("bn_scale", "bn_offset"):
        with pytest.raises(ValueError) as e:
            apply(x, bn, {**ok, k: [1.0, 1e5]}, arith="fp16")
        assert str(e.value) == f"{k}: value 100000.0 at index 1 overflows fp16 (max 65504.0); 1 such value"
    from nmpu_model.golden.baselines import apply_float
    with pytest.raises(ValueError) as e:
        apply_float(x, NMPUConfig(), {"scale": np.ones(2), "offset": np.zeros(2)}, 0, "fp8")
    assert str(e.value) == "arith must be fp16 or fp32 here, not 'fp8'"
    # 29-bit ADC codes are exact in the products (24 + 29 bits); 30 are refused
    big = np.array([[(1 << 28) - 1, -(1 << 28)]])
    got = apply_float(big, NMPUConfig(adc_bits=29), {"scale": np.ones(2), "offset": np.zeros(2)}, 0, "fp32")
    assert got.dtype == np.int64 and got.tolist() == [[127, 0]]
    with pytest.raises(ValueError) as e:
        apply_float(big, NMPUConfig(adc_bits=30), {"scale": np.ones(2), "offset": np.zeros(2)}, 0, "fp32")
    assert str(e.value) == "the fp32 baseline handles adc_bits <= 29, not 30"
