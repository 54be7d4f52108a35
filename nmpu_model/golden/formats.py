"""Fixed-point formats and exact integer requantization.

A value in a fixed-point format is an integer *code* ``q`` standing for ``q * 2**-frac``
(``docs/datapath.md``). Rounding and overflow modes carry the names of Vitis HLS /
hls4ml ``ap_fixed`` without the ``AP_`` prefix, so users of HLS tools read our configurations
without a glossary.

Everything here works on integer numpy arrays and never goes through floating point.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

ROUNDING_MODES = ("TRN", "TRN_ZERO", "RND", "RND_ZERO", "RND_INF", "RND_MIN_INF", "RND_CONV")
OVERFLOW_MODES = ("WRAP", "SAT", "SAT_ZERO", "SAT_SYM")


class ConfigError(ValueError):
    """A configuration (file or object) that the NMPU cannot implement, naming the field."""


def _check_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an integer, not {value!r}")
    return int(value)


@dataclass(frozen=True)
class Fmt:
    """A fixed-point format, ``ap_fixed<bits, bits-frac>`` (signed) or ``ap_ufixed`` (unsigned).

    Parameters
    ----------
    bits : int
        Width of the code, at least 1.
    frac : int
        Number of fraction bits; may be negative (steps coarser than 1) or exceed ``bits``.
    signed : bool
        Two's complement when true.
    rounding, overflow : str
        How a value is fitted into this format when it is written by :func:`quantize`
        (``ROUNDING_MODES``, ``OVERFLOW_MODES``). Formats that are only read (coefficients)
        keep the ``ap_fixed`` defaults ``TRN``/``WRAP``, which are never used.
    pre_truncate : int
        When ``k > 0``, all but ``k`` of the dropped fraction bits are truncated (floor)
        before rounding: the cheap rounding of the NMPU paper.
    """

    bits: int
    frac: int
    signed: bool = True
    rounding: str = "TRN"
    overflow: str = "WRAP"
    pre_truncate: int = 0

    def __post_init__(self) -> None:
        bits = _check_int("bits", self.bits)
        _check_int("frac", self.frac)
        if bits < 1:
            raise ConfigError(f"bits must be at least 1, not {bits}")
        if not isinstance(self.signed, bool):
            raise ConfigError(f"signed must be true or false, not {self.signed!r}")
        if self.rounding not in ROUNDING_MODES:
            raise ConfigError(f"rounding must be one of {', '.join(ROUNDING_MODES)}, not {self.rounding!r}")
        if self.overflow not in OVERFLOW_MODES:
            raise ConfigError(f"overflow must be one of {', '.join(OVERFLOW_MODES)}, not {self.overflow!r}")
        k = _check_int("pre_truncate", self.pre_truncate)
        if k < 0:
            raise ConfigError(f"pre_truncate must be >= 0, not {k}")

    @property
    def min(self) -> int:
        """Smallest code."""
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        """Largest code."""
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    def with_frac(self, frac: int) -> "Fmt":
        """The same format with another ``frac`` (the per-layer output gain)."""
        return replace(self, frac=int(frac))

    def describe(self) -> str:
        kind = "ap_fixed" if self.signed else "ap_ufixed"
        return f"{kind}<{self.bits},{self.bits - self.frac}>"


def signed_bits(lo: int, hi: int) -> int:
    """Width of the smallest two's complement signal holding every integer in ``[lo, hi]``."""
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


def round_shift(v: np.ndarray, d: int, rounding: str, pre_truncate: int = 0, inplace: bool = False) -> np.ndarray:
    """Divide integer codes by ``2**d`` (``d >= 0``) and round by ``rounding``, exactly.

    With ``pre_truncate = k``, ``v`` is first floored to ``k`` extra fraction bits. Works on any
    signed integer array whose values leave one bit of headroom for the rounding add. With
    ``inplace``, ``v`` may be overwritten (the modes that need no comparison then make no temporary).
    """
    if d <= 0:
        return v
    if 0 < pre_truncate < d:
        v = np.right_shift(v, d - pre_truncate, out=v if inplace else None)
        d = pre_truncate
        inplace = True
    half = 1 << (d - 1)
    if inplace and rounding in ("TRN", "RND", "RND_MIN_INF"):
        add = {"TRN": 0, "RND": half, "RND_MIN_INF": half - 1}[rounding]
        if add:
            v += add
        v >>= d
        return v
    if rounding == "TRN":
        return v >> d
    if rounding == "TRN_ZERO":
        return np.where(v < 0, -((-v) >> d), v >> d)
    if rounding == "RND":
        return (v + half) >> d
    if rounding == "RND_MIN_INF":
        return (v + (half - 1)) >> d
    if rounding == "RND_ZERO":
        return (v + (half - 1) + (v < 0)) >> d
    if rounding == "RND_INF":
        return (v + half - (v < 0)) >> d
    if rounding == "RND_CONV":
        return (v + (half - 1) + ((v >> d) & 1)) >> d
    raise ConfigError(f"unknown rounding {rounding!r}")


def fit(n: np.ndarray, fmt: Fmt, inplace: bool = False) -> np.ndarray:
    """Fit integers into ``fmt`` by its overflow mode (step 4 of the spec's ``Q``); ``inplace`` may overwrite ``n``."""
    lo, hi = fmt.min, fmt.max
    out = n if inplace else None
    if fmt.overflow == "SAT":
        return np.clip(n, lo, hi, out=out)
    if fmt.overflow == "SAT_SYM":
        return np.clip(n, -hi if fmt.signed else lo, hi, out=out)
    if fmt.overflow == "SAT_ZERO":
        return np.where((n < lo) | (n > hi), 0, n)
    if fmt.overflow == "WRAP":
        mask = (1 << fmt.bits) - 1
        if fmt.signed:
            return ((n - lo) & mask) + lo
        return n & mask
    raise ConfigError(f"unknown overflow {fmt.overflow!r}")


def quantize(v: np.ndarray, v_frac: int, fmt: Fmt, inplace: bool = False) -> np.ndarray:
    """``Q(v * 2**-v_frac, fmt)`` of the spec, on integer codes, exactly.

    Parameters
    ----------
    v : ndarray of signed integers
        Codes of the exact value, with ``v_frac`` fraction bits.
    v_frac : int
        Fraction bits of ``v``.
    fmt : Fmt
        Target format with its rounding, overflow and pre-truncation.
    inplace : bool
        ``v`` may be overwritten (the datapath's own buffers: fewer passes over memory).

    The caller guarantees that the dtype of ``v`` holds ``v << max(0, fmt.frac - v_frac)`` and
    the rounding add (``NMPUConfig`` checks this when a configuration is loaded).
    """
    shift = fmt.frac - v_frac
    if shift > 0:
        n = np.left_shift(v, shift, out=v if inplace else None)
    elif shift == 0:
        n = v
    else:
        n = round_shift(v, -shift, fmt.rounding, fmt.pre_truncate, inplace)
    return fit(n, fmt, inplace=inplace or n is not v)
