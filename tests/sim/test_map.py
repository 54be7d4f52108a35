"""`nmpu map` end to end on the digits CNN (three layers searched, every mapping evaluated), its chosen mapping
through `eval --mapping` and `cosim --mapping` (three code paths, one result), the RTL of a mapping's own format
caught when broken, resumption, and refusals."""
import json

import pytest

from cosim.cli import main
from nmpu_model.studies import mapping as mp

FIGURES = {"figures": {
    # hand-made unit figures (the search's logic does not depend on where they come from; `nmpu map` without
    # --figures measures them): the 2-bit unit is cheaper, the FP16 unit far dearer
    "fixed": {"name": "NMPU 8 bits", "units": 64, "lanes": 1, "fmax_mhz": 500.0, "latency": 3,
              "energy_pj_per_value": 1.0, "area_um2": 2000.0},
    "fixed[offset.bits=2,scale.bits=2]": {"name": "NMPU 2 bits", "units": 64, "lanes": 1, "fmax_mhz": 600.0,
                                          "latency": 3, "energy_pj_per_value": 0.4, "area_um2": 1000.0},
    "fp16": {"name": "FP16 unit", "units": 1, "lanes": 1, "fmax_mhz": 300.0, "latency": 6,
             "energy_pj_per_value": 8.0, "area_um2": 15000.0}}}
COMMON = ["--images", "48", "--seeds", "1", "--workers", "0", "--digital", "0,14", "--no-sensitivity"]


def _inputs(tmp_path):
    (tmp_path / "figs.json").write_text(json.dumps(FIGURES))
    (tmp_path / "formats.toml").write_text('[grid]\n"scale.bits" = [2]\n"offset.bits" = [2]\n')
    return ["--figures", str(tmp_path / "figs.json"), "--out", str(tmp_path / "out")]


@pytest.mark.xdist_group("cosim-bulk-default")
def test_map_end_to_end_and_its_mapping_through_eval_and_cosim(tmp_path, capsys):
    args = _inputs(tmp_path)
    # the default menu (base, 4 bits, 2 bits) has no figures of the 4-bit unit in FIGURES: refused in one line
    rc = main(["map", *COMMON, *args, "--trials", "64"])
    err = capsys.readouterr().err
    assert rc == 2 and "no figures of fixed[offset.bits=4,scale.bits=4]" in err.splitlines()[-1]
    # the formats: the base (always a choice) and the grid's one point, scale and offset at 2 bits
    rc = main(["map", *COMMON, *args, "--formats", str(tmp_path / "formats.toml"), "--trials", "200",
               "--tolerance", "1.5", "--json", str(tmp_path / "map.json")])
    out = capsys.readouterr().out
    assert rc == 0, out[-3000:]
    doc = json.loads((tmp_path / "map.json").read_text())
    rows = doc["rows"]
    # three layers searched (0 and 14 kept digital), 4 choices each (digital, fp16, the two formats): every one of
    # the 64 mappings evaluated once
    assert doc["space_size"] == 64 and len(rows) == 64 and doc["sampler"] == "every mapping"
    assert {r["params"]["0"] for r in rows} == {"digital"} and len({json.dumps(r["params"]) for r in rows}) == 64
    # the chosen mapping by the rule, recomputed here: within 1.5 pp, most MACs on tiles, then least energy
    ok = [r for r in rows if r["loss"] <= 0.015]
    best = max(r["mac_fraction"] for r in ok)
    want = min((r for r in ok if r["mac_fraction"] == best), key=lambda r: (r["cost"], r["loss"]))
    assert doc["chosen"]["params"] == want["params"]
    # the front: no row is better in all three objectives than a front row
    for r in rows:
        dominated = any(q["loss"] <= r["loss"] and q["cost"] <= r["cost"] and q["mac_fraction"] >= r["mac_fraction"]
                        and (q["loss"], q["cost"], q["mac_fraction"]) != (r["loss"], r["cost"], r["mac_fraction"])
                        for q in rows)
        assert r["pareto"] == (not dominated)
    # the energy is the figures' energy per value times the values of the layers on tiles (from the loads)
    for r in rows[:5]:
        e = sum(doc["loads"][n]["vectors"] * doc["loads"][n]["columns"] * FIGURES["figures"][c]["energy_pj_per_value"]
                for n, c in r["params"].items() if c != "digital")
        assert r["energy_pj"] == pytest.approx(e, rel=1e-12)
    # the chosen mapping's file, and the RTL in the loop on it: 0 mismatches, the same accuracy as the search's
    m = mp.load_mapping(tmp_path / "out" / "mapping.json")
    assert {n: c.label for n, c in m.layers} == doc["chosen"]["params"]
    v = doc["verify"]
    assert v["mismatches"] == 0 and v["values"] > 0 and v["seeds"] == 1
    assert v["runs_rtl"] == doc["chosen"]["runs"] and v["equals_search"] and v["mean_rtl"] == doc["chosen"]["mean"]
    assert (tmp_path / "out" / "pareto.png").stat().st_size > 1000
    # eval --mapping: the same accuracy by its own path (seed 0, 1 h)
    rc = main(["eval", "--images", "48", "--seeds", "1", "--drift", "3600", "--mapping",
               str(tmp_path / "out" / "mapping.json"), "--json", str(tmp_path / "eval.json")])
    assert rc == 0
    ev = json.loads((tmp_path / "eval.json").read_text())
    assert ev["analog_fixed"][0]["mean"] == doc["chosen"]["mean"] and ev["layer_mapping"] == doc["chosen"]["params"]
    # resumed: the study in --out holds every mapping: nothing is evaluated again, the same answer
    capsys.readouterr()
    rc = main(["map", *COMMON, *args, "--formats", str(tmp_path / "formats.toml"), "--trials", "200",
               "--tolerance", "1.5", "--no-verify", "--json", str(tmp_path / "again.json")])
    again = json.loads((tmp_path / "again.json").read_text())
    assert rc == 0 and again["rows"] == rows and again["chosen"] == doc["chosen"]


