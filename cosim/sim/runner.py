"""Build a unit's Verilog and run a cocotb testbench (:mod:`cosim.sim.tb`) on a simulator: one build and
one testbench runner for both units (``"fixed"``, the NMPU, and ``"fp16"``, the FP16 baseline unit).

Builds are cached per unit and configuration identity (plus simulator, fault and waveform option) under
``cosim.sim.toolchain.build_dir("cocotb-<sim>", ...)``: the Verilog is rewritten only when its text
changes, and the simulator build is skipped when a stamp of (Verilog text, build arguments) matches,
so a second run of the same configuration starts simulating at once. A file lock makes concurrent
runs of one configuration (pytest-xdist, two shells) wait for each other instead of racing.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from nmpu_model.golden.config import NMPUConfig

from .toolchain import build_dir, icarus_available, locked, setup_verilator_env

SIMULATORS = ("verilator", "icarus")
REPO = Path(__file__).resolve().parents[2]
#: the cocotb test module of each unit's random-vector testbench
TESTBENCHES = {"fixed": "cosim.sim.tb.nmpu", "fp16": "cosim.sim.tb.fp16"}


@dataclass
class Build:
    """A simulator build of one configuration."""

    sim: str
    folder: Path
    verilog: Path
    meta: dict
    seconds: float
    cached: bool
    waves: bool

    @property
    def top(self) -> str:
        return self.meta["top"]


@dataclass
class VerifyResult:
    """What one testbench run reports (read back from the result JSON the testbench writes)."""

    vectors: int
    mismatches: int
    cycles: int
    sim: str
    build: Build
    run_seconds: float
    waves: Path | None = None
    details: dict = field(default_factory=dict)

    def line(self) -> str:
        return f"vectors={self.vectors} mismatches={self.mismatches} cycles={self.cycles} sim={self.sim}"


# a gate-level netlist's tie cell leaves one of its two outputs open (PINMISSING); bits of one netlist
# bus feeding other bits of it look like a loop to Verilator (UNOPTFLAT, a speed warning); a cell library's
# own Verilog models (OSU 0.18 um) carry specify blocks with min:typ:max delays (timing checks, which a
# zero-delay simulation ignores), nets declared by use and a `timescale the netlist lacks
NETLIST_VERILATOR_ARGS = ["-Wno-PINMISSING", "-Wno-UNOPTFLAT", "-Wno-SPECIFYIGN", "-Wno-MINTYPMAXDLY",
                          "-Wno-IMPLICIT", "-Wno-TIMESCALEMOD"]


# cocotb drives every cycle from Python, so the simulator's own C++ speed hardly counts, while compiling it at
# Verilator's default -Os is most of a build (measured: the three-lane BN FP16 unit builds in 43 s at -O0 against
# 129 s at -Os, and runs 1500 vectors in 23 s either way). The bulk harness, whose speed counts, keeps -O2.
COCOTB_MAKE_OPT = "OPT_FAST=-O0 OPT_GLOBAL=-O0"


def netlist_identity(netlist: list[Path] | None) -> tuple[list[Path] | None, str]:
    """Resolved netlist paths and the suffix that keeps their build apart from the RTL's (by content)."""
    if not netlist:
        return None, ""
    paths = [Path(p).resolve() for p in netlist]
    return paths, "-netlist-" + hashlib.sha1("".join(p.read_text() for p in paths).encode()).hexdigest()[:16]


def run_testbench(test_module: str, b: Build, run_name: str, params: dict, seed: int,
                  waves: bool = False) -> tuple[dict, float, Path]:
    """Run a cocotb test module of :mod:`cosim.sim.tb` on a build; its parameters go through a JSON file.

    Returns the result the testbench wrote, the seconds it ran and its folder; a crashed simulation
    or a missing result is a ``RuntimeError`` with the log's tail.
    """
    from cocotb_tools.runner import get_runner

    from .tb import PARAMS_ENV

    run_dir = b.folder / "runs" / run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    result_file = run_dir / "result.json"
    result_file.unlink(missing_ok=True)
    params_file = run_dir / "params.json"
    params_file.write_text(json.dumps({**params, "result": str(result_file)}, indent=2))
    env = {PARAMS_ENV: str(params_file), "PYTHONPATH": os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    if b.sim == "verilator":
        setup_verilator_env()
    t0 = time.perf_counter()
    log = run_dir / "sim.log"
    try:
        get_runner(b.sim).test(test_module=test_module, hdl_toplevel=b.top, hdl_toplevel_lang="verilog",
                               build_dir=b.folder / "sim", test_dir=run_dir, extra_env=env, seed=seed, waves=waves,
                               results_xml=str(run_dir / "results.xml"), log_file=log,
                               **({"timescale": ("1ns", "1ps")} if b.sim == "icarus" else {}))
    except SystemExit:
        pass                                 # a failing test: the result file tells what happened
    run_s = time.perf_counter() - t0
    if not result_file.exists():
        raise RuntimeError(f"the {b.sim} simulation wrote no result ({result_file}); log {log}:\n{_tail(log)}")
    return json.loads(result_file.read_text()), run_s, run_dir


def find_waves(run_dir: Path, top: str) -> Path | None:
    """The waveform a traced run wrote, if any (Verilator: ``dump.*``, Icarus: ``<top>.fst``)."""
    return next((run_dir / n for n in ("dump.fst", "dump.vcd", f"{top}.fst") if (run_dir / n).exists()), None)


def _tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log written)"


