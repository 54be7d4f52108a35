"""Power, performance and area of a unit in a cell library with timing and power (OSU 0.18 um, :mod:`.osu018`).

Steps, one function each:

1. :func:`map_netlist`: Yosys maps the unit onto the Liberty library (flip-flops with ``dfflibmap``, the
   logic with timing-driven ABC, ``abc -liberty LIB -D <period>``). The coefficient memories are not
   gates: each becomes an instance of a memory macro (``NMPU_RAM_<width>x<depth>``) with a behavioural
   Verilog model for simulation and a Liberty timing model for OpenSTA (:func:`memory_macros`), the way
   an SRAM macro enters a real flow. The netlist is structural Verilog that OpenSTA reads and that the
   gate-level simulation runs with the library's own cell models (``nmpu verify --gate-level --library
   osu018``), so every figure belongs to a netlist that computes the unit bit for bit.
2. :func:`timing`: OpenSTA on that netlist: the smallest clock period the unit meets (period minus worst
   slack; register-to-register, input-to-register and register-to-output paths, with zero external
   input and output delay, ideal clock), the worst path's start and end points, fmax.
3. :func:`power`: OpenSTA's ``report_power`` at a stated clock with per-net switching activity
   (:class:`Activity`: toggles per clock cycle and the fraction of time high, measured by simulating the
   netlist, :mod:`cosim.sim.activity`), or one global activity for every net. Memory macros carry no power
   model: their power is left out, like their area (they are reported as bits).

The memory macros launch read data at the clock edge and sample their inputs at the next one with zero
setup time: the memory's access time belongs to the SRAM that would hold the coefficients, which this
flow does not model (both units read the same way, so the comparison stays on equal footing).
"""
from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from nmpu_model.golden.config import NMPUConfig

from . import osu018
from .flow import gate_level_steps, run_yosys, unit_verilog

__all__ = ["LibertyNetlist", "Activity", "map_netlist", "timing", "power", "netlist_dict", "sta_command",
           "DEFAULT_TARGET_NS", "ABC_SCRIPT", "RAM_PREFIX"]

RAM_PREFIX = "NMPU_RAM_"
RAM_MODELS = "nmpu_rams.v"
RAM_LIBERTY = "nmpu_rams.lib"
NETLIST = "netlist_osu018.v"
#: the clock period ABC's timing-driven mapping aims at (ns): tight enough that ABC maps for delay
DEFAULT_TARGET_NS = 2.0
#: Yosys' own ABC script for ``-liberty -D`` (structural choices, delay-oriented mapping, retiming of nothing:
#: the flip-flops stay outside ABC), then what a timing-driven flow does next and Yosys' script leaves out:
#: buffer trees for high-fanout nets and gate sizing against the target (``buffer -p``, ``upsize``,
#: ``dnsize``). Without them one X1 inverter drove the FP16 unit's 186 pipeline enables: 15.8 ns of its 26 ns.
ABC_SCRIPT = ("+strash;&get,-n;&fraig,-x;&put;scorr;dc2;dretime;strash;&get,-n;&dch,-f;&nf,{D};&put;"
              "buffer,-p;upsize,{D};dnsize,{D};stime,-p")
_NOT_INSTALLED = "OpenSTA (`sta`, Debian package opensta) is not installed: run `make install`"


@dataclass
class LibertyNetlist:
    """A unit mapped onto the Liberty library: the files and the area."""

    unit: str
    top: str
    lanes: int
    latency: int
    folder: Path
    netlist: Path                 # structural Verilog: library cells and memory macros
    liberty: Path                 # the cell library's Liberty file
    macro_liberty: Path           # the memory macros' timing models
    models: list[Path]            # for simulation: the library's cell models and the macros' models
    area: float                   # µm², library cells only (memories excluded)
    cells: int
    cells_by_type: dict[str, int]
    flip_flops: int
    memory_bits: int
    seconds: float


@dataclass
class Activity:
    """Switching activity of a netlist's nets, from a simulation.

    Attributes
    ----------
    nets : dict
        ``{net name (as the netlist names it, bus bits as name[i]): (toggles per clock cycle, fraction of
        time high)}``.
    source : str
        Where it came from (``"simulation of ... on ..."``), printed in every report.
    cycles : int
        Clock cycles of the window the toggles were counted in.
    values : int
        Output values the unit produced in that window (for energy per value).
    """

    nets: dict[str, tuple[float, float]]
    source: str
    cycles: int
    values: int

    def scaled(self, factor: float) -> "Activity":
        """The same activity with every toggle rate multiplied by ``factor`` (duty kept)."""
        return Activity({k: (a * factor, d) for k, (a, d) in self.nets.items()}, f"{self.source}, toggle rates x{factor:g}",
                        self.cycles, self.values)


