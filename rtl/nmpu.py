"""The NMPU: per-column affine correction, optional batch norm, ReLU and output requantization.

Interface (shared with the FP16 baseline unit, :mod:`rtl.fp16_unit`, which only widens
``coef.data``); all names are the Verilog port names after export, ``clk`` and ``rst`` besides:

``i_stream`` (in, :class:`amaranth.lib.stream.Signature`)
    ``payload`` is a :class:`~amaranth.lib.data.StructLayout`, fields in this bit order (LSB first):

    - ``codes``: ``ArrayLayout(signed(adc_bits), lanes)``; lane ``j`` at bits ``[j*adc_bits, (j+1)*adc_bits)``
    - ``group``: ``unsigned(group_bits)``, the lane group: lane ``j`` is column ``group*lanes + j``.
      It must be ``< columns // lanes`` (the memory holds no other groups).
``o_stream`` (out)
    ``payload`` is ``ArrayLayout(out_shape, lanes)``: the output codes of the beat's lanes, in
    input order; ``out_shape`` is ``signed(output.bits)`` or ``unsigned(output.bits)``.
``coef`` (in): ``en``, ``sel``, ``addr``, ``data``
    Writes coefficient ``sel`` (0 ``scale``, 1 ``offset``, 2 ``bn_scale``, 3 ``bn_offset``) of column
    ``addr`` when ``en`` is high; ``data`` holds the code's two's complement (or unsigned) bits,
    LSB-aligned, bits above the format's width ignored. Writes of ``sel`` 2/3 without the BN stage,
    and ``addr >= columns``, are ignored.
``out_frac`` (in): ``en``, ``data``
    Sets the layer's output ``frac`` when ``en`` is high and ``out_frac_min <= data <= out_frac_max``;
    other values are ignored (the register keeps its value). Reset value: ``output.frac``.

Timing: a beat accepted on ``i_stream`` in cycle ``t`` uses the coefficients and ``out_frac`` written
in cycles ``< t``, and leaves on ``o_stream`` ``LATENCY`` cycles later when ``o_stream.ready`` was
high throughout. The pipeline advances as one (``i_stream.ready = ~o_stream.valid | o_stream.ready``,
the only combinational path from a ready), so the initiation interval is 1 whenever the output is
ready, and ``o_stream.valid``/``payload`` are registers, stable until taken. ``rst`` drops the beats
in flight and restores ``out_frac``; the coefficient memory keeps its contents.
"""
from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Module, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from nmpu_model.golden.config import NMPUConfig
from nmpu_model.golden.formats import Fmt, signed_bits

from .blocks import CoefSel, coef_memories, delay_line, out_frac_register
from .arith import Fit, MulAdd, RoundShift, VarQuantize, fmt_shape, round_shift_width

__all__ = ["NMPU", "Unit", "Interface", "interface", "latency", "pipeline_control"]
# The affine multiply-add is not registered: its result goes straight into the next stage's logic
# (the output quantizer, or the mid rounding with the BN stage)
AFFINE_LATENCY = 0


class CoefWriteSignature(wiring.Signature):
    """The ``coef`` write port: ``en``, ``sel`` (a :class:`~rtl.blocks.CoefSel` value), ``addr`` (column), ``data``.

    ``sel`` is carried as the enum's plain 2-bit shape, so the Verilog port has no enum attributes.
    """

    def __init__(self, addr_bits: int, data_bits: int) -> None:
        super().__init__({"en": Out(1), "sel": Out(Shape.cast(CoefSel)), "addr": Out(addr_bits),
                          "data": Out(data_bits)})


class OutFracWriteSignature(wiring.Signature):
    """The ``out_frac`` write port: ``en`` and the signed ``data`` (the layer's output ``frac``)."""

    def __init__(self, bits: int) -> None:
        super().__init__({"en": Out(1), "data": Out(signed(bits))})


