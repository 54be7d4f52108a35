"""The workbench's database: one table of runs (SQLAlchemy 2; SQLite by default, any SQLAlchemy URL)."""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, Text, create_engine, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

#: every status a run goes through; "interrupted": the server stopped while it was queued or running
STATUSES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
ACTIVE = ("queued", "running")


def now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class JSONText(TypeDecorator):
    """JSON kept as text, written and read with Python's json module: NaN and Infinity survive (an overflowed or
    diverged perplexity in ``nmpu eval --json``), which PostgreSQL's json type refuses."""
    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else json.dumps(value)

    def process_result_value(self, value: str | None, dialect: Any) -> Any:
        return None if value is None else json.loads(value)


#: a JSON document: SQLAlchemy's JSON (text in SQLite), text on PostgreSQL (see JSONText)
Doc = JSON().with_variant(JSONText(), "postgresql")


class Base(DeclarativeBase):
    pass


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created: Mapped[datetime] = mapped_column(DateTime, default=now)
    started: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    stage: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(Doc)
    command: Mapped[str] = mapped_column(Text, default="")
    metrics: Mapped[dict[str, Any] | None] = mapped_column(Doc, nullable=True)
    folder: Mapped[str] = mapped_column(String(64), default="")
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)

    def summary(self) -> dict[str, Any]:
        """The run as JSON (the API's answer), without its metrics."""
        t = (lambda d: d.isoformat(timespec="seconds") + "Z" if d else None)
        return {"id": self.id, "status": self.status, "stage": self.stage, "params": self.params,
                "command": self.command, "folder": self.folder, "exit_code": self.exit_code, "error": self.error,
                "created": t(self.created), "started": t(self.started), "finished": t(self.finished)}


def default_paths() -> tuple[str, Path]:
    """The SQLite URL and the runs folder in the user's data folder."""
    from platformdirs import user_data_dir

    base = Path(user_data_dir("nmpu-cosim"))
    return f"sqlite:///{base / 'workbench.sqlite'}", base / "runs"


#: the setting naming the workbench's database (`nmpu serve` and `nmpu ... --record` both read it)
DB_SETTING = "NMPU_WORKBENCH_DB"


def default_url() -> str:
    """The database when none is named: ``NMPU_WORKBENCH_DB``, else SQLite in the user's data folder; a SQLite
    file's folder is made (the first to open the default database creates it)."""
    from sqlalchemy.engine import make_url
    url = os.environ.get(DB_SETTING) or default_paths()[0]
    u = make_url(url)
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
        Path(u.database).resolve().parent.mkdir(parents=True, exist_ok=True)
    return url


def runs_dir_for(url: str) -> Path:
    """The runs folder beside a SQLite database file, else in the user's data folder."""
    from sqlalchemy.engine import make_url
    u = make_url(url)
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
        return Path(u.database).resolve().parent / "runs"
    return default_paths()[1]


def connect(url: str) -> sessionmaker[Session]:
    """A session factory on ``url`` with the table created; a URL SQLAlchemy cannot read is a one-line ValueError."""
    try:
        kw: dict[str, Any] = {}
        if url.startswith("sqlite"):
            kw["connect_args"] = {"check_same_thread": False, "timeout": 30}
        engine: Engine = create_engine(url, **kw)
    except (ArgumentError, ImportError) as e:
        raise ValueError(f"--db {url!r}: {str(e).splitlines()[0]}") from None
    try:
        Base.metadata.create_all(engine)
    except OperationalError as e:             # the database is there in name only: not bad input, a failing tool
        raise RuntimeError(f"--db {engine.url!r}: {str(e.orig or e).splitlines()[0]}") from None
    return sessionmaker(engine, expire_on_commit=False)


def mark_interrupted(sessions: sessionmaker[Session]) -> int:
    """Every run still queued or running (a server stopped under it) becomes "interrupted"; how many."""
    with sessions.begin() as s:
        res = s.execute(update(Run).where(Run.status.in_(ACTIVE))
                        .values(status="interrupted", finished=now(), pid=None))
        return int(res.rowcount or 0)


def all_runs(sessions: sessionmaker[Session]) -> list[Run]:
    with sessions() as s:
        return list(s.scalars(select(Run).order_by(Run.id.desc())))


def get_run(sessions: sessionmaker[Session], run_id: int) -> Run | None:
    with sessions() as s:
        return s.get(Run, run_id)
