"""Place and route of a unit's OSU 0.18 um netlist with Debian's open tools, and its post-layout figures.

The chain (qflow 1.3.17's steps, driven from here; the Tcl scripts and ``blif2BSpice`` come out of
Debian's ``qflow`` package, which ``make install`` unpacks into the virtual environment without installing
it, as it does the cell library):

1. :func:`block_netlist`: the mapped netlist (:func:`cosim.synth.ppa.map_netlist`) without its coefficient
   memories: each memory macro instance is taken out and its pins on the logic become ports of the block (read
   data in, address and enables out). The memories would be SRAM macros placed beside the block; the area
   figures leave them out in the same way. Buses become one scalar name per bit, which every tool reads alike.
2. Placement: ``blif2cel.tcl``, ``decongest.tcl`` (fill cells pad the rows to the target ``density``),
   ``graywolf`` (TimberWolf) with the library's parameters (``osu018.par``, fixed seed: repeatable).
3. Routing: ``place2def.tcl``, ``addspacers.tcl`` (power stripes), ``arrangepins.tcl``, then ``qrouter``
   over ``layers`` metal layers; a net it leaves unrouted is a failure.
4. ``magic``: the routed DEF on the cells' LEF views, DRC, GDS, extraction; ``netgen-lvs``: the extracted
   layout against the block netlist (cell-level: Debian's OSU files hold the cells' LEF abstracts and SPICE
   subcircuits, not their transistor layouts, so DRC checks the routing against the cells' pins and
   obstructions, and LVS the cells' connections).
5. Parasitics (:func:`write_spef`): per net, the routed wire's resistance and capacitance from the LEF's
   per-layer values (sheet resistance, area and edge capacitance) as a pi model, driver to loads, in SPEF
   that OpenSTA reads: the wires' load on every gate is in the timing and the power. The clock stays ideal
   (no clock tree is built), as before layout.
6. :func:`picture`: the layouts drawn from their DEF (cells, wires by layer), several units at one scale.

Figures (:class:`Layout`): die and core area, utilization, wire length, vias, DRC errors, LVS, and the files.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import osu018

#: Debian packages of the chain (the executable each provides)
TOOLS = {"graywolf": "graywolf", "qrouter": "qrouter", "magic": "magic", "netgen-lvs": "netgen-lvs",
         "tclsh": "tcl"}
_QFLOW = Path("usr/lib/qflow")
DEFAULT_DENSITY = 0.6
DEFAULT_LAYERS = 6
RAM_PREFIX = "NMPU_RAM_"


def qflow_dir() -> Path:
    """qflow's scripts and helper programs: ``/usr/lib/qflow`` or the copy ``make install`` unpacked."""
    for d in (Path("/") / _QFLOW, Path(sys.prefix) / _QFLOW):
        if (d / "scripts" / "place2def.tcl").is_file() and (d / "bin" / "blif2BSpice").is_file():
            return d
    raise RuntimeError("qflow's place-and-route scripts (Debian package qflow) are not unpacked: run `make install`")


def check_tools() -> None:
    """A ``RuntimeError`` naming the missing Debian packages (``make install`` brings them)."""
    missing = [pkg for exe, pkg in TOOLS.items() if shutil.which(exe) is None]
    if missing:
        raise RuntimeError(f"the layout tools are not installed (Debian packages {', '.join(missing)}): "
                           "run `make install`")
    qflow_dir()


def _tool(cmd: list[str], cwd: Path, step: str, log: str | None = None, stdin: str | None = None) -> str:
    """Run one tool; its output goes to ``<step>.log``; a failure is a ``RuntimeError`` with the log's tail."""
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, input=stdin if stdin is not None else "")
    out = res.stdout + res.stderr
    with open(cwd / f"{log or step}.log", "a") as fh:
        fh.write(f"$ {' '.join(cmd)}\n{out}\n")
    if res.returncode:
        tail = "\n".join(out.strip().splitlines()[-15:])
        raise RuntimeError(f"layout step {step} failed: {cmd[0]} exit {res.returncode} (log "
                           f"{cwd / ((log or step) + '.log')}):\n{tail}")
    return out