@dataclass(frozen=True)
class Interface:
    """Port shapes of a unit with the NMPU's interface (also used by the FP16 baseline).

    Attributes
    ----------
    lanes, columns, groups : int
        Values per beat, coefficient memory depth, and ``columns // lanes``.
    adc_bits, group_bits, addr_bits, coef_bits, out_frac_bits : int
        Widths of an input code, ``group``, ``coef.addr``, ``coef.data`` and ``out_frac.data``.
    out_bits : int
        Width of an output code; ``out_signed`` its signedness.
    out_frac_min, out_frac_max : int
        Range accepted by the ``out_frac`` register.
    """

    lanes: int
    columns: int
    adc_bits: int
    coef_bits: int
    out_bits: int
    out_signed: bool
    out_frac_min: int
    out_frac_max: int
    out_frac_init: int

    @property
    def adc_min(self) -> int:
        return -(1 << (self.adc_bits - 1))

    @property
    def adc_max(self) -> int:
        return (1 << (self.adc_bits - 1)) - 1

    @property
    def groups(self) -> int:
        return self.columns // self.lanes

    @property
    def group_bits(self) -> int:
        return max(1, ceil_log2(self.groups))

    @property
    def addr_bits(self) -> int:
        return max(1, ceil_log2(self.columns))

    @property
    def out_frac_bits(self) -> int:
        return signed_bits(self.out_frac_min, self.out_frac_max)

    @property
    def in_layout(self) -> data.StructLayout:
        return data.StructLayout({"codes": data.ArrayLayout(signed(self.adc_bits), self.lanes),
                                  "group": unsigned(self.group_bits)})

    @property
    def out_layout(self) -> data.ArrayLayout:
        shape = signed(self.out_bits) if self.out_signed else unsigned(self.out_bits)
        return data.ArrayLayout(shape, self.lanes)

    def signature_members(self) -> dict[str, wiring.Member]:
        """The component's members (clock and reset are implicit)."""
        return {"i_stream": In(stream.Signature(self.in_layout)),
                "o_stream": Out(stream.Signature(self.out_layout)),
                "coef": In(CoefWriteSignature(self.addr_bits, self.coef_bits)),
                "out_frac": In(OutFracWriteSignature(self.out_frac_bits))}

    def describe(self, metadata: dict) -> dict[str, object]:
        """Ports and payload fields as plain data (for the export sidecar and the header).

        The ports, their directions and widths come from the component's own metadata
        (``component.metadata.as_json()``, so they cannot drift from the design); this adds what a
        width does not say: payload fields, selector values, the ``out_frac`` range. A stream's
        handshake is listed before its payload.
        """
        notes: dict[str, dict] = {
            "i_stream__payload": {"fields": {"codes": {"offset": 0, "lane_width": self.adc_bits, "lanes": self.lanes,
                                                       "signed": True},
                                             "group": {"offset": self.lanes * self.adc_bits, "width": self.group_bits}}},
            "o_stream__payload": {"fields": {"codes": {"offset": 0, "lane_width": self.out_bits, "lanes": self.lanes,
                                                       "signed": self.out_signed}}},
            "coef__sel": {"values": {s.coef_name: s.value for s in CoefSel}},
            "out_frac__data": {"signed": True, "range": [self.out_frac_min, self.out_frac_max],
                               "reset": self.out_frac_init},
        }
        ports: dict[str, dict] = {"clk": {"dir": "in", "width": 1},
                                  "rst": {"dir": "in", "width": 1, "note": "synchronous, active high"}}

        def walk(members: dict) -> None:
            order = sorted(members, key=lambda k: k == "payload")          # valid, ready, then payload
            for k in order:
                m = members[k]
                if m["type"] == "interface":
                    walk(m["members"])
                else:
                    ports[m["name"]] = {"dir": m["dir"], "width": m["width"], **notes.get(m["name"], {})}

        walk(metadata["interface"]["members"])
        return {"lanes": self.lanes, "columns": self.columns, "groups": self.groups, "ports": ports}


def _coef_fmts(config: NMPUConfig) -> dict[str, Fmt]:
    return {n: getattr(config, n) for n in config.coef_names}


def interface(config: NMPUConfig, coef_bits: int | None = None) -> Interface:
    """The interface of the NMPU built for ``config`` (``coef_bits`` overrides the data width)."""
    if coef_bits is None:
        coef_bits = max(f.bits for f in _coef_fmts(config).values())
    return Interface(lanes=config.rtl.lanes, columns=config.rtl.columns, adc_bits=config.adc_bits,
                     coef_bits=coef_bits, out_bits=config.output.bits, out_signed=config.output.signed,
                     out_frac_min=config.out_frac_min, out_frac_max=config.out_frac_max,
                     out_frac_init=config.output.frac)


