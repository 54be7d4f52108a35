"""Text and Markdown tables of the studies' typed results: what ``nmpu synth`` prints and the run report shows."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..studies.ppa import PPAStudy

UNIT_NAMES = {"fixed": "fixed-point NMPU", "fp16": "FP16 unit", "fp16_pipelined": "FP16 unit, 5-stage FMAs"}


def fmt(v: Any, nd: int = 0) -> str:
    """A figure for a table: thousands separated, ``nd`` decimals for floats, ``-`` for None."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned, a rule under the header."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def unit_text(r: dict[str, Any]) -> str:
    """One unit's synthesis figures (:meth:`cosim.synth.flow.SynthResult.to_dict`) as ``nmpu synth`` prints them."""
    lines = [f"{r['unit']} unit ({r['top']}), target {r['target']}: {r['lanes']} lane(s), latency {r['latency']} cycles, "
             f"Yosys {r['seconds']:.1f} s"]
    if r["target"] == "generic":
        lines.append(f"  area: {fmt(r['area'])} um^2 in {r['std_cells']} sky130_fd_sc_hd cells (memories excluded); "
                     f"{fmt(r['transistors'])} transistors by Yosys' estimate "
                     f"({fmt(r['transistors_with_memory'])} with the memory bits as 6T SRAM cells); "
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


def _comparison(study: PPAStudy, bold) -> list[str]:
    """The comparison's sentences, figures passed through ``bold`` (plain for text, ``**`` for Markdown)."""
    q = study.comparison
    if q is None:
        return []
    out = [f"fixed / FP16: fmax {bold(f'{q.fmax_ratio:.2f}x')}, energy per value {bold(f'{q.energy_ratio:.2f}x')} "
           f"lower, throughput per area {bold(f'{q.throughput_per_area_ratio:.2f}x')}; area FP16 / fixed "
           f"{q.area_ratio:.2f}x; {q.fixed_lanes_in_fp16_area:.1f} fixed-point lanes fit in the FP16 unit's area: "
           f"{q.throughput_in_fp16_area_ratio:.1f}x its throughput at each unit's own fmax."]
    if q.layout:
        fmax, energy = f"{q.layout['fmax_ratio']:.2f}x", f"{q.layout['energy_ratio']:.2f}x"
        out.append(f"Placed and routed (wires' parasitics in the timing and power): fixed / FP16 fmax {bold(fmax)}, "
                   f"energy per value {bold(energy)} lower; die area FP16 / fixed {q.layout['die_area_ratio']:.2f}x, "
                   f"wire length {q.layout['wire_length_ratio']:.2f}x.")
    e = q.equal_clock
    if e is not None:
        out.append(f"At one clock, {e.clock_mhz:.1f} MHz ({100 * e.of_fixed_fmax:.0f}% of the fixed unit's fmax), "
                   f"against the FP16 unit with 5-stage FMAs (latency {e.fp16_latency}, {e.fp16_flip_flops} "
                   f"flip-flops): area {bold(f'{e.area_ratio:.2f}x')}, power {e.fp16_pipelined.mw:.3f} vs "
                   f"{e.fixed.mw:.3f} mW, energy per value {bold(f'{e.energy_ratio:.2f}x')} lower.")
    return out


def _activity(study: PPAStudy) -> str:
    return next(iter(study.units.values())).power.activity


def ppa_text(study: PPAStudy) -> str:
    """The PPA study as ``nmpu synth`` prints it: a table of the units, the worst paths, the comparison."""
    rows = [[k, fmt(u.area), f"{u.timing.critical_path_ns:.2f}", f"{u.timing.fmax_mhz:.1f}", f"{u.power.mw:.3f}",
             f"{u.energy_pj_per_value:.2f}", f"{u.throughput_per_mm2 / 1e9:.2f}"] for k, u in study.units.items()]
    lines = [f"power, performance, area in {study.library}; activity: {study.activity} ({study.stimulus})",
             table(["unit", "area (um^2, osu018)", "critical path (ns)", "fmax (MHz)", "power at fmax (mW)",
                    "energy (pJ/value)", "throughput (Gvalues/s/mm^2)"], rows)]
    lines += [f"{k}: worst path {u.timing.startpoint} -> {u.timing.endpoint}; netlist {u.timing.netlist}"
              for k, u in study.units.items()]
    laid = layout_rows(study)
    if laid:
        lines += ["placed and routed (graywolf, qrouter; DRC magic, LVS netgen; wires' RC from the routed DEF in "
                  "OpenSTA; memories outside the block; pre = the block before its wires):",
                  table(LAYOUT_HEADER, laid)]
        lines += [f"{k}: picture {u.layout['picture']}; GDS {u.layout['files']['gds']}"
                  for k, u in study.units.items() if u.layout]
    return "\n".join(lines + [f"activity: {_activity(study)}"] + _comparison(study, lambda x: x))


LAYOUT_HEADER = ["unit", "die (um)", "utilization", "wire (mm)", "DRC", "LVS", "critical path pre -> post (ns)",
                 "fmax post (MHz)", "power post (mW)", "energy pre -> post (pJ/value)"]


def layout_rows(study: PPAStudy) -> list[list[str]]:
    """One row per placed and routed unit: its layout figures and post-layout timing and power beside pre-layout."""
    rows = []
    for k, u in study.units.items():
        L = u.layout
        if not L:
            continue
        f = L["figures"]
        rows.append([k, f"{f['die_um'][0]:.0f} x {f['die_um'][1]:.0f}", f"{100 * f['utilization']:.0f}%",
                     f"{f['wire_length_um'] / 1000:.1f}", str(L["drc_errors"]), L["lvs"],
                     f"{L['pre_layout']['timing']['critical_path_ns']:.2f} -> {L['critical_path_ns']:.2f}",
                     f"{L['fmax_mhz']:.1f}", f"{L['power']['mw']:.3f}",
                     f"{L['pre_layout']['power']['energy_pj_per_value']:.2f} -> {L['energy_pj_per_value']:.2f}"])
    return rows


def ppa_markdown(study: PPAStudy) -> list[str]:
    """The PPA study as the run report shows it (Markdown lines)."""
    rows = [f"| {UNIT_NAMES[k]} | {u.area:,.0f} | {u.latency} | {u.timing.critical_path_ns:.2f} | "
            f"{u.timing.fmax_mhz:.1f} | {u.power.mw:.2f} | {u.energy_pj_per_value:.1f} | "
            f"{u.throughput_per_mm2 / 1e9:.2f} |" for k, u in study.units.items()]
    lines = [f"Power, performance and area in {study.library} (Yosys timing-driven mapping, OpenSTA; memories as "
             f"macros, excluded). Activity: {_activity(study)}.", "",
             "| unit | area (µm²) | latency (cycles) | critical path (ns) | fmax (MHz) | power at fmax (mW) | "
             "energy (pJ/value) | throughput (Gvalues/s/mm²) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|", *rows]
    laid = layout_rows(study)
    if laid:
        lines += ["", "Placed and routed in OSU 0.18 um (graywolf, qrouter; DRC with magic, LVS with netgen; the "
                  "wires' resistance and capacitance from the routed DEF in OpenSTA's timing and power; the "
                  "coefficient memories outside the block):", "",
                  "| " + " | ".join(LAYOUT_HEADER) + " |", "|---|" + "---:|" * (len(LAYOUT_HEADER) - 1),
                  *("| " + " | ".join(r) + " |" for r in laid)]
        pic = next(u.layout["picture"] for u in study.units.values() if u.layout)
        lines += ["", f"![layouts]({Path(pic).name})"]      # beside the report (nmpu run copies it there)
    for sentence in _comparison(study, lambda x: f"**{x}**"):
        lines += ["", sentence]
    return lines


def cost_rows(doc: dict[str, Any], us: str = "us", mm2: str = "mm^2") -> list[list[str]]:
    """The per-inference rows of a ``nmpu cost --json`` document (label, fixed, FP16, FP16 / fixed), for the
    command's text and the run report's Markdown alike."""
    fx, fp, r, keep = doc["fixed"], doc["fp16"], doc["ratios"], doc["units_to_keep_up"]

    def t(ns: float) -> str:
        return f"{ns / 1000:,.2f}"

    def units(n: int | None, d: dict[str, Any]) -> str:
        return f"{n} ({n * d['periphery']['area_um2'] / 1e6:.3f} {mm2})" if n else "none"

    def yes(d: dict[str, Any]) -> str:
        return "yes" if d["keeps_up"] else "no"
    return [[f"time, tiles and post-processing pipelined ({us})", t(fx["time_ns"]), t(fp["time_ns"]), f"{r['time']:.2f}x"],
            [f"the tiles' MVMs alone ({us})", t(fx["mvm_time_ns"]), t(fp["mvm_time_ns"]), ""],
            [f"post-processing alone ({us})", t(fx["post_time_ns"]), t(fp["post_time_ns"]), f"{r['post_time']:.2f}x"],
            ["keeps up with the tiles", yes(fx), yes(fp), ""],
            ["post-processing energy (nJ)", f"{fx['energy_pj'] / 1000:,.2f}", f"{fp['energy_pj'] / 1000:,.2f}",
             f"{r['energy']:.2f}x"],
            [f"periphery area ({mm2}, library cells)", f"{fx['area_um2'] / 1e6:,.3f}", f"{fp['area_um2'] / 1e6:,.3f}",
             f"{r['area']:.2f}x"],
            ["units per column tile that keep up", units(keep["fixed"], fx), units(keep["fp16"], fp), ""]]


def cost_text(doc: dict[str, Any]) -> str:
    """``nmpu cost``'s report: the layers, the per-inference table, the units, the paper's setting, the assumptions."""
    fx, fp, tile, paper = doc["fixed"], doc["fp16"], doc["tile"], doc["paper_setting"]
    pf, pp = fx["periphery"], fp["periphery"]
    lines = [f"periphery cost per inference of {doc['model']}: tiles {tile['rows']} x {tile['cols']}, {doc['mvm_ns']:g} ns "
             f"per MVM; fixed: {pf['units']} x {pf['lanes']}-lane NMPU(s) per column tile, FP16: {pp['units']} unit(s) "
             "per column tile"]
    rows = [[ld["name"], f"{ld['vectors']:,}", f"{ld['inputs']} x {ld['columns']}", f"{ld['row_tiles']} x {ld['col_tiles']}",
             f"{a['t_mvm_ns'] / 1000:,.2f}"] + [f"{c['t_pp_vector_ns']:.1f}" + ("" if c["keeps_up"] else " (slower)")
                                                for c in (a, b)]
            for ld, a, b in zip(doc["layers"], fx["layers"], fp["layers"])]
    lines += [table(["layer", "vectors", "K x C", "tiles", "MVMs (us)", "fixed ns/vector", "FP16 ns/vector"], rows), "",
              table(["per inference", pf["name"], pp["name"], "FP16 / fixed"], cost_rows(doc))]
    lines += [f"  {p['name']}: fmax {p['fmax_mhz']:.1f} MHz, latency {p['latency']} cycles, {p['lanes']} lane(s), "
              f"{p['energy_pj_per_value']:.2f} pJ/value, {fmt(p['area_um2'])} um^2 ({p['source']})" for p in (pf, pp)]
    lines.append(f"paper's setting (one MVM of {paper['columns']} columns, 64 fixed-point units against one FP16 unit): "
                 f"**{paper['speedup']:.1f}x** (the paper: 139x in 14 nm); {paper['derivation']}")
    lines.append("assumptions: one periphery per column tile (row tiles' codes summed before it); a layer's MVMs and "
                 "its post-processing pipelined vector by vector, layers one after the other; energy = values x the "
                 "unit's energy per value at fmax; coefficient memories not in the area (docs/mapping.md)")
    return "\n".join(lines)


def mapping_summary(params: dict[str, str], labels: list[str]) -> str:
    """``3 x fixed, 1 x fp16, 1 x digital``: how many layers take each choice, in the order of ``labels``."""
    from collections import Counter
    n = Counter(params.values())
    return ", ".join(f"{n[l]} x {l}" for l in labels if n[l])


def front_rows(doc: dict[str, Any], limit: int = 12) -> list[dict[str, Any]]:
    """The Pareto front's mappings a report shows: those within the tolerance (the most MACs on tiles first, then
    the cheapest), then the rest of the front by loss, at most ``limit``; the chosen one always among them."""
    tol = doc["tolerance"] / 100 + 1e-12
    front = [r for r in doc["rows"] if r["pareto"]]
    within = sorted((r for r in front if r["loss"] <= tol), key=lambda r: (-r["mac_fraction"], r["cost"], r["loss"]))
    beyond = sorted((r for r in front if r["loss"] > tol), key=lambda r: (r["loss"], r["cost"]))
    shown = (within + beyond)[:limit]
    ch = doc.get("chosen")
    if ch is not None and all(r["trial"] != ch["trial"] for r in shown):
        shown = [next(r for r in doc["rows"] if r["trial"] == ch["trial"])] + shown[:limit - 1]
    return shown


def map_text(doc: dict[str, Any]) -> str:
    """``nmpu map``'s report: the search, its Pareto front (within the tolerance first) and the chosen mapping."""
    from nmpu_model.workloads.metrics import METRICS
    m = METRICS[doc["metric"]]
    unit = "pp" if m.percent else "%"
    cost_key = doc["objective_key"]
    scale, cunit = (1e-3, "nJ") if cost_key == "energy_pj" else (1e-6, "mm^2")
    lines = [f"mapping search: {doc['trials']} mappings evaluated of {doc['space_size']:,} ({doc['sampler']}), "
             f"{doc['seeds']} seed(s) each; all-digital {m.name} {m.show(doc['digital_metric'])}{m.suffix}; "
             f"tolerance {doc['tolerance']:g} {unit}"]
    shown = front_rows(doc)
    ch = doc["chosen"]
    rows = [[mapping_summary(r["params"], doc["labels"]) + ("  <- chosen" if ch and r["trial"] == ch["trial"] else ""),
             str(r["trial"]), f"{100 * r['loss']:+.2f}", f"{r['cost'] * scale:,.3f}", f"{100 * r['mac_fraction']:.1f}%",
             "yes" if r.get("keeps_up") else "no"] for r in shown]
    n_front = sum(r["pareto"] for r in doc["rows"])
    lines.append(f"Pareto front: {n_front} mappings; within the tolerance first (most MACs on tiles, then cheapest), "
                 f"{len(shown)} shown (every one in --json and the plot):")
    lines.append(table(["layers", "trial", f"loss ({unit})", f"{doc['objective']} ({cunit})", "MACs on tiles",
                        "keeps up"], rows))
    if ch is None:
        lines.append(f"no mapping within {doc['tolerance']:g} {unit} of the all-digital network")
    else:
        lines.append(f"chosen (within the tolerance: most MACs on tiles, then cheapest): trial {ch['trial']}, "
                     f"{m.name} {m.show(ch['mean'])}{m.suffix} (loss {100 * ch['loss']:+.2f} {unit}), "
                     f"{ch['energy_pj'] / 1e3:,.3f} nJ and {ch['area_um2'] / 1e6:,.4f} mm^2 of periphery per inference, "
                     f"{100 * ch['mac_fraction']:.1f}% of the MACs on tiles")
        lines += [f"  {n:24s} {c}" for n, c in ch["params"].items()]
    return "\n".join(lines)
