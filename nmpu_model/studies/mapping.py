"""Heterogeneous mappings: which layer runs where (digital, on tiles with an FP16 unit, or on tiles with a fixed-point
NMPU of a given format), their files, their evaluation, and the search for the best ones.

A :class:`Mapping` gives every layer of a network that can go on tiles one :class:`Choice`; its NMPU formats are a
base configuration and, per fixed-point layer, a grid point of field changes applied to it (the sweep's rule,
:func:`~nmpu_model.studies.sweep.point_config`). The tiles' own properties (the ADC's width, the DAC the output
format drives) are the same for every layer, so every choice must keep them.

The search (:func:`search`) is Optuna's: one categorical parameter per layer, three objectives (the metric's loss
against the all-digital network, a periphery cost per inference, the fraction of the network's MACs on tiles),
trials evaluated in batches (on the sweep's Dask runner for a network), every finished trial kept in Optuna's
storage (SQLite: an interrupted search resumes where it stopped). A space no larger than the trial budget is
enumerated (every mapping queued once: the front is exact); a larger one is searched by NSGA-II (constrained to
the tolerance), started from the given anchor mappings, then polished: every single-layer change of the chosen
mapping is tried, until none is chosen over it (at most as many trials again as the budget). The pick
(:func:`choose`): of the trials within the tolerance, the most MACs on tiles, then the cheapest, then the best
metric.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..files import read_document
from ..golden.config import NMPUConfig
from ..golden.formats import ConfigError
from .sweep import Setup, Task, _prep_key, mean_std, point_config, prepare_tiles, run_tasks, setup_workload

UNITS = ("digital", "fp16", "fixed")


@dataclass(frozen=True)
class Choice:
    """Where one layer runs: ``digital`` (float32), ``fp16`` (tiles + FP16 unit) or ``fixed`` (tiles + NMPU whose
    configuration is the base with ``point``'s field changes)."""

    unit: str
    point: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {', '.join(UNITS)}, not {self.unit!r}")
        if self.point and self.unit != "fixed":
            raise ValueError(f"{self.unit}: only a fixed-point layer has format fields")

    @property
    def label(self) -> str:
        """``digital``, ``fp16``, ``fixed`` or ``fixed[scale.bits=4,offset.bits=4]`` (parsed back by :meth:`parse`)."""
        if not self.point:
            return self.unit
        return "fixed[" + ",".join(f"{k}={json.dumps(v)}" for k, v in self.point) + "]"

    @classmethod
    def parse(cls, value: Any) -> "Choice":
        """A choice from a label (:attr:`label`) or a table ``{unit = "fixed", "scale.bits" = 4, ...}``."""
        if isinstance(value, dict):
            d = dict(value)
            unit = d.pop("unit", None)
            if not isinstance(unit, str):
                raise ValueError(f"a layer's table needs unit = \"fixed\" (or \"fp16\", \"digital\"), not {value!r}")
            return cls(unit, tuple(sorted(d.items())))
        if not isinstance(value, str):
            raise ValueError(f"a layer's choice is a name (digital, fp16, fixed) or a table, not {value!r}")
        if value.startswith("fixed[") and value.endswith("]"):
            pairs = []
            for part in filter(None, value[6:-1].split(",")):
                k, eq, v = part.partition("=")
                if not eq:
                    raise ValueError(f"{value!r}: expected fixed[FIELD=VALUE,...]")
                try:
                    pairs.append((k.strip(), json.loads(v)))
                except json.JSONDecodeError:
                    raise ValueError(f"{value!r}: {v!r} is not a value") from None
            return cls("fixed", tuple(sorted(pairs)))
        return cls(value)

    def config(self, base: NMPUConfig) -> NMPUConfig | None:
        """The NMPU configuration of a fixed-point layer (None for the others); raises ``ConfigError``."""
        return point_config(base, dict(self.point)) if self.unit == "fixed" else None


def format_choices(base: NMPUConfig, points: Sequence[dict[str, Any]]) -> list[Choice]:
    """The fixed-point choices of a menu of format points, each checked: a valid configuration that keeps the
    tiles' ADC width and output format (one line naming the point otherwise)."""
    out = []
    for p in points:
        c = Choice("fixed", tuple(sorted(p.items())))
        try:
            cfg = c.config(base)
        except ConfigError as e:
            raise ValueError(f"format {c.label}: {e}") from None
        _check_tile_properties(cfg, base, c.label)
        if c not in out:
            out.append(c)
    return out


def _check_tile_properties(cfg: NMPUConfig, base: NMPUConfig, label: str) -> None:
    if _prep_key(0, cfg) != _prep_key(0, base):
        raise ValueError(f"format {label}: a layer's format must keep adc_bits and the output format's bits and "
                         "signedness (they are properties of the tiles)")


@dataclass(frozen=True)
class Mapping:
    """Every mappable layer's :class:`Choice`, over ``base`` (the fixed-point layers' configuration before their
    format changes)."""

    base: NMPUConfig
    layers: tuple[tuple[str, Choice], ...]

    @classmethod
    def of(cls, base: NMPUConfig, layers: dict[str, Choice]) -> "Mapping":
        m = cls(base, tuple(layers.items()))
        for name, c in m.layers:
            try:
                cfg = c.config(base)
            except ConfigError as e:
                raise ValueError(f"mapping: layer {name!r}: {e}") from None
            if cfg is not None:
                _check_tile_properties(cfg, base, f"of layer {name!r} ({c.label})")
        return m

    @property
    def choices(self) -> dict[str, Choice]:
        return dict(self.layers)

    def names(self, unit: str) -> list[str]:
        return [n for n, c in self.layers if c.unit == unit]

    def key(self) -> str:
        return json.dumps({n: c.label for n, c in self.layers}, sort_keys=True)

    def configs(self) -> dict[str, NMPUConfig]:
        """Fixed-point layer -> its NMPU configuration (before a layer without ReLU turns the stage off)."""
        return {n: c.config(self.base) for n, c in self.layers if c.unit == "fixed"}

    def check(self, mappable: Sequence[str]) -> None:
        """Refuse a mapping that does not name exactly the layers that can go on tiles (one line)."""
        names = [n for n, _ in self.layers]
        unknown = [n for n in names if n not in mappable]
        if unknown:
            raise ValueError(f"mapping: {unknown[0]!r} is not a layer that can go on tiles "
                             f"(those are: {', '.join(mappable)})")
        missing = [n for n in mappable if n not in names]
        if missing:
            raise ValueError(f"mapping: layer {missing[0]!r} has no choice (every layer that can go on tiles needs "
                             f"one of digital, fp16, fixed)")
        if not any(c.unit != "digital" for _, c in self.layers):
            raise ValueError("mapping: every layer is digital: nothing would run on tiles")

    def digital(self, problem: Iterable[str] = ()) -> tuple[str, ...]:
        """The layers kept digital when building the network: the mapping's, and those no tile can take."""
        return tuple(sorted({*self.names("digital"), *problem}))

    def spec(self) -> dict[str, Any]:
        """The evaluation spec of :func:`~nmpu_model.studies.sweep.evaluate_spec`."""
        return {"config": self.base, "post": "fixed", "layer_configs": self.configs(),
                "fp16_layers": self.names("fp16")}

    def posts(self, net: Any) -> dict[str, Any]:
        """The ``per_layer`` post-processors of :meth:`AnalogNetwork.run` on ``net`` (built with :meth:`digital`)
        that run this mapping when the default post-processor is ``"fixed"`` with :attr:`base`."""
        from .sweep import layer_posts
        return layer_posts(net, self.configs(), self.names("fp16"))

    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base.to_dict(), "layers": {n: c.label for n, c in self.layers}}

    def write(self, path: str | Path, **extra: Any) -> None:
        """A JSON mapping file (``extra``: what made it, kept beside for the reader)."""
        p = Path(path)
        tmp = p.with_suffix(p.suffix + ".tmp")
        tmp.write_text(json.dumps({**self.to_dict(), **extra}, indent=1) + "\n")
        tmp.replace(p)


