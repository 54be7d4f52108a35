"""Precision study: accuracy over a grid of NMPU configurations, and per-layer sensitivity.

Grid points and seeds are independent tasks, run on Dask (``dask.distributed``): a ``LocalCluster``
on this machine's cores by default, or an existing cluster given by its scheduler address. The
analog tiles of one seed (programmed conductances, drift, ADC mismatch) are prepared once per seed as
a task of their own and shared by every grid point of that seed. Each task fixes torch to one thread,
so a result is the same bits whatever the number of workers. Finished tasks are written to the
results JSON as they arrive, and a sweep started again with the same file skips them.

Grid files (TOML)::

    [grid]
    "scale.bits" = [3, 4, 5, 6, 7, 8]
    "offset.bits" = [3, 4, 5, 6]

Rule for ``bits``: when a point sets ``F.bits`` but not ``F.frac``, ``F.frac`` moves with it so that
the integer bits (``bits - frac``) stay those of the base configuration: fewer bits means a coarser
step over the same range, which is what a precision study asks. For ``output`` the allowed
``out_frac`` range moves along. Set ``F.frac`` in the grid too to choose otherwise.
"""
from __future__ import annotations

import itertools
import json
import math
import os
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..files import read_document
from ..golden.config import NMPUConfig, set_field
from ..golden.formats import ConfigError

DEFAULT_GRID = {"scale.bits": [1, 2, 3, 4, 6, 8], "offset.bits": [1, 2, 3, 4, 6, 8]}
_MOVING = ("scale", "offset", "bn_scale", "bn_offset", "mid", "output")


# ---- grid ------------------------------------------------------------------------------------------
def load_grid(path: str | Path | None) -> dict[str, list]:
    """Read ``[grid]`` from a TOML file (``None``: :data:`DEFAULT_GRID`); every value a non-empty list."""
    if path is None:
        return dict(DEFAULT_GRID)
    p = Path(path)
    data = read_document(p, "TOML")
    grid = data.get("grid")
    if not isinstance(grid, dict) or not grid:
        raise ValueError(f"{p}: expected a non-empty [grid] table of field = [values]")
    for k, v in grid.items():
        if not isinstance(v, list) or not v:
            raise ValueError(f"{p}: grid field {k!r} must be a non-empty list, not {v!r}")
    return grid


