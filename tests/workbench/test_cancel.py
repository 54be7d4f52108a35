"""Cancelling a run kills its whole process group (the command and what it started); a queued run never starts."""
from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path

from cosim.workbench.app import create_app

from .conftest import SMALL, TestClient, stored_runs, wait_for


def gone(pid: int) -> bool:
    """No such process, or a zombie waiting for a parent that is not this test."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_cancel_kills_the_process_group(paths, tmp_path: Path):
    url, dbfile, runs = paths
    # the interpreter the runner starts: it leaves a grandchild in the group (as a tool a command runs would be),
    # writes its pid into the run folder, then becomes the real command
    wrapper = tmp_path / "python"
    wrapper.write_text(f"#!/bin/sh\nsleep 300 &\necho $! > grandchild.pid\nexec {sys.executable} \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    with TestClient(create_app(url, runs, max_running=1, python=str(wrapper))) as c:
        a = c.post("/api/runs", json={**SMALL, "images": None, "seeds": 20}).json()
        queued = c.post("/api/runs", json=SMALL).json()
        folder = runs / a["folder"]
        end = time.monotonic() + 30
        while not (folder / "grandchild.pid").is_file() or not (folder / "grandchild.pid").read_text().strip():
            assert time.monotonic() < end
            time.sleep(0.05)
        child = c.app.state.runner.procs[a["id"]].pid
        grandchild = int((folder / "grandchild.pid").read_text())
        assert os.getpgid(grandchild) == child and not gone(grandchild)     # one group, led by the command

        r = c.post(f"/api/runs/{queued['id']}/cancel")                      # the queued one: never started
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        assert not (runs / queued["folder"] / "stderr.txt").exists()

        r = c.post(f"/api/runs/{a['id']}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        end = time.monotonic() + 10
        while not (gone(child) and gone(grandchild)):
            assert time.monotonic() < end, "the process group outlived its cancel"
            time.sleep(0.05)
        assert wait_for(c, a["id"])["status"] == "cancelled"
        time.sleep(0.5)                              # the runner's loop has seen the exit: the status stays
        assert c.get(f"/api/runs/{a['id']}").json()["status"] == "cancelled"
    assert [r[1] for r in stored_runs(dbfile)] == ["cancelled", "cancelled"]
