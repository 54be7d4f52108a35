"""Gate-level simulation: the sky130 netlists whose area ``nmpu synth`` reports compute the units.

Each netlist (with its cell models, :func:`cosim.synth.sky130.write_models`) runs in the same cocotb
testbench as the RTL, every output beat checked against the golden model; a netlist simulated with
one wrong cell model (the full adder's outputs swapped) must fail.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from cosim.synth import flow as synth
from cosim.sim.runner import verify
from nmpu_model import NMPUConfig, RTLParams

SMALL = NMPUConfig(rtl=RTLParams(lanes=1, columns=8))


def netlist(tmp_path: Path, unit: str) -> list[Path]:
    r = synth.synthesize(SMALL, unit, "generic", tmp_path)
    return [Path(r.files["sky130_models"]), Path(r.files["netlist_sky130"])]


@pytest.mark.slow
@pytest.mark.xdist_group("yosys")
def test_fixed_unit_netlist_bit_exact_and_a_wrong_cell_fails(tmp_path: Path) -> None:
    files = netlist(tmp_path, "fixed")
    res = verify(SMALL, vectors=2000, seed=11, netlist=files)
    assert res.details.get("error") is None and res.vectors == 2000 and res.mismatches == 0, res.details
    bad = tmp_path / "bad_models.v"
    text = files[0].read_text()
    assert "assign {COUT, SUM} =" in text
    bad.write_text(text.replace("assign {COUT, SUM} =", "assign {SUM, COUT} ="))
    res = verify(SMALL, vectors=300, seed=11, netlist=[bad, files[1]])
    assert res.mismatches > 0


@pytest.mark.slow
@pytest.mark.xdist_group("yosys")
def test_fp16_unit_netlist_bit_exact(tmp_path: Path) -> None:
    res = verify(SMALL, vectors=2000, seed=12, netlist=netlist(tmp_path, "fp16"), unit="fp16")
    assert res.details.get("error") is None and res.vectors == 2000 and res.mismatches == 0, res.details
    assert res.details["coverage"]["fma_inf"] > 0 and res.details["coverage"]["fma_subnormal"] > 0
