"""A proof that a unit's gate-level netlist computes what its RTL computes: Yosys's SAT equivalence passes.

Simulation checks the netlist on the inputs it is given; this proves it on every input and every reachable
state. The claim is a chain of two proofs, each between two designs read into one Yosys session:

1. the RTL (the Verilog :func:`rtl.export.export_verilog` writes, which every flow reads) **only elaborated**
   (``proc``, ``flatten``, ``opt``, ``memory -nomap``) against the same RTL as **Yosys's generic gates**, the
   flows' shared front end (:func:`cosim.synth.flow.gate_level_steps`: word-level optimisation, arithmetic
   made gates). This covers Yosys's synthesis; it does not depend on the library and is proved once;
2. those **generic gates** against the **mapped netlist** with the library's own cell models flattened into
   it as logic (sky130: the models :func:`cosim.synth.sky130.write_models` writes from the PDK's functional
   Verilog; OSU 0.18 um: the library's Verilog models, :func:`yosys_osu018_models`). This covers ABC's
   mapping, the full-adder extraction, the constant ties, the memory macros, the netlist writer, the models.

The chain has its middle on purpose: the elaborated RTL against a netlist directly leaves SAT with the
multipliers of two unrelated architectures (the OSU netlist of the default configuration did not finish in
14 minutes); against the generic gates each step stays within ~1 minute.

Memories are the one thing cut out: each ``$mem_v2`` of both sides becomes an uninterpreted block with its
ports and parameters (``MEMCUT``, or the flow's own macro ``NMPU_RAM_<w>x<d>`` for the OSU netlist, whose
memories are macros). ``equiv_make`` merges the gold and gate block of the same name into one cell, so the
proof checks that both sides drive every memory input alike and takes the memory's outputs as free but
common values. Three guards make a vacuous proof impossible: every memory cut, every cut merged gold with
gate, no cell left without a SAT model.

In each step ``equiv_make`` pairs the signals of the same name (ports, registers, named wires), ABC's SAT
sweeping merges proven-equal nodes, ``equiv_simple`` proves each pair over its input cone (registers paired
by name) and ``equiv_induct`` proves the rest by induction over the whole design. A pair left unproven is
reported with its name; the first one (output ports first) is the answer to "where do they differ".

What a proof states: from any state in which the paired signals agree, both designs give the same outputs
and keep the pairs in agreement, for every input sequence (induction without a base case: two designs
started from the same register values stay equal). Registers no pair names are free in the proof, which
can only make it fail, never pass wrongly. The memories' contents are outside it (the shared cut): the OSU
macros' behavioural model is checked by the gate-level simulation (``nmpu verify --gate-level``).
"""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from . import osu018, sky130
from .flow import gate_level_steps, run_yosys

__all__ = ["LIBRARIES", "Proof", "Step", "prove", "parse_status", "yosys_osu018_models", "memcut_map", "MEMCUT_BLACKBOX"]

LIBRARIES = ("sky130", "osu018")
NETLIST = "netlist.v"
MODELS = "cells.v"
MACROS = "macros.v"
MACRO_MAP = "macros_map.v"
MEMCUT = "memcut.v"
MEMCUT_BB = "memcut_bb.v"
STATUS = "equiv_status.txt"
LOG = "equiv.log"

# the parameters of Yosys's $mem_v2 cell: MEMID is the memory's name, which differs between the two
# sides and is dropped; every other one must agree for equiv_make to merge the two blocks
_MEM_PARAMS = ("SIZE", "OFFSET", "ABITS", "WIDTH", "INIT", "RD_PORTS", "RD_CLK_ENABLE", "RD_CLK_POLARITY",
               "RD_TRANSPARENCY_MASK", "RD_COLLISION_X_MASK", "RD_WIDE_CONTINUATION", "RD_CE_OVER_SRST",
               "RD_ARST_VALUE", "RD_SRST_VALUE", "RD_INIT_VALUE", "WR_PORTS", "WR_CLK_ENABLE", "WR_CLK_POLARITY",
               "WR_PRIORITY_MASK", "WR_WIDE_CONTINUATION")
