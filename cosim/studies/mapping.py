"""The mapping search on a network: every layer digital, on tiles with the FP16 unit, or on tiles with a
fixed-point NMPU of one of a menu of formats; scored by the golden model's metric and by the periphery's cost per
inference with the units' measured figures (:mod:`cosim.studies.cost`), searched by
:func:`nmpu_model.studies.mapping.search`.

- :func:`all_layer_loads`: every layer's work per inference (vectors, K, C, tiles), measured once with every layer
  that can go on tiles on tiles.
- :func:`unit_peripheries`: the periphery of each choice (each fixed-point format, the FP16 unit), from
  ``nmpu synth``'s OSU 0.18 um flow on the network's layer, cached per configuration.
- :func:`scorer`: a batch of mappings -> their loss against the all-digital network (mean over seeds), periphery
  energy (or area) per inference, and fraction of the MACs on tiles.
- :func:`map_network`: anchors, the search, the Pareto front and the chosen mapping, as one JSON-ready document.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

from nmpu_model.golden.config import NMPUConfig
from nmpu_model.studies import mapping as mp
from nmpu_model.studies.sweep import Setup, mean_std, setup_workload

from . import cost as cm

#: the default menu of fixed-point formats: the base, and scale and offset at 4 and at 2 bits
DEFAULT_FORMATS: tuple[dict[str, Any], ...] = ({}, {"scale.bits": 4, "offset.bits": 4},
                                              {"scale.bits": 2, "offset.bits": 2})
OBJECTIVE_KEYS = {"energy": "energy_pj", "area": "area_um2"}


def all_layer_loads(setup: Setup, base: NMPUConfig, samples: int = 4) -> dict[str, cm.LayerLoad]:
    """Every layer that can go on tiles -> its :class:`~cosim.studies.cost.LayerLoad`, measured on the first
    ``samples`` test samples with all of them on tiles (seed 0, the setup's drift time)."""
    from nmpu_model.network.analog_network import AnalogNetwork
    work = setup_workload(setup)
    _, problem = mp.mappable_layers(setup)
    tile = work.tile_params(base.adc_bits, base.output.bits, base.output.signed)
    net = AnalogNetwork.build(work.model, work.x_cal, seed=0, t=setup.drift, tile=tile, digital=tuple(problem))
    return {ld.name: ld for ld in cm.layer_loads(net, work.x_test[:samples], base)}


def unit_peripheries(base: NMPUConfig, formats: Sequence[mp.Choice], work: Any, out: Path, *, samples: int,
                     units: int, fp16_units: int, notify: Callable[[str], None] | None = None,
                     digital: Sequence[str] = ("first", "last")) -> dict[str, cm.Periphery]:
    """Choice label -> its periphery: each fixed-point format's unit (``units`` per column tile) and the FP16 unit
    (``fp16_units``), measured by :func:`~cosim.studies.cost.cached_ppa_study` on the first analog layer of
    ``work``'s network placed with ``digital`` (default: the layer ``nmpu synth`` and ``nmpu cost`` measure on; the
    FP16 unit with the base configuration)."""
    from nmpu_model.network.analog_network import AnalogNetwork
    tile = work.tile_params(base.adc_bits, base.output.bits, base.output.signed)
    net = AnalogNetwork.build(work.model, work.x_cal, seed=0, t=3600.0, tile=tile, digital=tuple(digital))
    if not net.analog_layers:       # a network of one or two layers: every layer on tiles
        net = AnalogNetwork.build(work.model, work.x_cal, seed=0, t=3600.0, tile=tile, digital=())
    net.require_tiles()
    figs: dict[str, cm.Periphery] = {}
    for i, c in enumerate(formats):
        cfg = cm.layers_config(net, c.config(base))
        study = cm.cached_ppa_study(cfg, work, out, samples=samples, notify=notify, net=net,
                                    units=("fixed", "fp16") if i == 0 else ("fixed",))
        per = cm.periphery(study.units["fixed"], units)
        figs[c.label] = cm.Periphery(**{**asdict(per), "name": f"NMPU {c.label}"})
        if i == 0:
            figs["fp16"] = cm.periphery(study.units["fp16"], fp16_units)
    return figs


def mapping_cost(m: mp.Mapping, loads: dict[str, cm.LayerLoad], figures: dict[str, cm.Periphery],
                 mvm_ns: float = cm.MVM_NS, tile_cols: int = 256) -> tuple[cm.NetworkCost, float]:
    """The periphery's cost per inference of mapping ``m`` (its layers on tiles, each with its choice's unit) and
    the fraction of the mappable layers' MACs on tiles."""
    on = [n for n, c in m.layers if c.unit != "digital"]
    cost = cm.mapping_cost([loads[n] for n in on], {n: figures[m.choices[n].label] for n in on}, mvm_ns, tile_cols)
    total = sum(ld.macs for ld in loads.values())
    return cost, sum(loads[n].macs for n in on) / total


def scorer(setup: Setup, base: NMPUConfig, loads: dict[str, cm.LayerLoad], figures: dict[str, cm.Periphery], *,
           seeds: int, objective: str = "energy", mvm_ns: float = cm.MVM_NS, tile_cols: int = 256,
           workers: int | None = None, scheduler: str | None = None,
           client: Any = None) -> Callable[[list[dict[str, str]]], list[mp.Scored]]:
    """The score of a batch of mappings (parameter dicts layer -> choice label) for :func:`~nmpu_model.studies.
    mapping.search`: the metric's loss against the all-digital network (mean over ``seeds``), the periphery's
    ``objective`` (``energy``: pJ, ``area``: um^2) per inference, the fraction of MACs on tiles."""
    from nmpu_model.workloads.models import accuracy
    if objective not in OBJECTIVE_KEYS:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVE_KEYS)}, not {objective!r}")
    work = setup_workload(setup)
    metric = work.metric
    digital = accuracy(work.model, work.x_test, work.y_test, metric=metric)
    names = list(loads)

    def score(batch: list[dict[str, str]]) -> list[mp.Scored]:
        maps = [mp.Mapping.of(base, {n: mp.Choice.parse(p[n]) for n in names}) for p in batch]
        runs = mp.evaluate_mappings(maps, setup, seeds, workers=workers, scheduler=scheduler, progress=False,
                                    client=client)
        out = []
        for m, r in zip(maps, runs):
            c, frac = mapping_cost(m, loads, figures, mvm_ns, tile_cols)
            mean, std = mean_std(r)
            figs = {"energy_pj": c.energy_pj, "area_um2": c.area_um2, "time_ns": c.t_ns, "keeps_up": c.keeps_up}
            out.append(mp.Scored(metric.loss(mean, digital), figs[OBJECTIVE_KEYS[objective]], frac,
                                 {"mean": mean, "std": std, "runs": r, **figs}))
        return out

    score.digital = digital          # type: ignore[attr-defined]
    return score


