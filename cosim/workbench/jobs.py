"""The runner: each run is a subprocess of the ``nmpu`` command itself, in its own process group, its output in
files in the run folder; at most ``max_running`` at once, the rest wait in a queue (first come, first served).

One thread watches the processes (every 0.2 s): a finished one is recorded (exit code, its JSON as the run's
metrics, or the last lines of stderr as its error) and the next queued run starts. Cancelling kills the run's
whole process group. Stopping the runner kills what still runs and marks it "interrupted".
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from .db import Run, now
from .results import draw
from .study import STAGES, command_line, texts

STDOUT, STDERR = "stdout.txt", "stderr.txt"
#: what the child imports: this checkout's (or installation's) packages, wherever the run folder is
SOURCE_ROOT = str(Path(__file__).resolve().parents[2])


def last_line(path: Path, size: int = 4096) -> str:
    """The last line of a log as a terminal shows it: the text after the last carriage return (progress bars)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - size))
            text = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    lines = [ln for ln in text.replace("\r\n", "\n").split("\n") if ln.strip()]
    if not lines:
        return ""
    parts = [p for p in lines[-1].split("\r") if p.strip()]
    return parts[-1].strip() if parts else ""


def tail(path: Path, n: int = 5) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    lines = [ln.split("\r")[-1] for ln in text.splitlines() if ln.split("\r")[-1].strip()]
    return "\n".join(lines[-n:])


