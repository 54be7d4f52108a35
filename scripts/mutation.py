#!/usr/bin/env python3
"""Mutation testing of the modules where a wrong answer is silent, with mutmut (pinned in requirements.txt).

    .venv/bin/python scripts/mutation.py                       # every module below
    .venv/bin/python scripts/mutation.py --module formats --module datapath --max-children 1
    .venv/bin/python scripts/mutation.py --report-only         # table + JSON from the last runs, no test run
    .venv/bin/python scripts/mutation.py --list                # the modules, their tests and functions

Slow (minutes to hours): never part of ``make test``. Each module runs in its own scratch folder
``mutants/<module>/`` (gitignored): a copy of the sources, tests, examples and a pyproject.toml whose
``[tool.mutmut]`` names that module and the tests that cover it; mutmut then writes its own ``mutants/``
inside. mutmut keeps its verdicts there per function hash, so a second run only tests the functions that
changed (``--fresh`` starts over). Prints a table (module, mutants, killed, survived, timeout/suspicious,
not covered, kill rate) and writes a JSON with the same plus every survivor's name and diff
(``mutmut show NAME``).

Kill rate = killed / (mutants - not checked): a mutant no selected test reaches ("not covered") counts as
not killed. Timeouts and suspicious results (a crash, a wall-clock kill) are listed apart, not as kills.

What mutmut 3 mutates: only code inside functions and methods (module-level constants are not mutated),
and never a function with a decorator other than @staticmethod/@classmethod: numba ``@njit`` kernels,
``@property``, ``@dataclass`` methods written by the decorator are left alone (``nmpu_model/golden/kernels.py``
is tested through the Python code that calls it, and is not mutated here).
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# Copied into every scratch folder. mutmut copies the sources (source_paths) and also_copy into its own
# mutants/ folder and runs the tests there.
SOURCES = ["nmpu_model", "cosim", "rtl"]
ALSO_COPY = ["examples"]
# What the tests share with the rest of the machine: one thread each (mutmut's children run one at a time
# beside other work), and no Dask dashboard port clashes.
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "NUMBA_NUM_THREADS": "1", "TORCH_NUM_THREADS": "1",
              # tests/conftest.py: the property tests at 50 derandomized examples (make test: 200)
              "HYPOTHESIS_PROFILE": "mutation"}


@dataclass
class Module:
    path: str                      # the file mutated
    tests: list[str]               # pytest selection: the tests that cover it (mutmut runs, per mutant, only
                                   # those of them that call the mutated function)
    pytest_args: list[str] = field(default_factory=list)   # e.g. a -m filter or --deselect of slow tests
    functions: list[str] | None = None   # only these functions / methods (by name); None: the whole file
    note: str = ""


MODULES: dict[str, Module] = {
    "formats": Module("nmpu_model/golden/formats.py",
                      ["tests/model/test_formats.py", "tests/model/test_datapath.py", "tests/model/test_baselines.py"],
                      functions=["terms", "of", "opposite", "__new__", "bias", "bounds", "extremes", "_check_int",
                                 "__post_init__", "min", "max", "with_frac", "describe", "rounding_mode",
                                 "overflow_mode", "_mode", "round_shift", "fit", "quantize"],
                      note="every function but signed_bits (module formats-bits)"),
    # signed_bits sizes the compiled kernels' integer types: a mutant of it recompiles them in every test that
    # loads a configuration (~40 s a mutant with the three files); its own brute-force test decides it alone
    "formats-bits": Module("nmpu_model/golden/formats.py",
                           ["tests/model/test_formats.py::test_signed_bits_by_brute_force"],
                           functions=["signed_bits"], note="signed_bits against a brute-force search"),
    "datapath": Module("nmpu_model/golden/datapath.py",
                       ["tests/model/test_datapath.py", "tests/model/test_formats.py", "tests/model/test_baselines.py"]),
    "baselines": Module("nmpu_model/golden/baselines.py",
                        ["tests/model/test_baselines.py", "tests/model/test_datapath.py"]),
    # the sim/rtl tests that also build coefficients are Verilator/Amaranth builds
    "coefficients": Module("nmpu_model/network/coefficients.py",
                           ["tests/model/test_coefficients.py", "tests/model/test_network.py"]),
    "network": Module("nmpu_model/network/analog_network.py",
                      ["tests/model/test_placement.py", "tests/model/test_calibration.py", "tests/model/test_network.py",
                       "tests/model/test_graph.py", "tests/model/test_kernels.py"],
                      functions=["mark_digital", "require_tiles", "float_weight_ops", "check_on_tiles", "mapping",
                                 "_calibrate", "_calibrate_layer", "_fit", "_cal_shared", "_dac_input", "_cal_output",
                                 "dac_codes", "_quantile_abs", "_set_time", "coefficients", "_check_config",
                                 "postprocess", "run", "_run_layer"],
                      note="placement (which layers, how many tiles, the table) and calibration, the run's plumbing"),
    "sweep": Module("nmpu_model/studies/sweep.py", ["tests/model/test_sweep.py"],
                    # the Dask test starts a two-worker cluster (~tens of s): it tests run_tasks' scheduling,
                    # not the decision, and would dominate every mutant's run
                    ["--deselect", "tests/model/test_sweep.py::test_dask_two_workers_equals_serial_and_resumes"],
                    functions=["cost_bits", "point_config", "choose_point"],
                    note="the decision: the cost, the grid point's configuration, the choice (precision_sweep's run and summary are Dask plumbing: each of its mutants costs a whole CLI sweep)"),
    # the cost model's arithmetic, the layers' vectors and the CLI's figures with given units (the cache test runs
    # the stimulus and both units' Verilog per mutant, the refusals a network each: left out)
    "cost": Module("cosim/studies/cost.py", ["tests/synth/test_cost.py"], ["-k", "not cached and not refusals"],
                   note="the model: time, energy, area, units to keep up, the one-MVM speed-up, the layers' vectors"),
    # the mapping file and the search's decision: the search's two slow tests (400-trial NSGA-II runs, ~10 s each, and
    # the SQLite resumption) are left out per mutant, so the NSGA-II polish and the resumption show as survivors
    # or not covered here; the enumerated search, the pick and the front run for every mutant
    "mapping": Module("nmpu_model/studies/mapping.py", ["tests/model/test_mapping.py"],
                      ["-k", "not larger_space and not interrupted"],
                      note="the mapping's file and checks, the enumerated search, the front and the pick"),
    # the PPA arithmetic is only reached by the @slow tests (a full synthesis + OpenSTA run per mutant), so
    # only the fast ones run here: most PPA mutants come out "not covered"; run with --ppa-slow to include them
    "ppa": Module("cosim/synth/ppa.py", ["tests/synth/test_ppa.py"], ["-m", "not slow"],
                  functions=["timing", "power", "_activity_tcl"],
                  note="the PPA arithmetic: OpenSTA's figures read, fmax, energy per value, the activity's script "
                       "(the mapping, macros and scripts around it: --module ppa-flow, reached by the slow tests)"),
    "ppa-flow": Module("cosim/synth/ppa.py", ["tests/synth/test_ppa.py"], ["-m", "not slow"],
                       note="the whole file with the fast tests only (most of it is reached by the @slow synthesis "
                            "tests: --ppa-slow)"),
}


def mutmut_available() -> None:
    try:
        import mutmut  # noqa: F401
    except ImportError:
        sys.exit("mutmut is not installed in this interpreter: .venv/bin/pip install -r requirements.txt")


def mutmut_version() -> str:
    from importlib.metadata import version
    return version("mutmut")


def toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def mutmut_section(m: Module) -> str:
    return "\n".join([
        "", "[tool.mutmut]",
        "# written by scripts/mutation.py for this scratch folder only",
        f"source_paths = {toml_list(SOURCES)}",
        f"only_mutate = {toml_list([m.path])}",
        f"also_copy = {toml_list(ALSO_COPY)}",
        f"pytest_add_cli_args_test_selection = {toml_list(m.tests)}",
        # no cache writes; xdist stays loaded (its xdist_group markers) but does not distribute (no -n)
        f"pytest_add_cli_args = {toml_list(['-p', 'no:cacheprovider', *m.pytest_args])}",
        # every mutant's child is forked from the process that ran the stats: numba's compiled kernels and
        # torch are already loaded, so a mutant costs only its tests
        'process_isolation = "fork"',
        'on_dependency_change = "rerun"',
        "use_git_change_detection = false",
        "",
    ])


def prepare(name: str, m: Module, scratch: Path, fresh: bool) -> None:
    """Make ``scratch`` a copy of the checkout's sources and tests (mutmut's mutants/ inside is kept)."""
    if fresh and scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("*.pyc", "build", "sim_build", ".pytest_cache", ".hypothesis")
    for d in [*SOURCES, "tests", *ALSO_COPY]:
        if (scratch / d).exists():
            shutil.rmtree(scratch / d)
        # copy2 keeps the modification times: mutmut regenerates a file's mutants only when the source is
        # newer than them, and numba's on-disk cache (kept: __pycache__/*.nbi, *.nbc) is keyed by them too
        shutil.copytree(ROOT / d, scratch / d, ignore=ignore)
    text = (ROOT / "pyproject.toml").read_text()
    text = re.sub(r"(?ms)^\[tool\.mutmut\].*?(?=^\[|\Z)", "", text)  # the checkout's own section, if any
    (scratch / "pyproject.toml").write_text(text.rstrip() + "\n" + mutmut_section(m))


def mangled_patterns(m: Module) -> list[str]:
    """mutmut's names of the mutants of m.functions: module.x_func__mutmut_N or module.xǁClassǁmeth__mutmut_N."""
    mod = m.path[:-3].replace("/", ".")
    pats = []
    for f in m.functions or []:
        pats += [f"{mod}.x_{f}__mutmut_*", f"{mod}.xǁ*ǁ{f}__mutmut_*"]
    return pats


