"""The periphery's cost per inference (`cosim.studies.cost`, `nmpu cost`) against hand-worked figures, the layers'
vectors per inference against the networks' geometry, and the cache of the measured units."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from cosim.cli import main
from cosim.studies import cost
from nmpu_model import AnalogNetwork, NMPUConfig, TileParams


def _per(name="p", units=4, lanes=2, fmax=250.0, latency=3, energy=2.0, area=100.0):
    return cost.Periphery(name, units, lanes, fmax, latency, energy, area)


def test_network_cost_by_hand():
    # tiles of 16 columns, 10 ns per MVM. Layer a: 10 vectors of 20 columns -> column tiles of 16 and 4.
    # Layer b: 3 vectors of 8 columns, one column tile.
    loads = [cost.LayerLoad("a", vectors=10, inputs=30, columns=20, row_tiles=2, col_tiles=2),
             cost.LayerLoad("b", vectors=3, inputs=5, columns=8, row_tiles=1, col_tiles=1)]
    # 4 units x 2 lanes at 250 MHz (4 ns a cycle), latency 3 cycles (12 ns):
    # a: ceil(16 / 8) = 2 cycles = 8 ns a vector <= 10 ns: keeps up; 10 + 9 x 10 + 8 + 12 = 120 ns; post alone
    #    10 x 8 + 12 = 92 ns; energy 10 x 20 x 2 pJ = 400 pJ
    # b: ceil(8 / 8) = 1 cycle = 4 ns; 10 + 2 x 10 + 4 + 12 = 46 ns; post 3 x 4 + 12 = 24 ns; energy 3 x 8 x 2 = 48
    # area: 3 column tiles x 4 units x 100 um^2
    c = cost.network_cost(loads, _per(), mvm_ns=10.0, tile_cols=16)
    assert [l.t_pp_vector_ns for l in c.layers] == [8.0, 4.0]
    assert [l.t_layer_ns for l in c.layers] == [120.0, 46.0]
    assert [l.t_pp_ns for l in c.layers] == [92.0, 24.0]
    assert [l.t_mvm_ns for l in c.layers] == [100.0, 30.0]
    assert (c.t_ns, c.t_mvm_ns, c.t_pp_ns, c.energy_pj, c.area_um2) == (166.0, 130.0, 116.0, 448.0, 1200.0)
    assert c.keeps_up and c.col_tiles == 3
    # one unit of one lane at 100 MHz (10 ns), latency 5 (50 ns): a needs 16 cycles = 160 ns a vector (slower than
    # the tiles): 10 + 9 x 160 + 160 + 50 = 1660 ns; b: 8 cycles = 80 ns: 10 + 2 x 80 + 80 + 50 = 300 ns
    s = cost.network_cost(loads, _per(units=1, lanes=1, fmax=100.0, latency=5), mvm_ns=10.0, tile_cols=16)
    assert [l.t_layer_ns for l in s.layers] == [1660.0, 300.0]
    assert [l.keeps_up for l in s.layers] == [False, False] and not s.keeps_up
    assert s.area_um2 == 300.0
    assert [(l.name, l.vectors, l.columns, l.col_tiles) for l in c.layers] == [("a", 10, 20, 2), ("b", 3, 8, 1)]
    assert c.to_dict()["mvm_ns"] == 10.0 and c.to_dict()["tile_cols"] == 16 and c.to_dict()["time_ns"] == 166.0
    # a layer whose columns fill whole tiles has no empty tile beside them; the default tiles have 256 columns
    wide = [cost.LayerLoad("w", vectors=1, inputs=8, columns=512, row_tiles=1, col_tiles=2)]
    assert cost.network_cost(wide, _per(), mvm_ns=10.0, tile_cols=256).col_tiles == 2
    assert cost.network_cost([cost.LayerLoad("w", 1, 8, 257, 1, 2)], _per(), mvm_ns=10.0).col_tiles == 2
    # the periphery just as fast as the tiles keeps up (8 ns a vector at 8 ns per MVM); an MVM under 1 ns is allowed
    assert cost.network_cost(loads[:1], _per(), mvm_ns=8.0, tile_cols=16).keeps_up
    assert cost.network_cost(loads, _per(), mvm_ns=0.5, tile_cols=16).t_mvm_ns == 6.5
    with pytest.raises(ValueError, match="vectors per inference must be an integer >= 1"):
        cost.LayerLoad("z", vectors=0, inputs=1, columns=1, row_tiles=1, col_tiles=1)


def test_mapping_cost_by_hand():
    """A periphery per layer: layer a on 4 two-lane units at 250 MHz (as above), layer b on one FP16-like unit of one
    lane at 100 MHz, latency 6, 8 pJ a value, 500 um^2."""
    from cosim.studies.mapping import mapping_cost as of_mapping
    from nmpu_model.studies.mapping import Choice, Mapping
    loads = [cost.LayerLoad("a", vectors=10, inputs=30, columns=20, row_tiles=2, col_tiles=2),
             cost.LayerLoad("b", vectors=3, inputs=5, columns=8, row_tiles=1, col_tiles=1)]
    slow = _per(name="slow", units=1, lanes=1, fmax=100.0, latency=6, energy=8.0, area=500.0)
    c = cost.mapping_cost(loads, {"a": _per(), "b": slow}, mvm_ns=10.0, tile_cols=16)
    # a: 120 ns, 400 pJ, 2 column tiles x 4 units x 100 um^2 = 800 um^2 (test_network_cost_by_hand)
    # b: 8 cycles of 10 ns = 80 ns a vector (slower than the tiles): 10 + 2 x 80 + 80 + 60 = 310 ns;
    #    3 x 8 x 8 pJ = 192 pJ; 1 column tile x 1 unit x 500 um^2
    assert [l.t_layer_ns for l in c.layers] == [120.0, 310.0]
    assert [l.energy_pj for l in c.layers] == [400.0, 192.0] and [l.area_um2 for l in c.layers] == [800.0, 500.0]
    assert (c.t_ns, c.energy_pj, c.area_um2, c.keeps_up) == (430.0, 592.0, 1300.0, False)
    assert [l.unit for l in c.layers] == ["p", "slow"] and c.periphery is None and c.to_dict()["periphery"] is None
    with pytest.raises(ValueError, match="layer b: no periphery given for it"):
        cost.mapping_cost(loads, {"a": _per()})
    # a mapping: a on the base format, b digital: only a costs; MACs a 10 x 30 x 20 = 6000 of 6000 + 3 x 5 x 8 = 120
    m = Mapping.of(NMPUConfig(), {"a": Choice("fixed"), "b": Choice("digital")})
    got, frac = of_mapping(m, {l.name: l for l in loads}, {"fixed": _per(), "fp16": slow}, 10.0, 16)
    assert [l.name for l in got.layers] == ["a"] and got.energy_pj == 400.0 and frac == 6000 / 6120
    m = Mapping.of(NMPUConfig(), {"a": Choice("digital"), "b": Choice("fp16")})
    got, frac = of_mapping(m, {l.name: l for l in loads}, {"fixed": _per(), "fp16": slow}, 10.0, 16)
    assert (got.energy_pj, got.area_um2, frac) == (192.0, 500.0, 120 / 6120)


def test_units_to_keep_up_by_hand():
    loads = [cost.LayerLoad("a", 10, 30, 20, 2, 2), cost.LayerLoad("b", 3, 5, 8, 1, 1)]   # column tiles 16, 4, 8
    # 250 MHz, 10 ns per MVM: 2 cycles; 2 lanes: the 16-column tile needs ceil(16 / (2 x 2)) = 4 units
    assert cost.units_to_keep_up(loads, _per(fmax=250.0, lanes=2), 10.0, 16) == 4
    # 100 MHz: 1 cycle, 1 lane: 16 units; 50 MHz: not one cycle in an MVM
    assert cost.units_to_keep_up(loads, _per(fmax=100.0, lanes=1), 10.0, 16) == 16
    assert cost.units_to_keep_up(loads, _per(fmax=50.0, lanes=1), 10.0, 16) is None
    # a unit fast enough alone: one; the default tiles have 256 columns (257 columns: a tile of 256 and one of 1)
    assert cost.units_to_keep_up(loads, _per(fmax=2000.0, lanes=2), 10.0, 16) == 1
    n = cost.units_to_keep_up([cost.LayerLoad("w", 1, 8, 257, 1, 2)], _per(fmax=100.0, lanes=1), 10.0)
    assert n == 256 and isinstance(n, int) and isinstance(_per(units=3, lanes=2).cycles_per_vector(7), int)


def test_one_mvm_speedup_by_hand():
    # 64 units of 1 lane at 200 MHz, latency 2: ceil(256 / 64) + 2 = 6 cycles = 30 ns; one FP16 unit at 100 MHz,
    # latency 6: 256 + 6 = 262 cycles = 2620 ns; 2620 / 30 = 87.33x; a long stream: (256 / 100) / (4 / 200) = 128x
    r = cost.one_mvm_speedup(_per(units=64, lanes=1, fmax=200.0, latency=2),
                             _per(units=1, lanes=1, fmax=100.0, latency=6))
    assert (r["fixed_cycles"], r["fp16_cycles"]) == (6, 262)
    assert r["fixed_ns"] == pytest.approx(30.0) and r["fp16_ns"] == pytest.approx(2620.0)
    assert r["speedup"] == pytest.approx(2620 / 30) and r["stream_speedup"] == pytest.approx(128.0)
    assert r["columns"] == 256
    assert ("ceil(256 / 64) + 2 cycles = 6 cycles at 200.0 MHz = 30.00 ns" in r["derivation"]
            and "ceil(256 / 1) + 6 cycles = 262 cycles at 100.0 MHz = 2620.00 ns; ratio 87.3x" in r["derivation"])


@pytest.mark.parametrize("field,value", [("units", 0), ("lanes", 1.5), ("latency", -1), ("fmax_mhz", 0.0),
                                         ("energy_pj_per_value", float("nan")), ("area_um2", -3.0)])
def test_periphery_refuses_nonsense(field, value):
    kw = dict(name="p", units=1, lanes=1, fmax_mhz=1.0, latency=0, energy_pj_per_value=1.0, area_um2=1.0)
    kw[field] = value
    with pytest.raises(ValueError, match=field):
        cost.Periphery(**kw)
    with pytest.raises(ValueError, match="MVM time"):
        cost.network_cost([], _per(), mvm_ns=0.0)


class _Nets(nn.Module):
    """A convolution (8 x 8 -> 8 x 8 and stride 2 -> 4 x 4), a linear on 5 tokens and an LSTM over 5 steps."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(2, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.tok = nn.Linear(6, 7)
        self.rnn = nn.LSTM(7, 3, batch_first=True)
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        h = torch.relu(self.c2(torch.relu(self.c1(x))))          # N x 6 x 4 x 4
        t = self.tok(h.flatten(2).transpose(1, 2)[:, :5])         # N x 5 x 7: 5 tokens
        return self.head(self.rnn(t)[0][:, -1])