@pytest.mark.xdist_group("cosim-bulk-fault")
def test_cosim_of_a_mapping_checks_each_layer_with_its_own_format(tmp_path):
    """A mapping with a 2-bit layer: its RTL is built and loaded with the 2-bit configuration (0 mismatches,
    the golden model's accuracy), and a broken RTL of that format is caught on that layer."""
    from nmpu_model import load_config
    from nmpu_model.workloads.registry import load_workload
    from cosim.sim.network import cosim_network
    base = load_config()
    m = mp.Mapping.of(base, {"0": mp.Choice("digital"), "3": mp.Choice.parse("fixed[offset.bits=2,scale.bits=2]"),
                            "7": mp.Choice("fp16"), "12": mp.Choice("fixed"), "14": mp.Choice("digital")})
    work = load_workload("digits-cnn", None, 24, digital=m.digital())
    res = cosim_network(work, base, mapping=m)
    assert res.ok and [l.name for l in res.layers] == ["3", "12"]
    low = {l.name: l.config_identity for l in res.layers}
    assert low["3"] != low["12"] and len(res.builds) == 2
    assert "on the fp16 unit (its model, not the RTL, in both runs): 7" in res.text()
    bad = cosim_network(work, base, mapping=m, fault="tie")
    assert bad.mismatches > 0 and bad.layers[0].first_mismatch is not None


def test_map_refusals(tmp_path, capsys):
    args = _inputs(tmp_path)
    for extra, msg in ((["--trials", "0"], "--trials must be a positive integer, not 0"),
                       (["--tolerance", "nan"], "--tolerance must be a finite number >= 0"),
                       (["--formats", str(tmp_path / "figs.json")], "not valid TOML"),
                       (["--digital", "0,3,7,12,14"], "every layer is kept digital (--digital): nothing to map onto tiles"),
                       (["--digital", "99"], "--digital: '99' is not a layer that can go on tiles")):
        rc = main(["map", "--images", "24", "--workers", "0", "--no-sensitivity", "--formats",
                   str(tmp_path / "formats.toml"), *args, *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and msg in err[-1], (extra, err[-3:])
    (tmp_path / "nofig.json").write_text("{}")
    rc = main(["map", "--images", "24", "--figures", str(tmp_path / "nofig.json")])
    assert rc == 2 and "no \"figures\" table" in capsys.readouterr().err
    rc = main(["eval", "--mapping", str(tmp_path / "out" / "none.json")])
    assert rc == 2 and "cannot read" in capsys.readouterr().err
    (tmp_path / "m.json").write_text(json.dumps({"layers": {"3": "fixed"}}))
    rc = main(["cosim", "--mapping", str(tmp_path / "m.json"), "--config", "examples/default.toml"])
    assert rc == 2 and "drop --config" in capsys.readouterr().err


def test_anchors_are_the_uniform_and_the_greedy_mappings():
    from cosim.studies.mapping import anchors
    got = anchors(["a", "b", "c"], ["digital", "fp16", "fixed", "fixed[x=1]"], ["b", "a", "c"])
    want = [dict(a=u, b=u, c=u) for u in ("fp16", "fixed", "fixed[x=1]")]
    for f in ("fixed", "fixed[x=1]"):       # the 1 and 2 most sensitive layers digital, the rest at the format
        want += [dict(a=f, b="digital", c=f), dict(a="digital", b="digital", c=f)]
    assert got == want
    assert anchors(["a"], ["digital", "fp16"]) == [{"a": "fp16"}]