def anchors(names: Sequence[str], labels: Sequence[str], ranking: Sequence[str] = ()) -> list[dict[str, str]]:
    """Starting mappings of a search: every layer at each choice on tiles (each format, the FP16 unit); and, from a
    sensitivity ``ranking`` (most sensitive first), the ``k`` most sensitive layers digital and the rest at one
    format, for every ``k`` and every format (LionHeart's greedy mapping, by sensitivity)."""
    on = [l for l in labels if l != "digital"]
    out = [{n: l for n in names} for l in on]
    for fmt in (l for l in labels if l.startswith("fixed")):
        for k in range(1, len(ranking)):
            top = set(ranking[:k])
            out.append({n: "digital" if n in top else fmt for n in names})
    seen, uniq = set(), []
    for a in out:
        key = tuple(sorted(a.items()))
        if key not in seen:
            seen.add(key)
            uniq.append(a)
    return uniq


def mapping_space(names: Sequence[str], formats: Sequence[mp.Choice],
                  forced_digital: Sequence[str] = ()) -> tuple[list[str], dict[str, list[str]]]:
    """The choices' labels and the search space: layer -> its labels (``digital`` only for ``forced_digital``);
    a forced name that is no such layer, or every layer forced, is refused in one line."""
    labels = ["digital", "fp16", *(c.label for c in formats)]
    unknown = [n for n in forced_digital if n not in names]
    if unknown:
        raise ValueError(f"--digital: {unknown[0]!r} is not a layer that can go on tiles ({', '.join(names)})")
    space = {n: (["digital"] if n in forced_digital else labels) for n in names}
    if all(v == ["digital"] for v in space.values()):
        raise ValueError("every layer is kept digital (--digital): nothing to map onto tiles")
    return labels, space