# ---- step 1: mapping -----------------------------------------------------------------------------
@dataclass
class Timing:
    """The worst path of a netlist at a clock (OpenSTA ``report_checks``): ``critical_path_ns`` is the
    smallest period the unit meets (period - worst slack), ``fmax_mhz`` its inverse; the files it came from."""

    netlist: str
    liberty: str
    macro_liberty: str
    library: str
    period_ns: float
    slack_ns: float
    critical_path_ns: float
    fmax_mhz: float
    startpoint: str
    endpoint: str
    sta_script: str
    sta_log: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Power:
    """OpenSTA ``report_power`` at ``clock_mhz`` (mW): ``mw`` the total, its internal, switching and leakage
    parts; ``activity`` where the toggle rates came from (``activity_nets``: how many traced nets matched);
    ``energy_pj_per_value`` = power / (clock x lanes), one value per lane and cycle at full throughput."""

    mw: float
    internal_mw: float
    switching_mw: float
    leakage_mw: float
    clock_mhz: float
    activity: str
    activity_nets: str | None
    energy_pj_per_value: float

    def to_dict(self) -> dict:
        return asdict(self)


def _map_script(top: str, target_ps: int) -> str:
    return "\n".join([
        *gate_level_steps(top),                   # memories stay $mem_v2 cells (-> macros)
        # the library has one plain positive-edge flip-flop: enables and resets become logic
        "dfflegalize -cell $_DFF_P_ 01",
        f"dfflibmap -liberty {osu018.LIBERTY}",
        f"abc -liberty {osu018.LIBERTY} -D {target_ps} -script {ABC_SCRIPT}",
        "opt_clean",
        "write_json mapped.json",
    ]) + "\n"


def _bits(p: str) -> int:
    return int(p, 2)


def _check_memory(name: str, c: dict) -> tuple[int, int, int]:
    """(width, depth, address bits) of a ``$mem_v2`` cell the macros model: one synchronous,
    non-transparent read port without reset and one synchronous write port on the same clock."""
    p = c["parameters"]
    want = {"RD_PORTS": 1, "WR_PORTS": 1, "RD_CLK_ENABLE": 1, "RD_CLK_POLARITY": 1, "WR_CLK_ENABLE": 1,
            "WR_CLK_POLARITY": 1, "RD_TRANSPARENCY_MASK": 0, "OFFSET": 0}
    bad = [k for k, v in want.items() if _bits(p[k]) != v]
    conn = c["connections"]
    if conn["RD_ARST"] != ["0"] or conn["RD_SRST"] != ["0"] or conn["RD_CLK"] != conn["WR_CLK"]:
        bad.append("read reset or clocks")
    if set(p["INIT"]) - {"0", "x"}:
        bad.append("INIT")
    if bad:
        raise RuntimeError(f"memory {name}: not a memory the macro models cover ({', '.join(bad)})")
    return _bits(p["WIDTH"]), _bits(p["SIZE"]), _bits(p["ABITS"])


_SAFE = re.compile(r"[^A-Za-z0-9_]")


def _safe_names(names: list[str], taken: set[str]) -> dict[str, str]:
    """Plain Verilog identifiers for netlist names (flattened names hold dots: escaped identifiers,
    which simulators and OpenSTA spell differently); unique against ``taken``."""
    out = {}
    for n in names:
        base = _SAFE.sub("_", n.lstrip("\\$")) or "n"
        if base[0].isdigit():
            base = "n_" + base
        cand, k = base, 1
        while cand in taken:
            cand, k = f"{base}_{k}", k + 1
        taken.add(cand)
        out[n] = cand
    return out


