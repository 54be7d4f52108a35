"""The sections of the ``nmpu run`` report, rendered from what each stage's command wrote (``--json``).

Each function takes the stage's results and returns Markdown lines; :func:`report_markdown` puts the sections
together. The command (:mod:`cosim.cli.run`) runs the stages, draws the figures and writes the files.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np



def _metric(doc: dict[str, Any]) -> Any:
    """The metric a stage's JSON scored with (accuracy unless it says otherwise)."""
    from nmpu_model.workloads.metrics import METRICS
    return METRICS[doc.get("metric", "accuracy")]


def example_section(codes: np.ndarray, y: dict[str, np.ndarray]) -> list[str]:
    """The shipped tile example through the fixed, fp16 and fp32 units (``y``: each unit's output codes)."""
    lines = [f"A 16-column tile with ADC gain/offset mismatch (`examples/codes.npy`, {codes.shape[0]} samples), "
             "corrected by the fixed-point unit (coefficients quantized to the configured formats) and by the "
             "fp16/fp32 units (real coefficients).", "",
             "| unit | equal to fp32 | max abs diff vs fp32 | mean abs diff vs fp32 |", "|---|---:|---:|---:|"]
    for arith in ("fixed", "fp16"):
        d = np.abs(y[arith] - y["fp32"])
        lines.append(f"| {arith} | {100 * np.mean(d == 0):.1f}% | {d.max()} | {d.mean():.3f} |")
    return lines


def eval_section(ev: dict[str, Any], labels: dict[str, str]) -> list[str]:
    """``nmpu eval --json``: accuracy per post-processor and drift time, and the per-layer coefficient errors."""
    from nmpu_model.studies.evaluate import time_name

    m = _metric(ev)
    ts = [r["t"] for r in ev["analog_fixed"]]
    lines = [f"{ev['model']}, {ev['images']} test {m.samples}, {ev['seeds']} noise seeds "
             f"(programming noise, drift, read noise, ADC mismatch); {m.label}, mean +- std over seeds:", "",
             "| post-processing | " + " | ".join(f"t = {time_name(t)}" for t in ts) + " |",
             "|---|" + "---:|" * len(ts)]
    for key, label in labels.items():
        lines.append(f"| {label} | " + " | ".join(f"{m.show(r['mean'])} +- {m.show(r['std'])}" for r in ev[key]) + " |")
    lines.append(f"| **fixed vs fp16 ({'pp' if m.percent else '% perplexity'})** | " + " | ".join(
        f"{100 * m.loss(b['mean'], a['mean']) if m.percent else 100 * m.loss(a['mean'], b['mean']):+.2f}"
        for a, b in zip(ev["analog_fixed"], ev["analog_fp16"])) + " |")
    return lines + ["", f"![{m.name} vs drift](accuracy_vs_drift.png)", ""] + eval_layers(ev)


def eval_layers(ev: dict[str, Any]) -> list[str]:
    """``nmpu eval --json``'s per-layer out_frac and coefficient quantization errors."""
    lines = ["Per analog layer (seed 0): out_frac and the coefficient quantization error of the fixed-point formats:",
             "", "| layer | out_frac | scale rel. err max | scale rel. err mean | offset err max (LSB) |",
             "|---|---:|---:|---:|---:|"]
    for name, q in ev["layers"].items():
        lines.append(f"| {name} | {q['out_frac']} | {100 * q['scale_rel_max']:.2f}% | "
                     f"{100 * q['scale_rel_mean']:.3f}% | {q['offset_abs_max']:.3f} |")
    return lines


def error_histogram_section(images: int) -> list[str]:
    return ["Output codes of each analog layer, fixed-point vs fp32 post-processing of the *same* ADC codes "
            f"(seed 0, t = 1 h, {images} images; library call `nmpu_model.studies.evaluate.fixed_minus_fp32`):",
            "", "![error histograms](error_histograms.png)"]


def sweep_section(sw: dict[str, Any]) -> list[str]:
    """``nmpu sweep --json``: the plot and the cheapest point within the tolerance."""
    c = sw["chosen"]
    m = _metric(sw)
    pc, unit = m.suffix, m.loss_abbrev
    lines = [f"{m.name.capitalize()} over a grid of formats, each point on the same tiles and seeds, against the fp16 "
             f"unit ({m.show(sw['fp16']['mean'])}{pc}):", "", "![precision sweep](sweep.png)", ""]
    if c:
        lines.append(f"Cheapest configuration within {sw['tolerance_pp']} {unit} of fp16 (cost: {sw['cost']}): "
                     f"**{', '.join(f'{k} = {v}' for k, v in c['point'].items())}**, {c['cost_bits']} bits, "
                     f"{m.show(c['mean'])}{pc} ({0.0 - 100 * c['drop_vs_fp16']:+.2f} {unit}).")
    else:
        lines.append(f"No grid point is within {sw['tolerance_pp']} {unit} of fp16.")
    return lines