def latency(config: NMPUConfig) -> int:
    """Cycles from input acceptance to output valid: the sum of the stage latencies.

    ``1`` (coefficient memory read) ``+ 0`` (the affine ``MulAdd``, unregistered: it feeds the next
    stage's logic) ``[+ RoundShift + Fit + MulAdd`` with the BN stage``]`` ``+ VarQuantize`` (ReLU included):
    2 without the BN stage, 5 with it. Every stage's logic is at most a multiply-add and a
    requantizer deep, shallower than a stage of the FP16 unit's FMA.
    """
    lat = 1 + AFFINE_LATENCY
    if config.bn_stage:
        lat += RoundShift.LATENCY + Fit.LATENCY + MulAdd.LATENCY
    return lat + VarQuantize.LATENCY


def _bn_span_bits(config: NMPUConfig) -> int:
    """Width of ``b = a2*g + h`` before the ReLU (``Plan.b`` is after it)."""
    m, g, h = config.mid, config.bn_scale, config.bn_offset
    fb = max(m.frac + g.frac, h.frac)
    prods = [p * q for p in (m.min, m.max) for q in (g.min, g.max)]
    sh, sg = fb - h.frac, fb - m.frac - g.frac
    return signed_bits((min(prods) << sg) + (h.min << sh), (max(prods) << sg) + (h.max << sh))


def pipeline_control(m: Module, unit: wiring.Component, stages: int, *, ready_stuck: bool = False) -> Signal:
    """The NMPU's and the FP16 unit's pipeline control: every register advances together.

    ``advance = ~o_stream.valid | o_stream.ready`` drives ``i_stream.ready`` (stuck high with
    ``ready_stuck``, a fault for tests) and a chain of ``stages`` valid bits whose last is
    ``o_stream.valid``. ``o_stream.valid`` is a register, so it never depends on ``o_stream.ready``;
    ``i_stream.ready`` does (a ready->ready path, allowed). Returns ``advance``.
    """
    advance = Signal()
    m.d.comb += advance.eq(~unit.o_stream.valid | unit.o_stream.ready)
    m.d.comb += unit.i_stream.ready.eq(1 if ready_stuck else advance)
    valid = [Signal(name=f"valid_{k}") for k in range(stages)]
    with m.If(advance):
        m.d.sync += valid[0].eq(unit.i_stream.valid)
        m.d.sync += [valid[k].eq(valid[k - 1]) for k in range(1, stages)]
    m.d.comb += unit.o_stream.valid.eq(valid[-1])
    return advance


class Unit(wiring.Component):
    """What both units' constructors do: check the configuration and the fault name, make the interface
    (``coef_bits``: the coefficient words' width, None: the configuration's formats), the latency and the ports."""

    FAULTS: tuple = (None,)

    def __init__(self, config: NMPUConfig, fault: str | None, latency_of, coef_bits: int | None = None) -> None:
        if not isinstance(config, NMPUConfig) or fault not in self.FAULTS:
            self._MustUse__silence = True      # a refused unit is not an unused one
        if not isinstance(config, NMPUConfig):
            raise TypeError(f"config must be an NMPUConfig, not {config!r}")
        if fault not in self.FAULTS:
            raise ValueError(f"fault must be one of {self.FAULTS}, not {fault!r}")
        self.config, self.fault = config, fault
        self.iface = interface(config, coef_bits=coef_bits)
        self.LATENCY = latency_of(config)
        super().__init__(self.iface.signature_members())


