"""Exhaustive verification: every input of a configuration through the RTL, against the golden model.

The NMPU's output for one column depends on the ADC code, that column's coefficient codes and the layer's
``out_frac``, nothing else (no state carries from one beat to the next). So the unit's whole input space is
the product of the ADC codes, every coefficient's codes and the ``out_frac`` range, and a configuration can
be verified over all of it: :func:`plan_space` lays the space out, :func:`run` streams it.

Laid out as layers: a layer's columns are coefficient combinations (one column per combination, so the
unit's ``rtl.columns`` coefficient slots hold ``rtl.columns`` combinations at a time) and its samples are
every ADC code; each chunk of columns is one run of the bulk C++ harness (:mod:`cosim.sim.bulk`, full
throughput, every lane used) against :func:`nmpu_model.apply` on the same arrays, computed in the same run.
Chunks are generated, checked and dropped one after the other (a few million values each, never the whole
space in memory), ``jobs`` at a time (the harness is a subprocess; the model releases the GIL).

When the whole space is beyond ``limit`` values (the BN stage's four coefficients, or wide coefficients),
the plan is the largest *exhaustive sub-space* that fits, said plainly by :meth:`Plan.describe`: for each
coefficient in turn, every ADC code x every value of that coefficient x every ``out_frac``, with the other
coefficients held at combinations of their corner values (minimum, minimum + 1, -1, 0, 1, maximum - 1,
maximum), all of them if they fit, else as many as fit, drawn with a fixed seed.
"""
from __future__ import annotations

import itertools
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from nmpu_model.golden.config import NMPUConfig
from nmpu_model.golden.formats import Fmt

#: values a run may check by default (the default configuration's space is 2**28)
DEFAULT_LIMIT = 1 << 30
#: values per harness run (a chunk): large enough that the harness's start-up is a small part of it
CHUNK_VALUES = 1 << 21
#: the rate used to estimate a run's time before it starts (values/s, two harness runs at once on the
#: 2-core reference machine, default configuration); the progress bar measures the real one
NOMINAL_RATE = 4.0e6


def corner_values(fmt: Fmt) -> np.ndarray:
    """The codes of ``fmt`` a held coefficient takes: min, min+1, -1, 0, 1, max-1, max (those in range)."""
    v = {fmt.min, fmt.min + 1, -1, 0, 1, fmt.max - 1, fmt.max}
    return np.array(sorted(x for x in v if fmt.min <= x <= fmt.max), dtype=np.int64)


def _count(fmt: Fmt) -> int:
    return fmt.max - fmt.min + 1


@dataclass
class SubSpace:
    """Every ADC code x every combination of ``swept`` x every row of ``held`` x every ``out_frac``."""

    swept: tuple[str, ...]                 # coefficients enumerated in full
    held_names: tuple[str, ...] = ()       # the other coefficients ...
    held: np.ndarray = field(default_factory=lambda: np.zeros((1, 0), np.int64))  # ... (rows, len(held_names))
    held_of: int = 1                       # rows there would be with every corner combination

    def columns(self, config: NMPUConfig) -> int:
        """Coefficient combinations (one column each)."""
        return math.prod(_count(getattr(config, n)) for n in self.swept) * len(self.held)

    def coefficients(self, config: NMPUConfig, lo: int, hi: int) -> dict[str, np.ndarray]:
        """Coefficient codes of columns ``[lo, hi)``: the swept ones fastest, then the held rows."""
        j = np.arange(lo, hi, dtype=np.int64)
        out: dict[str, np.ndarray] = {}
        for name in reversed(self.swept):      # the last swept coefficient varies fastest
            fmt = getattr(config, name)
            n = _count(fmt)
            out[name] = j % n + fmt.min
            j //= n
        for k, name in enumerate(self.held_names):
            out[name] = self.held[j, k]
        return {n: out[n] for n in config.coef_names}

    def describe(self, config: NMPUConfig) -> str:
        swept = " x ".join(f"every {n} ({_count(getattr(config, n)):,})" for n in self.swept)
        if not self.held_names:
            return swept
        held = ", ".join(self.held_names)
        rows = (f"all {len(self.held):,} combinations" if len(self.held) == self.held_of
                else f"{len(self.held):,} of the {self.held_of:,} combinations (seeded draw)")
        return f"{swept}, with ({held}) at {rows} of their corner values"


