"""Deliberately broken RTL must make the verification fail loudly (a test that cannot fail proves nothing)."""
from __future__ import annotations

from pathlib import Path

import pytest

from cosim.sim.runner import verify
from nmpu_model import load_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.xdist_group("verilator-default")
def test_wrong_tie_rule_is_caught() -> None:
    res = verify(load_config(EXAMPLES / "default.toml"), vectors=3000, seed=3, fault="tie", tag="fault-tie")
    assert res.vectors == 3000
    assert res.mismatches > 0, "a wrong tie rule went unnoticed: the testbench does not hit ties"


@pytest.mark.xdist_group("verilator-fault-ready")
def test_ignored_backpressure_is_caught() -> None:
    res = verify(load_config(EXAMPLES / "default.toml"), vectors=1000, seed=3, fault="ready", tag="fault-ready")
    assert res.mismatches > 0 or res.details.get("error"), "beats lost under stalls went unnoticed"
