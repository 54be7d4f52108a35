"""`nmpu run --quick`: the whole chain end to end on reduced settings, and a failing stage."""
import re
from pathlib import Path

import pytest

from cosim.cli import run as cmd_run
from cosim.cli import main


@pytest.mark.slow
# no xdist group: the longest test (~10 min) runs beside the verilator-default group, not after it on the same
# worker (its builds are shared through the content-keyed build cache and its lock either way)
def test_run_quick_end_to_end(tmp_path, capsys):
    rc = main(["run", "--quick", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0, out[-2000:]
    md = (tmp_path / "report.md").read_text()
    for title in [s.name for s in cmd_run.STAGES]:
        assert f"## {title}" in md
    assert "## Stopped" not in md
    # every stage names the command that reproduces it
    assert md.count("Reproduce (") == len(cmd_run.STAGES)
    # the commands name the project's files relative to it (run from the checkout, as here), never its path
    project = str(Path(cmd_run.__file__).resolve().parents[2])
    assert project not in md and "--codes examples/codes.npy" in md
    assert re.search(r"\| \d+ \| 0 \| \d+ \| \d+ \|", md), "verify table with 0 mismatches"
    for png in ("accuracy_vs_drift.png", "error_histograms.png", "sweep.png", "area.png", "sensitivity.png"):
        assert (tmp_path / png).stat().st_size > 1000, png
    html = (tmp_path / "report.html").read_text()
    assert "<table>" in html and "<img" in html
    _report_matches_the_stages_json(md, tmp_path)


def _section(md: str, title: str) -> str:
    return md.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _row(md: str, first_cell: str) -> list[str]:
    """The cells of the report's table row that starts with ``first_cell``."""
    m = re.search(r"^\| " + re.escape(first_cell) + r" \|(.*)\|$", md, re.M)
    assert m, first_cell
    return [c.strip() for c in m.group(1).split("|")]


def _report_matches_the_stages_json(md: str, out: Path) -> None:
    """Every figure the report prints is the one its stage's command wrote into its --json file."""
    import json

    import numpy as np

    load = lambda name: json.loads((out / name).read_text())   # noqa: E731
    sec = {s.name: _section(md, s.name) for s in cmd_run.STAGES}
    # golden model example: equality with fp32 from the written arrays themselves
    y = {a: np.load(out / f"example_{a}.npy") for a in ("fixed", "fp16", "fp32")}
    md = sec["Golden model on the example tile"]
    for arith in ("fixed", "fp16"):
        d = np.abs(y[arith] - y["fp32"])
        assert _row(md, arith) == [f"{100 * np.mean(d == 0):.1f}%", str(d.max()), f"{d.mean():.3f}"]
    ev = load("eval.json")
    md = sec["Accuracy on analog tiles"]
    for key, label in (("analog_fixed", "analog + fixed NMPU"), ("analog_fp16", "analog + fp16")):
        cells = _row(md, label)
        assert len(cells) == len(ev[key])
        for cell, r in zip(cells, ev[key]):
            mean, std = (float(v) for v in cell.split(" +- "))
            assert mean == pytest.approx(100 * r["mean"], abs=0.006) and std == pytest.approx(100 * r["std"], abs=0.006)
    diff = _row(md, "**fixed vs fp16 (pp)**")
    for cell, a, b in zip(diff, ev["analog_fixed"], ev["analog_fp16"]):
        assert float(cell) == pytest.approx(100 * (a["mean"] - b["mean"]), abs=0.006)
    for name, q in ev["layers"].items():
        assert _row(md, name)[0] == str(q["out_frac"])
    sw = load("sweep.json")
    md = sec["Precision study"]
    c = sw["chosen"]
    if c:
        m = re.search(r"Cheapest configuration within ([\d.]+) pp of fp16 .*: \*\*(.*)\*\*, (\d+) bits, ([\d.]+)%", md)
        assert m and float(m.group(1)) == sw["tolerance_pp"] and int(m.group(3)) == c["cost_bits"]
        assert m.group(2) == ", ".join(f"{k} = {v}" for k, v in c["point"].items())
        assert float(m.group(4)) == pytest.approx(100 * c["mean"], abs=0.006)
    else:
        assert f"No grid point is within {sw['tolerance_pp']} pp of fp16." in md
    v = load("verify.json")
    md = sec["RTL against the golden model: random vectors"]
    cells = _row(md, str(v["vectors"]))
    assert cells[0] == str(v["mismatches"]) == "0" and cells[1] == str(v["cycles"]) and cells[2] == str(v["latency"])
    co = load("cosim.json")
    md = sec["RTL in the loop on the real network"]
    for r in co["layers"]:
        cells = _row(md, r["name"])
        assert cells[:2] == [f"{r['values']:,}", str(r["mismatches"])] and r["mismatches"] == 0
    assert f"golden model {100 * co['accuracy_golden']:.2f}%, RTL in the loop {100 * co['accuracy_rtl']:.2f}%" in md
    sy = load("synth.json")
    md = sec["Synthesis: fixed-point NMPU vs FP16 unit"]
    assert _row(md, "fixed-point NMPU")[0] == f"{sy['fixed']['area']:,.0f}"
    assert _row(md, "FP16 unit")[0] == f"{sy['fp16']['area']:,.0f}"
    assert f"area **{sy['area_ratio']:.2f}x**" in md
    assert sy["area_ratio"] == pytest.approx(sy["fp16"]["area"] / sy["fixed"]["area"], rel=1e-9)
    se, co = load("sensitivity.json"), load("cost.json")
    md = sec["Mapping: which layer on which unit with how many bits"]
    assert len(se["profile"]) == 5          # the digits CNN's five weight layers, the first and last too
    for r in se["profile"]:
        assert _row(md, r["layer"]) == [r["block"], f"{100 * r['S']:.2f} +- {100 * r['S_std']:.2f}",
                                        f"{100 * r['low_S']:.2f} +- {100 * r['low_S_std']:.2f}"]
    fx, fp = co["fixed"], co["fp16"]
    assert _row(md, "time, tiles and post-processing pipelined (µs)") == [
        f"{fx['time_ns'] / 1000:,.2f}", f"{fp['time_ns'] / 1000:,.2f}", f"{co['ratios']['time']:.2f}x"]
    assert fx["time_ns"] == pytest.approx(sum(l["t_layer_ns"] for l in fx["layers"]))
    # the cost uses the units the synthesis stage measured
    for unit, d in (("fixed", fx), ("fp16", fp)):
        assert d["periphery"]["fmax_mhz"] == sy[unit]["timing"]["fmax_mhz"]
        assert d["periphery"]["energy_pj_per_value"] == sy[unit]["energy_pj_per_value"]
    assert f"**{co['paper_setting']['speedup']:.1f}x**" in md
    # the search: its front's rows and the chosen mapping are the JSON's; the base format's unit is the synthesis
    # stage's (the same configuration, so the same cached measurement)
    mp = load("map.json")
    assert mp["figures"]["fixed"]["energy_pj_per_value"] == sy["fixed"]["energy_pj_per_value"]
    from cosim.report.tables import front_rows
    front = front_rows(mp)
    assert front and mp["trials"] >= 16 and (out / "pareto.png").stat().st_size > 1000
    assert all(r["pareto"] for r in front) and len(front) == min(12, sum(r["pareto"] for r in mp["rows"]))
    for r in front:
        assert _row(md, f"#{r['trial']}")[:2] == [f"{100 * r['loss']:+.2f}", f"{r['energy_pj'] / 1e3:,.3f}"]
    ch = mp["chosen"]
    if ch is not None:
        assert "The chosen mapping (`mapping.json`): " + ", ".join(f"`{n}` {c}" for n, c in ch["params"].items()) in md
        assert {n: c for n, c in json.loads((out / "mapping.json").read_text())["layers"].items()} == ch["params"]


def test_failing_stage_stops_and_keeps_finished(tmp_path, capsys, monkeypatch):
    def boom(run):
        run.nmpu("apply", "--codes", str(tmp_path / "missing.npy"), "--coeffs", "x.npz", "--out", "y.npy")
        return []
    monkeypatch.setattr(cmd_run, "STAGES", [cmd_run.STAGES[0], cmd_run.Stage("Broken", boom), cmd_run.STAGES[1]])
    rc = main(["run", "--out", str(tmp_path)])
    cap = capsys.readouterr()
    assert rc == 1
    assert "Stage 2 (Broken) failed" in cap.out
    md = (tmp_path / "report.md").read_text()
    assert "## Golden model on the example tile" in md and "## Stopped" in md
    assert "## Accuracy on analog tiles" not in md
    assert (tmp_path / "example_fixed.npy").exists()


def test_bad_config_stops_before_any_stage(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("adc_bits = 0\n")
    rc = main(["run", "--config", str(cfg), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "adc_bits must be an integer >= 1" in err
    assert not (tmp_path / "o" / "report.md").exists()


def test_bad_model_stops_before_any_stage(tmp_path, capsys):
    rc = main(["run", "--model", str(tmp_path / "net.pt2"), "--data", str(tmp_path / "d.npz"),
               "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "neither a built-in network" in err
    assert not (tmp_path / "o").exists()
