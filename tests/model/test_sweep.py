"""Precision sweep: grid rules, Dask equals serial bit for bit, resume, per-layer study."""
import json

import numpy as np
import pytest
import torch

from cosim.cli import main
from nmpu_model import ConfigError, load_config
from nmpu_model.golden.formats import Fmt
from nmpu_model.studies.sweep import (Setup, alone_sensitivity, choose_point, cost_bits, grid_points, layer_sensitivity, load_grid,
                                      point_config, point_key, precision_sweep)

SETUP = Setup("digits-cnn", None, 48, 3600.0)
GRID = {"scale.bits": [2, 8], "offset.bits": [1, 8]}


def test_bits_keep_the_integer_bits():
    base = load_config()
    c = point_config(base, {"scale.bits": 4, "offset.bits": 3})
    assert (c.scale.bits, c.scale.frac) == (4, 3)       # ap_ufixed<8,1> -> ap_ufixed<4,1>
    assert (c.offset.bits, c.offset.frac) == (3, -4)    # ap_fixed<8,7> -> ap_fixed<3,7>
    c = point_config(base, {"scale.bits": 4, "scale.frac": 4})
    assert (c.scale.bits, c.scale.frac) == (4, 4)
    c = point_config(base, {"output.rounding": "TRN"})
    assert c.output.rounding == "TRN"
    # output bits move the out_frac range along: 8 -> 6 bits is frac 0 -> -2 and [-8, 7] -> [-10, 5]
    c = point_config(base, {"output.bits": 6})
    assert (c.output.bits, c.output.frac, c.out_frac_min, c.out_frac_max) == (6, -2, -10, 5)
    c = point_config(base, {"output.bits": 10, "scale.bits": 6})
    assert (c.output.frac, c.out_frac_min, c.out_frac_max, c.scale.frac) == (2, -6, 9, 5)
    with pytest.raises(ConfigError, match=r"^grid field 'bn_scale.bits': \[bn_scale\] is not in the base configuration$"):
        point_config(base, {"bn_scale.bits": 4})
    from pathlib import Path
    ex = Path(__file__).resolve().parents[2] / "examples" / "default.toml"
    assert point_config(load_config(ex), {"scale.bits": 4}).source == load_config(ex).source == str(ex)
    assert cost_bits(base) == 24
    # with the BN stage its two coefficients and the mid value count too: 8 + 8 + 8 + 6 + 5 + 12
    bn = base.with_fields(bn_stage=True, bn_scale=Fmt(6, 4, True), bn_offset=Fmt(5, 1, True),
                          mid=Fmt(12, 6, True, "RND", "SAT"))
    assert cost_bits(bn) == 47
    assert cost_bits(point_config(base, {"scale.bits": 3, "offset.bits": 5})) == 16


def _pt(name, mean, drop, cost):
    return {"point": {"name": name}, "mean": mean, "drop_vs_fp16": drop, "cost_bits": cost}


def test_choice_is_the_cheapest_within_the_tolerance_in_percentage_points():
    pts = [_pt("a", 0.95, 0.0000, 24), _pt("b", 0.949, 0.0010, 18), _pt("c", 0.948, 0.0020, 16),
           _pt("d", 0.9479, 0.0021, 12), _pt("e", 0.90, 0.05, 4), _pt("f", 0.9495, 0.0005, 18)]
    name = lambda q: q and q["point"]["name"]
    assert name(choose_point(pts, 0.2)) == "c"       # 0.2 pp = 0.002: c is in (cost 16), d just out
    assert name(choose_point(pts, 0.21)) == "d"
    assert name(choose_point(pts, 0.1)) == "f"       # b and f both cost 18: the more accurate one
    assert name(choose_point(pts, 0.0)) == "a"
    assert name(choose_point(pts, 5.0)) == "e"
    assert choose_point(pts[1:5], 0.05) is None      # nothing within 0.05 pp
    assert name(choose_point(pts, 0.06)) == "f"      # 0.05 pp from fp16
    # a point better than fp16 (negative drop) is within any tolerance
    assert name(choose_point([_pt("g", 0.96, -0.01, 30), _pt("h", 0.5, 0.45, 2)], 0.0)) == "g"
    # perplexity (lower is better): of equally cheap points within 1 %, the lower one, whichever is listed first
    ppl = [_pt("p", 6.40, 0.004, 18), _pt("q", 6.35, 0.001, 18), _pt("r", 6.30, 0.02, 10)]
    assert name(choose_point(ppl, 1.0, higher_is_better=False)) == "q"
    assert name(choose_point(ppl[::-1], 1.0, higher_is_better=False)) == "q"
    assert name(choose_point(ppl, 1.0, higher_is_better=True)) == "p"
    assert name(choose_point(ppl, 2.0, higher_is_better=False)) == "r"


