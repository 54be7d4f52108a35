"""What a finished run shows: its figures (drawn into its folder when it ends), its section of the ``nmpu run``
report (:mod:`cosim.report.run_report`, rendered from the JSON its command wrote), and the key figures a comparison
puts side by side. One entry per stage in each table; the stages themselves are :data:`cosim.workbench.study.STAGES`.
"""
from __future__ import annotations

import threading
import tomllib
from pathlib import Path
from typing import Any, Callable

from cosim.report import run_report as report
from cosim.report.markdown import markdown_body
from nmpu_model.workloads.metrics import METRICS

#: matplotlib's pyplot is not thread-safe: the runner's thread and the app's request threads draw one at a time
PLOT_LOCK = threading.Lock()


def _metric(doc: dict[str, Any]) -> Any:
    return METRICS[doc.get("metric") or "accuracy"]


# ---- figures drawn when a run ends (the commands that draw their own: sweep --plot, map --out) ------------------
def _draw_eval(doc: dict[str, Any], folder: Path) -> None:
    from cosim.report.plots import drift_plot
    drift_plot(doc, folder / "accuracy_vs_drift.png")


def _draw_synth(doc: dict[str, Any], folder: Path) -> None:
    import shutil

    from cosim.report.plots import area_plot, ppa_plot
    area_plot(doc, folder / "area.png")
    if doc.get("ppa"):
        ppa_plot(doc, folder / "ppa.png")
    if (folder / "synth" / "layout.png").is_file():
        shutil.copyfile(folder / "synth" / "layout.png", folder / "layout.png")


FIGURES: dict[str, Callable[[dict[str, Any], Path], None]] = {"eval": _draw_eval, "synth": _draw_synth}


def draw(stage: str, doc: dict[str, Any], folder: Path) -> None:
    """The stage's figures of a finished run, into its folder."""
    if stage in FIGURES:
        with PLOT_LOCK:
            FIGURES[stage](doc, folder)


# ---- the report's section ------------------------------------------------------------------------------------
def _map_section(doc: dict[str, Any], folder: Path) -> list[str]:
    import json
    sens = folder / "sensitivity.json"
    lines = report.sensitivity_lines(json.loads(sens.read_text())) + [""] if sens.is_file() else []
    return lines + report.search_lines(doc, _metric(doc))


def _synth_section(doc: dict[str, Any], folder: Path) -> list[str]:
    lines = report.synth_section(doc, False)
    return lines + (["", "![layout](layout.png)"] if (folder / "layout.png").is_file() else [])


SECTIONS: dict[str, Callable[[dict[str, Any], Path], list[str]]] = {
    "eval": lambda doc, folder: report.eval_layers(doc),      # the accuracy table and plot: the page's own
    "sweep": lambda doc, folder: report.sweep_section(doc),
    "map": _map_section,
    "cosim": lambda doc, folder: report.cosim_section(doc),
    "synth": _synth_section,
}


def section_html(stage: str, doc: dict[str, Any], folder: Path, src: Callable[[str], str]) -> str:
    """The run's section of the report as HTML, its images at ``src(name)``; a document the section cannot read
    (a recorded run of other options, an older format) is said in one line instead."""
    if stage not in SECTIONS:
        return ""
    try:
        md = "\n".join(SECTIONS[stage](doc, folder))
    except (KeyError, TypeError, ValueError) as e:
        return f"<p class='error'>this run's {stage} JSON lacks what the report shows ({type(e).__name__}: {e})</p>"
    return markdown_body(md, src)


# ---- the key figures a comparison puts side by side ---------------------------------------------------------
Figure = tuple[str, "float | None", str]        # (label, value for the plot or None, text)


def _show(m: Any, v: float) -> str:
    return f"{m.show(v)}{m.suffix}"


def _sweep_figures(doc: dict[str, Any]) -> list[Figure]:
    m, c = _metric(doc), doc.get("chosen")
    out: list[Figure] = [(f"fp16 {m.name}", m.scale * doc["fp16"]["mean"], _show(m, doc["fp16"]["mean"])),
                         ("grid points", float(len(doc["points"])), str(len(doc["points"])))]
    if c:
        out += [("chosen point", None, ", ".join(f"{k} = {v}" for k, v in c["point"].items())),
                ("chosen: bits", float(c["cost_bits"]), str(c["cost_bits"])),
                (f"chosen: {m.name}", m.scale * c["mean"], _show(m, c["mean"]))]
    else:
        out.append(("chosen point", None, f"none within {doc['tolerance_pp']}"))
    return out