def memory_macros(doc: dict, top: str) -> dict[str, tuple[int, int, int]]:
    """Turn every ``$mem_v2`` cell of a Yosys JSON netlist into a macro instance, in place.

    Ports are bit-blasted (``RD_ADDR_3``, ``RD_DATA_0``, ...) so the Liberty models need no bus types.
    Also gives every net and cell a plain identifier. Returns ``{macro name: (width, depth, abits)}``.
    """
    mod = doc["modules"][top]
    macros: dict[str, tuple[int, int, int]] = {}
    for name, c in mod["cells"].items():
        if c["type"] != "$mem_v2":
            continue
        w, d, a = _check_memory(name, c)
        macro = f"{RAM_PREFIX}{w}x{d}"
        macros[macro] = (w, d, a)
        conn, dirs = {}, {}
        for port, direction in (("RD_CLK", "input"), ("RD_EN", "input"), ("RD_ADDR", "input"),
                                ("RD_DATA", "output"), ("WR_EN", "input"), ("WR_ADDR", "input"), ("WR_DATA", "input")):
            bits = c["connections"][port]
            for i, b in enumerate(bits):
                pn = port if port in ("RD_CLK", "RD_EN") else f"{port}_{i}"
                conn[pn], dirs[pn] = [b], direction
        c.update(type=macro, parameters={}, attributes={}, connections=conn, port_directions=dirs)
    ports = set(mod["ports"])
    # a flip-flop is named after the signal it holds (its Q net's best name: `o_stream__payload_3_reg`), so
    # a timing report's start and end points say which register they are
    best: dict[Any, tuple] = {}
    for name, v in mod["netnames"].items():
        for i, b in enumerate(v["bits"]):
            key = (v.get("hide_name", 0), "$" in name, name not in ports, len(name))
            if b not in best or key < best[b][0]:
                best[b] = (key, f"{name}_{i}" if len(v["bits"]) > 1 else name)
    wanted = {n: (best[c["connections"]["Q"][0]][1] + "_reg" if c["type"] == osu018.FLOP
                  and c["connections"]["Q"][0] in best else n) for n, c in mod["cells"].items()}
    rename = _safe_names([n for n in mod["netnames"] if n not in ports], set(ports))
    mod["netnames"] = {rename.get(n, n): {**v, "hide_name": 0} for n, v in mod["netnames"].items()}
    cell_names = _safe_names(list(wanted.values()), set())
    mod["cells"] = {cell_names[wanted[n]]: v for n, v in mod["cells"].items()}
    return macros


def _ram_model(name: str, w: int, d: int, a: int) -> str:
    """Behavioural model of one macro: the ``$mem_v2`` semantics it replaces (read data registered,
    old data on a read of the address being written, per-bit write enable, contents start at zero)."""
    ports = ["RD_CLK", "RD_EN"] + [f"RD_ADDR_{i}" for i in range(a)] + [f"RD_DATA_{i}" for i in range(w)] \
        + [f"WR_EN_{i}" for i in range(w)] + [f"WR_ADDR_{i}" for i in range(a)] + [f"WR_DATA_{i}" for i in range(w)]
    cat = lambda p, n: "{" + ", ".join(f"{p}_{i}" for i in reversed(range(n))) + "}"   # noqa: E731
    lines = [f"module {name} ({', '.join(ports)});",
             "  input RD_CLK, RD_EN;",
             *(f"  input {p};" for p in ports if p.startswith(("RD_ADDR", "WR_"))),
             *(f"  output RD_DATA_{i};" for i in range(w)),
             f"  reg [{w - 1}:0] mem [0:{d - 1}];",
             f"  reg [{w - 1}:0] rd = {w}'d0;",
             f"  wire [{a - 1}:0] ra = {cat('RD_ADDR', a)};",
             f"  wire [{a - 1}:0] wa = {cat('WR_ADDR', a)};",
             f"  wire [{w - 1}:0] we = {cat('WR_EN', w)};",
             f"  wire [{w - 1}:0] wd = {cat('WR_DATA', w)};",
             "  integer k;",
             f"  initial for (k = 0; k < {d}; k = k + 1) mem[k] = {w}'d0;",
             "  always @(posedge RD_CLK) begin",
             "    if (RD_EN) rd <= mem[ra];",
             f"    for (k = 0; k < {w}; k = k + 1) if (we[k]) mem[wa][k] <= wd[k];",
             "  end",
             f"  assign {cat('RD_DATA', w)} = rd;",
             "endmodule"]
    return "\n".join(lines) + "\n"