_MEM_PORTS = (("RD_CLK", "input", "RD_PORTS"), ("RD_EN", "input", "RD_PORTS"), ("RD_ARST", "input", "RD_PORTS"),
              ("RD_SRST", "input", "RD_PORTS"), ("RD_ADDR", "input", "RD_PORTS*ABITS"),
              ("RD_DATA", "output", "RD_PORTS*WIDTH"), ("WR_CLK", "input", "WR_PORTS"),
              ("WR_EN", "input", "WR_PORTS*WIDTH"), ("WR_ADDR", "input", "WR_PORTS*ABITS"),
              ("WR_DATA", "input", "WR_PORTS*WIDTH"))


def _mem_header(name: str, memid: bool, defaults: dict[str, int] | None = None) -> list[str]:
    ports = ", ".join(p for p, _, _ in _MEM_PORTS)
    lines = [f"module {name} ({ports});"]
    lines += ["  parameter MEMID = \"\";"] if memid else []
    lines += [f"  parameter {p} = {(defaults or {}).get(p, 0)};" for p in _MEM_PARAMS]
    lines += [f"  {d} [{w}-1:0] {p};" for p, d, w in _MEM_PORTS]
    return lines


def memcut_map() -> str:
    """``techmap`` file: every ``$mem_v2`` becomes a ``MEMCUT`` block of the same name and parameters."""
    params = ", ".join(f".{p}({p})" for p in _MEM_PARAMS)
    conns = ", ".join(f".{p}({p})" for p, _, _ in _MEM_PORTS)
    return "\n".join(["(* techmap_celltype = \"$mem_v2\" *)", *_mem_header("memcut_map", True),
                      f"  MEMCUT #({params}) _TECHMAP_REPLACE_ ({conns});", "endmodule", ""])


#: the cut's declaration: a blackbox (no SAT model: its outputs are free, shared by gold and gate once merged)
MEMCUT_BLACKBOX = "\n".join(["(* blackbox *)", *_mem_header("MEMCUT", False), "endmodule", ""])


def _macro_map(macros: dict[str, tuple[int, int, int]]) -> str:
    """``techmap`` file: a ``$mem_v2`` of a macro's shape becomes that macro (``NMPU_RAM_<w>x<d>``, its
    ports bit-blasted as :func:`cosim.synth.ppa.memory_macros` wires them); any other shape stays a
    ``$mem_v2`` (and the guard refuses the proof)."""
    out = []
    for name, (w, d, a) in sorted(macros.items()):
        conns = ["RD_CLK(RD_CLK)", "RD_EN(RD_EN)"]
        conns += [f"{p}_{i}({p}[{i}])" for p, n in (("RD_ADDR", a), ("RD_DATA", w), ("WR_EN", w),
                                                     ("WR_ADDR", a), ("WR_DATA", w)) for i in range(n)]
        shape = {"WIDTH": w, "SIZE": d, "ABITS": a, "RD_PORTS": 1, "WR_PORTS": 1}   # (read without warnings)
        out += ["(* techmap_celltype = \"$mem_v2\" *)", *_mem_header(f"map_{name}", True, shape),
                "  parameter _TECHMAP_CONSTMSK_RD_ARST_ = 0;", "  parameter _TECHMAP_CONSTVAL_RD_ARST_ = 0;",
                "  parameter _TECHMAP_CONSTMSK_RD_SRST_ = 0;", "  parameter _TECHMAP_CONSTVAL_RD_SRST_ = 0;",
                "  parameter _TECHMAP_CONNMAP_RD_CLK_ = 0;", "  parameter _TECHMAP_CONNMAP_WR_CLK_ = 0;",
                # the macro's model (ppa._ram_model): one registered read port with an enable and no reset,
                # old data on a collision, one write port with per-bit enables, one rising clock
                f"  wire _TECHMAP_FAIL_ = !(WIDTH == {w} && SIZE == {d} && ABITS == {a} && OFFSET == 0"
                " && RD_PORTS == 1 && WR_PORTS == 1 && RD_CLK_ENABLE == 1 && RD_CLK_POLARITY == 1"
                " && WR_CLK_ENABLE == 1 && WR_CLK_POLARITY == 1 && RD_TRANSPARENCY_MASK == 0"
                " && _TECHMAP_CONSTMSK_RD_ARST_ == 1 && _TECHMAP_CONSTVAL_RD_ARST_ == 0"
                " && _TECHMAP_CONSTMSK_RD_SRST_ == 1 && _TECHMAP_CONSTVAL_RD_SRST_ == 0"
                " && _TECHMAP_CONNMAP_RD_CLK_ == _TECHMAP_CONNMAP_WR_CLK_);",
                f"  {name} _TECHMAP_REPLACE_ ({', '.join('.' + c for c in conns)});", "endmodule", ""]
    return "\n".join(out)


