"""`nmpu run --quick`: the whole chain end to end on reduced settings, and a failing stage."""
import re
from pathlib import Path

import pytest

from cosim.cli import run as cmd_run
from cosim.cli import main


@pytest.mark.slow
@pytest.mark.xdist_group("verilator-default")
def test_run_quick_end_to_end(tmp_path, capsys):
    rc = main(["run", "--quick", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0, out[-2000:]
    md = (tmp_path / "report.md").read_text()
    for title in [s.name for s in cmd_run.STAGES]:
        assert f"## {title}" in md
    assert "## Stopped" not in md
    # every stage names the command that reproduces it
    assert md.count("Reproduce (") == len(cmd_run.STAGES)
    # the commands name the project's files relative to it (run from the checkout, as here), never its path
    project = str(Path(cmd_run.__file__).resolve().parents[2])
    assert project not in md and "--codes examples/codes.npy" in md
    assert re.search(r"\| \d+ \| 0 \| \d+ \| \d+ \|", md), "verify table with 0 mismatches"
    for png in ("accuracy_vs_drift.png", "error_histograms.png", "sweep.png", "area.png"):
        assert (tmp_path / png).stat().st_size > 1000, png
    html = (tmp_path / "report.html").read_text()
    assert "<table>" in html and "<img" in html


def test_failing_stage_stops_and_keeps_finished(tmp_path, capsys, monkeypatch):
    def boom(run):
        run.nmpu("apply", "--codes", str(tmp_path / "missing.npy"), "--coeffs", "x.npz", "--out", "y.npy")
        return []
    monkeypatch.setattr(cmd_run, "STAGES", [cmd_run.STAGES[0], cmd_run.Stage("Broken", boom), cmd_run.STAGES[1]])
    rc = main(["run", "--out", str(tmp_path)])
    cap = capsys.readouterr()
    assert rc == 1
    assert "Stage 2 (Broken) failed" in cap.out
    md = (tmp_path / "report.md").read_text()
    assert "## Golden model on the example tile" in md and "## Stopped" in md
    assert "## Accuracy on analog tiles" not in md
    assert (tmp_path / "example_fixed.npy").exists()


def test_bad_config_stops_before_any_stage(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("adc_bits = 0\n")
    rc = main(["run", "--config", str(cfg), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "adc_bits must be an integer >= 1" in err
    assert not (tmp_path / "o" / "report.md").exists()


def test_bad_model_stops_before_any_stage(tmp_path, capsys):
    rc = main(["run", "--model", str(tmp_path / "net.pt2"), "--data", str(tmp_path / "d.npz"),
               "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "neither a built-in network" in err
    assert not (tmp_path / "o").exists()
