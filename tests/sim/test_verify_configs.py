"""The cocotb suite on Verilator over configurations that together use every rounding and overflow mode,
the BN stage, lanes > 1 (power of two and not), unsigned outputs and pre_truncate, in four builds (with default.toml's).
lanes4.toml and narrow_rnd_zero.toml (unsigned outputs, narrow widths, negative fracs) are verified by
`nmpu verify` by hand, not here, to keep the suite to a few builds; tests/rtl/test_nmpu.py runs random
configurations of that kind through amaranth.sim.

| config | quantizers (rounding/overflow/pre_truncate) | lanes |
| --- | --- | --- |
| default.toml | out RND/SAT | 1 |
| bn_stage.toml | mid RND_CONV/SAT_SYM/2, out TRN_ZERO/SAT_ZERO | 2 |
| bn_lanes3_trn.toml | mid TRN/WRAP, out RND_MIN_INF/SAT_SYM | 3 |
| lanes16_bn.toml | mid RND_ZERO/SAT, out RND_INF/WRAP/1 unsigned (a big design: Verilator's PCH build) | 16 |
"""
from __future__ import annotations

from pathlib import Path

import pytest

from cosim.sim.runner import verify
from nmpu_model import OVERFLOW_MODES, ROUNDING_MODES, NMPUConfig, RTLParams, load_config
from rtl.nmpu import latency

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONFIGS = ["bn_stage", "bn_lanes3_trn", "lanes16_bn"]


def test_configs_cover_every_mode() -> None:
    seen_r, seen_o = set(), set()
    for name in ["default"] + CONFIGS:
        c = load_config(EXAMPLES / f"{name}.toml")
        for f in [c.output] + ([c.mid] if c.bn_stage else []):
            seen_r.add(f.rounding)
            seen_o.add(f.overflow)
    assert seen_r == set(ROUNDING_MODES) and seen_o == set(OVERFLOW_MODES)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xdist_group(f"verilator-{n}")) for n in CONFIGS])
def test_config_bit_exact(name: str) -> None:
    config = load_config(EXAMPLES / f"{name}.toml")
    n = 1500 if config.rtl.lanes >= 16 else 5000      # 16 codes a beat: 24,000 codes
    res = verify(config, vectors=n, seed=21, tag="pytest")
    assert res.details["error"] is None, res.details["error"]
    assert (res.vectors, res.mismatches) == (n, 0), res.details["first_mismatch"]
    # some beat went through without a stall: the fewest cycles seen is the documented latency
    assert res.details["latency_min"] == latency(config) == (5 if config.bn_stage else 2)


@pytest.mark.xdist_group("icarus")
def test_icarus_second_simulator() -> None:
    """Icarus (brought by `make install`) runs the same testbench: the NMPU with BN, and the FP16 unit."""
    res = verify(load_config(EXAMPLES / "bn_stage.toml"), vectors=500, seed=5, sim="icarus", tag="pytest")
    assert res.details["error"] is None and (res.vectors, res.mismatches) == (500, 0)
    small = NMPUConfig(rtl=RTLParams(lanes=1, columns=8))
    res = verify(small, vectors=200, seed=5, sim="icarus", unit="fp16", tag="pytest")
    assert res.details["error"] is None and (res.vectors, res.mismatches) == (200, 0)
