"""NMPUConfig: the one source of truth for every width of the NMPU.

Loaded from TOML (schema in README and ``examples/default.toml``), validated at load: a field
that the datapath cannot implement is refused with a :class:`ConfigError` naming the file and
the field. The RTL takes its widths from :meth:`NMPUConfig.plan`, so a width is written once.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from ..files import read_document
from .formats import ConfigError, Fmt, signed_bits

MAX_INTERMEDIATE_BITS = 62

_FMT_KEYS = ("bits", "frac", "signed")
_Q_KEYS = _FMT_KEYS + ("rounding", "overflow", "pre_truncate")
_TOP_KEYS = {"adc_bits", "relu", "bn_stage", "scale", "offset", "output", "bn_scale", "bn_offset", "mid", "rtl"}


FP16_FMA_STAGES = (3, 5)


@dataclass(frozen=True)
class RTLParams:
    """Hardware-only parameters (the golden model ignores them).

    Parameters
    ----------
    lanes : int
        Values processed per cycle.
    columns : int
        Depth of the per-column coefficient memory.
    fp16_fma_stages : int
        Pipeline stages of each binary16 FMA of the FP16 baseline unit: 3 (default) or 5 (the alignment
        and addition, and the normalization and rounding, each cut in two: a faster clock, more
        flip-flops). The fixed-point NMPU ignores it.
    """

    lanes: int = 1
    columns: int = 256
    fp16_fma_stages: int = 3

    def __post_init__(self) -> None:
        for name in ("lanes", "columns"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"rtl.{name} must be a positive integer, not {v!r}")
        if self.columns % self.lanes:
            raise ConfigError(f"rtl.columns ({self.columns}) must be a multiple of rtl.lanes ({self.lanes})")
        if isinstance(self.fp16_fma_stages, bool) or self.fp16_fma_stages not in FP16_FMA_STAGES:
            raise ConfigError(f"rtl.fp16_fma_stages must be one of {', '.join(map(str, FP16_FMA_STAGES))}, "
                              f"not {self.fp16_fma_stages!r}")


@dataclass(frozen=True)
class Span:
    """An exact intermediate: integer codes in ``[lo, hi]`` with ``frac`` fraction bits."""

    lo: int
    hi: int
    frac: int

    @property
    def bits(self) -> int:
        return signed_bits(self.lo, self.hi)


def _product(a: Span, b_lo: int, b_hi: int, b_frac: int) -> Span:
    corners = (a.lo * b_lo, a.lo * b_hi, a.hi * b_lo, a.hi * b_hi)
    return Span(min(corners), max(corners), a.frac + b_frac)


def _add(a: Span, b: Span) -> Span:
    f = max(a.frac, b.frac)
    sa, sb = f - a.frac, f - b.frac
    return Span((a.lo << sa) + (b.lo << sb), (a.hi << sa) + (b.hi << sb), f)


def _requant_span(v: Span, fmt: Fmt) -> Span:
    """Range of the value before the overflow step of ``Q(v, fmt)``, including the rounding add."""
    shift = fmt.frac - v.frac
    if shift >= 0:
        return Span(v.lo << shift, v.hi << shift, fmt.frac)
    d = -shift
    if 0 < fmt.pre_truncate < d:
        d = fmt.pre_truncate
        v = Span(v.lo >> (-shift - d), v.hi >> (-shift - d), v.frac)
    return Span(v.lo, v.hi + (1 << (d - 1)), v.frac)


@dataclass(frozen=True)
class Plan:
    """The exact intermediates of the datapath for one configuration.

    ``a`` is the affine result, ``a2`` the mid code (BN stage only), ``b`` the value entering
    the output quantizer (after ReLU), and ``bits`` the widest signal needed anywhere,
    rounding adds and output shifts over the whole ``out_frac`` range included.
    """

    a: Span
    a2: Span | None
    b: Span
    bits: int


#: every per-column coefficient, in the order of the hardware's selector (``rtl.blocks.CoefSel``)
COEF_NAMES = ("scale", "offset", "bn_scale", "bn_offset")


@dataclass(frozen=True)
class NMPUConfig:
    """A complete NMPU configuration (``docs/datapath.md``).

    Parameters
    ----------
    adc_bits : int
        Width of the signed ADC code ``x``.
    scale, offset : Fmt
        Formats of the per-column affine coefficients ``s`` and ``o``.
    output : Fmt
        Output format; ``output.frac`` is the default ``out_frac``.
    out_frac_min, out_frac_max : int
        Range of the per-layer ``out_frac`` the hardware accepts (default ``output.frac - 8``
        to ``output.frac + 7``: 16 values, so the hardware's shift amount is a 4-bit field).
    relu, bn_stage : bool
        Whether the ReLU and the batch-norm stage are present.
    bn_scale, bn_offset, mid : Fmt or None
        Batch-norm coefficient formats and the mid requantization format (BN stage only).
    rtl : RTLParams
        Hardware-only parameters.
    """

    adc_bits: int = 8
    scale: Fmt = Fmt(8, 7, False)
    offset: Fmt = Fmt(8, 1, True)
    output: Fmt = Fmt(8, 0, True, "RND", "SAT")
    out_frac_min: int | None = None
    out_frac_max: int | None = None
    relu: bool = True
    bn_stage: bool = False
    bn_scale: Fmt | None = None
    bn_offset: Fmt | None = None
    mid: Fmt | None = None
    rtl: RTLParams = field(default_factory=RTLParams)
    source: str = "<defaults>"

    def __post_init__(self) -> None:
        if isinstance(self.adc_bits, bool) or not isinstance(self.adc_bits, int) or self.adc_bits < 1:
            raise ConfigError(f"adc_bits must be an integer >= 1, not {self.adc_bits!r}")
        for name in ("relu", "bn_stage"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, not {getattr(self, name)!r}")
        if self.out_frac_min is None:
            object.__setattr__(self, "out_frac_min", self.output.frac - 8)
        if self.out_frac_max is None:
            object.__setattr__(self, "out_frac_max", self.output.frac + 7)
        if not self.out_frac_min <= self.output.frac <= self.out_frac_max:
            raise ConfigError(
                f"output.frac_min <= output.frac <= output.frac_max does not hold: "
                f"{self.out_frac_min} <= {self.output.frac} <= {self.out_frac_max}")
        if self.bn_stage:
            for name in ("bn_scale", "bn_offset", "mid"):
                if getattr(self, name) is None:
                    raise ConfigError(f"[{name}] is required when bn_stage = true")
        plan = self.plan()
        if plan.bits > MAX_INTERMEDIATE_BITS:
            raise ConfigError(
                f"exact intermediates need {plan.bits} bits, more than {MAX_INTERMEDIATE_BITS}: "
                f"narrow scale/offset/bn formats or the output.frac range")

    # -- derived widths -------------------------------------------------------------------
    @property
    def coef_names(self) -> list[str]:
        """The per-column coefficients of this configuration: ``scale``, ``offset`` and, with the BN
        stage, ``bn_scale``, ``bn_offset`` (the one list: model, RTL, testbenches and files use it)."""
        return list(COEF_NAMES if self.bn_stage else COEF_NAMES[:2])

    @property
    def adc(self) -> Fmt:
        return Fmt(self.adc_bits, 0, True)

    def plan(self) -> Plan:
        x = Span(self.adc.min, self.adc.max, 0)
        a = _add(_product(x, self.scale.min, self.scale.max, self.scale.frac),
                 Span(self.offset.min, self.offset.max, self.offset.frac))
        widths = [a.bits]
        a2 = None
        b = a
        if self.bn_stage:
            widths.append(_requant_span(a, self.mid).bits)
            a2 = Span(self.mid.min, self.mid.max, self.mid.frac)
            b = _add(_product(a2, self.bn_scale.min, self.bn_scale.max, self.bn_scale.frac),
                     Span(self.bn_offset.min, self.bn_offset.max, self.bn_offset.frac))
            widths.append(b.bits)
        if self.relu:
            b = Span(max(b.lo, 0), max(b.hi, 0), b.frac)
        for f in (self.out_frac_min, self.out_frac_max):
            widths.append(_requant_span(b, self.output.with_frac(f)).bits)
        # a written format's own range (and the WRAP mask) must fit the working signal too
        widths += [fmt.bits + 1 for fmt in (self.output, self.mid) if fmt is not None]
        return Plan(a, a2, b, max(widths))

    def check_out_frac(self, out_frac: int) -> int:
        """Return ``out_frac`` as int, or raise ``ValueError`` when outside the configured range."""
        if isinstance(out_frac, bool) or not isinstance(out_frac, (int,)) and not hasattr(out_frac, "__index__"):
            raise ValueError(f"out_frac must be an integer, not {out_frac!r}")
        f = int(out_frac)
        if not self.out_frac_min <= f <= self.out_frac_max:
            raise ValueError(f"out_frac {f} is outside the configured range "
                             f"[{self.out_frac_min}, {self.out_frac_max}] (output.frac_min/frac_max)")
        return f

    # -- TOML ----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<dict>") -> "NMPUConfig":
        """Build and validate a configuration from the TOML schema's mapping."""
        try:
            return cls._from_dict(data, source)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None

    @classmethod
    def _from_dict(cls, data: Mapping[str, Any], source: str) -> "NMPUConfig":
        unknown = sorted(set(data) - _TOP_KEYS)
        if unknown:
            raise ConfigError(f"unknown field {unknown[0]!r} (known: {', '.join(sorted(_TOP_KEYS))})")

        def fmt(name: str, keys: tuple[str, ...], required: bool) -> Fmt | None:
            if name not in data:
                if required:
                    raise ConfigError(f"[{name}] is missing")
                return None
            table = data[name]
            if not isinstance(table, Mapping):
                raise ConfigError(f"[{name}] must be a table")
            allowed = set(keys) | ({"frac_min", "frac_max"} if name == "output" else set())
            extra = sorted(set(table) - allowed)
            if extra:
                raise ConfigError(f"unknown field {name}.{extra[0]}")
            for k in ("bits", "frac"):
                if k not in table:
                    raise ConfigError(f"{name}.{k} is missing")
            kw = {k: table[k] for k in keys if k in table}
            try:
                return Fmt(**kw)
            except ConfigError as e:
                raise ConfigError(f"{name}.{e}") from None

        bn = data.get("bn_stage", False)
        kw: dict[str, Any] = dict(
            adc_bits=data.get("adc_bits", 8),
            relu=data.get("relu", True),
            bn_stage=bn,
            scale=fmt("scale", _FMT_KEYS, False) or NMPUConfig.scale,
            offset=fmt("offset", _FMT_KEYS, False) or NMPUConfig.offset,
            output=fmt("output", _Q_KEYS, False) or NMPUConfig.output,
            bn_scale=fmt("bn_scale", _FMT_KEYS, bn is True),
            bn_offset=fmt("bn_offset", _FMT_KEYS, bn is True),
            mid=fmt("mid", _Q_KEYS, bn is True),
            source=source,
        )
        out = data.get("output", {})
        for key, attr in (("frac_min", "out_frac_min"), ("frac_max", "out_frac_max")):
            if key in out:
                v = out[key]
                if isinstance(v, bool) or not isinstance(v, int):
                    raise ConfigError(f"output.{key} must be an integer, not {v!r}")
                kw[attr] = v
        rtl = data.get("rtl", {})
        if not isinstance(rtl, Mapping):
            raise ConfigError("[rtl] must be a table")
        extra = sorted(set(rtl) - {f.name for f in fields(RTLParams)})
        if extra:
            raise ConfigError(f"unknown field rtl.{extra[0]}")
        kw["rtl"] = RTLParams(**rtl)
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        def fmt(f: Fmt, q: bool) -> dict[str, Any]:
            d: dict[str, Any] = {"bits": f.bits, "frac": f.frac, "signed": f.signed}
            if q:
                d.update(rounding=f.rounding, overflow=f.overflow, pre_truncate=f.pre_truncate)
            return d

        d: dict[str, Any] = {"adc_bits": self.adc_bits, "relu": self.relu, "bn_stage": self.bn_stage,
                             "scale": fmt(self.scale, False), "offset": fmt(self.offset, False),
                             "output": fmt(self.output, True)}
        d["output"].update(frac_min=self.out_frac_min, frac_max=self.out_frac_max)
        if self.bn_stage:
            d.update(bn_scale=fmt(self.bn_scale, False), bn_offset=fmt(self.bn_offset, False),
                     mid=fmt(self.mid, True))
        d["rtl"] = {"lanes": self.rtl.lanes, "columns": self.rtl.columns}
        if self.rtl.fp16_fma_stages != 3:       # written only when set: the default's identity stays as it was
            d["rtl"]["fp16_fma_stages"] = self.rtl.fp16_fma_stages
        return d

    def to_toml(self) -> str:
        """The configuration as TOML text that :func:`load_config` reads back to an equal config."""
        return toml_text(self.to_dict())

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_toml())

    def with_fields(self, **changes: Any) -> "NMPUConfig":
        """A validated copy with some fields replaced."""
        return replace(self, **changes)

    def identity(self) -> str:
        """A short stable hash of everything that shapes hardware (for build caches)."""
        import hashlib
        return hashlib.sha1(self.to_toml().encode()).hexdigest()[:12]


