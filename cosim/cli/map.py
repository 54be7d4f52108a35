"""``nmpu map``: which layer on which unit with how many bits: the sensitivity profile, the units' measured cost,
the search for the Pareto front of loss, periphery cost per inference and MACs on tiles (Optuna, resumable), the
chosen mapping as a file that ``eval``, ``cosim`` and ``cost`` take (``--mapping``), verified with the RTL in the
loop. The model of the cost: docs/mapping.md.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from . import workload
from .io import check_parent, progress_bars, write_json


def register(sub: argparse._SubParsersAction) -> None:
    from .cost import add_periphery_args
    p = sub.add_parser("map", help="search the layer mapping (digital / FP16 unit / NMPU formats per layer): Pareto "
                       "front of loss, periphery cost and MACs on tiles; the chosen one verified with the RTL",
                       description="Every layer that can go on tiles is digital, on tiles with the FP16 unit, or on "
                       "tiles with a fixed-point NMPU of one of the --formats. The search (Optuna: every mapping when "
                       "the space fits the --trials, else NSGA-II from the sensitivity profile's greedy mappings) "
                       "scores each by the golden model's metric against the all-digital network (mean over seeds), "
                       "the periphery's energy (or area) per inference with the units' measured figures, and the "
                       "fraction of MACs on tiles; it resumes from its SQLite file in --out. Writes DIR/mapping.json "
                       "(the chosen mapping), DIR/pareto.png, DIR/sensitivity.{json,png}.")
    workload.add_args(p)
    p.add_argument("--config", metavar="CFG.toml", help="the base NMPU configuration (default: the spec's defaults)")
    p.add_argument("--formats", metavar="GRID.toml", help="the fixed-point formats to choose from besides the base: a [grid] "
                   "of fields applied to the base (the sweep's rule for bits; default: scale and offset at 4 bits and at "
                   "2 bits)")
    p.add_argument("--seeds", type=int, default=2, help="noise seeds per mapping (default %(default)s)")
    p.add_argument("--drift", type=float, default=3600.0, help="drift time in seconds (default 3600)")
    p.add_argument("--trials", type=int, default=64, help="mappings to evaluate (default %(default)s; a smaller space "
                   "is enumerated)")
    p.add_argument("--batch", type=int, default=16, help="mappings per batch on the workers (default %(default)s; "
                   "NSGA-II's population)")
    p.add_argument("--tolerance", type=float, default=1.0, help="loss against the all-digital network allowed for the "
                   "chosen mapping: accuracy percentage points, or percent of the perplexity (default %(default)s)")
    p.add_argument("--objective", default="energy", choices=("energy", "area"),
                   help="the periphery cost minimized: energy or area per inference (default %(default)s)")
    add_periphery_args(p, "--figures")
    p.add_argument("--figures", metavar="MAP.json", help="the units' figures of an earlier `nmpu map --json` (default: "
                   "measured with the OSU 0.18 um flow on the network's layer, cached per format)")
    p.add_argument("--no-sensitivity", action="store_true", help="skip the sensitivity profile (the search then starts "
                   "from every layer at each choice)")
    p.add_argument("--no-verify", action="store_true", help="do not co-simulate the chosen mapping with the RTL")
    p.add_argument("--workers", type=int, help="local Dask workers (default: the machine's cores; 0 = serial)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="use an existing Dask cluster")
    p.add_argument("--seed", type=int, default=0, help="the sampler's seed (default 0)")
    p.add_argument("--out", default="build/map", metavar="DIR", help="where the mapping, plots and the search's SQLite "
                   "file go (default %(default)s)")
    p.add_argument("--json", metavar="OUT.json", help="write the search (every mapping, the front, the chosen) as JSON")


def _figures(path: str) -> dict[str, Any]:
    from ..studies.cost import Periphery
    from nmpu_model.files import read_document
    doc = read_document(path, "JSON")
    figs = doc.get("figures") if isinstance(doc, dict) else None
    if not isinstance(figs, dict) or not figs:
        raise ValueError(f"--figures {path}: no \"figures\" table (write it with `nmpu map --json FILE`)")
    try:
        return {k: Periphery(**v) for k, v in figs.items()}
    except (TypeError, ValueError) as e:
        raise ValueError(f"--figures {path}: {e}") from None


def _resolve_digital(text: str | None, names: list[str]) -> tuple[str, ...]:
    """``--digital`` for a search: the layers kept digital whatever the search finds (default none)."""
    sel = workload.digital_layers(text)
    if not sel:
        return ()
    return tuple(names[0] if s == "first" else names[-1] if s == "last" else s for s in sel)


def run(args: argparse.Namespace) -> int:
    import torch

    from nmpu_model import load_config
    from nmpu_model.studies import mapping as mp
    from nmpu_model.studies.sweep import Setup, alone_sensitivity, grid_points, load_grid, setup_workload

    from ..report.plots import pareto_plot, profile_plot
    from ..report.tables import map_text
    from ..studies import mapping as sm

    for k in ("seeds", "trials", "batch", "units", "fp16_units", "samples"):
        v = getattr(args, k)
        if v < 1:
            raise ValueError(f"--{k.replace('_', '-')} must be a positive integer, not {v}")
    if args.workers is not None and args.workers < 0:
        raise ValueError(f"--workers must be >= 0, not {args.workers}")
    if not (math.isfinite(args.tolerance) and args.tolerance >= 0):
        raise ValueError(f"--tolerance must be a finite number >= 0, not {args.tolerance:g}")
    if not (math.isfinite(args.mvm_ns) and args.mvm_ns > 0):
        raise ValueError(f"--mvm-ns must be a finite number > 0, not {args.mvm_ns:g}")
    if not (math.isfinite(args.drift) and args.drift >= 0):
        raise ValueError(f"--drift must be a finite time >= 0 s, not {args.drift:g}")
    check_parent(args.json, "--json")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder")
    base = load_config(args.config)
    formats = mp.format_choices(base, [{}, *grid_points(load_grid(args.formats))] if args.formats
                                else sm.DEFAULT_FORMATS)
    figures = _figures(args.figures) if args.figures else None
    forced = args.digital
    args.digital = "none"                    # the layer table shows every layer that can go on tiles
    tty = progress_bars()
    work = workload.load(args, progress=tty)
    setup = Setup(model=args.model, data=args.data, images=args.images, drift=args.drift, digital=work.digital,
                  device=args.device, compensation=args.compensation)
    names, problem = mp.mappable_layers(setup)
    forced_digital = _resolve_digital(forced, names)
    space = sm.mapping_space(names, formats, forced_digital)[1]      # refusals before the layer table
    if figures is not None:
        missing = [l for l in ["fp16", *(c.label for c in formats)] if l not in figures]
        if missing:
            raise ValueError(f"--figures {args.figures}: no figures of {missing[0]} (its formats differ from --formats)")
    workload.show(work)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    setup_workload(setup)

    ranking: list[str] = []
    doc: dict[str, Any] = {"model": work.name}
    if not args.no_sensitivity:
        low = formats[-1].config(base)
        print(f"sensitivity profile: {len(names)} layer(s) alone on tiles, {args.seeds} seed(s), at the base and at "
              f"{formats[-1].label} ...", file=sys.stderr, flush=True)
        sens = alone_sensitivity(base, low, setup, args.seeds, workers=args.workers, scheduler=args.scheduler,
                                 results=out / "sensitivity.json", progress=tty)
        ranking = [r["layer"] for r in sens["profile"]]
        profile_plot(sens["profile"], out / "sensitivity.png", f"{work.name}: each layer alone on tiles "
                     f"({args.seeds} seeds, t = {args.drift:g} s)", sens["metric"], low_label=formats[-1].label)
        doc["sensitivity"] = {"ranking": ranking, "file": str(out / "sensitivity.json")}
    loads = sm.all_layer_loads(setup, base)
    if figures is None:
        print("measuring the units (OSU 0.18 um timing and power on the network's layer, per format: minutes; "
              "cached) ...", file=sys.stderr, flush=True)
        figures = sm.unit_peripheries(base, formats, work, out / "units", samples=args.samples, units=args.units,
                                      fp16_units=args.fp16_units, notify=lambda m: print(m, file=sys.stderr, flush=True))
    storage = f"sqlite:///{(out / 'map-study.db').resolve()}"
    bar = None
    if tty:
        from tqdm import tqdm
        bar = tqdm(total=min(args.trials, mp.space_size(space)),
                   desc=f"map {work.name}", unit="mapping", leave=False)
    try:
        res = sm.map_network(setup, base, formats, figures, loads, seeds=args.seeds, trials=args.trials,
                             batch=args.batch, tolerance=args.tolerance, objective=args.objective,
                             forced_digital=forced_digital, ranking=ranking, storage=storage, seed=args.seed,
                             mvm_ns=args.mvm_ns, workers=args.workers, scheduler=args.scheduler,
                             progress=bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    doc.update(res)
    print(map_text(doc))
    pareto_plot(doc["rows"], out / "pareto.png", f"{work.name}: {doc['trials']} mappings ({doc['sampler']})",
                doc["metric"], cost_label="periphery energy per inference (nJ)" if args.objective == "energy"
                else "periphery area (mm^2)", cost_scale=1e-3 if args.objective == "energy" else 1e-6,
                tolerance=args.tolerance, chosen=doc["chosen"])
    rc = 0
    if doc["chosen"] is not None:
        chosen = mp.Mapping.of(base, {n: mp.Choice.parse(v) for n, v in doc["mapping"]["layers"].items()})
        chosen.write(out / "mapping.json", model=work.name, drift=args.drift, metric=doc["metric"],
                     search={k: doc["chosen"][k] for k in ("trial", "mean", "loss", "energy_pj", "area_um2",
                                                           "mac_fraction")})
        print(f"wrote {out / 'mapping.json'}")
        if not args.no_verify:
            rc = _verify(args, work, chosen, problem, doc)
    if args.json:
        write_json(args.json, doc)
    return rc


def _verify(args: argparse.Namespace, work: Any, chosen: Any, problem: list[str], doc: dict[str, Any]) -> int:
    """The chosen mapping with the RTL in the loop (bulk harness) on each of the search's seeds: every fixed-point
    layer's output codes against the golden model, and the metric with the RTL's codes, their mean against the
    search's and the tolerance."""
    from nmpu_model.studies.sweep import mean_std

    from ..sim.network import cosim_network
    if not chosen.names("fixed"):
        print("verify: the chosen mapping has no fixed-point layer: nothing for the NMPU's RTL to check", file=sys.stderr)
        doc["verify"] = None
        return 0
    work.digital = chosen.digital(problem)
    runs, ok, values, mismatches = [], True, 0, 0
    print(f"RTL in the loop (bulk harness), seeds 0..{args.seeds - 1}:")
    for seed in range(args.seeds):
        res = cosim_network(work, chosen.base, mode="bulk", seed=seed, drift=args.drift, mapping=chosen)
        print(f"seed {seed}:")
        print(res.text())
        runs.append(res.rtl)
        ok = ok and res.ok
        values += sum(l.values for l in res.layers)
        mismatches += res.mismatches
    mean = mean_std(runs)[0]
    loss = work.metric.loss(mean, doc["digital_metric"])
    within = loss <= args.tolerance / 100 + 1e-12
    print(f"chosen mapping with the RTL: {values:,} output codes, {mismatches} mismatches; {work.metric.name} "
          f"{work.metric.show(mean)}{work.metric.suffix} (mean over {args.seeds} seed(s); the search's "
          f"{work.metric.show(doc['chosen']['mean'])}{work.metric.suffix}), loss {100 * loss:+.2f} against the "
          f"all-digital network: {'within' if within else 'NOT within'} the tolerance {args.tolerance:g}")
    doc["verify"] = {"seeds": args.seeds, "values": values, "mismatches": mismatches, "runs_rtl": runs,
                     "mean_rtl": mean, "equals_search": mean == doc["chosen"]["mean"], "loss_rtl": loss,
                     "within_tolerance": within}
    return 0 if ok else 1
