"""Accuracy of a network on analog tiles with fp32 / fp16 / fixed post-processing, over seeds and drift times.

For each noise seed the tiles are programmed and calibrated once (:meth:`AnalogNetwork.build`),
then read at every drift time (:meth:`AnalogNetwork.at`); at each (seed, time) the same programmed
tiles, the same read noise and the same output-noise draws serve the three post-processors.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Sequence

import numpy as np

from ..analog.tiles import TileParams
from ..golden.config import NMPUConfig
from ..golden.datapath import ARITHS
from ..network.analog_network import AnalogNetwork
from ..workloads.metrics import agreement
from ..workloads.models import accuracy
from ..workloads.registry import Workload

#: the post-processors an evaluation compares, in the order of its table (the reference first)
POSTS = tuple(reversed(ARITHS))
DEFAULT_DRIFTS = (1.0, 3600.0, 86400.0, 31536000.0)
KEYS = {"fp32": "analog_fp32", "fp16": "analog_fp16", "fixed": "analog_fixed"}


def evaluate(work: Workload, config: NMPUConfig, *, drifts: Sequence[float] = DEFAULT_DRIFTS, seeds: int = 5,
             tile: TileParams | None = None, digital: Sequence[str] | None = None,
             mapping: Any = None, progress: Callable[[int], Any] | None = None) -> dict[str, Any]:
    """The metric's table (``work.metric``: accuracy, or a language model's perplexity) as a JSON-ready dict.

    ``progress`` is called with the number of images of each finished chunk: the whole evaluation
    runs ``seeds x len(drifts) x 3`` (post-processors) times the test images (see :func:`run_images`).

    Returns
    -------
    dict
        ``fp32_digital``, ``analog_fp32``, ``analog_fp16``, ``analog_fixed``: lists over ``drifts``
        of ``{"t", "mean", "std", "runs"}`` (the metric's value: accuracy in [0, 1], or perplexity; std over
        seeds, ddof 0; with a ``mapping`` (:class:`~nmpu_model.studies.mapping.Mapping`, its ``base`` the
        ``config`` and its digital layers ``digital``), ``analog_fixed`` runs every layer as the mapping says,
        the fp32/fp16 rows the same layers on tiles); ``metric`` (its name); ``config``
        (``config.to_dict()``); ``model``, ``images``, ``seeds``, ``layers`` (per analog layer
        ``out_frac`` and coefficient quantization error, seed 0, first drift time) and ``seconds``
        (time spent per post-processor, tiles included).
    """
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, not {seeds}")
    if not drifts:
        raise ValueError("drifts: at least one drift time is needed")
    tile = tile or work.tile_params(config.adc_bits, config.output.bits, config.output.signed)
    digital = work.digital if digital is None else digital
    metric = work.metric
    base = accuracy(work.model, work.x_test, work.y_test, metric=metric)
    accs = {p: np.zeros((len(drifts), seeds)) for p in POSTS}
    agree = np.zeros((len(drifts), seeds))
    secs = {p: 0.0 for p in POSTS}
    layers: dict[str, Any] = {}
    for s in range(seeds):
        net0 = AnalogNetwork.build(work.model, work.x_cal, seed=s, t=drifts[0], tile=tile, digital=digital)
        net0.require_tiles()
        for i, t in enumerate(drifts):
            net = net0 if i == 0 else net0.at(t)
            pred = {}
            for p in POSTS:
                t0 = time.perf_counter()
                per_layer = mapping.posts(net) if mapping is not None and p == "fixed" else None
                out, _ = net.run(work.x_test, config, p, per_layer=per_layer, batch_size=work.batch_size,
                                 progress=progress)
                secs[p] += time.perf_counter() - t0
                accs[p][i, s] = metric(out, work.y_test)
                pred[p] = out
            agree[i, s] = agreement(pred["fixed"], pred["fp16"])
            if s == 0 and i == 0:
                own = mapping.configs() if mapping is not None else {}
                layers = {n: {"out_frac": c.out_frac, **c.qerr} for n, c in
                          ((n, net.coefficients(own.get(n, config))[n]) for n in net.analog_layers)}
    res: dict[str, Any] = {"model": work.name, "metric": metric.name, "images": int(len(work.y_test)), "seeds": seeds,
                           "tiles": tile.describe_devices(), "fp32_digital": [{"t": float(t), "mean": base, "std": 0.0} for t in drifts]}
    for p in POSTS:
        res[KEYS[p]] = [{"t": float(t), "mean": float(accs[p][i].mean()), "std": float(accs[p][i].std()),
                         "runs": [float(a) for a in accs[p][i]]} for i, t in enumerate(drifts)]
    # a finer comparison than the metric: how often fixed and fp16 predict the same class (or next token)
    res["agreement_fixed_fp16"] = [{"t": float(t), "mean": float(agree[i].mean()), "std": float(agree[i].std())}
                                   for i, t in enumerate(drifts)]
    res["layers"] = layers
    res["seconds"] = secs
    res["config"] = config.to_dict()
    if mapping is not None:
        res["layer_mapping"] = mapping.to_dict()["layers"]
    return res


def run_images(work: Workload, seeds: int, drifts: Sequence[float]) -> int:
    """How many images :func:`evaluate` runs through the tiles (its progress total)."""
    return seeds * len(drifts) * len(POSTS) * int(len(work.x_test))


def parse_drifts(text: str, what: str = "--drift") -> list[float]:
    """``"1,3600"`` -> ``[1.0, 3600.0]``; a bad or negative time is a ValueError naming it (``what``: the option or
    field it came from)."""
    out = []
    for i, part in enumerate(text.split(",")):
        try:
            v = float(part)
        except ValueError:
            raise ValueError(f"{what}: item {i} {part.strip()!r} is not a number of seconds") from None
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"{what}: item {i} {part.strip()!r} must be a finite time >= 0 s")
        out.append(v)
    return out


def time_name(t: float) -> str:
    for unit, sec in (("y", 31536000.0), ("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if t >= sec and (t / sec).is_integer():
            return f"{int(t / sec)} {unit}"
    return f"{t:g} s"


def format_table(res: dict[str, Any]) -> str:
    """The table of :func:`evaluate` as text (accuracy in percent or perplexity, mean +- std over seeds)."""
    from ..workloads.metrics import METRICS
    metric = METRICS[res.get("metric", "accuracy")]
    ts = [e["t"] for e in res["fp32_digital"]]
    head = f"{'post-processing':22s}" + "".join(f"{'t = ' + time_name(t):>18s}" for t in ts)
    lines = [f"{res['model']}: {res['images']} test {metric.samples}, {res['seeds']} noise seed(s); {metric.label} "
             f"(mean +- std over seeds)" + (f"; tiles: {res['tiles']}" if res.get("tiles") else ""), head]
    rows = [("float model (digital)", "fp32_digital"), ("analog + fp32", "analog_fp32"),
            ("analog + fp16", "analog_fp16"),
            ("analog + mapping" if res.get("layer_mapping") else "analog + fixed NMPU", "analog_fixed")]
    for label, key in rows:
        lines.append(f"{label:22s}" + "".join(f"{metric.show(e['mean'], 11)} +-{metric.show(e['std'], 5)}"
                                              for e in res[key]))
    fixed = "mapping" if res.get("layer_mapping") else "fixed"
    if metric.percent:
        d = [100 * (f["mean"] - h["mean"]) for f, h in zip(res["analog_fixed"], res["analog_fp16"])]
        lines.append(f"{fixed + ' - fp16 (pp)':22s}" + "".join(f"{v:+18.2f}" for v in d))
    else:
        d = [100 * metric.loss(f["mean"], h["mean"]) for f, h in zip(res["analog_fixed"], res["analog_fp16"])]
        lines.append(f"{fixed + ' / fp16 - 1 (%)':22s}" + "".join(f"{v:+18.2f}" for v in d))
    if "agreement_fixed_fp16" in res:
        same = "same class fixed/fp16" if metric.percent else "same token fixed/fp16"
        lines.append(f"{same:22s}" + "".join(
            f"{100 * e['mean']:17.2f}%" for e in res["agreement_fixed_fp16"]))
    if res.get("layers"):
        lines.append("coefficient quantization (seed 0, first drift time): layer, out_frac, scale rel. error "
                     "max/mean, offset error max (output LSB), saturated coefficients")
        for name, q in res["layers"].items():
            lines.append(f"  {name:12s} out_frac {q['out_frac']:3d}  scale {100 * q['scale_rel_max']:6.2f}% / "
                         f"{100 * q['scale_rel_mean']:5.2f}%  offset {q['offset_abs_max']:.3f}  "
                         f"sat {int(q['saturated'])}")
    return "\n".join(lines)


def fixed_minus_fp32(work: Workload, config: NMPUConfig, *, seed: int = 0, t: float = 3600.0) -> dict[str, np.ndarray]:
    """Per analog layer, the fixed-point unit's output codes minus the fp32 unit's on the *same* ADC codes
    (one run of the network with the fixed unit, its tile outputs replayed through fp32): the error the
    fixed-point formats add, apart from the tiles' noise."""
    from ..network.analog_network import capture, replay

    net, _, trace = capture(work.model, work.x_test, work.x_cal, config, seed=seed, t=t, digital=work.digital)
    fp32 = replay(trace, net, config, "fp32")
    return {name: lt.out_codes - fp32[name] for name, lt in trace.items()}
