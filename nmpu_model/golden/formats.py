"""Fixed-point formats and exact integer requantization.

A value in a fixed-point format is an integer *code* ``q`` standing for ``q * 2**-frac``
(``docs/datapath.md``). Rounding and overflow modes carry the names of Vitis HLS /
hls4ml ``ap_fixed`` without the ``AP_`` prefix, so users of HLS tools read our configurations
without a glossary.

Everything here works on integer numpy arrays and never goes through floating point.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum, StrEnum

import numpy as np


class Up(Enum):
    """When a value that its distance to the codes leaves undecided goes to the code above.

    For a rounding to nearest, the undecided values are the ties (exactly half an LSB above a code); for a
    truncating mode, every value that is not a code. The rule is written once as a sum
    ``always + negative * (v < 0) + odd * (lower code is odd)`` (:attr:`terms`), which the integer
    implementations add, and as a value (:meth:`of`), which the logic and float implementations use.
    """

    ALWAYS = (1, 0, 0)
    NEVER = (0, 0, 0)
    NEGATIVE = (0, 1, 0)
    POSITIVE = (1, -1, 0)
    ODD = (0, 0, 1)
    EVEN = (1, 0, -1)      # only the deliberate fault of ODD (the RTL's broken-tie tests)

    @property
    def terms(self) -> tuple[int, int, int]:
        """``(always, negative, odd)``: the rule is ``always + negative * neg + odd * odd_bit`` (0 or 1)."""
        return self.value

    def of(self, neg, odd):
        """The rule for a value whose sign is ``neg`` and whose lower code's parity is ``odd``.

        ``neg`` and ``odd`` are truth values of any kind that has ``~`` (numpy bool arrays, Amaranth 1-bit
        values); ``ALWAYS`` and ``NEVER`` give the Python constants ``True`` and ``False``.
        """
        return {Up.ALWAYS: True, Up.NEVER: False, Up.NEGATIVE: neg, Up.POSITIVE: ~neg,
                Up.ODD: odd, Up.EVEN: ~odd}[self]

    @property
    def opposite(self) -> "Up":
        """The rule that decides every undecided value the other way."""
        return {Up.ALWAYS: Up.NEVER, Up.NEVER: Up.ALWAYS, Up.NEGATIVE: Up.POSITIVE,
                Up.POSITIVE: Up.NEGATIVE, Up.ODD: Up.EVEN, Up.EVEN: Up.ODD}[self]


class Rounding(StrEnum):
    """The ``ap_fixed`` rounding modes: to nearest or truncating (:attr:`nearest`), and :attr:`up`, the rule
    that decides what the distance leaves open. Every implementation (:func:`round_shift`, the compiled
    datapath, the float baselines, both RTL units) is written from these two attributes, not from the names."""

    TRN = ("TRN", False, Up.NEVER)              # floor
    TRN_ZERO = ("TRN_ZERO", False, Up.NEGATIVE)  # toward zero: ceil for negatives
    RND = ("RND", True, Up.ALWAYS)              # ties toward +inf
    RND_ZERO = ("RND_ZERO", True, Up.NEGATIVE)  # ties toward zero
    RND_INF = ("RND_INF", True, Up.POSITIVE)    # ties away from zero
    RND_MIN_INF = ("RND_MIN_INF", True, Up.NEVER)  # ties toward -inf
    RND_CONV = ("RND_CONV", True, Up.ODD)       # ties to even

    def __new__(cls, name: str, nearest: bool, up: Up) -> "Rounding":
        obj = str.__new__(cls, name)
        obj._value_ = name
        obj.nearest, obj.up = nearest, up
        return obj

    def bias(self, d: int) -> tuple[int, int]:
        """``(base, step)``: dividing ``v`` by ``2**d`` (``d >= 1``) in this mode is
        ``(v + base + step * up) >> d`` with ``up`` the 0/1 value of :attr:`up` (a floor division)."""
        return ((1 << (d - 1)) - 1, 1) if self.nearest else (0, (1 << d) - 1)


class Overflow(StrEnum):
    """The ``ap_fixed`` overflow modes: :attr:`wraps` (keep the low bits), else saturate to the
    :meth:`bounds` (``SAT``, ``SAT_SYM``: symmetric, the lowest code ``-max``) or, :attr:`to_zero`,
    give 0 (``SAT_ZERO``)."""

    WRAP = ("WRAP", True, False, False)
    SAT = ("SAT", False, False, False)
    SAT_ZERO = ("SAT_ZERO", False, True, False)
    SAT_SYM = ("SAT_SYM", False, False, True)

    def __new__(cls, name: str, wraps: bool, to_zero: bool, symmetric: bool) -> "Overflow":
        obj = str.__new__(cls, name)
        obj._value_ = name
        obj.wraps, obj.to_zero, obj.symmetric = wraps, to_zero, symmetric
        return obj

    def bounds(self, fmt: "Fmt") -> tuple[int, int]:
        """The lowest and highest code this mode saturates to in ``fmt``."""
        return (-fmt.max if self.symmetric and fmt.signed else fmt.min), fmt.max

    def extremes(self, fmt: "Fmt") -> tuple[int, int]:
        """The codes of ``-inf`` and ``+inf`` (a float overflow): infinity has no low bits to wrap, so
        every mode saturates, ``SAT_ZERO`` to 0."""
        return (0, 0) if self.to_zero else self.bounds(fmt)


ROUNDING_MODES = tuple(Rounding)
OVERFLOW_MODES = tuple(Overflow)


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
    rounding, overflow : Rounding, Overflow
        How a value is fitted into this format when it is written by :func:`quantize` (their names
        are accepted and converted). Formats that are only read (coefficients)
        keep the ``ap_fixed`` defaults ``TRN``/``WRAP``, which are never used.
    pre_truncate : int
        When ``k > 0``, all but ``k`` of the dropped fraction bits are truncated (floor)
        before rounding: the cheap rounding of the NMPU paper.
    """

    bits: int
    frac: int
    signed: bool = True
    rounding: Rounding = Rounding.TRN
    overflow: Overflow = Overflow.WRAP
    pre_truncate: int = 0

    def __post_init__(self) -> None:
        bits = _check_int("bits", self.bits)
        _check_int("frac", self.frac)
        if bits < 1:
            raise ConfigError(f"bits must be at least 1, not {bits}")
        if not isinstance(self.signed, bool):
            raise ConfigError(f"signed must be true or false, not {self.signed!r}")
        object.__setattr__(self, "rounding", rounding_mode(self.rounding))
        object.__setattr__(self, "overflow", overflow_mode(self.overflow))
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