def verify_section(v: dict[str, Any]) -> list[str]:
    """``nmpu verify --json``: vectors, mismatches, cycles and the simulator's speed."""
    build = "cached" if v["build_cached"] else f"{v['build_seconds']:.0f} s"
    return ["cocotb on Verilator, random codes and coefficients with every format edge, random input gaps and "
            "output stalls, coefficient rewrites between layers, a reset mid-stream:", "",
            "| vectors | mismatches | cycles | latency | cycles/s (cocotb) | build |", "|---:|---:|---:|---:|---:|---|",
            f"| {v['vectors']} | {v['mismatches']} | {v['cycles']} | {v['latency']} | {v['cycles_per_s']:,.0f} | "
            f"{build} |"]


def cosim_section(c: dict[str, Any]) -> list[str]:
    """``nmpu cosim --json``: per layer values and mismatches, accuracy of the golden model vs the RTL."""
    lines = [f"The {c['model']} network on analog tiles with the **Verilated RTL** as the post-processor of every analog "
             "layer (each layer's inputs are the RTL's outputs of the layer before):", "",
             "| layer | values | mismatches | cycles | values/s |", "|---|---:|---:|---:|---:|"]
    for r in c["layers"]:
        lines.append(f"| {r['name']} | {r['values']:,} | {r['mismatches']} | {r['cycles']:,} | "
                     f"{r['values_per_s']:,.0f} |")
    m = _metric(c)
    pc = m.suffix
    lines += ["", f"{m.name.capitalize()} on {c['images']} test {m.samples}: golden model "
              f"{m.show(c['accuracy_golden'])}{pc}, RTL in the loop {m.show(c['accuracy_rtl'])}{pc}; logits identical: "
              f"{c['logits_equal']}. Random input gaps "
              f"(p_valid {c['p_valid']}) and output stalls (p_ready {c['p_ready']})."]
    return lines


def synth_section(s: dict[str, Any], area_vs_accuracy: bool) -> list[str]:
    """``nmpu synth --compare --json``: area of both units, the PPA study, where the area goes."""
    f, h = s["fixed"], s["fp16"]
    lines = [f"Yosys ({s['target']}), {s['lanes']} lane(s); area proxy: {s['area_proxy']}; beside it "
             f"{s['transistor_proxy']}.", "",
             "| unit | area (µm², sky130) | transistors (Yosys) | flip-flops | latency (cycles) |",
             "|---|---:|---:|---:|---:|",
             f"| fixed-point NMPU | {f['area']:,.0f} | {f['transistors']:,.0f} | {f['flip_flops']} | {f['latency']} |",
             f"| FP16 unit | {h['area']:,.0f} | {h['transistors']:,.0f} | {h['flip_flops']} | {h['latency']} |",
             "", f"FP16 / fixed: area **{s['area_ratio']:.2f}x** (transistor estimate {s['transistor_ratio']:.2f}x), "
             f"flip-flops {s['ff_ratio']:.2f}x.", "", "![area](area.png)"]
    from ..studies.ppa import PPAStudy
    from .tables import ppa_markdown

    study = PPAStudy.from_json(s)
    if study is not None and study.comparison is not None:
        lines += [""] + ppa_markdown(study) + ["", "![power, performance, area](ppa.png)"]
    if s.get("breakdown"):
        lines += ["", "Where the area goes (sky130 µm², each block synthesized on its own):", "",
                  "| unit | block | area (µm²) | share |", "|---|---|---:|---:|"]
        lines += [f"| {u} | {r['block']} | {r['area']:,.0f} | {100 * r['share']:.0f}% |"
                  for u in ("fixed", "fp16") for r in s["breakdown"].get(u, [])]
    if area_vs_accuracy:
        lines += ["", "![area vs accuracy](area_vs_accuracy.png)"]
    return lines


def mapping_section(sens: dict[str, Any], cost: dict[str, Any], search: dict[str, Any]) -> list[str]:
    """``nmpu map``'s sensitivity profile, ``nmpu cost --json``'s cost per inference, and ``nmpu map --json``'s search:
    its front and the chosen mapping, with its RTL check."""
    from .tables import cost_rows

    lines = sensitivity_lines(sens)
    pf, pp = cost["fixed"]["periphery"], cost["fp16"]["periphery"]
    lines += ["", f"The post-processing periphery per inference: {pf['units']} fixed-point units of {pf['lanes']} lane(s) "
              f"against {pp['units']} FP16 unit(s) per column tile of {cost['tile']['cols']} columns, the tiles at "
              f"{cost['mvm_ns']:g} ns per MVM, the units as the synthesis stage measured them:", "",
              "| per inference | fixed-point NMPU | FP16 unit | FP16 / fixed |", "|---|---:|---:|---:|"]
    lines += ["| " + " | ".join(row) + " |" for row in cost_rows(cost, "µs", "mm²")]
    lines += ["", f"The paper's setting (one MVM of 256 columns, 64 fixed-point units against one FP16 unit): "
              f"**{cost['paper_setting']['speedup']:.1f}x** (the paper: 139x in 14 nm); "
              f"{cost['paper_setting']['derivation']}."]
    return lines + [""] + search_lines(search, _metric(sens))