def toml_text(d: Mapping[str, Any]) -> str:
    """A configuration document (:meth:`NMPUConfig.to_dict`'s shape: values, and tables of values) as TOML text."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    for k, v in d.items():
        if isinstance(v, Mapping):
            tables.append((k, v))
        else:
            lines.append(f"{k} = {_toml_value(v)}")
    for name, table in tables:
        lines.append(f"\n[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    return str(v)


def load_config(path: str | Path | None = None) -> NMPUConfig:
    """Load and validate a TOML configuration; ``None`` gives the defaults of the spec."""
    if path is None:
        return NMPUConfig()
    return NMPUConfig.from_dict(read_document(path, "TOML", ConfigError), source=str(path))


def set_field(config: NMPUConfig, dotted: str, value: Any) -> NMPUConfig:
    """A copy of ``config`` with one dotted field (``scale.bits``, ``adc_bits``, ...) replaced."""
    d = config.to_dict()
    parts = dotted.split(".")
    target = d
    for p in parts[:-1]:
        if p not in target or not isinstance(target[p], dict):
            raise ConfigError(f"unknown field {dotted!r}")
        target = target[p]
    if parts[-1] not in target:
        raise ConfigError(f"unknown field {dotted!r}")
    target[parts[-1]] = value
    return NMPUConfig.from_dict(d, source=config.source)