def grid_points(grid: dict[str, list]) -> list[dict[str, Any]]:
    """The Cartesian product of the grid, in a stable order (first field slowest)."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def point_config(base: NMPUConfig, point: dict[str, Any]) -> NMPUConfig:
    """The configuration of one grid point (see the module's rule for ``bits``); raises ``ConfigError``."""
    cfg = base
    for key, value in point.items():
        table, _, name = key.rpartition(".")
        if name == "bits" and table in _MOVING and f"{table}.frac" not in point:
            old = getattr(cfg, table)
            if old is None:
                raise ConfigError(f"grid field {key!r}: [{table}] is not in the base configuration")
            delta = int(value) - old.bits
            d = cfg.to_dict()
            d[table]["bits"] = int(value)
            d[table]["frac"] = old.frac + delta
            if table == "output":
                d["output"]["frac_min"] += delta
                d["output"]["frac_max"] += delta
            cfg = NMPUConfig.from_dict(d, source=base.source)
        else:
            cfg = set_field(cfg, key, value)
    return cfg


def cost_bits(config: NMPUConfig) -> int:
    """The documented cost of a configuration: total bits of the per-column coefficients and the
    requantized values (scale + offset [+ bn_scale + bn_offset + mid] + output)."""
    parts = [config.scale, config.offset, config.output]
    if config.bn_stage:
        parts += [config.bn_scale, config.bn_offset, config.mid]
    return sum(f.bits for f in parts)


def choose_point(points: list[dict[str, Any]], tolerance: float, higher_is_better: bool = True) -> dict[str, Any] | None:
    """The point a precision study recommends: of the points whose loss against fp16 (``drop_vs_fp16``, a
    fraction: accuracy lost, or the perplexity's relative rise; :meth:`Metric.loss`) is at most ``tolerance``
    percent (percentage points of accuracy, or percent of fp16's perplexity), the cheapest by ``cost_bits``, the
    better-scoring of equally cheap ones, the first listed of equal ones; ``None`` when no point is within."""
    ok = [q for q in points if q["drop_vs_fp16"] <= tolerance / 100]
    sign = -1 if higher_is_better else 1
    return min(ok, key=lambda q: (q["cost_bits"], sign * q["mean"])) if ok else None


def point_key(point: dict[str, Any]) -> str:
    return json.dumps(point, sort_keys=True)


# ---- execution -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    """One accuracy evaluation: a grid point (or a per-layer variant) on one seed."""

    key: str        # stable identity, also the key in the results JSON
    seed: int
    spec: Any       # what the evaluation function needs (picklable)
    prep: Any = None  # what the shared preparation depends on (default: the seed alone)

    @property
    def prep_key(self) -> Any:
        return self.seed if self.prep is None else self.prep


def _one_thread_call(fn: Callable, *args: Any) -> Any:
    """Call with torch on one thread (float sums then do not depend on the worker), restoring it after."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn(*args)
    finally:
        torch.set_num_threads(n)


def _prepare(prepare: Callable[[Any], Any], key: Any) -> Any:
    return _one_thread_call(prepare, key)


def _evaluate(evaluate: Callable[[Any, Any], float], prepared: Any, spec: Any) -> float:
    return float(_one_thread_call(evaluate, prepared, spec))


@contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """The Dask client of :func:`run_tasks` for the ``with`` block: ``None`` for ``workers=0`` without a scheduler
    (in-process), a client of the cluster at ``scheduler``, or of a ``LocalCluster`` of ``workers`` single-threaded
    worker processes (default: the machine's cores), closed at the end. A study of many batches (the mapping
    search) opens it once: its workers keep their prepared tiles between batches."""
    if workers == 0 and scheduler is None:
        yield None
        return
    import dask
    from dask.distributed import Client, LocalCluster
    cluster = None
    if scheduler is None:
        # Dask's default MALLOC_TRIM_THRESHOLD_ for workers turns off glibc's adaptive mmap threshold,
        # so every large numpy temporary is mmapped and faulted in again: measured 10x slower here.
        # The workers' statistical profiler samples every stack each 10 ms: turned off, tasks run ~20% faster.
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                              "distributed.worker.profile.enabled": False}):
            cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                                   processes=True, dashboard_address=None)
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout="10s")
        except OSError as e:
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_tasks(tasks: list[Task], prepare: Callable[[int], Any], evaluate: Callable[[Any, Any], float], *,
              workers: int | None = None, scheduler: str | None = None, done: dict[str, dict] | None = None,
              on_result: Callable[[Task, float], None] | None = None, progress: bool = True,
              client: Any = None) -> dict[tuple[str, int], float]:
    """Run every task not already in ``done`` and return ``{(key, seed): accuracy}`` for all of them.

    ``workers=0`` runs in this process, without Dask (the serial reference). Otherwise a
    ``LocalCluster`` with ``workers`` single-threaded worker processes (default: the machine's
    cores) is started, or the tasks go to the cluster at ``scheduler`` (``tcp://HOST:PORT``); or to ``client``
    (:func:`dask_client`, left open). ``prepare(task.prep_key)`` runs once per distinct key (the seed, unless the
    task says otherwise), its result shared by the tasks that name it.
    """
    from tqdm import tqdm

    results: dict[tuple[str, int], float] = {}
    done = done or {}
    todo = []
    for t in tasks:
        prev = done.get(t.key, {}).get(str(t.seed))
        if prev is not None:
            results[(t.key, t.seed)] = float(prev)
        else:
            todo.append(t)
    bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc="sweep", unit="task",
               disable=not progress or None, leave=False)

    def finished(t: Task, acc: float) -> None:
        results[(t.key, t.seed)] = acc
        if on_result:
            on_result(t, acc)
        bar.update()

    try:
        if not todo:
            return results
        if client is None:
            with dask_client(workers, scheduler) as own:
                _run(todo, prepare, evaluate, own, finished)
        else:
            _run(todo, prepare, evaluate, client, finished)
        return results
    finally:
        bar.close()


def _run(todo: list[Task], prepare: Callable, evaluate: Callable, client: Any,
         finished: Callable[[Task, float], None]) -> None:
    """The tasks in this process (``client`` None) or on the client's cluster, each result to ``finished``."""
    if client is None:
        prepared: dict[Any, Any] = {}
        for t in todo:
            if t.prep_key not in prepared:
                prepared[t.prep_key] = _prepare(prepare, t.prep_key)
            finished(t, _evaluate(evaluate, prepared[t.prep_key], t.spec))
        return
    from dask.distributed import as_completed
    keys = list(dict.fromkeys(t.prep_key for t in todo))
    prepared_f = {k: client.submit(_prepare, prepare, k, pure=False) for k in keys}
    futures = {client.submit(_evaluate, evaluate, prepared_f[t.prep_key], t.spec, pure=False): t for t in todo}
    for fut in as_completed(futures):
        finished(futures[fut], fut.result())


class ResultsFile:
    """The sweep's JSON, rewritten atomically after every finished task so that an interrupted sweep resumes."""

    def __init__(self, path: str | Path | None, meta: dict[str, Any]):
        self.path = Path(path) if path else None
        self.meta = meta
        self.raw: dict[str, dict[str, float]] = {}
        if self.path and self.path.exists():
            try:
                old = json.loads(self.path.read_text())
            except json.JSONDecodeError as e:
                raise ValueError(f"{self.path}: cannot resume, not valid JSON: {e}") from None
            if old.get("meta", {}).get("identity") != meta.get("identity"):
                raise ValueError(f"{self.path}: holds a different sweep (model, config, grid, drift or seeds differ); "
                                 f"remove it or choose another --json file")
            self.raw = old.get("raw", {})

    def add(self, task: Task, acc: float) -> None:
        self.raw.setdefault(task.key, {})[str(task.seed)] = acc
        self.write()

    def write(self, summary: dict[str, Any] | None = None) -> None:
        if not self.path:
            return
        doc = {"meta": self.meta, "raw": self.raw}
        if summary:
            doc.update(summary)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=False))
        os.replace(tmp, self.path)


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    v = list(values)
    m = sum(v) / len(v)
    return m, math.sqrt(sum((x - m) ** 2 for x in v) / len(v))


