"""``nmpu verify --exhaustive``: every input of a configuration through the RTL against the golden model.

The plan is checked against an independent count of the input space (every ADC code x every coefficient
code x every ``out_frac``, each exactly once), the run against the RTL on small configurations (a fixed
one, and random draws the loader accepts, one of them large enough to need a sub-space), and a broken
rounding rule must be caught on a tie that exact arithmetic confirms.
"""
from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from random_configs import draw_config  # noqa: E402

from cosim.sim import exhaustive  # noqa: E402
from nmpu_model import NMPUConfig, load_config  # noqa: E402

# 32 codes x 16 scales x 16 offsets x 5 out_frac values; ties to even at the output, so ties matter
SMALL = {"adc_bits": 5, "relu": False,
         "scale": {"bits": 4, "frac": 3, "signed": False}, "offset": {"bits": 4, "frac": 1, "signed": True},
         "output": {"bits": 4, "frac": 0, "signed": True, "rounding": "RND_CONV", "overflow": "SAT",
                    "frac_min": -2, "frac_max": 2},
         "rtl": {"lanes": 2, "columns": 8}}


def _range(fmt) -> range:
    lo = -(1 << (fmt.bits - 1)) if fmt.signed else 0
    return range(lo, lo + (1 << fmt.bits))


def _inputs(plan: exhaustive.Plan, chunk_values: int) -> Counter:
    """Every (out_frac, coefficient codes...) column the plan's chunks stream, counted."""
    seen: Counter = Counter()
    for sub, frac, lo, hi in plan.chunks(chunk_values):
        c = sub.coefficients(plan.config, lo, hi)
        seen.update((frac, *row) for row in zip(*(c[n].tolist() for n in plan.config.coef_names)))
    return seen


@pytest.mark.parametrize("seed", range(12))
def test_plan_is_the_input_space(seed: int) -> None:
    config = draw_config(seed, max_lanes=3, max_groups=3, max_bits=4)
    names = config.coef_names
    fracs = range(config.out_frac_min, config.out_frac_max + 1)
    ranges = [_range(getattr(config, n)) for n in names]
    codes = 1 << config.adc_bits
    space = codes * len(fracs) * len(list(itertools.product(*ranges)))
    plan = exhaustive.plan_space(config, limit=space)
    assert plan.full and plan.total == space and plan.values == space
    seen = _inputs(plan, chunk_values=7 * codes * config.rtl.columns)   # several chunks, a short last one
    assert set(seen.values()) == {1}, "a combination streamed twice"
    assert set(seen) == {(f, *row) for f in fracs for row in itertools.product(*ranges)}
    # one value short of the space: a sub-space (BN: one coefficient at a time), within the limit
    if config.bn_stage:
        sub = exhaustive.plan_space(config, limit=space - 1)
        assert not sub.full and sub.values <= space - 1 and "sub-space" in sub.describe()
        cols = _inputs(sub, 1 << 20)
        for k, name in enumerate(names):
            # every value of each coefficient appears, with the others at corner values only
            assert {key[1 + k] for key in cols} == set(ranges[k])
            for j, other in enumerate(names):
                if j != k:
                    corners = set(exhaustive.corner_values(getattr(config, other)).tolist())
                    assert corners <= set(ranges[j])
                    lo, hi = ranges[j][0], ranges[j][-1]
                    assert {lo, hi} <= corners and (lo > 0 or hi < 0 or 0 in corners)


def test_refusal_states_the_size_and_time() -> None:
    config = NMPUConfig.from_dict(SMALL)
    with pytest.raises(ValueError, match=r"40,960 values.* beyond the limit of 100 values") as e:
        exhaustive.plan_space(config, limit=100)
    assert "\n" not in str(e.value)


@pytest.mark.xdist_group("cosim-bulk-fault")      # the default configuration's tie-fault build, shared
def test_wrong_tie_rule_is_caught_on_a_tie() -> None:
    config = load_config(None)
    assert (config.scale.frac, config.offset.frac, config.output.rounding.name, config.relu) == (7, 1, "RND", True)
    plan = exhaustive.plan_space(config, limit=1 << 24)      # a sub-space: scale, then offset, in full
    # every scale with the offset at its 7 corners (-128, -127, -1, 0, 1, 126, 127), then every offset with the
    # scale at its 4 (0, 1, 254, 255)
    assert not plan.full and plan.values == 256 * 16 * 256 * (7 + 4)
    res = exhaustive.run(plan, fault="tie")
    assert res.values == plan.values and res.mismatches > 0
    m = res.first_mismatch
    # exact: the value the output rounds is code * scale / 2^7 + offset / 2^1, at 2^out_frac
    y = (Fraction(m["code"] * m["scale"], 128) + Fraction(m["offset"], 2)) * Fraction(2) ** m["out_frac"]
    assert y - (y.numerator // y.denominator) == Fraction(1, 2), f"not a tie: {m}"
    up = y.numerator // y.denominator + 1                    # RND: ties toward +inf; then ReLU, saturation
    assert m["model"] == min(127, max(0, up)) and m["rtl"] != m["model"]


@pytest.mark.xdist_group("bulk-exhaustive")
def test_cli_checks_every_input(tmp_path: Path) -> None:
    cfg = tmp_path / "small.toml"
    cfg.write_text(NMPUConfig.from_dict(SMALL).to_toml())
    out = tmp_path / "exh.json"
    r = subprocess.run([sys.executable, "-m", "cosim.cli", "verify", "--exhaustive", "--config", str(cfg),
                        "--json", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:2] == ["vectors=40960", "mismatches=0"]
    assert "the whole input space" in r.stderr
    doc = json.loads(out.read_text())
    assert doc["values"] == doc["space_values"] == 40960 and doc["full"] and doc["protocol_errors"] == 0
    assert doc["cycles"] >= 40960 // 2          # two lanes: at most two values a cycle


@pytest.mark.parametrize("args, message", [
    (["--unit", "fp16"], "covers the fixed-point NMPU"),
    (["--vectors", "10"], "takes no --vectors"),
    (["--gate-level"], "takes no --gate-level"),
    (["--limit", "10"], "beyond the limit of 10 values"),
    (["--jobs", "0"], "--jobs must be a positive integer"),
])
def test_cli_refusals(args: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    from cosim.cli import main    # in process; every refusal comes before a build
    rc = main(["verify", "--exhaustive", *args])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.xdist_group("bulk-exhaustive")
def test_random_configuration_with_bn_subspace() -> None:
    # draw 1 (max_bits 5) has the BN stage, 4.2 M values: one coefficient at a time within 2^19
    config = draw_config(1, max_lanes=3, max_groups=3, max_bits=5)
    plan = exhaustive.plan_space(config, limit=1 << 19)
    assert config.bn_stage and not plan.full
    res = exhaustive.run(plan, jobs=2)
    assert (res.values, res.mismatches, res.protocol_errors) == (plan.values, 0, 0), res.first_mismatch
