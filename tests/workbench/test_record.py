"""Commands run in a terminal, recorded (`--record`, or NMPU_RECORD=1) in the database the workbench reads: listed,
their page's figures from the JSON the command wrote, compared with each other; bad input records nothing."""
from __future__ import annotations

import json
import sqlite3
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from cosim.cli import main
from cosim.workbench.app import create_app

from .conftest import cells

EVAL = ["eval", "--model", "digits-cnn", "--images", "32", "--seeds", "1", "--drift", "1,3600"]


def rows(db) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT id, stage, status, exit_code, command FROM runs ORDER BY id").fetchall()


def test_recorded_commands_are_listed_shown_and_compared(tmp_path, monkeypatch, capsys):
    db = tmp_path / "wb" / "wb.sqlite"                       # its folder does not exist yet: made by the record
    monkeypatch.setenv("NMPU_WORKBENCH_DB", f"sqlite:///{db}")
    monkeypatch.delenv("NMPU_RECORD", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main([*EVAL, "--json", "a.json"]) == 0                  # not asked: not recorded
    assert not db.exists()
    assert main([*EVAL, "--json", "a.json", "--record"]) == 0
    assert "recorded as run 1" in capsys.readouterr().err
    monkeypatch.setenv("NMPU_RECORD", "1")                         # the setting: every command
    assert main([*EVAL, "--json", "b.json", "--drift", "86400"]) == 0
    assert main([*EVAL, "--seeds", "0"]) == 2                      # bad input: nothing ran, nothing recorded
    got = rows(db)
    assert [(i, st, s, rc) for i, st, s, rc, _ in got] == [(1, "eval", "done", 0), (2, "eval", "done", 0)]
    assert got[0][4] == "nmpu " + " ".join([*EVAL, "--json", "a.json", "--record"])

    with TestClient(create_app()) as client:                       # NMPU_WORKBENCH_DB: the same database
        listed = client.get("/runs").text
        assert 'data-run="1"' in listed and 'data-run="2"' in listed
        for run_id, name in ((1, "a.json"), (2, "b.json")):
            doc = json.loads((tmp_path / name).read_text())
            page = client.get(f"/runs/{run_id}").text
            assert "recorded from a terminal" in page and str(tmp_path) in page
            shown = cells(page)
            for key in ("analog_fp16", "analog_fixed"):
                for e in doc[key]:
                    mean, std = shown[(None, key, e["t"])]
                    assert abs(mean - 100 * e["mean"]) < 0.006 and abs(std - 100 * e["std"]) < 0.006
            st = client.get(f"/api/runs/{run_id}").json()
            folder = db.parent / "runs" / st["folder"]
            assert json.loads((folder / "eval.json").read_text()) == doc       # a copy in its own run folder
            assert (folder / "accuracy_vs_drift.png").read_bytes()[:4] == b"\x89PNG"
        cmp = client.get("/compare?ids=1,2")
        assert cmp.status_code == 200 and (("2", "analog_fixed", 86400.0) in cells(cmp.text))


def test_a_failing_command_is_recorded_as_failed(tmp_path, monkeypatch, capsys):
    db = tmp_path / "wb.sqlite"
    monkeypatch.setenv("NMPU_WORKBENCH_DB", f"sqlite:///{db}")
    monkeypatch.chdir(tmp_path)
    # a deliberately broken RTL (the tests' fault): mismatches, exit status 1
    assert main(["cosim", "--images", "8", "--fault", "tie", "--json", "c.json", "--record"]) == 1
    assert [(s, rc) for _, _, s, rc, _ in rows(db)] == [("failed", 1)]
    with TestClient(create_app()) as client:
        page = client.get("/runs/1").text
        doc = json.loads((tmp_path / "c.json").read_text())
        assert doc["mismatches"] > 0 and f'data-figure="mismatches">{doc["mismatches"]}</td>' in page


def test_a_record_that_cannot_be_stored_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NMPU_WORKBENCH_DB", "nosuchdialect://x")
    monkeypatch.chdir(tmp_path)
    assert main([*EVAL, "--record"]) == 0                         # the command's own status stands
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("nmpu eval: not recorded: --db 'nosuchdialect://x'")