def test_grid_points_order_and_errors(tmp_path):
    assert grid_points({"a": [1, 2], "b": ["x", "y"]}) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]
    p = tmp_path / "g.toml"
    p.write_text('[grid]\n"scale.bits" = []\n')
    with pytest.raises(ValueError, match="must be a non-empty list"):
        load_grid(p)
    with pytest.raises(ConfigError, match="unknown field 'scale.bitz'"):
        point_config(load_config(), {"scale.bitz": 3})


@pytest.mark.xdist_group("dask")
def test_dask_two_workers_equals_serial_and_resumes(tmp_path):
    base = load_config()
    serial = precision_sweep(base, GRID, SETUP, 2, workers=0, results=tmp_path / "s.json", progress=False)
    dist = precision_sweep(base, GRID, SETUP, 2, workers=2, results=tmp_path / "d.json", progress=False)
    assert json.loads((tmp_path / "s.json").read_text())["raw"] == json.loads((tmp_path / "d.json").read_text())["raw"]
    assert [p["mean"] for p in serial["points"]] == [p["mean"] for p in dist["points"]]
    # precision matters on this grid: 1-bit offsets lose accuracy against 8-bit ones
    acc = {point_key(p["point"]): p["mean"] for p in serial["points"]}
    assert acc[point_key({"scale.bits": 8, "offset.bits": 1})] < acc[point_key({"scale.bits": 8, "offset.bits": 8})]

    # resume: a finished task in the file is not computed again (a marker value survives)
    doc = json.loads((tmp_path / "s.json").read_text())
    key = point_key({"scale.bits": 2, "offset.bits": 1})
    doc["raw"][key]["0"] = 0.123
    del doc["raw"][key]["1"]  # and one missing task is computed
    (tmp_path / "s.json").write_text(json.dumps(doc))
    again = precision_sweep(base, GRID, SETUP, 2, workers=0, results=tmp_path / "s.json", progress=False)
    pt = next(p for p in again["points"] if point_key(p["point"]) == key)
    assert pt["runs"][0] == 0.123
    assert pt["runs"][1] == serial["points"][0]["runs"][1]


def test_resume_refuses_another_sweep(tmp_path):
    f = tmp_path / "r.json"
    f.write_text(json.dumps({"meta": {"identity": "something else"}, "raw": {}}))
    with pytest.raises(ValueError, match="holds a different sweep"):
        precision_sweep(load_config(), GRID, SETUP, 1, workers=0, results=f, progress=False)


def test_per_layer_ranking(tmp_path):
    base = load_config()
    low = point_config(base, {"scale.bits": 1, "offset.bits": 1})
    res = layer_sensitivity(base, low, SETUP, 1, keep_fp16=1, workers=0, progress=False)
    drops = [r["drop"] for r in res["ranking"]]
    assert drops == sorted(drops, reverse=True)
    assert len(res["ranking"]) == 3
    assert res["hetero"]["fp16_layers"] == [res["ranking"][0]["layer"]]
    assert res["all_low"]["mean"] < res["reference"]["mean"]


def test_cli_sweep_writes_json_and_png(tmp_path, capsys):
    g = tmp_path / "grid.toml"
    g.write_text('[grid]\n"offset.bits" = [2, 8]\n')
    args = ["sweep", "--grid", str(g), "--seeds", "1", "--images", "24", "--workers", "0",
            "--json", str(tmp_path / "o.json")]
    rc = main(args + ["--plot", str(tmp_path / "o.png"), "--tolerance", "100"])
    out = capsys.readouterr().out
    assert rc == 0
    assert (tmp_path / "o.png").stat().st_size > 1000
    doc = json.loads((tmp_path / "o.json").read_text())
    assert len(doc["points"]) == 2 and doc["tolerance_pp"] == 100
    # the summary's numbers, from the runs: mean over seeds, drop against fp16, cost in bits
    fp16 = doc["fp16"]["runs"][0]
    for q in doc["points"]:
        assert q["mean"] == q["runs"][0] and q["drop_vs_fp16"] == pytest.approx(fp16 - q["mean"], abs=1e-12)
        assert q["cost_bits"] == 8 + q["point"]["offset.bits"] + 8
    # within 100 pp every point is: the cheapest (2-bit offsets) is chosen and printed
    assert doc["chosen"]["point"] == {"offset.bits": 2}
    assert "cheapest within 100.0 pp of fp16: {'offset.bits': 2} (18 bits" in out
    # the same results at a tolerance of 0 pp (resumed from the file, nothing computed again): the choice
    # is the cheapest point that is at least as accurate as fp16, or none, said with exit status 0
    rc = main(args + ["--tolerance", "0"])
    out = capsys.readouterr().out
    assert rc == 0
    ok = [q for q in doc["points"] if q["mean"] >= fp16]
    if ok:
        best = min(ok, key=lambda q: q["cost_bits"])
        assert f"cheapest within 0.0 pp of fp16: {best['point']} ({best['cost_bits']} bits" in out
    else:
        assert "no grid point within 0.0 pp of fp16" in out
    assert main(args + ["--tolerance", "-1"]) == 2
    assert "--tolerance must be >= 0" in capsys.readouterr().err


