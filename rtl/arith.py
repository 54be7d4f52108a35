"""Arithmetic blocks of the NMPU datapath, one class per stage.

Each block is a small :class:`amaranth.lib.wiring.Component` with an input ``i`` (and
sometimes more operands), an output ``o`` and, when it is registered, a clock enable ``en``.
Each declares ``LATENCY``: the number of clock edges (with ``en`` high) from an input to the
output that depends on it. The top (:mod:`rtl.nmpu`) drives every ``en`` from one pipeline
advance signal, so a stalled pipeline holds every stage.

The blocks compute exactly the integer functions of :mod:`nmpu_model.golden.formats`
(``round_shift``, ``fit``) and the spec's affine stage, and their sibling tests
(``tests/rtl/test_arith.py``) check that exhaustively over small widths.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from nmpu_model.golden.formats import ConfigError, Fmt, Rounding, Up, rounding_mode

__all__ = ["RoundShift", "VarQuantize", "Fit", "fit_logic", "MulAdd", "fmt_shape", "round_shift_width",
           "up_rule", "either", "both", "as_value"]


def up_rule(rounding: Rounding, fault: bool = False) -> Up:
    """The rule that decides a rounding's undecided values (:attr:`Rounding.up`). With ``fault``, a
    deliberately wrong tie rule (the opposite one), used only by the "broken RTL" tests to prove that
    the verification catches a one-LSB error on ties; truncating modes have no ties and keep theirs."""
    return rounding.up.opposite if fault and rounding.nearest else rounding.up


def either(a, b):
    """``a | b`` of 1-bit values, where the Python constants ``True``/``False`` (from :meth:`Up.of`) fold."""
    if a is True or b is True:
        return True
    return b if a is False else (a if b is False else a | b)


def both(a, b):
    """``a & b`` of 1-bit values, where the Python constants ``True``/``False`` fold."""
    if a is False or b is False:
        return False
    return b if a is True else (a if b is True else a & b)


def as_value(x) -> Value:
    """A folded 1-bit result as an Amaranth value."""
    return Const(int(x)) if isinstance(x, bool) else x


def _refuse(obj: object, exc: Exception) -> Exception:
    """Return ``exc`` for raising from a constructor, silencing Amaranth's "created but never used"."""
    obj._MustUse__silence = True
    return exc


def _register(m: Module, en: Value, o: Value, value: Value) -> None:
    """Drive ``o`` from a register without reset that loads ``value`` when ``en`` is high.

    Data registers need no reset: a payload is only looked at when its ``valid`` bit (which
    is reset) says so, and a reset costs a gate per bit.
    """
    r = Signal.like(o, name="o_r", reset_less=True)
    with m.If(en):
        m.d.sync += r.eq(value)
    m.d.comb += o.eq(r)


def fmt_shape(fmt: Fmt) -> Shape:
    """The Amaranth shape of the codes of ``fmt``."""
    return signed(fmt.bits) if fmt.signed else unsigned(fmt.bits)


def round_shift_width(width: int, shift: int) -> int:
    """Width of the signed result of :class:`RoundShift` on a signed ``width``-bit input.

    A right shift by ``d`` of ``v + bias`` (``0 <= bias < 2**d``, one bit of headroom) leaves
    ``width + 1 - d`` bits, at least one (the result is then 0 or -1); a left shift adds ``-shift``.
    """
    if shift <= 0:
        return width - shift
    return max(width + 1 - shift, 1)


