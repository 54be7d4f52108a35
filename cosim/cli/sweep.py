"""``nmpu sweep``: precision study over a grid of configurations, and per-layer sensitivity, on Dask."""
from __future__ import annotations

import argparse

from . import workload
from .io import check_parent, progress_bars


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="precision study: accuracy over a grid of configs; per-layer sensitivity",
                       description="Evaluate every point of a grid of NMPU configurations on the same analog tiles "
                       "and seeds, against the fp16 unit, and pick the cheapest within a tolerance. With --per-layer, "
                       "lower one layer at a time and rank the layers. Tasks run on Dask (a LocalCluster on this "
                       "machine's cores, or --scheduler); a sweep resumes from its --json file.")
    workload.add_args(p)
    p.add_argument("--config", help="base configuration TOML (default: the spec's defaults)")
    p.add_argument("--grid", metavar="GRID.toml", help="[grid] table of field = [values] "
                   "(default: scale.bits x offset.bits, each 1,2,3,4,6,8)")
    p.add_argument("--seeds", type=int, default=3, help="noise seeds per point (default 3)")
    p.add_argument("--drift", type=float, default=3600.0, help="drift time in seconds (default 3600)")
    p.add_argument("--tolerance", type=float, default=0.2, help="loss vs fp16 allowed: accuracy percentage points, "
                   "or percent of fp16's perplexity for a language model; in percentage "
                   "points, for the chosen configuration (default 0.2)")
    p.add_argument("--per-layer", action="store_true", help="per-layer sensitivity instead of the grid")
    p.add_argument("--sensitivity", action="store_true",
                   help="the sensitivity profile instead of the grid: every layer alone on tiles (the others digital), "
                   "at the base configuration and at --lower, its loss against the all-digital network over seeds "
                   "(docs/mapping.md)")
    p.add_argument("--lower", default="scale.bits=2,offset.bits=2", metavar="FIELD=V,...",
                   help="with --per-layer or --sensitivity: the lowered precision (default scale.bits=2,offset.bits=2)")
    p.add_argument("--keep-fp16", type=int, default=1, metavar="K",
                   help="with --per-layer: keep the K most sensitive layers in fp16 (default 1)")
    p.add_argument("--workers", type=int, help="local Dask workers (default: the machine's cores; 0 = serial, "
                   "no Dask)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="use an existing Dask cluster")
    p.add_argument("--json", metavar="OUT", help="results JSON (written as tasks finish; resumes when present)")
    p.add_argument("--plot", metavar="OUT.png", help="write the plot here")


def parse_lower(text: str) -> dict[str, int | str]:
    out: dict[str, int | str] = {}
    for item in filter(None, text.split(",")):
        k, eq, v = item.partition("=")
        if not eq or not k.strip():
            raise ValueError(f"--lower: {item!r} is not FIELD=VALUE")
        v = v.strip()
        out[k.strip()] = int(v) if v.lstrip("-").isdigit() else v
    if not out:
        raise ValueError("--lower: give at least one FIELD=VALUE")
    return out


def run(args: argparse.Namespace) -> int:
    from nmpu_model import load_config
    from ..report.plots import layer_plot, profile_plot, sweep_plot
    from nmpu_model.studies.sweep import Setup, alone_sensitivity, grid_points, layer_sensitivity, load_grid, point_config, precision_sweep

    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, not {args.seeds}")
    if not args.tolerance >= 0:
        raise ValueError(f"--tolerance must be >= 0 (percentage points of accuracy, or percent of perplexity, "
                         f"worse than fp16), not {args.tolerance}")
    if args.workers is not None and args.workers < 0:
        raise ValueError(f"--workers must be >= 0, not {args.workers}")
    check_parent(args.json, "--json")
    check_parent(args.plot, "--plot")
    if args.weights:
        raise ValueError("--weights: nmpu sweep takes a trained network (a built-in one or a .pt2 file)")
    base = load_config(args.config)
    if args.per_layer and args.sensitivity:
        raise ValueError("--per-layer and --sensitivity are two studies: choose one")
    if args.per_layer or args.sensitivity:
        low = point_config(base, parse_lower(args.lower))
    else:
        grid = load_grid(args.grid)
        for point in grid_points(grid):      # every point's configuration is valid, before any work
            point_config(base, point)
    work = workload.load(args)               # checks the model and data
    workload.show(work)
    setup = Setup(args.model, args.data, args.images, args.drift, work.digital, work.device, work.compensation)
    progress = progress_bars()
    common = dict(workers=args.workers, scheduler=args.scheduler, results=args.json, progress=progress)
    m = work.metric
    name, unit, pc = ("acc %" if m.percent else "ppl"), m.loss_abbrev, m.suffix

    def val(v: float) -> str:               # a value of the metric as the tables print it
        return m.show(v, 6 if m.percent else 7)
    if args.sensitivity:
        res = alone_sensitivity(base, low, setup, args.seeds, **common)
        print(f"sensitivity profile, {args.model}, drift {args.drift:g} s, {args.seeds} seeds: S = {m.name} loss "
              f"({unit}) with the layer alone on tiles against the all-digital network ({m.show(res['digital'])}{pc}); "
              f"lowered: {args.lower}")
        w = max([10] + [len(r["layer"]) for r in res["profile"]])
        print(f"{'layer':>{w}s} {'block':>10s} {'S':>8s} {'std':>6s} {'S lowered':>10s} {'std':>6s}")
        for r in res["profile"]:
            print(f"{r['layer']:>{w}s} {r['block']:>10s} {100 * r['S']:8.3f} {100 * r['S_std']:6.3f} "
                  f"{100 * r['low_S']:10.3f} {100 * r['low_S_std']:6.3f}")
        if args.plot:
            profile_plot(res["profile"], args.plot, f"{args.model}: {m.name} loss with one layer alone on tiles "
                         f"(drift {args.drift:g} s, {args.seeds} seeds)", m.name, low_label=f"lowered: {args.lower}")
    elif args.per_layer:
        res = layer_sensitivity(base, low, setup, args.seeds, keep_fp16=args.keep_fp16, **common)
        print(f"per-layer sensitivity, {args.model}, drift {args.drift:g} s, {args.seeds} seeds; "
              f"lowered: {args.lower}")
        w = max([10] + [len(r["layer"]) for r in res["ranking"]])
        print(f"{'layer':>{w}s} {name:>7s} {'std':>6s} {'loss ' + unit:>8s}")
        for r in res["ranking"]:
            print(f"{r['layer']:>{w}s} {val(r['mean'])} {val(r['std'])} {100 * r['drop']:8.2f}")
        h = res["hetero"]
        print(f"reference {m.show(res['reference']['mean'])}{pc}  all layers lowered "
              f"{m.show(res['all_low']['mean'])}{pc}  lowered + {', '.join(h['fp16_layers']) or 'none'} "
              f"in fp16 {m.show(h['mean'])}{pc} (recovered {100 * h['recovered']:+.2f} {unit})")
        if args.plot:
            layer_plot(res["ranking"], args.plot, f"{args.model}: {m.name} loss when one layer alone\nruns at "
                       f"{args.lower} (others at the base config)", m.name)
    else:
        res = precision_sweep(base, grid, setup, args.seeds, tolerance=args.tolerance, **common)
        fields = list(grid)
        fp16 = res["fp16"]
        print(f"precision sweep, {args.model}, drift {args.drift:g} s, {args.seeds} seeds; "
              f"fp16 {m.show(fp16['mean'])} +- {m.show(fp16['std'])}{pc}")
        print(" ".join(f"{f:>14s}" for f in fields) + f" {name:>7s} {'std':>6s} {'vs fp16':>8s} {'bits':>5s}")
        for q in res["points"]:
            # vs fp16: better is positive (accuracy points gained, or perplexity percent lowered)
            print(" ".join(f"{str(q['point'][f]):>14s}" for f in fields)
                  + f" {val(q['mean'])} {val(q['std'])} {0.0 - 100 * q['drop_vs_fp16']:+8.2f} {q['cost_bits']:5d}")
        c = res["chosen"]
        if c:
            print(f"cheapest within {args.tolerance} {unit} of fp16: {c['point']} ({c['cost_bits']} bits, "
                  f"{m.show(c['mean'])}{pc})")
        else:
            print(f"no grid point within {args.tolerance} {unit} of fp16")
        if args.plot:
            sweep_plot(res["points"], fields, (fp16["mean"], fp16["std"]), args.plot,
                       f"{args.model}: {m.name} vs precision (drift {args.drift:g} s, {args.seeds} seeds)", m.name)
    if args.json:
        print(f"results: {args.json}")
    return 0