def load_mapping(path: str | Path) -> Mapping:
    """A mapping file (JSON as :meth:`Mapping.write` writes it, or TOML with ``[base]`` and ``[layers]``); every
    error one line naming the file."""
    p = Path(path)
    doc = read_document(p, "TOML" if p.suffix == ".toml" else "JSON")
    if not isinstance(doc, dict) or not isinstance(doc.get("layers"), dict) or not doc["layers"]:
        raise ValueError(f"{p}: a mapping needs a non-empty \"layers\" table of layer -> digital | fp16 | fixed")
    try:
        base = NMPUConfig.from_dict(doc.get("base", {}), source=f"{p} [base]")
        return Mapping.of(base, {str(n): Choice.parse(v) for n, v in doc["layers"].items()})
    except ValueError as e:
        raise ValueError(f"{p}: {e}") from None


# ---- evaluation ---------------------------------------------------------------------------------------------
def mappable_layers(setup: Setup) -> tuple[list[str], list[str]]:
    """The workload's layers that can go on tiles, and those that cannot (kept digital whatever the mapping)."""
    from ..network.graph import parse
    work = setup_workload(setup)
    specs = parse(work.model, work.x_cal[:2]).layers
    return [l.name for l in specs if not l.problem], [l.name for l in specs if l.problem]