class RoundShift(wiring.Component):
    """Divide a signed integer by ``2**shift`` and round it by ``rounding`` (compile-time shift).

    Computes ``nmpu_model.golden.formats.round_shift(v, shift, rounding, pre_truncate)`` for
    ``shift > 0`` and the exact ``v << -shift`` for ``shift <= 0``. Every mode is one add of a
    bias and an arithmetic right shift: ``(v + bias) >> d``, where the bias picks the tie rule.

    Parameters
    ----------
    width : int
        Width of the signed input.
    shift : int
        The power of two to divide by; ``<= 0`` is an exact left shift.
    rounding : Rounding or str
        A ``nmpu_model.golden.formats.Rounding`` (or its name).
    pre_truncate : int
        When ``0 < k < shift``, floor to ``k`` extra fraction bits before rounding.
    fault : bool
        Build a deliberately wrong tie rule (:func:`up_rule`); for verification tests only.

    Members
    -------
    i : In(signed(width))
    o : Out(signed(round_shift_width(width, shift)))
    en : In(1)
        Clock enable of the output register.
    """

    LATENCY = 1

    def __init__(self, width: int, shift: int, rounding: str, pre_truncate: int = 0, *,
                 fault: bool = False) -> None:
        if not isinstance(width, int) or width < 1:
            raise _refuse(self, TypeError(f"Width must be a positive integer, not {width!r}"))
        try:
            rounding = rounding_mode(rounding)
        except ConfigError as e:
            raise _refuse(self, e) from None
        if pre_truncate < 0:
            raise _refuse(self, ConfigError(f"pre_truncate must be >= 0, not {pre_truncate}"))
        self.width, self.shift, self.rounding, self.pre_truncate = width, shift, rounding, pre_truncate
        self.fault = fault
        super().__init__({"i": In(signed(width)), "o": Out(signed(round_shift_width(width, shift))),
                          "en": In(1, init=1)})

    def elaborate(self, platform) -> Module:
        m = Module()
        res = Signal.like(self.o)
        if self.shift <= 0:
            m.d.comb += res.eq(self.i << -self.shift)
        else:
            v, d = self.i, self.shift
            k = self.pre_truncate
            if 0 < k < d:
                # floor to k extra fraction bits first: the dropped bits never reach the adder
                v, d = self.i >> (d - k), k
            # (v + base + step * up) >> d, up the rounding's rule (Rounding.bias)
            base, step = self.rounding.bias(d)
            up = up_rule(self.rounding, self.fault).of(v[-1], v[d] if len(v) > d else v[-1])
            if isinstance(up, bool):
                bias = Const(base + step * up, d + 1)
            elif step == 1:
                bias = base + up
            else:
                bias = Mux(up, base + step, base)
            # one bit of headroom for the rounding add (0 <= bias < 2**d); d may exceed the width
            total = Signal(signed(max(len(v), d) + 1))
            m.d.comb += total.eq(v + bias)
            m.d.comb += res.eq(total >> d)
        _register(m, self.en, self.o, res)
        return m


class Fit(wiring.Component):
    """Fit a signed integer into ``fmt`` by its overflow mode (``nmpu_model.golden.formats.fit``).

    Parameters
    ----------
    width : int
        Width of the signed input.
    fmt : Fmt
        Target format; its ``overflow`` picks ``WRAP``, ``SAT``, ``SAT_ZERO`` or ``SAT_SYM``.

    Members
    -------
    i : In(signed(width))
    o : Out(fmt_shape(fmt))
    en : In(1)
    """

    LATENCY = 1

    def __init__(self, width: int, fmt: Fmt) -> None:
        self.width, self.fmt = width, fmt
        super().__init__({"i": In(signed(width)), "o": Out(fmt_shape(fmt)), "en": In(1, init=1)})

    def elaborate(self, platform) -> Module:
        m = Module()
        _register(m, self.en, self.o, fit_logic(m, self.i, self.fmt))
        return m