def test_layer_loads_are_the_networks_geometry():
    torch.manual_seed(0)
    model = _Nets().eval()
    x = torch.randn(6, 2, 8, 8)
    net = AnalogNetwork.build(model, x, seed=0, t=3600.0, tile=TileParams(rows=16, cols=4), digital=())
    loads = {ld.name: ld for ld in cost.layer_loads(net, x[:3], NMPUConfig())}
    by_hand = {  # vectors per sample, K, C, row tiles ceil(K / 16), column tiles ceil(C / 4)
        "c1": (64, 18, 4, 2, 1), "c2": (16, 36, 6, 3, 2), "tok": (5, 6, 7, 1, 2),
        "rnn.weight_ih_l0": (5, 7, 12, 1, 3), "rnn.weight_hh_l0": (5, 3, 12, 1, 3), "head": (1, 3, 2, 1, 1)}
    assert {k: (v.vectors, v.inputs, v.columns, v.row_tiles, v.col_tiles) for k, v in loads.items()} == by_hand
    assert loads["c2"].macs == 16 * 36 * 6 and loads["tok"].values == 35
    assert all(isinstance(v.vectors, int) for v in loads.values())
    # one sample measures the same; none is refused
    assert {ld.name: ld.vectors for ld in cost.layer_loads(net, x[:1], NMPUConfig())} == {k: v.vectors for k, v in loads.items()}
    with pytest.raises(ValueError, match="no samples"):
        cost.layer_loads(net, x[:0], NMPUConfig())
    # the unit measured for the network: as most of its layers run it (4 of 6 without ReLU)
    assert NMPUConfig().relu and not cost.layers_config(net, NMPUConfig()).relu


