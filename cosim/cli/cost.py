"""``nmpu cost``: what the post-processing periphery costs per inference of a network (time, energy, area), for
fixed-point NMPUs and for an FP16 unit beside every column tile, against the tiles' own MVM time; and the
post-processing speed-up in the paper's setting (one MVM of 256 columns, 64 fixed-point units against one FP16
unit). The model is :mod:`cosim.studies.cost`; the units' figures are measured (``nmpu synth``'s OSU 0.18 um
timing and power flow on the network's own layer), cached per configuration and network.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..report.tables import cost_text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cost", help="the periphery's time, energy and area per inference: fixed-point NMPUs vs an "
                       "FP16 unit, against the tiles' MVM time",
                       description="Post-processing time, energy and area per inference of the network's analog "
                       "layers with the measured units (OSU 0.18 um: OpenSTA fmax, energy per value on the "
                       "network's own activity), against the tiles' MVM time; whether the periphery keeps up; "
                       "and the speed-up in the paper's setting. The model and its assumptions: docs/mapping.md.")
    p.add_argument("--config", metavar="CFG.toml", help="NMPU configuration (default: the spec's defaults)")
    add_periphery_args(p, "--ppa")
    p.add_argument("--ppa", metavar="SYNTH.json", help="the units' figures from `nmpu synth --compare --json` (default: "
                   "measured here on the network's first layer of the configuration, cached)")
    p.add_argument("--out", default="build/cost", metavar="DIR",
                   help="without --ppa: where the timing and power flow writes (default %(default)s)")
    p.add_argument("--json", metavar="OUT.json", help="write the figures as JSON")
    from .workload import add_args, add_mapping_arg
    add_args(p)
    add_mapping_arg(p)


def add_periphery_args(p: argparse.ArgumentParser, given: str) -> None:
    """The periphery's options of ``nmpu cost`` and ``nmpu map``: units per column tile, the tiles' MVM time, and
    the activity samples of the units' measurement (without ``given``, the option that supplies the figures)."""
    from ..sim.activity import DEFAULT_SAMPLES
    from ..studies.cost import MVM_NS, PAPER_UNITS
    p.add_argument("--units", type=int, default=PAPER_UNITS, metavar="N",
                   help="fixed-point units per column tile (default %(default)s: 64 units serving 4 columns each of "
                   "a 256-column tile, as in the paper); each has the configuration's rtl.lanes lanes")
    p.add_argument("--fp16-units", type=int, default=1, metavar="N",
                   help="FP16 units per column tile (default %(default)s: HERMES' one local processing unit per core)")
    p.add_argument("--mvm-ns", type=float, default=MVM_NS, metavar="NS",
                   help="the tiles' time per MVM (default %(default)s ns: HERMES, one-phase read)")
    p.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, metavar="N",
                   help=f"without {given}: samples of the layer through the gate-level netlists for the units' "
                   "activity (default %(default)s)")


def _study_from_file(path: str) -> tuple[Any, dict | None]:
    """The PPA study of a ``nmpu synth --json`` file and the configuration it names (None if it names none)."""
    from ..studies.ppa import PPAStudy
    try:
        doc = json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"--ppa {path}: not JSON ({e.msg}, line {e.lineno})") from None
    study = PPAStudy.from_json(doc) if isinstance(doc, dict) else None
    if study is None or not {"fixed", "fp16"} <= set(study.units):
        raise ValueError(f"--ppa {path}: no timing and power figures of both units (write it with "
                         "`nmpu synth --compare --json FILE`, without --no-ppa)")
    return study, doc.get("config")


