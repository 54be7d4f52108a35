"""The default configuration on Verilator: cocotb suite, cached rebuild, the `nmpu verify`/`export` commands, waves.

All tests here share one build (xdist group), the first one pays the ~10 s Verilator compile.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cosim.sim.runner import build, verify
from nmpu_model import apply, load_config
from rtl.nmpu import latency

pytestmark = pytest.mark.xdist_group("verilator-default")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def nmpu(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cosim.cli", *args], capture_output=True, text=True)


def test_default_config_bit_exact() -> None:
    config = load_config(EXAMPLES / "default.toml")
    res = verify(config, vectors=5000, seed=11, tag="pytest-default")
    assert res.details["error"] is None
    assert (res.vectors, res.mismatches) == (5000, 0)
    assert res.details["resets"] == 1 and res.details["layers"] >= 3
    # II 1 under stalls: cycles are bounded by beats / (p_valid * p_ready) plus writes and drains
    assert res.cycles < 5000 * 3


def test_latency_and_initiation_interval_measured() -> None:
    """Full throughput (valid and ready always high): back-to-back outputs (II 1), latency as documented."""
    config = load_config(EXAMPLES / "default.toml")
    res = verify(config, vectors=1200, seed=2, p_valid=1.0, p_ready=1.0, tag="full-throughput")
    assert res.mismatches == 0
    assert res.details["latency_min"] == latency(config) == 2
    per_layer = 1200 // res.details["layers"]
    assert res.details["longest_back_to_back"] >= per_layer - 1


def test_rebuild_is_cached() -> None:
    config = load_config(EXAMPLES / "default.toml")
    build(config)
    again = build(config)
    assert again.cached            # no Verilator run: only the Verilog export (~1 s) is redone
    assert again.meta["latency"] == latency(config) == 2


def test_cli_verify_prints_one_line_and_exits_0(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    r = nmpu("verify", "--config", str(EXAMPLES / "default.toml"), "--vectors", "400", "--seed", "5", "--json", str(out))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1
    fields = dict(kv.split("=") for kv in lines[0].split())
    assert list(fields) == ["vectors", "mismatches", "cycles", "sim"]
    assert fields["vectors"] == "400" and fields["mismatches"] == "0" and fields["sim"] == "verilator"
    assert int(fields["cycles"]) == json.loads(out.read_text())["cycles"]


def test_same_seed_same_run() -> None:
    config = load_config(EXAMPLES / "default.toml")
    a = verify(config, vectors=300, seed=9, tag="seed-a")
    b = verify(config, vectors=300, seed=9, tag="seed-b")
    c = verify(config, vectors=300, seed=10, tag="seed-c")
    assert a.cycles == b.cycles and a.details["layers"] == b.details["layers"]
    assert a.cycles != c.cycles


@pytest.mark.parametrize("args,msg", [
    (["--vectors", "0"], "--vectors must be a positive integer"),
    (["--seed", "-1"], "--seed must be a non-negative integer"),
    (["--sim", "modelsim"], "--sim must be one of verilator, icarus"),
    (["--config", "no/such.toml"], "no/such.toml: cannot read"),
    (["--json", "no/such/dir/r.json"], "--json: folder no/such/dir does not exist"),
    # the input is checked before the environment: the same message whatever the machine has installed
    (["--sim", "icarus", "--vectors", "0"], "--vectors must be a positive integer, not 0"),
    (["--sim", "icarus", "--config", "no/such.toml"], "no/such.toml: cannot read"),
])
def test_cli_verify_bad_input_exits_2(args: list[str], msg: str) -> None:
    r = nmpu("verify", *args)
    assert r.returncode == 2
    assert msg in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_waves_leave_a_trace_file() -> None:
    r = nmpu("verify", "--vectors", "50", "--waves")
    assert r.returncode == 0, r.stderr
    path = Path(r.stderr.split("waves: ")[1].split()[0])
    assert path.exists() and path.stat().st_size > 0
    assert path.suffix in (".fst", ".vcd")


def test_export_lints_clean_and_describes_ports(tmp_path: Path) -> None:
    v = tmp_path / "top.v"
    r = nmpu("export", "--config", str(EXAMPLES / "bn_stage.toml"), "-o", str(v), "--name", "nmpu_bn")
    assert r.returncode == 0, r.stderr
    text = v.read_text()
    assert "module nmpu_bn(" in text and "// latency 5 cycles" in text
    meta = json.loads(v.with_suffix(".json").read_text())
    assert meta["latency"] == 5 and meta["initiation_interval"] == 1
    ports = meta["ports"]
    for name in ("i_stream__valid", "i_stream__ready", "i_stream__payload", "o_stream__payload", "coef__data",
                 "out_frac__data", "clk", "rst"):
        assert name in ports and f" {name}" in text
    assert ports["i_stream__payload"]["width"] == 2 * 8 + 5          # 2 lanes x 8 bits + group (32 groups)


@pytest.mark.parametrize("changes", [
    {"output": {"bits": 1, "frac": -1, "signed": True, "rounding": "RND_INF", "overflow": "SAT_ZERO",
                "frac_min": -1, "frac_max": -1}},                      # one-value out_frac range: no zero-width shift
    {"adc_bits": 1, "scale": {"bits": 1, "frac": 0, "signed": False}, "rtl": {"lanes": 5, "columns": 5}},
    {"output": {"bits": 12, "frac": 4, "signed": False, "rounding": "RND_CONV", "overflow": "WRAP",
                "pre_truncate": 3, "frac_min": -20, "frac_max": 20}},
])
def test_export_lints_clean_on_edge_configs(tmp_path: Path, changes: dict) -> None:
    from nmpu_model import NMPUConfig
    from cosim.sim.toolchain import lint
    from rtl.export import write_verilog
    config = NMPUConfig.from_dict(changes, source="edge")
    write_verilog(config, tmp_path / "nmpu.v")
    assert lint(tmp_path / "nmpu.v").returncode == 0


def test_first_mismatch_report_is_the_model_disagreeing() -> None:
    """The broken build reports a mismatch whose 'expected' is what nmpu_model.apply says (not a stale value)."""
    config = load_config(EXAMPLES / "default.toml")
    res = verify(config, vectors=3000, seed=3, fault="tie", tag="fault-detail")
    fm = res.details["first_mismatch"]
    assert fm is not None and fm["got"] != fm["expected"]
    want = apply(np.array([fm["codes"]]), config, {k: np.array(v) for k, v in fm["coefficients"].items()},
                 out_frac=fm["out_frac"])[0].tolist()
    assert want == fm["expected"]


def test_same_config_from_two_sources_shares_one_build() -> None:
    """The Verilog text names no file: the defaults and default.toml are the same build, not two."""
    from nmpu_model import NMPUConfig
    a = build(load_config(EXAMPLES / "default.toml"))
    b = build(NMPUConfig())
    assert b.folder == a.folder and b.cached


@pytest.mark.slow
def test_cli_verify_gate_level_and_fp16_unit(tmp_path: Path) -> None:
    """``--gate-level`` simulates the sky130 netlist (`nmpu synth`'s) and says which; ``--unit fp16``
    checks the FP16 unit; both print the one result line."""
    cfg = tmp_path / "small.toml"
    cfg.write_text(load_config(EXAMPLES / "default.toml").to_toml().replace("columns = 256", "columns = 8"))
    for extra in (["--gate-level"], ["--unit", "fp16"]):
        r = nmpu("verify", "--config", str(cfg), "--vectors", "300", "--seed", "3", *extra)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip().startswith("vectors=300 mismatches=0 ")
        assert ("gate-level:" in r.stderr and "netlist_sky130.v" in r.stderr) == (extra == ["--gate-level"])