# ---- the study on a network ---------------------------------------------------------------------
@dataclass(frozen=True)
class Setup:
    """What every task of a sweep shares: the workload and the drift time (picklable, small)."""

    model: str = "digits-cnn"
    data: str | None = None
    images: int | None = None
    drift: float = 3600.0
    digital: tuple[str, ...] = ("first", "last")
    device: str = "pcm"
    compensation: str = "global"

    def identity(self) -> dict[str, Any]:
        ident: dict[str, Any] = {"model": self.model, "data": self.data, "images": self.images, "drift": self.drift}
        if self.digital != ("first", "last"):
            ident["digital"] = list(self.digital)
        if (self.device, self.compensation) != ("pcm", "global"):   # the defaults: files of earlier versions resume
            ident.update(device=self.device, compensation=self.compensation)
        return ident


_WORK_CACHE: dict[Setup, Any] = {}


def setup_workload(setup: Setup) -> Any:
    """The trained model and its data of ``setup`` (:func:`~nmpu_model.workloads.registry.load_workload`),
    once per process."""
    if setup not in _WORK_CACHE:
        from ..workloads.registry import load_workload
        _WORK_CACHE[setup] = load_workload(setup.model, setup.data, setup.images, digital=setup.digital,
                                           device=setup.device, compensation=setup.compensation)
    return _WORK_CACHE[setup]


_TILES: "OrderedDict[tuple, Any]" = OrderedDict()
_TILES_KEPT = 4


def prepare_tiles(setup: Setup, key: tuple[int, int, int, bool]) -> Any:
    """Program and calibrate the tiles of one seed (for one ADC/DAC width), read at the setup's drift time. The last
    few are kept per process (a worker of a study of many batches builds each placement once)."""
    from ..network.analog_network import AnalogNetwork
    if (setup, key) in _TILES:
        _TILES.move_to_end((setup, key))
        return _TILES[(setup, key)]
    seed, adc_bits, dac_bits, dac_signed = key[:4]
    work = setup_workload(setup)
    digital = key[4] if len(key) > 4 else work.digital
    net = AnalogNetwork.build(work.model, work.x_cal, seed=seed, t=setup.drift, digital=digital,
                              tile=work.tile_params(adc_bits, dac_bits, dac_signed))
    _TILES[(setup, key)] = net
    while len(_TILES) > _TILES_KEPT:
        _TILES.popitem(last=False)
    return net