def test_cli_sweep_bad_input(tmp_path, capsys):
    rc = main(["sweep", "--per-layer", "--lower", "scale.bits", "--workers", "0"])
    assert rc == 2 and "--lower: 'scale.bits' is not FIELD=VALUE" in capsys.readouterr().err
    g = tmp_path / "grid.toml"
    g.write_text('[grid]\n"scale.bits" = [0]\n')
    rc = main(["sweep", "--grid", str(g), "--workers", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and "scale.bits must be at least 1" in err and err.count("\n") == 1


class _Sided(torch.nn.Module):
    """An MLP with a side layer whose output is multiplied by 0: nothing it computes reaches the result."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.side, self.fc3 = (torch.nn.Linear(16, 32), torch.nn.Linear(32, 32),
                                                   torch.nn.Linear(32, 32), torch.nn.Linear(32, 6))

    def forward(self, x):
        h = torch.relu(self.fc1(x))
        return self.fc3(torch.relu(self.fc2(h)) + 0.0 * self.side(h))


def test_sensitivity_profile_of_a_dead_and_a_live_layer(tmp_path):
    torch.manual_seed(5)
    model = _Sided().eval()
    x = torch.randn(260, 16, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        y = model(x).argmax(1)               # the all-digital network is right on every sample
    ep = torch.export.export(model, (x[:2],), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(ep, tmp_path / "m.pt2")
    np.savez(tmp_path / "d.npz", x=x[60:].numpy(), y=y[60:].numpy(), calib=x[:60].numpy())
    setup = Setup(str(tmp_path / "m.pt2"), str(tmp_path / "d.npz"), None, 3600.0)
    base = load_config()
    low = point_config(base, {"scale.bits": 1, "offset.bits": 1})
    res = alone_sensitivity(base, low, setup, 2, workers=0, progress=False)
    assert res["digital"] == 1.0
    prof = {r["layer"]: r for r in res["profile"]}
    assert set(prof) == {"fc1", "fc2", "side", "fc3"}
    # the dead layer: exactly nothing, at either precision, on every seed
    assert prof["side"]["runs"] == prof["side"]["low_runs"] == [1.0, 1.0] and prof["side"]["S"] == 0.0
    # a live layer at 1-bit scale and offset loses much; the profile is ranked by S, S is 1 - accuracy here
    assert max(prof[n]["low_S"] for n in ("fc1", "fc2", "fc3")) > 0.2
    assert [r["S"] for r in res["profile"]] == sorted((r["S"] for r in res["profile"]), reverse=True)
    for r in res["profile"]:
        assert r["S"] == pytest.approx(1 - sum(r["runs"]) / 2) and r["S_std"] == pytest.approx(abs(r["runs"][0] - r["runs"][1]) / 2)
    # one run by hand: fc2 alone on tiles (seed 1), every other layer digital
    from nmpu_model import AnalogNetwork
    net = AnalogNetwork.build(ep, torch.from_numpy(np.load(tmp_path / "d.npz")["calib"]), seed=1, t=3600.0,
                              digital=("fc1", "side", "fc3"))
    assert net.analog_layers == ["fc2"]
    out, _ = net.run(x[60:], base, "fixed")
    assert prof["fc2"]["runs"][1] == pytest.approx(float((out.argmax(1) == y[60:]).float().mean()))
    # the refusal: a lowered configuration that changes the tiles
    with pytest.raises(ValueError, match="must keep adc_bits"):
        alone_sensitivity(base, point_config(base, {"output.bits": 6}), setup, 1, workers=0, progress=False)
