"""The workbench's web application (FastAPI): the study form, the runs, a run's results and files, comparisons.

:func:`create_app` opens the database (every run left queued or running by a stopped server becomes
"interrupted"), starts the runner and returns the app; :func:`serve` runs it with uvicorn. Bad input is a 4xx
with one line (JSON ``{"error": ...}`` for the API, the form with the line beside it for the browser) and
stores nothing.
"""
from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from cosim.report.plots import LABELS, compare_plot, drift_plot, figures_plot
from nmpu_model.workloads.metrics import METRICS

from . import db, results, study
from .db import runs_dir_for
from .jobs import STDERR, Runner, last_line

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


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


class TooLarge(ValueError):
    """An upload over the size limit (413)."""


#: the upload fields: field -> the suffixes it takes (the file's name in the run folder: network<suffix>, data.npz)
UPLOAD_FIELDS = {"model_file": study.MODEL_SUFFIXES, "data_file": (".npz",)}


async def stage_uploads(files: dict[str, Any], into: Path, limit: int) -> dict[str, str]:
    """The uploaded network and data copied into the folder ``into`` under fixed names (``network.pt2`` or
    ``network.onnx``, ``data.npz``; the names the browser sent pick the suffix and are shown, never used as paths),
    each at most ``limit`` bytes; a one-line ValueError (TooLarge over the limit)."""
    unknown = sorted(set(files) - set(UPLOAD_FIELDS))
    if unknown:
        raise ValueError(f"unknown file field {unknown[0]!r} (the form uploads model_file and data_file)")
    missing = [k for k in UPLOAD_FIELDS if k not in files]
    if missing:
        raise ValueError(f"{missing[0]}: an uploaded network needs both model_file (.pt2 or .onnx) and data_file (.npz)")
    names, shown = {}, []
    for field, suffixes in UPLOAD_FIELDS.items():
        up = files[field]
        given = re.sub(r"[\x00-\x1f\x7f]", "?", os.path.basename(str(up.filename).replace("\\", "/")))[:120]
        suffix = next((x for x in suffixes if given.lower().endswith(x)), None)
        if suffix is None:
            raise ValueError(f"{field}: {given!r} is not a {' or '.join(suffixes)} file")
        name = study.DATA_NAME if field == "data_file" else "network" + suffix
        size = 0
        with open(into / name, "wb") as out:
            while chunk := await up.read(1 << 20):
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"{field}: {given!r} is larger than the upload limit of {limit // 2**20} MB "
                                   "(nmpu serve --max-upload)")
                out.write(chunk)
        if size == 0:
            raise ValueError(f"{field}: {given!r} is empty")
        names["model" if field == "model_file" else "data"] = name
        shown.append(given)
    return {**names, "names": ", ".join(shown)}


