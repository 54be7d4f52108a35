"""Timing, power and energy in the OSU 0.18 um library (``nmpu synth`` PPA): against an independent OpenSTA
run, power laws that must hold, the activity source, and the VCD toggle counter on a hand-written trace."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from cosim.cli import main
from cosim.sim.activity import toggle_counts
from cosim.synth import ppa
from nmpu_model.golden.config import load_config

pytestmark = pytest.mark.xdist_group("ppa")


@pytest.fixture(scope="session")
def synth_doc(tmp_path_factory) -> dict:
    """`nmpu synth --compare` on the default configuration, activity from a real layer (builds shared with
    `nmpu run --quick`: same configuration, same netlists, the same 16 samples). Session-scoped: a module fixture is made again
    each time the worker comes back to this module from another one (measured: twice, ~230 s each)."""
    d = tmp_path_factory.mktemp("ppa")
    out = d / "synth.json"
    assert main(["synth", "--compare", "--no-precisions", "--samples", "16", "--out", str(d / "o"), "--json", str(out)]) == 0
    return json.loads(out.read_text())


@pytest.mark.slow
def test_critical_path_reproduced_by_an_independent_opensta_run(synth_doc: dict, tmp_path: Path) -> None:
    """OpenSTA, given only the netlist and Liberty files the JSON names, finds the same critical path (5%)."""
    for unit in ("fixed", "fp16"):
        t = synth_doc[unit]["timing"]
        top = synth_doc[unit]["osu018"]["top"]
        period = 2 * t["critical_path_ns"]
        script = tmp_path / f"{unit}.tcl"
        script.write_text("\n".join([
            f"read_liberty {t['liberty']}", f"read_liberty {t['macro_liberty']}", f"read_verilog {t['netlist']}",
            f"link_design {top}", f"create_clock -name c -period {period} [get_ports clk]",
            "set_input_delay 0 -clock c [delete_from_list [all_inputs] [get_ports clk]]",
            "set_output_delay 0 -clock c [all_outputs]", "report_checks -path_delay max -digits 4", "exit"]) + "\n")
        out = subprocess.run(["sta", "-no_splash", "-no_init", "-exit", str(script)], capture_output=True,
                             text=True).stdout
        m = re.search(r"(-?[\d.]+)\s+slack", out)
        assert m, out[-2000:]
        crit = period - float(m.group(1))
        assert crit == pytest.approx(t["critical_path_ns"], rel=0.05), unit
        assert t["fmax_mhz"] == pytest.approx(1000 / t["critical_path_ns"], rel=1e-3)


@pytest.mark.slow
def test_fixed_unit_is_faster_and_cheaper_per_value(synth_doc: dict) -> None:
    fx, fp = synth_doc["fixed"], synth_doc["fp16"]
    assert fx["timing"]["fmax_mhz"] > fp["timing"]["fmax_mhz"]
    assert fx["energy_pj_per_value"] < fp["energy_pj_per_value"]
    for u in (fx, fp):
        p = u["power"]
        assert p["mw"] == pytest.approx(p["internal_mw"] + p["switching_mw"] + p["leakage_mw"], rel=1e-6)
        # energy per value = power / (clock x lanes): one value per lane and cycle at full throughput
        assert u["energy_pj_per_value"] == pytest.approx(p["mw"] * 1e-3 / (p["clock_mhz"] * 1e6) * 1e12, rel=1e-9)
        assert p["activity"].startswith("gate-level simulation") and "digits-cnn layer" in p["activity"]
        assert Path(u["timing"]["netlist"]).exists() and Path(u["timing"]["liberty"]).name == "osu018_stdcells.lib"
    q = synth_doc["ppa"]
    assert q["energy_ratio"] == pytest.approx(fp["energy_pj_per_value"] / fx["energy_pj_per_value"])
    # the FP16 unit pipelined (5-stage FMAs) runs at about the fixed unit's clock, and still costs more per value
    pp, e = synth_doc["fp16_pipelined"], q["equal_clock"]
    assert pp["latency"] == fp["latency"] + 2 and pp["osu018"]["flip_flops"] > fp["osu018"]["flip_flops"]
    assert pp["timing"]["fmax_mhz"] > 1.3 * fp["timing"]["fmax_mhz"]
    assert e["clock_mhz"] == min(fx["timing"]["fmax_mhz"], pp["timing"]["fmax_mhz"]) and e["of_fixed_fmax"] > 0.9
    assert e["fixed"]["clock_mhz"] == e["fp16_pipelined"]["clock_mhz"] == e["clock_mhz"]
    assert e["fixed"]["energy_pj_per_value"] < e["fp16_pipelined"]["energy_pj_per_value"]
    assert Path(q["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_power_follows_the_activity(synth_doc: dict) -> None:
    """Zero activity with the clock held: leakage only; doubling every toggle rate raises dynamic power;
    a real layer's activity differs from random codes', and each report says which it used."""
    from cosim.sim import activity as act
    from nmpu_model.workloads.registry import load_workload

    config = load_config(None)
    d = Path(synth_doc["fixed"]["osu018"]["folder"])
    n = ppa.map_netlist(config, "fixed", d.parent)
    clock = synth_doc["fixed"]["timing"]["fmax_mhz"]
    stim = act.layer_stimulus(load_workload("digits-cnn"), config, samples=32)
    acts = {}
    for kind, s in (("layer", stim), ("random", act.random_codes(stim, config))):
        m = act.measure(config, "fixed", [n.netlist] + n.models, s, n.top)
        acts[kind] = ppa.Activity(m["nets"], m["source"], m["cycles"], m["values"])
    base = ppa.power(n, clock, acts["layer"])
    zero = ppa.power(n, clock, acts["layer"].scaled(0), clock_running=False)
    assert zero.leakage_mw > 0 and zero.mw == pytest.approx(zero.leakage_mw, rel=1e-3)
    double = ppa.power(n, clock, acts["layer"].scaled(2))
    dyn = lambda p: p.internal_mw + p.switching_mw   # noqa: E731
    assert dyn(double) > 1.3 * dyn(base) and double.switching_mw == pytest.approx(2 * base.switching_mw, rel=1e-3)
    rand = ppa.power(n, clock, acts["random"])
    assert rand.mw != pytest.approx(base.mw, rel=1e-4)
    assert "uniform random ADC codes" in rand.activity and "uniform random" not in base.activity
    assert acts["layer"].nets != acts["random"].nets


def test_toggle_counter_on_a_hand_written_trace(tmp_path: Path) -> None:
    """Toggles and time high per net bit inside the window, against counts worked by hand."""
    vcd = tmp_path / "t.vcd"
    vcd.write_text("""$timescale 1ps $end
