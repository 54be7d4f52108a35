"""The workbench's HTTP API: bad input is a 4xx with one line and stores nothing; files only from a run's folder."""
from __future__ import annotations

import html.parser

import pytest

from cosim.workbench import db as wdb

from .conftest import SMALL, stored_runs

BAD = [
    ({"network": "lenet"}, "network must be one of digits-cnn"),
    ({"network": "../../etc/passwd.pt2"}, "network must be one of"),
    ({"device": "memristor"}, "device must be one of pcm"),
    ({"device": "rram:levels=x"}, "device rram:"),
    ({"device": "/tmp/x.csv"}, "device must be one of"),
    ({"compensation": "none"}, "compensation must be one of"),
    ({"seeds": -1}, "seeds must be in 1..100, not -1"),
    ({"seeds": 0}, "seeds must be in 1..100, not 0"),
    ({"seeds": "two"}, "seeds must be an integer"),
    ({"drift": "1,,3600"}, "drift: item 1 '' is not a number of seconds"),
    ({"drift": "1,-5"}, "drift: item 1 '-5' must be a finite time >= 0 s"),
    ({"drift": "nan"}, "drift: item 0 'nan' must be a finite time"),
    ({"drift": ""}, "drift: give comma-separated drift times"),
    ({"images": 0}, "images must be >= 1, not 0"),
    ({"stage": "synthesis"}, "stage must be one of eval, sweep, map, cosim, synth, not 'synthesis'"),
    ({"network": "upload"}, "network: upload a .pt2 or .onnx file and its .npz data"),
    ({"stage": "sweep", "drift_time": "1,3600"}, "drift_time must be a number, not '1,3600'"),
    ({"stage": "cosim", "drift_time": -1}, "drift_time must be a finite number >= 0, not -1"),
    ({"stage": "sweep", "tolerance": "inf"}, "tolerance must be a finite number >= 0, not 'inf'"),
    ({"stage": "sweep", "workers": -1}, "workers must be in 0..64, not -1"),
    ({"stage": "sweep", "grid_toml": "[grid]\n\"scale.bits\" = []\n"}, "grid: grid.toml: grid field 'scale.bits' must be a non-empty list"),
    ({"stage": "sweep", "grid_toml": "[grid]\n\"scale.bits\" = [0]\n"}, "grid: grid.toml: point {'scale.bits': 0}:"),
    ({"stage": "sweep", "grid_toml": "x = 1\n"}, "grid: grid.toml: expected a non-empty [grid] table"),
    ({"stage": "map", "formats_toml": "[grid]\n\"nonsense.bits\" = [2]\n"}, "formats: formats.toml: point"),
    ({"stage": "map", "trials": 0}, "trials must be in 1..10000, not 0"),
    ({"stage": "map", "objective": "speed"}, "objective must be one of energy, area, not 'speed'"),
    ({"stage": "map", "verify": "maybe"}, "verify must be true or false, not 'maybe'"),
    ({"stage": "cosim", "seed": -2}, "seed must be in 0..2147483647, not -2"),
    ({"stage": "synth", "samples": 0}, "samples must be in 1..100000, not 0"),
    ({"stage": "synth", "ppa": False, "layout": True}, "layout places and routes the OSU 0.18 um netlists"),
    ({"scale_bits": 0}, "config: config.toml: scale.bits"),
    ({"adc_bits": "eight"}, "adc_bits must be an integer"),
    ({"config_toml": "adc_bits = 8\n[scale]\nbits = 4\nfrac = 9\nwidth = 3\n"}, "config: config.toml: unknown field scale.width"),
    ({"config_toml": "adc_bits = = 8"}, "config: config.toml"),
]


@pytest.mark.parametrize("change, message", BAD, ids=[m for _, m in BAD])
def test_bad_study_is_400_with_one_line_and_nothing_stored(client, paths, change, message):
    _, dbfile, runs = paths
    r = client.post("/api/runs", json={**SMALL, **change})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert message in err and "\n" not in err
    assert stored_runs(dbfile) == []
    assert list(runs.iterdir()) == []


def test_bad_form_shows_the_line_beside_the_form_and_stores_nothing(client, paths):
    _, dbfile, _ = paths
    r = client.post("/api/runs", data={**SMALL, "seeds": "-3"})
    assert r.status_code == 400
    assert '<p class="error" id="error">seeds must be in 1..100, not -3</p>' in r.text
    assert 'id="study"' in r.text and 'value="-3"' in r.text          # the form again, with what was typed
    assert stored_runs(dbfile) == []


