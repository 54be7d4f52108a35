"""amaranth.sim tests of the arithmetic blocks, exhaustive over small widths, against the golden model.

Each block is fed one input per clock (pipelined) and its output compared with
``nmpu_model.formats`` (``round_shift``, ``fit``, ``quantize``), never with hard-coded codes.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned
from amaranth.sim import Simulator

from nmpu_model.formats import OVERFLOW_MODES, ROUNDING_MODES, ConfigError, Fmt, fit, quantize, round_shift
from rtl.arith import TIE_FAULTS, Fit, MulAdd, ReLU, RoundShift, VarShiftLeft, round_shift_width


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
    assert TIE_FAULTS["RND"] != "RND"


@pytest.mark.parametrize("overflow", OVERFLOW_MODES)
def test_fit_exhaustive(overflow: str) -> None:
    width = 7
    v = all_signed(width)
    for bits, sgn in itertools.product((1, 2, 3, 5, 7, 9), (True, False)):
        fmt = Fmt(bits, 0, sgn, "TRN", overflow)
        dut = Fit(width, fmt)
        got = run_pipelined(dut, [[(dut.i, int(x))] for x in v], dut.o, Fit.LATENCY)
        assert got == fit(v, fmt).tolist(), f"{overflow} bits={bits} signed={sgn}"


def test_var_shift_left_exhaustive() -> None:
    v = all_signed(5)
    dut = VarShiftLeft(5, 6)
    cases = [(int(x), s) for x in v for s in range(7)]
    got = run_pipelined(dut, [[(dut.i, x), (dut.shift, s)] for x, s in cases], dut.o, VarShiftLeft.LATENCY)
    assert got == [x << s for x, s in cases]


def test_relu_exhaustive() -> None:
    v = all_signed(5)
    dut = ReLU(5)
    got = run_pipelined(dut, [[(dut.i, int(x))] for x in v], dut.o, ReLU.LATENCY)
    assert got == np.maximum(v, 0).tolist()


@pytest.mark.parametrize("c_signed", [False, True])
def test_muladd_exhaustive(c_signed: bool) -> None:
    x = all_signed(4)
    c = all_signed(3) if c_signed else np.arange(8)
    d = all_signed(3)
    dut = MulAdd(signed(4), signed(3) if c_signed else unsigned(3), signed(3), 2, 1, 12)
    cases = list(itertools.product(x.tolist(), c.tolist(), d.tolist()))
    got = run_pipelined(dut, [[(dut.x, a), (dut.c, b), (dut.d, e)] for a, b, e in cases], dut.o, MulAdd.LATENCY)
    assert got == [((a * b) << 2) + (e << 1) for a, b, e in cases]


@pytest.mark.parametrize("rounding", ROUNDING_MODES)
def test_runtime_out_frac_identity(rounding: str) -> None:
    """The hardware's runtime quantizer, ``round_shift(b << (f - fmin), fb - fmin)``, equals the model's
    ``quantize(b, fb, fmt.with_frac(f))`` before the fit, for every ``f`` in range and every ``pre_truncate``.
    """
    b = all_signed(8)
    for fb, fmin, fmax, k in itertools.product((0, 3, 7), (-4, 0, 2), (5, 9), (0, 1, 2, 3)):
        for f in range(fmin, fmax + 1):
            fmt = Fmt(40, f, True, rounding, "WRAP", k)   # wide enough that WRAP is the identity
            want = quantize(b, fb, fmt)
            d = fb - fmin
            w = b << (f - fmin)
            got = round_shift(w, d, rounding, k) if d > 0 else w << -d
            assert np.array_equal(got, want), (rounding, fb, fmin, f, k)


def test_quantize_chain_in_hardware() -> None:
    """VarShiftLeft -> RoundShift -> Fit, as the output stage wires them, against ``quantize``."""
    from amaranth.hdl import Module
    b = all_signed(6)
    fb, fmin, fmax = 3, -1, 4
    R = fmax - fmin
    for rounding, overflow, k in [("RND_CONV", "SAT_SYM", 0), ("RND_ZERO", "WRAP", 1), ("TRN_ZERO", "SAT_ZERO", 0),
                                  ("RND_INF", "SAT", 2), ("RND_MIN_INF", "SAT", 0)]:
        fmt = Fmt(4, 0, True, rounding, overflow, k)
        m = Module()
        m.submodules.vs = vs = VarShiftLeft(6, R)
        m.submodules.rs = rs = RoundShift(6 + R, fb - fmin, rounding, k)
        m.submodules.ft = ft = Fit(round_shift_width(6 + R, fb - fmin), fmt)
        m.d.comb += [rs.i.eq(vs.o), ft.i.eq(rs.o)]
        cases = [(int(x), f) for x in b for f in range(fmin, fmax + 1)]
        got = run_pipelined(m, [[(vs.i, x), (vs.shift, f - fmin)] for x, f in cases], ft.o, 3)
        want = [int(quantize(np.array([x]), fb, fmt.with_frac(f))[0]) for x, f in cases]
        assert got == want, (rounding, overflow, k)


def test_constructor_errors_name_the_problem() -> None:
    with pytest.raises(ConfigError, match="rounding must be one of"):
        RoundShift(8, 2, "NEAREST")
    with pytest.raises(TypeError, match="Width must be a positive integer, not 0"):
        RoundShift(0, 2, "RND")
    with pytest.raises(TypeError, match="max_shift must be a non-negative integer"):
        VarShiftLeft(4, -1)
    with pytest.raises(ValueError, match="alignment shifts must be >= 0"):
        MulAdd(signed(4), signed(4), signed(4), -1, 0, 8)