def _macros_in(models: str) -> dict[str, tuple[int, int, int]]:
    """``{macro: (width, depth, address bits)}`` from the macros' simulation models (``nmpu_rams.v``)."""
    found = {}
    for m in re.finditer(r"^module (NMPU_RAM_(\d+)x(\d+)) \(([^)]*)\);", models, re.M):
        a = len(re.findall(r"\bRD_ADDR_\d+\b", m.group(4)))
        found[m.group(1)] = (int(m.group(2)), int(m.group(3)), a)
    return found


# ---- the OSU 0.18 um cell models as Yosys reads them ------------------------------------------------------
def _udp_module(name: str, body: str) -> str | None:
    """A combinational UDP as a module: its output is the OR of its table's rows that give 1 (rows with an
    ``x`` input only say how x propagates). ``None`` for a sequential UDP (a ``reg`` output, edges)."""
    head = re.match(r"\s*\(([^)]*)\)\s*;", body)
    ports = [p.strip() for p in head.group(1).split(",")]
    if re.search(r"\breg\b", body):
        return None
    table = re.search(r"\btable\b(.*?)\bendtable\b", body, re.S).group(1)
    out, ins = ports[0], ports[1:]
    terms, covered = [], set()
    for row in re.sub(r"//[^\n]*", "", table).split(";"):
        if not row.strip():
            continue
        lhs, res = (s.split() for s in row.split(":"))
        if len(lhs) != len(ins) or len(res) != 1 or res[0] not in "01" or any(v not in "01?" for v in lhs):
            if any(v in "x" for v in lhs) and res and res[0] in "01x":
                continue                     # x propagation
            raise RuntimeError(f"UDP {name}: table row {row.strip()!r} not understood")
        covered |= {k for k in range(1 << len(ins))
                    if all(v == "?" or int(v) == (k >> i) & 1 for i, v in enumerate(lhs))}
        if res[0] == "1":
            lits = [(p if v == "1" else f"~{p}") for p, v in zip(ins, lhs) if v != "?"]
            terms.append("(" + (" & ".join(lits) or "1'b1") + ")")
    if len(covered) != 1 << len(ins):      # an input row the table leaves out gives x in a simulator
        raise RuntimeError(f"UDP {name}: its table does not give every 0/1 input an output")
    expr = " | ".join(terms) or "1'b0"
    return (f"module {name} (output {out}, {', '.join('input ' + p for p in ins)});\n"
            f"  assign {out} = {expr};\nendmodule\n")


def yosys_osu018_models() -> str:
    """The OSU 0.18 um cell models as Yosys reads them: :func:`cosim.synth.osu018.simulation_models` (no
    ``specify`` blocks; the flip-flop from its Liberty function), each combinational UDP turned into a module
    from its own table, the sequential UDPs and the cells built on them (latches, flip-flops with set/reset,
    which the flow never maps to) left out: a netlist using one fails to elaborate, naming it."""
    text = osu018.simulation_models()
    prims = {m.group(1): m.group(2) for m in
             re.finditer(r"^primitive\s+(\w+)(.*?)^endprimitive\b[^\n]*\n", text, re.S | re.M)}
    text = re.sub(r"^primitive\s+\w+.*?^endprimitive\b[^\n]*\n", "", text, flags=re.S | re.M)
    modules = {n: _udp_module(n, b) for n, b in prims.items()}
    for n, m in modules.items():            # a module instance needs a name, a primitive's need not
        if m:
            k = iter(range(1 << 30))
            text = re.sub(rf"^(\s*){n}\s*\(", lambda mm: f"{mm.group(1)}{n} {n}_{next(k)} (", text, flags=re.M)
    sequential = [n for n, m in modules.items() if m is None]

    def keep(m: re.Match) -> str:
        return "" if any(re.search(rf"\b{n}\b", m.group(0)) for n in sequential) else m.group(0)
    text = re.sub(r"^module\s.*?^endmodule\b[^\n]*\n", keep, text, flags=re.S | re.M)
    return text + "".join(m for m in modules.values() if m)


