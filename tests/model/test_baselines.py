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
from nmpu_model.baselines import fma
from nmpu_model.formats import OVERFLOW_MODES, ROUNDING_MODES

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
