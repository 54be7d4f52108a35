"""amaranth.sim driver shared by the whole-unit tests of the NMPU and of the FP16 unit (same interface)."""
from __future__ import annotations

from typing import Mapping

import numpy as np
from amaranth.sim import Simulator

from rtl.blocks import CoefSel


async def write_coefficients(ctx, dut, coeffs: Mapping[str, np.ndarray], out_frac: int) -> None:
    """Write the coefficients (raw codes or bit patterns, masked to the port) and ``out_frac`` through the
    unit's ports, one per cycle."""
    for name, vals in coeffs.items():
        for col, v in enumerate(vals):
            ctx.set(dut.coef.en, 1)
            ctx.set(dut.coef.sel, CoefSel.of(name).value)
            ctx.set(dut.coef.addr, col)
            ctx.set(dut.coef.data, int(v) & ((1 << len(dut.coef.data)) - 1))
            await ctx.tick()
    ctx.set(dut.coef.en, 0)
    ctx.set(dut.out_frac.en, 1)
    ctx.set(dut.out_frac.data, out_frac)
    await ctx.tick()
    ctx.set(dut.out_frac.en, 0)


def stream_through(dut, coeffs: Mapping[str, np.ndarray], out_frac: int, codes: np.ndarray, group: np.ndarray,
                   seed: int, p_valid: float = 0.7, p_ready: float = 0.7) -> list[list[int]]:
    """Write the coefficients (raw codes or bit patterns) and ``out_frac`` through the unit's ports, then stream
    the beats with seeded random input gaps and output stalls; return the output beats in order."""
    rng = np.random.default_rng(seed)
    outs: list[list[int]] = []

    async def bench(ctx):
        await write_coefficients(ctx, dut, coeffs, out_frac)
        k = 0
        while len(outs) < len(codes):
            ctx.set(dut.i_stream.valid, k < len(codes) and rng.random() < p_valid)
            if k < len(codes):
                ctx.set(dut.i_stream.payload, {"codes": [int(c) for c in codes[k]], "group": int(group[k])})
            ctx.set(dut.o_stream.ready, rng.random() < p_ready)
            _, _, i_ok, o_ok, payload = await ctx.tick().sample(
                dut.i_stream.valid & dut.i_stream.ready, dut.o_stream.valid & dut.o_stream.ready,
                dut.o_stream.payload)
            if i_ok:
                k += 1
            if o_ok:
                outs.append([int(v) for v in payload])

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return outs