def check_sim(sim: str) -> str:
    """A known simulator name (bad input: ``ValueError``)."""
    if sim not in SIMULATORS:
        raise ValueError(f"--sim must be one of {', '.join(SIMULATORS)}, not {sim!r}")
    return sim


def require_sim(sim: str) -> None:
    """The simulator is installed (the environment, checked after the input: ``RuntimeError``)."""
    if sim == "icarus" and not icarus_available():
        raise RuntimeError("--sim icarus: iverilog/vvp are not installed: run `make install` "
                           "(it installs Debian's iverilog)")


def fst_supported() -> bool:
    """Verilator's FST writer needs the lz4 headers (Debian: liblz4-dev); without them we trace VCD."""
    res = subprocess.run(["c++", "-E", "-x", "c++", "-"], input="#include <lz4.h>\n", capture_output=True, text=True)
    return res.returncode == 0


def _cocotb_libs_key() -> str:
    """Verilator's cocotb simulator links cocotb's VPI library by its absolute path in the environment that built it
    (an ELF run path): a build folder per cocotb installation, so that a cache shared by several checkouts or virtual
    environments never serves a binary whose library went with a removed environment."""
    import cocotb
    libs = str(Path(cocotb.__file__).resolve().parent / "libs")
    return hashlib.sha1(libs.encode()).hexdigest()[:8]


def build(config: NMPUConfig, sim: str = "verilator", *, fault: str | None = None, waves: bool = False,
          netlist: list[Path] | None = None, unit: str = "fixed", trace: str | None = None) -> Build:
    """Export unit ``unit``'s Verilog for ``config`` and build the simulator (cached).

    Parameters
    ----------
    config : NMPUConfig
        The configuration.
    sim : {"verilator", "icarus"}
        Simulator.
    fault : str or None
        A deliberately broken RTL variant (see the unit's ``FAULTS``), for tests of the verification.
    waves : bool
        Build with FST tracing (Verilator: a separate build).
    trace : {"fst", "vcd"} or None
        With ``waves``, the trace format (default: FST where Verilator can write it, else VCD).
    netlist : list of paths, optional
        Simulate these Verilog files (a gate-level netlist of ``config``'s unit and its cell
        models, from ``nmpu synth``) instead of the RTL; the ports are the RTL's.
    """
    from cocotb_tools.runner import Verilog, VerilatorControlFile, get_runner

    from rtl.export import WAIVER_FILE, unit as unit_spec, write_verilog

    check_sim(sim)
    require_sim(sim)
    top = unit_spec(unit).top
    if trace not in (None, "fst", "vcd"):
        raise ValueError(f"trace must be fst or vcd, not {trace!r}")
    fmt = (trace or ("fst" if fst_supported() else "vcd")) if waves and sim == "verilator" else ""
    netlist, suffix = netlist_identity(netlist)
    ident = ((f"{unit}-" if unit != "fixed" else "") + config.identity() + (f"-fault-{fault}" if fault else "")
             + (f"-{fmt}" if fmt else "") + suffix + (f"-{_cocotb_libs_key()}" if sim == "verilator" else ""))
    folder = build_dir(f"cocotb-{sim}", ident)
    with locked(folder):
        t0 = time.perf_counter()
        verilog = folder / f"{top}.v"
        meta = write_verilog(config, verilog, fault=fault, unit_name=unit)
        (folder / "config.toml").write_text(config.to_toml())
        sim_dir = folder / "sim"
        if sim == "verilator":
            setup_verilator_env()
            # the waiver file is the same one `nmpu export` lints with; no -Wno-fatal
            sources = [VerilatorControlFile(WAIVER_FILE)] + [Verilog(p) for p in (netlist or [verilog])]
            args = ["-O2", "--x-assign", "fast", "--x-initial", "fast"]
            if waves:
                args += ["--trace-fst", "--trace-structs"] if fmt == "fst" else ["--trace-structs"]
            if netlist:
                args += NETLIST_VERILATOR_ARGS
        else:
            sources, args = [Verilog(p) for p in (netlist or [verilog])], []
        text = "".join(p.read_text() for p in (netlist or [verilog]))
        make_opt = COCOTB_MAKE_OPT if sim == "verilator" else ""
        stamp = hashlib.sha1((text + WAIVER_FILE.read_text() + repr(args) + sim + make_opt).encode()).hexdigest()
        stamp_file = sim_dir / ".nmpu-stamp"
        binary = sim_dir / (top if sim == "verilator" else "sim.vvp")
        cached = stamp_file.exists() and stamp_file.read_text() == stamp and binary.exists()
        if not cached:
            runner = get_runner(sim)
            log = folder / "build.log"
            # Amaranth's Verilog has no `timescale; Icarus would default to 1 s precision
            kw = {"timescale": ("1ns", "1ps")} if sim == "icarus" else {}
            saved = os.environ.get("MAKEFLAGS")
            os.environ["MAKEFLAGS"] = f"{saved or ''} {make_opt}".strip()    # make reads its variables from here
            try:
                runner.build(sources=sources, hdl_toplevel=top, build_dir=sim_dir, build_args=args, waves=waves,
                             always=True, log_file=log, **kw)
            except Exception as e:           # whatever the runner raises: a failed build, with the log's tail
                raise RuntimeError(f"{sim} build of {verilog} failed ({e}); log {log}:\n{_tail(log)}") from None
            finally:
                if saved is None:
                    os.environ.pop("MAKEFLAGS", None)
                else:
                    os.environ["MAKEFLAGS"] = saved
            stamp_file.write_text(stamp)
        return Build(sim, folder, verilog, meta, time.perf_counter() - t0, cached, waves)


