"""Every figure the commands and the `nmpu run` report draw (matplotlib PNG, headless)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402
import numpy as np  # noqa: E402

def _metric(name: str | None) -> Any:
    from nmpu_model.workloads.metrics import METRICS
    return METRICS[name or "accuracy"]


def _axis(metric: Any) -> tuple[float, str]:
    """The factor and the axis label of a metric's values: accuracy in percent, perplexity as it is."""
    return metric.scale, ("test accuracy (%)" if metric.percent else "test perplexity")


LABELS = {"fp32_digital": "float model (digital)", "analog_fp32": "analog + fp32", "analog_fp16": "analog + fp16",
          "analog_fixed": "analog + fixed NMPU"}


def drift_plot(ev: dict[str, Any], path: Path) -> Path:
    """The metric (accuracy, or perplexity) against drift time, mean and std over seeds, for the four post-processings."""
    k, ylabel = _axis(_metric(ev.get("metric")))
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for i, (key, label) in enumerate(LABELS.items()):
        rows = ev[key]
        t = np.array([r["t"] for r in rows]) * (1 + 0.04 * (i - 1.5))  # a small offset so error bars show
        ax.errorbar(t, [k * r["mean"] for r in rows], yerr=[k * r["std"] for r in rows], marker="o",
                    capsize=3, label=label, ls="--" if key == "fp32_digital" else "-")
    ax.set_xscale("log")
    ax.set_xlabel("drift time after programming (s)")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{ev['model']}: {ev['images']} test images, {ev['seeds']} noise seeds", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def compare_plot(runs: list[tuple[str, dict[str, Any]]], path: Any) -> Any:
    """The workbench's comparison: the metric against drift time, a colour per run and a line style per
    post-processing (mean over seeds; ``runs``: (label, ``nmpu eval --json`` document) pairs of one metric)."""
    k, ylabel = _axis(_metric(runs[0][1].get("metric")))
    styles = dict(zip(LABELS, ("--", ":", "-.", "-")))
    fig, ax = plt.subplots(figsize=(7.4, 3.8))
    for i, (name, ev) in enumerate(runs):
        for key, label in LABELS.items():
            rows = ev[key]
            ax.plot([max(r["t"], 1e-3) for r in rows], [k * r["mean"] for r in rows], ls=styles[key], marker="o",
                    ms=3, color=f"C{i}", label=f"{name}: {label}")
    ax.set_xscale("log")
    ax.set_xlabel("drift time after programming (s)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def figures_plot(runs: list[tuple[str, list[tuple[str, Any, str]]]], path: Any, title: str) -> Any:
    """The workbench's comparison of runs of one stage: a panel per key figure (its numeric ones), a bar per run
    (``runs``: (label, [(figure, value or None, text), ...]) pairs)."""
    labels = list(dict.fromkeys(f for _, figs in runs for f, v, _ in figs if v is not None))
    if not labels:
        fig, ax = plt.subplots(figsize=(4, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no numeric figures to compare", ha="center", va="center")
    else:
        cols = min(4, len(labels))
        rows = -(-len(labels) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols + 0.4, 2.3 * rows), squeeze=False)
        for ax, label in zip(axes.flat, labels):
            vals = [next((v for f, v, _ in figs if f == label), None) for _, figs in runs]
            names = [n for n, _ in runs]
            ax.bar(names, [v if v is not None else 0.0 for v in vals], color=[f"C{i}" for i in range(len(runs))])
            for i, (v, (_, figs)) in enumerate(zip(vals, runs)):
                text = next((t for f, _, t in figs if f == label), "–")
                ax.text(i, v if v is not None else 0.0, text, ha="center", va="bottom", fontsize=7)
            ax.set_title(label, fontsize=8)
            ax.tick_params(labelsize=7)
            ax.margins(y=0.15)
        for ax in list(axes.flat)[len(labels):]:
            ax.axis("off")
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def device_plot(doc: dict[str, Any], path: str | Path) -> Path:
    """``nmpu devices``: relative MVM error against drift time, a colour per device model, a line style per mapping."""
    styles = {"per_tile": ("-", "per-tile mapping"), "per_column": ("--", "per-column mapping"),
              "per_column_periphery": (":", "per-column + out noise, ADC")}
    fig, ax = plt.subplots(figsize=(8.6, 3.8))
    for i, (name, d) in enumerate(doc["devices"].items()):
        for key, (ls, label) in styles.items():
            rows = d[key]
            ax.plot([max(r["t"], 1e-3) for r in rows], [100 * r["error"] for r in rows], ls=ls, marker="o", ms=3,
                    color=f"C{i}", label=f"{name}, {label}")
    ax.set_xscale("log")
    ax.set_xlabel("drift time after programming (s)")
    ax.set_ylabel("relative MVM error (%)")
    ax.set_title(f"one {doc['size']} x {doc['size']} tile, {doc['compensation']} drift compensation", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def error_histograms(diffs: dict[str, np.ndarray], path: Path) -> Path:
    """Per layer: histogram of (fixed - fp32) output codes on the same ADC codes."""
    n = len(diffs)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.0), squeeze=False)
    for ax, (name, d) in zip(axes[0], diffs.items()):
        vals, counts = np.unique(d, return_counts=True)
        pct = 100 * counts / d.size
        ax.bar(vals, pct, color="tab:blue")
        for v, p in zip(vals, pct):
            ax.text(v, p, f"{p:.2g}%", ha="center", va="bottom", fontsize=8)
        ax.set_ylim(0, 110)
        ax.set_xlabel("fixed - fp32 (output LSB)")
        ax.set_title(f"layer {name}: {100 * np.mean(d == 0):.2f}% equal", fontsize=9)
        ax.set_xticks(vals)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("% of outputs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# the breakdown's blocks of both units, by what they do
_BLOCK_ROLE = {"affine": "multiply-add / FMA", "fma": "multiply-add / FMA", "bn": "batch norm",
               "bn_fma": "batch norm", "mid_round": "batch norm", "mid_fit": "batch norm",
               "out_q": "output quantizer", "(top)": "registers and control"}


def area_plot(syn: dict[str, Any], path: Path) -> Path:
    """Area and flip-flops of both units; the area bars stacked by block when ``syn`` has a breakdown."""
    fig, axes = plt.subplots(1, 2, figsize=(7.2, 3.4))
    units = ["fixed", "fp16"]
    names = ["fixed-point NMPU", "FP16 unit"]
    bd = syn.get("breakdown") or {}
    ax = axes[0]
    if all(bd.get(u) for u in units):
        roles = list(dict.fromkeys(_BLOCK_ROLE.get(r["block"], r["block"]) for u in units for r in bd[u]))
        bottom = [0.0, 0.0]
        for k, role in enumerate(roles):
            v = [sum(r["area"] for r in bd[u] if _BLOCK_ROLE.get(r["block"], r["block"]) == role) for u in units]
            ax.bar(names, v, bottom=bottom, label=role, color=f"C{k}")
            bottom = [b + x for b, x in zip(bottom, v)]
        ax.legend(fontsize=7, loc="upper left")
        ax.set_title("area by block (µm², sky130; blocks synthesized alone)", fontsize=8)
        tops = bottom
    else:
        tops = [syn[u]["area"] for u in units]
        ax.bar(names, tops, color=["tab:green", "tab:red"])
        ax.set_title("area (µm², sky130 cells)", fontsize=9)
    for i, u in enumerate(units):
        label = f"{syn[u]['area']:,.0f}" + (" flattened" if bd else "")
        ax.text(i, tops[i], label, ha="center", va="bottom", fontsize=8)
    v = [syn[u]["flip_flops"] for u in units]
    axes[1].bar(names, v, color=["tab:green", "tab:red"])
    for i, x in enumerate(v):
        axes[1].text(i, x, f"{x:,}", ha="center", va="bottom", fontsize=8)
    axes[1].set_title("flip-flops", fontsize=9)
    return _bar_pair_done(fig, axes, f"{syn['lanes']} lane(s): FP16 / fixed area = {syn['area_ratio']:.2f}x", path, 10)


def _bar_pair_done(fig: Any, axes: Any, title: str, path: Path, size: int) -> Path:
    """Small tick labels, the title, and the figure written to ``path`` (both units' two-panel figures)."""
    for a in axes:
        a.tick_params(labelsize=8)
    fig.suptitle(title, fontsize=size)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def ppa_plot(syn: dict[str, Any], path: Path) -> Path:
    """Both units in OSU 0.18 um: energy per value against area (lines of equal energy x area product), and
    the four figures side by side as FP16 / fixed ratios (how many times better the fixed unit is)."""
    units, names, colors = ["fixed", "fp16"], ["fixed-point NMPU", "FP16 unit"], ["tab:green", "tab:red"]
    if "timing" in syn.get("fp16_pipelined", {}):
        units, names, colors = units + ["fp16_pipelined"], names + ["FP16, 5-stage FMAs"], colors + ["tab:orange"]
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.6))
    ax = axes[0]
    area = [syn[u]["osu018"]["area"] for u in units]
    energy = [syn[u]["energy_pj_per_value"] for u in units]
    offsets = [((6, 4), "left"), ((8, -22), "left"), ((-8, 8), "right")]      # the FP16 points lie close
    for a, e, n, c, u, (off, ha) in zip(area, energy, names, colors, units, offsets):
        ax.scatter([a], [e], s=60, color=c, zorder=3)
        ax.annotate(f"{n}\n{syn[u]['timing']['fmax_mhz']:.0f} MHz", (a, e), textcoords="offset points",
                    xytext=off, fontsize=8, ha=ha)
    lo, hi = min(area) / 2, max(area) * 2
    xs = np.geomspace(lo, hi, 50)
    for k in (0.5, 1, 2, 4, 8, 16, 32):
        ax.plot(xs, area[0] * energy[0] * k / xs, color="0.85", lw=0.8, zorder=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(min(energy) / 3, max(energy) * 3)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if f"{v:.0e}"[0] in "25" else ""))
    ax.set_xlabel("area (µm², OSU 0.18 um, memories excluded)", fontsize=8)
    ax.set_ylabel("energy per value (pJ, at fmax)", fontsize=8)
    ax.set_title("lower left is better (grey: equal area x energy)", fontsize=8)
    q = syn["ppa"]
    labels = ["clock\n(fmax)", "energy\nper value", "area", "throughput\nper area"]
    vals = [q["fmax_ratio"], q["energy_ratio"], q["area_ratio"], q["throughput_per_area_ratio"]]
    axes[1].bar(labels, vals, color="tab:green")
    axes[1].axhline(1.0, color="0.3", lw=0.8)
    for i, v in enumerate(vals):
        axes[1].text(i, v, f"{v:.1f}x", ha="center", va="bottom", fontsize=8)
    axes[1].set_yscale("log")
    axes[1].yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    axes[1].yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}x" if f"{v:.0e}"[0] in "25" else ""))
    axes[1].set_title("fixed-point NMPU better than the FP16 unit by", fontsize=8)
    return _bar_pair_done(fig, axes, f"{syn['lanes']} lane(s), activity: {q['activity']} "
                          f"({q['stimulus'].split(' (')[0]})", path, 9)