class NMPU(Unit):
    """The near-memory processing unit of ``docs/datapath.md``, fully pipelined.

    See the module docstring for the ports and their timing.

    Parameters
    ----------
    config : NMPUConfig
        Formats, modes and stages; ``config.rtl`` gives ``lanes`` and ``columns``.
    fault : str or None
        A deliberately broken unit, so that tests can prove the verification fails on it:
        ``"tie"``, a wrong tie rule in the output rounding (one LSB on ties only); ``"ready"``,
        ``i_stream.ready`` stuck high, ignoring backpressure (beats overwritten under output stalls).
        ``None`` (the default) is the correct unit.

    Attributes
    ----------
    LATENCY : int
        Constant latency in cycles (:func:`latency`).
    iface : Interface
        Port shapes.
    """

    FAULTS = (None, "tie", "ready")

    def __init__(self, config: NMPUConfig, *, fault: str | None = None) -> None:
        super().__init__(config, fault, latency)

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg, itf = self.config, self.iface
        L = itf.lanes
        plan = cfg.plan()
        fmts = _coef_fmts(cfg)

        advance = pipeline_control(m, self, self.LATENCY, ready_stuck=self.fault == "ready")

        # out_frac register, kept as the output quantizer's right shift d = C - out_frac (0 .. D)
        fmin, fmax = cfg.out_frac_min, cfg.out_frac_max
        fb_out = max(cfg.mid.frac + cfg.bn_scale.frac, cfg.bn_offset.frac) if cfg.bn_stage else plan.a.frac
        C = max(fb_out, fmax)             # VarQuantize: frac + pad
        D = C - fmin
        # at least one bit even when D == 0: a zero-width signal is `[-1:0]` in Verilog
        shift = out_frac_register(m, self.out_frac, fmin, fmax, range(max(D, 1) + 1), C - cfg.output.frac,
                                  "shift", encode=lambda v: C - v)

        # Cycle 1: coefficient memory read (one bank per lane and coefficient), codes to register
        coef = coef_memories(m, self, {n: fmt_shape(f) for n, f in fmts.items()}, advance)
        # data registers have no reset: a payload only counts where its valid bit (reset) says so
        codes1 = Signal(data.ArrayLayout(signed(cfg.adc_bits), L), reset_less=True)
        with m.If(advance):
            m.d.sync += codes1.eq(self.i_stream.payload.codes)

        # the shift travels with its beat, so out_frac may change while beats are in flight
        stages_to_shift = 1 + AFFINE_LATENCY + (
            RoundShift.LATENCY + Fit.LATENCY + MulAdd.LATENCY if cfg.bn_stage else 0)
        shift_pipe = delay_line(m, {"shift_{}": shift}, stages_to_shift, advance)["shift_{}"]

        s, o = cfg.scale, cfg.offset
        fa = plan.a.frac
        b_bits = plan.a.bits
        fb = fa
        outs = []
        for j in range(L):
            # a = x*s + o, aligned to the finer fraction: logic of cycle 2, not registered
            aff = MulAdd(signed(cfg.adc_bits), fmt_shape(s), fmt_shape(o), fa - s.frac, fa - o.frac, plan.a.bits,
                         registered=AFFINE_LATENCY == 1)
            m.submodules[f"affine_{j}"] = aff
            m.d.comb += [aff.x.eq(codes1[j]), aff.c.eq(coef["scale"][j]), aff.d.eq(coef["offset"][j]),
                         aff.en.eq(advance)]
            b, fb, b_bits = aff.o, fa, plan.a.bits
            if cfg.bn_stage:
                # Cycles 2-4: a2 = Q(a, mid) (rounding, then fit); b = a2*g + h
                mid, g, h = cfg.mid, cfg.bn_scale, cfg.bn_offset
                rs = RoundShift(plan.a.bits, fa - mid.frac, mid.rounding, mid.pre_truncate)
                ft = Fit(round_shift_width(plan.a.bits, fa - mid.frac), mid)
                fb = max(mid.frac + g.frac, h.frac)
                b_bits = _bn_span_bits(cfg)
                bn = MulAdd(fmt_shape(mid), fmt_shape(g), fmt_shape(h), fb - mid.frac - g.frac, fb - h.frac, b_bits)
                m.submodules[f"mid_round_{j}"], m.submodules[f"mid_fit_{j}"] = rs, ft
                m.submodules[f"bn_{j}"] = bn
                # coefficients read in cycle 1 wait in registers for the BN multiplier
                n_wait = AFFINE_LATENCY + RoundShift.LATENCY + Fit.LATENCY
                gh = delay_line(m, {f"g_{j}_d{{}}": coef["bn_scale"][j], f"h_{j}_d{{}}": coef["bn_offset"][j]},
                                n_wait, advance)
                g_d, h_d = (line[-1] for line in gh.values())
                m.d.comb += [rs.i.eq(aff.o), rs.en.eq(advance), ft.i.eq(rs.o), ft.en.eq(advance),
                             bn.x.eq(ft.o), bn.c.eq(g_d), bn.d.eq(h_d), bn.en.eq(advance)]
                b = bn.o
            # ReLU and output Q(b, out_frac) in one block: a runtime right shift with the rounding
            # decided from the shifted-out bits; the sign of b only clears the result (see VarQuantize)
            oq = VarQuantize(signed(b_bits), fb, cfg.output, fmin, fmax, relu=cfg.relu,
                             fault=self.fault == "tie")
            assert oq.shift_of(0) == C and oq.max_shift == D
            m.submodules[f"out_q_{j}"] = oq
            m.d.comb += [oq.i.eq(b), oq.shift.eq(shift_pipe[-1]), oq.en.eq(advance)]
            outs.append(oq.o)
        m.d.comb += [self.o_stream.payload[j].eq(outs[j]) for j in range(L)]
        return m