$scope module TOP $end
$scope module top $end
$var wire 1 ! a $end
$var wire 2 " bus [1:0] $end
$scope module cell $end
$var wire 1 # inside $end
$upscope $end
$upscope $end
$upscope $end
$enddefinitions $end
#0
0!
b00 "
0#
#10
1!
b01 "
1#
#20
0!
b11 "
#30
1!
b10 "
#40
0!
#50
""")
    counts, span = toggle_counts(vcd, "top", (5.0, 45.0))
    assert span == 40.0
    assert set(counts) == {"a", "bus[0]", "bus[1]"}               # the cell's insides are not nets of top
    # a: rises at 10, 30, falls at 20, 40 -> 4 toggles; high 10..20 and 30..40 = 20 ps
    assert counts["a"] == (4, 20.0)
    # bus[0]: 0 ->1 at 10, stays at 20, ->0 at 30: 2 toggles, high 10..30 = 20 ps
    assert counts["bus[0]"] == (2, 20.0)
    # bus[1]: ->1 at 20, stays: 1 toggle, high 20..45 = 25 ps
    assert counts["bus[1]"] == (1, 25.0)


def test_bad_input_is_one_line(tmp_path: Path, capsys) -> None:
    assert main(["synth", "--samples", "0", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["nmpu synth: error: --samples must be a positive integer, not 0"]
    with pytest.raises(ValueError, match="clock must be a positive number of MHz"):
        ppa.power(None, 0.0, 0.1)   # type: ignore[arg-type]


@pytest.mark.slow
def test_osu018_netlists_compute_the_units_bit_for_bit(synth_doc: dict) -> None:
    """The netlists whose timing and power are reported, with the library's cell models and the memory
    macros' models, in the random-vector testbench (the activity run's build: traced, VCD)."""
    from cosim.sim.runner import verify

    config = load_config(None)
    for unit, seed in (("fixed", 21), ("fp16", 22)):
        o = synth_doc[unit]["osu018"]
        files = [Path(o["netlist"])] + [Path(p) for p in o["models"]]
        res = verify(config, vectors=1500, seed=seed, netlist=files, unit=unit, waves=True, trace="vcd")
        assert res.details.get("error") is None and res.vectors == 1500 and res.mismatches == 0, res.details


def _fake_netlist(tmp_path: Path, lanes: int):
    from types import SimpleNamespace as NS

    return NS(folder=tmp_path, lanes=lanes, top="top", netlist=tmp_path / "n.v", liberty=tmp_path / "l.lib",
              macro_liberty=tmp_path / "m.lib")


# what OpenSTA 2019's report_power and report_checks print (the lines the parser reads), values chosen by hand
STA_POWER = """Group                  Internal  Switching    Leakage      Total
                          Power      Power      Power      Power