# ---- the scripts ------------------------------------------------------------------------------------------
# Three designs, each read and made ready as one side of a proof, then stashed under the side's name:
# the RTL elaborated, the RTL as Yosys's generic gates (where every flow starts), the mapped netlist.
def _elaborated(top: str) -> list[str]:
    """The RTL only elaborated: none of the synthesis passes touches it."""
    return [f"read_verilog {top}.v", "hierarchy -check -auto-top", "proc", "flatten -noscopeinfo",
            "setattr -unset init",          # init values play no part (and opt refuses conflicting ones)
            "opt -full", "memory -nomap",   # memory_dff: the read registers into the $mem_v2
            "opt -full"]


def _generic_gates(top: str) -> list[str]:
    """The RTL through the flows' shared front end (:func:`cosim.synth.flow.gate_level_steps`)."""
    return [*gate_level_steps(top), "setattr -unset init"]


def _mapped(library: str) -> list[str]:
    """The netlist with its cells' models flattened in as logic."""
    if library == "osu018":
        read = [f"read_verilog {MODELS}", f"read_verilog -lib {MACROS}", f"read_verilog {NETLIST}",
                "hierarchy -check -auto-top", "rename -hide t:* t:NMPU_RAM_* %d"]   # the macros keep their names
    else:
        read = [f"read_verilog {MODELS}", f"read_verilog {NETLIST}", "hierarchy -check -auto-top",
                f"rename -hide t:{sky130.LIB}__*"]      # instance names private: the nets keep the RTL's names
    mem = [] if library == "osu018" else ["memory -nomap", "opt -full"]    # the netlist's memories
    return [*read, "proc", "flatten -noscopeinfo", "setattr -unset init", "opt -full", *mem,
            # a named wire the netlist drives with x is dead logic: undriven, so no pair is made for it
            "setundef -anyseq", "delete t:$anyseq"]


def _side(name: str, design: list[str], cut: str) -> list[str]:
    """One side: the design, its memories cut (``memcut``: ``MEMCUT`` blocks; ``macros``: the OSU flow's
    macros, its plain names), enables and resets as logic (every register's hold path reads its Q by name)."""
    cuts = {"memcut": [f"techmap -map {MEMCUT} t:$mem_v2"],
            "macros": [f"techmap -map {MACRO_MAP} t:$mem_v2", "rename -unescape"]}[cut]
    return ["design -reset", *design, f"rename -top {name}", *cuts, "dffunmap", "opt_clean", f"design -stash {name}"]


def _prove(cut: str) -> list[str]:
    cell = "t:NMPU_RAM_*" if cut == "macros" else "t:MEMCUT"
    return ["design -reset", f"read_verilog -lib {MACROS if cut == 'macros' else MEMCUT_BB}",
            "design -copy-from gold -as gold gold", "design -copy-from gate -as gate gate",
            "equiv_make gold gate equiv", "hierarchy -top equiv",
            "select -assert-none t:$mem_v2 t:$mem",                        # every memory cut
            f"select -assert-none {cell} c:*_gold c:*_gate %u %i",          # every cut merged gold <-> gate
            f"select -assert-none t:* t:$* %d {cell} %d",                   # no other cell without a model
            "cd equiv", "techmap", "opt -fast -nodffe -nosdff",
            "abc -g AND,NAND,OR,NOR,XOR,XNOR,ANDNOT,ORNOT,MUX",             # SAT sweeping merges equal nodes
            "opt_clean", "cd ..",
            "equiv_simple", "equiv_induct -ignore-unknown-cells",
            f"tee -q -o {STATUS} equiv_status"]


# ---- the proof --------------------------------------------------------------------------------------------
@dataclass
class Step:
    """One proof: ``pairs`` signal pairs (``$equiv`` cells), ``unproven`` the names of those Yosys could
    not prove (``name[bit]``, output ports first)."""

    name: str
    pairs: int
    proven: int
    unproven: list[str]
    seconds: float
    cached: bool = False
    timed_out: bool = False     # stopped after the time limit: neither proved nor refuted

    @property
    def equivalent(self) -> bool:
        return self.pairs > 0 and not self.unproven and self.proven == self.pairs and not self.timed_out


