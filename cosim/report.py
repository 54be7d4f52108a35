"""Figures and the HTML rendering of the `nmpu run` report."""
from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

LABELS = {"fp32_digital": "float model (digital)", "analog_fp32": "analog + fp32", "analog_fp16": "analog + fp16",
          "analog_fixed": "analog + fixed NMPU"}


def drift_plot(ev: dict[str, Any], path: Path) -> Path:
    """Accuracy against drift time, mean and std over seeds, for the four post-processings."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for i, (key, label) in enumerate(LABELS.items()):
        rows = ev[key]
        t = np.array([r["t"] for r in rows]) * (1 + 0.04 * (i - 1.5))  # a small offset so error bars show
        ax.errorbar(t, [100 * r["mean"] for r in rows], yerr=[100 * r["std"] for r in rows], marker="o",
                    capsize=3, label=label, ls="--" if key == "fp32_digital" else "-")
    ax.set_xscale("log")
    ax.set_xlabel("drift time after programming (s)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{ev['model']}: {ev['images']} test images, {ev['seeds']} noise seeds", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
    for a in axes:
        a.tick_params(labelsize=8)
    fig.suptitle(f"{syn['lanes']} lane(s): FP16 / fixed area = {syn['area_ratio']:.2f}x", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown_to_html(md: str, title: str) -> str:
    """The small Markdown subset the report uses (headings, tables, images, code, lists, paragraphs)."""
    out, table, code = [], [], False

    def inline(s: str) -> str:
        s = html.escape(s)
        s = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", r'<img alt="\1" src="\2" style="max-width:100%">', s)
        s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
        return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", s)

    def flush_table() -> None:
        if not table:
            return
        rows = [r for r in table if not re.fullmatch(r"\|[\s:|-]+\|", r)]
        out.append("<table>")
        for i, r in enumerate(rows):
            cells = [c.strip() for c in r.strip("|").split("|")]
            tag = "th" if i == 0 else "td"
            out.append("<tr>" + "".join(f"<{tag}>{inline(c)}</{tag}>" for c in cells) + "</tr>")
        out.append("</table>")
        table.clear()

    for line in md.splitlines():
        if line.startswith("```"):
            flush_table()
            out.append("</pre>" if code else "<pre>")
            code = not code
            continue
        if code:
            out.append(html.escape(line))
            continue
        if line.startswith("|"):
            table.append(line)
            continue
        flush_table()
        m = re.match(r"(#+) (.*)", line)
        if m:
            n = len(m.group(1))
            out.append(f"<h{n}>{inline(m.group(2))}</h{n}>")
        elif line.startswith("- "):
            out.append(f"<li>{inline(line[2:])}</li>")
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
    flush_table()
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px;"
             "text-align:right}pre{background:#f4f4f4;padding:.5em;overflow:auto}code{background:#f4f4f4}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(out) + "\n</body></html>\n")
