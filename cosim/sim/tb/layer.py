"""cocotb mode of the network co-simulation: stream one layer's stimulus file through the NMPU.

The simulator side (:func:`layer_stream`, a cocotb test) reuses :mod:`cosim.sim.tb.components`
(``Harness`` clock loop, ``StreamDriver``, ``StreamMonitor`` with its stream-rule check,
``ConfigWriter``) with the stall generator of the C++ harness (:class:`cosim.sim.layer_stream.XorShift`),
and runs the same schedule as ``cosim/sim/harness/bulk_main.cpp``: per column block, the coefficient
writes, then the beats, then the drain. It reads the binary stimulus file that the bulk mode reads
and writes the output codes in the same binary form, so the two modes are compared bit for bit
(and, for one seed, cycle for cycle). The comparison with the golden model is done by the caller
on whole arrays (:mod:`cosim.sim.network`).

The host side is :func:`cosim.sim.cocotb_mode.run_layer`.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from nmpu_model.golden.config import COEF_NAMES

from . import register

STUCK = 100000                               # cycles without a handshake that end a run as a deadlock


async def stream_layer(dut: Any, iface: Any, stim_file: str, seed: int, thr_valid: int, thr_ready: int) -> dict:
    """Drive the stimulus through ``dut``; return counts and the output codes ``(beats, lanes)``."""

    from ..layer_stream import XorShift, read_stimulus
    from .components import ConfigWriter, Harness, StreamDriver, StreamMonitor

    lanes, blocks, codes, groups = read_stimulus(stim_file)
    if lanes != iface.lanes:
        raise RuntimeError(f"stimulus has {lanes} lanes, the unit {iface.lanes}")
    rng = XorShift(seed)
    # thresholds as probabilities: random() < p iff u < threshold (XorShift.threshold)
    p_valid, p_ready = thr_valid / (1 << 24), thr_ready / (1 << 24)
    h = Harness(dut, iface)
    drv = StreamDriver(h, rng, p_valid)
    mon = StreamMonitor(h, rng, p_ready)
    wr = ConfigWriter(h, list(COEF_NAMES), iface.out_frac_init)
    h.components = [wr, drv, mon]          # the draw order of the C++ harness: driver, then monitor

    await h.start()

    total = int(codes.shape[0])
    out = np.zeros((total, lanes), dtype=np.int32)
    n_out = 0
    extra = 0
    accepted = 0
    # the deadlock guard of the C++ harness, cycle for cycle: a unit that stops taking or giving beats
    # ends the run as an error instead of hanging it
    last_progress = 0
    error = None

    def on_accept(beat: Any) -> None:
        nonlocal accepted
        accepted += 1

    drv.on_accept = on_accept

    def stuck() -> bool:
        nonlocal error
        if h.cycle - last_progress <= STUCK:
            return False
        error = (f"deadlock: no beat accepted or delivered for {STUCK} cycles ({total - accepted} inputs not "
                 f"accepted, {n_out} of {total} outputs, cycle {h.cycle})")
        return True

    async def step() -> None:
        nonlocal last_progress
        before = (accepted, n_out, extra)
        await h.step()
        collect()
        if (accepted, n_out, extra) != before:
            last_progress = h.cycle - 1

    def collect() -> None:
        nonlocal n_out, extra
        while mon.beats:
            _, got = mon.beats.popleft()
            if n_out < total:
                out[n_out] = got
                n_out += 1
            else:
                extra += 1

    t0 = time.perf_counter()
    start = 0
    dead = False
    for writes, frac, nb in blocks:
        if dead:
            break
        wr.queue.extend(("coef", sel, addr, data, data) for sel, addr, data in writes)
        if frac is not None:
            wr.queue.append(("frac", int(frac)))
        while not wr.idle:
            await step()
        drv.queue.extend(zip(map(tuple, codes[start:start + nb].tolist()), groups[start:start + nb].tolist()))
        start += nb
        last_progress = h.cycle
        while (drv.queue or drv.current is not None) and not dead:
            await step()
            dead = stuck()
    while n_out < total and not dead:    # drain
        await step()
        dead = stuck()
    elapsed = time.perf_counter() - t0
    errors = list(mon.protocol_errors) + ([f"{extra} output beats with no input beat in flight"] if extra else []) \
        + ([error] if error else [])
    return {"cycles": h.cycle, "beats": total, "outputs": n_out, "protocol_errors": len(errors),
            "first_error": errors[0] if errors else None, "sim_seconds": elapsed, "out": out}


async def layer_stream(dut: Any, p: dict) -> dict:
    """One layer's stimulus file through the NMPU; the output codes to ``p["out"]``, counts in the result."""
    from nmpu_model.golden.config import load_config
    from rtl.nmpu import interface

    iface = interface(load_config(p["config"]))
    r = await stream_layer(dut, iface, p["stim"], int(p["seed"]), int(p["thr_valid"]), int(p["thr_ready"]))
    r.pop("out").astype("<i4").tofile(p["out"])
    return r


register(layer_stream)