@dataclass
class Proof:
    """Both steps: the RTL to Yosys's generic gates, those gates to the mapped netlist."""

    unit: str
    library: str
    steps: list[Step]
    folder: str

    @property
    def equivalent(self) -> bool:
        return all(s.equivalent for s in self.steps)

    @property
    def unproven(self) -> list[str]:
        return [n for s in self.steps for n in s.unproven]

    @property
    def timed_out(self) -> Step | None:
        return next((s for s in self.steps if s.timed_out), None)

    def line(self) -> str:
        if self.equivalent:
            return "equivalent"
        if self.timed_out:
            return f"unknown: {self.timed_out.name} not finished in {self.timed_out.seconds:.0f} s"
        return f"not equivalent: {self.unproven[0] if self.unproven else 'no signal pairs'}"

    def to_dict(self) -> dict[str, Any]:
        return {"unit": self.unit, "library": self.library, "equivalent": self.equivalent, "result": self.line(),
                "folder": self.folder,
                "steps": [{**asdict(s), "equivalent": s.equivalent} for s in self.steps]}


def _signal(raw: str, suffix: str) -> tuple[str, int]:
    m = re.match(r"\\?(.*?)" + suffix + r"(?: \[(\d+)\])?$", raw.strip())
    return (m.group(1), int(m.group(2) or 0)) if m else (raw.strip(), 0)


def parse_status(text: str, ports: set[str]) -> tuple[int, int, list[str]]:
    """``(pairs, proven, unproven names)`` from Yosys's ``equiv_status`` report."""
    m = re.search(r"Found (\d+) \$equiv cells", text)
    if not m:
        raise RuntimeError(f"no equiv_status report in:\n{text[-500:]}")
    pairs = int(m.group(1))
    p = re.search(r"Of those cells (\d+) are proven and (\d+) are unproven", text)
    proven = int(p.group(1)) if p else pairs
    names = set()
    for line in re.findall(r"Unproven \$equiv \S+: (.*)", text):
        sides = re.match(r"(\S+(?: \[\d+\])?) (\S+(?: \[\d+\])?)$", line.strip())
        if not sides:
            raise RuntimeError(f"equiv_status: unexpected line {line!r}")
        gname, gbit = _signal(sides.group(2), "_gate")
        oname, obit = _signal(sides.group(1), "_gold")
        name, bit = (gname, gbit) if gname in ports else (oname, obit)
        names.add((name not in ports, name, bit))
    return pairs, proven, [f"{n}[{b}]" for _, n, b in sorted(names)]


def _ports(rtl: str, top: str) -> set[str]:
    m = re.search(rf"^module\s+\\?{re.escape(top)}\s*\((.*?)\);", rtl, re.S | re.M)
    if not m:
        raise RuntimeError(f"module {top} not found in the RTL")
    return {p.strip().lstrip("\\") for p in m.group(1).split(",")}