def _ram_liberty(macros: dict[str, tuple[int, int, int]]) -> str:
    """Timing models of the macros: read data launched at the clock edge (zero delay), inputs sampled at
    the next edge (zero setup): the memory's own access time is not modelled (see the module doc)."""
    def inp(p: str) -> str:
        return (f"    pin({p}) {{ direction : input; capacitance : 0.005;\n"
                f"      timing() {{ related_pin : \"RD_CLK\"; timing_type : setup_rising;\n"
                f"        rise_constraint(scalar) {{ values(\"0.0\"); }} fall_constraint(scalar) {{ values(\"0.0\"); }} }} }}")

    def out(p: str) -> str:
        return (f"    pin({p}) {{ direction : output;\n"
                f"      timing() {{ related_pin : \"RD_CLK\"; timing_type : rising_edge;\n"
                f"        cell_rise(scalar) {{ values(\"0.0\"); }} cell_fall(scalar) {{ values(\"0.0\"); }}\n"
                f"        rise_transition(scalar) {{ values(\"0.1\"); }} fall_transition(scalar) {{ values(\"0.1\"); }} }} }}")
    cells = []
    for name, (w, _d, a) in sorted(macros.items()):
        pins = ["    pin(RD_CLK) { direction : input; clock : true; capacitance : 0.005; }", inp("RD_EN")]
        pins += [inp(f"RD_ADDR_{i}") for i in range(a)] + [out(f"RD_DATA_{i}") for i in range(w)]
        pins += [inp(f"{p}_{i}") for p in ("WR_EN", "WR_DATA") for i in range(w)]
        pins += [inp(f"WR_ADDR_{i}") for i in range(a)]
        cells.append(f"  cell({name}) {{\n    area : 0;\n    dont_use : true;\n" + "\n".join(pins) + "\n  }")
    return ("library(nmpu_rams) {\n  delay_model : table_lookup;\n  time_unit : \"1ns\";\n  voltage_unit : \"1V\";\n"
            "  current_unit : \"1uA\";\n  capacitive_load_unit(1, pf);\n  leakage_power_unit : \"1nW\";\n"
            "  nom_voltage : 1.8;\n  nom_temperature : 25;\n  nom_process : 1;\n"
            + "".join(f"  {k}_threshold_pct_{e} : {v};\n" for k, v in (("input", 50), ("output", 50))
                      for e in ("rise", "fall"))
            + "  slew_lower_threshold_pct_rise : 20;\n  slew_lower_threshold_pct_fall : 20;\n"
            "  slew_upper_threshold_pct_rise : 80;\n  slew_upper_threshold_pct_fall : 80;\n"
            + "\n".join(cells) + "\n}\n")


def map_netlist(config: NMPUConfig, unit: str = "fixed", out_dir: str | Path = "build/synth",
                target_ns: float = DEFAULT_TARGET_NS, notify: Callable[[str], None] | None = None,
                tag: str = "") -> LibertyNetlist:
    """Map unit ``unit`` of ``config`` onto the OSU 0.18 um library in ``out_dir/<unit><tag>-osu018/``.

    Writes ``netlist_osu018.v`` (structural: library cells and memory macros), ``nmpu_rams.v`` and
    ``nmpu_rams.lib`` (the macros' simulation and timing models) and a copy of the library's files.
    """
    if not (isinstance(target_ns, (int, float)) and math.isfinite(target_ns) and target_ns > 0):
        raise ValueError(f"--target-ns must be a positive number of ns, not {target_ns!r}")
    text, top, lat = unit_verilog(config, unit)
    folder = Path(out_dir) / f"{unit}{tag}-osu018"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{top}.v").write_text(text)
    shutil.copyfile(osu018.liberty(), folder / osu018.LIBERTY)   # Yosys from PyPI reads only below its folder
    (folder / osu018.MODELS).write_text(osu018.simulation_models())
    seconds = run_yosys(_map_script(top, round(target_ns * 1000)), folder, "yosys_osu018.log", notify)
    doc = json.loads((folder / "mapped.json").read_text())
    mod = doc["modules"][top]
    mem_bits = sum(_bits(c["parameters"]["WIDTH"]) * _bits(c["parameters"]["SIZE"])
                   for c in mod["cells"].values() if c["type"] == "$mem_v2")
    macros = memory_macros(doc, top)
    (folder / "netlist_in.json").write_text(json.dumps(doc))
    (folder / RAM_MODELS).write_text("".join(_ram_model(n, *m) for n, m in sorted(macros.items())))
    (folder / RAM_LIBERTY).write_text(_ram_liberty(macros))
    seconds += run_yosys(f"read_json netlist_in.json\nwrite_verilog -noattr -noexpr {NETLIST}\n", folder,
                         "yosys_write.log")
    areas = osu018.cell_areas()
    by_type: dict[str, int] = {}
    for c in mod["cells"].values():
        if not c["type"].startswith(RAM_PREFIX):
            by_type[c["type"]] = by_type.get(c["type"], 0) + 1
    unknown = sorted(set(by_type) - set(areas))
    if unknown:
        raise RuntimeError(f"{folder / 'mapped.json'}: cells not in {osu018.LIBERTY}: {', '.join(unknown)}")
    return LibertyNetlist(
        unit=unit, top=top, lanes=config.rtl.lanes, latency=lat, folder=folder, netlist=folder / NETLIST,
        liberty=folder / osu018.LIBERTY, macro_liberty=folder / RAM_LIBERTY,
        models=[folder / osu018.MODELS, folder / RAM_MODELS],
        area=sum(n * areas[t] for t, n in by_type.items()), cells=sum(by_type.values()),
        cells_by_type=dict(sorted(by_type.items(), key=lambda kv: -kv[1])),
        flip_flops=by_type.get(osu018.FLOP, 0), memory_bits=mem_bits, seconds=seconds)


