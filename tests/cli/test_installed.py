"""The project installed as a library (``pip install .``, not editable) works from another folder as the checkout
does, and writes nothing inside the installed packages: builds, trained weights and compiled kernels go to the
one cache folder (``$NMPU_CACHE_DIR`` here), outputs to the folder the user names."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_pip_install_then_eval_verify_synth_from_another_folder(tmp_path: Path) -> None:
    site = tmp_path / "site"
    # the sources copied first (setuptools writes its build folder and egg-info beside them), without what
    # the checkout's own runs left in it
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "sim_build", "mutants", "out",
                                                            "__pycache__", "*.egg-info", ".pytest_cache",
                                                            ".hypothesis"))
    res = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                          "--target", str(site), str(src)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    installed = {p.name for p in site.iterdir()}
    assert {"nmpu_model", "rtl", "cosim"} <= installed
    # the package data the commands need
    assert (site / "rtl" / "verilator_waivers.vlt").exists()
    assert (site / "cosim" / "sim" / "harness" / "bulk_main.cpp").exists()
    assert (site / "nmpu_model" / "workloads" / "data" / "digits_cnn.pt").exists()
    before = _snapshot(site)

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "NMPU_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("NUMBA_CACHE_DIR", None)

    def nmpu(*args: str) -> str:
        r = subprocess.run([sys.executable, "-m", "cosim.cli", *args], cwd=work, env=env, capture_output=True,
                           text=True, timeout=1200)
        assert r.returncode == 0, f"nmpu {' '.join(args)}: exit {r.returncode}\n{r.stdout[-2000:]}{r.stderr[-2000:]}"
        return r.stdout

    where = subprocess.run([sys.executable, "-c", "import nmpu_model, rtl, cosim; print(nmpu_model.__file__, "
                            "rtl.__file__, cosim.__file__)"], cwd=work, env=env, capture_output=True, text=True)
    assert where.stdout.split() and all(p.startswith(str(site)) for p in where.stdout.split()), where
    nmpu("eval", "--images", "40", "--seeds", "1", "--drift", "3600")
    out = nmpu("verify", "--vectors", "300")
    assert "0 mismatches" in out or "bit-exact" in out, out
    nmpu("synth", "--no-ppa", "--out", "synth", "--json", "synth.json")
    assert (work / "synth.json").exists()
    assert _snapshot(site) == before, "something was written inside the installed packages"
    assert (tmp_path / "cache" / "builds").is_dir()
