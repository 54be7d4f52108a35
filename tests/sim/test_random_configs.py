"""Every configuration the loader accepts builds and verifies, on both units.

Random configurations (:func:`random_configs.draw_config`: every format, rounding and overflow mode,
pre_truncate, BN or not, ReLU or not, lanes 1..8, 1..6 lane groups) go through

- Verilator's ``--lint-only -Wall`` with the project's waivers (the Verilog must be clean: a warning
  is a design to fix, never a waiver to add), and
- the real Verilator build and a short ``verify`` (cocotb, stalls, a reset), every beat checked
  against the golden model (2 draws of the NMPU, 1 of the FP16 unit with 1..3 lanes; more with the variables below).

Each draw is named by its seed. Replay one with ``NMPU_CONFIG_SEED=<seed> pytest tests/sim/test_random_configs.py``;
explore more with ``NMPU_CONFIG_DRAWS=<n>`` (draws 0 .. n-1 for both tests).
Two configurations that once failed to build are kept as named cases.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from random_configs import draw_config  # noqa: E402

from cosim.sim.runner import verify  # noqa: E402
from cosim.sim.toolchain import lint  # noqa: E402
from nmpu_model import NMPUConfig  # noqa: E402
from rtl.export import UNITS, write_verilog  # noqa: E402


def _draws(default: int) -> list[int]:
    if os.environ.get("NMPU_CONFIG_SEED"):
        return [int(os.environ["NMPU_CONFIG_SEED"])]
    return list(range(int(os.environ.get("NMPU_CONFIG_DRAWS", default))))


# Two configurations that once did not build (kept as they were found):
# the NMPU's output quantizer compared its shift with a bound every value meets (CMPCONST), and the
# FP16 unit's one-group coefficient memory had a zero-width address (`[-1:0]`).
FOUND = {
    "cmpconst": {"adc_bits": 8, "scale": {"bits": 5, "frac": 6, "signed": True},
                 "offset": {"bits": 12, "frac": 3, "signed": True},
                 "output": {"bits": 5, "frac": -1, "signed": True, "rounding": "TRN_ZERO", "overflow": "SAT_SYM",
                            "pre_truncate": 3},
                 "rtl": {"lanes": 2, "columns": 22}},
    "one-group": {"rtl": {"lanes": 2, "columns": 2}},
}


def _config(case: str, max_lanes: int = 8) -> NMPUConfig:
    if case in FOUND:
        return NMPUConfig.from_dict(FOUND[case], source=case)
    return draw_config(int(case.removeprefix("draw-")), max_lanes=max_lanes)


def _replay(case: str, unit: str) -> str:
    how = f"NMPU_CONFIG_SEED={case.removeprefix('draw-')} " if case.startswith("draw-") else ""
    return f"{unit} unit, {case}: replay with `{how}pytest tests/sim/test_random_configs.py -k '{case}'`"


# the FP16 unit's Verilog takes ~10x the NMPU's time to make and lint: it gets every fourth draw
LINT_CASES = [(f"draw-{s}", u) for s in _draws(16) for u in UNITS if u == "fixed" or s % 4 == 0
              or "NMPU_CONFIG_SEED" in os.environ] + [(c, u) for c in FOUND for u in UNITS]
# Verilator builds of the FP16 unit take ~25 s per lane on this machine's 2 cores: its build draws have
# 1..3 lanes (lanes are copies of one datapath; the lint draws above cover 1..8 lanes of both units)
FP16_BUILD_LANES = 3
BUILD_CASES = [(f"draw-{s}", u) for s in _draws(2) for u in UNITS if u == "fixed" or s < 1
               or "NMPU_CONFIG_SEED" in os.environ] + [(c, u) for c in FOUND for u in UNITS]


@pytest.mark.parametrize("case, unit", LINT_CASES)
def test_random_config_verilog_is_lint_clean(case: str, unit: str, tmp_path: Path) -> None:
    config = _config(case)
    meta = write_verilog(config, tmp_path / "unit.v", unit_name=unit)
    try:
        lint(tmp_path / "unit.v", meta["top"])
    except Exception as e:
        raise AssertionError(f"{_replay(case, unit)}\n{config.to_toml()}\n{e}") from None


@pytest.mark.slow
@pytest.mark.parametrize("case, unit", BUILD_CASES)
def test_random_config_builds_and_verifies(case: str, unit: str) -> None:
    config = _config(case, FP16_BUILD_LANES if unit == "fp16" else 8)
    try:
        res = verify(config, vectors=300, seed=3, unit=unit, tag="random-config")
    except RuntimeError as e:
        raise AssertionError(f"{_replay(case, unit)}\n{config.to_toml()}\n{e}") from None
    where = f"{_replay(case, unit)}\n{config.to_toml()}"
    assert res.details.get("error") is None, f"{where}\n{res.details['error']}"
    assert (res.vectors, res.mismatches) == (300, 0), f"{where}\nfirst mismatch: {res.details.get('first_mismatch')}"
