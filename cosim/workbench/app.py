"""The workbench's web application (FastAPI): the study form, the runs, a run's results and files, comparisons.

:func:`create_app` opens the database (every run left queued or running by a stopped server becomes
"interrupted"), starts the runner and returns the app; :func:`serve` runs it with uvicorn. Bad input is a 4xx
with one line (JSON ``{"error": ...}`` for the API, the form with the line beside it for the browser) and
stores nothing.
"""
from __future__ import annotations

import io
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from cosim.report.plots import LABELS, compare_plot, drift_plot
from nmpu_model.workloads.metrics import METRICS

from . import db, study
from .jobs import STDERR, Runner, last_line

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def default_paths() -> tuple[str, Path]:
    """The SQLite URL and the runs folder in the user's data folder."""
    from platformdirs import user_data_dir
    base = Path(user_data_dir("nmpu-cosim"))
    return f"sqlite:///{base / 'workbench.sqlite'}", base / "runs"


def runs_dir_for(url: str) -> Path:
    """The runs folder beside a SQLite database file, else in the user's data folder."""
    from sqlalchemy.engine import make_url
    u = make_url(url)
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
        return Path(u.database).resolve().parent / "runs"
    return default_paths()[1]


def _error(request: Request, msg: str, status: int = 400) -> Response:
    """One line: JSON for the API, plain text for a page."""
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": msg}, status_code=status)
    return PlainTextResponse(msg + "\n", status_code=status)


def results_table(metrics: dict[str, Any]) -> dict[str, Any]:
    """The accuracy table of an ``nmpu eval --json`` document: per post-processor, per drift time, mean and std
    as shown (the metric's own formatting: accuracy in percent)."""
    metric = METRICS[metrics.get("metric", "accuracy")]
    times = [r["t"] for r in metrics["fp32_digital"]]
    rows = [{"key": key, "label": label,
             "cells": [{"t": r["t"], "mean": metric.show(r["mean"]), "std": metric.show(r["std"])}
                       for r in metrics[key]]} for key, label in LABELS.items()]
    return {"metric": metric.label, "times": times, "rows": rows}


def _time(t: float) -> str:
    from nmpu_model.studies.evaluate import time_name
    return time_name(t)