def _map_figures(doc: dict[str, Any]) -> list[Figure]:
    m, c = _metric(doc), doc.get("chosen")
    out: list[Figure] = [("mappings evaluated", float(doc["trials"]), f"{doc['trials']} of {doc['space_size']:,}")]
    if c is None:
        return out + [("chosen mapping", None, f"none within {doc['tolerance']:g} {m.loss_abbrev}")]
    out += [(f"chosen: loss ({m.loss_abbrev})", 100 * c["loss"], f"{100 * c['loss']:+.2f}"),
            ("chosen: energy (nJ/inference)", c["energy_pj"] / 1e3, f"{c['energy_pj'] / 1e3:,.3f}"),
            ("chosen: area (mm²)", c["area_um2"] / 1e6, f"{c['area_um2'] / 1e6:,.4f}"),
            ("chosen: MACs on tiles (%)", 100 * c["mac_fraction"], f"{100 * c['mac_fraction']:.1f}%"),
            ("chosen mapping", None, ", ".join(f"{n} {v}" for n, v in c["params"].items()))]
    v = doc.get("verify")
    if v:
        out.append(("RTL mismatches", float(v["mismatches"]), f"{v['mismatches']} of {v['values']:,} codes"))
    return out


def _cosim_figures(doc: dict[str, Any]) -> list[Figure]:
    m = _metric(doc)
    values = sum(r["values"] for r in doc["layers"])
    return [("output codes", float(values), f"{values:,}"),
            ("mismatches", float(doc["mismatches"]), str(doc["mismatches"])),
            (f"{m.name}, golden model", m.scale * doc["accuracy_golden"], _show(m, doc["accuracy_golden"])),
            (f"{m.name}, RTL in the loop", m.scale * doc["accuracy_rtl"], _show(m, doc["accuracy_rtl"]))]


def _synth_figures(doc: dict[str, Any]) -> list[Figure]:
    f, h = doc["fixed"], doc["fp16"]
    out: list[Figure] = [("fixed area (µm², sky130)", f["area"], f"{f['area']:,.0f}"),
                         ("FP16 area (µm², sky130)", h["area"], f"{h['area']:,.0f}"),
                         ("FP16 / fixed area", doc["area_ratio"], f"{doc['area_ratio']:.2f}x"),
                         ("fixed flip-flops", float(f["flip_flops"]), str(f["flip_flops"])),
                         ("fixed latency (cycles)", float(f["latency"]), str(f["latency"]))]
    q = doc.get("ppa")
    if q:
        out += [("fixed fmax (MHz, OSU 0.18)", f["timing"]["fmax_mhz"], f"{f['timing']['fmax_mhz']:.1f}"),
                ("fixed energy (pJ/value)", f["energy_pj_per_value"], f"{f['energy_pj_per_value']:.2f}"),
                ("FP16 / fixed energy", q["energy_ratio"], f"{q['energy_ratio']:.2f}x")]
    return out


SUMMARIES: dict[str, Callable[[dict[str, Any]], list[Figure]]] = {
    "sweep": _sweep_figures, "map": _map_figures, "cosim": _cosim_figures, "synth": _synth_figures}


def key_figures(stage: str, doc: dict[str, Any]) -> list[Figure]:
    """The stage's key figures of a run's JSON (an unreadable document: none)."""
    try:
        return SUMMARIES[stage](doc) if stage in SUMMARIES else []
    except (KeyError, TypeError, ValueError):
        return []


def formats(config_toml: str | None) -> str:
    """The run's NMPU formats in one line: bits.frac of each stage of the unit."""
    if not config_toml:
        return ""
    try:
        d = tomllib.loads(config_toml)
    except tomllib.TOMLDecodeError:
        return ""
    parts = [f"ADC {d.get('adc_bits', '?')} b"]
    for table in ("scale", "offset", "bn_scale", "bn_offset", "mid", "output"):
        t = d.get(table)
        if isinstance(t, dict) and "bits" in t:
            parts.append(f"{table} {t['bits']}.{t.get('frac', 0)}" + (" u" if t.get("signed") is False else ""))
    return ", ".join(parts)


#: the columns of a comparison's CSV (one row per run and quantity: a post-processor at a drift time, or a figure)
CSV_COLUMNS = ("run", "stage", "network", "device", "compensation", "seeds", "images", "formats", "metric",
               "quantity", "t_s", "mean", "std", "value", "text", "command")


def csv_rows(run: Any) -> list[dict[str, Any]]:
    """A run's results as rows of :data:`CSV_COLUMNS`: an eval run's mean and std per post-processor and drift time
    as its JSON holds them (accuracy as a fraction, perplexity as it is), another stage's key figures."""
    p, doc = run.params, run.metrics or {}
    head = {"run": run.id, "stage": run.stage, "network": p.get("uploaded") or p.get("network", ""),
            "device": p.get("device", ""), "compensation": p.get("compensation", ""), "seeds": p.get("seeds", ""),
            "images": p.get("images") or "", "formats": formats(p.get("config_toml")),
            "metric": doc.get("metric", "accuracy") if run.stage != "synth" else "", "command": run.command}
    if run.stage == "eval":
        from cosim.report.plots import LABELS
        return [{**head, "quantity": key, "t_s": r["t"], "mean": r["mean"], "std": r["std"]}
                for key in LABELS for r in doc.get(key, [])]
    return [{**head, "quantity": label, "value": "" if value is None else value, "text": text}
            for label, value, text in key_figures(run.stage, doc)]
