"""amaranth.sim tests of the arithmetic blocks, exhaustive over small widths, against the golden model.

Each block is fed one input per clock (pipelined) and its output compared with
``nmpu_model.golden.formats`` (``round_shift``, ``fit``, ``quantize``), never with hard-coded codes.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned
from amaranth.sim import Simulator

from nmpu_model.golden.formats import OVERFLOW_MODES, ROUNDING_MODES, ConfigError, Fmt, fit, quantize, round_shift
from nmpu_model.golden.formats import Rounding
from rtl.arith import up_rule, Fit, MulAdd, RoundShift, VarQuantize, round_shift_width


def run_pipelined(dut, inputs: list[list[tuple]], out, latency: int) -> list[int]:
    """Drive one input set per cycle and collect ``out`` ``latency`` cycles later, in order."""
    results: list[int] = []

    async def bench(ctx):
        for k in range(len(inputs) + latency):
            if k < len(inputs):
                for sig, v in inputs[k]:
                    ctx.set(sig, v)
            if latency == 0:        # combinational: no clock domain to tick
                await ctx.delay(1e-6)
                results.append(ctx.get(out))
                continue
            await ctx.tick()
            if k >= latency - 1:
                results.append(ctx.get(out))

    sim = Simulator(dut)
    if latency:
        sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return results[:len(inputs)]


def all_signed(width: int) -> np.ndarray:
    return np.arange(-(1 << (width - 1)), 1 << (width - 1), dtype=np.int64)


@pytest.mark.parametrize("rounding", ROUNDING_MODES)
def test_round_shift_exhaustive(rounding: str) -> None:
    width = 6
    v = all_signed(width)
    for shift, k in itertools.product((-2, 0, 1, 2, 3, 5, 6, 7, 9), (0, 1, 2, 4)):
        dut = RoundShift(width, shift, rounding, k)
        got = run_pipelined(dut, [[(dut.i, int(x))] for x in v], dut.o, RoundShift.LATENCY)
        want = round_shift(v, shift, rounding, k) if shift > 0 else v << -shift
        assert got == want.tolist(), f"{rounding} shift={shift} pre_truncate={k}"
        assert len(dut.o) == round_shift_width(width, shift)


def test_round_shift_fault_changes_ties_only() -> None:
    """The deliberately broken tie rule differs from the model exactly on ties (and nowhere else)."""
    v = all_signed(6)
    dut = RoundShift(6, 2, "RND", fault=True)
    got = np.array(run_pipelined(dut, [[(dut.i, int(x))] for x in v], dut.o, 1))
    want = round_shift(v, 2, "RND")
    ties = (v & 3) == 2
    assert (got != want).tolist() == ties.tolist()
    assert up_rule(Rounding.RND, fault=True) is not Rounding.RND.up


@pytest.mark.parametrize("overflow", OVERFLOW_MODES)
def test_fit_exhaustive(overflow: str) -> None:
    width = 7
    v = all_signed(width)
    for bits, sgn in itertools.product((1, 2, 3, 5, 7, 9), (True, False)):
        fmt = Fmt(bits, 0, sgn, "TRN", overflow)
        dut = Fit(width, fmt)
        got = run_pipelined(dut, [[(dut.i, int(x))] for x in v], dut.o, Fit.LATENCY)
        assert got == fit(v, fmt).tolist(), f"{overflow} bits={bits} signed={sgn}"


@pytest.mark.parametrize("registered", [True, False])
@pytest.mark.parametrize("c_signed", [False, True])
def test_muladd_exhaustive(c_signed: bool, registered: bool) -> None:
    x = all_signed(4)
    c = all_signed(3) if c_signed else np.arange(8)
    d = all_signed(3)
    dut = MulAdd(signed(4), signed(3) if c_signed else unsigned(3), signed(3), 2, 1, 12, registered=registered)
    assert dut.LATENCY == (1 if registered else 0)
    cases = list(itertools.product(x.tolist(), c.tolist(), d.tolist()))
    got = run_pipelined(dut, [[(dut.x, a), (dut.c, b), (dut.d, e)] for a, b, e in cases], dut.o, dut.LATENCY)
    assert got == [((a * b) << 2) + (e << 1) for a, b, e in cases]


# (input shape, frac, out_frac_min, out_frac_max): left shifts only, right shifts only, both, shifts
# past the input's width, a range where the input needs padding (out_frac_max > frac)
VQ_CASES = [(signed(6), 3, -1, 4), (unsigned(5), 0, -3, 3), (signed(5), 5, 4, 9), (unsigned(4), 2, -9, -6),
            (signed(4), 1, -2, 6)]
VQ_FORMATS = [(3, True, 0), (4, False, 2), (2, True, 1), (3, False, 3), (1, True, 0), (1, False, 1)]


@pytest.mark.parametrize("rounding", ROUNDING_MODES)
def test_var_quantize_exhaustive(rounding: str) -> None:
    """The runtime output quantizer equals ``quantize(v, frac, fmt.with_frac(f))`` for every input,
    every ``out_frac`` in range, every overflow mode, signed and unsigned inputs and outputs, pre_truncate."""
    for (shape, frac, fmin, fmax), (bits, sgn, k), overflow in itertools.product(VQ_CASES, VQ_FORMATS,
                                                                                OVERFLOW_MODES):
        fmt = Fmt(bits, 0, sgn, rounding, overflow, k)
        dut = VarQuantize(shape, frac, fmt, fmin, fmax)
        v = all_signed(shape.width) if shape.signed else np.arange(1 << shape.width)
        cases = [(int(x), f) for f in range(fmin, fmax + 1) for x in v]
        got = run_pipelined(dut, [[(dut.i, x), (dut.shift, dut.shift_of(f))] for x, f in cases], dut.o,
                            VarQuantize.LATENCY)
        want = np.concatenate([quantize(v, frac, fmt.with_frac(f)) for f in range(fmin, fmax + 1)])
        assert got == want.tolist(), (shape, frac, fmin, fmax, fmt)


@pytest.mark.parametrize("rounding", ROUNDING_MODES)
def test_var_quantize_relu_exhaustive(rounding: str) -> None:
    """With ``relu`` the quantizer equals ``quantize(max(v, 0), ...)``: every signed input, every
    ``out_frac`` in range, every overflow mode, signed and unsigned outputs, pre_truncate; and a
    1-bit input (always 0 after the ReLU)."""
    cases_in = [c for c in VQ_CASES if c[0].signed] + [(signed(1), 0, -1, 1)]
    for (shape, frac, fmin, fmax), (bits, sgn, k), overflow in itertools.product(cases_in, VQ_FORMATS,
                                                                                OVERFLOW_MODES):
        fmt = Fmt(bits, 0, sgn, rounding, overflow, k)
        dut = VarQuantize(shape, frac, fmt, fmin, fmax, relu=True)
        v = all_signed(shape.width)
        cases = [(int(x), f) for f in range(fmin, fmax + 1) for x in v]
        got = run_pipelined(dut, [[(dut.i, x), (dut.shift, dut.shift_of(f))] for x, f in cases], dut.o,
                            VarQuantize.LATENCY)
        want = np.concatenate([quantize(np.maximum(v, 0), frac, fmt.with_frac(f)) for f in range(fmin, fmax + 1)])
        assert got == want.tolist(), (shape, frac, fmin, fmax, fmt)


def test_var_quantize_fault_changes_ties_only() -> None:
    v = all_signed(6)
    fmt = Fmt(8, 0, True, "RND", "SAT")
    dut = VarQuantize(signed(6), 2, fmt, -1, 1, fault=True)
    got = np.array(run_pipelined(dut, [[(dut.i, int(x)), (dut.shift, dut.shift_of(0))] for x in v], dut.o,
                                 VarQuantize.LATENCY))
    want = quantize(v, 2, fmt)
    assert (got != want).tolist() == ((v & 3) == 2).tolist()


def test_constructor_errors_name_the_problem() -> None:
    with pytest.raises(ConfigError, match="rounding must be one of"):
        RoundShift(8, 2, "NEAREST")
    with pytest.raises(TypeError, match="Width must be a positive integer, not 0"):
        RoundShift(0, 2, "RND")
    with pytest.raises(ValueError, match="out_frac range must have min <= max, not 3, 2"):
        VarQuantize(signed(4), 0, Fmt(4, 0), 3, 2)
    with pytest.raises(ValueError, match="relu needs a signed input"):
        VarQuantize(unsigned(4), 0, Fmt(4, 0), 0, 0, relu=True)
    with pytest.raises(ValueError, match="alignment shifts must be >= 0"):
        MulAdd(signed(4), signed(4), signed(4), -1, 0, 8)
