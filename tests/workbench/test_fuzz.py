"""Random studies (every field any JSON value, or a plausible one) through the API: each is stored (201) or refused
(400 with one line, nothing stored), never a server error; a stored one's command names only its own run folder's
files and takes back exactly the parameters the check returned."""
from __future__ import annotations

import shlex

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from .conftest import stored_runs

JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False) |
                    st.text(max_size=12), lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c,
                                                                                              max_size=3), max_leaves=4)
PLAUSIBLE = {
    "stage": st.sampled_from(["eval", "sweep", "map", "cosim", "synth", "run", ""]),
    "network": st.sampled_from(["digits-cnn", "char-gpt", "resnet9", "upload", "../x.pt2"]),
    "device": st.sampled_from(["pcm", "hermes", "rram:levels=16", "rram:levels=0", "pcm:", "x.csv"]),
    "compensation": st.sampled_from(["global", "column", "global-onehot", "none"]),
    "seeds": st.integers(-2, 120), "images": st.integers(-1, 500) | st.just(""),
    "drift": st.sampled_from(["1,3600", "0", "-1", "1e30", "nan", "1,,2", ""]),
    "drift_time": st.sampled_from([3600, "60", -1, "inf", "", "1,2"]),
    "tolerance": st.sampled_from(["", 0, 0.5, -0.1, "x"]), "workers": st.sampled_from(["", 0, 2, -1, 99]),
    "trials": st.integers(-1, 20), "objective": st.sampled_from(["energy", "area", "speed"]),
    "verify": st.sampled_from([True, False, "1", "0", "maybe"]), "seed": st.integers(-1, 5),
    "samples": st.sampled_from(["", 16, 0]), "ppa": st.booleans(), "layout": st.booleans(),
    "precisions": st.booleans(), "digital": st.sampled_from(["", "none", "first", "3,7", "x y", "nosuch"]),
    "grid_toml": st.sampled_from(["", '[grid]\n"scale.bits" = [2, 4]\n', "[grid]\n", '[grid]\n"x.bits" = [2]\n']),
    "scale_bits": st.integers(-2, 70), "output_frac": st.integers(-10, 10),
    "config_toml": st.sampled_from(["", "adc_bits = 8\n", "adc_bits = = 1"]),
}


@st.composite
def studies(draw) -> dict:
    """A few fields from PLAUSIBLE (about half the studies are valid), and now and then one field any JSON value."""
    keys = draw(st.lists(st.sampled_from(sorted(PLAUSIBLE)), max_size=6, unique=True))
    fields = {k: draw(PLAUSIBLE[k]) for k in keys}
    if draw(st.integers(0, 4)) == 0:
        fields[draw(st.sampled_from(sorted(PLAUSIBLE)))] = draw(JSON)
    return fields


@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(fields=studies())
def test_random_studies_are_stored_or_refused_in_one_line(client, paths, fields):
    _, dbfile, runs = paths
    client.app.state.runner.max_running = 0                     # stored and queued, never started
    before = stored_runs(dbfile)
    folders = sorted(p.name for p in runs.iterdir())
    r = client.post("/api/runs", json=fields)
    assert r.status_code in (201, 400), (fields, r.status_code, r.text)
    event(f"status {r.status_code}")
    if r.status_code == 400:
        err = r.json()["error"]
        assert err and "\n" not in err and "Traceback" not in err
        assert stored_runs(dbfile) == before and sorted(p.name for p in runs.iterdir()) == folders
        return
    run = r.json()
    argv = shlex.split(run["command"])
    assert argv[:2] == ["nmpu", run["stage"]]
    for opt in ("--config", "--json", "--grid", "--formats", "--plot", "--data"):
        if opt in argv:                                          # files of its own folder, by a plain name
            name = argv[argv.index(opt) + 1]
            assert "/" not in name and not name.startswith(".")
    assert argv[argv.index("--model") + 1] in ("digits-cnn", "mnist-resnet", "char-gpt")
    assert (runs / run["folder"] / "config.toml").read_text() == run["params"]["config_toml"]
