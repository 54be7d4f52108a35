"""The workbench's database on a real PostgreSQL server (`nmpu serve --db postgresql://...`): the table created, a
submitted run stored, the restart's "interrupted", and a server that is not there as one line.

One throw-away server for the module: Debian's initdb and pg_ctl (brought by `make install`, scripts/system-deps.sh)
on a folder of its own in /tmp, listening on a unix socket in that folder only (no TCP), trust authentication, its
time zone far from UTC (+12:45) so that a naive UTC time read as local time would show. What the app stored is read
back with psycopg, not through the app.
"""
from __future__ import annotations

import glob
import json
import math
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest

from cosim.workbench import db as wdb
from cosim.workbench.app import create_app

from .conftest import SMALL, TestClient, wait_for

ROOT = Path(__file__).resolve().parents[2]
MISSING = "run make install (scripts/system-deps.sh installs Debian's postgresql)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin() -> Path:
    """The folder of the newest PostgreSQL's server programs: /usr/lib/postgresql/<version>/bin."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(re.sub(r"\D", "", p) or 0))
    if not found or not os.path.exists(Path(found[-1]).parent / "pg_ctl"):
        pytest.fail(f"PostgreSQL's initdb and pg_ctl are not in /usr/lib/postgresql/<version>/bin: {MISSING}",
                    pytrace=False)
    return Path(found[-1]).parent


@pytest.fixture(scope="module")
def pg():
    """A PostgreSQL server of the module's own (host: its socket folder, port), stopped and removed after."""
    bin_ = pg_bin()
    base = Path(tempfile.mkdtemp(prefix="nmpu-pg-"))     # not pytest's tmp_path: root's is closed to other users
    as_owner: list[str] = []
    if os.getuid() == 0:                                  # postgres refuses to run as root: its own user runs it
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail(f"no 'postgres' user to run PostgreSQL as (this runs as root): {MISSING}", pytrace=False)
        os.chown(base, owner.pw_uid, owner.pw_gid)
        as_owner = ["runuser", "-u", "postgres", "--"]
    data, log, port = base / "data", base / "server.log", free_port()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*as_owner, *args], cwd=base, capture_output=True, text=True, timeout=60)

    try:
        r = run(str(bin_ / "initdb"), "-D", str(data), "-U", "nmpu", "-A", "trust", "-E", "UTF8", "--no-locale",
                "--no-sync")
        assert r.returncode == 0, f"initdb failed:\n{r.stdout[-1500:]}{r.stderr[-1500:]}"
        r = run(str(bin_ / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "30", "-o",
                f"-c listen_addresses='' -k {base} -p {port} -c fsync=off -c timezone=Pacific/Chatham", "start")
        assert r.returncode == 0, f"pg_ctl start failed:\n{r.stderr[-1000:]}\n{log.read_text()[-1500:]}"
        yield SimpleNamespace(host=str(base), port=port, count=[0])
    finally:
        if (data / "postmaster.pid").exists():
            run(str(bin_ / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


def admin(pg, dbname: str = "postgres") -> psycopg.Connection:
    return psycopg.connect(host=pg.host, port=pg.port, user="nmpu", dbname=dbname, autocommit=True)


@pytest.fixture
def pg_db(pg):
    """A fresh database on the server: (the URL `nmpu serve --db` takes, its name)."""
    pg.count[0] += 1
    name = f"wb{pg.count[0]}"
    with admin(pg) as con:
        con.execute(f"CREATE DATABASE {name}")
    # plain postgresql://: SQLAlchemy 2.1's default PostgreSQL driver is psycopg 3 (requirements.txt)
    return f"postgresql://nmpu@/{name}?host={pg.host}&port={pg.port}", name


def rows(pg, name: str, sql: str) -> list[dict]:
    with admin(pg, name) as con, con.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(sql).fetchall()


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def test_the_table_and_a_submitted_run_on_postgresql(pg, pg_db, tmp_path: Path):
    url, name = pg_db
    runs = tmp_path / "runs"
    before = utc_now() - timedelta(seconds=1)
    with TestClient(create_app(url, runs, max_running=1)) as c:
        # the table, as PostgreSQL has it
        cols = {r["column_name"]: r["data_type"] for r in rows(pg, name, "SELECT column_name, data_type FROM "
                                                                "information_schema.columns WHERE table_name = 'runs'")}
        assert set(cols) == {col.name for col in wdb.Run.__table__.columns}
        assert cols["created"] == cols["started"] == cols["finished"] == "timestamp without time zone"
        # JSON as text, as in SQLite: PostgreSQL's json type refuses the NaN and Infinity eval's JSON may hold
        assert cols["params"] == cols["metrics"] == "text"
        assert rows(pg, name, "SELECT count(*) AS n FROM pg_indexes WHERE tablename = 'runs' "
                              "AND indexdef LIKE '%(status)%'") == [{"n": 1}]

        r = c.post("/api/runs", json={**SMALL, "images": None, "seeds": 20})      # long enough to cancel it
        assert r.status_code == 201, r.text
        run = r.json()
        proc = c.app.state.runner.procs[run["id"]]
        [stored] = rows(pg, name, "SELECT * FROM runs")
        assert stored["status"] == "running" and stored["pid"] == proc.pid and stored["started"] is not None
        r = c.post(f"/api/runs/{run['id']}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
        st = wait_for(c, run["id"])
    after = utc_now() + timedelta(seconds=1)

    [stored] = rows(pg, name, "SELECT * FROM runs")
    assert stored["id"] == run["id"] and stored["status"] == "cancelled" and stored["pid"] is None
    assert stored["stage"] == "eval" and stored["folder"] == run["folder"] and stored["command"] == run["command"]
    assert stored["exit_code"] == proc.returncode and stored["metrics"] is None
    # the study's parameters as the app returned them, and the fields the request set
    params = json.loads(stored["params"])
    assert params == run["params"]
    assert {k: params[k] for k in ("network", "seeds", "drift", "images")} == \
        {"network": "digits-cnn", "seeds": 20, "drift": "1,3600", "images": None}
    assert "[" in params["config_toml"] and "\n" in params["config_toml"]
    # naive UTC times, in order, the ones the API shows (PostgreSQL's own time zone is +12:45 here)
    times = [stored[k] for k in ("created", "started", "finished")]
    assert all(t.tzinfo is None for t in times)
    assert before <= times[0] <= times[1] <= times[2] <= after, (before, times, after)
    assert [t.isoformat(timespec="seconds") + "Z" for t in times] == [st["created"], st["started"], st["finished"]]
    assert stored["folder"] == f"run-{run['id']:05d}-{times[0]:%Y%m%d-%H%M%S}"


def test_a_restart_on_postgresql_marks_unfinished_runs_interrupted_and_keeps_the_rest(pg, pg_db, tmp_path: Path):
    url, name = pg_db
    runs = tmp_path / "runs"
    # a perplexity that overflowed and one that diverged: the command's JSON writes Infinity and NaN
    metrics = {"metric": "perplexity", "model": "tiny-lm", "images": 8, "seeds": 2, "note": "\u00b1 \u03bc",
               **{k: [{"t": 1.0, "mean": 4.1 + i / 10, "std": 0.1 + 0.2}, {"t": 3600.0, "mean": 5.0, "std": 0.0}]
                  for i, k in enumerate(("fp32_digital", "analog_fp32", "analog_fp16"))},
               "analog_fixed": [{"t": 1.0, "mean": 6.5, "std": 0.25},
                                {"t": 3600.0, "mean": float("inf"), "std": float("nan")}]}
    created = datetime(2026, 1, 2, 3, 4, 5, 678901)
    with TestClient(create_app(url, runs)) as c:
        with c.app.state.sessions.begin() as s:
            s.add_all([wdb.Run(stage="eval", params=dict(SMALL), status="done", folder="a", metrics=metrics,
                               created=created, finished=created + timedelta(minutes=1)),
                       wdb.Run(stage="eval", params=dict(SMALL), status="running", folder="b", pid=999999),
                       wdb.Run(stage="eval", params=dict(SMALL), status="failed", folder="c", error="boom"),
                       wdb.Run(stage="eval", params=dict(SMALL), status="queued", folder="d"),
                       wdb.Run(stage="eval", params=dict(SMALL), status="cancelled", folder="e")])
    table = "SELECT id, status, folder, metrics, error, created, finished, pid FROM runs ORDER BY id"
    assert [r["status"] for r in rows(pg, name, table)] == ["done", "running", "failed", "queued", "cancelled"]

    started = utc_now() - timedelta(seconds=1)
    app = create_app(url, runs)                              # the second start, on the same database
    got = rows(pg, name, table)
    assert [(r["id"], r["status"], r["folder"]) for r in got] == [
        (1, "done", "a"), (2, "interrupted", "b"), (3, "failed", "c"), (4, "interrupted", "d"), (5, "cancelled", "e")]
    done = got[0]
    assert done["created"] == created and done["finished"] == created + timedelta(minutes=1)   # microseconds kept
    kept = json.loads(done["metrics"])
    assert {k: v for k, v in kept.items() if k != "analog_fixed"} == {k: v for k, v in metrics.items()
                                                                      if k != "analog_fixed"}
    first, inf = kept["analog_fixed"]
    assert first == metrics["analog_fixed"][0] and inf["mean"] == math.inf and math.isnan(inf["std"])
    assert got[2]["error"] == "boom" and all(r["metrics"] is None for r in got[1:])
    for r in (got[1], got[3]):
        assert r["pid"] is None and started <= r["finished"] <= utc_now() + timedelta(seconds=1), r
    assert got[2]["finished"] is None and got[4]["finished"] is None
    with TestClient(app) as c:
        assert c.get("/api/runs/2").json()["status"] == "interrupted"
        assert c.get("/api/runs/1").json()["finished"] == "2026-01-02T03:05:05Z"
        page = c.get("/runs/1")
        assert page.status_code == 200 and ">inf<" in page.text.replace(" ", "") and "6.500" in page.text
        assert c.get("/runs/1/plot.png").status_code == 200
        page = c.get("/runs").text
        assert all(f'href="/runs/{i}"' in page for i in range(1, 6))


def test_a_postgresql_server_that_is_not_there_is_one_line(tmp_path: Path):
    port = free_port()                                        # nothing listens on it
    url = f"postgresql://nmpu@127.0.0.1:{port}/nmpu"
    with pytest.raises(RuntimeError) as e:
        wdb.connect(url)
    msg = str(e.value)
    assert msg == (f'--db postgresql://nmpu@127.0.0.1:{port}/nmpu: connection failed: connection to server at '
                   f'"127.0.0.1", port {port} failed: Connection refused'), msg

    runs = tmp_path / "runs"
    p = subprocess.run([sys.executable, "-m", "cosim.cli", "serve", "--db", url, "--runs", str(runs),
                        "--port", str(free_port())], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and p.stdout == "", (p.returncode, p.stdout, p.stderr)
    assert p.stderr == f"nmpu serve: failed: {msg}\n", p.stderr
    assert not runs.exists()
