"""Precision sweep: grid rules, Dask equals serial bit for bit, resume, per-layer study."""
import json

import pytest

from cosim.cli import main
from nmpu_model import ConfigError, load_config
from nmpu_model.sweep import (Setup, cost_bits, grid_points, layer_sensitivity, load_grid, point_config, point_key,
                              precision_sweep)

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
    assert cost_bits(base) == 24


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
    rc = main(["sweep", "--grid", str(g), "--seeds", "1", "--images", "24", "--workers", "0",
               "--json", str(tmp_path / "o.json"), "--plot", str(tmp_path / "o.png")])
    out = capsys.readouterr().out
    assert rc == 0 and "cheapest within" in out or "no grid point" in out
    assert (tmp_path / "o.png").stat().st_size > 1000
    assert len(json.loads((tmp_path / "o.json").read_text())["points"]) == 2


def test_cli_sweep_bad_input(tmp_path, capsys):
    rc = main(["sweep", "--per-layer", "--lower", "scale.bits", "--workers", "0"])
    assert rc == 2 and "--lower: 'scale.bits' is not FIELD=VALUE" in capsys.readouterr().err
    g = tmp_path / "grid.toml"
    g.write_text('[grid]\n"scale.bits" = [0]\n')
    rc = main(["sweep", "--grid", str(g), "--workers", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and "scale.bits must be at least 1" in err and err.count("\n") == 1