def sweep_plot(points: list[dict[str, Any]], fields: list[str], fp16: tuple[float, float], path: str | Path,
               title: str, metric: str | None = None) -> Path:
    """The metric (accuracy, or perplexity) against each grid field (others at their best value) with error bars
    and the fp16 line; with two fields, a heat map of the whole grid (the loss against fp16) beside it."""
    path = Path(path)
    m = _metric(metric)
    k, ylabel = _axis(m)
    pick = max if m.higher_is_better else min
    n = len(fields)
    heat = n == 2
    fig, axes = plt.subplots(1, n + heat, figsize=(4.2 * (n + heat), 3.6), squeeze=False)
    axes = axes[0]
    for ax, f in zip(axes, fields):
        others = [g for g in fields if g != f]
        # for each value of f, the best point over the other fields: the accuracy f allows
        xs = sorted({p["point"][f] for p in points}, key=_sort_key)
        best = []
        for x in xs:
            cand = [p for p in points if p["point"][f] == x]
            best.append(pick(cand, key=lambda p: p["mean"]))
        ax.errorbar(range(len(xs)), [k * p["mean"] for p in best], yerr=[k * p["std"] for p in best],
                    marker="o", capsize=3, label="fixed-point NMPU")
        ax.axhline(k * fp16[0], color="tab:red", ls="--", label=f"fp16 ({m.show(fp16[0])}{m.suffix})")
        ax.axhspan(k * (fp16[0] - fp16[1]), k * (fp16[0] + fp16[1]), color="tab:red", alpha=0.1)
        ax.set_xticks(range(len(xs)), [str(x) for x in xs])
        ax.set_xlabel(f + (f"  (best over {', '.join(others)})" if others else ""))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right" if m.higher_is_better else "upper right")
    if heat:
        f0, f1 = fields
        v0 = sorted({p["point"][f0] for p in points}, key=_sort_key)
        v1 = sorted({p["point"][f1] for p in points}, key=_sort_key)
        grid = np.full((len(v0), len(v1)), np.nan)
        for p in points:
            grid[v0.index(p["point"][f0]), v1.index(p["point"][f1])] = -100 * m.loss(p["mean"], fp16[0])
        ax = axes[-1]
        lim = max(1e-9, float(np.nanmax(np.abs(grid))))
        im = ax.imshow(grid, cmap="RdBu", vmin=-lim, vmax=lim, origin="lower", aspect="auto")
        ax.set_xticks(range(len(v1)), [str(v) for v in v1])
        ax.set_yticks(range(len(v0)), [str(v) for v in v0])
        ax.set_xlabel(f1)
        ax.set_ylabel(f0)
        for i in range(len(v0)):
            for j in range(len(v1)):
                if not np.isnan(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:+.1f}", ha="center", va="center", fontsize=7)
        fig.colorbar(im, ax=ax, label="accuracy - fp16 (pp)" if m.percent else "perplexity better than fp16 by (%)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def layer_plot(ranking: list[dict[str, Any]], path: str | Path, title: str, metric: str | None = None) -> Path:
    """Bar chart of the metric's loss (accuracy drop, or perplexity rise) when one layer alone runs at the lowered
    precision."""
    path = Path(path)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(ranking) + 2), 3.6))
    names = [f"layer {r['layer']}" for r in ranking]
    drops = [100 * r["drop"] for r in ranking]
    errs = [100 * r["std"] for r in ranking]
    ax.bar(range(len(names)), drops, yerr=errs, capsize=3, color="tab:orange")
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_ylabel("accuracy drop vs reference (pp)" if _metric(metric).percent
                  else "perplexity rise vs reference (%)")
    ax.axhline(0, color="k", lw=0.8)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def profile_plot(profile: list[dict[str, Any]], path: str | Path, title: str, metric: str | None = None,
                 low_label: str = "lowered") -> Path:
    """The sensitivity profile: per layer (in network order, grouped and coloured by block) the metric's loss with
    that layer alone on tiles, at the base configuration and at the lowered one, with the spread over seeds."""
    path = Path(path)
    rows = sorted(profile, key=lambda r: r["order"]) if all("order" in r for r in profile) else profile
    blocks = list(dict.fromkeys(r["block"] for r in rows))
    colours = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(min(24.0, max(7.5, 0.32 * len(rows) + 2)), 4.4))
    x = np.arange(len(rows))
    for k, (key, alpha, label) in enumerate((("S", 1.0, "base configuration"), ("low_S", 0.45, low_label))):
        ax.bar(x + (k - 0.5) * 0.4, [100 * r[key] for r in rows], width=0.4, yerr=[100 * r[key + "_std"] for r in rows],
               capsize=2, alpha=alpha, color=[colours(blocks.index(r["block"]) % 10) for r in rows],
               edgecolor="k", linewidth=0.3, label=label)
    ax.set_xticks(x, [r["layer"] for r in rows], rotation=70, ha="right", fontsize=7)
    ax.set_ylabel("accuracy drop vs all-digital (pp)" if _metric(metric).percent
                  else "perplexity rise vs all-digital (%)")
    ax.set_yscale("symlog", linthresh=0.1)
    top = max([100 * (r[k] + r[k + "_std"]) for r in rows for k in ("S", "low_S")] + [0.1])
    low = min([100 * (r[k] - r[k + "_std"]) for r in rows for k in ("S", "low_S")] + [0.0])
    ax.set_ylim(2 * low if low < 0 else 0, 2 * top)
    ax.axhline(0, color="k", lw=0.8)
    ax.grid(axis="y", alpha=0.3)
    leg = ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    for h in leg.legend_handles:
        h.set_color("0.5")
    ax.set_title(title, fontsize=10, pad=20)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _sort_key(v: Any) -> tuple:
    return (0, v) if isinstance(v, (int, float)) else (1, str(v))