# ---- 1. the block netlist ---------------------------------------------------------------------------
@dataclass
class Block:
    """The logic of a mapped netlist as a block: scalar names, memories out."""

    top: str
    folder: Path
    verilog: Path                 # structural Verilog (STA and LVS reference)
    blif: Path                    # the same as qflow's BLIF (.gate lines)
    names: dict[str, str]         # every net name of the mapped netlist (bus bits as name[i]) -> block net
    cells: int
    ports_added: list[str]        # memory pins that became ports
    left_out: list[str]           # ports and pins with no logic on them (constants, unused inputs)


def block_netlist(n: Any, folder: Path) -> Block:
    """The logic of ``n`` (a :class:`cosim.synth.ppa.LibertyNetlist`) without its memory macros (module doc)."""
    from .flow import run_yosys

    folder.mkdir(parents=True, exist_ok=True)
    for src in (n.netlist, n.liberty, n.macro_liberty):      # the Liberty files: for OpenSTA on the block
        shutil.copyfile(src, folder / src.name)
    rams = n.netlist.parent / "nmpu_rams.v"
    shutil.copyfile(rams, folder / rams.name)
    run_yosys("\n".join([f"read_liberty -lib {n.liberty.name}", f"read_verilog -lib {rams.name}",
                         f"read_verilog {n.netlist.name}", f"hierarchy -top {n.top}", "write_json parsed.json"]),
              folder, "yosys_block.log")
    doc = json.loads((folder / "parsed.json").read_text())
    mod = doc["modules"][n.top]
    dirs = {m: {p: v["direction"] for p, v in d["ports"].items()} for m, d in doc["modules"].items()}
    used: set[str] = set()

    def unique(base: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_]", "_", base)
        name, k = base, 1
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        return name

    loads: dict[int, list[tuple[str, str]]] = defaultdict(list)
    cells = {c: d for c, d in mod["cells"].items() if not d["type"].startswith(RAM_PREFIX)}
    for c, d in cells.items():
        for pin, bits in d["connections"].items():
            if any(isinstance(b, str) for b in bits):
                raise RuntimeError(f"cell {c} pin {pin} is tied to a constant: the library has no tie cell")
            loads[bits[0]].append((c, pin))
    ports = []                                   # (name, direction, bit, what)
    for p, d in mod["ports"].items():
        for i, b in enumerate(d["bits"]):
            ports.append((unique(p if len(d["bits"]) == 1 else f"{p}_{i}"), d["direction"], b,
                          p if len(d["bits"]) == 1 else f"{p}[{i}]"))
    on_port = {b for _, _, b, _ in ports}
    added, left = [], []
    for c, d in mod["cells"].items():
        if not d["type"].startswith(RAM_PREFIX):
            continue
        for pin, bits in sorted(d["connections"].items()):
            b = bits[0]
            if isinstance(b, str) or b in on_port:
                continue
            if b not in loads:
                left.append(f"{c}.{pin}: no logic on it")
                continue
            direction = "input" if dirs[d["type"]][pin] == "output" else "output"
            ports.append((unique(f"{c}__{pin}"), direction, b, f"{c}.{pin}"))
            on_port.add(b)
            added.append(f"{c}.{pin} ({direction})")
    bitname: dict[int, str] = {}
    kept = []
    for name, direction, b, what in ports:
        if isinstance(b, str):
            left.append(f"{what} ({direction}): the constant {b} (the library has no tie cell)")
        elif b not in loads:
            left.append(f"{what} ({direction}): no logic on it")
        elif b in bitname:
            raise RuntimeError(f"ports {bitname[b]} and {name} are one net: a feedthrough needs a buffer")
        else:
            bitname[b] = name
            kept.append((name, direction))
    aliases: dict[int, list[str]] = defaultdict(list)
    names: dict[str, str] = {}
    for net, d in mod["netnames"].items():
        for i, b in enumerate(d["bits"]):
            if not isinstance(b, str):
                aliases[b].append((d.get("hide_name", 0), net if len(d["bits"]) == 1 else f"{net}_{i}"))
                names[net if len(d["bits"]) == 1 else f"{net}[{i}]"] = b   # bit for now; names below
    for b in loads:
        if b not in bitname:
            bitname[b] = unique(min(aliases[b])[1] if aliases[b] else f"net{b}")
    names = {k: bitname[b] for k, b in names.items() if b in bitname}
    ins = [p for p, d in kept if d == "input"]
    outs = [p for p, d in kept if d == "output"]
    blif = [f".model {n.top}", ".inputs " + " ".join(ins), ".outputs " + " ".join(outs)]
    vlog = [f"module {n.top} (" + ", ".join(ins + outs) + ");", *(f"  input {p};" for p in ins),
            *(f"  output {p};" for p in outs),
            *(f"  wire {bitname[b]};" for b in loads if bitname[b] not in set(ins + outs))]
    order: dict[str, int] = defaultdict(int)
    renames = []
    for c, d in cells.items():
        pins = [(p, bitname[bits[0]]) for p, bits in d["connections"].items()]
        blif.append(f".gate {d['type']} " + " ".join(f"{p}={net}" for p, net in pins))
        vlog.append(f"  {d['type']} {c} (" + ", ".join(f".{p}({net})" for p, net in pins) + ");")
        order[d["type"]] += 1                  # blif2cel calls the k-th gate of a type TYPE_k
        renames.append(f"{d['type']}_{order[d['type']]} {c}")
    blif.append(".end")
    vlog.append("endmodule")
    (folder / f"{n.top}.blif").write_text("\n".join(blif) + "\n")
    (folder / f"{n.top}.v").write_text("\n".join(vlog) + "\n")
    (folder / f"{n.top}.names").write_text("\n".join(renames) + "\n")
    return Block(n.top, folder, folder / f"{n.top}.v", folder / f"{n.top}.blif", names, len(cells), added, left)