----------------------------------------------------------------
Sequential           1.0e-04    2.0e-05    1.0e-08    1.2001e-04
Combinational        6.0e-04    7.8e-04    2.0e-08    1.38002e-03
----------------------------------------------------------------
Total                7.0e-04    8.0e-04    3.0e-08    1.50003e-03
"""
STA_TIMING = "Startpoint: a_reg (rising edge)\nEndpoint: y_reg (rising edge)\nworst slack 7.5000\n"


@pytest.mark.parametrize("lanes", [1, 3, 4])
def test_energy_per_value_and_fmax_by_hand(tmp_path: Path, monkeypatch, lanes: int) -> None:
    """Energy per value = total power / (clock x lanes): 1.50003 mW at 100 MHz is 15.0003 pJ per cycle, shared
    by the values the lanes produce in it; fmax = 1 / (period - worst slack) = 1 / 2.5 ns = 400 MHz."""
    monkeypatch.setattr(ppa, "_run_sta", lambda folder, script, name: STA_POWER if "power" in name else STA_TIMING)
    n = _fake_netlist(tmp_path, lanes)
    p = ppa.power(n, 100.0, 0.1)   # type: ignore[arg-type]
    assert p.mw == pytest.approx(1.50003) and p.switching_mw == pytest.approx(0.8)
    assert p.internal_mw == pytest.approx(0.7) and p.leakage_mw == pytest.approx(3.0e-5)
    assert p.energy_pj_per_value == pytest.approx(15.0003 / lanes, rel=1e-12)
    # at half the clock, the same power is twice the energy per value
    assert ppa.power(n, 50.0, 0.1).energy_pj_per_value == pytest.approx(2 * 15.0003 / lanes)   # type: ignore[arg-type]
    t = ppa.timing(n, 10.0)   # type: ignore[arg-type]
    assert t.critical_path_ns == 2.5 and t.fmax_mhz == 400.0 and t.slack_ns == 7.5
    assert (t.startpoint, t.endpoint) == ("a_reg", "y_reg")


def _unit(key: str, unit: str, area: float, lanes: int, fmax: float, mw: float):
    from cosim.studies.ppa import UnitPPA

    t = ppa.Timing(netlist=f"{key}.v", liberty="l.lib", macro_liberty="m.lib", library="lib", period_ns=10.0,
                   slack_ns=10.0 - 1000 / fmax, critical_path_ns=1000 / fmax, fmax_mhz=fmax, startpoint="a",
                   endpoint="b", sta_script="s.tcl", sta_log="s.log")
    p = ppa.Power(mw=mw, internal_mw=mw / 2, switching_mw=mw / 2, leakage_mw=0.0, clock_mhz=fmax, activity="hand",
                  activity_nets=None, energy_pj_per_value=mw * 1e-3 / (fmax * 1e6 * lanes) * 1e12)
    return UnitPPA(key=key, unit=unit, latency=4, fp16_fma_stages=3, activity_kind="layer",
                   osu018={"area": area, "lanes": lanes, "flip_flops": 10}, timing=t, power=p)


def test_ppa_study_json_round_trip_and_tables_by_hand() -> None:
    """The study written into `nmpu synth`'s JSON reads back equal, and its tables show ratios worked by hand:
    fixed 1,000 um^2 at 200 MHz and 1 mW, FP16 4,000 um^2 at 100 MHz and 2 mW, both 2 lanes. Energy per value
    2.5 pJ and 10 pJ (ratio 4); throughput per area 200e6 * 2 / 1e-3 mm^2 = 4e11 and 100e6 * 2 / 4e-3 = 5e10 (8x);
    4 fixed lanes' worth of area in the FP16 unit at twice its clock: 8x its throughput."""
    from cosim.report.tables import ppa_markdown, ppa_text
    from cosim.studies.ppa import PPAComparison, PPAStudy

    fx, fp = _unit("fixed", "fixed", 1000.0, 2, 200.0, 1.0), _unit("fp16", "fp16", 4000.0, 2, 100.0, 2.0)
    assert fx.energy_pj_per_value == pytest.approx(2.5) and fp.energy_pj_per_value == pytest.approx(10.0)
    assert fx.throughput_per_mm2 == pytest.approx(4e11) and fp.throughput_per_mm2 == pytest.approx(5e10)
    comp = PPAComparison(library="lib", activity="layer", stimulus="hand", fmax_ratio=2.0, energy_ratio=4.0,
                         area_ratio=4.0, throughput_per_area_ratio=8.0, fixed_lanes_in_fp16_area=4.0,
                         throughput_in_fp16_area_ratio=8.0)
    study = PPAStudy(library="lib", activity="layer", stimulus="hand", units={"fixed": fx, "fp16": fp},
                     comparison=comp)
    doc: dict = {"fixed": {"area": 1.0}}
    study.merge_into(doc)
    doc = json.loads(json.dumps(doc))
    assert doc["fixed"]["area"] == 1.0 and doc["fixed"]["timing"]["fmax_mhz"] == 200.0     # synthesis' keys kept
    assert PPAStudy.from_json(doc) == study
    assert PPAStudy.from_json({"fixed": {"area": 1.0}}) is None
    text = ppa_text(study)
    assert "fmax 2.00x, energy per value 4.00x lower, throughput per area 8.00x" in text
    assert "4.0 fixed-point lanes fit in the FP16 unit's area: 8.0x its throughput" in text
    assert "fmax **2.00x**, energy per value **4.00x** lower" in "\n".join(ppa_markdown(study))
    assert "| fixed-point NMPU | 1,000 | 4 | 5.00 | 200.0 | 1.00 | 2.5 | 400.00 |" in ppa_markdown(study)


