"""The FP16 baseline unit: the HERMES-style post-processing in IEEE binary16, for area comparison.

It computes the spec's ``fp16`` arithmetic (``docs/datapath.md``, golden model
``nmpu_model.apply(..., arith="fp16")``) bit for bit:

1. ``a = fma16(s, x, o)``: the exact ``s*x + o`` rounded once to binary16 (round to nearest
   even, subnormals, overflow to inf); ``x`` is the signed ADC code, converted to binary16
   exactly (or, above 12 bits, multiplied as an integer: see below);
2. optional BN stage ``b = fma16(g, a, h)``, a full binary16 FMA (inf and NaN inputs too);
3. ReLU: ``b < 0 -> +0`` (NaN passes);
4. ``Q(b, output)`` with ``output.frac = out_frac`` from a runtime register, the output's
   rounding, pre-truncation and overflow; ``+-inf`` saturate to the format's extremes (0 under
   ``SAT_ZERO``), NaN gives 0 (``nmpu_model.golden.baselines.quantize_real``).

The blocks follow the conventions of :mod:`rtl.arith`: each is a
:class:`~amaranth.lib.wiring.Component` with a clock enable ``en`` and a ``LATENCY`` constant.

FMA structure (:class:`FMA16`, three stages)
--------------------------------------------
The product ``P = ma*mb`` (``wp`` bits, exact) and the addend ``C`` (11 bits) are placed in a
window of ``W = wp + 13`` bits (35 for binary16 x binary16: the textbook ``3p + 2``) anchored at
the higher of their top bit positions; the other operand is shifted right, its shifted-out bits
OR-ed ("jammed") into its LSB. An operand only loses bits when it lies at least 3 bit positions
below the anchor's least significant bit, so the result's rounding point is then at least two
positions above the window's LSB and the jammed bit decides only the sticky, never a tie (the
argument is in :meth:`FMA16.elaborate`). The signed sum's magnitude is normalized by a
leading-zero count, limited at the subnormal exponent, and rounded to nearest even once.

The unit (:class:`FP16Unit`) converts the ADC code to binary16 first, exactly (``adc_bits <= 12``),
and uses the standard binary16 x binary16 FMA, as an FP16 post-processing unit like HERMES' does.
For wider codes, whose conversion would round, it multiplies the integer code exactly instead
(``FMA16(b_int_bits=adc_bits)``), which keeps the spec's single rounding.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from nmpu_model.golden.config import NMPUConfig
from nmpu_model.golden.formats import Fmt, signed_bits

from .arith import Fit, as_value, both, either, fmt_shape
from .blocks import coef_memories, delay_line, out_frac_register
from .nmpu import Unit, pipeline_control

__all__ = ["FP16Unit", "FMA16", "FP16ToFixed", "latency", "int_to_f16", "F16_NAN", "F16_INF", "lzc"]

F16_NAN = 0x7E00   # the canonical quiet NaN this unit produces
F16_INF = 0x7C00
# LSB exponent of a binary16 significand: normal E -> E - 25, subnormal -> 1 - 25
_BIAS_LSB = 25
_EMIN_LSB = -24


def lzc(v: Value) -> tuple[Value, Value]:
    """Leading-zero count of ``v`` as a balanced tree.

    Returns
    -------
    (count, all_zero)
        ``count`` is exact when ``v != 0``; ``all_zero`` is 1 when ``v == 0``.
    """
    n = len(v)
    if n == 1:
        return Const(0, 1), ~v[0]
    half = 1 << ((n - 1).bit_length() - 1)  # largest power of two below n
    hi, lo = v[half:], v[:half]
    c_hi, z_hi = lzc(hi)
    c_lo, z_lo = lzc(lo)
    width = max(len(c_hi), len(c_lo), (n).bit_length())
    # upper part all zero: len(hi) leading zeros, then the lower part's count
    count = Mux(z_hi, len(hi) + c_lo, c_hi)
    return count[:width], z_hi & z_lo


def _clamp_shift(m: Module, amount: Value, top: int, name: str) -> Signal:
    """An unsigned shift amount ``min(max(amount, 0), top)``."""
    sig = Signal(range(top + 1), name=name)
    with m.If(amount < 0):
        m.d.comb += sig.eq(0)
    with m.Elif(amount > top):
        m.d.comb += sig.eq(top)
    with m.Else():
        m.d.comb += sig.eq(amount)
    return sig


class _Unpacked:
    """Fields of a binary16 value: sign, significand with hidden bit, LSB exponent, class flags."""

    def __init__(self, m: Module, v: Value, name: str) -> None:
        e, f = v[10:15], v[:10]
        self.sign = v[15]
        self.mag = Cat(f, e != 0)                            # 11 bits
        self.exp = Signal(signed(7), name=f"{name}_exp")     # LSB exponent, [-24, 5]
        m.d.comb += self.exp.eq(Mux(e == 0, 1, e) - _BIAS_LSB)
        self.zero = (e == 0) & (f == 0)
        self.inf = (e == 31) & (f == 0)
        self.nan = (e == 31) & (f != 0)


INT_TO_F16_MAX_BITS = 12   # every signed code of up to 12 bits is a binary16 value


def int_to_f16(x: Value) -> Value:
    """The binary16 bit pattern of a signed integer of at most 12 bits (exact, combinational)."""
    n = len(x)
    if n > INT_TO_F16_MAX_BITS:
        raise ValueError(f"int_to_f16 is exact for at most {INT_TO_F16_MAX_BITS} bits, not {n}")
    neg = x[-1]
    mag = Mux(neg, -x, x.as_unsigned())[:n]
    mag12 = Cat(mag, Const(0, 12 - n)) if n < 12 else mag
    lz, zero = lzc(mag12)
    norm = (mag12 << lz)[:12]             # MSB at bit 11; bit 0 is 0 (|x| <= 2048)
    # |x| <= 2**(n-1) has at most n - 1 significant bits (or is 2**(n-1)): the fraction bits below
    # them are zeros, and written as constants they need no register or multiplier cells downstream
    low = min(10, max(0, 12 - n))
    frac = Cat(Const(0, low), norm[1 + low:11]) if low else norm[1:11]
    return Mux(zero, Cat(Const(0, 15), 0), Cat(frac, (26 - lz)[:5], neg))


class FMA16(wiring.Component):
    """``r = round16(a * b + c)``: binary16 fused multiply-add with one rounding (RNE).

    Parameters
    ----------
    b_int_bits : int or None
        ``None``: ``b`` is binary16. An integer ``n``: ``b`` is a signed ``n``-bit integer
        (the ADC code), multiplied exactly.

    Members
    -------
    a, c : In(16)
        binary16 bit patterns.
    b : In(16) or In(signed(b_int_bits))
    stages : {3, 5}
        Pipeline stages (``LATENCY``). 5 adds a register between the alignment shift and the addition,
        and one between the normalization shift and the rounding: the same result, two cycles later.
    fault : str or None
        ``"tie"`` rounds ties away from zero instead of to even: a deliberately broken unit
        that proves the verification catches one-ULP errors. ``None`` (default) is correct.
    r : Out(16)
        The rounded result; NaN is produced as ``F16_NAN``; an exact zero sum has the IEEE sign
        (``-0`` only when both the product and ``c`` are ``-0``).
    en : In(1)
        Clock enable of every stage.
    """

    LATENCY = 3
    FAULTS = (None, "tie")

    def __init__(self, b_int_bits: int | None = None, *, fault: str | None = None, stages: int = 3) -> None:
        bad_b = b_int_bits is not None and (isinstance(b_int_bits, bool) or not isinstance(b_int_bits, int)
                                            or b_int_bits < 1)
        if bad_b or fault not in self.FAULTS:
            self._MustUse__silence = True      # a refused unit is not an unused one
        if fault not in self.FAULTS or stages not in (3, 5) or isinstance(stages, bool):
            self._MustUse__silence = True
        if fault not in self.FAULTS:
            raise ValueError(f"fault must be one of {self.FAULTS}, not {fault!r}")
        if isinstance(stages, bool) or stages not in (3, 5):
            raise ValueError(f"stages must be 3 or 5, not {stages!r}")
        self.fault = fault
        #: the alignment-and-add and the normalize-and-round cycles each cut in two
        self.split = stages == 5
        self.LATENCY = stages
        if bad_b:
            raise TypeError(f"b_int_bits must be None or a positive integer, not {b_int_bits!r}")
        self.b_int_bits = b_int_bits
        b_shape = unsigned(16) if b_int_bits is None else signed(b_int_bits)
        super().__init__({"a": In(16), "b": In(b_shape), "c": In(16), "r": Out(16), "en": In(1, init=1)})

    @property
    def product_bits(self) -> int:
        """Width of the exact significand product."""
        return 11 + (11 if self.b_int_bits is None else self.b_int_bits)

    def elaborate(self, platform) -> Module:
        m = Module()
        wp = self.product_bits
        W = wp + 13          # alignment window

        a = _Unpacked(m, self.a, "a")
        c = _Unpacked(m, self.c, "c")
        if self.b_int_bits is None:
            b = _Unpacked(m, self.b, "b")
            b_sign, b_mag, b_exp = b.sign, b.mag, b.exp
            b_zero, b_inf, b_nan = b.zero, b.inf, b.nan
        else:
            b_sign = self.b[-1]
            b_mag = Signal(self.b_int_bits, name="b_mag")
            m.d.comb += b_mag.eq(Mux(b_sign, -self.b, self.b))
            b_exp = Const(0, signed(2))
            b_zero, b_inf, b_nan = self.b == 0, Const(0), Const(0)

        # Cycle 1: special cases and the exact significand product to registers
        # data registers have no reset: a payload only counts where its valid bit (reset) says so
        p_mag = Signal(wp, reset_less=True)
        p_exp = Signal(signed(8), reset_less=True)
        p_sign = Signal(reset_less=True)
        c1_mag, c1_exp, c1_sign = (Signal(11, reset_less=True), Signal(signed(7), reset_less=True),
                                   Signal(reset_less=True))
        s1_nan, s1_inf, s1_inf_sign = Signal(reset_less=True), Signal(reset_less=True), Signal(reset_less=True)
        prod_inf = a.inf | b_inf
        nan = (a.nan | b_nan | c.nan | (a.inf & b_zero) | (b_inf & a.zero)
               | (prod_inf & c.inf & (a.sign ^ b_sign ^ c.sign)))
        with m.If(self.en):
            m.d.sync += [
                p_mag.eq(a.mag * b_mag), p_exp.eq(a.exp + b_exp), p_sign.eq(a.sign ^ b_sign),
                c1_mag.eq(c.mag), c1_exp.eq(c.exp), c1_sign.eq(c.sign),
                s1_nan.eq(nan), s1_inf.eq(prod_inf | c.inf),
                s1_inf_sign.eq(Mux(prod_inf, a.sign ^ b_sign, c.sign)),
            ]

        # Cycle 2: align to the window, jam, add
        # Anchor T = the higher top bit position (a zero operand never anchors); the window's
        # LSB exponent is L = T - W. The other operand loses bits only when its top lies at
        # least 3 positions below the anchor's LSB exponent e: then |anchor| >= 2**e and
        # |other| < 2**(e-3), so |sum| > 2**(e-1), the result's MSB exponent E >= e - 1 and
        # its rounding point max(E - 10, -24) >= e - 11. With the product as anchor
        # e = ep = L + 13, so the rounding point is >= L + 2; with the addend as anchor
        # e = L + wp + 2, so it is >= L + wp - 9 >= L + 2 (wp >= 12). The anchor is exact and
        # a multiple of 2 window LSBs; the jammed operand and the exact one lie in the same
        # open interval between even multiples of the window LSB, so their sums do too, and
        # a rounding point >= L + 2 has its ties on even multiples: both round alike.
        top_p = Signal(signed(9))
        top_c = Signal(signed(9))
        m.d.comb += [top_p.eq(p_exp + wp), top_c.eq(c1_exp + 11)]
        p_zero, c_zero = p_mag == 0, c1_mag == 0
        anchor_p = Signal()
        m.d.comb += anchor_p.eq(~p_zero & (c_zero | (top_p >= top_c)))
        T = Signal(signed(9))
        m.d.comb += T.eq(Mux(anchor_p, top_p, top_c))
        # one alignment shifter: the anchor stays at the top of the window, the other operand moves
        # (a zero operand may get a negative distance: clamped, it is zero anyway)
        d = _clamp_shift(m, Mux(anchor_p, top_p - top_c, top_c - top_p), W, "d")
        xp0 = Cat(Const(0, W - wp), p_mag)
        xc0 = Cat(Const(0, W - 11), c1_mag)
        big, small = Signal(W), Signal(W)
        big_neg, small_neg = Signal(), Signal()
        m.d.comb += [big.eq(Mux(anchor_p, xp0, xc0)), small.eq(Mux(anchor_p, xc0, xp0)),
                     big_neg.eq(Mux(anchor_p, p_sign, c1_sign)), small_neg.eq(Mux(anchor_p, c1_sign, p_sign))]
        below = Cat(*[d > i for i in range(W)])          # bit i set when bit i is shifted out
        small_j = Signal(W)
        m.d.comb += small_j.eq((small >> d) | (small & below).any())
        zsign = p_sign & c1_sign
        flags = Cat(s1_nan, s1_inf, s1_inf_sign)
        if self.split:
            # Cycle 2b (stages=5): the aligned operands to registers, the addition in the next cycle
            big, small_j, big_neg, small_neg, T, zsign, flags = self._stage(
                m, "s2b", big, small_j, big_neg, small_neg, T, zsign, flags)
        total = Signal(signed(W + 2))
        m.d.comb += total.eq(Mux(big_neg, -big, big) + Mux(small_neg, -small_j, small_j))
        s2_mag = Signal(W + 1, reset_less=True)
        s2_neg = Signal(reset_less=True)
        s2_zsign = Signal(reset_less=True)
        s2_L = Signal(signed(10), reset_less=True)
        s2_nan, s2_inf, s2_inf_sign = Signal(reset_less=True), Signal(reset_less=True), Signal(reset_less=True)
        with m.If(self.en):
            m.d.sync += [
                s2_mag.eq(Mux(total < 0, -total, total)), s2_neg.eq(total < 0),
                s2_zsign.eq(zsign), s2_L.eq(T - W),
                Cat(s2_nan, s2_inf, s2_inf_sign).eq(flags),
            ]

        # Cycle 3: normalize (left shift by the leading zeros, limited at the subnormal exponent),
        # round to nearest even, pack. The magnitude gets `pad` zero bits on top so that the
        # shift is never negative: the window's top exponent T = L + W is >= T_min, and a
        # subnormal result whose top is below 2**-14 then still shifts by L + W + pad + 14 >= 0.
        ep_min = 2 * _EMIN_LSB if self.b_int_bits is None else _EMIN_LSB
        t_min = min(ep_min + wp, _EMIN_LSB + 11)
        pad = max(0, -(t_min + 14))
        Wn = W + 1 + pad
        magp = Cat(s2_mag, Const(0, pad)) if pad else s2_mag
        lz, all_zero = lzc(magp)
        limit = Signal(signed(12))
        m.d.comb += limit.eq(s2_L + (W + pad - _EMIN_LSB - 10))   # L + W + pad + 14
        sh = _clamp_shift(m, Mux(limit < lz, limit, lz), Wn, "norm_shift")
        shifted = Signal(Wn)
        m.d.comb += shifted.eq(magp << sh)
        r_base = Signal(signed(12))
        m.d.comb += r_base.eq(s2_L + (W + pad - 10) - sh)         # LSB exponent of sig
        neg, zsign3, flags3 = s2_neg, s2_zsign, Cat(s2_nan, s2_inf, s2_inf_sign)
        if self.split:
            # Cycle 3b (stages=5): the normalized magnitude to registers, the rounding in the next cycle
            shifted, r_base, all_zero, neg, zsign3, flags3 = self._stage(
                m, "s3b", shifted, r_base, all_zero, neg, zsign3, flags3)
        nan3, inf3, inf_sign3 = flags3[0], flags3[1], flags3[2]
        # bit i of `shifted` has the exponent L + i - sh; the significand is the top 11 bits
        sig = shifted[Wn - 11:]
        guard = Signal()
        sticky = Signal()
        m.d.comb += [guard.eq(shifted[Wn - 12]), sticky.eq(shifted[:Wn - 12].any())]
        up = guard if self.fault == "tie" else guard & (sticky | sig[0])
        sig_r = Signal(12)
        m.d.comb += sig_r.eq(sig + up)
        r_lsb = Signal(signed(12))
        m.d.comb += r_lsb.eq(r_base + sig_r[11])
        sig_f = Signal(11)
        m.d.comb += sig_f.eq(Mux(sig_r[11], sig_r[1:], sig_r[:11]))
        efield = Signal(signed(13))
        m.d.comb += efield.eq(Mux(sig_f[10], r_lsb + _BIAS_LSB, 0))
        res = Signal(16)
        with m.If(nan3):
            m.d.comb += res.eq(F16_NAN)
        with m.Elif(inf3 | (efield >= 31)):
            m.d.comb += res.eq(Cat(Const(F16_INF, 15), Mux(inf3, inf_sign3, neg)))
        with m.Elif(all_zero):
            m.d.comb += res.eq(Cat(Const(0, 15), zsign3))
        with m.Else():
            m.d.comb += res.eq(Cat(sig_f[:10], efield[:5], neg))
        r = Signal(16, reset_less=True)
        with m.If(self.en):
            m.d.sync += r.eq(res)
        m.d.comb += self.r.eq(r)
        return m

    def _stage(self, m: Module, name: str, *values: Value) -> list[Signal]:
        """``values`` registered as ``<name>_<k>`` (clock enable ``en``, no reset: the valid bits live in the unit)."""
        regs = [Signal(Value.cast(v).shape(), name=f"{name}_{k}", reset_less=True) for k, v in enumerate(values)]
        with m.If(self.en):
            m.d.sync += [r.eq(v) for r, v in zip(regs, values)]
        return regs


class FP16ToFixed(wiring.Component):
    """ReLU (optional) and ``Q(v * 2**out_frac, fmt)`` of a binary16 value, with a runtime ``out_frac``.

    Computes ``nmpu_model.golden.baselines.quantize_real`` (after ``np.where(b < 0, 0, b)`` when
    ``relu``): the signed significand ``V`` times ``2**(e + out_frac)`` is either shifted left
    exactly or split into ``q = floor(V / 2**d)`` and the remainder, whose comparison with half
    an LSB picks the increment of each rounding mode (with ``pre_truncate = k``, the remainder's
    bits below ``d - k`` are ignored, which is the spec's floor to ``k`` extra bits). Then
    :class:`rtl.arith.Fit` applies the overflow mode; ``+-inf`` and NaN override its result.

    Parameters
    ----------
    fmt : Fmt
        Output format (its ``frac`` is ignored: ``out_frac`` sets it at run time).
    out_frac_min, out_frac_max : int
        The range of ``out_frac`` the hardware accepts.
    relu : bool
        Apply ReLU first.

    Members
    -------
    i : In(16)
        binary16 value.
    out_frac : In(signed)
        Runtime output gain, within ``[out_frac_min, out_frac_max]``.
    o : Out(fmt_shape(fmt))
    en : In(1)
    """

    LATENCY = 2

    def __init__(self, fmt: Fmt, out_frac_min: int, out_frac_max: int, relu: bool = True) -> None:
        if not isinstance(fmt, Fmt):
            raise TypeError(f"fmt must be an Fmt, not {fmt!r}")
        if not (isinstance(out_frac_min, int) and isinstance(out_frac_max, int)
                and out_frac_min <= out_frac_max):
            raise TypeError(f"out_frac range must be two integers min <= max, not "
                            f"{out_frac_min!r}, {out_frac_max!r}")
        self.fmt, self.relu = fmt, relu
        self.out_frac_min, self.out_frac_max = out_frac_min, out_frac_max
        self.of_shape = signed(signed_bits(min(out_frac_min, 0), max(out_frac_max, 0)))
        # the exact integer before fitting: a left shift is clamped at bits + 1 (then every
        # nonzero value is out of range and its low `bits` bits are zero, as WRAP needs)
        self.n_bits = 12 + fmt.bits + 2
        super().__init__({"i": In(16), "out_frac": In(self.of_shape), "o": Out(fmt_shape(fmt)),
                          "en": In(1, init=1)})

    def elaborate(self, platform) -> Module:
        m = Module()
        fmt = self.fmt
        v = _Unpacked(m, self.i, "v")
        neg = v.sign & ~v.nan
        if self.relu:
            neg_out = Const(0)
            mag = Mux(neg, 0, v.mag)
            is_inf, is_nan = v.inf & ~neg, v.nan
        else:
            neg_out = neg
            mag = v.mag
            is_inf, is_nan = v.inf, v.nan
        V = Signal(signed(12))
        m.d.comb += V.eq(Mux(neg_out, -mag, mag))
        sh = Signal(signed(max(self.of_shape.width, 7) + 2))
        m.d.comb += sh.eq(v.exp + self.out_frac)
        k = fmt.pre_truncate
        # |V| < 2**11: for d >= 12 + k the rounded result depends only on the sign of V
        d_top = 13 + k
        left = _clamp_shift(m, sh, fmt.bits + 1, "left")
        d = _clamp_shift(m, -sh, d_top, "d")

        n = Signal(signed(self.n_bits))
        # q = floor(V / 2**d), rem = V - q * 2**d in [0, 2**d)
        ext = Cat(Const(0, d_top), V).as_signed()          # V * 2**d_top
        shifted = Signal(signed(12 + d_top))
        m.d.comb += shifted.eq(ext >> d)
        q = shifted[d_top:].as_signed()
        rem_hi = shifted[:d_top]                           # rem * 2**(d_top - d)
        # rem's bits below d - k are ignored (pre-truncation): in rem_hi they sit below d_top - k
        if k > 0:
            rem_t = Cat(Const(0, d_top - k), rem_hi[d_top - k:])
        else:
            rem_t = rem_hi
        half = Const(1 << (d_top - 1), d_top)              # half an LSB, scaled like rem_hi
        gt = (rem_t > half) & (d != 0)
        tie = (rem_t == half) & (d != 0)
        nz = (rem_t != 0)
        vneg = V < 0
        up = fmt.rounding.up.of(vneg, q[0])
        inc = as_value(either(gt, both(tie, up)) if fmt.rounding.nearest else both(up, nz))
        with m.If(sh >= 0):
            m.d.comb += n.eq(V << left)
        with m.Else():
            m.d.comb += n.eq(q + inc)

        # Cycle 1: exact integer (and the special cases) to registers
        # data registers have no reset: a payload only counts where its valid bit (reset) says so
        n_r = Signal(signed(self.n_bits), reset_less=True)
        inf_r, inf_neg_r, nan_r = Signal(reset_less=True), Signal(reset_less=True), Signal(reset_less=True)
        with m.If(self.en):
            m.d.sync += [n_r.eq(n), inf_r.eq(is_inf), inf_neg_r.eq(neg_out), nan_r.eq(is_nan)]

        # Cycle 2: fit by the overflow mode (rtl.arith.Fit registers its output)
        m.submodules.fit = fit = Fit(self.n_bits, fmt)
        m.d.comb += [fit.i.eq(n_r), fit.en.eq(self.en)]
        inf2, inf_neg2, nan2 = Signal(reset_less=True), Signal(reset_less=True), Signal(reset_less=True)
        with m.If(self.en):
            m.d.sync += [inf2.eq(inf_r), inf_neg2.eq(inf_neg_r), nan2.eq(nan_r)]
        neg_code, pos_code = fmt.overflow.extremes(fmt)
        with m.If(nan2):
            m.d.comb += self.o.eq(0)
        with m.Elif(inf2):
            m.d.comb += self.o.eq(Mux(inf_neg2, Const(neg_code, fmt_shape(fmt)), Const(pos_code, fmt_shape(fmt))))
        with m.Else():
            m.d.comb += self.o.eq(fit.o)
        return m


def latency(config: NMPUConfig) -> int:
    """Cycles from input acceptance to output valid of :class:`FP16Unit`.

    ``1`` (coefficient memory read) ``+ FMA16`` ``[+ FMA16`` with the BN stage``]`` ``+ FP16ToFixed``
    (ReLU included): 6 without the BN stage, 9 with it, with 3-stage FMAs (``rtl.fp16_fma_stages``; 5 adds 2 per FMA).
    """
    return 1 + config.rtl.fp16_fma_stages * (2 if config.bn_stage else 1) + FP16ToFixed.LATENCY


class FP16Unit(Unit):
    """The FP16 baseline post-processing unit, with the NMPU's interface (:mod:`rtl.nmpu`).

    Ports, payloads, handshake, ``out_frac`` register and timing rules are those of
    :class:`rtl.nmpu.NMPU`; only ``coef.data`` is 16 bits wide and holds the binary16 bit
    pattern of the coefficient (``numpy.float16(v).view(numpy.uint16)``).

    Parameters
    ----------
    config : NMPUConfig
        ``adc_bits``, ``output`` (format, rounding, overflow, ``out_frac`` range), ``relu``,
        ``bn_stage`` and ``rtl`` (lanes, columns) are used; the fixed-point coefficient formats
        are not (coefficients are binary16).
    fault : str or None
        ``"tie"``: every FMA rounds ties away from zero (a deliberately broken unit, for tests).

    Attributes
    ----------
    LATENCY : int
        Constant latency in cycles (:func:`latency`).
    iface : rtl.nmpu.Interface
        Port shapes.
    x_to_f16 : bool
        Whether the ADC code is converted to binary16 (``adc_bits <= 12``).
    """

    FAULTS = FMA16.FAULTS

    def __init__(self, config: NMPUConfig, *, fault: str | None = None) -> None:
        # the ADC code is converted to binary16 when that is exact, as an FP16 unit would
        self.x_to_f16 = isinstance(config, NMPUConfig) and config.adc_bits <= INT_TO_F16_MAX_BITS
        super().__init__(config, fault, latency, coef_bits=16)

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg, itf = self.config, self.iface
        L = itf.lanes
        names = cfg.coef_names

        advance = pipeline_control(m, self, self.LATENCY)

        fmin, fmax = cfg.out_frac_min, cfg.out_frac_max
        frac = out_frac_register(m, self.out_frac, fmin, fmax, signed(itf.out_frac_bits), cfg.output.frac, "frac")

        # Cycle 1: coefficient memory read (one bank per lane and coefficient), codes to register
        coef = coef_memories(m, self, {n: 16 for n in names}, advance)
        if self.x_to_f16:
            codes1 = Signal(data.ArrayLayout(16, L), reset_less=True)
            with m.If(advance):
                m.d.sync += [codes1[j].eq(int_to_f16(self.i_stream.payload.codes[j])) for j in range(L)]
        else:
            codes1 = Signal(data.ArrayLayout(signed(cfg.adc_bits), L), reset_less=True)
            with m.If(advance):
                m.d.sync += codes1.eq(self.i_stream.payload.codes)

        # out_frac travels with its beat
        frac_pipe = delay_line(m, {"frac_{}": frac}, self.LATENCY - FP16ToFixed.LATENCY, advance)["frac_{}"]

        outs = []
        for j in range(L):
            # Cycles 2-4: a = fma16(s, x, o) (x converted to binary16 in cycle 1 when exact)
            stages = cfg.rtl.fp16_fma_stages
            f1 = FMA16(None if self.x_to_f16 else cfg.adc_bits, fault=self.fault, stages=stages)
            m.submodules[f"fma_{j}"] = f1
            m.d.comb += [f1.a.eq(coef["scale"][j]), f1.b.eq(codes1[j]), f1.c.eq(coef["offset"][j]),
                         f1.en.eq(advance)]
            b = f1.r
            if cfg.bn_stage:
                # Cycles 5-7: b = fma16(g, a, h); g and h wait in registers for a
                gh = delay_line(m, {f"g_{j}_d{{}}": coef["bn_scale"][j], f"h_{j}_d{{}}": coef["bn_offset"][j]},
                                stages, advance)
                g_d, h_d = (line[-1] for line in gh.values())
                f2 = FMA16(None, fault=self.fault, stages=stages)
                m.submodules[f"bn_fma_{j}"] = f2
                m.d.comb += [f2.a.eq(g_d), f2.b.eq(b), f2.c.eq(h_d), f2.en.eq(advance)]
                b = f2.r
            # last 2 cycles: ReLU and Q(b, out_frac)
            q = FP16ToFixed(cfg.output, fmin, fmax, relu=cfg.relu)
            m.submodules[f"out_q_{j}"] = q
            m.d.comb += [q.i.eq(b), q.out_frac.eq(frac_pipe[-1]), q.en.eq(advance)]
            outs.append(q.o)
        m.d.comb += [self.o_stream.payload[j].eq(outs[j]) for j in range(L)]
        return m