# ---- 2-3. placement and routing ----------------------------------------------------------------------
def place_and_route(b: Block, density: float = DEFAULT_DENSITY, layers: int = DEFAULT_LAYERS) -> Path:
    """Place (graywolf) and route (qrouter) the block; returns the routed DEF."""
    tech, q = osu018.library_dir(), qflow_dir()
    lef, top, d = tech / "osu018_stdcells.lef", b.top, b.folder
    tcl = lambda script, *a: _tool(["tclsh", str(q / "scripts" / script), *map(str, a)], d, "place")  # noqa: E731
    (d / f"{top}.cfg").write_text(f"read_lef {lef}\n")
    _tool(["qrouter", "-i", f"{top}.info", "-c", f"{top}.cfg"], d, "place")
    tcl("blif2cel.tcl", "--blif", b.blif.name, "--lef", lef, "--cel", f"{top}.cel")
    tcl("decongest.tcl", top, lef, "FILL", f"{density:g}", "--units=100")
    (d / f"{top}.acel").replace(d / f"{top}.cel")
    shutil.copyfile(tech / "osu018.par", d / f"{top}.par")
    _tool(["graywolf", "-n", top], d, "place")
    if not (d / f"{top}.pl1").stat().st_size:
        raise RuntimeError(f"layout step place: graywolf wrote no placement (log {d / 'place.log'})")
    (d / f"{top}.obs").unlink(missing_ok=True)
    tcl("place2def.tcl", top, "FILL")
    tcl("addspacers.tcl", "-stripe", "2.0", "50.0", "PG", top, lef, "FILL")      # osu018.sh's power stripes
    (d / f"{top}_filled.def").replace(d / f"{top}.def")
    if (d / f"{top}.obsx").exists():
        (d / f"{top}.obsx").replace(d / f"{top}.obs")
    tcl("arrangepins.tcl", top)
    if (d / f"{top}_mod.def").exists():
        (d / f"{top}_mod.def").replace(d / f"{top}.def")
    _rename_instances(d / f"{top}.def", d / f"{top}.names")
    obs = (d / f"{top}.obs").read_text() if (d / f"{top}.obs").exists() else ""
    (d / f"{top}.cfg").write_text("\n".join([
        "verbose 1", f"read_lef {lef}", f"catch {{layers {layers}}}", "via stack 1", "vdd vdd", "gnd gnd", obs,
        f"read_def {top}.def", f"qrouter::standard_route {top}_route.def false", "quit"]) + "\n")
    out = _tool(["qrouter", "-nog", "-s", f"{top}.cfg"], d, "route")
    final = [ln for ln in out.splitlines() if ln.startswith("Final:")]
    if not final or "No failed routes" not in final[-1]:
        raise RuntimeError(f"layout step route: qrouter left nets unrouted ({final[-1] if final else 'no result'}; "
                           f"log {d / 'route.log'}): try a lower --density")
    return d / f"{top}_route.def"


