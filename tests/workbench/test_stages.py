"""Each stage besides eval through the workbench: the real command in its run folder, its page's key figures and
report section against the JSON that command wrote (read from the disk here), its figures and files, and runs of one
stage side by side. Small settings: the map's are `nmpu run --quick`'s (its units' timing and power are cached)."""
from __future__ import annotations

import csv
import html
import io
import json
import re
import shlex

import pytest

from .conftest import wait_for

SWEEP = {"stage": "sweep", "network": "digits-cnn", "seeds": 1, "images": 40, "drift_time": 3600, "workers": 0,
         "grid_toml": '[grid]\n"scale.bits" = [2, 8]\n'}


def figures(page: str) -> dict[str, str]:
    """The key figures' cells of a run page ({label: text}) or of a comparison ({(run, label): text})."""
    out = {}
    for attrs, text in re.findall(r"<td ([^>]*data-figure=[^>]*)>(.*?)</td>", page):
        label = html.unescape(re.search(r'data-figure="([^"]*)"', attrs).group(1))
        run = re.search(r'data-run="(\d+)"', attrs)
        out[(int(run.group(1)), label) if run else label] = html.unescape(text)
    return out


def finished(client, runs, params) -> tuple[dict, dict, str]:
    """Submit, wait, and return (the run's status, the JSON its command wrote, its page)."""
    r = client.post("/api/runs", json=params)
    assert r.status_code == 201, r.text
    st = wait_for(client, r.json()["id"], timeout=600)
    assert st["status"] == "done", st
    stage = params["stage"]
    doc = json.loads((runs / st["folder"] / f"{stage}.json").read_text())
    page = client.get(f"/runs/{st['id']}")
    assert page.status_code == 200
    return st, doc, page.text


def test_sweep_runs_shows_its_choice_and_two_sweeps_compare(client, paths):
    _, _, runs = paths
    st, doc, page = finished(client, runs, SWEEP)
    argv = shlex.split(st["command"])
    assert argv[:2] == ["nmpu", "sweep"] and argv[argv.index("--grid") + 1] == "grid.toml"
    assert argv[argv.index("--drift") + 1] == "3600" and argv[argv.index("--workers") + 1] == "0"
    folder = runs / st["folder"]
    assert (folder / "grid.toml").read_text() == SWEEP["grid_toml"]
    assert [q["point"] for q in doc["points"]] == [{"scale.bits": 2}, {"scale.bits": 8}]
    shown = figures(page)
    assert shown["grid points"] == "2"
    assert shown["fp16 accuracy"] == f"{100 * doc['fp16']['mean']:.2f}%"
    c = doc["chosen"]
    assert shown["chosen point"] == ", ".join(f"{k} = {v}" for k, v in c["point"].items())
    assert shown["chosen: bits"] == str(c["cost_bits"])
    # the report's section: its sentence on the chosen point, and the plot the command drew
    assert f"{c['cost_bits']} bits" in page and 'src="/runs/%d/files/sweep.png"' % st["id"] in page
    png = client.get(f"/runs/{st['id']}/files/sweep.png")
    assert png.status_code == 200 and png.content == (folder / "sweep.png").read_bytes()

    st2, doc2, _ = finished(client, runs, {**SWEEP, "scale_frac": 6, "offset_bits": 6})
    cmp = client.get(f"/compare?ids={st['id']},{st2['id']}")
    assert cmp.status_code == 200
    side = figures(cmp.text)
    for s, d in ((st, doc), (st2, doc2)):
        assert side[(s["id"], "grid points")] == "2"
        assert side[(s["id"], "fp16 accuracy")] == f"{100 * d['fp16']['mean']:.2f}%"
    assert "offset 6." in cmp.text and "offset 8.1" in cmp.text       # each run's formats beside it
    rows = list(csv.DictReader(io.StringIO(client.get(f"/compare.csv?ids={st['id']},{st2['id']}").text)))
    for s, d in ((st, doc), (st2, doc2)):
        mine = {r["quantity"]: r for r in rows if r["run"] == str(s["id"])}
        assert float(mine["fp16 accuracy"]["value"]) == 100 * d["fp16"]["mean"]
        assert mine["chosen point"]["value"] == "" and mine["chosen point"]["text"] == ", ".join(
            f"{k} = {v}" for k, v in d["chosen"]["point"].items())
    png = client.get(f"/compare.png?ids={st['id']},{st2['id']}")
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_cosim_runs_and_its_page_shows_every_layer_and_no_mismatch(client, paths):
    _, _, runs = paths
    st, doc, page = finished(client, runs, {"stage": "cosim", "network": "digits-cnn", "images": 16, "seed": 1,
                                            "drift_time": 60})
    argv = shlex.split(st["command"])
    assert argv[argv.index("--seed") + 1] == "1" and argv[argv.index("--drift") + 1] == "60"
    assert doc["seed"] == 1 and doc["drift"] == 60.0 and doc["images"] == 16
    shown = figures(page)
    values = sum(layer["values"] for layer in doc["layers"])
    assert shown["output codes"] == f"{values:,}" and shown["mismatches"] == str(doc["mismatches"]) == "0"
    for layer in doc["layers"]:                      # the report's table: one row per layer, its values
        assert f"<td>{layer['name']}</td><td>{layer['values']:,}</td><td>{layer['mismatches']}</td>" in page


