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
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from .config import NMPUConfig, set_field
from .formats import ConfigError

DEFAULT_GRID = {"scale.bits": [3, 4, 5, 6, 7, 8], "offset.bits": [3, 4, 6, 8]}
_MOVING = ("scale", "offset", "bn_scale", "bn_offset", "mid", "output")


# ---- grid ------------------------------------------------------------------------------------------
def load_grid(path: str | Path | None) -> dict[str, list]:
    """Read ``[grid]`` from a TOML file (``None``: :data:`DEFAULT_GRID`); every value a non-empty list."""
    if path is None:
        return dict(DEFAULT_GRID)
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except OSError as e:
        raise ValueError(f"{p}: cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{p}: not valid TOML: {e}") from None
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


def point_key(point: dict[str, Any]) -> str:
    return json.dumps(point, sort_keys=True)


# ---- execution -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    """One accuracy evaluation: a grid point (or a per-layer variant) on one seed."""

    key: str        # stable identity, also the key in the results JSON
    seed: int
    spec: Any       # what the evaluation function needs (picklable)


def _one_thread() -> None:
    import torch
    torch.set_num_threads(1)


def _prepare(prepare: Callable[[int], Any], seed: int) -> Any:
    _one_thread()
    return prepare(seed)


def _evaluate(evaluate: Callable[[Any, Any], float], prepared: Any, spec: Any) -> float:
    _one_thread()
    return float(evaluate(prepared, spec))


def run_tasks(tasks: list[Task], prepare: Callable[[int], Any], evaluate: Callable[[Any, Any], float], *,
              workers: int | None = None, scheduler: str | None = None, done: dict[str, dict] | None = None,
              on_result: Callable[[Task, float], None] | None = None, progress: bool = True) -> dict[tuple[str, int], float]:
    """Run every task not already in ``done`` and return ``{(key, seed): accuracy}`` for all of them.

    ``workers=0`` runs in this process, without Dask (the serial reference). Otherwise a
    ``LocalCluster`` with ``workers`` single-threaded worker processes (default: the machine's
    cores) is started, or the tasks go to the cluster at ``scheduler`` (``tcp://HOST:PORT``).
    ``prepare(seed)`` runs once per seed, its result shared by that seed's tasks.
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
    try:
        if not todo:
            return results
        if workers == 0 and scheduler is None:
            prepared: dict[int, Any] = {}
            for t in todo:
                if t.seed not in prepared:
                    prepared[t.seed] = _prepare(prepare, t.seed)
                acc = _evaluate(evaluate, prepared[t.seed], t.spec)
                results[(t.key, t.seed)] = acc
                if on_result:
                    on_result(t, acc)
                bar.update()
            return results
        from dask.distributed import Client, LocalCluster, as_completed
        cluster = None
        if scheduler is None:
            cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                                   processes=True, dashboard_address=None)
            client = Client(cluster)
        else:
            try:
                client = Client(scheduler, timeout="10s")
            except OSError as e:
                raise ValueError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
        try:
            seeds = sorted({t.seed for t in todo})
            prepared_f = {s: client.submit(_prepare, prepare, s, key=f"prepare-{s}", pure=False) for s in seeds}
            futures = {client.submit(_evaluate, evaluate, prepared_f[t.seed], t.spec, pure=False): t for t in todo}
            for fut in as_completed(futures):
                t = futures[fut]
                acc = fut.result()
                results[(t.key, t.seed)] = acc
                if on_result:
                    on_result(t, acc)
                bar.update()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        return results
    finally:
        bar.close()


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
