"""``nmpu verify --equivalence``: the gate-level netlists proved equivalent to the RTL, and a wrong one refused.

A random configuration (small widths: each proof takes seconds) is mapped by the flows themselves (sky130:
the netlist whose area ``nmpu synth`` reports; OSU 0.18 um: the one OpenSTA times), proved equivalent, then
one cell of the same netlist swapped for another with the same pins (NAND2 for NOR2): the proof must fail
and name a signal of the design. The OSU cells' multiplexer comes from the library's UDP table, checked
against a multiplexer's truth table.
"""
from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from random_configs import draw_config  # noqa: E402

from cosim.synth import equivalence, sky130  # noqa: E402
from cosim.synth.flow import unit_verilog  # noqa: E402
from cosim.synth.ppa import RAM_MODELS  # noqa: E402

# draw 0 at max_bits 5: 4-bit codes, 4-bit scale, 2-bit offset, 5-bit output (TRN, SAT_SYM), 2 lanes
SEED = 0
# cells with the same pins and another function, per library: the first pair the netlist holds is swapped
SWAPS = {"sky130": [("sky130_fd_sc_hd__nand2_1", "sky130_fd_sc_hd__nor2_1"),
                    ("sky130_fd_sc_hd__xor2_1", "sky130_fd_sc_hd__xnor2_1"),
                    ("sky130_fd_sc_hd__and2_1", "sky130_fd_sc_hd__or2_1")],
         "osu018": [("NAND2X1", "NOR2X1"), ("XOR2X1", "XNOR2X1"), ("AND2X2", "OR2X2")]}


def _swap_one_cell(text: str, library: str) -> tuple[str, str]:
    for a, b in SWAPS[library]:
        m = re.search(rf"^(\s*){a}(\s+\S+\s*\()", text, re.M)
        if m:
            return text[:m.start()] + f"{m.group(1)}{b}{m.group(2)}" + text[m.end():], f"{a} -> {b}"
    raise AssertionError(f"none of {SWAPS[library]} in the netlist")


@pytest.mark.slow
@pytest.mark.xdist_group("equivalence")
@pytest.mark.parametrize("unit, library", [("fixed", "sky130"), ("fixed", "osu018"), ("fp16", "sky130")])
def test_netlist_proved_and_a_swapped_cell_refused(unit: str, library: str, tmp_path: Path) -> None:
    config = draw_config(SEED, max_lanes=2, max_groups=2, max_bits=5)
    rtl, top, _ = unit_verilog(config, unit)
    proof, netlist = equivalence.prove_unit(config, unit, library, tmp_path / "synth", tmp_path / "proof")
    assert proof.equivalent and proof.line() == "equivalent", proof.to_dict()
    assert all(s.pairs == s.proven > 0 for s in proof.steps)
    # every output port bit is among the pairs (a pair per port bit: nothing of the output left unchecked)
    outs = sum(int(m.group(1) or 0) + 1 for m in re.finditer(r"^\s*output\s+(?:\[(\d+):0\]\s*)?\S+;", rtl, re.M))
    assert proof.steps[1].pairs >= outs > 0

    bad_text, what = _swap_one_cell(netlist.read_text(), library)
    bad = tmp_path / "bad" / netlist.name
    bad.parent.mkdir()
    bad.write_text(bad_text)
    models = netlist.parent / (RAM_MODELS if library == "osu018" else sky130.MODELS)
    wrong = equivalence.prove(rtl, top, bad, models, library, tmp_path / "proof", unit)
    assert not wrong.equivalent and wrong.steps[0].cached and wrong.steps[0].equivalent, (what, wrong.to_dict())
    line = wrong.line()
    assert line.startswith("not equivalent: "), line
    name = re.fullmatch(r"not equivalent: (.+)\[\d+\]", line).group(1)
    # the signal named is one of the design's (a port, or a flattened RTL signal: instance.signal; the OSU
    # netlist's plain names write the dots as _), not a name Yosys made up
    idents = set(re.findall(r"\\?([A-Za-z_][\w$]*)", rtl))
    last = re.split(r"[.]", name)[-1]
    assert not name.startswith("$") and (last in idents or any(name.endswith("_" + i) for i in idents)), (what, line)

    if (unit, library) == ("fixed", "sky130"):      # a step stopped at its time limit is neither answer, nor kept
        late = equivalence.prove(rtl, top, netlist, models, library, tmp_path / "late", unit, timeout=0.05)
        assert not late.equivalent and late.line().startswith("unknown: RTL -> generic gates not finished in")
        assert len(late.steps) == 1 and not (tmp_path / "late" / "rtl-generic" / "proof.json").exists()