def run(args: argparse.Namespace) -> int:
    import torch

    from nmpu_model import load_config
    from nmpu_model.network.analog_network import AnalogNetwork

    from ..studies import cost
    from .workload import load, show

    for k in ("units", "fp16_units", "samples"):
        v = getattr(args, k)
        if v < 1:
            raise ValueError(f"--{k.replace('_', '-')} must be a positive integer, not {v}")
    config = load_config(args.config)
    if args.json and Path(args.json).is_dir():
        raise ValueError(f"{args.json}: is a folder; --json takes a file")
    if args.mapping and args.ppa:
        raise ValueError("--ppa holds one configuration's units; with --mapping each format is measured (cached): "
                         "drop --ppa")
    study, ppa_config = _study_from_file(args.ppa) if args.ppa else (None, None)
    if not (math.isfinite(args.mvm_ns) and args.mvm_ns > 0):
        raise ValueError(f"--mvm-ns must be a finite number > 0, not {args.mvm_ns:g}")
    work = load(args)
    show(work)
    torch.set_num_threads(1)
    if work.layer_map is not None:
        return _mapping_cost(args, work)
    tile = work.tile_params(config.adc_bits, config.output.bits, config.output.signed)
    net = AnalogNetwork.build(work.model, work.x_cal, seed=0, t=3600.0, tile=tile, digital=work.digital)
    net.require_tiles()                       # nothing on tiles: no periphery to cost (one line, exit 2)
    loads = cost.layer_loads(net, work.x_test[:4], config)
    unit_config = cost.layers_config(net, config)
    if unit_config.relu != config.relu:
        print(f"the units are measured as the analog layers use them: ReLU {'on' if unit_config.relu else 'off'}",
              file=sys.stderr)
    note = None
    if ppa_config is not None and ppa_config != unit_config.to_dict():
        note = (f"the units' figures of {args.ppa} are of another configuration than the one the analog layers run "
                f"(ReLU {'on' if unit_config.relu else 'off'}, identity {unit_config.identity()})")
        print(f"note: {note}", file=sys.stderr)
    if study is None:
        print("measuring the units (OSU 0.18 um timing and power on the network's layer: minutes; cached per configuration "
              "and network) ...", file=sys.stderr, flush=True)
        study = cost.cached_ppa_study(unit_config, work, Path(args.out), samples=args.samples,
                                      notify=lambda m: print(m, file=sys.stderr, flush=True), net=net)
    fixed = cost.periphery(study.units["fixed"], args.units)
    fp16 = cost.periphery(study.units["fp16"], args.fp16_units)
    res = {p.name: cost.network_cost(loads, p, args.mvm_ns, tile.cols) for p in (fixed, fp16)}
    fx, fp = res[fixed.name], res[fp16.name]
    paper = cost.one_mvm_speedup(replace(fixed, units=cost.PAPER_UNITS), replace(fp16, units=1))
    doc = {"model": work.name, "config": config.to_dict(), "units_config": unit_config.to_dict(), "mvm_ns": args.mvm_ns,
           "tile": {"rows": tile.rows, "cols": tile.cols},
           "layers": [{**ld.__dict__, "values": ld.values, "macs": ld.macs} for ld in loads],
           "fixed": fx.to_dict(), "fp16": fp.to_dict(),
           "ratios": {"time": fp.t_ns / fx.t_ns, "post_time": fp.t_pp_ns / fx.t_pp_ns,
                      "energy": fp.energy_pj / fx.energy_pj, "area": fp.area_um2 / fx.area_um2},
           "paper_setting": paper,
           "units_to_keep_up": {k: cost.units_to_keep_up(loads, p, args.mvm_ns, tile.cols)
                                for k, p in (("fixed", fixed), ("fp16", fp16))},
           "units_source": study.stimulus, "units_note": note}
    print(cost_text(doc))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


def _mapping_cost(args: argparse.Namespace, work: Any) -> int:
    """``--mapping``: the periphery's cost per inference of a heterogeneous mapping, each layer on tiles with its
    own unit (each format measured, cached), and the fraction of the MACs on tiles."""
    from nmpu_model.studies.mapping import Choice
    from nmpu_model.studies.sweep import Setup

    from ..report.tables import table
    from ..studies import mapping as sm

    m = work.layer_map
    setup = Setup(model=args.model, data=args.data, images=args.images, digital=work.digital, device=args.device,
                  compensation=args.compensation)
    loads = sm.all_layer_loads(setup, m.base)
    formats = list(dict.fromkeys([Choice("fixed"), *(c for _, c in m.layers if c.unit == "fixed")]))
    print("measuring the units of the mapping's formats (OSU 0.18 um; cached per configuration) ...", file=sys.stderr,
          flush=True)
    figures = sm.unit_peripheries(m.base, formats, work, Path(args.out), samples=args.samples, units=args.units,
                                  fp16_units=args.fp16_units, notify=lambda s: print(s, file=sys.stderr, flush=True))
    c, frac = sm.mapping_cost(m, loads, figures, args.mvm_ns, work.tile_params(
        m.base.adc_bits, m.base.output.bits, m.base.output.signed).cols)
    choice = m.choices
    rows = [[l.name, choice[l.name].label, f"{l.vectors:,}", f"{l.t_pp_vector_ns:.1f}" + ("" if l.keeps_up else " (slower)"),
             f"{l.energy_pj / 1e3:,.3f}", f"{l.area_um2 / 1e6:,.4f}"] for l in c.layers]
    print(f"periphery cost per inference of {work.name} with the mapping {args.mapping} "
          f"({args.mvm_ns:g} ns per MVM):")
    print(table(["layer", "unit", "vectors", "ns/vector", "energy (nJ)", "area (mm^2)"], rows))
    print(f"total: {c.t_ns / 1e3:,.2f} us ({c.t_mvm_ns / 1e3:,.2f} us of MVMs), {c.energy_pj / 1e3:,.3f} nJ, "
          f"{c.area_um2 / 1e6:,.4f} mm^2; keeps up with the tiles: {'yes' if c.keeps_up else 'no'}; "
          f"{100 * frac:.1f}% of the MACs on tiles; digital: {', '.join(m.names('digital')) or 'none'}")
    for label, p in figures.items():
        print(f"  {p.name}: fmax {p.fmax_mhz:.1f} MHz, latency {p.latency} cycles, {p.energy_pj_per_value:.2f} pJ/value, "
              f"{p.area_um2:,.0f} um^2 x {p.units} per column tile")
    if args.json:
        from .io import write_json
        write_json(args.json, {"model": work.name, "mapping": m.to_dict(), "mvm_ns": args.mvm_ns,
                               "cost": c.to_dict(), "mac_fraction": frac,
                               "figures": {k: p.__dict__ for k, p in figures.items()},
                               "loads": {k: ld.__dict__ for k, ld in loads.items()}})
    return 0