def test_synth_runs_draws_its_figures_and_serves_its_netlists(client, paths):
    _, _, runs = paths
    st, doc, page = finished(client, runs, {"stage": "synth", "ppa": False, "images": 16})
    argv = shlex.split(st["command"])
    assert {"--compare", "--breakdown", "--no-ppa", "--no-precisions"} <= set(argv)
    assert argv[argv.index("--out") + 1] == "synth"
    folder = runs / st["folder"]
    shown = figures(page)
    assert shown["fixed area (µm², sky130)"] == f"{doc['fixed']['area']:,.0f}"
    assert shown["FP16 area (µm², sky130)"] == f"{doc['fp16']['area']:,.0f}"
    assert shown["FP16 / fixed area"] == f"{doc['area_ratio']:.2f}x"
    assert shown["fixed flip-flops"] == str(doc["fixed"]["flip_flops"])
    assert "timing" not in " ".join(shown) and "fmax" not in " ".join(shown)       # no PPA run, none shown
    assert (folder / "area.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"           # drawn when the run ended
    assert f'src="/runs/{st["id"]}/files/area.png"' in page
    netlists = sorted(p.relative_to(folder).as_posix() for p in folder.glob("synth/*/netlist.v"))
    assert len(netlists) >= 2
    for name in netlists:
        assert f'/runs/{st["id"]}/files/{name}"' in page
        got = client.get(f"/runs/{st['id']}/files/{name}")
        assert got.status_code == 200 and got.content == (folder / name).read_bytes()


def test_map_runs_and_shows_the_chosen_mapping(client, paths):
    _, _, runs = paths
    st, doc, page = finished(client, runs, {"stage": "map", "network": "digits-cnn", "seeds": 1, "images": 60,
                                            "formats_toml": '[grid]\n"scale.bits" = [2]\n"offset.bits" = [2]\n',
                                            "trials": 16, "samples": 16, "verify": False, "workers": 0})
    argv = shlex.split(st["command"])
    assert "--no-verify" in argv and argv[argv.index("--formats") + 1] == "formats.toml"
    assert argv[argv.index("--out") + 1] == "." and argv[argv.index("--samples") + 1] == "16"
    folder = runs / st["folder"]
    assert {"mapping.json", "pareto.png", "sensitivity.png", "sensitivity.json"} <= {p.name for p in folder.iterdir()}
    shown = figures(page)
    assert shown["mappings evaluated"] == f"{doc['trials']} of {doc['space_size']:,}"
    c = doc["chosen"]
    assert c is not None
    assert shown["chosen: loss (pp)"] == f"{100 * c['loss']:+.2f}"
    assert shown["chosen: energy (nJ/inference)"] == f"{c['energy_pj'] / 1e3:,.3f}"
    assert shown["chosen mapping"] == ", ".join(f"{n} {v}" for n, v in c["params"].items())
    for name in ("pareto.png", "sensitivity.png"):
        assert f'src="/runs/{st["id"]}/files/{name}"' in page
    assert "Not co-simulated with the RTL here" in page


@pytest.mark.parametrize("url, message", [
    ("/compare?ids=1,2", "runs of different stages (eval, sweep) cannot be compared"),
])
def test_runs_of_different_stages_are_not_compared(client, url, message):
    from cosim.workbench import db as wdb
    with client.app.state.sessions.begin() as s:
        s.add_all([wdb.Run(stage="eval", params={}, status="done", folder="a", metrics={"x": 1}),
                   wdb.Run(stage="sweep", params={}, status="done", folder="b", metrics={"x": 1})])
    r = client.get(url)
    assert r.status_code == 400 and r.text.strip() == message