def mapping_tasks(mappings: Sequence[Mapping], seeds: int, problem: Sequence[str] = ()) -> list[Task]:
    """One sweep task per mapping and seed (the tiles prepared once per seed and digital set)."""
    return [Task(m.key(), s, m.spec(), _prep_key(s, m.base, m.digital(problem))) for m in mappings
            for s in range(seeds)]


def evaluate_mappings(mappings: Sequence[Mapping], setup: Setup, seeds: int, *, workers: int | None = None,
                      scheduler: str | None = None, progress: bool = True, client: Any = None) -> list[list[float]]:
    """Every mapping's metric on each of ``seeds`` seeds (the sweep's runner: Dask, or in-process with
    ``workers=0``; ``client``: an open :func:`~nmpu_model.studies.sweep.dask_client`)."""
    from .sweep import evaluate_spec
    _, problem = mappable_layers(setup)
    tasks = mapping_tasks(mappings, seeds, problem)
    raw = run_tasks(tasks, partial(prepare_tiles, setup), partial(evaluate_spec, setup), workers=workers,
                    scheduler=scheduler, progress=progress, client=client)
    return [[raw[(m.key(), s)] for s in range(seeds)] for m in mappings]


# ---- the search -------------------------------------------------------------------------------------------
#: the objectives of a search, their directions
OBJECTIVES = (("loss", "minimize"), ("cost", "minimize"), ("mac_fraction", "maximize"))


@dataclass
class Scored:
    """What a scorer says of one mapping: the metric's loss (a fraction, as :meth:`Metric.loss`), its cost and
    the fraction of MACs on tiles (the objectives), and anything else to keep (``attrs``)."""

    loss: float
    cost: float
    mac_fraction: float
    attrs: dict[str, Any]

    def values(self) -> list[float]:
        return [self.loss, self.cost, self.mac_fraction]


def space_size(space: dict[str, Sequence[str]]) -> int:
    return math.prod(len(v) for v in space.values())


