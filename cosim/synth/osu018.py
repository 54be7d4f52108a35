"""The OSU 0.18 um standard cells (``osu018_stdcells``): a cell library with timing and power.

The files come from Debian's ``qflow-tech-osu018`` package: the Liberty file (``osu018_stdcells.lib``:
1.8 V, typical corner, ns and pF, NLDM delays, internal and leakage power per cell), the LEF and the
Verilog cell models (``osu018_stdcells.v``: gate primitives and the library's own UDPs). ``make install``
takes them out of the package without installing qflow (``scripts/system-deps.sh``: ``apt-get download``
and ``dpkg-deb -x`` into the virtual environment), or uses them where the package is installed.

:func:`library_dir` finds them: ``$NMPU_OSU018_DIR``, then ``/usr/share/qflow/tech/osu018``, then the
copy under the virtual environment (``<sys.prefix>/usr/share/qflow/tech/osu018``).
"""
from __future__ import annotations

import os
import re
import sys
from functools import lru_cache
from pathlib import Path

__all__ = ["NAME", "LIBERTY", "MODELS", "FLOP", "library_dir", "liberty", "models", "simulation_models", "cell_areas"]

NAME = "OSU 0.18 um (osu018_stdcells, typical, 1.8 V)"
LIBERTY = "osu018_stdcells.lib"
MODELS = "osu018_stdcells.v"
_SUBDIR = Path("usr/share/qflow/tech/osu018")
_NOT_INSTALLED = ("the OSU 0.18 um cell library (Debian package qflow-tech-osu018) is not installed: run "
                  "`make install` (it takes the files out of the package into .venv)")


def library_dir() -> Path:
    """The folder holding ``osu018_stdcells.lib`` and ``osu018_stdcells.v`` (``RuntimeError`` when none does)."""
    candidates = [Path(os.environ["NMPU_OSU018_DIR"])] if os.environ.get("NMPU_OSU018_DIR") else []
    candidates += [Path("/") / _SUBDIR, Path(sys.prefix) / _SUBDIR]
    for d in candidates:
        if (d / LIBERTY).is_file() and (d / MODELS).is_file():
            return d
    raise RuntimeError(_NOT_INSTALLED)


def liberty() -> Path:
    """The Liberty file (timing, power, area of every cell)."""
    return library_dir() / LIBERTY


def models() -> Path:
    """The library's Verilog cell models (for gate-level simulation)."""
    return library_dir() / MODELS


#: the positive-edge D flip-flop every register is mapped onto (no enable cell in this library:
#: an enable becomes a multiplexer in front of it)
FLOP = "DFFPOSX1"


def simulation_models() -> str:
    """The library's Verilog cell models without their ``specify`` blocks.

    The blocks hold path delays and timing checks, which a zero-delay (cycle-based) simulation does not
    use, and whose ``specparam``s Verilator 5.48 fails to compile. The combinational cells are the
    library's own (gate primitives and its multiplexer UDP); the flip-flop is rewritten from its Liberty
    function (see below).
    """
    text = models().read_text()
    out, n = re.subn(r"^\s*specify\b.*?^\s*endspecify\b[^\n]*\n", "", text, flags=re.S | re.M)
    if n == 0 or "specparam" in out:
        raise RuntimeError(f"{models()}: unexpected layout (specify blocks not found)")
    # the flip-flop: its UDP updates in the same time step as the clock edge, so with the delays gone a
    # flip-flop fed by another one would see that one's new value (a race). Its function, from the
    # Liberty file's ff group, as a non-blocking register instead
    lib = liberty().read_text()
    m = re.search(rf"cell\s*\(\s*{FLOP}\s*\).*?\bff\s*\((\w+),\s*\w+\)\s*\{{\s*next_state\s*:\s*\"(\w+)\";"
                  rf"\s*clocked_on\s*:\s*\"(\w+)\";", lib, re.S)
    if not m:
        raise RuntimeError(f"{liberty()}: no ff group with a plain next_state and clock in cell {FLOP}")
    state, d, clk = m.groups()
    flop = (f"module {FLOP} ({clk}, {d}, Q);\ninput {clk};\ninput {d};\noutput Q;\nreg {state};\n"
            f"always @(posedge {clk}) {state} <= {d};\nassign Q = {state};\nendmodule\n")
    out, k = re.subn(rf"^module {FLOP}\b.*?^endmodule\n", flop, out, count=1, flags=re.S | re.M)
    if k != 1:
        raise RuntimeError(f"{models()}: no module {FLOP}")
    return out


@lru_cache(maxsize=None)
def cell_areas() -> dict[str, float]:
    """Area of every cell (µm², the Liberty ``area``; it equals the LEF ``SIZE`` of each cell)."""
    text = liberty().read_text()
    areas = {m.group(1): float(m.group(2))
             for m in re.finditer(r"\bcell\s*\(\s*\"?(\w+)\"?\s*\)\s*\{[^{}]*?\barea\s*:\s*([\d.]+)", text)}
    if not areas:
        raise RuntimeError(f"{liberty()}: no cell areas found")
    return areas
