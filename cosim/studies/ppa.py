"""Power, performance and area of the units in a library with timing and power (OSU 0.18 um, OpenSTA).

Synthesis maps each unit onto the library (:func:`cosim.synth.ppa.map_netlist`), OpenSTA times it, the mapped
netlist is simulated on a real layer's ADC codes for its switching activity (:mod:`cosim.sim.activity`), and
OpenSTA turns that activity into power. :func:`ppa_study` returns a :class:`PPAStudy`; ``nmpu synth`` prints it
(:func:`cosim.report.tables.ppa_text`) and writes it into its JSON (:meth:`PPAStudy.merge_into`), which the run
report reads back (:meth:`PPAStudy.from_json`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

from nmpu_model.golden.config import NMPUConfig

from ..sim.activity import DEFAULT_SAMPLES
from ..synth.ppa import Power, Timing


@dataclass
class UnitPPA:
    """One unit's figures: ``key`` is ``fixed``, ``fp16`` or ``fp16_pipelined`` (the FP16 unit with 5-stage
    FMAs); ``osu018`` the mapped netlist's figures and files (:func:`cosim.synth.ppa.netlist_dict`)."""

    key: str
    unit: str
    latency: int
    fp16_fma_stages: int
    activity_kind: str
    osu018: dict[str, Any]
    timing: Timing
    power: Power
    layout: dict[str, Any] | None = None     # placed and routed (:func:`cosim.synth.layout.post_layout`)

    @property
    def area(self) -> float:
        """µm², library cells only (memories excluded)."""
        return self.osu018["area"]

    @property
    def energy_pj_per_value(self) -> float:
        return self.power.energy_pj_per_value

    @property
    def throughput_per_mm2(self) -> float:
        """Values per second per mm² at fmax (one value per lane and cycle)."""
        return self.timing.fmax_mhz * 1e6 * self.osu018["lanes"] / (self.area * 1e-6)

    def to_dict(self) -> dict[str, Any]:
        return {"unit": self.unit, "timing": self.timing.to_dict(), "power": self.power.to_dict(),
                "energy_pj_per_value": self.energy_pj_per_value, "osu018": self.osu018,
                "activity_kind": self.activity_kind, "latency": self.latency, "fp16_fma_stages": self.fp16_fma_stages,
                "throughput_per_mm2": self.throughput_per_mm2, **({"layout": self.layout} if self.layout else {})}

    @classmethod
    def from_dict(cls, key: str, d: dict[str, Any]) -> "UnitPPA":
        return cls(key=key, unit=d["unit"], latency=d["latency"], fp16_fma_stages=d["fp16_fma_stages"],
                   activity_kind=d["activity_kind"], osu018=d["osu018"], timing=Timing(**d["timing"]),
                   power=Power(**d["power"]), layout=d.get("layout"))


@dataclass
class EqualClock:
    """The fixed unit and the pipelined FP16 unit at one clock both meet (the lower of their fmax)."""

    clock_mhz: float
    of_fixed_fmax: float
    fixed: Power
    fp16_pipelined: Power
    energy_ratio: float           # FP16 / fixed energy per value
    area_ratio: float             # FP16 / fixed area
    fp16_flip_flops: int
    fp16_latency: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EqualClock":
        return cls(**{**d, "fixed": Power(**d["fixed"]), "fp16_pipelined": Power(**d["fp16_pipelined"])})


@dataclass
class PPAComparison:
    """Fixed unit against FP16 unit, each at its own fmax: ratios (``fixed / FP16`` for fmax and throughput per
    area, ``FP16 / fixed`` for energy and area), how many fixed lanes fit in the FP16 unit's area and their
    throughput; ``equal_clock`` when the pipelined FP16 unit was mapped."""

    library: str
    activity: str
    stimulus: str
    fmax_ratio: float
    energy_ratio: float
    area_ratio: float
    throughput_per_area_ratio: float
    fixed_lanes_in_fp16_area: float
    throughput_in_fp16_area_ratio: float
    equal_clock: EqualClock | None = None
    plot: str | None = None
    layout: dict[str, float] | None = None    # the ratios again, post-layout (die area for area)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("equal_clock", "plot", "layout"):
            if d[k] is None:
                del d[k]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PPAComparison":
        eq = d.get("equal_clock")
        return cls(**{**d, "equal_clock": EqualClock.from_dict(eq) if eq else None})


@dataclass
class PPAStudy:
    """Every unit's :class:`UnitPPA` (in the order they ran) and, with both units, the :class:`PPAComparison`."""

    library: str
    activity: str                 # "layer" or "random"
    stimulus: str                 # what was simulated for the activity (a sentence)
    units: dict[str, UnitPPA]
    comparison: PPAComparison | None = None

    def merge_into(self, doc: dict[str, Any]) -> None:
        """Write the study into ``nmpu synth``'s JSON document: per unit key its figures, ``ppa`` the comparison."""
        for key, u in self.units.items():
            doc.setdefault(key, {"unit": u.unit}).update(u.to_dict())
        if self.comparison is not None:
            doc["ppa"] = self.comparison.to_dict()

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "PPAStudy | None":
        """The study in a ``nmpu synth --json`` document, or None when it has none (``--no-ppa``)."""
        keys = [k for k in ("fixed", "fp16", "fp16_pipelined") if "timing" in doc.get(k, {})]
        if not keys:
            return None
        units = {k: UnitPPA.from_dict(k, doc[k]) for k in keys}
        comp = PPAComparison.from_dict(doc["ppa"]) if "ppa" in doc else None
        first = units[keys[0]]
        return cls(library=first.timing.library, activity=first.activity_kind,
                   stimulus=comp.stimulus if comp else first.power.activity, units=units, comparison=comp)