def search(space: dict[str, Sequence[str]], score: Callable[[list[dict[str, str]]], list[Scored]], *,
           trials: int, storage: str | None = None, name: str = "mapping", batch: int = 16, seed: int = 0,
           tolerance: float | None = None, anchors: Sequence[dict[str, str]] = (), polish: int | None = None,
           progress: Callable[[int], Any] | None = None) -> Any:
    """Run (or resume) the Optuna study ``name`` in ``storage`` (``sqlite:///FILE``; None: in memory) until it holds
    ``trials`` finished trials (at most the space's size), then (a larger space, with a ``tolerance``) the polish
    of the module's docstring, whose trials come on top: at most ``polish`` of them (default ``trials``), counted
    over the study (a resumed search does not polish again). ``space``: parameter -> its labels; ``score`` takes a
    batch of parameter dicts and returns their :class:`Scored`. ``tolerance`` (percent, as :func:`choose`): a
    constraint on the loss, so that NSGA-II breeds from the mappings within it. A trial whose parameters were scored
    before takes that score (a sampler may propose a point twice); trials an interruption left running are marked
    failed and replaced. Returns the study."""
    import optuna
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState

    if trials < 1:
        raise ValueError(f"trials must be >= 1, not {trials}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, not {batch}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {k: CategoricalDistribution(list(v)) for k, v in space.items()}
    size = space_size(space)
    trials = min(trials, size)
    sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=max(batch, 4))
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler, load_if_exists=True,
                                directions=[d for _, d in OBJECTIVES])
    if study.directions != [optuna.study.StudyDirection.MINIMIZE, optuna.study.StudyDirection.MINIMIZE,
                            optuna.study.StudyDirection.MAXIMIZE]:
        raise ValueError(f"{storage}: study {name!r} holds other objectives; remove the file or choose another")
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(t.number, state=TrialState.FAIL)
    done = {json.dumps(t.params, sort_keys=True): t for t in study.get_trials(states=(TrialState.COMPLETE,))}
    waiting = {json.dumps(t.params, sort_keys=True) for t in study.get_trials(states=(TrialState.WAITING,))}
    if size <= trials:
        # the whole space fits the budget: every mapping, each once, in a fixed order (the front is exact)
        for combo in itertools.product(*space.values()):
            p = dict(zip(space, combo))
            k = json.dumps(p, sort_keys=True)
            if k not in done and k not in waiting:
                study.enqueue_trial(p)
    elif not study.trials:
        for a in anchors:
            study.enqueue_trial(dict(a), skip_if_exists=True)
    if progress is not None and done:
        progress(len(done))

    def run(target: int) -> None:
        """Ask, score and tell batches until ``target`` distinct mappings are finished."""
        stale = 0
        while len(done) < target and stale < 50:      # a sampler that proposes only seen mappings stops
            asked = [study.ask(dists) for _ in range(min(batch, target - len(done)))]
            before = len(done)
            keys = list(dict.fromkeys(k for k in (json.dumps(t.params, sort_keys=True) for t in asked)
                                      if k not in done))
            scored = dict(zip(keys, score([json.loads(k) for k in keys]))) if keys else {}
            for t in asked:
                k = json.dumps(t.params, sort_keys=True)
                if k in scored and k not in done:
                    attrs, values = scored[k].attrs, scored[k].values()
                else:
                    old = done[k]
                    attrs, values = {**old.user_attrs, "repeat_of": old.number}, list(old.values)
                for a, v in attrs.items():
                    t.set_user_attr(a, v)
                if tolerance is not None:
                    t.set_constraint("loss", values[0] - tolerance / 100)
                done.setdefault(k, study.tell(t, values))
            stale = stale + 1 if len(done) == before else 0
            if progress is not None:
                progress(len(asked))

    run(trials)
    if tolerance is not None and size > trials:
        # polish: every single-layer change of the chosen mapping, until none is chosen over it (or the cap)
        cap = trials + (trials if polish is None else polish)     # of the study's mappings: a resumed search too
        while len(done) < cap:
            best = choose([{"trial": t.number, "params": t.params, "loss": t.values[0], "cost": t.values[1],
                            "mac_fraction": t.values[2]} for t in done.values()], tolerance)
            if best is None:
                break
            near = [p for n, labels in space.items() for l in labels if l != best["params"][n]
                    for p in [{**best["params"], n: l}] if json.dumps(p, sort_keys=True) not in done]
            near = near[:cap - len(done)]
            if not near:
                break
            queued = {json.dumps(t.params, sort_keys=True) for t in study.get_trials(states=(TrialState.WAITING,))}
            for p in near:
                if json.dumps(p, sort_keys=True) not in queued:
                    study.enqueue_trial(p)
            run(len(done) + len(near))
    return study


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """Every finished, distinct trial: params, the three objectives and its attributes, and whether it is on the
    Pareto front (no other trial at least as good in every objective and better in one)."""
    from optuna.trial import TrialState
    rows, seen = [], set()
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        k = json.dumps(t.params, sort_keys=True)
        if k in seen:
            continue
        seen.add(k)
        loss, cost, frac = t.values
        rows.append({"trial": t.number, "params": t.params, "loss": loss, "cost": cost, "mac_fraction": frac,
                     **{a: v for a, v in t.user_attrs.items() if a != "repeat_of"}})
    for r in rows:
        r["pareto"] = not any(_dominates(q, r) for q in rows)
    return rows


def _dominates(a: dict, b: dict) -> bool:
    ge = a["loss"] <= b["loss"] and a["cost"] <= b["cost"] and a["mac_fraction"] >= b["mac_fraction"]
    gt = a["loss"] < b["loss"] or a["cost"] < b["cost"] or a["mac_fraction"] > b["mac_fraction"]
    return ge and gt


def choose(rows: Sequence[dict[str, Any]], tolerance: float) -> dict[str, Any] | None:
    """The mapping a search recommends: of the rows whose loss is at most ``tolerance`` percent (percentage points
    of accuracy, or percent of the perplexity), the most MACs on tiles, then the lowest cost, then the lowest
    loss, then the first trial; None when no row is within."""
    ok = [r for r in rows if r["loss"] <= tolerance / 100 + 1e-12]
    return min(ok, key=lambda r: (-r["mac_fraction"], r["cost"], r["loss"], r["trial"])) if ok else None


def study_name(identity: dict[str, Any]) -> str:
    """A study's name in the storage: a hash of everything its scores depend on, so a different search never
    continues another's trials."""
    return "mapping-" + hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