def plot_area_accuracy(rows: Iterable[dict[str, Any]], path: str | Path, fp16: dict[str, Any] | None = None) -> Path:
    """A PNG scatter plot of area proxy (x) against accuracy (y), one point per configuration.

    ``fp16`` (``{"area": ..., "mean": ...}``) adds the FP16 unit as a separate marker.
    """
    rows = [r for r in rows if r.get("area") is not None and r.get("mean") is not None]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.scatter([r["area"] for r in rows], [r["mean"] for r in rows], label="fixed-point NMPU", color="tab:blue",
               alpha=0.5)
    # name only the Pareto front (no other point is both smaller and at least as accurate): the rest is clutter
    front = [r for r in rows if not any(o["area"] < r["area"] and o["mean"] >= r["mean"] for o in rows)]
    ax.plot(*zip(*sorted((r["area"], r["mean"]) for r in front)), color="tab:blue", lw=1, label="Pareto front")
    for r in front:
        ax.annotate(r["label"], (r["area"], r["mean"]), fontsize=7, xytext=(4, -3), textcoords="offset points")
    if fp16 and fp16.get("area") is not None and fp16.get("mean") is not None:
        ax.scatter([fp16["area"]], [fp16["mean"]], marker="s", color="tab:red", label="FP16 unit")
    ax.set_xlabel("area: sky130_fd_sc_hd standard cells, µm² (memories excluded)")
    ax.set_ylabel("accuracy (mean over seeds)")
    ax.set_title("area vs accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def pareto_plot(rows: list[dict[str, Any]], path: str | Path, title: str, metric: str | None = None,
                cost_label: str = "periphery energy per inference (nJ)", cost_scale: float = 1e-3,
                tolerance: float | None = None, chosen: dict[str, Any] | None = None) -> Path:
    """The mapping search: every trial's periphery cost per inference (x) against the metric's loss vs the
    all-digital network (y), coloured by the fraction of MACs on tiles; the Pareto front ringed, the tolerance a
    dashed line, the chosen mapping a star."""
    path = Path(path)
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    x = np.array([r["cost"] * cost_scale for r in rows])
    y = np.array([100 * r["loss"] for r in rows])
    frac = np.array([r["mac_fraction"] for r in rows])
    sc = ax.scatter(x, y, c=frac, cmap="viridis", vmin=0, vmax=1, s=22, edgecolor="none", alpha=0.85)
    front = [i for i, r in enumerate(rows) if r.get("pareto")]
    ax.scatter(x[front], y[front], s=70, facecolor="none", edgecolor="k", linewidth=0.9, label="Pareto front")
    if chosen is not None:
        ax.scatter([chosen["cost"] * cost_scale], [100 * chosen["loss"]], marker="*", s=260, color="tab:red",
                   edgecolor="k", linewidth=0.6, zorder=5, label="chosen")
    if tolerance is not None:
        ax.axhline(tolerance, color="tab:red", ls="--", lw=0.9, label=f"tolerance {tolerance:g}")
    ax.set_xscale("symlog", linthresh=max(1e-3, float(np.min(x[x > 0])) if np.any(x > 0) else 1e-3))
    ax.set_xlim(left=0, right=2 * float(np.max(x)) if np.any(x > 0) else 1.0)
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_ylim(bottom=min(-0.05, 1.5 * float(np.min(y))), top=2 * max(1.0, float(np.max(y))))
    ax.set_xlabel(cost_label)
    ax.set_ylabel("accuracy drop vs all-digital (pp)" if _metric(metric).percent
                  else "perplexity rise vs all-digital (%)")
    fig.colorbar(sc, ax=ax, label="fraction of MACs on tiles")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