@dataclass
class Plan:
    """What a run checks: sub-spaces x every ADC code x every ``out_frac``."""

    config: NMPUConfig
    subspaces: list[SubSpace]
    full: bool                            # the sub-spaces are the whole input space
    total: int                            # values in the whole input space

    @property
    def codes(self) -> np.ndarray:
        a = self.config.adc
        return np.arange(a.min, a.max + 1, dtype=np.int64)

    @property
    def fracs(self) -> range:
        return range(self.config.out_frac_min, self.config.out_frac_max + 1)

    @property
    def values(self) -> int:
        return sum(s.columns(self.config) for s in self.subspaces) * len(self.codes) * len(self.fracs)

    def describe(self) -> str:
        c = self.config
        head = (f"{len(self.codes):,} ADC codes x {len(self.fracs)} out_frac values "
                f"({c.out_frac_min}..{c.out_frac_max}) x ")
        if self.full:
            return (f"the whole input space: {head}{self.subspaces[0].describe(c)} = {self.values:,} values")
        parts = "; ".join(s.describe(c) for s in self.subspaces)
        return (f"an exhaustive sub-space (the whole space, {self.total:,} values, is beyond the limit): "
                f"{head}[{parts}] = {self.values:,} values, {self.values / self.total:.2e} of the space")

    def chunks(self, chunk_values: int = CHUNK_VALUES) -> Iterator[tuple[SubSpace, int, int, int]]:
        """``(sub-space, out_frac, first column, end column)`` per harness run: whole blocks of the unit's
        ``rtl.columns`` slots, about ``chunk_values`` values each."""
        depth = self.config.rtl.columns
        per = max(1, chunk_values // (len(self.codes) * depth)) * depth
        for s in self.subspaces:
            n = s.columns(self.config)
            for f in self.fracs:
                for lo in range(0, n, per):
                    yield s, f, lo, min(n, lo + per)


def _estimate(values: int) -> str:
    s = values / NOMINAL_RATE
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


def plan_space(config: NMPUConfig, limit: int = DEFAULT_LIMIT, seed: int = 0) -> Plan:
    """The whole input space of ``config`` if it holds at most ``limit`` values, else the largest exhaustive
    sub-space that does (see the module docstring); a ``ValueError`` saying the sizes and the time when not
    even one coefficient at a time fits."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"the limit must be a positive integer, not {limit!r}")
    names = config.coef_names
    base = _count(config.adc) * (config.out_frac_max - config.out_frac_min + 1)
    total = base * math.prod(_count(getattr(config, n)) for n in names)
    if total <= limit:
        return Plan(config, [SubSpace(tuple(names))], True, total)
    # one coefficient at a time, the others held at corner combinations; the limit shared equally
    subs = []
    rng = np.random.default_rng(seed)
    share = limit // len(names)
    for name in names:
        others = tuple(n for n in names if n != name)
        corners = [corner_values(getattr(config, n)) for n in others]
        every = math.prod(len(c) for c in corners)
        fits = share // (base * _count(getattr(config, name)))
        if fits < 1:
            need = base * _count(getattr(config, name))
            raise ValueError(f"the input space ({total:,} values, ~{_estimate(total)}) is beyond the limit of "
                             f"{limit:,} values, and so is every code x every {name} x every out_frac "
                             f"({need:,} values per held combination); raise --limit")
        rows = np.array(list(itertools.product(*corners)), dtype=np.int64).reshape(every, len(others))
        if every > fits:
            rows = rows[np.sort(rng.choice(every, size=fits, replace=False))]
        subs.append(SubSpace((name,), others, rows, every))
    return Plan(config, subs, False, total)


@dataclass
class Result:
    """What an exhaustive run found."""

    values: int
    mismatches: int
    cycles: int
    runs: int
    seconds: float                        # wall time of the streaming (the build not counted)
    sim_seconds: float                    # the harness's clock loops (summed over runs)
    model_seconds: float                  # the golden model (summed)
    protocol_errors: int = 0
    first_mismatch: dict[str, Any] | None = None
    first_error: str | None = None
    description: str = ""
    build_seconds: float = 0.0            # the harness's build (0 when cached in this process)

    @property
    def ok(self) -> bool:
        return self.mismatches == 0 and self.protocol_errors == 0

    def line(self) -> str:
        return f"vectors={self.values} mismatches={self.mismatches} cycles={self.cycles} sim=verilator-bulk"

    def to_dict(self) -> dict[str, Any]:
        return {"values": self.values, "mismatches": self.mismatches, "cycles": self.cycles, "runs": self.runs,
                "seconds": round(self.seconds, 3), "values_per_second": round(self.values / self.seconds)
                if self.seconds else None, "sim_seconds": round(self.sim_seconds, 3),
                "model_seconds": round(self.model_seconds, 3), "build_seconds": round(self.build_seconds, 3),
                "protocol_errors": self.protocol_errors,
                "first_mismatch": self.first_mismatch, "first_error": self.first_error,
                "space": self.description}


def _check_chunk(b: Any, plan: Plan, sub: SubSpace, out_frac: int, lo: int, hi: int) -> dict[str, Any]:
    from nmpu_model import apply

    from .bulk import run_stimulus
    from .layer_stream import plan as lay_out

    config = plan.config
    codes = plan.codes
    coeffs = sub.coefficients(config, lo, hi)
    x = np.broadcast_to(codes[:, None], (len(codes), hi - lo))
    r = run_stimulus(b, lay_out(x, coeffs, out_frac, config), p_valid=1.0, p_ready=1.0)
    t0 = time.perf_counter()
    want = apply(x, config, coeffs, out_frac=out_frac)
    model_s = time.perf_counter() - t0
    bad = r.outputs != want
    out = {"values": int(x.size), "mismatches": int(bad.sum()), "cycles": r.cycles, "sim_seconds": r.sim_seconds,
           "model_seconds": model_s, "protocol_errors": r.protocol_errors, "first_error": r.first_error,
           "first_mismatch": None}
    if out["mismatches"]:
        i, j = (int(v) for v in np.argwhere(bad)[0])
        out["first_mismatch"] = {"code": int(codes[i]), **{n: int(coeffs[n][j]) for n in config.coef_names},
                                 "out_frac": int(out_frac), "rtl": int(r.outputs[i, j]), "model": int(want[i, j])}
    return out


def run(plan: Plan, *, jobs: int = 2, fault: str | None = None, chunk_values: int = CHUNK_VALUES,
        progress: Callable[[int], None] | None = None) -> Result:
    """Stream ``plan`` through the RTL (bulk harness, built or cached) and compare every value with the model.

    ``jobs`` harness runs at a time; ``fault`` a deliberately broken RTL (:class:`rtl.nmpu.NMPU`'s
    ``FAULTS``), for tests; ``progress(values)`` after each chunk.
    """
    from .bulk import build

    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, not {jobs!r}")
    b = build(plan.config, fault=fault)
    res = Result(0, 0, 0, 0, 0.0, 0.0, 0.0, description=plan.describe(), build_seconds=b.seconds)
    t0 = time.perf_counter()
    chunks = plan.chunks(chunk_values)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        # at most 2 x jobs chunks in flight: memory stays a few chunks, however large the space
        pending = []
        for item in itertools.chain(chunks, [None]):
            if item is not None:
                pending.append(pool.submit(_check_chunk, b, plan, *item))
            while pending and (item is None or len(pending) >= 2 * jobs):   # None: drain
                c = pending.pop(0).result()
                res.values += c["values"]
                res.mismatches += c["mismatches"]
                res.cycles += c["cycles"]
                res.runs += 1
                res.sim_seconds += c["sim_seconds"]
                res.model_seconds += c["model_seconds"]
                res.protocol_errors += c["protocol_errors"]
                res.first_mismatch = res.first_mismatch or c["first_mismatch"]
                res.first_error = res.first_error or c["first_error"]
                if progress is not None:
                    progress(c["values"])
    res.seconds = time.perf_counter() - t0
    return res