def selected(m: Module, key: str) -> bool:
    return m.functions is None or any(fnmatch.fnmatchcase(key, p) for p in mangled_patterns(m))


def run_mutmut(name: str, m: Module, scratch: Path, max_children: int, verbose: bool) -> tuple[int, float]:
    log = scratch / "mutmut.log"
    env = {**os.environ, **THREAD_ENV}
    env.pop("MUTANT_UNDER_TEST", None)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    cmd = [str(BIN / "mutmut"), "run", "--max-children", str(max_children), *mangled_patterns(m)]
    t0 = time.monotonic()
    with open(log, "w") as out:
        out.write(" ".join(cmd) + "\n")
        out.flush()
        p = subprocess.Popen(cmd, cwd=scratch, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, errors="replace", bufsize=1)
        last = 0.0
        assert p.stdout is not None
        try:
            for line in p.stdout:  # text mode: mutmut's \r status redraws arrive as lines
                out.write(line)
                # mutmut redraws a status line ("12/130  🎉 9 ..."); echo it at most every 30 s
                status = line.strip()
                if verbose or (status and time.monotonic() - last > 30):
                    print(f"  [{name} {time.monotonic() - t0:6.0f} s] {status[:110]}", flush=True)
                    last = time.monotonic()
        except KeyboardInterrupt:  # Ctrl-C reached mutmut too: it stops and keeps the verdicts so far
            print(f"  [{name}] interrupted: reporting the verdicts so far (run again to resume)", flush=True)
            for line in p.stdout:
                out.write(line)
        rc = p.wait()
    return rc, time.monotonic() - t0


