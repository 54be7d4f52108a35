"""PNG figures for the precision study (matplotlib, headless)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def sweep_plot(points: list[dict[str, Any]], fields: list[str], fp16: tuple[float, float], path: str | Path,
               title: str) -> Path:
    """Accuracy against each grid field (others at their best value) with error bars and the fp16 line;
    with two fields, a heat map of the whole grid beside it."""
    path = Path(path)
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
            best.append(max(cand, key=lambda p: p["mean"]))
        ax.errorbar(range(len(xs)), [100 * p["mean"] for p in best], yerr=[100 * p["std"] for p in best],
                    marker="o", capsize=3, label="fixed-point NMPU")
        ax.axhline(100 * fp16[0], color="tab:red", ls="--", label=f"fp16 ({100 * fp16[0]:.2f}%)")
        ax.axhspan(100 * (fp16[0] - fp16[1]), 100 * (fp16[0] + fp16[1]), color="tab:red", alpha=0.1)
        ax.set_xticks(range(len(xs)), [str(x) for x in xs])
        ax.set_xlabel(f + (f"  (best over {', '.join(others)})" if others else ""))
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    if heat:
        f0, f1 = fields
        v0 = sorted({p["point"][f0] for p in points}, key=_sort_key)
        v1 = sorted({p["point"][f1] for p in points}, key=_sort_key)
        grid = np.full((len(v0), len(v1)), np.nan)
        for p in points:
            grid[v0.index(p["point"][f0]), v1.index(p["point"][f1])] = 100 * (p["mean"] - fp16[0])
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
        fig.colorbar(im, ax=ax, label="accuracy - fp16 (pp)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def layer_plot(ranking: list[dict[str, Any]], path: str | Path, title: str) -> Path:
    """Bar chart of the accuracy drop when one layer alone runs at the lowered precision."""
    path = Path(path)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(ranking) + 2), 3.6))
    names = [f"layer {r['layer']}" for r in ranking]
    drops = [100 * r["drop"] for r in ranking]
    errs = [100 * r["std"] for r in ranking]
    ax.bar(range(len(names)), drops, yerr=errs, capsize=3, color="tab:orange")
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_ylabel("accuracy drop vs reference (pp)")
    ax.axhline(0, color="k", lw=0.8)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _sort_key(v: Any) -> tuple:
    return (0, v) if isinstance(v, (int, float)) else (1, str(v))