class _LayerPost:
    """A post-processor for one layer with coefficients of another configuration (picklable)."""

    def __init__(self, coeffs: Any):
        self.coeffs = coeffs
        self.__name__ = "fixed@" + coeffs.config.identity()

    def __call__(self, x: Any, _codes: Any, _out_frac: int) -> Any:
        from ..network.analog_network import postprocess
        return postprocess(x, self.coeffs, "fixed")


def evaluate_spec(setup: Setup, net: Any, spec: dict[str, Any]) -> float:
    """The workload's metric (accuracy, or perplexity) of one task.

    ``spec``: ``{"config": NMPUConfig, "post": "fixed"|"fp16", "layer_configs": {layer: NMPUConfig},
    "fp16_layers": [...]}``: a layer in ``layer_configs`` runs the fixed-point unit with its own configuration
    (a layer without ReLU with the stage off, as :meth:`AnalogNetwork.coefficients` does), a layer in
    ``fp16_layers`` the fp16 unit, the rest ``post`` with ``config``.
    """
    work = setup_workload(setup)
    per_layer = layer_posts(net, spec.get("layer_configs", {}), spec.get("fp16_layers", ()))
    out, _ = net.run(work.x_test, spec["config"], spec.get("post", "fixed"), per_layer=per_layer)
    return work.metric(out, work.y_test)


def layer_posts(net: Any, layer_configs: dict[str, NMPUConfig], fp16_layers: Iterable[str] = ()) -> dict[str, Any]:
    """The ``per_layer`` post-processors of :meth:`AnalogNetwork.run` for layers with their own fixed-point
    configuration and layers on the fp16 unit."""
    per_layer: dict[str, Any] = {name: _LayerPost(net.coefficients(cfg)[name]) for name, cfg in layer_configs.items()}
    per_layer.update({name: "fp16" for name in fp16_layers})
    return per_layer


def _prep_key(seed: int, config: NMPUConfig, digital: tuple[str, ...] | None = None) -> tuple:
    """The tiles depend on the ADC width and on the DAC that the output format drives; and on which layers are
    digital (``digital``: the names, or None for the setup's placement)."""
    key: tuple = (seed, config.adc_bits, config.output.bits, config.output.signed)
    return key if digital is None else key + (digital,)


def _summarize(raw: dict[tuple[str, int], float], key: str, seeds: list[int]) -> tuple[float, float]:
    return mean_std(raw[(key, s)] for s in seeds)


