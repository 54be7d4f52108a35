"""`nmpu serve` itself: it serves on the loopback address, its database is in the user's data folder by default,
and its bad options are one line."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nmpu(*args: str, env: dict | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cosim.cli", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def answer(p: subprocess.Popen, port: int) -> str:
    """The form page, once the server answers on the loopback address (a signal before then races its start)."""
    end = time.monotonic() + 60
    while True:
        assert p.poll() is None, p.communicate()
        assert time.monotonic() < end, "nmpu serve did not answer"
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
        except OSError:
            time.sleep(0.2)


def test_serve_defaults_to_loopback_and_the_user_data_folder(tmp_path: Path):
    port = free_port()
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "data"), HOME=str(tmp_path / "home"))
    p = nmpu("serve", "--port", str(port), env=env)
    try:
        page = answer(p, port)
        assert 'id="study"' in page
        first = p.stdout.readline()
        assert first.startswith(f"nmpu serve: http://127.0.0.1:{port}/") and "warning" not in first
        db = tmp_path / "data" / "nmpu-cosim" / "workbench.sqlite"
        assert db.is_file() and (db.parent / "runs").is_dir()
        # bound to 127.0.0.1 only: another address of this machine is refused (when it has one)
        others = {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)} - {"127.0.0.1"}
        for addr in others - {a for a in others if a.startswith("127.")}:
            with socket.socket() as s:
                s.settimeout(2)
                assert s.connect_ex((addr, port)) != 0, addr
    finally:
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=30)
    assert p.returncode in (0, -signal.SIGINT)


def test_serving_beyond_this_machine_is_warned_of(tmp_path: Path):
    port = free_port()
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "data"), HOME=str(tmp_path / "home"))
    p = nmpu("serve", "--host", "0.0.0.0", "--port", str(port), env=env)
    try:
        lines = [p.stdout.readline(), p.stdout.readline()]
        assert 'id="study"' in answer(p, port)                  # 0.0.0.0 includes the loopback address
    finally:
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=30)
    assert lines[0].startswith(f"nmpu serve: http://0.0.0.0:{port}/")
    assert lines[1].startswith("nmpu serve: warning: 0.0.0.0 is reachable from other machines, and the workbench has "
                               "no login")


def test_loopback_addresses():
    from cosim.workbench.app import loopback
    assert all(map(loopback, ("127.0.0.1", "127.0.0.2", "::1", "localhost")))
    assert not any(map(loopback, ("0.0.0.0", "::", "192.168.1.5", "example.org")))


def test_bad_options_are_one_line(tmp_path: Path, capsys):
    from cosim.cli import main
    for args, msg in ((["--max-running", "0"], "nmpu serve: error: --max-running must be >= 1, not 0"),
                      (["--port", "70000"], "nmpu serve: error: --port must be in 1..65535, not 70000"),
                      (["--db", "nosuchdb://x", "--runs", str(tmp_path / "r")], "nmpu serve: error: --db 'nosuchdb://x': "),
                      (["--db", f"sqlite:///{tmp_path}/no/such/folder/wb.sqlite", "--runs", str(tmp_path / "r")],
                       "nmpu serve: failed: --db ")):
        code = main(["serve", *args])
        err = capsys.readouterr().err
        assert code == (1 if "failed" in msg else 2) and err.startswith(msg) and err.count("\n") == 1, err
    assert not (tmp_path / "r").exists() and not (tmp_path / "no").exists()