def verify(config: NMPUConfig, vectors: int = 2000, seed: int = 1, sim: str = "verilator", *,
           waves: bool = False, fault: str | None = None, tag: str | None = None,
           p_valid: float = 0.8, p_ready: float = 0.7, netlist: list[Path] | None = None,
           unit: str = "fixed", stimulus: str = "random", trace: str | None = None) -> VerifyResult:
    """Build (cached) and run unit ``unit``'s cocotb testbench; every output beat is checked against
    ``nmpu_model.apply`` (with the unit's ``arith``: ``fixed`` or ``fp16``).

    ``p_valid`` and ``p_ready`` are the per-cycle probabilities of offering an input beat and of
    taking an output beat (1.0 and 1.0: full throughput, to measure the initiation interval).
    ``netlist`` simulates a gate-level netlist instead of the RTL (see :func:`build`); ``trace`` picks
    the waveform format with ``waves`` (see :func:`build`).
    ``stimulus`` (FP16 unit only): ``"random"`` or ``"ties"`` (coefficients that make binary16 ties
    at output rounding boundaries, :func:`cosim.sim.tb.fp16.tie_coef_values`).
    Returns the counts the testbench wrote; a crashed simulation or a missing result is a ``RuntimeError``.
    """
    from rtl.export import unit as unit_spec

    from .tb.fp16 import STIMULI

    unit_spec(unit)
    if isinstance(vectors, bool) or not isinstance(vectors, int) or vectors < 1:
        raise ValueError(f"--vectors must be a positive integer, not {vectors!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, not {seed!r}")
    if stimulus not in STIMULI or (stimulus != "random" and unit != "fp16"):
        raise ValueError(f"stimulus must be one of {', '.join(STIMULI)} (ties: FP16 unit only), not {stimulus!r}")
    b = build(config, sim, fault=fault, waves=waves, netlist=netlist, unit=unit, trace=trace)
    params = {"config": str(b.folder / "config.toml"), "seed": seed, "vectors": vectors,
              "p_valid": p_valid, "p_ready": p_ready, "stimulus": stimulus}
    res, run_s, run_dir = run_testbench(TESTBENCHES[unit], b, tag or f"seed{seed}-n{vectors}-pid{os.getpid()}",
                                        params, seed, waves)
    if "mismatches" not in res and not res.get("error"):
        res["error"] = f"the testbench ended without counts; log {run_dir / 'sim.log'}"
    return VerifyResult(vectors=int(res.get("vectors", 0)), mismatches=int(res.get("mismatches", 0)),
                        cycles=int(res.get("cycles", 0)), sim=sim, build=b, run_seconds=run_s,
                        waves=find_waves(run_dir, b.top) if waves else None, details=res)