def _rename_instances(def_file: Path, names_file: Path) -> None:
    """blif2cel and place2def name instances TYPE_k: put the netlist's names back (fill cells keep theirs)."""
    names = dict(ln.split() for ln in names_file.read_text().splitlines() if ln.strip())
    out, section, done = [], None, 0
    for line in def_file.read_text().splitlines(keepends=True):
        if line.startswith(("COMPONENTS", "NETS", "PINS", "SPECIALNETS")):
            section = line.split()[0]
        elif line.startswith("END "):
            section = None
        if section == "COMPONENTS":
            m = re.match(r"(- )(\S+)( .*)", line, re.S)
            if m and m.group(2) in names:
                line, done = m.group(1) + names[m.group(2)] + m.group(3), done + 1
        elif section == "NETS":
            line = re.sub(r"\( (\S+) (\S+) \)", lambda m: f"( {names.get(m.group(1), m.group(1))} {m.group(2)} )",
                          line)
        out.append(line)
    if done != len(names):
        raise RuntimeError(f"layout step place: {len(names) - done} of {len(names)} cells not found in {def_file}")
    def_file.write_text("".join(out))


# ---- 4. DRC, GDS, extraction, LVS ----------------------------------------------------------------------
def magic_and_lvs(b: Block, routed: Path) -> dict[str, Any]:
    """DRC count, GDS and extracted netlist (magic), LVS against the block (netgen); ``drc``/``lvs`` figures."""
    tech, q, top, d = osu018.library_dir(), qflow_dir(), b.top, b.folder
    lef = tech / "osu018_stdcells.lef"
    (d / "osu018.magicrc").write_text(f"path sys +{tech}\ntech load {tech}/SCN6M_SUBM.10 -noprompt\n"
                                      "set GND gnd\nset VDD vdd\ndrc euclidean on\ndrc off\n")
    (d / "magic.tcl").write_text("\n".join([
        "drc off", "box 0 0 0 0", "snap int", f"lef read {lef}", f"def read {routed.name}", f"load {top}",
        "select top cell", f"writeall force {top}", "drc euclidean on", "drc on", "select top cell", "expand",
        "drc check", "drc catchup", 'puts stdout "DRC_COUNT [drc list count total]"', "drc listall why",
        f"gds write {top}", "extract all", "ext2spice hierarchy on", "ext2spice format ngspice", "ext2spice scale off",
        "ext2spice renumber off", "ext2spice cthresh infinite", "ext2spice rthresh infinite", "ext2spice blackbox on",
        "ext2spice subcircuit top auto", "ext2spice global off", "ext2spice", "quit -noprompt"]) + "\n")
    out = _tool(["magic", "-dnull", "-noconsole", "-rcfile", "./osu018.magicrc", "magic.tcl"], d, "magic")
    m = re.search(r"DRC_COUNT (\d+)", out)
    if not m or not (d / f"{top}.gds").exists() or not (d / f"{top}.spice").exists():
        raise RuntimeError(f"layout step magic: no DRC count, GDS or extracted netlist (log {d / 'magic.log'})")
    ref = d / f"{top}_ref.spc"
    ref.write_text(_tool([str(q / "bin" / "blif2BSpice"), "-i", "-p", "vdd", "-g", "gnd", "-l",
                          str(tech / "osu018_stdcells.sp"), b.blif.name], d, "lvs"))
    lvs = run_lvs(d, top, ref)
    return {"drc_errors": int(m.group(1)), "lvs": lvs, "gds": str(d / f"{top}.gds"),
            "extracted": str(d / f"{top}.spice")}


def run_lvs(folder: Path, top: str, reference: Path, name: str = "lvs") -> str:
    """netgen LVS of the extracted layout against a reference netlist: ``"clean"`` or the mismatch line."""
    tech = osu018.library_dir()
    out = _tool(["netgen-lvs", "-batch", "lvs", f"{top}.spice {top}", f"{reference.name} {top}",
                 str(tech / "osu018_setup.tcl"), f"{name}.out", "-blackbox"], folder, name)
    if "Netlists match uniquely" in (folder / f"{name}.out").read_text():
        return "clean"
    bad = [ln.strip() for ln in out.splitlines() if "MISMATCH" in ln or "do not match" in ln]
    return "mismatch: " + (bad[0] if bad else f"see {folder / (name + '.out')}")