def fit_logic(m: Module, i: Value, fmt: Fmt) -> Signal:
    """The combinational logic of :class:`Fit`: ``i`` (signed) brought into ``fmt`` by its overflow mode."""
    lo, hi = fmt.min, fmt.max
    width = len(i)
    res = Signal(fmt_shape(fmt))
    # input range: a comparison that can never be true is left out (no constant-compare lint)
    in_lo, in_hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    below, above = (i < lo) if in_lo < lo else Const(0), (i > hi) if in_hi > hi else Const(0)
    if fmt.overflow.wraps:
        ext = Signal(signed(max(width, fmt.bits)))
        m.d.comb += [ext.eq(i), res.eq(ext[:fmt.bits])]
    elif not fmt.overflow.to_zero:
        floor = fmt.overflow.bounds(fmt)[0]
        below = (i < floor) if in_lo < floor else Const(0)
        with m.If(below):
            m.d.comb += res.eq(floor)
        with m.Elif(above):
            m.d.comb += res.eq(hi)
        with m.Else():
            m.d.comb += res.eq(i)
    else:  # SAT_ZERO
        with m.If(below | above):
            m.d.comb += res.eq(0)
        with m.Else():
            m.d.comb += res.eq(i)
    return res


class MulAdd(wiring.Component):
    """``o = (x * c) << c_shift + (d << d_shift)``, exact: the affine and BN stages.

    The shifts align the product and the addend to the finer of their fractions, as
    ``nmpu_model.golden.datapath.apply_fixed`` does.

    Parameters
    ----------
    x_shape, c_shape, d_shape : Shape
        Shapes of the multiplicand, coefficient and addend.
    c_shift, d_shift : int
        Non-negative alignment shifts.
    width : int
        Width of the signed output; the caller (``NMPUConfig.plan``) guarantees it holds the
        exact result over the whole input range.
    registered : bool
        Register the output (``LATENCY`` 1, the default) or not (``LATENCY`` 0: the result feeds
        the next stage's logic directly, and ``en`` is unused).

    Members
    -------
    x, c, d : In(...)
    o : Out(signed(width))
    en : In(1)

    Attributes
    ----------
    LATENCY : int
        1 when registered, else 0 (the class attribute is the registered default).
    """

    LATENCY = 1

    def __init__(self, x_shape: Shape, c_shape: Shape, d_shape: Shape, c_shift: int, d_shift: int,
                 width: int, *, registered: bool = True) -> None:
        if c_shift < 0 or d_shift < 0:
            raise _refuse(self, ValueError(f"alignment shifts must be >= 0, not {c_shift}, {d_shift}"))
        self.c_shift, self.d_shift, self.width = c_shift, d_shift, width
        self.registered = registered
        self.LATENCY = 1 if registered else 0
        super().__init__({"x": In(x_shape), "c": In(c_shape), "d": In(d_shape),
                          "o": Out(signed(width)), "en": In(1, init=1)})

    def elaborate(self, platform) -> Module:
        m = Module()
        prod = self.x * self.c
        total = Signal(signed(max(len(prod) + self.c_shift, len(self.d) + 1 + self.d_shift) + 1))
        m.d.comb += total.eq((prod << self.c_shift) + (self.d << self.d_shift))
        # truncation is exact: the plan bounds the result to `width` bits
        if self.registered:
            _register(m, self.en, self.o, total)
        else:
            m.d.comb += self.o.eq(total)
        return m