def ppa_study(config: NMPUConfig, units: tuple[str, ...], work: Any, out: Path, *, activity: str = "layer",
              layer: str | None = None, samples: int = DEFAULT_SAMPLES,
              notify: Callable[[str], None] | None = None, stim: Any = None,
              layout: dict[str, Any] | None = None) -> PPAStudy:
    """Map, time, simulate and power ``units`` of ``config`` on a layer of ``work`` (a loaded workload).

    ``activity`` ``"layer"`` uses the layer's real ADC codes, ``"random"`` uniform random codes with its
    coefficients. With both units, the FP16 unit with 5-stage FMAs is mapped too (unless the configuration's
    FMAs already have 5 stages) for the equal-clock comparison. ``stim``: the layer's stimulus when the caller
    has made it already (:func:`cosim.sim.activity.layer_stimulus` of the same arguments). ``layout``
    (``{"density": ..., "layers": ...}``): ``units`` placed and routed too (not the pipelined FP16 unit), with
    their post-layout timing and power (:func:`cosim.synth.layout.post_layout`) and, with both, a picture
    (``out/layout.png``) and the ratios post-layout.
    """
    from ..sim import activity as act
    from ..synth import ppa

    stim = stim or act.layer_stimulus(work, config, layer, samples)
    if activity == "random":
        stim = act.random_codes(stim, config)
    runs = [(u, u, config, "") for u in units]
    if len(units) == 2 and config.rtl.fp16_fma_stages == 3:
        runs.append(("fp16_pipelined", "fp16", replace(config, rtl=replace(config.rtl, fp16_fma_stages=5)), "-5stage"))
    nets, acts, res = {}, {}, {}
    for key, unit, cfg, tag in runs:
        n = nets[key] = ppa.map_netlist(cfg, unit, out, notify=notify, tag=tag)
        t = ppa.timing(n)
        m = act.measure(cfg, unit, [n.netlist] + n.models, stim, n.top)
        a = acts[key] = ppa.Activity(m["nets"], m["source"], m["cycles"], m["values"])
        lay = None
        if layout is not None and key in units:
            from ..synth.layout import post_layout
            lay = post_layout(n, a, out / f"layout-{key}", notify=notify, **layout)
        res[key] = UnitPPA(key=key, unit=unit, latency=n.latency, fp16_fma_stages=cfg.rtl.fp16_fma_stages,
                           activity_kind=activity, osu018=ppa.netlist_dict(n), timing=t,
                           power=ppa.power(n, t.fmax_mhz, a), layout=lay)
    study = PPAStudy(library=ppa.osu018.NAME, activity=activity, stimulus=stim.name, units=res)
    if len(units) == 2:
        fx, fp = res["fixed"], res["fp16"]
        lanes_fit = fp.area / fx.area
        eq = None
        if "fp16_pipelined" in res:
            # both units at one clock that both meet: the fixed unit's fmax, or the pipelined FP16 unit's
            # where that is a little lower; the unit whose fmax it is keeps its power at fmax
            pp = res["fp16_pipelined"]
            clock = min(fx.timing.fmax_mhz, pp.timing.fmax_mhz)
            at = {k: res[k].power if res[k].power.clock_mhz == clock else ppa.power(nets[k], clock, acts[k])
                  for k in ("fixed", "fp16_pipelined")}
            eq = EqualClock(clock_mhz=clock, of_fixed_fmax=clock / fx.timing.fmax_mhz, fixed=at["fixed"],
                            fp16_pipelined=at["fp16_pipelined"],
                            energy_ratio=at["fp16_pipelined"].energy_pj_per_value / at["fixed"].energy_pj_per_value,
                            area_ratio=pp.area / fx.area, fp16_flip_flops=pp.osu018["flip_flops"],
                            fp16_latency=pp.latency)
        study.comparison = PPAComparison(
            library=ppa.osu018.NAME, activity=activity, stimulus=stim.name,
            fmax_ratio=fx.timing.fmax_mhz / fp.timing.fmax_mhz,
            energy_ratio=fp.energy_pj_per_value / fx.energy_pj_per_value, area_ratio=lanes_fit,
            throughput_per_area_ratio=fx.throughput_per_mm2 / fp.throughput_per_mm2,
            fixed_lanes_in_fp16_area=lanes_fit,
            throughput_in_fp16_area_ratio=lanes_fit * fx.timing.fmax_mhz / fp.timing.fmax_mhz, equal_clock=eq)
        if fx.layout and fp.layout:
            lx, lp = fx.layout, fp.layout
            study.comparison.layout = {
                "fmax_ratio": lx["fmax_mhz"] / lp["fmax_mhz"],
                "energy_ratio": lp["energy_pj_per_value"] / lx["energy_pj_per_value"],
                "die_area_ratio": lp["figures"]["die_area_um2"] / lx["figures"]["die_area_um2"],
                "wire_length_ratio": lp["figures"]["wire_length_um"] / lx["figures"]["wire_length_um"]}
    if layout is not None:
        from ..synth.layout import picture
        png = picture({f"{k} ({u.layout['top']})": (Path(u.layout["files"]["def"]), Path(u.layout["files"]["lef"]))
                       for k, u in res.items() if u.layout}, out / "layout.png")
        for u in res.values():
            if u.layout:
                u.layout["picture"] = str(png)
    return study