def precision_sweep(base: NMPUConfig, grid: dict[str, list], setup: Setup, seeds: int = 3, *,
                    tolerance: float = 0.2, workers: int | None = None, scheduler: str | None = None,
                    results: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """The workload's metric (accuracy, or perplexity) of every grid point (mean and std over ``seeds``) and its
    loss against fp16 (:meth:`~nmpu_model.workloads.metrics.Metric.loss`).

    The fp16 baseline (the base configuration's formats do not matter to it) is evaluated once per
    seed. The cheapest point within ``tolerance`` (percentage points of accuracy, or percent of fp16's
    perplexity) of fp16, by :func:`cost_bits`, is reported as ``chosen``. Returns the JSON-ready summary (also
    written to ``results``).
    """
    pts = grid_points(grid)
    configs = []
    for p in pts:
        try:
            configs.append(point_config(base, p))
        except ConfigError as e:
            raise ValueError(f"grid point {point_key(p)}: {e}") from None
    seed_list = list(range(seeds))
    tasks = [Task("fp16", s, {"config": base, "post": "fp16"}, _prep_key(s, base)) for s in seed_list]
    tasks += [Task(point_key(p), s, {"config": c, "post": "fixed"}, _prep_key(s, c))
              for p, c in zip(pts, configs) for s in seed_list]
    meta = {"kind": "grid", "grid": grid, "seeds": seeds, "base": base.to_dict(), **setup.identity()}
    meta["identity"] = json.dumps({k: v for k, v in meta.items()}, sort_keys=True)
    rf = ResultsFile(results, meta)
    # train (or load) once here, before workers start, and refuse a network with nothing on tiles
    from ..network.analog_network import check_on_tiles
    work = setup_workload(setup)
    check_on_tiles(work.model, work.x_cal, work.digital)
    raw = run_tasks(tasks, partial(prepare_tiles, setup), partial(evaluate_spec, setup), workers=workers,
                    scheduler=scheduler, done=rf.raw, on_result=rf.add, progress=progress)
    metric = work.metric
    fp16 = _summarize(raw, "fp16", seed_list)
    points = []
    for p, c in zip(pts, configs):
        m, sd = _summarize(raw, point_key(p), seed_list)
        points.append({"point": p, "mean": m, "std": sd, "drop_vs_fp16": metric.loss(m, fp16[0]),
                       "cost_bits": cost_bits(c), "runs": [raw[(point_key(p), s)] for s in seed_list]})
    chosen = choose_point(points, tolerance, metric.higher_is_better)
    summary = {"metric": metric.name,
               "fp16": {"mean": fp16[0], "std": fp16[1], "runs": [raw[("fp16", s)] for s in seed_list]},
               "points": points, "tolerance_pp": tolerance, "tolerance_unit": metric.loss_unit,
               "cost": "total bits: scale+offset+output(+bn_scale+bn_offset+mid)", "chosen": chosen}
    rf.write(summary)
    return {"meta": meta, **summary}


def layer_sensitivity(base: NMPUConfig, low: NMPUConfig, setup: Setup, seeds: int = 3, *, keep_fp16: int = 1,
                      workers: int | None = None, scheduler: str | None = None, results: str | Path | None = None,
                      progress: bool = True) -> dict[str, Any]:
    """Lower one layer at a time to ``low`` (others at ``base``) and rank the layers by the loss of the workload's
    metric (:meth:`~nmpu_model.workloads.metrics.Metric.loss`: accuracy lost, or the perplexity's relative rise);
    then run every layer at ``low`` except the ``keep_fp16`` most sensitive, which go to fp16
    (a heterogeneous mapping), and report what that recovers (in the same units)."""
    seed_list = list(range(seeds))
    net0 = prepare_tiles(setup, _prep_key(0, base))
    net0.require_tiles()
    layers = net0.analog_layers
    if not 0 <= keep_fp16 <= len(layers):
        raise ValueError(f"keep_fp16 must be between 0 and {len(layers)} (the analog layers), not {keep_fp16}")
    if _prep_key(0, low) != _prep_key(0, base):
        raise ValueError("per-layer study: the lowered configuration must keep adc_bits and the output format's "
                         "bits and signedness (they are properties of the tiles)")
    meta = {"kind": "per-layer", "seeds": seeds, "base": base.to_dict(), "low": low.to_dict(),
            "keep_fp16": keep_fp16, **setup.identity()}
    meta["identity"] = json.dumps(meta, sort_keys=True)
    rf = ResultsFile(results, meta)

    def spec(low_layers, fp16_layers=()):
        return {"config": base, "post": "fixed", "layer_configs": {name: low for name in low_layers},
                "fp16_layers": list(fp16_layers)}

    tasks = [Task("reference", s, spec([]), _prep_key(s, base)) for s in seed_list]
    tasks += [Task("all_low", s, spec(layers), _prep_key(s, base)) for s in seed_list]
    tasks += [Task(f"low:{name}", s, spec([name]), _prep_key(s, base)) for name in layers for s in seed_list]
    run = partial(run_tasks, prepare=partial(prepare_tiles, setup), evaluate=partial(evaluate_spec, setup),
                  workers=workers, scheduler=scheduler, on_result=rf.add, progress=progress)
    raw = run(tasks, done=rf.raw)
    metric = setup_workload(setup).metric
    ref = _summarize(raw, "reference", seed_list)
    ranking = []
    for name in layers:
        m, sd = _summarize(raw, f"low:{name}", seed_list)
        ranking.append({"layer": name, "mean": m, "std": sd, "drop": metric.loss(m, ref[0])})
    ranking.sort(key=lambda r: -r["drop"])
    keep = [r["layer"] for r in ranking[:keep_fp16]]
    rest = [n for n in layers if n not in keep]
    hetero = [Task("hetero", s, spec(rest, keep), _prep_key(s, base)) for s in seed_list]
    raw.update(run(hetero, done=rf.raw))
    all_low = _summarize(raw, "all_low", seed_list)
    het = _summarize(raw, "hetero", seed_list)
    summary = {"metric": metric.name, "reference": {"mean": ref[0], "std": ref[1]}, "ranking": ranking,
               "all_low": {"mean": all_low[0], "std": all_low[1]},
               "hetero": {"fp16_layers": keep, "mean": het[0], "std": het[1],
                          "recovered": metric.loss(all_low[0], ref[0]) - metric.loss(het[0], ref[0])}}
    rf.write(summary)
    return {"meta": meta, **summary}


def block_of(name: str) -> str:
    """The block a layer belongs to, for grouping a profile: its name's first part, with the next part when that is
    an index (``blocks.0.attn.c_attn`` -> ``blocks.0``, ``layer1.0.conv2`` -> ``layer1.0``,
    ``layer2.downsample.0`` -> ``layer2``, ``lm_head`` -> ``lm_head``)."""
    parts = name.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 and parts[1].isdigit() else parts[0]


def alone_sensitivity(base: NMPUConfig, low: NMPUConfig, setup: Setup, seeds: int = 3, *,
                      workers: int | None = None, scheduler: str | None = None, results: str | Path | None = None,
                      progress: bool = True) -> dict[str, Any]:
    """The precision-sensitivity profile: for every layer ``p`` that can go on tiles, the network with ``p``
    **alone** on tiles (its fixed-point NMPU at ``base``, every other layer digital in float32), and again
    with ``p``'s NMPU at ``low``; ``S(p)`` = the metric's loss against the all-digital network
    (:meth:`~nmpu_model.workloads.metrics.Metric.loss`: accuracy points lost, or the perplexity's relative
    rise), mean and std over ``seeds`` (each seed programs and calibrates ``p``'s tiles anew) at the setup's
    drift time. Layers ranked by ``S`` at ``base``; ``block`` groups them (:func:`block_of`)."""
    from ..network.graph import parse
    from ..workloads.models import accuracy

    if _prep_key(0, low) != _prep_key(0, base):
        raise ValueError("sensitivity profile: the lowered configuration must keep adc_bits and the output "
                         "format's bits and signedness (they are properties of the tiles)")
    work = setup_workload(setup)
    specs = parse(work.model, work.x_cal[:2]).layers
    layers = [l.name for l in specs if not l.problem]
    if not layers:
        raise ValueError(f"{setup.model}: no layer can go on tiles (no conv/linear layer the front end maps)")
    seed_list = list(range(seeds))
    meta = {"kind": "alone", "seeds": seeds, "base": base.to_dict(), "low": low.to_dict(), **setup.identity()}
    meta["identity"] = json.dumps(meta, sort_keys=True)
    rf = ResultsFile(results, meta)
    tasks = []
    for name in layers:
        others = tuple(l.name for l in specs if l.name != name)
        for s in seed_list:
            key = _prep_key(s, base, others)
            tasks.append(Task(f"alone:{name}", s, {"config": base, "post": "fixed"}, key))
            tasks.append(Task(f"alone_low:{name}", s, {"config": base, "post": "fixed",
                                                       "layer_configs": {name: low}}, key))
    raw = run_tasks(tasks, partial(prepare_tiles, setup), partial(evaluate_spec, setup), workers=workers,
                    scheduler=scheduler, done=rf.raw, on_result=rf.add, progress=progress)
    metric = work.metric
    digital = accuracy(work.model, work.x_test, work.y_test, metric=metric)
    profile = []
    for name in layers:
        row: dict[str, Any] = {"layer": name, "block": block_of(name), "order": layers.index(name)}
        for tag, key in (("", f"alone:{name}"), ("low_", f"alone_low:{name}")):
            runs = [raw[(key, s)] for s in seed_list]
            m, sd = mean_std(metric.loss(v, digital) for v in runs)
            row.update({f"{tag}mean": mean_std(runs)[0], f"{tag}runs": runs, f"{tag}S": m, f"{tag}S_std": sd})
        profile.append(row)
    profile.sort(key=lambda r: -r["S"])
    summary = {"metric": metric.name, "digital": digital, "profile": profile,
               "definition": "S(p) = loss of the metric with p alone on tiles (every other layer digital) against "
                             "the all-digital network, mean and std over seeds"}
    rf.write(summary)
    return {"meta": meta, **summary}
