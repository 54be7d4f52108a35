"""cocotb mode of the network co-simulation, host side: one layer through the NMPU in cocotb on Verilator.

The simulator side is :mod:`cosim.sim.tb.layer`; the stimulus file is the bulk mode's
(:mod:`cosim.sim.layer_stream`), so both modes are compared bit for bit and cycle for cycle.
The build is :func:`cosim.sim.runner.build`'s, shared with ``nmpu verify``.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .layer_stream import StreamResult, XorShift, plan, write_stimulus
from .runner import Build, build, find_waves, run_testbench

_BUILDS: dict = {}                           # per process: (identity, fault, waves) -> Build


def build_cached(config: Any, *, fault: str | None = None, waves: bool = False) -> Build:
    """:func:`cosim.sim.runner.build` once per process and configuration (its Verilog export alone takes ~1 s)."""
    key = (config.identity(), fault, waves)
    if key not in _BUILDS:
        _BUILDS[key] = build(config, "verilator", fault=fault, waves=waves)
    return _BUILDS[key]


def run_layer(codes: np.ndarray, coeffs: Mapping[str, np.ndarray], out_frac: int, config: Any, *,
              seed: int = 1, p_valid: float = 0.8, p_ready: float = 0.7, fault: str | None = None,
              waves: bool = False, tag: str = "layer"):
    """Stream one layer through the NMPU in cocotb on Verilator (build cached, shared with ``nmpu verify``).

    Same arguments and result as :func:`cosim.sim.bulk.run_layer`; ``waves`` records the whole run
    (cocotb's Verilator trace has no window).
    """
    stim = plan(codes, coeffs, out_frac, config)
    b = build_cached(config, fault=fault, waves=waves)
    with tempfile.TemporaryDirectory(prefix="nmpu-layer-") as tmp:
        files = {k: Path(tmp) / f"{k}.bin" for k in ("stim", "out")}
        write_stimulus(stim, files["stim"])
        params = {"config": str(b.folder / "config.toml"), "seed": int(seed),
                  "thr_valid": XorShift.threshold(p_valid), "thr_ready": XorShift.threshold(p_ready),
                  **{k: str(v) for k, v in files.items()}}
        res, secs, run_dir = run_testbench("cosim.sim.tb.layer", b, f"{tag}-pid{os.getpid()}", params, int(seed),
                                           waves=waves)
        if res.get("error"):
            raise RuntimeError(f"the cocotb layer run failed: {res['error']} (log {run_dir / 'sim.log'})")
        out = np.fromfile(files["out"], dtype="<i4")
    wave = find_waves(run_dir, b.top) if waves else None
    return StreamResult(outputs=stim.unpack(out), cycles=int(res["cycles"]), seconds=secs,
                        sim_seconds=float(res["sim_seconds"]), protocol_errors=int(res["protocol_errors"]),
                        first_error=res["first_error"], waves=wave, mode="cocotb")