def create_app(db_url: str | None = None, runs_dir: str | Path | None = None, max_running: int = 2,
               python: str | None = None, max_upload_mb: int = 256) -> FastAPI:
    if db_url is None:
        db_url = db.default_url()                # the database `nmpu ... --record` writes to as well
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
        """The run folder's files (subfolders too, as "synth/fixed-generic/netlist.v"), symbolic links left out:
        the only names a file address may take."""
        folder = runs / run.folder
        out = []
        for top, dirs, names in os.walk(folder):           # os.walk does not follow links into other folders
            dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(top, d)))
            rel = Path(top).relative_to(folder)
            out += [(rel / n).as_posix() for n in names if not os.path.islink(os.path.join(top, n))]
        return sorted(out, key=lambda n: (n.count("/"), n))

    def form_page(request: Request, values: dict[str, Any], error: str | None = None, status: int = 200):
        return page(request, "form.html", status, values=values, error=error, networks=study.NETWORKS,
                    upload=study.UPLOAD, devices=study.DEVICES, compensations=study.COMPENSATIONS,
                    stages=study.STAGES, config_fields=[f[0] for f in study.CONFIG_FIELDS],
                    objectives=study.OBJECTIVES, max_upload_mb=max_upload_mb)

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request):
        """The form; ``?from=ID``: filled in with that run's parameters (a variant of it is one field away)."""
        source = request.query_params.get("from", "")
        if not source:
            return form_page(request, study.defaults())
        run = find(source)
        if run is None or run.stage not in study.STAGES or run.params.get("recorded"):
            return _error(request, f"no run {source} started from the workbench to start from", 404)
        values = {**study.defaults(), **{k: v for k, v in run.params.items() if v is not None}}
        if run.params.get("data"):            # an uploaded network: its files are the run's, not the new form's
            values["network"] = study.UPLOAD
        return form_page(request, values)

    limit = max_upload_mb * 2**20

    @app.post("/api/runs")
    async def submit(request: Request):
        is_json = request.headers.get("content-type", "").startswith("application/json")
        data: dict[str, Any] = {}
        staging: Path | None = None
        try:
            if is_json:
                try:
                    data = await request.json()
                except ValueError:
                    raise ValueError("the request body is not JSON") from None
                if not isinstance(data, dict):
                    raise ValueError("the request body must be a JSON object of the study's fields")
                upload = None
            else:
                length = request.headers.get("content-length", "")
                if length.isdigit() and int(length) > 2 * limit + 2**20:
                    raise TooLarge(f"the request ({int(length) // 2**20} MB) is larger than the upload limit of "
                                   f"{max_upload_mb} MB a file (nmpu serve --max-upload)")
                form = await request.form()
                data = {k: v for k, v in form.items() if isinstance(v, str)}
                files = {k: v for k, v in form.multi_items() if not isinstance(v, str) and v.filename}
                upload = None
                if files:
                    staging = Path(tempfile.mkdtemp(prefix=".upload-", dir=runs))
                    upload = {**await stage_uploads(files, staging, limit), "folder": str(staging)}
            params = await run_in_threadpool(study.check, data, upload)
            moved = {n: staging / n for n in (upload["model"], upload["data"])} if upload else None
            run_id = runner.submit(params, moved)
        except (ValueError, RuntimeError) as e:
            # ValueError: bad input (413 over the upload limit, else 400); RuntimeError: a tool or the database
            # failed while checking or storing (500); one line either way, and nothing stored
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            status = 413 if isinstance(e, TooLarge) else 400 if isinstance(e, ValueError) else 500
            if is_json:
                return JSONResponse({"error": msg}, status_code=status)
            return form_page(request, {**study.defaults(), **data}, msg, status=status)
        finally:
            if staging is not None:             # moved into the run folder, or refused: the staging folder goes
                shutil.rmtree(staging, ignore_errors=True)
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
        every = db.all_runs(sessions)
        return page(request, "runs.html", runs=every,
                    formats={r.id: results.formats(r.params.get("config_toml")) for r in every})

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    def run_page(request: Request, run_id: str):
        run = find(run_id)
        if run is None:
            return _error(request, f"no run {run_id}", 404)
        doc = run.metrics
        table = results_table(doc) if doc and run.stage == "eval" else None
        section = results.section_html(run.stage, doc, runs / run.folder,
                                       lambda name: f"/runs/{run.id}/files/{quote(name)}") if doc else ""
        return page(request, "run.html", run=run, table=table, section=section, files=files_of(run),
                    figures=results.key_figures(run.stage, doc) if doc else [],
                    formats=results.formats(run.params.get("config_toml")), folder=runs / run.folder,
                    progress=last_line(runs / run.folder / STDERR), active=run.status in db.ACTIVE)

    @app.get("/runs/{run_id}/plot.png")
    def run_plot(request: Request, run_id: str):
        run = find(run_id)
        if run is None:
            return _error(request, f"no run {run_id}", 404)
        if not run.metrics or run.stage != "eval":
            return _error(request, f"run {run.id} has no accuracy against drift time ({run.stage}, {run.status})", 404)
        buf = io.BytesIO()
        with results.PLOT_LOCK:
            drift_plot(run.metrics, buf)
        return Response(buf.getvalue(), media_type="image/png")

    @app.get("/runs/{run_id}/files/{name:path}")
    def run_file(request: Request, run_id: str, name: str):
        run = find(run_id)
        if run is None:
            return _error(request, f"no run {run_id}", 404)
        listing = files_of(run)
        if name not in listing:              # only a name from the folder's own listing, never a joined path
            return _error(request, f"run {run.id} has no file {name!r}", 404)
        path = runs / run.folder / listing[listing.index(name)]
        text = path.suffix in (".txt", ".toml", ".json", ".log", ".v", ".sdc", ".tcl", ".md")
        image = path.suffix == ".png"
        return FileResponse(path, media_type="text/plain; charset=utf-8" if text else "image/png" if image else None,
                            filename=None if text or image else path.name)

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
        stages = sorted({r.stage for r in out})
        if len(stages) > 1:
            return _error(request, f"runs of different stages ({', '.join(stages)}) cannot be compared", 400)
        if stages[0] != "eval" and stages[0] not in results.SUMMARIES:
            return _error(request, f"runs of nmpu {stages[0]} have no figures to compare", 400)
        metric = {r.metrics.get("metric", "accuracy") for r in out if r.stage != "synth"}
        if len(metric) > 1:
            return _error(request, f"runs of different metrics ({', '.join(sorted(metric))}) cannot be compared", 400)
        return out

    def figure_rows(got: list[db.Run]) -> list[dict[str, Any]]:
        """The runs' key figures by label, in the order they first appear (a run without one: a dash)."""
        per = [{label: text for label, _, text in results.key_figures(r.stage, r.metrics)} for r in got]
        labels = list(dict.fromkeys(label for fig in per for label in fig))
        return [{"label": label, "cells": [fig.get(label) for fig in per]} for label in labels]

    @app.get("/compare", response_class=HTMLResponse)
    def compare(request: Request):
        got = compared(request)
        if isinstance(got, Response):
            return got
        ids = ",".join(str(r.id) for r in got)
        formats = {r.id: results.formats(r.params.get("config_toml")) for r in got}
        if got[0].stage != "eval":
            return page(request, "compare.html", runs=got, rows=None, figures=figure_rows(got), formats=formats,
                        metric=None, ids=ids, stage=got[0].stage)
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
        return page(request, "compare.html", runs=got, rows=rows, figures=None, formats=formats,
                    metric=tables[got[0].id]["metric"], ids=ids, stage="eval")

    @app.get("/compare.png")
    def compare_png(request: Request):
        got = compared(request)
        if isinstance(got, Response):
            return got
        buf = io.BytesIO()
        with results.PLOT_LOCK:
            if got[0].stage == "eval":
                compare_plot([(f"run {r.id}", r.metrics) for r in got], buf)
            else:
                figures_plot([(f"run {r.id}", results.key_figures(r.stage, r.metrics)) for r in got], buf,
                             f"nmpu {got[0].stage}: runs {', '.join(str(r.id) for r in got)}")
        return Response(buf.getvalue(), media_type="image/png")

    @app.get("/compare.csv")
    def compare_csv(request: Request):
        import csv
        got = compared(request)
        if isinstance(got, Response):
            return got
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=results.CSV_COLUMNS, restval="", lineterminator="\n")
        writer.writeheader()
        for r in got:
            writer.writerows(results.csv_rows(r))
        name = "compare-" + "-".join(str(r.id) for r in got) + ".csv"
        return Response(buf.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"content-disposition": f'attachment; filename="{name}"'})

    return app


def loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (127.0.0.0/8, ::1, localhost)."""
    import ipaddress
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(host: str = "127.0.0.1", port: int = 8765, db_url: str | None = None, runs_dir: str | None = None,
          max_running: int = 2, max_upload_mb: int = 256) -> None:
    import uvicorn
    app = create_app(db_url, runs_dir, max_running, max_upload_mb=max_upload_mb)
    print(f"nmpu serve: http://{host}:{port}/  (runs in {app.state.runs_dir})", flush=True)
    if not loopback(host):
        print(f"nmpu serve: warning: {host} is reachable from other machines, and the workbench has no login: anyone "
              "who reaches this port can run studies, upload files and read every run", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


__all__ = ["create_app", "serve", "results_table"]
