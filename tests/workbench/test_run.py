"""A real study through the workbench: `nmpu eval` as a subprocess, its figures on the run page against the JSON the
command wrote (read from the run folder here, not through the app), its plot, its files, and a comparison."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

from cosim.workbench.jobs import SOURCE_ROOT

from .conftest import SMALL, cells, stored_runs, wait_for


def test_an_eval_study_runs_and_its_page_shows_the_commands_figures(client, paths, tmp_path):
    _, dbfile, runs = paths
    r = client.post("/api/runs", json={**SMALL, "scale_bits": 6, "scale_frac": 5})
    assert r.status_code == 201, r.text
    run = r.json()
    # a second run with another format, for the comparison below (two at once: --max-running 2)
    r2 = client.post("/api/runs", json={**SMALL, "seeds": 2, "drift": "3600", "output_bits": 6}).json()
    st = wait_for(client, run["id"])
    assert st["status"] == "done", st
    assert st["exit_code"] == 0 and st["started"] and st["finished"]
    # tqdm's last bar, after its last \r: images through the tiles, seeds x drift times x 3 post-processors x images
    assert re.fullmatch(r"eval digits-cnn: +\d+%\|.*\| *[\d.]+/384 \[.*\]", st["progress"]), st["progress"]

    folder = runs / run["folder"]
    doc = json.loads((folder / "eval.json").read_text())            # what the command itself wrote
    assert doc["config"]["scale"] == {"bits": 6, "frac": 5, "signed": False}   # the form's fields reached it
    assert doc["images"] == 64 and doc["seeds"] == 1 and [e["t"] for e in doc["analog_fixed"]] == [1.0, 3600.0]

    # the command as stored is the one that ran: nmpu + the arguments, its paths relative to the run folder
    argv = shlex.split(st["command"])
    assert argv[:2] == ["nmpu", "eval"] and argv[argv.index("--json") + 1] == "eval.json"
    assert argv[argv.index("--config") + 1] == "config.toml"
    assert argv[argv.index("--drift") + 1] == "1,3600" and argv[argv.index("--images") + 1] == "64"
    assert (folder / "command.txt").read_text().strip() == st["command"]
    # typed in a copy of the run folder, it writes the same document (the figures are reproducible from the page)
    copy = tmp_path / "again"
    shutil.copytree(folder, copy)
    (copy / "eval.json").unlink()
    env = dict(os.environ, PYTHONPATH=SOURCE_ROOT)
    subprocess.run([sys.executable, "-m", "cosim.cli", *argv[1:]], cwd=copy, env=env, check=True, capture_output=True)
    again = json.loads((copy / "eval.json").read_text())
    assert set(again) == set(doc)
    assert {k: again[k] for k in again if again[k] != doc[k]} == {"seconds": again["seconds"]}   # wall times only

    page = client.get(f"/runs/{run['id']}")
    assert page.status_code == 200
    shown = cells(page.text)
    expected = {(None, key, e["t"]): (round(100 * e["mean"], 2), round(100 * e["std"], 2))
                for key in ("fp32_digital", "analog_fp32", "analog_fp16", "analog_fixed") for e in doc[key]}
    assert set(shown) == set(expected)
    for k, (mean, std) in expected.items():
        assert abs(shown[k][0] - mean) < 0.006 and abs(shown[k][1] - std) < 0.006, (k, shown[k], mean, std)
    assert st["command"] in page.text.replace("&#39;", "'")

    png = client.get(f"/runs/{run['id']}/plot.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n" and len(png.content) > 5000
    assert f'src="/runs/{run["id"]}/plot.png"' in page.text

    listed = sorted(p.name for p in folder.iterdir() if p.is_file())
    assert {"eval.json", "stderr.txt", "stdout.txt", "config.toml", "command.txt"} <= set(listed)
    for name in listed:
        assert f'/runs/{run["id"]}/files/{name}' in page.text
    got = client.get(f"/runs/{run['id']}/files/eval.json")
    assert got.status_code == 200 and json.loads(got.content) == doc
    assert stored_runs(dbfile)[0] == (run["id"], "done", run["folder"])

    # the run's metrics in the database are that same document (read with sqlite3, not through the app)
    import sqlite3
    with sqlite3.connect(dbfile) as con:
        assert json.loads(con.execute("SELECT metrics FROM runs").fetchone()[0]) == doc

    # the second run, then both side by side
    assert wait_for(client, r2["id"])["status"] == "done"
    doc2 = json.loads((runs / r2["folder"] / "eval.json").read_text())
    cmp = client.get(f"/compare?ids={run['id']},{r2['id']}")
    assert cmp.status_code == 200
    shown = cells(cmp.text)
    for rid, d in ((run["id"], doc), (r2["id"], doc2)):
        for key in ("analog_fp16", "analog_fixed"):
            for e in d[key]:
                mean, std = shown[(str(rid), key, e["t"])]
                assert abs(mean - 100 * e["mean"]) < 0.006 and abs(std - 100 * e["std"]) < 0.006
    # drift 1 s: run 2 has none, its cell is a dash
    assert (str(r2["id"]), "analog_fixed", 1.0) not in shown and "&ndash;" in cmp.text
    png = client.get(f"/compare.png?ids={run['id']},{r2['id']}")
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    # the same comparison for a spreadsheet: every post-processor and drift time of each run, the JSON's values
    got = client.get(f"/compare.csv?ids={run['id']},{r2['id']}")
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    assert f'filename="compare-{run["id"]}-{r2["id"]}.csv"' in got.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(got.text)))
    want = {(str(rid), key, e["t"]): (e["mean"], e["std"]) for rid, d in ((run["id"], doc), (r2["id"], doc2))
            for key in ("fp32_digital", "analog_fp32", "analog_fp16", "analog_fixed") for e in d[key]}
    assert {(r["run"], r["quantity"], float(r["t_s"])): (float(r["mean"]), float(r["std"])) for r in rows} == want
    assert len(rows) == len(want) and {r["formats"] for r in rows if r["run"] == str(r2["id"])} == {
        "ADC 8 b, scale 8.7 u, offset 8.1, output 6.0"}
    assert client.get(f"/compare.csv?ids={run['id']}").status_code == 400
    runs_page = client.get("/runs").text
    assert runs_page.index(f'data-run="{r2["id"]}"') < runs_page.index(f'data-run="{run["id"]}"')   # newest first


def test_a_run_the_database_cannot_take_is_failed_and_the_runner_goes_on(client, paths, monkeypatch):
    """The runner's thread survives a failure while recording a finished run (PostgreSQL refusing a value, a lost
    connection): that run is "failed" with the reason, never left "running", and the next run still runs."""
    from cosim.workbench.jobs import Runner

    real, calls = Runner._finish, []

    def finish_once_broken(self, run_id, proc):
        calls.append(run_id)
        if len(calls) == 1:
            raise RuntimeError("the database went away")
        return real(self, run_id, proc)

    monkeypatch.setattr(Runner, "_finish", finish_once_broken)
    first = client.post("/api/runs", json={**SMALL, "drift": "3600", "images": 16}).json()
    st = wait_for(client, first["id"])
    assert st["status"] == "failed" and st["error"] == "not recorded: RuntimeError: the database went away"
    second = client.post("/api/runs", json={**SMALL, "drift": "3600", "images": 16}).json()
    assert wait_for(client, second["id"])["status"] == "done"
    assert [s for _, s, _ in stored_runs(paths[1])] == ["failed", "done"]