# ---- the routed DEF: geometry, wire length, parasitics, picture -----------------------------------------
@dataclass
class Routed:
    """What a routed DEF holds, in um."""

    design: str
    die: tuple[float, float, float, float]
    components: list[tuple[str, str, float, float]]          # (instance, cell, x, y)
    segments: list[tuple[str, str, tuple[float, float], tuple[float, float]]]   # (net, layer, a, b)
    power: list[tuple[str, tuple[float, float], tuple[float, float]]]           # power stripes (layer, a, b)
    vias: int                                                 # of the signal nets
    conns: dict[str, list[tuple[str, str]]]                   # net -> [(instance or PIN, pin)]
    pins: list[tuple[str, float, float]]


def _routes(section: str, units: int) -> tuple[list, int]:
    segs, vias = [], 0
    for name, body in re.findall(r"^- (\S+)(.*?);\s*$", section, re.S | re.M):
        toks = re.findall(r"\(|\)|[^\s()]+", body)
        k = 0
        while k < len(toks):
            if toks[k] not in ("ROUTED", "NEW", "FIXED"):
                k += 1
                continue
            layer, k, last = toks[k + 1], k + 2, None
            if k < len(toks) and re.fullmatch(r"\d+", toks[k]):        # a special net's width
                k += 1
            while k < len(toks) and toks[k] not in ("NEW", "+", ";"):
                if toks[k] == "(":
                    j = toks.index(")", k)
                    x, y = toks[k + 1:j][:2]
                    p = (last[0] if x == "*" else float(x) / units, last[1] if y == "*" else float(y) / units)
                    if last is not None and p != last:
                        segs.append((name, layer, last, p))
                    last, k = p, j + 1
                else:
                    vias, k = vias + 1, k + 1
    return segs, vias


def read_def(path: Path) -> Routed:
    text = path.read_text()
    units = int(re.search(r"UNITS DISTANCE MICRONS (\d+)", text).group(1))
    die = tuple(float(v) / units for v in re.search(r"DIEAREA \( (-?\d+) (-?\d+) \) \( (-?\d+) (-?\d+) \)",
                                                     text).groups())
    comps = [(n, m, float(x) / units, float(y) / units) for n, m, x, y in
             re.findall(r"^- (\S+) (\S+) \+ (?:PLACED|FIXED) \( (-?\d+) (-?\d+) \) \S+ ;", text, re.M)]
    nets = re.search(r"^NETS.*?$(.*?)^END NETS", text, re.S | re.M).group(1)
    segs, vias = _routes(nets, units)
    conns = {name: re.findall(r"\( (\S+) (\S+) \)", re.split(r"\+ ROUTED", body)[0])
             for name, body in re.findall(r"^- (\S+)(.*?);\s*$", nets, re.S | re.M)}
    special = re.search(r"^SPECIALNETS.*?$(.*?)^END SPECIALNETS", text, re.S | re.M)
    ssegs, _ = _routes(special.group(1), units) if special else ([], 0)
    # qrouter writes the short stubs that reach off-grid pins as special wiring of the signal nets
    stubs = [s for s in ssegs if s[0] in conns]
    pins = [(n, float(x) / units, float(y) / units) for n, x, y in
            re.findall(r"^- (\S+) \+ NET \S+.*?\+ (?:PLACED|FIXED) \( (-?\d+) (-?\d+) \)", text, re.M | re.S)]
    return Routed(re.search(r"DESIGN (\S+)", text).group(1), die, comps, segs + stubs,
                  [(lay, a, b) for n, lay, a, b in ssegs if n not in conns], vias, conns, pins)


@dataclass
class LefData:
    sizes: dict[str, tuple[float, float]]
    outputs: dict[str, set[str]]                      # cell -> its output pins
    r_per_um: dict[str, float]                        # ohm per um of a minimum-width wire
    c_per_um: dict[str, float]                        # pF per um (area + both edges)