def kill_group(pid: int, grace: float = 3.0) -> None:
    """SIGTERM to the process group of ``pid`` (its leader), SIGKILL to what is left after ``grace`` seconds."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + grace
    while time.monotonic() < end:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class Runner:
    def __init__(self, sessions: sessionmaker[Session], runs_dir: Path, max_running: int = 2,
                 python: str = sys.executable) -> None:
        if max_running < 1:
            raise ValueError(f"--max-running must be >= 1, not {max_running}")
        self.sessions, self.runs_dir, self.max_running, self.python = sessions, Path(runs_dir), max_running, python
        self.queue: deque[int] = deque()
        self.procs: dict[int, subprocess.Popen] = {}
        self.cancelled: set[int] = set()
        self.lock = threading.RLock()
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="nmpu-workbench-runner", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def submit(self, params: dict, files: dict[str, Path] | None = None) -> int:
        """Store a checked study as a queued run (its folder: its configuration and grid files, ``files`` moved in
        under their names (checked uploads), its command), and queue it; its id."""
        stage = STAGES[params["stage"]]
        with self.sessions.begin() as s:
            run = Run(stage=params["stage"], params=params, status="queued", created=now())
            s.add(run)
            s.flush()
            run.folder = f"run-{run.id:05d}-{run.created:%Y%m%d-%H%M%S}"
            folder = self.runs_dir / run.folder
            run.command = command_line(stage.args(params))
            folder.mkdir(parents=True, exist_ok=False)
            for name, text in texts(params).items():
                (folder / name).write_text(text)
            for name, path in (files or {}).items():
                os.replace(path, folder / name)
            (folder / "command.txt").write_text(run.command + "\n")         # to run in this folder
            run_id = run.id
        with self.lock:
            self.queue.append(run_id)
        self._start_queued()
        return run_id

    def _start_queued(self) -> None:
        with self.lock:
            while self.queue and len(self.procs) < self.max_running:
                self._launch(self.queue.popleft())

    def _launch(self, run_id: int) -> None:
        with self.sessions.begin() as s:
            run = s.get(Run, run_id)
            if run is None or run.status != "queued":
                return
            folder = self.runs_dir / run.folder
            args = STAGES[run.stage].args(run.params)
            env = dict(os.environ, NMPU_PROGRESS="1", PYTHONUNBUFFERED="1", NMPU_RECORD="0",   # stored here already
                       PYTHONPATH=os.pathsep.join(filter(None, [SOURCE_ROOT, os.environ.get("PYTHONPATH")])))
            with open(folder / STDOUT, "wb") as out, open(folder / STDERR, "wb") as err:
                try:
                    proc = subprocess.Popen([self.python, "-m", "cosim.cli", *args], cwd=folder, stdout=out,
                                            stderr=err, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
                except OSError as e:
                    run.status, run.finished, run.error = "failed", now(), f"could not start: {e}"
                    return
            run.status, run.started, run.pid = "running", now(), proc.pid
            self.procs[run_id] = proc

    def cancel(self, run_id: int) -> bool:
        """Cancel a queued or running run (its process group killed); False if it was not active."""
        with self.lock:
            if run_id in self.queue:
                self.queue.remove(run_id)
                proc = None
            elif run_id in self.procs:
                proc = self.procs[run_id]
                self.cancelled.add(run_id)
            else:
                return False
        if proc is not None:
            kill_group(proc.pid)
            proc.wait()
            self._finish(run_id, proc)
        else:
            with self.sessions.begin() as s:
                run = s.get(Run, run_id)
                run.status, run.finished = "cancelled", now()
        self._start_queued()
        return True

    def _finish(self, run_id: int, proc: subprocess.Popen) -> None:
        with self.lock:
            if self.procs.pop(run_id, None) is None:
                return                                  # already recorded (cancel and the loop met)
            cancelled = run_id in self.cancelled
        with self.sessions.begin() as s:
            run = s.get(Run, run_id)
            folder = self.runs_dir / run.folder
            run.exit_code, run.finished, run.pid = proc.returncode, now(), None
            out = STAGES[run.stage].json
            if cancelled:
                run.status = "cancelled"
            elif self.stop_event.is_set():
                run.status = "interrupted"
            elif proc.returncode == 0 and (folder / out).is_file():
                try:
                    run.metrics = json.loads((folder / out).read_text())
                    run.status = "done"
                except ValueError as e:
                    run.status, run.error = "failed", f"{out}: not JSON ({e})"
                else:
                    try:
                        draw(run.stage, run.metrics, folder)
                    except Exception as e:      # the results stand; the page says which figure is missing
                        run.error = f"figures not drawn: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            else:
                run.status = "failed"
                run.error = tail(folder / STDERR) or f"exit status {proc.returncode}"

    def _loop(self) -> None:
        while not self.stop_event.wait(0.2):
            with self.lock:
                done = [(i, p) for i, p in self.procs.items() if p.poll() is not None]
            for i, p in done:
                try:
                    self._finish(i, p)
                except Exception as e:          # a database that failed: the run is said failed, the loop goes on
                    self._failed(i, f"not recorded: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            try:
                self._start_queued()
            except Exception as e:
                print(f"nmpu serve: the runner could not start a run: {type(e).__name__}: {e}", file=sys.stderr)

    def _failed(self, run_id: int, error: str) -> None:
        """Mark a run failed with ``error`` (best effort: the database may be what failed)."""
        with self.lock:
            self.procs.pop(run_id, None)
        try:
            with self.sessions.begin() as s:
                run = s.get(Run, run_id)
                run.status, run.finished, run.pid, run.metrics, run.error = "failed", now(), None, None, error
        except Exception as e:
            print(f"nmpu serve: run {run_id}: {error}; and marking it failed failed too: {e}", file=sys.stderr)

    def stop(self) -> None:
        """Kill every running process group and mark those runs (and the queued ones) "interrupted"."""
        self.stop_event.set()
        with self.lock:
            procs = list(self.procs.items())
            queued = list(self.queue)
            self.queue.clear()
        for run_id, proc in procs:
            kill_group(proc.pid, grace=1.0)
            proc.wait()
            self._finish(run_id, proc)
        with self.sessions.begin() as s:
            for run_id in queued:
                run = s.get(Run, run_id)
                if run is not None and run.status == "queued":
                    run.status, run.finished = "interrupted", now()
        if self.thread.is_alive():
            self.thread.join(timeout=2)
