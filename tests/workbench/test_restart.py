"""The database across a restart: runs a stopped server left queued or running become "interrupted", the rest stay."""
from __future__ import annotations

import json
import sqlite3

from cosim.workbench import db as wdb
from cosim.workbench.app import create_app

from .conftest import SMALL, TestClient, stored_runs


def test_a_restart_marks_unfinished_runs_interrupted_and_keeps_the_rest(paths):
    url, dbfile, runs = paths
    metrics = {"metric": "accuracy", "fp32_digital": [{"t": 1.0, "mean": 0.5, "std": 0.0}]}
    with TestClient(create_app(url, runs)) as c:
        with c.app.state.sessions.begin() as s:
            s.add_all([wdb.Run(stage="eval", params=dict(SMALL), status="done", folder="a", metrics=metrics),
                       wdb.Run(stage="eval", params=dict(SMALL), status="running", folder="b", pid=999999),
                       wdb.Run(stage="eval", params=dict(SMALL), status="failed", folder="c", error="boom"),
                       wdb.Run(stage="eval", params=dict(SMALL), status="queued", folder="d"),
                       wdb.Run(stage="eval", params=dict(SMALL), status="cancelled", folder="e")])
        # the server is stopped with the rows as they are (a crash): stopping it does not touch rows it never ran
    assert [r[1] for r in stored_runs(dbfile)] == ["done", "running", "failed", "queued", "cancelled"]

    app = create_app(url, runs)                 # the second start, on the same file
    assert stored_runs(dbfile) == [(1, "done", "a"), (2, "interrupted", "b"), (3, "failed", "c"),
                                   (4, "interrupted", "d"), (5, "cancelled", "e")]
    with sqlite3.connect(dbfile) as con:
        rows = con.execute("SELECT metrics, error, finished, pid FROM runs ORDER BY id").fetchall()
    assert json.loads(rows[0][0]) == metrics and rows[2][1] == "boom"
    assert rows[1][2] is not None and rows[1][3] is None and rows[3][2] is not None
    with TestClient(app) as c:
        assert c.get("/api/runs/2").json()["status"] == "interrupted"
        page = c.get("/runs").text
        assert all(f'href="/runs/{i}"' in page for i in range(1, 6))


def test_stopping_the_server_interrupts_its_running_run(paths):
    url, dbfile, runs = paths
    with TestClient(create_app(url, runs, max_running=1)) as c:
        a = c.post("/api/runs", json={**SMALL, "images": None, "seeds": 20}).json()
        b = c.post("/api/runs", json={**SMALL}).json()
        assert [r[1] for r in stored_runs(dbfile)] == ["running", "queued"]
        proc = c.app.state.runner.procs[a["id"]]
    assert proc.poll() is not None                       # the process is gone with the server
    assert [r[1] for r in stored_runs(dbfile)] == ["interrupted", "interrupted"]
    assert b["status"] == "queued"