def read_lef(path: Path) -> LefData:
    text = path.read_text()
    sizes, outputs = {}, defaultdict(set)
    for name, body in re.findall(r"^MACRO (\S+)(.*?)^END \1", text, re.S | re.M):
        m = re.search(r"SIZE ([\d.]+) BY ([\d.]+)", body)
        sizes[name] = (float(m.group(1)), float(m.group(2)))
        for pin, pbody in re.findall(r"^\s*PIN (\S+)(.*?)^\s*END \1", body, re.S | re.M):
            if re.search(r"DIRECTION\s+OUTPUT", pbody):
                outputs[name].add(pin)
    r, c = {}, {}
    for name, body in re.findall(r"^LAYER (\S+)(.*?)^END \1", text, re.S | re.M):
        if not re.search(r"TYPE\s+ROUTING", body):
            continue
        w = float(re.search(r"WIDTH\s+([\d.e+-]+)", body).group(1))
        rsq = float(re.search(r"RPERSQ\s+([\d.e+-]+)", body).group(1))
        area = float(re.search(r"CPERSQDIST\s+([\d.e+-]+)", body).group(1))
        edge = float(re.search(r"EDGECAPACITANCE\s+([\d.e+-]+)", body).group(1))
        r[name], c[name] = rsq / w, area * w + 2 * edge
    return LefData(sizes, dict(outputs), r, c)


def figures(routed: Routed, lef: LefData) -> dict[str, Any]:
    """Die and core area, utilization, wire length (per layer), vias, cells."""
    x0, y0, x1, y1 = routed.die
    logic = [c for c in routed.components if not c[1].startswith("FILL")]
    xs = [c[2] for c in routed.components] + [c[2] + lef.sizes[c[1]][0] for c in routed.components]
    ys = [c[3] for c in routed.components] + [c[3] + lef.sizes[c[1]][1] for c in routed.components]
    core = (max(xs) - min(xs)) * (max(ys) - min(ys))
    cell_area = sum(lef.sizes[c[1]][0] * lef.sizes[c[1]][1] for c in logic)
    wl: dict[str, float] = defaultdict(float)
    for _, layer, a, b in routed.segments:
        wl[layer] += abs(a[0] - b[0]) + abs(a[1] - b[1])
    return {"die_um": [round(x1 - x0, 2), round(y1 - y0, 2)], "die_area_um2": round((x1 - x0) * (y1 - y0), 1),
            "core_um": [round(max(xs) - min(xs), 2), round(max(ys) - min(ys), 2)], "core_area_um2": round(core, 1),
            "cells": len(logic), "fill_cells": len(routed.components) - len(logic),
            "cell_area_um2": round(cell_area, 1), "utilization": round(cell_area / core, 4),
            "wire_length_um": round(sum(wl.values()), 1),
            "wire_length_by_layer_um": {k: round(v, 1) for k, v in sorted(wl.items())},
            "vias": routed.vias, "nets": len(routed.conns)}