def _unit_doc(unit, fmax, latency, energy, area, lanes=1):
    return {"unit": unit, "latency": latency, "fp16_fma_stages": 3, "activity_kind": "layer",
            "energy_pj_per_value": energy, "osu018": {"lanes": lanes, "area": area},
            "timing": {"netlist": "n.v", "liberty": "l.lib", "macro_liberty": "m.lib", "library": "OSU 0.18 um",
                       "period_ns": 10.0, "slack_ns": 0.0, "critical_path_ns": 1000 / fmax, "fmax_mhz": fmax,
                       "startpoint": "a", "endpoint": "b", "sta_script": "s.tcl", "sta_log": "s.log"},
            "power": {"mw": 1.0, "internal_mw": 0.5, "switching_mw": 0.5, "leakage_mw": 0.0, "clock_mhz": fmax,
                      "activity": "hand-made figures", "activity_nets": "all", "energy_pj_per_value": energy}}


def test_cli_cost_with_given_unit_figures(tmp_path, capsys):
    ppa = tmp_path / "synth.json"
    ppa.write_text(json.dumps({"fixed": _unit_doc("fixed", 200.0, 2, 40.0, 20000.0),
                               "fp16": _unit_doc("fp16", 100.0, 6, 160.0, 100000.0)}))
    out = tmp_path / "cost.json"
    rc = main(["cost", "--ppa", str(ppa), "--json", str(out), "--images", "8"])
    text = capsys.readouterr().out
    assert rc == 0, text
    doc = json.loads(out.read_text())
    # digits-cnn (8 x 8 images): layer 3 a 3x3 convolution at 8 x 8 (64 vectors, 32 columns), layer 7 one at 4 x 4
    # after a 2 x 2 pooling (16 vectors, 64 columns), layer 12 a linear (1 vector, 64 columns)
    assert [(l["name"], l["vectors"], l["columns"]) for l in doc["layers"]] == [("3", 64, 32), ("7", 16, 64),
                                                                                  ("12", 1, 64)]
    # fixed: 64 units, every layer 1 cycle (5 ns) a vector <= 130 ns; FP16: 32 or 64 cycles at 10 ns = 320/640 ns
    fx, fp = doc["fixed"], doc["fp16"]
    assert [l["t_pp_vector_ns"] for l in fx["layers"]] == [5.0, 5.0, 5.0]
    assert [l["t_pp_vector_ns"] for l in fp["layers"]] == [320.0, 640.0, 640.0]
    assert fx["keeps_up"] and not fp["keeps_up"]
    # energy: (64 x 32 + 16 x 64 + 64) values x 40 / 160 pJ
    assert fx["energy_pj"] == pytest.approx(3136 * 40.0) and fp["energy_pj"] == pytest.approx(3136 * 160.0)
    # column tiles 3 (one per layer): 64 x 20,000 um^2 each against 1 x 100,000
    assert fx["area_um2"] == 3 * 64 * 20000.0 and fp["area_um2"] == 3 * 100000.0
    assert fx["column_tiles"] == fp["column_tiles"] == 3
    # the tiles alone: 81 vectors x 130 ns; post-processing alone: V x t + latency per layer (fixed 10 ns, FP16 60 ns)
    assert fx["mvm_time_ns"] == fp["mvm_time_ns"] == pytest.approx(81 * 130.0)
    assert fx["post_time_ns"] == pytest.approx((64 + 16 + 1) * 5.0 + 3 * 10.0)
    assert fp["post_time_ns"] == pytest.approx(64 * 320.0 + 16 * 640.0 + 640.0 + 3 * 60.0)
    assert (fx["periphery"]["name"], fp["periphery"]["name"]) == ("fixed-point NMPU", "FP16 unit")
    assert (fx["periphery"]["units"], fp["periphery"]["units"]) == (64, 1)
    assert fx["periphery"]["source"] == ("OSU 0.18 um; fmax from OpenSTA, energy per value at fmax with the activity "
                                         "of all")
    # fixed time: 130 + 63 x 130 + 5 + 10, 130 + 15 x 130 + 5 + 10, 130 + 5 + 10
    assert fx["time_ns"] == pytest.approx(64 * 130 + 15 + 16 * 130 + 15 + 130 + 15)
    assert doc["paper_setting"]["speedup"] == pytest.approx((262 * 10.0) / (6 * 5.0))
    assert "**87.3x**" in text and "keeps up with the tiles" in text
    # 130 ns: 26 cycles of the fixed unit, 13 of the FP16 unit; the widest tile has 64 columns
    assert doc["units_to_keep_up"] == {"fixed": 3, "fp16": 5}


