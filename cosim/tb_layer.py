"""cocotb mode of the network co-simulation: stream one layer's stimulus file through the NMPU.

The simulator side (:func:`layer_stream`, a cocotb test) reuses :mod:`cosim.tb_nmpu`'s components
(``Harness`` clock loop, ``StreamDriver``, ``StreamMonitor`` with its stream-rule check,
``ConfigWriter``) with the stall generator of the C++ harness (:class:`cosim.layer_stream.XorShift`),
and runs the same schedule as ``cosim/harness/bulk_main.cpp``: per column block, the coefficient
writes, then the beats, then the drain. It reads the binary stimulus file that the bulk mode reads
and writes the output codes in the same binary form, so the two modes are compared bit for bit
(and, for one seed, cycle for cycle). The comparison with the golden model is done by the caller
on whole arrays (:mod:`cosim.cosim_net`).

The host side (:func:`run_layer`) builds the NMPU with :func:`cosim.runner.build` (the build the
random-vector suite uses, cached) and runs this module as the test module.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

PARAMS_ENV = "NMPU_LAYER_PARAMS"
STUCK = 100000                               # cycles without a handshake that end a run as a deadlock
_BUILDS: dict = {}                           # per process: (identity, fault, waves) -> cosim.runner.Build


async def stream_layer(dut: Any, iface: Any, stim_file: str, seed: int, thr_valid: int, thr_ready: int) -> dict:
    """Drive the stimulus through ``dut``; return counts and the output codes ``(beats, lanes)``."""
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import FallingEdge

    from .layer_stream import XorShift, read_stimulus
    from .tb_nmpu import ConfigWriter, Harness, StreamDriver, StreamMonitor

    lanes, blocks, codes, groups = read_stimulus(stim_file)
    if lanes != iface.lanes:
        raise RuntimeError(f"stimulus has {lanes} lanes, the unit {iface.lanes}")
    rng = XorShift(seed)
    # thresholds as probabilities: random() < p iff u < threshold (XorShift.threshold)
    p_valid, p_ready = thr_valid / (1 << 24), thr_ready / (1 << 24)
    h = Harness(dut, iface)
    drv = StreamDriver(h, rng, p_valid)
    mon = StreamMonitor(h, rng, p_ready)
    wr = ConfigWriter(h, ["scale", "offset", "bn_scale", "bn_offset"], iface.out_frac_init)
    h.components = [wr, drv, mon]          # the draw order of the C++ harness: driver, then monitor

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for sig in (dut.i_stream__valid, dut.o_stream__ready, dut.coef__en, dut.out_frac__en):
        sig.value = 0
    dut.rst.value = 1
    await FallingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

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


try:
    import cocotb as _cocotb
except ImportError:  # the host side needs no cocotb import
    _cocotb = None

if _cocotb is not None and os.environ.get(PARAMS_ENV):
    @_cocotb.test()
    async def layer_stream(dut) -> None:
        """One layer's stimulus file through the NMPU; outputs and counts to files."""
        from nmpu_model.config import load_config
        from rtl.nmpu import interface

        p = json.loads(Path(os.environ[PARAMS_ENV]).read_text())
        iface = interface(load_config(p["config"]))
        result: dict = {"error": None}
        try:
            r = await stream_layer(dut, iface, p["stim"], int(p["seed"]), int(p["thr_valid"]), int(p["thr_ready"]))
            r.pop("out").astype("<i4").tofile(p["out"])
            result.update(r)
        except Exception as e:               # a crashed testbench is a failed run, said so
            result["error"] = f"{type(e).__name__}: {e}"
        finally:
            Path(p["result"]).write_text(json.dumps(result, indent=2, default=float) + "\n")
        assert result["error"] is None, result["error"]


def build_cached(config: Any, *, fault: str | None = None, waves: bool = False):
    """:func:`cosim.runner.build` once per process and configuration (its Verilog export alone takes ~1 s)."""
    from .runner import build

    key = (config.identity(), fault, waves)
    if key not in _BUILDS:
        _BUILDS[key] = build(config, "verilator", fault=fault, waves=waves)
    return _BUILDS[key]


def run_layer(codes: np.ndarray, coeffs: Mapping[str, np.ndarray], out_frac: int, config: Any, *,
              seed: int = 1, p_valid: float = 0.8, p_ready: float = 0.7, fault: str | None = None,
              waves: bool = False, tag: str = "layer"):
    """Stream one layer through the NMPU in cocotb on Verilator (build cached, shared with ``nmpu verify``).

    Same arguments and result as :func:`cosim.bulk.run_layer`; ``waves`` records the whole run
    (cocotb's Verilator trace has no window).
    """
    from cocotb_tools.runner import get_runner

    from .layer_stream import StreamResult, XorShift, plan, write_stimulus
    from .runner import REPO, TOP
    from .toolchain import setup_verilator_env

    stim = plan(codes, coeffs, out_frac, config)
    b = build_cached(config, fault=fault, waves=waves)
    run_dir = b.folder / "runs" / f"{tag}-pid{os.getpid()}"
    run_dir.mkdir(parents=True, exist_ok=True)
    files = {k: run_dir / f"{k}.{ext}" for k, ext in (("stim", "bin"), ("out", "bin"), ("result", "json"))}
    for f in files.values():
        f.unlink(missing_ok=True)
    write_stimulus(stim, files["stim"])
    params = {"config": str(b.folder / "config.toml"), "seed": int(seed), "thr_valid": XorShift.threshold(p_valid),
              "thr_ready": XorShift.threshold(p_ready), **{k: str(v) for k, v in files.items()}}
    params_file = run_dir / "params.json"
    params_file.write_text(json.dumps(params, indent=2))
    env = {PARAMS_ENV: str(params_file), "PYTHONPATH": os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    setup_verilator_env()
    log = run_dir / "sim.log"
    t0 = time.perf_counter()
    try:
        get_runner("verilator").test(test_module="cosim.tb_layer", hdl_toplevel=TOP, hdl_toplevel_lang="verilog",
                                     build_dir=b.folder / "sim", test_dir=run_dir, extra_env=env, seed=int(seed),
                                     waves=waves, results_xml=str(run_dir / "results.xml"), log_file=log)
    except SystemExit:
        pass                                 # the result file tells what happened
    secs = time.perf_counter() - t0
    if not files["result"].exists():
        tail = log.read_text()[-3000:] if log.exists() else ""
        raise RuntimeError(f"the cocotb layer run wrote no result ({files['result']}); log {log}:\n{tail}")
    res = json.loads(files["result"].read_text())
    if res.get("error"):
        raise RuntimeError(f"the cocotb layer run failed: {res['error']} (log {log})")
    out = np.fromfile(files["out"], dtype="<i4")
    wave = next((run_dir / n for n in ("dump.fst", "dump.vcd", f"{TOP}.fst") if (run_dir / n).exists()), None)
    files["stim"].unlink(missing_ok=True)    # the stimulus can be large; the outputs stay for inspection
    return StreamResult(outputs=stim.unpack(out), cycles=int(res["cycles"]), seconds=secs,
                        sim_seconds=float(res["sim_seconds"]), protocol_errors=int(res["protocol_errors"]),
                        first_error=res["first_error"], waves=wave, mode="cocotb")