class VarQuantize(wiring.Component):
    """``Q(v, fmt.with_frac(out_frac))`` of a ``frac``-fraction code ``v`` with a runtime ``out_frac``.

    Computes ``nmpu_model.golden.formats.quantize(v, frac, fmt.with_frac(out_frac))`` (of ``max(v, 0)``
    with ``relu``) for every ``out_frac`` in ``[out_frac_min, out_frac_max]``, without an
    intermediate wider than ``v``: the input (shifted left by ``pad`` zero bits so that no
    ``out_frac`` needs a left shift) is shifted right by ``d = shift_of(out_frac) >= 0`` in a
    barrel shifter that keeps only what the result depends on:

    - the floor ``F = v >> d`` to ``w`` bits, and the half bit (bit ``d - 1``);
    - ``sticky``: any bit below the half bit, over a mask of ``d`` (with ``pre_truncate = k``,
      only the ``k - 1`` bits below the half bit count: the spec's floor to ``k`` extra bits);
    - ``far``: any bit from ``d + w`` (``d + fmt.bits`` on the second path below) up that
      differs from the sign, over a mask of ``d``: the result is out of range on the side of the sign.

    Each rounding mode is an increment ``inc`` in ``{0, 1}`` from the half bit, the sticky bit,
    the sign and the floor's LSB, and ``n = F + inc``. Two ways to finish, one pipeline stage
    either way (its logic is shallower than a multiplier's):

    - non-negative input (unsigned, or after the ReLU) and a saturating overflow mode: ``w`` is
      the width of ``fmt.max`` (``fmt.max = 2**w - 1``), ``n`` is out of range exactly when
      ``far`` or its carry out of ``w`` bits is set, and the result is ``n``, ``fmt.max`` (``SAT``,
      ``SAT_SYM``) or 0 (``SAT_ZERO``): no comparator;
    - otherwise ``w = fmt.bits + 1`` (one more bit than the output, so ``WRAP`` keeps its low
      bits), ``n`` is a ``fmt.bits + 2``-bit value (the extreme of the sign when ``far``) that
      :func:`fit_logic` brings into ``fmt``.

    With ``relu``, the ReLU costs no input logic: ``Q(max(v, 0)) = 0`` for ``v < 0`` in every
    mode (``Q(0) = 0``), so the sign bit only clears the result, and the other bits are quantized
    as an unsigned code.

    Parameters
    ----------
    shape : Shape
        Shape of the input code.
    frac : int
        Fraction bits of the input.
    fmt : Fmt
        Output format, rounding, overflow and ``pre_truncate`` (its ``frac`` is ignored).
    out_frac_min, out_frac_max : int
        The ``out_frac`` range.
    relu : bool
        Quantize ``max(v, 0)`` (``shape`` must be signed).
    fault : bool
        A deliberately wrong tie rule (:func:`up_rule`), for verification tests only.

    Members
    -------
    i : In(shape)
    shift : In(range(max_shift + 1))
        ``shift_of(out_frac)``; larger values give an unspecified result.
    o : Out(fmt_shape(fmt))
    en : In(1)
        Clock enable of the output register.
    """

    LATENCY = 1

    def __init__(self, shape: Shape, frac: int, fmt: Fmt, out_frac_min: int, out_frac_max: int, *,
                 relu: bool = False, fault: bool = False) -> None:
        shape = Shape.cast(shape)
        if not out_frac_min <= out_frac_max:
            raise _refuse(self, ValueError(f"out_frac range must have min <= max, not {out_frac_min}, {out_frac_max}"))
        if relu and not shape.signed:
            raise _refuse(self, ValueError("relu needs a signed input (an unsigned one is never negative)"))
        self.shape, self.frac, self.fmt, self.relu, self.fault = shape, frac, fmt, relu, fault
        self.out_frac_min, self.out_frac_max = out_frac_min, out_frac_max
        self.pad = max(0, out_frac_max - frac)
        self.max_shift = frac + self.pad - out_frac_min
        super().__init__({"i": In(shape), "shift": In(range(max(self.max_shift, 1) + 1)),
                          "o": Out(fmt_shape(fmt)), "en": In(1, init=1)})

    def shift_of(self, out_frac: int) -> int:
        """The ``shift`` input for ``out_frac``: ``frac + pad - out_frac``."""
        return self.frac + self.pad - out_frac

    def elaborate(self, platform) -> Module:
        m = Module()
        fmt = self.fmt
        res = Signal(fmt_shape(fmt))
        if self.relu:
            # max(v, 0): the magnitude bits as an unsigned code; the sign clears the result
            neg, uw = self.i[-1], self.shape.width - 1
            if uw == 0:      # a 1-bit signed input is 0 or -1: max(v, 0) = 0
                m.d.comb += res.eq(0)
            else:
                m.d.comb += res.eq(Mux(neg, 0, self._quantize(m, self.i[:uw], unsigned(uw))))
        else:
            m.d.comb += res.eq(self._quantize(m, self.i, self.shape))
        _register(m, self.en, self.o, res)
        return m

    def _quantize(self, m: Module, i: Value, shape: Shape) -> Value:
        """The combinational quantizer of ``i`` (of ``shape``); see the class docstring."""
        fmt, d, D = self.fmt, self.shift, self.max_shift
        ob = fmt.bits
        k = fmt.pre_truncate
        hi_bits = fmt.max.bit_length()
        narrow = not shape.signed and not fmt.overflow.wraps and hi_bits >= 1
        w = hi_bits if narrow else ob + 1            # width of the floor F
        far_from = w if narrow else ob               # far: bits from d + far_from up
        # v = i << pad, signed unless the narrow path (one more bit for an unsigned input)
        vw = shape.width + (0 if (shape.signed or narrow) else 1) + self.pad
        v = Signal(unsigned(vw) if narrow else signed(vw))
        m.d.comb += v.eq(i << self.pad)
        sign = v[-1] if shape.signed else Const(0)
        # the barrel shifter: bits d-1 .. d+w-1 of v (the half bit, then F's w bits)
        x = Signal(unsigned(vw + 1) if narrow else signed(vw + 1))
        m.d.comb += x.eq(Cat(Const(0, 1), v))
        sh = Signal.like(x)
        m.d.comb += sh.eq(x >> d)
        half, F = sh[0], sh[1:w + 1]
        if len(F) < w:   # v narrower than the window: extend
            F = Cat(F, *([sign] * (w - len(F))))
        # masks of d: bit j is sticky when d - k <= j <= d - 2, "far" when j >= d + w
        # (a bound that every value of d's width meets is left out: no constant comparison)
        d_top = (1 << len(d)) - 1

        def at_most(bound: int) -> Value:
            return Const(1) if bound >= d_top else (d <= bound)

        sticky_bits, far_bits = [], []
        for j in range(vw if narrow else vw - 1):      # a signed input's top bit is the sign itself
            lo_d = j + 2                  # j <= d - 2
            hi_d = j + k if k > 0 else None   # j >= d - k
            if lo_d <= D and (hi_d is None or hi_d >= lo_d):
                cond = (d >= lo_d) if hi_d is None else ((d >= lo_d) & at_most(hi_d))
                sticky_bits.append(v[j] & cond)
            if j - far_from >= 0:
                far_bits.append((v[j] ^ sign) & at_most(j - far_from))
        sticky = Cat(*sticky_bits).any() if sticky_bits else Const(0)
        far = Cat(*far_bits).any() if far_bits else Const(0)
        up = up_rule(fmt.rounding, self.fault).of(sign, F[0])
        # to nearest: up from the half bit, a tie (no sticky bit) by the rule; truncating: any dropped bit, by the rule
        inc = as_value(both(half, either(sticky, up)) if fmt.rounding.nearest else both(up, either(half, sticky)))
        if narrow:
            # n = F + inc in w + 1 bits; out of range (above fmt.max = 2**w - 1) when far or carry
            n = Signal(unsigned(w + 1))
            m.d.comb += n.eq(F + inc)
            over = far | n[w]
            return Mux(over, 0 if fmt.overflow.to_zero else fmt.max, n[:w])
        n = Signal(signed(ob + 2))
        if fmt.overflow.wraps:   # only the low bits count
            m.d.comb += n.eq(F.as_signed() + inc)
        else:
            m.d.comb += n.eq(Mux(far, Mux(sign, -(1 << (ob + 1)), (1 << (ob + 1)) - 1), F.as_signed() + inc))
        return fit_logic(m, n, fmt)