def mutant_diffs(scratch: Path, path: str, keys: list[str]) -> dict[str, str]:
    """``mutmut show KEY`` for each key, in this process (a mutmut process per mutant takes seconds)."""
    from mutmut.configuration import reset_config
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    here = os.getcwd()
    os.chdir(scratch)  # mutmut reads its configuration and mutants/ from the current folder
    reset_config()
    try:
        out = {}
        for k in keys:
            try:
                out[k] = get_diff_for_mutant(k, path=path)
            except Exception as e:  # noqa: BLE001 (a diff is a courtesy: report, do not fail)
                out[k] = f"(no diff: {type(e).__name__}: {e}; try: mutmut show {k} in {scratch})"
        return out
    finally:
        os.chdir(here)
        reset_config()


def collect(name: str, m: Module, scratch: Path, with_diffs: bool = True) -> dict | None:
    from mutmut.stats import status_by_exit_code

    meta = scratch / "mutants" / (m.path + ".meta")
    if not meta.exists():
        return None
    codes = {k: v for k, v in json.loads(meta.read_text())["exit_code_by_key"].items() if selected(m, k)}
    natural = lambda k: (k.rpartition("__mutmut_")[0], int(k.rpartition("__mutmut_")[2] or 0))  # noqa: E731
    status = {k: status_by_exit_code[codes[k]] for k in sorted(codes, key=natural)}
    count = {s: sum(1 for v in status.values() if v == s) for s in set(status.values())}
    odd = ("timeout", "suspicious", "segfault")
    n_total = len(status)
    n_killed = count.get("killed", 0)
    n_unchecked = count.get("not checked", 0) + count.get("check was interrupted by user", 0)
    checked = n_total - n_unchecked
    row = {
        "module": name, "path": m.path, "functions": m.functions, "tests": m.tests, "pytest_args": m.pytest_args,
        "mutants": n_total, "killed": n_killed, "survived": count.get("survived", 0),
        "timeout_suspicious": sum(count.get(s, 0) for s in odd), "not_covered": count.get("no tests", 0),
        "not_checked": n_unchecked, "kill_rate": round(n_killed / checked, 4) if checked else None,
        "status_counts": count,
    }

    diffs = mutant_diffs(scratch, m.path, [k for k in status
                                           if status[k] == "survived" or status[k] in odd]) if with_diffs else {}
    show = lambda key: diffs.get(key, "")  # noqa: E731

    row["survivors"] = [{"name": k, "diff": show(k)} for k in status if status[k] == "survived"]
    row["timeouts_suspicious"] = [{"name": k, "status": status[k], "diff": show(k)}
                                  for k in status if status[k] in odd]
    row["not_covered_names"] = [k for k in status if status[k] == "no tests"]
    row["not_checked_names"] = [k for k in status if status[k] in ("not checked", "check was interrupted by user")]
    return row