# ---- OpenSTA -------------------------------------------------------------------------------------
def sta_command() -> str:
    exe = shutil.which("sta")
    if not exe:
        raise RuntimeError(_NOT_INSTALLED)
    return exe


def _sta_setup(n: LibertyNetlist, period_ns: float, spef: Path | None = None) -> str:
    """Read the netlist (and its wires' parasitics, ``spef``: a file in ``n.folder``) and set the clock."""
    return "\n".join([
        f"read_liberty {n.liberty.name}",
        f"read_liberty {n.macro_liberty.name}",
        f"read_verilog {n.netlist.name}",
        f"link_design {n.top}",
        *([f"read_spef {spef.name}"] if spef is not None else []),
        f"create_clock -name clk -period {period_ns:.6f} [get_ports clk]",
        "set_input_delay 0 -clock clk [delete_from_list [all_inputs] [get_ports clk]]",
        "set_output_delay 0 -clock clk [all_outputs]",
    ])


def _run_sta(folder: Path, script: str, name: str) -> str:
    (folder / f"{name}.tcl").write_text(script + "\nexit\n")
    res = subprocess.run([sta_command(), "-no_splash", "-no_init", "-exit", f"{name}.tcl"], cwd=folder,
                         capture_output=True, text=True)
    out = res.stdout + res.stderr
    (folder / f"{name}.log").write_text(out)
    errors = [ln for ln in out.splitlines() if ln.startswith("Error")]
    if res.returncode or errors:
        tail = "\n".join((errors or out.strip().splitlines())[-8:])
        raise RuntimeError(f"OpenSTA failed in {folder} (see {folder / (name + '.log')}):\n{tail}")
    return out


def timing(n: LibertyNetlist, period_ns: float = 10.0, spef: Path | None = None) -> Timing:
    """The worst path of the netlist at a clock of ``period_ns`` (OpenSTA ``report_checks``); with ``spef``,
    the wires' parasitics of a layout (:mod:`cosim.synth.layout`) loading the gates."""
    name = "sta_timing" + ("_spef" if spef is not None else "")
    out = _run_sta(n.folder, _sta_setup(n, period_ns, spef) + "\nreport_checks -path_delay max -digits 4\n"
                   "report_worst_slack -digits 4", name)
    m = re.search(r"worst slack\s+(-?[\d.]+)", out)
    sp = re.search(r"Startpoint:\s*(\S+)", out)
    ep = re.search(r"Endpoint:\s*(\S+)", out)
    if not (m and sp and ep):
        raise RuntimeError(f"OpenSTA reported no timed path ({n.folder / (name + '.log')})")
    crit = period_ns - float(m.group(1))
    return Timing(netlist=str(n.netlist), liberty=str(n.liberty), macro_liberty=str(n.macro_liberty),
                  library=osu018.NAME, period_ns=period_ns, slack_ns=float(m.group(1)),
                  critical_path_ns=round(crit, 4), fmax_mhz=round(1000.0 / crit, 2),
                  startpoint=sp.group(1), endpoint=ep.group(1),
                  sta_script=str(n.folder / f"{name}.tcl"), sta_log=str(n.folder / f"{name}.log"))