def map_network(setup: Setup, base: NMPUConfig, formats: Sequence[mp.Choice], figures: dict[str, cm.Periphery],
                loads: dict[str, cm.LayerLoad], *, seeds: int = 2, trials: int = 64, batch: int = 16,
                tolerance: float = 1.0, objective: str = "energy", forced_digital: Sequence[str] = (),
                ranking: Sequence[str] = (), storage: str | None = None, seed: int = 0, mvm_ns: float = cm.MVM_NS,
                tile_cols: int = 256, workers: int | None = None, scheduler: str | None = None,
                progress: Callable[[int], Any] | None = None) -> dict[str, Any]:
    """Search the mappings of ``setup``'s network (every layer of ``loads``: digital, fp16, or each format; those in
    ``forced_digital``: digital only) for the Pareto front of loss, ``objective`` and MACs on tiles; choose the one
    within ``tolerance`` (:func:`~nmpu_model.studies.mapping.choose`). Returns the JSON-ready document (``rows``:
    every trial, ``chosen``: its row and ``mapping``)."""
    labels, space = mapping_space(list(loads), formats, forced_digital)
    names = list(space)
    from nmpu_model.studies.sweep import dask_client
    identity = {"setup": setup.identity(), "base": base.identity(), "seeds": seeds, "space": space,
                "objective": objective, "tolerance": tolerance, "mvm_ns": mvm_ns, "tile_cols": tile_cols,
                "figures": {k: asdict(v) for k, v in sorted(figures.items())},
                "loads": {k: asdict(v) for k, v in loads.items()}}
    name = mp.study_name(identity)
    starts = [{n: (a[n] if a[n] in space[n] else "digital") for n in names}
              for a in anchors(names, labels, [r for r in ranking if r in names])]
    with dask_client(workers, scheduler) as client:     # one cluster for every batch: its workers keep their tiles
        score = scorer(setup, base, loads, figures, seeds=seeds, objective=objective, mvm_ns=mvm_ns,
                       tile_cols=tile_cols, workers=workers, scheduler=scheduler, client=client)
        study = mp.search(space, score, trials=trials, storage=storage, name=name, batch=batch, seed=seed,
                          tolerance=tolerance, anchors=starts, progress=progress)
    rows = mp.trial_rows(study)
    chosen = mp.choose(rows, tolerance)
    metric = setup_workload(setup).metric
    doc: dict[str, Any] = {
        "metric": metric.name, "digital_metric": score.digital, "tolerance": tolerance,  # type: ignore[attr-defined]
        "tolerance_unit": metric.loss_unit, "objective": objective, "objective_key": OBJECTIVE_KEYS[objective],
        "seeds": seeds, "trials": len(rows), "space_size": mp.space_size(space),
        "sampler": "every mapping" if mp.space_size(space) <= trials else "NSGA-II",
        "study": name, "storage": storage, "base": base.to_dict(), "labels": labels,
        "figures": {k: asdict(v) for k, v in figures.items()}, "loads": {k: asdict(v) for k, v in loads.items()},
        "mvm_ns": mvm_ns, "rows": rows, "chosen": chosen,
        "definition": "loss: the metric's loss against the all-digital network (mean over seeds); cost: the periphery's "
                      f"{objective} per inference (docs/mapping.md); mac_fraction: the MACs of the layers on tiles over "
                      "those of every layer that can go on tiles; chosen: within the tolerance, the most MACs on "
                      "tiles, then the lowest cost, then the lowest loss"}
    if chosen is not None:
        doc["mapping"] = mp.Mapping.of(base, {n: mp.Choice.parse(chosen["params"][n]) for n in names}).to_dict()
    return doc
