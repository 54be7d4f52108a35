"""What the periphery costs per inference: post-processing time, energy and area of a network's analog layers on
N fixed-point NMPUs of L lanes per tile, or on one FP16 unit per tile, against the tiles' own MVM time.

The model (stated in full in ``docs/mapping.md``; every assumption is a parameter and printed beside the figures):

- A layer ``l`` with ``C`` output columns occupies ``ceil(C / tile.cols)`` column tiles; its row tiles' codes
  are summed by the adder in front of the post-processing (:mod:`nmpu_model.analog.tiles`), so each *column
  tile* has one periphery: ``units`` units of ``lanes`` lanes, one value per lane and cycle at the unit's
  fmax, ``latency`` cycles from input to output.
- An inference puts ``V_l`` vectors through layer ``l`` (measured: the rows of the layer's ADC codes in a run
  of the network, per sample; a convolution's output positions, a transformer's tokens, a recurrent layer's
  time steps). Per vector a column tile of ``c`` columns needs ``ceil(c / (units * lanes))`` cycles.
- The tiles and the periphery form a two-stage pipeline per layer: the MVM of vector ``i + 1`` (``t_mvm``, all
  tiles of the layer in parallel) overlaps the post-processing of vector ``i`` (``t_pp``, the slowest column
  tile). A layer takes ``t_mvm + (V - 1) * max(t_mvm, t_pp) + t_pp + latency / fmax``; layers one after
  the other. The periphery keeps up with the tiles where ``t_pp <= t_mvm``.
- Energy: every post-processed value (``V_l * C_l``) costs the unit's measured energy per value (OpenSTA's power
  at fmax on real activity, divided by the values per second). Area: ``units`` units per column tile, library
  cells only (the coefficient memories are not in the area, as in ``nmpu synth``).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

#: HERMES: 256 x 256 tiles, ~133 ns per MVM (one-phase read: 2 x 256 x 256 ops / (63.1 TOPS / 64 cores), Le Gallo
#: et al., Nature Electronics 2023); 130 ns as a round figure
MVM_NS = 130.0
#: the paper's setting: 64 fixed-point units serving 4 columns each of a 256-column tile
PAPER_UNITS, PAPER_COLUMNS = 64, 256


@dataclass(frozen=True)
class Periphery:
    """One kind of post-processing unit as placed beside every column tile, with its measured figures."""

    name: str
    units: int                    # per column tile
    lanes: int                    # per unit: values per cycle
    fmax_mhz: float
    latency: int                  # cycles from a value in to its result out
    energy_pj_per_value: float
    area_um2: float               # one unit, library cells
    source: str = ""

    def __post_init__(self) -> None:
        for k in ("units", "lanes"):
            v = getattr(self, k)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise ValueError(f"{self.name}: {k} must be an integer >= 1, not {v!r}")
        if not (isinstance(self.latency, int) and self.latency >= 0):
            raise ValueError(f"{self.name}: latency must be an integer >= 0, not {self.latency!r}")
        for k in ("fmax_mhz", "energy_pj_per_value", "area_um2"):
            v = getattr(self, k)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{self.name}: {k} must be a finite number > 0, not {v!r}")

    def cycles_per_vector(self, columns: int) -> int:
        """Cycles to take one vector of ``columns`` values of one column tile."""
        return -(-columns // (self.units * self.lanes))


@dataclass(frozen=True)
class LayerLoad:
    """One analog layer's work per inference."""

    name: str
    vectors: int                  # per inference (sample)
    inputs: int                   # K
    columns: int                  # C
    row_tiles: int
    col_tiles: int

    def __post_init__(self) -> None:
        if not (isinstance(self.vectors, int) and self.vectors >= 1):
            raise ValueError(f"layer {self.name}: vectors per inference must be an integer >= 1, not {self.vectors!r}")

    @property
    def values(self) -> int:
        return self.vectors * self.columns

    @property
    def macs(self) -> int:
        return self.vectors * self.inputs * self.columns


@dataclass
class LayerCost:
    name: str
    vectors: int
    columns: int
    col_tiles: int
    t_mvm_ns: float               # the layer's MVMs alone
    t_pp_ns: float                # post-processing alone
    t_pp_vector_ns: float         # one vector, slowest column tile
    t_layer_ns: float             # the pipeline of both
    keeps_up: bool
    energy_pj: float
    area_um2: float = 0.0         # its column tiles' units, library cells
    unit: str = ""                # the periphery's name