@pytest.mark.parametrize("argv,message", [
    (["--units", "0"], "--units must be a positive integer"),
    (["--mvm-ns", "-1"], "--mvm-ns must be a finite number > 0"),
    (["--ppa", "{missing}"], "No such file"),
    (["--ppa", "{empty}"], "no timing and power figures of both units"),
    (["--digital", "3,7,12,first,last"], "nothing is on tiles"),
])
def test_cli_cost_refusals(tmp_path, capsys, argv, message):
    (tmp_path / "empty.json").write_text("{}")
    argv = [a.format(missing=tmp_path / "none.json", empty=tmp_path / "empty.json") for a in argv]
    rc = main(["cost", *argv, "--json", str(tmp_path / "c.json")])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "c.json").exists()


def test_measured_units_are_cached_by_what_made_them(tmp_path, monkeypatch):
    from cosim.studies import ppa as ppa_mod
    from cosim.studies.ppa import PPAStudy, UnitPPA
    from nmpu_model.workloads.registry import load_workload

    monkeypatch.setenv("NMPU_CACHE_DIR", str(tmp_path / "cache"))
    calls = []
    units = {k: UnitPPA.from_dict(k, _unit_doc(k, f, l, e, a))
             for k, f, l, e, a in (("fixed", 200.0, 2, 40.0, 2e4), ("fp16", 100.0, 6, 160.0, 1e5))}

    def fake(config, us, work, out, **kw):
        calls.append(config.scale.bits)
        return PPAStudy(library="OSU 0.18 um", activity="layer", stimulus=kw["stim"].name, units=units)

    monkeypatch.setattr(ppa_mod, "ppa_study", fake)
    work = load_workload("digits-cnn", None, 8)
    a = cost.cached_ppa_study(NMPUConfig(), work, tmp_path / "o", samples=4)
    b = cost.cached_ppa_study(NMPUConfig(), work, tmp_path / "o", samples=4)
    assert calls == [NMPUConfig().scale.bits], "the second study of the same configuration is read from the cache"
    assert b.units["fixed"].timing.fmax_mhz == 200.0 and b.units["fp16"].energy_pj_per_value == 160.0
    assert a.stimulus == b.stimulus
    from cosim.synth.flow import variant_config
    other = variant_config(NMPUConfig(), {"scale.bits": 6})
    cost.cached_ppa_study(other, work, tmp_path / "o", samples=4)
    assert len(calls) == 2, "another configuration is measured again"