def write_spef(routed: Routed, lef: LefData, verilog: Path, out: Path, ideal: tuple[str, ...] = ("clk",)) -> dict[str, Any]:
    """Parasitics of every routed net as a pi model in SPEF: the net's wire capacitance (its segments' lengths
    times the layer's area and edge capacitance per um) half at the driver, half spread over the loads, and its
    wire resistance (length / width x sheet resistance) between the driver and a node the loads hang from.

    The ``ideal`` nets are left out: the clock, routed as a plain net from its port to every flip-flop with no
    clock tree, stays ideal as before layout (its wire would give every flip-flop's clock pin a transition no
    clock tree would, and OpenSTA's flip-flop power tables are extrapolated far beyond their range there).

    Returns the totals (``wire_cap_pf``, ``wire_res_ohm``, ``nets``) and the ``ideal`` nets.
    """
    cells = dict((inst, cell) for inst, cell, _, _ in routed.components)
    inputs = set(re.findall(r"^\s*input (\S+);", verilog.read_text(), re.M))
    length: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for net, layer, a, b in routed.segments:
        length[net][layer] += abs(a[0] - b[0]) + abs(a[1] - b[1])
    lines = ['*SPEF "IEEE 1481-1998"', f'*DESIGN "{routed.design}"', '*DATE "0"', '*VENDOR "nmpu-cosim"',
             '*PROGRAM "nmpu-cosim layout"', '*VERSION "1"', '*DESIGN_FLOW "PIN_CAP NONE"', "*DIVIDER /",
             "*DELIMITER :", "*BUS_DELIMITER [ ]", "*T_UNIT 1 NS", "*C_UNIT 1 PF", "*R_UNIT 1 OHM",
             "*L_UNIT 1 HENRY", ""]
    tot_c = tot_r = 0.0
    for net, conns in routed.conns.items():
        if net in ideal:
            continue
        c = sum(v * lef.c_per_um[lay] for lay, v in length[net].items())
        r = sum(v * lef.r_per_um[lay] for lay, v in length[net].items())
        drivers, loads = [], []
        for inst, pin in conns:
            if inst == "PIN":
                (drivers if pin in inputs else loads).append((pin, f"*P {pin} {'I' if pin in inputs else 'O'}"))
            else:
                out_pin = pin in lef.outputs.get(cells[inst], set())
                (drivers if out_pin else loads).append(
                    (f"{inst}:{pin}", f"*I {inst}:{pin} {'O' if out_pin else 'I'} *D {cells[inst]}"))
        if len(drivers) != 1 or not loads:
            continue                        # no driver or no load: nothing for timing to use
        tot_c, tot_r = tot_c + c, tot_r + r
        mid = f"{net}:1"
        lines += [f"*D_NET {net} {c:.6g}", "*CONN", *(d for _, d in drivers + loads), "*CAP",
                  f"1 {drivers[0][0]} {c / 2:.6g}"]
        lines += [f"{k + 2} {node} {c / 2 / len(loads):.6g}" for k, (node, _) in enumerate(loads)]
        lines += ["*RES", f"1 {drivers[0][0]} {mid} {max(r, 1e-3):.6g}"]
        lines += [f"{k + 2} {mid} {node} 0.001" for k, (node, _) in enumerate(loads)]
        lines += ["*END", ""]
    out.write_text("\n".join(lines) + "\n")
    return {"wire_cap_pf": round(tot_c, 4), "wire_res_ohm": round(tot_r, 1), "nets": len(routed.conns),
            "ideal": [n for n in ideal if n in routed.conns]}


_LAYER_COLORS = {"metal1": "#1f77b4", "metal2": "#ff7f0e", "metal3": "#2ca02c", "metal4": "#d62728",
                 "metal5": "#9467bd", "metal6": "#8c564b"}