@pytest.mark.slow
@pytest.mark.xdist_group("equivalence")
def test_cli_proves_and_writes_json(tmp_path: Path) -> None:
    cfg = tmp_path / "draw.toml"
    cfg.write_text(draw_config(SEED, max_lanes=2, max_groups=2, max_bits=5).to_toml())
    out = tmp_path / "proof.json"
    r = subprocess.run([sys.executable, "-m", "cosim.cli", "verify", "--equivalence", "--config", str(cfg),
                        "--json", str(out)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "equivalent\n", r.stdout + r.stderr
    doc = json.loads(out.read_text())
    assert doc["equivalent"] and [s["name"] for s in doc["steps"]] == ["RTL -> generic gates",
                                                                       "generic gates -> sky130 netlist"]
    assert "signal pairs" in r.stderr and doc["netlist"].endswith("netlist_sky130.v")


@pytest.mark.parametrize("args, message", [
    (["--exhaustive"], "one at a time"),
    (["--vectors", "10"], "takes no --vectors"),
    (["--gate-level"], "takes no --gate-level"),
    (["--jobs", "2"], "takes no --jobs"),
    (["--library", "tsmc"], "invalid choice"),
    (["--timeout", "-1"], "--timeout must be a positive number of seconds"),
])
def test_cli_refusals(args: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    from cosim.cli import main    # in process; every refusal comes before a build
    rc = main(["verify", "--equivalence", *args])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_osu_multiplexer_from_its_table() -> None:
    text = equivalence.yosys_osu018_models()
    m = re.search(r"module udp_mux2 \(output (\w+), input (\w+), input (\w+), input (\w+)\);\s*assign \1 = (.*?);",
                  text)
    assert m, "udp_mux2 not made a module"
    _, in0, in1, sel, expr = m.groups()
    py = expr.replace("~", "not ").replace("&", " and ").replace("|", " or ")
    for a, b, s in itertools.product((0, 1), repeat=3):
        got = bool(eval(py, {}, {in0: a, in1: b, sel: s}))     # noqa: S307 (the expression this module wrote)
        assert got == bool(b if s else a), (a, b, s, expr)
    # no primitive left (Yosys reads none), every cell the OSU flow maps to still there
    assert "primitive" not in text
    for cell in ("DFFPOSX1", "MUX2X1", "FAX1", "HAX1", "NAND2X1", "OAI21X1"):
        assert re.search(rf"^module {cell} ", text, re.M), cell


def test_status_report_names_ports_first() -> None:
    report = ("Found 30 $equiv cells in equiv:\n  Of those cells 27 are proven and 3 are unproven.\n"
              "  Unproven $equiv $auto$1: \\acc_0.sum_gold [4] \\acc_0.sum_gate [4]\n"
              "  Unproven $equiv $auto$2: \\out_q_0.o_gold [3] \\o_stream__payload_gate [3]\n"
              "  Unproven $equiv $auto$3: \\out_q_0.o_gold [0] 1'x\n")
    pairs, proven, unproven = equivalence.parse_status(report, {"o_stream__payload", "clk"})
    assert (pairs, proven) == (30, 27)
    assert unproven == ["o_stream__payload[3]", "acc_0.sum[4]", "out_q_0.o[0]"]