@dataclass
class NetworkCost:
    periphery: Periphery | None   # the one periphery of every layer (None: a mapping with several)
    mvm_ns: float
    tile_cols: int
    layers: list[LayerCost] = field(default_factory=list)

    @property
    def t_ns(self) -> float:
        return sum(l.t_layer_ns for l in self.layers)

    @property
    def t_mvm_ns(self) -> float:
        return sum(l.t_mvm_ns for l in self.layers)

    @property
    def t_pp_ns(self) -> float:
        return sum(l.t_pp_ns for l in self.layers)

    @property
    def energy_pj(self) -> float:
        return sum(l.energy_pj for l in self.layers)

    @property
    def col_tiles(self) -> int:
        return sum(l.col_tiles for l in self.layers)

    @property
    def area_um2(self) -> float:
        return sum(l.area_um2 for l in self.layers)

    @property
    def keeps_up(self) -> bool:
        return all(l.keeps_up for l in self.layers)

    def to_dict(self) -> dict[str, Any]:
        return {"periphery": asdict(self.periphery) if self.periphery else None, "mvm_ns": self.mvm_ns, "tile_cols": self.tile_cols,
                "time_ns": self.t_ns, "mvm_time_ns": self.t_mvm_ns, "post_time_ns": self.t_pp_ns,
                "energy_pj": self.energy_pj, "area_um2": self.area_um2, "column_tiles": self.col_tiles,
                "keeps_up": self.keeps_up, "layers": [asdict(l) for l in self.layers]}


def _col_tile_widths(columns: int, tile_cols: int) -> list[int]:
    full, rest = divmod(columns, tile_cols)
    return [tile_cols] * full + ([rest] if rest else [])


def network_cost(loads: Iterable[LayerLoad], per: Periphery, mvm_ns: float = MVM_NS,
                 tile_cols: int = 256) -> NetworkCost:
    """Time, energy and area per inference of ``loads`` with ``per`` beside every column tile (module docstring)."""
    loads = list(loads)
    cost = mapping_cost(loads, {ld.name: per for ld in loads}, mvm_ns, tile_cols)
    cost.periphery = per
    return cost


def mapping_cost(loads: Iterable[LayerLoad], units: dict[str, Periphery], mvm_ns: float = MVM_NS,
                 tile_cols: int = 256) -> NetworkCost:
    """Time, energy and area per inference of ``loads``, layer ``l`` with the periphery ``units[l]`` beside each of
    its column tiles (a heterogeneous mapping: fixed-point NMPUs of several formats, FP16 units)."""
    if not (isinstance(mvm_ns, (int, float)) and math.isfinite(mvm_ns) and mvm_ns > 0):
        raise ValueError(f"the tiles' MVM time must be a finite number of ns > 0, not {mvm_ns!r}")
    cost = NetworkCost(None, float(mvm_ns), tile_cols)
    for ld in loads:
        if ld.name not in units:
            raise ValueError(f"layer {ld.name}: no periphery given for it")
        per = units[ld.name]
        ns_per_cycle = 1000.0 / per.fmax_mhz
        widths = _col_tile_widths(ld.columns, tile_cols)
        t_pv = max(per.cycles_per_vector(c) for c in widths) * ns_per_cycle
        v = ld.vectors
        t_layer = mvm_ns + (v - 1) * max(mvm_ns, t_pv) + t_pv + per.latency * ns_per_cycle
        cost.layers.append(LayerCost(
            name=ld.name, vectors=v, columns=ld.columns, col_tiles=len(widths), t_mvm_ns=v * mvm_ns,
            t_pp_ns=v * t_pv + per.latency * ns_per_cycle, t_pp_vector_ns=t_pv, t_layer_ns=t_layer,
            keeps_up=t_pv <= mvm_ns, energy_pj=ld.values * per.energy_pj_per_value,
            area_um2=len(widths) * per.units * per.area_um2, unit=per.name))
    return cost