def create_app(db_url: str | None = None, runs_dir: str | Path | None = None, max_running: int = 2,
               python: str | None = None) -> FastAPI:
    if db_url is None:
        db_url, default_runs = default_paths()
        Path(default_runs).parent.mkdir(parents=True, exist_ok=True)
    runs = Path(runs_dir) if runs_dir is not None else runs_dir_for(db_url)
    sessions = db.connect(db_url)
    db.mark_interrupted(sessions)
    runs.mkdir(parents=True, exist_ok=True)
    runner = Runner(sessions, runs, max_running, **({"python": python} if python else {}))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        runner.start()
        try:
            yield
        finally:
            runner.stop()

    app = FastAPI(title="nmpu workbench", lifespan=lifespan)
    app.state.sessions, app.state.runner, app.state.runs_dir = sessions, runner, runs
    TEMPLATES.env.filters["time_name"] = _time

    def page(request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(request, name, ctx, status_code=status)

    def find(run_id: str) -> db.Run | None:
        return db.get_run(sessions, int(run_id)) if run_id.isdigit() else None

    def files_of(run: db.Run) -> list[str]:
        folder = runs / run.folder
        return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []

    def form_page(request: Request, values: dict[str, Any], error: str | None = None, status: int = 200):
        return page(request, "form.html", status, values=values, error=error, networks=study.NETWORKS,
                    devices=study.DEVICES, compensations=study.COMPENSATIONS, stages=list(study.STAGES),
                    config_fields=[f[0] for f in study.CONFIG_FIELDS])

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request):
        return form_page(request, study.defaults())

    @app.post("/api/runs")
    async def submit(request: Request):
        is_json = request.headers.get("content-type", "").startswith("application/json")
        try:
            if is_json:
                try:
                    data = await request.json()
                except ValueError:
                    raise ValueError("the request body is not JSON") from None
                if not isinstance(data, dict):
                    raise ValueError("the request body must be a JSON object of the study's fields")
            else:
                data = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
            params = study.check(data)
        except ValueError as e:
            msg = str(e).splitlines()[0]
            if is_json:
                return JSONResponse({"error": msg}, status_code=400)
            return form_page(request, {**study.defaults(), **data}, msg, status=400)
        run_id = runner.submit(params)
        if is_json:
            return JSONResponse(db.get_run(sessions, run_id).summary(), status_code=201)
        return RedirectResponse(f"/runs/{run_id}", status_code=303)

    @app.get("/api/runs/{run_id}")
    def run_status(request: Request, run_id: str):
        run = find(run_id)
        if run is None:
            return _error(request, f"no run {run_id}", 404)
        out = run.summary()
        out["progress"] = last_line(runs / run.folder / STDERR)
        return out

    @app.post("/api/runs/{run_id}/cancel")
    def cancel(request: Request, run_id: str):         # a thread of its own: killing a group may take seconds
        run = find(run_id)
        if run is None:
            return _error(request, f"no run {run_id}", 404)
        if not runner.cancel(run.id):
            return _error(request, f"run {run.id} is {run.status}, not queued or running", 409)
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return RedirectResponse(f"/runs/{run.id}", status_code=303)
        return db.get_run(sessions, run.id).summary()

    @app.get("/runs", response_class=HTMLResponse)
    def run_list(request: Request):
        return page(request, "runs.html", runs=db.all_runs(sessions))

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    def run_page(request: Request, run_id: str):
        run = find(run_id)
        if run is None:
            return _error(request, f"no run {run_id}", 404)
        table = results_table(run.metrics) if run.metrics else None
        return page(request, "run.html", run=run, table=table, files=files_of(run),
                    progress=last_line(runs / run.folder / STDERR), active=run.status in db.ACTIVE)

    @app.get("/runs/{run_id}/plot.png")
    def run_plot(request: Request, run_id: str):
        run = find(run_id)
        if run is None:
            return _error(request, f"no run {run_id}", 404)
        if not run.metrics:
            return _error(request, f"run {run.id} has no results ({run.status})", 404)
        buf = io.BytesIO()
        drift_plot(run.metrics, buf)
        return Response(buf.getvalue(), media_type="image/png")

    @app.get("/runs/{run_id}/files/{name}")
    def run_file(request: Request, run_id: str, name: str):
        run = find(run_id)
        if run is None:
            return _error(request, f"no run {run_id}", 404)
        listing = files_of(run)
        if name not in listing:              # only a name from the folder's own listing, never a joined path
            return _error(request, f"run {run.id} has no file {name!r}", 404)
        path = runs / run.folder / listing[listing.index(name)]
        text = path.suffix in (".txt", ".toml", ".json")
        return FileResponse(path, media_type="text/plain; charset=utf-8" if text else None,
                            filename=None if text else path.name)

    def compared(request: Request) -> list[db.Run] | Response:
        text = request.query_params.get("ids", "")
        if not text.strip() and request.query_params.getlist("id"):
            text = ",".join(request.query_params.getlist("id"))
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if any(not p.isdigit() for p in parts):
            bad = next(p for p in parts if not p.isdigit())
            return _error(request, f"ids: {bad!r} is not a run id", 400)
        ids = list(dict.fromkeys(int(p) for p in parts))
        if len(ids) < 2:
            return _error(request, f"compare needs at least two run ids (ids=1,2), not {len(ids)}", 400)
        out = [db.get_run(sessions, i) for i in ids]
        for i, run in zip(ids, out):
            if run is None:
                return _error(request, f"no run {i}", 404)
        for run in out:
            if not run.metrics:
                return _error(request, f"run {run.id} has no results to compare ({run.status})", 400)
        metric = {r.metrics.get("metric", "accuracy") for r in out}
        if len(metric) > 1:
            return _error(request, f"runs of different metrics ({', '.join(sorted(metric))}) cannot be compared", 400)
        return out

    @app.get("/compare", response_class=HTMLResponse)
    def compare(request: Request):
        got = compared(request)
        if isinstance(got, Response):
            return got
        tables = {r.id: results_table(r.metrics) for r in got}
        times = sorted({t for tb in tables.values() for t in tb["times"]})
        rows = []
        for key, label in LABELS.items():
            for t in times:
                cells = []
                for r in got:
                    row = next(x for x in tables[r.id]["rows"] if x["key"] == key)
                    cells.append(next((c for c in row["cells"] if c["t"] == t), None))
                rows.append({"key": key, "label": label, "t": t, "cells": cells})
        return page(request, "compare.html", runs=got, rows=rows, metric=tables[got[0].id]["metric"],
                    ids=",".join(str(r.id) for r in got))

    @app.get("/compare.png")
    def compare_png(request: Request):
        got = compared(request)
        if isinstance(got, Response):
            return got
        buf = io.BytesIO()
        compare_plot([(f"run {r.id}", r.metrics) for r in got], buf)
        return Response(buf.getvalue(), media_type="image/png")

    return app


def serve(host: str = "127.0.0.1", port: int = 8765, db_url: str | None = None, runs_dir: str | None = None,
          max_running: int = 2) -> None:
    import uvicorn
    app = create_app(db_url, runs_dir, max_running)
    print(f"nmpu serve: http://{host}:{port}/  (runs in {app.state.runs_dir})", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


__all__ = ["create_app", "serve", "results_table"]