def _activity_tcl(act: Activity) -> str:
    lines = [f"set_act {{{net}}} {a:.6g} {min(max(d, 0.0), 1.0):.6g}" for net, (a, d) in sorted(act.nets.items())]
    return "\n".join([
        # a net's activity on its input port and on every pin on it (driver and loads). The Tcl
        # `set_power_activity -pins` of this OpenSTA build calls an undefined helper: its commands instead
        "set ::missing 0",
        "proc set_act {net a d} {",
        "  set port [get_ports -quiet $net]",
        "  if {$port != \"\" && [get_property $port direction] == \"input\"} {",
        "    sta::set_power_input_port_activity $port $a $d",
        "  }",
        "  set nets [get_nets -quiet $net]",
        "  if {$nets == \"\"} { incr ::missing; return }",
        "  foreach pin [get_pins -of_objects $nets] { sta::set_power_pin_activity $pin $a $d }",
        "}",
        *lines,
        "puts \"activity: nets not in the netlist: $::missing\""])


def power(n: LibertyNetlist, clock_mhz: float, activity: Activity | float, clock_running: bool = True,
          spef: Path | None = None) -> Power:
    """OpenSTA ``report_power`` at ``clock_mhz`` with per-net ``activity`` (or one toggle rate for every net).

    The activity is in toggles per clock cycle (OpenSTA's ``set_power_activity`` unit: at the same activity,
    twice the period is half the dynamic power). ``clock_running=False`` holds the clock at 0 (its pins
    then toggle no more than the activity says): with zero activity, what remains is leakage. ``spef``: the
    wires' capacitance of a layout switched too.
    """
    if not (isinstance(clock_mhz, (int, float)) and math.isfinite(clock_mhz) and clock_mhz > 0):
        raise ValueError(f"clock must be a positive number of MHz, not {clock_mhz!r}")
    if isinstance(activity, Activity):
        act_tcl, source = _activity_tcl(activity), activity.source
    else:
        if not (isinstance(activity, (int, float)) and activity >= 0):
            raise ValueError(f"activity must be a non-negative toggle rate, not {activity!r}")
        act_tcl = f"set_power_activity -global -activity {activity:g} -duty 0.5\n" \
                  f"set_power_activity -input -activity {activity:g} -duty 0.5"
        source = f"one toggle rate for every net and input: {activity:g} per clock cycle"
    stop = "" if clock_running else "\nset_case_analysis 0 [get_ports clk]"
    name = "sta_power" + ("_spef" if spef is not None else "")
    out = _run_sta(n.folder, _sta_setup(n, 1000.0 / clock_mhz, spef) + stop + "\n" + act_tcl
                   + "\nreport_power -digits 8", name)
    matched = None
    if isinstance(activity, Activity):
        # a traced wire whose bits drive nothing (a constant, a dead bit) is no net of OpenSTA's; a
        # naming mismatch between trace and netlist would leave most nets unmatched
        missing = int(re.search(r"nets not in the netlist: (\d+)", out).group(1))
        matched = f"{len(activity.nets) - missing} of {len(activity.nets)} traced nets"
        if missing > len(activity.nets) / 2:
            raise RuntimeError(f"{missing} of {len(activity.nets)} traced nets are not in {n.netlist} "
                               f"({n.folder / (name + '.log')})")
    m = re.search(r"^Total\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", out, re.M)
    if not m:
        raise RuntimeError(f"OpenSTA printed no power total ({n.folder / (name + '.log')})")
    internal, switching, leakage, total = (float(v) * 1e3 for v in m.groups())    # W -> mW
    return Power(mw=total, internal_mw=internal, switching_mw=switching, leakage_mw=leakage, clock_mhz=clock_mhz,
                 activity=source, activity_nets=matched,
                 energy_pj_per_value=total * 1e-3 / (clock_mhz * 1e6 * n.lanes) * 1e12)


def netlist_dict(n: LibertyNetlist) -> dict[str, Any]:
    """The mapped netlist's figures and files as JSON-ready data (paths as strings)."""
    d = asdict(n)
    return {k: (str(v) if isinstance(v, Path) else [str(p) for p in v] if k == "models" else v) for k, v in d.items()}
