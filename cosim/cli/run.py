"""``nmpu run``: the main job. Runs the whole chain on the embedded default and writes a report.

Each stage calls the project's own command (``nmpu apply``/``eval``/``sweep``/``verify``/``cosim``/
``synth``) through :func:`cosim.cli.main` with ``--json`` into the output folder, so the report shows
exactly what those commands compute, and each section names the command that reproduces it. A
failing stage stops the run with a clear message; the results of finished stages stay in place and
in the report.
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..report import run_report as report
from .io import display_path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="the main job: the whole chain on the embedded default, with a report",
                       description="Golden model, accuracy on analog tiles (fp32/fp16/fixed), precision sweep, RTL "
                       "verification on random vectors and on a real network with the RTL in the loop, and "
                       "synthesis against the FP16 unit, each layer's sensitivity and the periphery's cost per "
                       "inference; writes OUT/report.md and OUT/report.html.")
    p.add_argument("--config", help="configuration TOML (default: examples/default.toml)")
    p.add_argument("--out", default="out", help="output folder (default: out)")
    p.add_argument("--model", default="digits-cnn", metavar="NAME|FILE.pt2",
                   help="the network of the accuracy, sweep and RTL-in-the-loop stages (default digits-cnn; as in "
                   "`nmpu eval`: a built-in name or a .pt2 file with --data)")
    p.add_argument("--data", metavar="FILE.npz", help="with a .pt2 --model: its data (see `nmpu eval --help`)")
    p.add_argument("--quick", action="store_true", help="reduced settings (fewer seeds, images, vectors, a 2x2 "
                   "sweep): a smoke test of the whole chain in about a minute")


class StageFailed(RuntimeError):
    pass


@dataclass
class Run:
    out: Path
    config: str
    quick: bool
    model: str = "digits-cnn"
    data: str | None = None
    sections: list[tuple[str, list[str]]] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)

    def nmpu(self, *argv: str) -> None:
        """Run one of the project's own commands; a non-zero status stops the run."""
        from . import main
        line = "nmpu " + " ".join(shlex.quote(a) for a in argv)
        self.commands.append(line)
        print(f"  $ {line}", flush=True)
        rc = main(list(argv))
        if rc != 0:
            raise StageFailed(f"`{line}` exited with status {rc}")

    def model_args(self) -> list[str]:
        """``--model`` (and ``--data``) for the stages that take a network."""
        return ["--model", self.model] + (["--data", self.data] if self.data else [])

    def path(self, name: str) -> str:
        return display_path(self.out / name)

    def json(self, name: str) -> dict:
        return json.loads((self.out / name).read_text())


# ---- stages: run the commands, draw the figures; cosim.report.run_report renders each section ---------
def stage_example(run: Run) -> list[str]:
    """Golden model and float baselines on the small tile example shipped in examples/."""
    y = {}
    for arith, coeffs in (("fixed", "coeffs.npz"), ("fp16", "coeffs_float.npz"), ("fp32", "coeffs_float.npz")):
        run.nmpu("apply", "--config", run.config, "--codes", display_path(EXAMPLES / "codes.npy"),
                 "--coeffs", display_path(EXAMPLES / coeffs), "--out", run.path(f"example_{arith}.npy"), "--arith", arith)
        y[arith] = np.load(run.out / f"example_{arith}.npy")
    return report.example_section(np.load(EXAMPLES / "codes.npy"), y)


def stage_eval(run: Run) -> list[str]:
    from ..report.plots import LABELS, drift_plot
    argv = ["eval", *run.model_args(), "--config", run.config, "--json", run.path("eval.json")]
    argv += ["--seeds", "2", "--images", "120", "--drift", "1,3600"] if run.quick else ["--seeds", "5"]
    run.nmpu(*argv)
    ev = run.json("eval.json")
    drift_plot(ev, run.out / "accuracy_vs_drift.png")
    return report.eval_section(ev, LABELS) + [""] + _error_histograms(run)


def _error_histograms(run: Run) -> list[str]:
    """The same ADC codes of every analog layer through the fixed and the fp32 unit: how far apart."""
    import torch

    from nmpu_model import load_config
    from nmpu_model.studies.evaluate import fixed_minus_fp32
    from nmpu_model.workloads.registry import load_workload

    from ..report.plots import error_histograms
    torch.set_num_threads(1)
    work = load_workload(run.model, run.data, 120 if run.quick else None)
    diffs = fixed_minus_fp32(work, load_config(run.config), seed=0, t=3600.0)
    error_histograms(diffs, run.out / "error_histograms.png")
    return report.error_histogram_section(len(work.y_test))


def stage_sweep(run: Run) -> list[str]:
    argv = ["sweep", *run.model_args(), "--config", run.config, "--json", run.path("sweep.json"),
            "--plot", run.path("sweep.png")]
    if run.quick:
        grid = run.out / "grid_quick.toml"
        grid.write_text('[grid]\n"scale.bits" = [2, 8]\n"offset.bits" = [1, 8]\n')
        argv += ["--grid", display_path(grid), "--seeds", "1", "--images", "60", "--workers", "0"]
    if (run.out / "sweep.json").exists():
        (run.out / "sweep.json").unlink()  # a fresh sweep: the report must not mix runs
    run.nmpu(*argv)
    return report.sweep_section(run.json("sweep.json"))


def stage_verify(run: Run) -> list[str]:
    vectors = "500" if run.quick else "5000"
    run.nmpu("verify", "--config", run.config, "--vectors", vectors, "--json", run.path("verify.json"))
    return report.verify_section(run.json("verify.json"))