def _run_step(folder: Path, name: str, files: dict[str, str], script: list[str], ports: set[str],
              notify: Callable[[str], None] | None, timeout: float | None) -> Step:
    """Run one proof in ``folder`` (skipped when the same files and script were proved there before; a step
    stopped at its time limit is not kept)."""
    folder.mkdir(parents=True, exist_ok=True)
    text = "\n".join(script) + "\n"
    key = hashlib.sha256(json.dumps([sorted(files.items()), text]).encode()).hexdigest()
    done = folder / "proof.json"
    if done.is_file():
        old = json.loads(done.read_text())
        if old.get("key") == key:
            return Step(**{**old["step"], "cached": True})
    for fname, content in files.items():
        (folder / fname).write_text(content)
    (folder / STATUS).unlink(missing_ok=True)
    if notify:
        notify(f"{name}: proving")
    t0 = time.perf_counter()
    try:
        run_yosys(text, folder, LOG, notify, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Step(name=name, pairs=0, proven=0, unproven=[], seconds=time.perf_counter() - t0, timed_out=True)
    pairs, proven, unproven = parse_status((folder / STATUS).read_text(), ports)
    step = Step(name=name, pairs=pairs, proven=proven, unproven=unproven, seconds=time.perf_counter() - t0)
    done.write_text(json.dumps({"key": key, "step": asdict(step)}))
    return step


def prove(rtl_verilog: str, top: str, netlist: Path, models: Path, library: str, folder: Path,
          unit: str = "fixed", notify: Callable[[str], None] | None = None, timeout: float | None = None) -> Proof:
    """Prove ``netlist`` equivalent to the RTL ``rtl_verilog`` (top module ``top``), in ``folder``.

    Two proofs whose chain is the claim: the RTL only elaborated against the RTL as Yosys's generic gates
    (the flows' shared front end: word-level optimisation, arithmetic to gates), then those gates against
    the mapped netlist with its cells' models (ABC's mapping, full adders, ties, macros, the netlist writer,
    the models). The first one does not depend on the library and is kept in ``folder / "rtl-generic"``
    for the other; a step whose files and script are unchanged is not proved again.

    ``library`` is ``"sky130"`` (``models``: the cell models :func:`cosim.synth.sky130.write_models` wrote
    beside the netlist) or ``"osu018"`` (``models``: the memory macros' models, ``nmpu_rams.v``; the cells'
    come from :func:`yosys_osu018_models`). Raises ``RuntimeError`` when a proof cannot be set up (a memory
    not cut, a cell without a model: Yosys's message). A step running longer than ``timeout`` seconds is
    stopped and reported as such (:attr:`Proof.timed_out`); the next step is then not tried.
    """
    if library not in LIBRARIES:
        raise ValueError(f"--library must be one of {', '.join(LIBRARIES)}, not {library!r}")
    ports = _ports(rtl_verilog, top)
    cut_files = {MEMCUT: memcut_map(), MEMCUT_BB: MEMCUT_BLACKBOX}
    first = _run_step(folder / "rtl-generic", "RTL -> generic gates", {f"{top}.v": rtl_verilog, **cut_files},
                      _side("gold", _elaborated(top), "memcut") + _side("gate", _generic_gates(top), "memcut")
                      + _prove("memcut"), ports, notify, timeout)
    if first.timed_out:
        return Proof(unit=unit, library=library, steps=[first], folder=str(folder))
    files = {f"{top}.v": rtl_verilog, NETLIST: Path(netlist).read_text()}
    if library == "osu018":
        macros = Path(models).read_text()
        files.update({MACROS: macros, MACRO_MAP: _macro_map(_macros_in(macros)), MODELS: yosys_osu018_models()})
        cut = "macros"
    else:
        files.update({MODELS: Path(models).read_text(), **cut_files})
        cut = "memcut"
    second = _run_step(folder / f"generic-{library}", f"generic gates -> {library} netlist", files,
                       _side("gold", _generic_gates(top), cut) + _side("gate", _mapped(library), cut) + _prove(cut),
                       ports, notify, timeout)
    return Proof(unit=unit, library=library, steps=[first, second], folder=str(folder))


def prove_unit(config, unit: str, library: str, netlist_dir: Path, folder: Path,
               notify: Callable[[str], None] | None = None, timeout: float | None = None) -> tuple[Proof, Path]:
    """Map ``unit`` of ``config`` as the flows do (sky130: :func:`cosim.synth.flow.synthesize`, the netlist
    whose area ``nmpu synth`` reports; OSU 0.18 um: :func:`cosim.synth.ppa.map_netlist`, the one OpenSTA
    times) into ``netlist_dir`` and prove it equivalent to the unit's RTL in ``folder``.

    Returns the proof and the netlist's path.
    """
    from .flow import synthesize, unit_verilog
    from .ppa import RAM_MODELS, map_netlist

    if library not in LIBRARIES:
        raise ValueError(f"--library must be one of {', '.join(LIBRARIES)}, not {library!r}")
    if library == "osu018":
        n = map_netlist(config, unit, netlist_dir, notify=notify)
        netlist, models = n.netlist, n.folder / RAM_MODELS
    else:
        r = synthesize(config, unit, "generic", netlist_dir, notify=notify)
        netlist, models = Path(r.files["netlist_sky130"]), Path(r.files["sky130_models"])
    rtl, top, _ = unit_verilog(config, unit)
    return prove(rtl, top, netlist, models, library, folder, unit, notify, timeout), netlist
