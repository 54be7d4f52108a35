"""Uploading a network and its data: checked as `nmpu eval --model FILE --data FILE` checks them, kept in the run
folder under fixed names (the names the browser sends are never paths), size-limited; every refusal one line, nothing
stored."""
from __future__ import annotations

import io
import json
import shlex
import warnings

import numpy as np
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from cosim.workbench.app import create_app

from .conftest import stored_runs, wait_for

FORM = {"stage": "eval", "network": "upload", "seeds": "1", "drift": "3600", "images": "", "digital": "none"}


def files(model: bytes, data: bytes, model_name: str = "mlp.pt2", data_name: str = "digits.npz") -> dict:
    return {"model_file": (model_name, model, "application/octet-stream"),
            "data_file": (data_name, data, "application/octet-stream")}


def test_an_uploaded_network_runs_from_its_run_folder(client, paths, network):
    _, dbfile, runs = paths
    r = client.post("/api/runs", data=FORM, files=files(network.model, network.data, model_name="../../etc/evil name.pt2"),
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    run_id = int(r.headers["location"].rsplit("/", 1)[1])
    st = wait_for(client, run_id)
    assert st["status"] == "done", st
    folder = runs / st["folder"]
    # kept under fixed names, byte for byte; nothing under the name the browser sent, nothing left beside the runs
    assert (folder / "network.pt2").read_bytes() == network.model and (folder / "data.npz").read_bytes() == network.data
    assert not list(runs.rglob("*evil*")) and sorted(p.name for p in runs.iterdir()) == [st["folder"]]
    argv = shlex.split(st["command"])
    assert argv[argv.index("--model") + 1] == "network.pt2" and argv[argv.index("--data") + 1] == "data.npz"
    doc = json.loads((folder / "eval.json").read_text())
    assert doc["model"] == "network" and doc["images"] == 300 - 30     # a tenth of x calibrates (no calib array)
    page = client.get(f"/runs/{run_id}").text
    assert "evil name.pt2, digits.npz" in page and "../../etc" not in page    # shown by its base name only
    assert stored_runs(dbfile) == [(run_id, "done", st["folder"])]


def _refused(client, paths, status: int, message: str, **kw) -> None:
    _, dbfile, runs = paths
    r = client.post("/api/runs", **kw)
    assert r.status_code == status, r.text
    line = html_error(r.text)
    assert message in line and "\n" not in line, line
    assert stored_runs(dbfile) == [] and list(runs.iterdir()) == []


def html_error(page: str) -> str:
    import html
    import re
    m = re.search(r'<p class="error" id="error">(.*?)</p>', page, re.S)
    return html.unescape(m.group(1)) if m else page


def test_uploads_refused_in_one_line_and_nothing_stored(client, paths, network, tmp_path):
    model, data = network.model, network.data
    pickled = io.BytesIO()
    np.savez(pickled, x=np.array([object(), 1], dtype=object), y=np.array([0, 1]))
    cases = [
        (dict(data=FORM), 400, "network: upload a .pt2 or .onnx file and its .npz data"),
        (dict(data={**FORM, "network": "digits-cnn"}, files=files(model, data)), 400,
         "network: files were uploaded, but the network field says 'digits-cnn': choose upload"),
        (dict(data=FORM, files={"model_file": ("mlp.pt2", model, "x")}), 400,
         "data_file: an uploaded network needs both model_file (.pt2 or .onnx) and data_file (.npz)"),
        (dict(data=FORM, files=files(model, data, model_name="mlp.pkl")), 400,
         "model_file: 'mlp.pkl' is not a .pt2 or .onnx file"),
        (dict(data=FORM, files=files(model, data, data_name="d.npy")), 400, "data_file: 'd.npy' is not a .npz file"),
        (dict(data=FORM, files=files(model, b"")), 400, "data_file: 'digits.npz' is empty"),
        (dict(data=FORM, files={**files(model, data), "other": ("x.txt", b"1", "text/plain")}), 400,
         "unknown file field 'other'"),
        (dict(data=FORM, files=files(model, pickled.getvalue())), 400,
         "data.npz: not a readable .npz file (Object arrays cannot be loaded when allow_pickle=False)"),
        (dict(data=FORM, files=files(b"not a program", data)), 400, "--model network.pt2: not a torch.export program"),
        (dict(data=FORM, files=files(model, data, model_name="m.onnx")), 400, "network.onnx"),
        # a two-layer network with its first and last layers digital (the default): nothing on tiles
        (dict(data={**FORM, "digital": ""}, files=files(model, data)), 400, "network: nothing is on tiles"),
        (dict(data={**FORM, "digital": "fc9"}, files=files(model, data)), 400, "fc9"),
        (dict(data={**FORM, "digital": "a b"}, files=files(model, data)), 400, "digital must be layer names"),
    ]
    for kw, status, message in cases:
        _refused(client, paths, status, message, **kw)


def test_uploads_over_the_limit_are_413(paths, network):
    url, dbfile, runs = paths
    with TestClient(create_app(url, runs, max_upload_mb=1)) as client:
        client.app.state.runner.max_running = 0                      # stored and queued, never started
        big = network.data + b"\0" * (2 << 20)
        _refused(client, paths, 413, "data_file: 'digits.npz' is larger than the upload limit of 1 MB",
                 data=FORM, files=files(network.model, big))
        r = client.post("/api/runs", data=FORM, files=files(network.model, network.data), follow_redirects=False)
        assert r.status_code == 303, r.text                           # under the limit: stored
        assert [s for _, s, _ in stored_runs(dbfile)] == ["queued"]


def test_a_failing_tool_while_checking_is_one_line_and_leaves_nothing(client, paths, network, monkeypatch):
    """A check that fails for a reason other than the input (a tool, a missing package: RuntimeError) is a 500 with
    its one line, and the uploaded files' staging folder is gone as after a refusal."""
    from cosim.workbench import study

    def broken(*a, **k):
        raise RuntimeError("the ONNX converter is not installed\ntraceback lines")
    monkeypatch.setattr(study, "check_network", broken)
    _refused(client, paths, 500, "the ONNX converter is not installed", data=FORM,
             files=files(network.model, network.data))