def stage_cosim(run: Run) -> list[str]:
    argv = ["cosim", *run.model_args(), "--config", run.config, "--layers", "all", "--mode", "bulk",
            "--json", run.path("cosim.json")]
    if run.quick:
        argv += ["--images", "40"]
    run.nmpu(*argv)
    return report.cosim_section(run.json("cosim.json"))


def stage_synth(run: Run) -> list[str]:
    from ..report.plots import area_plot, ppa_plot
    argv = ["synth", *run.model_args(), "--compare", "--breakdown", "--config", run.config, "--out",
            run.path("synth"), "--json", run.path("synth.json")]
    # quick: no precision table, and 16 samples of the layer through the gate-level netlists for the activity
    # (the default 64 makes a 2,050-cycle traced simulation per unit, most of the quick run's time)
    # full run: both units placed and routed too (~3.5 min: the FP16 unit's routing is most of it)
    argv += ["--no-precisions", "--samples", "16"] if run.quick else ["--sweep", run.path("sweep.json"),
                                                                      "--plot", run.path("area_vs_accuracy.png"),
                                                                      "--layout"]
    run.nmpu(*argv)
    s = run.json("synth.json")
    if (run.out / "synth" / "layout.png").exists():
        shutil.copyfile(run.out / "synth" / "layout.png", run.out / "layout.png")
    area_plot(s, run.out / "area.png")
    if s.get("ppa"):
        ppa_plot(s, run.out / "ppa.png")
    return report.synth_section(s, not run.quick and (run.out / "area_vs_accuracy.png").exists())


def stage_mapping(run: Run) -> list[str]:
    """Which layer on which unit with how many bits: the sensitivity profile, the periphery's cost per inference with
    the units the synthesis stage measured, and the mapping search (each format's unit measured, cached), its chosen
    mapping verified with the RTL in the loop."""
    for name in ("sensitivity.json", "map-study.db"):
        if (run.out / name).exists():
            (run.out / name).unlink()  # a fresh study: the report must not mix runs
    run.nmpu("cost", *run.model_args(), "--config", run.config, "--ppa", run.path("synth.json"),
             "--json", run.path("cost.json"))
    argv = ["map", *run.model_args(), "--config", run.config, "--workers", "0", "--out", display_path(run.out),
            "--json", run.path("map.json")]
    # quick: one seed on 60 images, one format besides the base (2-bit scale and offset: one unit to measure, not
    # two), 16 mappings and the polish, 16 samples for the units' activity, no RTL run
    if run.quick:
        (run.out / "formats_quick.toml").write_text('[grid]\n"scale.bits" = [2]\n"offset.bits" = [2]\n')
        argv += ["--formats", run.path("formats_quick.toml"), "--seeds", "1", "--images", "60", "--trials", "16",
                 "--samples", "16", "--no-verify"]
    else:
        argv += ["--seeds", "2"]
    run.nmpu(*argv)
    return report.mapping_section(run.json("sensitivity.json"), run.json("cost.json"), run.json("map.json"))


@dataclass
class Stage:
    name: str
    body: Callable[[Run], list[str]]


STAGES = [
    Stage("Golden model on the example tile", stage_example),
    Stage("Accuracy on analog tiles", stage_eval),
    Stage("Precision study", stage_sweep),
    Stage("RTL against the golden model: random vectors", stage_verify),
    Stage("RTL in the loop on the real network", stage_cosim),
    Stage("Synthesis: fixed-point NMPU vs FP16 unit", stage_synth),
    Stage("Mapping: which layer on which unit with how many bits", stage_mapping),
]


def write_report(run: Run, failed: str | None) -> Path:
    from ..report.markdown import markdown_to_html
    md = report.report_markdown(run.config, run.quick, run.sections, failed)
    (run.out / "report.md").write_text(md)
    (run.out / "report.html").write_text(markdown_to_html(md, "nmpu-cosim report"))
    return run.out / "report.md"


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    config = args.config or display_path(EXAMPLES / "default.toml")
    from nmpu_model import load_config
    from nmpu_model.workloads.registry import MODELS, load_workload
    load_config(config)  # a bad configuration stops here, before any stage
    if args.model not in MODELS or args.data:
        load_workload(args.model, args.data)     # a bad network or data file stops here, before any stage
    out.mkdir(parents=True, exist_ok=True)
    r = Run(out=out, config=config, quick=args.quick, model=args.model, data=args.data)
    failed = None
    t_all = time.perf_counter()
    for i, stage in enumerate(STAGES, 1):
        print(f"\n[{i}/{len(STAGES)}] {stage.name}", flush=True)
        t0 = time.perf_counter()
        n0 = len(r.commands)
        try:
            body = stage.body(r)
        except StageFailed as e:
            failed = f"Stage {i} ({stage.name}) failed: {e}. The results of the finished stages are above."
            break
        dt = time.perf_counter() - t0
        cmds = r.commands[n0:]
        body = body + ["", f"Reproduce ({dt:.0f} s here):", "", "```", *cmds, "```"]
        r.sections.append((stage.name, body))
        write_report(r, None)  # finished stages are on disk even if a later one fails
    report = write_report(r, failed)
    print(f"\nreport: {report} and {report.with_suffix('.html')} ({time.perf_counter() - t_all:.0f} s)")
    if failed:
        print(f"nmpu run: error: {failed}", flush=True)
        return 1
    return 0