def test_power_with_a_traced_activity_and_what_sta_could_not_match(tmp_path: Path, monkeypatch) -> None:
    """Per-net activity: each net becomes one set_act line (duty clamped to [0, 1]); the report says how many traced
    nets OpenSTA found; more than half missing is a naming mismatch, refused. Errors of a report without figures."""
    scripts: list[str] = []
    missing = {"n": 1}

    def sta(folder, script, name):
        scripts.append(script)
        return STA_POWER + f"activity: nets not in the netlist: {missing['n']}\n"

    monkeypatch.setattr(ppa, "_run_sta", sta)
    act = ppa.Activity({"b[1]": (0.25, 0.5), "a": (1.0, 1.5), "c": (0.0, -0.2)}, "hand-made", 100, 100)
    n = _fake_netlist(tmp_path, 2)
    p = ppa.power(n, 200.0, act)   # type: ignore[arg-type]
    assert p.activity == "hand-made" and p.activity_nets == "2 of 3 traced nets"
    assert p.energy_pj_per_value == pytest.approx(1.50003e-3 / (200e6 * 2) * 1e12, rel=1e-12)
    lines = [ln for ln in scripts[-1].splitlines() if ln.startswith("set_act ")]
    assert lines == ["set_act {a} 1 1", "set_act {b[1]} 0.25 0.5", "set_act {c} 0 0"]
    assert "set_case_analysis 0 [get_ports clk]" not in scripts[-1]
    ppa.power(n, 200.0, 0.0, clock_running=False)   # type: ignore[arg-type]
    assert "set_case_analysis 0 [get_ports clk]" in scripts[-1]
    assert "set_power_activity -global -activity 0 -duty 0.5" in scripts[-1]
    missing["n"] = 2
    with pytest.raises(RuntimeError, match=r"^2 of 3 traced nets are not in "):
        ppa.power(n, 200.0, act)   # type: ignore[arg-type]
    for bad in (0.0, -1.0, float("nan"), float("inf"), "100"):
        with pytest.raises(ValueError, match="clock must be a positive number of MHz"):
            ppa.power(n, bad, 0.1)   # type: ignore[arg-type]
    with pytest.raises(ValueError, match="activity must be a non-negative toggle rate, not -0.1"):
        ppa.power(n, 100.0, -0.1)   # type: ignore[arg-type]
    monkeypatch.setattr(ppa, "_run_sta", lambda folder, script, name: "no figures\n")
    with pytest.raises(RuntimeError, match="OpenSTA printed no power total"):
        ppa.power(n, 100.0, 0.1)   # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="OpenSTA reported no timed path"):
        ppa.timing(n, 10.0)   # type: ignore[arg-type]


def test_timing_of_a_negative_slack_by_hand(tmp_path: Path, monkeypatch) -> None:
    """A path longer than the clock: slack -1.25 ns at 5 ns is a 6.25 ns path, 160 MHz."""
    monkeypatch.setattr(ppa, "_run_sta", lambda folder, script, name:
                        "Startpoint: in_reg (rising edge)\nEndpoint: out (output port)\nworst slack -1.2500\n")
    t = ppa.timing(_fake_netlist(tmp_path, 1), 5.0)   # type: ignore[arg-type]
    assert (t.slack_ns, t.critical_path_ns, t.fmax_mhz, t.period_ns) == (-1.25, 6.25, 160.0, 5.0)
    assert (t.startpoint, t.endpoint) == ("in_reg", "out")
