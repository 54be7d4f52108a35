"""Place and route (``nmpu synth --layout``): a clean layout whose LVS can fail, wires that cost time and energy,
parasitics against a hand calculation, a second configuration, and a failing tool named with its log."""
from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

from cosim.cli import main
from cosim.synth import layout as lay
from nmpu_model.golden.config import NMPUConfig

pytestmark = pytest.mark.xdist_group("ppa")     # the default unit's mapped netlist and activity build, shared


@pytest.fixture(scope="session")
def laid(tmp_path_factory) -> dict:
    """`nmpu synth --layout` of the default fixed unit, activity from 16 samples of a real layer."""
    d = tmp_path_factory.mktemp("layout")
    out = d / "synth.json"
    assert main(["synth", "--layout", "--samples", "16", "--out", str(d / "o"), "--json", str(out)]) == 0
    return json.loads(out.read_text())["fixed"]


def test_layout_is_clean_and_its_wires_cost_time_and_energy(laid: dict) -> None:
    L = laid["layout"]
    f = L["figures"]
    assert L["drc_errors"] == 0 and L["lvs"] == "clean"
    assert f["die_area_um2"] >= f["core_area_um2"] > f["cell_area_um2"] > 0
    assert f["utilization"] == pytest.approx(f["cell_area_um2"] / f["core_area_um2"], rel=1e-3)
    assert 0.3 < f["utilization"] < 0.9 and f["wire_length_um"] > 1000 and f["vias"] > 0
    # every cell of the mapped netlist is in the block (the memories are not cells of the area either)
    assert f["cells"] == laid["osu018"]["cells"]
    # the wires load the gates: the critical path grows, energy per value too; the block's pre-layout
    # critical path is the mapped netlist's (the memories' pins as ports change no path)
    pre = L["pre_layout"]
    assert pre["timing"]["critical_path_ns"] == pytest.approx(laid["timing"]["critical_path_ns"], rel=1e-3)
    assert L["critical_path_ns"] > 1.02 * pre["timing"]["critical_path_ns"]
    assert L["fmax_mhz"] == pytest.approx(1000 / L["critical_path_ns"], rel=1e-3)
    assert L["energy_pj_per_value"] > pre["power"]["energy_pj_per_value"]
    # ... but not wildly: the wires add ~3 pF to a block of ~650 cells (measured +6%); an unrealistic transition
    # (the clock routed with no clock tree, once annotated) multiplied the FP16 unit's energy by 5
    assert L["energy_pj_per_value"] < 1.5 * pre["power"]["energy_pj_per_value"]
    assert L["parasitics"]["ideal"] == ["clk"] and "*D_NET clk " not in Path(L["files"]["spef"]).read_text()
    assert L["power"]["activity_nets"].split()[0] == L["power"]["activity_nets"].split()[2]   # every net annotated
    for k in ("gds", "def", "spef"):
        assert Path(L["files"][k]).stat().st_size > 0
    assert Path(L["picture"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lvs_fails_for_a_netlist_without_one_cell(laid: dict, tmp_path: Path) -> None:
    folder = Path(laid["layout"]["folder"])
    top = laid["layout"]["top"]
    ref = (folder / f"{top}_ref.spc").read_text().splitlines()
    first = next(i for i, ln in enumerate(ref) if ln.startswith("X") and "FILL" not in ln)
    minus = folder / f"{top}_minus_one.spc"
    minus.write_text("\n".join(ref[:first] + ref[first + 1:]) + "\n")
    assert lay.run_lvs(folder, top, minus, "lvs_minus_one").startswith("mismatch")
    assert lay.run_lvs(folder, top, folder / f"{top}_ref.spc", "lvs_again") == "clean"


def test_parasitics_by_hand(tmp_path: Path) -> None:
    """One net, 10 um of metal1 and 4 um of metal2, a port driving two cell inputs: the SPEF's total capacitance
    and resistance from the OSU LEF's numbers worked by hand (metal1: 0.3 um wide, 0.08 ohm/sq, 3.8e-5 pF/um^2,
    8e-5 pF/um per edge; metal2: 0.3 um, 0.08 ohm/sq, 1.9e-5 pF/um^2, 6e-5 pF/um)."""
    lef = lay.read_lef(lay.osu018.library_dir() / "osu018_stdcells.lef")
    routed = lay.Routed("t", (0, 0, 20, 20), [("u1", "INVX1", 0, 0), ("u2", "INVX1", 5, 0)],
                        [("n", "metal1", (0, 0), (10, 0)), ("n", "metal2", (10, 0), (10, 4))], [], 1,
                        {"n": [("PIN", "a"), ("u1", "A"), ("u2", "A")]}, [])
    v = tmp_path / "t.v"
    v.write_text("module t (a);\n  input a;\nendmodule\n")
    spef = tmp_path / "t.spef"
    lay.write_spef(routed, lef, v, spef)
    c = 10 * (3.8e-5 * 0.3 + 2 * 8e-5) + 4 * (1.9e-5 * 0.3 + 2 * 6e-5)
    r = 10 * 0.08 / 0.3 + 4 * 0.08 / 0.3
    text = spef.read_text()
    assert float(re.search(r"\*D_NET n (\S+)", text).group(1)) == pytest.approx(c, rel=1e-5)
    caps = [float(x) for x in re.findall(r"^\d+ \S+ ([\d.e-]+)$", text.split("*CAP")[1].split("*RES")[0], re.M)]
    assert sum(caps) == pytest.approx(c, rel=1e-5)
    res = re.findall(r"^1 a n:1 (\S+)$", text, re.M)
    assert res and float(res[0]) == pytest.approx(r, rel=1e-5)
    assert "*P a I" in text and "*I u1:A I *D INVX1" in text


def test_a_second_configuration_routes(tmp_path: Path) -> None:
    from cosim.synth import ppa
    config = NMPUConfig.from_dict({"adc_bits": 5, "scale": {"bits": 4, "frac": 3, "signed": False},
                                   "offset": {"bits": 4, "frac": 1, "signed": True},
                                   "output": {"bits": 4, "frac": 0, "signed": True},
                                   "rtl": {"lanes": 2, "columns": 4}})
    n = ppa.map_netlist(config, "fixed", tmp_path)
    d = lay.post_layout(n, 0.1, tmp_path / "layout", density=0.7, layers=4)
    assert d["drc_errors"] == 0 and d["lvs"] == "clean" and d["layers"] == 4
    assert d["critical_path_ns"] > d["pre_layout"]["timing"]["critical_path_ns"]


def test_a_failing_tool_is_named_with_its_log(laid: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    q = fake / "qrouter"
    q.write_text("#!/bin/sh\necho 'qrouter: out of routing resources' >&2\nexit 3\n")
    q.chmod(q.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    from cosim.synth import ppa
    folder = Path(laid["layout"]["folder"])
    n = ppa.LibertyNetlist(**{**{k: v for k, v in laid["osu018"].items()},
                              "folder": Path(laid["osu018"]["folder"]), "netlist": Path(laid["osu018"]["netlist"]),
                              "liberty": Path(laid["osu018"]["liberty"]),
                              "macro_liberty": Path(laid["osu018"]["macro_liberty"]),
                              "models": [Path(p) for p in laid["osu018"]["models"]]})
    with pytest.raises(RuntimeError, match=r"layout step place failed: qrouter exit 3 .*\n.*out of routing") as e:
        lay.layout(n, tmp_path / "again")
    assert folder.exists() and "place.log" in str(e.value)


@pytest.mark.parametrize("args, message", [
    (["--density", "0.5"], "--density and --route-layers belong to --layout"),
    (["--layout", "--density", "0.99"], "--density must be in [0.1, 0.95]"),
    (["--layout", "--route-layers", "7"], "--route-layers must be 2..6"),
    (["--layout", "--no-ppa"], "drop --no-ppa"),
])
def test_cli_refusals(args: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["synth", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