def rounding_mode(name: object) -> Rounding:
    """The :class:`Rounding` of a name, or a :class:`ConfigError` listing the names."""
    return _mode(Rounding, "rounding", name)


def overflow_mode(name: object) -> Overflow:
    """The :class:`Overflow` of a name, or a :class:`ConfigError` listing the names."""
    return _mode(Overflow, "overflow", name)


def _mode(enum: type, what: str, name: object):
    try:
        return enum(name)
    except ValueError:
        shown = str(name) if isinstance(name, str) else repr(name)
        raise ConfigError(f"{what} must be one of {', '.join(enum)}, not {shown!r}") from None


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
    rounding = rounding_mode(rounding)
    base, step = rounding.bias(d)
    always, negative, odd = rounding.up.terms
    if not (negative or odd):           # a constant bias: no comparison, no temporary with inplace
        bias = base + step * always
        if not inplace:
            return (v + bias) >> d
        if bias:
            v += bias
        v >>= d
        return v
    up = rounding.up.of(v < 0, ((v >> d) & 1).astype(bool))
    return (v + base + (up if step == 1 else up * v.dtype.type(step))) >> d


def fit(n: np.ndarray, fmt: Fmt, inplace: bool = False) -> np.ndarray:
    """Fit integers into ``fmt`` by its overflow mode (step 4 of the spec's ``Q``); ``inplace`` may overwrite ``n``."""
    out = n if inplace else None
    if fmt.overflow.wraps:
        lo, mask = fmt.min, (1 << fmt.bits) - 1
        return ((n - lo) & mask) + lo if fmt.signed else n & mask
    if fmt.overflow.to_zero:
        return np.where((n < fmt.min) | (n > fmt.max), 0, n)
    return np.clip(n, *fmt.overflow.bounds(fmt), out=out)


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
