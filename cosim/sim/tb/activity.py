"""cocotb test for switching activity: one block of a layer streamed through a unit at full throughput.

Either unit (the NMPU or the FP16 unit; same ports): the coefficients of up to ``rtl.columns`` columns
are written, then every sample's codes stream in lane group by lane group with ``valid`` and ``ready``
always high (one value per lane and cycle: the operating point that energy per value is quoted at).
Every output beat is checked against the unit's model, so the activity belongs to a run that computed
the unit bit for bit. The result holds the simulation times at which streaming started and ended:
the host counts toggles in that window only (the coefficient loading is not the steady state).

The stimulus is an ``.npz`` (written by :mod:`cosim.sim.activity`): ``codes`` (samples, columns),
per coefficient ``raw_<name>`` (bits written) and ``value_<name>`` (what the model takes), ``out_frac``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import register
from .components import StreamTestbench


async def activity_stream(dut: Any, p: dict) -> dict:
    """Load one layer block's coefficients, then stream its codes at full throughput; all outputs checked."""
    from cocotb.utils import get_sim_time

    from nmpu_model.golden.config import load_config
    from rtl import fp16_unit, nmpu

    config = load_config(p["config"])
    data = np.load(p["stimulus"])
    if p["unit"] == "fp16":
        from .fp16 import fp16_model
        iface, model, lat = nmpu.interface(config, coef_bits=16), fp16_model(config), fp16_unit.latency(config)
    else:
        from .nmpu import nmpu_model
        iface, model, lat = nmpu.interface(config), nmpu_model(config), nmpu.latency(config)
    names = config.coef_names
    codes = data["codes"]
    L = iface.lanes
    n, cols = codes.shape
    tb = StreamTestbench(dut, iface, model, names, config.output.frac, lat, np.random.default_rng(0), 1.0, 1.0)
    await tb.reset()
    writes: list[tuple] = [("coef", sel, c, int(data[f"raw_{name}"][c]), int(data[f"value_{name}"][c]))
                           for sel, name in enumerate(names) for c in range(cols)]
    writes.append(("frac", int(data["out_frac"])))
    await tb.load_layer(writes)
    for _ in range(lat + 2):                  # the last write lands before the first beat
        await tb.cycle()
    beats = [(tuple(int(v) for v in codes[i, g * L:(g + 1) * L]), g) for i in range(n) for g in range(cols // L)]
    cycle0, t0 = tb.h.cycle, get_sim_time("ps")
    await tb.stream(beats)
    res = tb.result()
    res.update(window_ps=[t0, get_sim_time("ps")], stream_cycles=tb.h.cycle - cycle0, beats=len(beats))
    return res


register(activity_stream)
