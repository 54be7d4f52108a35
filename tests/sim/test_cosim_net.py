"""RTL in the loop (`nmpu cosim`): a real network's tile outputs through the Verilated NMPU, both modes.

Every RTL output is compared with nmpu_model.apply on the same ADC codes and coefficients, and the
network accuracy with the RTL as post-processor must equal the golden model's. A broken RTL must be
caught on this data (a test that cannot fail proves nothing).

Builds: the bulk harness of the default config (~20 s cold), its FST and fault variants, the
cocotb build of the default config (shared with the random-vector suite) and of one BN/3-lane config.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cosim.sim import bulk, cocotb_mode as tb_layer
from cosim.sim.network import cosim_network, select_layers
from cosim.sim.layer_stream import XorShift, plan, read_stimulus, write_stimulus
from nmpu_model import apply, load_config
from nmpu_model.analog.tiles import TileParams
from nmpu_model.workloads.registry import digits_workload
from nmpu_model.network.analog_network import AnalogNetwork

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def nmpu(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cosim.cli", *args], capture_output=True, text=True)


def layer_data(config, images: int = 6, layer: int = 0, seed: int = 0):
    """ADC codes and coefficients of one analog layer of the digits CNN (the golden run's)."""
    work = digits_workload(images)
    net = AnalogNetwork.build(work.model, work.x_cal, seed=seed, t=3600.0,
                              tile=TileParams(adc_bits=config.adc_bits, dac_bits=config.output.bits,
                                              dac_signed=config.output.signed))
    _, trace = net.run(work.x_test, config, "fixed", record=True)
    lt = trace[net.analog_layers[layer]]
    return lt.adc_codes, lt.coeffs


# ---- no simulator -------------------------------------------------------------------------------
def test_select_layers() -> None:
    analog = ["3", "7", "12"]
    assert select_layers("all", analog) == analog
    assert select_layers("2,0", analog) == ["3", "12"]          # network order, whatever the order given
    assert select_layers("7,1", analog) == ["7"]                # a name and its index: once
    assert select_layers("3", analog) == ["3"]                  # a layer name wins over an index
    with pytest.raises(ValueError, match="index 5 out of range"):
        select_layers("5", analog)
    with pytest.raises(ValueError, match="neither an analog layer index"):
        select_layers("conv", analog)


def test_plan_blocks_pad_and_unpack() -> None:
    """64 columns on a 24-column, 3-lane unit: blocks 24/24/16, the last padded to 18; unpack inverts."""
    config = load_config(EXAMPLES / "bn_lanes3_trn.toml")
    rng = np.random.default_rng(1)
    x = rng.integers(-32, 32, (5, 64))
    co = {n: rng.integers(getattr(config, n).min, getattr(config, n).max + 1, 64)
          for n in ("scale", "offset", "bn_scale", "bn_offset")}
    s = plan(x, co, 3, config)
    assert [b.columns for b in s.blocks] == [(0, 24), (24, 48), (48, 64)]
    assert [b.beats[1] - b.beats[0] for b in s.blocks] == [5 * 8, 5 * 8, 5 * 6]
    assert [b.frac for b in s.blocks] == [3, None, None]
    assert [len(b.writes) for b in s.blocks] == [4 * 24, 4 * 24, 4 * 18]
    assert np.array_equal(s.unpack(np.concatenate([s.codes])), x)   # identity through the layout
    assert s.codes[-1, 1:].tolist() == [0, 0]                        # padding lanes carry 0
    with pytest.raises(ValueError, match="outside the 6-bit ADC range"):
        plan(x * 2, co, 3, config)
    with pytest.raises(ValueError, match="out_frac 9 outside"):
        plan(x, co, 9, config)


def test_stimulus_file_round_trip(tmp_path: Path) -> None:
    config = load_config(EXAMPLES / "lanes4.toml")
    rng = np.random.default_rng(2)
    x = rng.integers(-128, 128, (7, 70))
    co = {"scale": rng.integers(0, 256, 70), "offset": rng.integers(-128, 128, 70)}
    s = plan(x, co, -2, config)
    write_stimulus(s, tmp_path / "s.bin")
    lanes, blocks, codes, groups = read_stimulus(tmp_path / "s.bin")
    assert lanes == 4 and np.array_equal(codes, s.codes) and np.array_equal(groups, s.groups)
    assert [(f, n) for _, f, n in blocks] == [(-2, 7 * 16), (None, 7 * 2)]
    assert blocks[0][0][:2] == [(0, 0, int(co["scale"][0])), (0, 1, int(co["scale"][1]))]
    assert blocks[0][0][64] == (1, 0, int(co["offset"][0]) & 0xFF)  # two's complement bits


def test_xorshift_threshold_is_exact() -> None:
    r = XorShift(5)
    draws = [r.next24() for _ in range(1000)]
    assert len(set(draws)) > 990 and all(0 <= d < 1 << 24 for d in draws)
    for p in (0.7, 0.8, 0.5, 1.0, 1e-7):
        t = XorShift.threshold(p)
        assert all((u / (1 << 24) < p) == (u < t) for u in (t - 1, t, t + 1, *draws))


# ---- bulk mode ----------------------------------------------------------------------------------
@pytest.mark.xdist_group("cosim-bulk-default")
def test_bulk_all_layers_hardware_in_the_loop() -> None:
    res = cosim_network(digits_workload(24), load_config(), layers="all", mode="bulk", seed=1)
    assert [l.name for l in res.layers] == ["3", "7", "12"]
    # 24 images: conv 8x8 (32 columns), conv 4x4 (64), linear (64)
    assert [l.values for l in res.layers] == [24 * 64 * 32, 24 * 16 * 64, 24 * 64]
    assert res.mismatches == 0 and all(l.protocol_errors == 0 for l in res.layers)
    assert res.rtl == res.golden and res.logits_equal
    # stalls cost cycles: II 1 would be one cycle per value (lanes 1) plus the coefficient writes
    for l in res.layers:
        assert l.values + 2 * l.columns < l.cycles < 3 * l.values


@pytest.mark.xdist_group("cosim-bulk-default")
def test_bulk_several_chunks_per_layer() -> None:
    """Batches of 8 images: the RTL is called once per chunk and layer, each call with its own stall seed."""
    from dataclasses import replace

    res = cosim_network(replace(digits_workload(20), batch_size=8), load_config(), mode="bulk", seed=2)
    assert [l.calls for l in res.layers] == [3, 3, 3]
    assert [l.values for l in res.layers] == [20 * 64 * 32, 20 * 16 * 64, 20 * 64]
    assert res.mismatches == 0 and res.logits_equal and res.rtl == res.golden


@pytest.mark.xdist_group("cosim-bulk-default")
def test_cli_bulk_lines_json_and_exit_0(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    r = nmpu("cosim", "--images", "4", "--layers", "0,12", "--mode", "bulk", "--seed", "2", "--json", str(out))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 3
    for line, name in zip(lines, ["3", "12"]):
        fields = dict(kv.split("=") for kv in line.split())
        assert list(fields) == ["layer", "values", "mismatches", "cycles", "seconds", "values_per_s"]
        assert fields["layer"] == name and fields["mismatches"] == "0"
    assert lines[2].startswith("accuracy golden=") and "(equal;" in lines[2]
    d = json.loads(out.read_text())
    assert d["mismatches"] == 0 and d["accuracy_golden"] == d["accuracy_rtl"] and d["images"] == 4


@pytest.mark.xdist_group("cosim-bulk-default")
def test_bulk_waveform_window(tmp_path: Path) -> None:
    config = load_config()
    x, lc = layer_data(config, images=2, layer=2)
    r = bulk.run_layer(x, lc.codes, lc.out_frac, lc.config, seed=4, window=(50, 120), wave_name="pytest")
    assert r.waves is not None and r.waves.suffix in (".fst", ".vcd") and r.waves.stat().st_size > 0
    assert np.array_equal(r.outputs, apply(x, lc.config, lc.codes, "fixed", lc.out_frac))


@pytest.mark.parametrize("args,msg", [
    (["--layers", "5"], "--layers: index 5 out of range"),
    (["--mode", "icarus"], "--mode must be one of bulk, cocotb"),
    (["--window", "10:20"], "--window needs --waves"),
    (["--waves", "--window", "20:10"], "--window START:END needs 0 <= START < END"),
    (["--images", "0"], "--images must be >= 1"),
    (["--p-ready", "0"], "--p-ready must be in (0, 1]"),
])
def test_cli_bad_input_exits_2(args: list[str], msg: str, capsys: pytest.CaptureFixture) -> None:
    from cosim.cli import main    # in process: a subprocess per case would mostly time torch's import

    rc = main(["cosim", *([] if "--images" in args else ["--images", "2"]), *args])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert msg in err and len(err.strip().splitlines()) == 1


# ---- a broken RTL is caught on network data -------------------------------------------------------
@pytest.mark.xdist_group("cosim-bulk-fault")
def test_wrong_tie_rule_caught_on_network_data() -> None:
    r = nmpu("cosim", "--images", "6", "--mode", "bulk", "--fault", "tie")
    assert r.returncode == 1, r.stderr
    mism = [int(dict(kv.split("=") for kv in l.split())["mismatches"]) for l in r.stdout.splitlines()
            if l.startswith("layer=")]
    assert len(mism) == 3 and sum(mism) > 0, r.stdout
    assert "first mismatch" in r.stderr


@pytest.mark.xdist_group("cosim-bulk-fault")
def test_ignored_backpressure_caught_on_network_data() -> None:
    res = cosim_network(digits_workload(3), load_config(), layers="2", mode="bulk", fault="ready")
    (l,) = res.layers
    assert l.mismatches > 0 and l.protocol_errors > 0 and "deadlock" in l.first_error


# ---- cocotb mode, and bulk == cocotb bit for bit ----------------------------------------------------
@pytest.mark.xdist_group("cosim-cocotb")
def test_cocotb_one_layer_in_the_loop() -> None:
    res = cosim_network(digits_workload(2), load_config(), layers="0", mode="cocotb", seed=3)
    (l,) = res.layers
    assert l.name == "3" and l.values == 2 * 64 * 32 and l.mismatches == 0 and l.protocol_errors == 0
    assert res.rtl == res.golden and res.logits_equal


@pytest.mark.xdist_group("cosim-cocotb")
@pytest.mark.parametrize("cfg_name", ["default.toml", "bn_lanes3_trn.toml"])
def test_bulk_equals_cocotb_bit_for_bit(cfg_name: str) -> None:
    """Same layer data, same stall seed: the same outputs, and the same handshakes (cycle count).

    bn_lanes3_trn: BN stage, 3 lanes, 24-column memory, so the 64-column layer runs as three blocks with
    coefficient reloads and a padded last group.
    """
    config = load_config(EXAMPLES / cfg_name)
    x, lc = layer_data(config, images=2, layer=1)
    want = apply(x, lc.config, lc.codes, "fixed", lc.out_frac)
    b = bulk.run_layer(x, lc.codes, lc.out_frac, lc.config, seed=7, p_valid=0.6, p_ready=0.5)
    c = tb_layer.run_layer(x, lc.codes, lc.out_frac, lc.config, seed=7, p_valid=0.6, p_ready=0.5, tag="pytest-eq")
    assert np.array_equal(b.outputs, want) and np.array_equal(c.outputs, want)
    assert b.cycles == c.cycles and b.protocol_errors == c.protocol_errors == 0
    # another stall seed: other handshakes (seeds 7 and 8 happen to tie on bn_lanes3), the same outputs
    other = bulk.run_layer(x, lc.codes, lc.out_frac, lc.config, seed=10, p_valid=0.6, p_ready=0.5)
    assert other.cycles != b.cycles and np.array_equal(other.outputs, want)


@pytest.mark.xdist_group("cosim-cocotb")
def test_lost_beats_end_both_modes_alike() -> None:
    """Ignored backpressure loses beats: both modes stop at the same deadlock cycle with the same outputs."""
    config = load_config()
    x, lc = layer_data(config, images=1, layer=2)
    b = bulk.run_layer(x, lc.codes, lc.out_frac, lc.config, seed=5, fault="ready")
    c = tb_layer.run_layer(x, lc.codes, lc.out_frac, lc.config, seed=5, fault="ready", tag="pytest-ready")
    assert b.protocol_errors > 0 and "deadlock" in b.first_error
    assert (b.cycles, b.first_error) == (c.cycles, c.first_error)
    assert np.array_equal(b.outputs, c.outputs)
    assert not np.array_equal(b.outputs, apply(x, lc.config, lc.codes, "fixed", lc.out_frac))