def table(rows: list[dict]) -> str:
    head = ["module", "mutants", "killed", "survived", "timeout/susp.", "not covered", "not checked",
            "kill rate", "wall"]
    lines = [head]
    for r in rows:
        kr = "-" if r["kill_rate"] is None else f"{100 * r['kill_rate']:.1f}%"
        wall = "-" if r.get("wall_s") is None else f"{r['wall_s'] / 60:.1f} min"
        lines.append([r["module"], r["mutants"], r["killed"], r["survived"], r["timeout_suspicious"],
                      r["not_covered"], r["not_checked"], kr, wall])
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(head))]
    fmt = lambda row: "  ".join(str(c).rjust(w) if i else str(c).ljust(w)  # noqa: E731
                                for i, (c, w) in enumerate(zip(row, widths)))
    return "\n".join([fmt(lines[0]), "  ".join("-" * w for w in widths), *map(fmt, lines[1:])])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--module", action="append", choices=list(MODULES), metavar="NAME",
                    help=f"a module to mutate (repeatable; default all: {', '.join(MODULES)})")
    ap.add_argument("--max-children", type=int, default=1, help="mutants tested at once (default 1)")
    ap.add_argument("--workdir", type=Path, default=ROOT / "mutants", help="scratch root (default ./mutants)")
    ap.add_argument("--json", type=Path, default=None, help="report file (default <workdir>/report.json)")
    ap.add_argument("--fresh", action="store_true", help="forget mutmut's earlier verdicts of these modules")
    ap.add_argument("--report-only", action="store_true", help="no test run: report the last runs' verdicts")
    ap.add_argument("--ppa-slow", action="store_true",
                    help="ppa: also the @slow tests (synthesis + OpenSTA, minutes per mutant)")
    ap.add_argument("--list", action="store_true", help="print the modules, their tests and functions")
    ap.add_argument("-v", "--verbose", action="store_true", help="echo all of mutmut's output")
    a = ap.parse_args(argv)
    if a.list:
        for n, m in MODULES.items():
            print(f"{n:13} {m.path}  tests: {' '.join(m.tests + m.pytest_args)}"
                  + (f"  functions: {', '.join(m.functions)}" if m.functions else ""))
        return 0
    mutmut_available()
    if a.ppa_slow:
        MODULES["ppa"].pytest_args = MODULES["ppa-flow"].pytest_args = []
    names = a.module or list(MODULES)
    a.workdir = a.workdir.resolve()
    report_path = a.json or a.workdir / "report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {"modules": {}}
    rows, failed = [], []
    for name in names:
        m, scratch = MODULES[name], a.workdir / name
        wall = None
        if not a.report_only:
            print(f"== {name}: {m.path}  tests: {' '.join(m.tests + m.pytest_args)}", flush=True)
            prepare(name, m, scratch, a.fresh)
            rc, wall = run_mutmut(name, m, scratch, a.max_children, a.verbose)
            print(f"   mutmut exit {rc} after {wall / 60:.1f} min (log: {scratch / 'mutmut.log'})", flush=True)
            if rc != 0:
                failed.append(name)
        row = collect(name, m, scratch)
        if row is None:
            print(f"   {name}: no mutmut results in {scratch}", flush=True)
            continue
        row["wall_s"] = round(wall, 1) if wall is not None else report["modules"].get(name, {}).get("wall_s")
        row["mutmut"] = mutmut_version()
        row["date"] = time.strftime("%Y-%m-%d %H:%M:%S")
        rows.append(row)
        # read again just before writing: another run (another module) may have written meanwhile
        report = json.loads(report_path.read_text()) if report_path.exists() else {"modules": {}}
        report["modules"][name] = row
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    if rows:
        print()
        print(table(rows))
        for r in rows:
            if r["survivors"]:
                print(f"\nsurvivors of {r['module']}: " + " ".join(s["name"].rsplit(".", 1)[-1] for s in r["survivors"]))
        print(f"\nreport: {report_path}  (diffs: {BIN / 'mutmut'} show NAME, in {a.workdir}/<module>)")
    if failed:
        print(f"mutmut failed for: {', '.join(failed)} (see the logs above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