def test_drift_times_reach_the_command_as_given(client, paths):
    """Every digit of a drift time goes to the command (no rounding to 6 figures), whole seconds without '.0'."""
    runs = client.app.state.runner
    runs.max_running = 0                          # nothing starts: the run stays queued, its command is stored
    r = client.post("/api/runs", json={**SMALL, "drift": "1, 1234567.5,31536000, 0.25"})
    assert r.status_code == 201
    assert "--drift 1,1234567.5,31536000,0.25 " in r.json()["command"]
    assert r.json()["status"] == "queued"


def test_the_body_must_be_a_json_object(client, paths):
    for body in ("[1, 2]", "{not json"):
        r = client.post("/api/runs", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 400 and "\n" not in r.json()["error"]
    assert stored_runs(paths[1]) == []


@pytest.mark.parametrize("url, status, message", [
    ("/api/runs/7", 404, "no run 7"),
    ("/api/runs/x", 404, "no run x"),
    ("/runs/7", 404, "no run 7"),
    ("/runs/7/plot.png", 404, "no run 7"),
    ("/runs/7/files/eval.json", 404, "no run 7"),
    ("/compare?ids=", 400, "compare needs at least two run ids"),
    ("/compare?ids=1", 400, "compare needs at least two run ids (ids=1,2), not 1"),
    ("/compare?ids=1,1", 400, "not 1"),
    ("/compare?ids=1,a", 400, "ids: 'a' is not a run id"),
    ("/compare.png?ids=3", 400, "compare needs at least two run ids"),
])
def test_unknown_runs_and_short_comparisons(client, url, status, message):
    r = client.get(url)
    assert r.status_code == status
    text = r.json()["error"] if url.startswith("/api/") else r.text.rstrip("\n")
    assert message in text and "\n" not in text


def test_cancel_an_unknown_or_finished_run(client, paths):
    assert client.post("/api/runs/9/cancel").status_code == 404
    sessions = client.app.state.sessions
    with sessions.begin() as s:
        s.add(wdb.Run(stage="eval", params=dict(SMALL), status="done", folder="run-00001"))
    r = client.post("/api/runs/1/cancel")
    assert r.status_code == 409 and r.json()["error"] == "run 1 is done, not queued or running"
    assert stored_runs(paths[1]) == [(1, "done", "run-00001")]


def test_compare_refuses_runs_without_results(client):
    with client.app.state.sessions.begin() as s:
        s.add_all([wdb.Run(stage="eval", params=dict(SMALL), status="failed", folder="a"),
                   wdb.Run(stage="eval", params=dict(SMALL), status="failed", folder="b")])
    r = client.get("/compare?ids=1,2")
    assert r.status_code == 400 and r.text.strip() == "run 1 has no results to compare (failed)"
    r = client.get("/compare?id=2&id=1")            # the runs page's checkboxes without JavaScript
    assert r.status_code == 400 and r.text.strip() == "run 2 has no results to compare (failed)"
    assert client.get("/compare?ids=1,5").status_code == 404


def test_files_only_by_name_from_the_run_folder(client, paths):
    _, _, runs = paths
    folder = runs / "run-00001"
    (folder / "sub").mkdir(parents=True)
    (folder / "eval.json").write_text('{"a": 1}')
    (folder / "sub" / "inner.txt").write_text("INNER-CONTENT")
    (runs / "secret.txt").write_text("SECRET-CONTENT")
    (runs / "run-00001x").mkdir()
    (runs / "run-00001x" / "eval.json").write_text("OTHER-RUN-CONTENT")
    with client.app.state.sessions.begin() as s:
        s.add(wdb.Run(stage="eval", params=dict(SMALL), status="failed", folder="run-00001"))
    # links out of the folder: neither listed nor served (a file link and a folder link)
    (folder / "link.txt").symlink_to(runs / "secret.txt")
    (folder / "linked").symlink_to(runs / "run-00001x", target_is_directory=True)
    ok = client.get("/runs/1/files/eval.json")
    assert ok.status_code == 200 and ok.text == '{"a": 1}'
    for name in ("sub/inner.txt", "sub%2Finner.txt"):              # a subfolder's file, by its name in the listing
        ok = client.get(f"/runs/1/files/{name}")
        assert ok.status_code == 200 and ok.text == "INNER-CONTENT"
    for name in ("..%2Fsecret.txt", "%2E%2E%2Fsecret.txt", "%2e%2e", "sub", "sub/", "sub/..%2F..%2Fsecret.txt",
                 "..%5Csecret.txt", "sub%2F..%2F..%2Fsecret.txt", "link.txt", "linked/eval.json", "linked%2Feval.json",
                 "..%2Frun-00001x%2Feval.json", "%2Fetc%2Fpasswd", "missing.json", "eval.json%00", "%2e",
                 "sub//inner.txt", "%2Fsub%2Finner.txt"):
        r = client.get(f"/runs/1/files/{name}")
        assert r.status_code == 404, (name, r.status_code, r.text)
        assert not any(c in r.text for c in ("SECRET-CONTENT", "INNER-CONTENT", "OTHER-RUN-CONTENT"))
    for name in ("..", "."):        # the client resolves these dot segments itself: never a file either
        r = client.get(f"/runs/1/files/{name}")
        assert "SECRET-CONTENT" not in r.text and r.text != '{"a": 1}' and "attachment" not in r.headers.get(
            "content-disposition", "")
    page = client.get("/runs/1").text
    assert "/runs/1/files/eval.json" in page and "/runs/1/files/sub/inner.txt" in page
    assert "link.txt" not in page and "linked" not in page


class FormFields(html.parser.HTMLParser):
    """What a browser would send for the study form as it is shown: inputs' values (a checkbox's when checked, after
    its hidden "0"), textareas' text, each select's selected option (or its first)."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self._textarea: str | None = None
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []
        self._option: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("type") != "file" and "name" in a:
            if a.get("type") != "checkbox" or "checked" in a:
                self.fields.append((a["name"], a.get("value", "")))
        elif tag == "textarea":
            self._textarea = a["name"]
            self.fields.append((a["name"], ""))
        elif tag == "select":
            self._select, self._options = a["name"], []
        elif tag == "option" and self._select:
            self._option = {"value": a.get("value"), "selected": "selected" in a, "text": ""}

    def handle_data(self, data):
        if self._textarea is not None:
            self.fields[-1] = (self._textarea, self.fields[-1][1] + data)
        if self._option is not None:
            self._option["text"] += data

    def handle_endtag(self, tag):
        if tag == "textarea":
            self._textarea = None
        elif tag == "option" and self._option is not None:
            o = self._option
            self._options.append((o["value"] if o["value"] is not None else o["text"], o["selected"]))
            self._option = None
        elif tag == "select" and self._select:
            chosen = next((v for v, sel in self._options if sel), self._options[0][0])
            self.fields.append((self._select, chosen))
            self._select = None


def form_of(page: str) -> dict[str, str]:
    p = FormFields()
    p.feed(page)
    out: dict[str, str] = {}
    for k, v in p.fields:                   # the last of a name wins, as the server reads a form
        out[k] = v
    return out


def test_a_new_study_from_a_run_is_the_same_study_until_a_field_changes(client, paths):
    client.app.state.runner.max_running = 0                   # stored and queued, never started
    studies = [{**SMALL, "stage": "sweep", "drift_time": 60, "grid_toml": '[grid]\n"scale.bits" = [2, 4]\n',
                "tolerance": 0.5, "workers": 0, "config_toml": "adc_bits = 7\n"},
               {**SMALL, "stage": "map", "verify": False, "trials": 5, "objective": "area", "seed": 3},
               {**SMALL, "stage": "synth", "ppa": False, "precisions": True, "digital": "none"},
               {**SMALL, "drift": "1,86400", "scale_bits": 6, "scale_frac": 5}]
    for params in studies:
        first = client.post("/api/runs", json=params)
        assert first.status_code == 201, first.text
        page = client.get(f"/?from={first.json()['id']}")
        assert page.status_code == 200
        fields = form_of(page.text)
        again = client.post("/api/runs", data=fields, follow_redirects=False)
        assert again.status_code == 303, (fields, again.text)
        second = client.get(again.headers["location"].replace("/runs/", "/api/runs/")).json()
        assert second["params"] == first.json()["params"]
        assert second["command"] == first.json()["command"]
    assert client.get("/?from=99").status_code == 404