def test_cli_cost_of_a_mapping_gives_each_layer_its_own_units(tmp_path, monkeypatch, capsys):
    """``nmpu cost --mapping``: each format measured once (here by a stand-in flow whose energy per value is 10 pJ per
    scale bit), each layer on tiles charged its own unit's energy, the digital one nothing, the fp16 one the FP16
    unit's; the figures file it writes feeds ``nmpu map --figures``."""
    from cosim.studies import ppa as ppa_mod
    from cosim.studies.ppa import PPAStudy, UnitPPA

    monkeypatch.setenv("NMPU_CACHE_DIR", str(tmp_path / "cache"))
    asked = []

    def fake(config, us, work, out, **kw):
        asked.append((config.scale.bits, config.relu, tuple(us)))
        docs = {"fixed": ("fixed", 200.0, 2, 10.0 * config.scale.bits, 2e4), "fp16": ("fp16", 100.0, 6, 160.0, 1e5)}
        return PPAStudy(library="OSU 0.18 um", activity="layer", stimulus=kw["stim"].name,
                        units={u: UnitPPA.from_dict(u, _unit_doc(*docs[u])) for u in us})

    monkeypatch.setattr(ppa_mod, "ppa_study", fake)
    (tmp_path / "m.json").write_text(json.dumps({"layers": {
        "0": "digital", "3": "fixed[scale.bits=4]", "7": "fixed", "12": "fp16", "14": "fixed[scale.bits=4]"}}))
    rc = main(["cost", "--mapping", str(tmp_path / "m.json"), "--images", "8", "--json", str(tmp_path / "c.json"),
               "--out", str(tmp_path / "o")])
    assert rc == 0, capsys.readouterr().err[-2000:]
    doc = json.loads((tmp_path / "c.json").read_text())
    # the base (with the FP16 unit) and the 4-bit format, each once, as the first analog layer uses them (ReLU on)
    assert asked == [(8, True, ("fixed", "fp16")), (4, True, ("fixed",))]
    e = {"3": 40.0, "7": 80.0, "12": 160.0, "14": 40.0}
    loads = doc["loads"]
    want = sum(loads[n]["vectors"] * loads[n]["columns"] * e[n] for n in e)
    assert doc["cost"]["energy_pj"] == pytest.approx(want, rel=1e-12)
    assert [l["name"] for l in doc["cost"]["layers"]] == ["3", "7", "12", "14"]
    macs = {n: ld["vectors"] * ld["inputs"] * ld["columns"] for n, ld in loads.items()}
    assert doc["mac_fraction"] == pytest.approx(1 - macs["0"] / sum(macs.values()), rel=1e-12)
    assert set(doc["figures"]) == {"fixed", "fixed[scale.bits=4]", "fp16"}
    rc = main(["cost", "--mapping", str(tmp_path / "m.json"), "--ppa", str(tmp_path / "c.json")])
    assert rc == 2 and "drop --ppa" in capsys.readouterr().err