def sensitivity_lines(sens: dict[str, Any]) -> list[str]:
    """``nmpu map``'s (or ``nmpu sweep --sensitivity``'s) profile: each layer alone on tiles, its loss."""
    m = _metric(sens)
    unit = m.loss_abbrev
    low = ", ".join(f"{k} {v['bits']} bits" for k, v in sens["meta"]["low"].items()
                    if isinstance(v, dict) and "bits" in v and v != sens["meta"]["base"].get(k))
    lines = [f"Each layer **alone** on tiles (every other layer digital), its {m.name} loss against the all-digital "
             f"network ({m.show(sens['digital'])}{m.suffix}), mean +- std over {sens['meta']['seeds']} seed(s), at the "
             f"base configuration and lowered ({low}); docs/mapping.md:", "", "![sensitivity](sensitivity.png)", "",
             f"| layer | block | S ({unit}) | S lowered ({unit}) |", "|---|---|---:|---:|"]
    lines += [f"| {r['layer']} | {r['block']} | {100 * r['S']:.2f} +- {100 * r['S_std']:.2f} | "
              f"{100 * r['low_S']:.2f} +- {100 * r['low_S_std']:.2f} |" for r in sens["profile"]]
    return lines


def search_lines(doc: dict[str, Any], m: Any) -> list[str]:
    """The mapping search: what was searched, the Pareto front (:func:`~cosim.report.tables.front_rows`) and the
    chosen mapping."""
    from .tables import front_rows, mapping_summary
    unit = m.loss_abbrev
    ch = doc["chosen"]
    lines = [f"The mapping search: every layer digital, on tiles with the FP16 unit, or with the NMPU at one of "
             f"{len(doc['labels']) - 2} format(s); {doc['trials']} of {doc['space_size']:,} mappings evaluated "
             f"({doc['sampler']}), {doc['seeds']} seed(s) each, scored by the {m.name} loss against the all-digital "
             f"network, the periphery's {doc['objective']} per inference and the fraction of MACs on tiles; chosen: "
             f"within {doc['tolerance']:g} {unit}, the most MACs on tiles, then the cheapest:", "",
             "![Pareto front](pareto.png)", "",
             f"The Pareto front has {sum(r['pareto'] for r in doc['rows'])} mappings; within the tolerance first (the most "
             f"MACs on tiles, then the cheapest), then the rest by loss:", "",
             f"| trial | loss ({unit}) | energy (nJ) | area (mm²) | MACs on tiles | layers |", "|---:|---:|---:|---:|---:|---|"]
    for r in front_rows(doc):
        mark = " **(chosen)**" if ch and r["trial"] == ch["trial"] else ""
        lines.append(f"| #{r['trial']} | {100 * r['loss']:+.2f} | {r['energy_pj'] / 1e3:,.3f} | {r['area_um2'] / 1e6:,.4f} "
                     f"| {100 * r['mac_fraction']:.1f}% | {mapping_summary(r['params'], doc['labels'])}{mark} |")
    if ch is None:
        return lines + ["", f"No mapping is within {doc['tolerance']:g} {unit} of the all-digital network."]
    lines += ["", "The chosen mapping (`mapping.json`): " + ", ".join(f"`{n}` {c}" for n, c in ch["params"].items())
              + "."]
    v = doc.get("verify")
    if v:
        lines.append(f"With the RTL in the loop (bulk harness, {v['seeds']} seed(s)): {v['values']:,} output codes, "
                     f"**{v['mismatches']} mismatches**, {m.name} {m.show(v['mean_rtl'])}{m.suffix} (loss "
                     f"{100 * v['loss_rtl']:+.2f} {unit}, {'within' if v['within_tolerance'] else 'NOT within'} the "
                     f"tolerance; {'the same as' if v['equals_search'] else 'NOT the same as'} the golden model's in "
                     f"the search).")
    elif "verify" not in doc:
        lines.append("Not co-simulated with the RTL here (`--no-verify`): `nmpu cosim --mapping mapping.json` does it.")
    return lines


def report_markdown(config: str, quick: bool, sections: Sequence[tuple[str, list[str]]], failed: str | None) -> str:
    """The whole report: a title, the configuration, each finished stage's section, and why a run stopped."""
    lines = ["# nmpu-cosim report", "", f"Configuration: `{config}`" + (" (quick settings)" if quick else ""), ""]
    for title, body in sections:
        lines += [f"## {title}", ""] + body + [""]
    if failed:
        lines += ["## Stopped", "", failed, ""]
    return "\n".join(lines)
