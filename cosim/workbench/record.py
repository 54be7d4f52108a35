"""A command run in a terminal, recorded in the workbench's database (``nmpu COMMAND ... --record``, or the setting
``NMPU_RECORD=1``): its command line, folder, times, exit status, the JSON it wrote (``--json``) as its metrics, and
a run folder of its own with copies of that JSON and of its figures, so that ``nmpu serve`` lists it beside the
runs it started itself and compares it with them.

The database: ``NMPU_WORKBENCH_DB`` (a SQLAlchemy URL), else the workbench's default (SQLite in the user's data
folder); the run folders beside a SQLite file, as ``nmpu serve --db`` finds them.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from . import db
from .results import draw
from .study import STAGES

#: the environment's setting that records every command (the database: db.DB_SETTING)
SETTING = "NMPU_RECORD"
#: the argparse names copied into a recorded run's parameters, under the workbench's names
PARAMS = {"model": "network", "data": "data", "device": "device", "compensation": "compensation",
          "images": "images", "digital": "digital", "seeds": "seeds", "seed": "seed", "drift": "drift",
          "mapping": "mapping", "grid": "grid", "formats": "formats", "trials": "trials", "tolerance": "tolerance"}
#: figures a command writes into its --out folder (copied beside its JSON)
OUT_FILES = ("sensitivity.json", "sensitivity.png", "pareto.png", "mapping.json", "area_breakdown.png", "ppa.png",
             "layout.png")


def wanted(args: argparse.Namespace) -> bool:
    """``--record`` given, or the setting on."""
    return bool(getattr(args, "record", False)) or os.environ.get(SETTING, "") not in ("", "0")


def database() -> tuple[str, Path]:
    """The database URL (its SQLite file's folder made) and the runs folder."""
    url = db.default_url()
    return url, db.runs_dir_for(url)


def _params(command: str, args: argparse.Namespace) -> dict[str, Any]:
    p: dict[str, Any] = {"stage": command, "recorded": True, "cwd": os.getcwd()}
    for name, key in PARAMS.items():
        v = getattr(args, name, None)
        if v is not None and v is not False:
            p[key] = v
    config = getattr(args, "config", None)
    if config:
        p["config"] = config
        try:
            p["config_toml"] = Path(config).read_text()
        except OSError:
            pass
    return p


def record(command: str, argv: list[str], args: argparse.Namespace, rc: int, started: datetime,
           finished: datetime) -> int:
    """Store the finished command as a run; its id."""
    url, runs = database()
    sessions = db.connect(url)
    status = "done" if rc == 0 else "interrupted" if rc == 130 else "failed"
    out = Path(args.json) if getattr(args, "json", None) else None
    doc = None
    if out is not None and out.is_file():
        try:
            doc = json.loads(out.read_text())
        except ValueError:
            doc = None
    with sessions.begin() as s:
        run = db.Run(stage=command, params=_params(command, args), status=status, created=started, started=started,
                     finished=finished, exit_code=rc, command=shlex.join(["nmpu", *argv]), metrics=doc,
                     error=None if rc == 0 else f"exit status {rc} (the terminal showed why)")
        s.add(run)
        s.flush()
        run.folder = f"run-{run.id:05d}-{started:%Y%m%d-%H%M%S}"
        folder = runs / run.folder
        folder.mkdir(parents=True, exist_ok=False)
        (folder / "command.txt").write_text(f"cd {shlex.quote(os.getcwd())}\n{run.command}\n")
        if doc is not None:
            name = STAGES[command].json if command in STAGES else f"{command}.json"
            shutil.copyfile(out, folder / name)
        plot = getattr(args, "plot", None)
        if plot and Path(plot).is_file():
            shutil.copyfile(plot, folder / ("sweep.png" if command == "sweep" else Path(plot).name))
        out_dir = getattr(args, "out", None)
        if out_dir and Path(out_dir).is_dir():
            for name in OUT_FILES:
                if (Path(out_dir) / name).is_file():
                    shutil.copyfile(Path(out_dir) / name, folder / name)
        if doc is not None and status == "done":
            try:
                draw(command, doc, folder)
            except Exception as e:                  # the record stands; the page says which figure is missing
                run.error = f"figures not drawn: {type(e).__name__}"
        return run.id