def units_to_keep_up(loads: Iterable[LayerLoad], per: Periphery, mvm_ns: float = MVM_NS,
                     tile_cols: int = 256) -> int | None:
    """The fewest units of ``per``'s kind per column tile with which every layer's post-processing of a vector
    takes no longer than the tiles' MVM (``ceil(c / (units x lanes))`` cycles within ``mvm_ns``); None when even
    one unit per column cannot (fewer cycles in an MVM than one)."""
    cycles = math.floor(mvm_ns * per.fmax_mhz / 1000.0 + 1e-9)
    if cycles < 1:
        return None
    widths = [w for ld in loads for w in _col_tile_widths(ld.columns, tile_cols)]
    return max([-(-w // (per.lanes * cycles)) for w in widths] + [1])


def one_mvm_speedup(fixed: Periphery, fp16: Periphery, columns: int = PAPER_COLUMNS) -> dict[str, Any]:
    """The post-processing of one MVM's ``columns`` values: its time on ``fixed`` against ``fp16`` (the paper's
    139x is this ratio for 64 fixed-point units against one FP16 unit), and the same for a long stream of
    vectors (throughput: the latency amortised)."""
    def once(p: Periphery) -> tuple[int, float]:
        cyc = p.cycles_per_vector(columns) + p.latency
        return cyc, cyc * 1000.0 / p.fmax_mhz
    (cf, tf), (c16, t16) = once(fixed), once(fp16)
    stream = (fp16.cycles_per_vector(columns) / fp16.fmax_mhz) / (fixed.cycles_per_vector(columns) / fixed.fmax_mhz)
    return {"columns": columns, "fixed_cycles": cf, "fixed_ns": tf, "fp16_cycles": c16, "fp16_ns": t16,
            "speedup": t16 / tf, "stream_speedup": stream,
            "derivation": (f"fixed: {fixed.units} units x {fixed.lanes} lane(s): ceil({columns} / "
                           f"{fixed.units * fixed.lanes}) + {fixed.latency} cycles = {cf} cycles at "
                           f"{fixed.fmax_mhz:.1f} MHz = {tf:.2f} ns; FP16: {fp16.units} unit x {fp16.lanes} lane(s): "
                           f"ceil({columns} / {fp16.units * fp16.lanes}) + {fp16.latency} cycles = {c16} cycles at "
                           f"{fp16.fmax_mhz:.1f} MHz = {t16:.2f} ns; ratio {t16 / tf:.1f}x "
                           f"(a long stream of vectors: {stream:.1f}x)")}


def layer_loads(net: Any, x: Any, config: Any) -> list[LayerLoad]:
    """Every analog layer's :class:`LayerLoad` of ``net`` (a built :class:`AnalogNetwork`), measured by running the
    samples ``x`` with a trace: a layer's vectors per inference are its ADC code rows over the samples."""
    n = len(x)
    if n < 1:
        raise ValueError("layer_loads: no samples to measure the layers' vectors on")
    _, trace = net.run(x, config, "fixed", record=True)
    loads = []
    for name in net.analog_layers:
        rows = trace[name].adc_codes.shape[0]       # every use's rows, for every sample
        p = net.programmed[name]
        k, c = p.target.shape
        loads.append(LayerLoad(name=name, vectors=rows // n, inputs=int(k), columns=int(c),
                               row_tiles=p.n_row_tiles, col_tiles=p.n_col_tiles))
    return loads


def layers_config(net: Any, config: Any) -> Any:
    """The configuration most of ``net``'s analog layers run ``config`` as (a layer without ReLU runs it with the
    ReLU stage off): the unit whose figures stand for every layer."""
    from collections import Counter
    per_layer = [c.config for c in net.coefficients(config).values()]
    top = Counter(c.identity() for c in per_layer).most_common(1)[0][0]
    return next(c for c in per_layer if c.identity() == top)


def periphery(u: Any, units: int) -> Periphery:
    """A unit of a PPA study (:class:`cosim.studies.ppa.UnitPPA`) placed ``units`` times per column tile."""
    return Periphery(name="fixed-point NMPU" if u.unit == "fixed" else "FP16 unit", units=units,
                     lanes=int(u.osu018["lanes"]), fmax_mhz=float(u.timing.fmax_mhz), latency=int(u.latency),
                     energy_pj_per_value=float(u.energy_pj_per_value), area_um2=float(u.area),
                     source=f"{u.timing.library}; fmax from OpenSTA, energy per value at fmax with the activity of "
                            f"{u.power.activity_nets}")


def cached_ppa_study(config: Any, work: Any, out: Any, *, samples: int, notify: Any = None, net: Any = None,
                     units: tuple[str, ...] = ("fixed", "fp16")) -> Any:
    """:func:`cosim.studies.ppa.ppa_study` of ``units`` (default both) on ``work``'s first layer of ``config``, kept
    in the cache folder under a key of what made it (the configuration, the units and their Verilog, the stimulus,
    the library): a second cost study of the same configuration and network reads it instead of re-running the
    flow. ``net``: ``work``'s network when the caller has built it (seed 0, t = 1 h, the configuration's tiles)."""
    import hashlib
    import json

    from nmpu_model.cache import cache_dir

    from ..sim import activity as act
    from ..synth import ppa
    from ..synth.flow import unit_verilog
    from .ppa import PPAStudy, ppa_study

    stim = act.layer_stimulus(work, config, None, samples, net=net)
    h = hashlib.sha256()
    for part in (json.dumps(config.identity(), sort_keys=True, default=str), ppa.osu018.NAME, stim.name,
                 *(unit_verilog(config, u)[0] for u in units)):
        h.update(part.encode() + b"\0")
    h.update(stim.codes.tobytes())
    for d in (stim.coef_codes, stim.coef_real):
        for k in sorted(d):
            h.update(k.encode() + d[k].tobytes())
    path = cache_dir("ppa") / f"{h.hexdigest()[:32]}.json"
    if path.exists():
        kept = json.loads(path.read_text())
        study = PPAStudy.from_json(kept["study"])
        if study is not None:
            study.stimulus = kept["stimulus"]
            return study
    study = ppa_study(config, tuple(units), work, out, samples=samples, notify=notify, stim=stim)
    doc: dict[str, Any] = {}
    study.merge_into(doc)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"study": doc, "stimulus": study.stimulus}, default=str))
    tmp.replace(path)
    return study
