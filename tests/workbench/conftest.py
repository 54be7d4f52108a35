"""The workbench's fixtures: an app on a fresh SQLite file and runs folder, and helpers that read what it stored
without going through it (the database with sqlite3, the run folders from the disk)."""
from __future__ import annotations

import html.parser
import io
import sqlite3
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch

with warnings.catch_warnings():
    warnings.simplefilter("ignore")                # starlette's note on httpx: the TestClient works as documented
    from fastapi.testclient import TestClient

from cosim.workbench.app import create_app

#: the smallest eval that still runs every post-processor at two drift times (a few seconds)
SMALL = {"stage": "eval", "network": "digits-cnn", "seeds": 1, "drift": "1,3600", "images": 64}


@pytest.fixture
def paths(tmp_path: Path) -> tuple[str, Path, Path]:
    db = tmp_path / "wb.sqlite"
    return f"sqlite:///{db}", db, tmp_path / "runs"


@pytest.fixture
def client(paths):
    url, _, runs = paths
    with TestClient(create_app(url, runs, max_running=2)) as c:
        yield c


def stored_runs(db: Path) -> list[tuple]:
    """(id, status, folder) of every row of the runs table, read with sqlite3."""
    with sqlite3.connect(db) as con:
        return con.execute("SELECT id, status, folder FROM runs ORDER BY id").fetchall()


def wait_for(client, run_id: int, statuses=("done", "failed", "cancelled", "interrupted"), timeout: float = 120):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        st = client.get(f"/api/runs/{run_id}").json()
        if st["status"] in statuses:
            return st
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} still {st['status']} after {timeout} s: {st}")


class Cells(html.parser.HTMLParser):
    """The text of every ``<td>`` with a ``data-post`` attribute, keyed by its data attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[tuple, str] = {}
        self._key: tuple | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "td" and "data-post" in a:
            self._key = (a.get("data-run"), a["data-post"], float(a["data-t"]))
            self.cells[self._key] = ""

    def handle_endtag(self, tag):
        if tag == "td":
            self._key = None

    def handle_data(self, data):
        if self._key is not None:
            self.cells[self._key] += data


def cells(page: str) -> dict[tuple, tuple[float, float]]:
    """(run or None, post-processor, t) -> (mean, std) as the page shows them."""
    p = Cells()
    p.feed(page)
    out = {}
    for k, text in p.cells.items():
        mean, sep, std = text.partition("\u00b1")
        if sep:                                   # an empty cell (a drift time the run did not have) is a dash
            out[k] = (float(mean), float(std))
    return out


class Network(NamedTuple):
    model: bytes          # the .pt2 file's bytes
    data: bytes           # the .npz file's bytes
    folder: Path          # where both are on disk, as mlp.pt2 and data.npz (for a browser's file field)


@pytest.fixture(scope="session")
def network(tmp_path_factory) -> Network:
    """A small MLP on 16 features (torch.export, dynamic batch) and 300 samples of a linearly separable task: the
    bytes of its .pt2 and .npz files (also on disk beside each other, mlp.pt2 and data.npz, for a browser)."""
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("net")
    x = torch.randn(300, 16)
    y = (x[:, :3].argmax(1)).long()
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    ep = torch.export.export(model, (x[:2],), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(ep, d / "mlp.pt2")
    buf = io.BytesIO()
    np.savez(buf, x=x.numpy(), y=y.numpy())
    (d / "data.npz").write_bytes(buf.getvalue())
    return Network((d / "mlp.pt2").read_bytes(), buf.getvalue(), d)