def picture(layouts: dict[str, tuple[Path, Path]], png: Path, dpi: int = 110) -> Path:
    """Draw routed DEFs side by side at one scale: ``{title: (routed DEF, LEF)}``; cells grey (flip-flops red),
    wires coloured by layer, power stripes faint."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection, PatchCollection
    from matplotlib.patches import Rectangle

    data = [(t, read_def(d), read_lef(lef)) for t, (d, lef) in layouts.items()]
    width = sum(r.die[2] - r.die[0] for _, r, _ in data)
    height = max(r.die[3] - r.die[1] for _, r, _ in data)
    fig, axes = plt.subplots(1, len(data), figsize=(13, 13 * height / width + 1.2), dpi=dpi, squeeze=False,
                             gridspec_kw={"width_ratios": [r.die[2] - r.die[0] for _, r, _ in data]})
    for ax, (title, r, lef) in zip(axes[0], data):
        x0, y0, x1, y1 = r.die
        logic = [c for c in r.components if not c[1].startswith("FILL")]
        ax.add_collection(PatchCollection(
            [Rectangle((x, y), *lef.sizes[cell]) for _, cell, x, y in logic],
            facecolor=["#d62728" if cell.startswith("DFF") else "#9a9a9a" for _, cell, _, _ in logic],
            edgecolor="#555555", linewidths=0.1, alpha=0.5))
        for layer, col in _LAYER_COLORS.items():
            segs = [(a, b) for _, lay, a, b in r.segments if lay == layer]
            if segs:
                ax.add_collection(LineCollection(segs, colors=col, linewidths=0.3, label=layer))
            stripes = [(a, b) for lay, a, b in r.power if lay == layer]
            if stripes:
                ax.add_collection(LineCollection(stripes, colors=col, linewidths=1.5, alpha=0.25))
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="black", lw=0.8))
        ax.set_xlim(x0 - 2, x0 + (x1 - x0) + 2)
        ax.set_ylim(y0 - 2, y0 + height + 2)
        ax.set_aspect("equal")
        ax.set_title(f"{title}: {x1 - x0:.0f} x {y1 - y0:.0f} um, {len(logic)} cells", fontsize=9)
        ax.set_xlabel("um")
        ax.legend(loc="upper right", fontsize=6, framealpha=0.8)
    fig.suptitle("placed and routed, OSU 0.18 um (cells grey, flip-flops red; wires by metal layer)", fontsize=10)
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
    return png


# ---- the whole chain -----------------------------------------------------------------------------------
@dataclass
class Layout:
    """A unit's placed and routed block and its figures (post-layout timing and power added by the caller)."""

    top: str
    folder: str
    density: float
    layers: int
    figures: dict[str, Any]
    drc_errors: int
    lvs: str
    parasitics: dict[str, float]
    files: dict[str, str]
    ports_added: list[str]
    left_out: list[str]
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def layout(n: Any, folder: Path, *, density: float = DEFAULT_DENSITY, layers: int = DEFAULT_LAYERS,
           notify: Callable[[str], None] | None = None) -> tuple[Layout, Block]:
    """Place, route, check and extract ``n`` (a mapped netlist) in ``folder`` (emptied first)."""
    if not (isinstance(density, (int, float)) and 0.1 <= density <= 0.95):
        raise ValueError(f"the layout density must be in [0.1, 0.95], not {density!r}")
    if isinstance(layers, bool) or layers not in range(2, 7):
        raise ValueError(f"the routing layers must be 2..6, not {layers!r}")
    check_tools()
    shutil.rmtree(folder, ignore_errors=True)
    seconds: dict[str, float] = {}
    t = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal t
        seconds[step] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        if notify:
            notify(f"layout {n.top}: {step} {seconds[step]:.1f} s")

    b = block_netlist(n, folder)
    lap("block")
    routed = place_and_route(b, density, layers)
    lap("place_and_route")
    checks = magic_and_lvs(b, routed)
    lap("drc_lvs")
    lef_file = osu018.library_dir() / "osu018_stdcells.lef"
    r, lef = read_def(routed), read_lef(lef_file)
    spef = folder / f"{b.top}.spef"
    par = write_spef(r, lef, b.verilog, spef)
    lap("parasitics")
    return Layout(top=b.top, folder=str(folder), density=float(density), layers=layers, figures=figures(r, lef),
                  drc_errors=checks["drc_errors"], lvs=checks["lvs"], parasitics=par,
                  files={"def": str(routed), "gds": checks["gds"], "spef": str(spef), "block": str(b.verilog),
                         "extracted": checks["extracted"], "lef": str(lef_file)},
                  ports_added=b.ports_added, left_out=b.left_out, seconds=seconds), b


def post_layout(n: Any, activity: Any, folder: Path, *, density: float = DEFAULT_DENSITY,
                layers: int = DEFAULT_LAYERS, notify: Callable[[str], None] | None = None) -> dict[str, Any]:
    """:func:`layout` of ``n``, then OpenSTA on the block before and after its wires' parasitics: critical
    path, fmax, power and energy per value at each fmax with ``activity`` (a :class:`cosim.synth.ppa.Activity`
    of the mapped netlist: its nets renamed as the block names them). JSON-ready."""
    from dataclasses import replace

    from . import ppa

    lay, b = layout(n, folder, density=density, layers=layers, notify=notify)
    bn = replace(n, folder=folder, netlist=b.verilog)
    act = activity
    if isinstance(activity, ppa.Activity):
        act = ppa.Activity({b.names[k]: v for k, v in activity.nets.items() if k in b.names}, activity.source,
                           activity.cycles, activity.values)
    spef = Path(lay.files["spef"])
    pre, post = ppa.timing(bn), ppa.timing(bn, spef=spef)
    p_pre, p_post = ppa.power(bn, pre.fmax_mhz, act), ppa.power(bn, post.fmax_mhz, act, spef=spef)
    return {**lay.to_dict(), "pre_layout": {"timing": pre.to_dict(), "power": p_pre.to_dict()},
            "timing": post.to_dict(), "power": p_post.to_dict(),
            "fmax_mhz": post.fmax_mhz, "critical_path_ns": post.critical_path_ns,
            "energy_pj_per_value": p_post.energy_pj_per_value}
