"""``nmpu run``: the main job. Runs the whole chain on the embedded default and writes a report.

Each stage calls the project's own command (``nmpu apply``/``eval``/``verify``/``cosim``/``synth``)
through :func:`cosim.cli.main` with ``--json`` into the output folder, so what the report shows
is exactly what those commands print. A failing stage stops the run with a clear message; the
results of finished stages stay in place and in the report.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="the main job: the whole chain on the embedded default, with a report",
                       description="Run the golden model, the accuracy evaluation, RTL verification, RTL-in-the-loop "
                       "co-simulation and synthesis on the embedded default, and write OUT/report.md.")
    p.add_argument("--config", help="configuration TOML (default: examples/default.toml)")
    p.add_argument("--out", default="out", help="output folder (default: out)")
    p.add_argument("--quick", action="store_true", help="reduced settings (fewer seeds, vectors, images): for tests")


@dataclass
class Stage:
    name: str
    command: list[str]
    body: Callable[["Run"], list[str]]


@dataclass
class Run:
    out: Path
    config: str
    quick: bool
    sections: list[tuple[str, list[str]]] = field(default_factory=list)

    def nmpu(self, *argv: str) -> None:
        """Run one of the project's own commands; a non-zero status stops the run."""
        from .cli import main
        rc = main(list(argv))
        if rc != 0:
            raise StageFailed(f"`nmpu {' '.join(argv)}` exited with status {rc}")


class StageFailed(RuntimeError):
    pass


def stage_example(run: Run) -> list[str]:
    """Golden model and float baselines on the small tile example shipped in examples/."""
    y = {}
    for arith, coeffs in (("fixed", "coeffs.npz"), ("fp16", "coeffs_float.npz"), ("fp32", "coeffs_float.npz")):
        out = run.out / f"example_{arith}.npy"
        run.nmpu("apply", "--config", run.config, "--codes", str(EXAMPLES / "codes.npy"),
                 "--coeffs", str(EXAMPLES / coeffs), "--out", str(out), "--arith", arith)
        y[arith] = np.load(out)
    x = np.load(EXAMPLES / "codes.npy")
    lines = ["First samples of column 0 (ADC code in, output code out):", "",
             "| sample | ADC code | fixed | fp16 | fp32 | fixed - fp32 |", "|---:|---:|---:|---:|---:|---:|"]
    for i in range(8):
        lines.append(f"| {i} | {x[i, 0]} | {y['fixed'][i, 0]} | {y['fp16'][i, 0]} | {y['fp32'][i, 0]} | "
                     f"{y['fixed'][i, 0] - y['fp32'][i, 0]:+d} |")
    lines += ["", f"All {x.size} values ({x.shape[0]} samples x {x.shape[1]} columns):", "",
              "| unit | equal to fp32 | max abs diff vs fp32 | mean abs diff vs fp32 |", "|---|---:|---:|---:|"]
    for arith in ("fixed", "fp16"):
        d = np.abs(y[arith] - y["fp32"])
        lines.append(f"| {arith} | {100 * np.mean(d == 0):.1f}% | {d.max()} | {d.mean():.3f} |")
    return lines


STAGES = [
    Stage("Golden model on the example tile", ["nmpu", "apply", "--codes", "examples/codes.npy",
                                               "--coeffs", "examples/coeffs.npz", "--out", "OUT.npy"], stage_example),
]


def write_report(run: Run, failed: str | None) -> Path:
    lines = ["# nmpu-cosim report", "", f"Configuration: `{run.config}`", ""]
    for title, body in run.sections:
        lines += [f"## {title}", ""] + body + [""]
    if failed:
        lines += ["## Stopped", "", failed, ""]
    path = run.out / "report.md"
    path.write_text("\n".join(lines))
    return path


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    r = Run(out=out, config=args.config or str(EXAMPLES / "default.toml"), quick=args.quick)
    failed = None
    for i, stage in enumerate(STAGES, 1):
        print(f"[{i}/{len(STAGES)}] {stage.name} ...", flush=True)
        t0 = time.perf_counter()
        try:
            body = stage.body(r)
        except StageFailed as e:
            failed = f"Stage {i} ({stage.name}) failed: {e}. Results of the finished stages are above."
            break
        dt = time.perf_counter() - t0
        body = body + ["", f"Reproduce: `{' '.join(stage.command)}` ({dt:.1f} s here)"]
        r.sections.append((stage.name, body))
        print("\n".join(body), flush=True)
    report = write_report(r, failed)
    print(f"report: {report}")
    if failed:
        print(f"nmpu run: error: {failed}", flush=True)
        return 1
    return 0
