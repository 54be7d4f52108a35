"""RTL blocks both units (the NMPU and the FP16 baseline unit) are made of, written once.

- :class:`CoefSel`: the coefficient selector of the ``coef`` write port, an enum with a shape.
- :func:`coef_memories`: one memory bank per coefficient and lane, written through ``coef``,
  read by the lane group of the input beat.
- :func:`out_frac_register`: the ``out_frac`` register, which ignores values outside its range.
- :func:`delay_line`: a value carried along the pipeline with its beat.

Each adds its logic to the caller's module (no submodule of its own), so the units' Verilog keeps
one flat hierarchy per unit.
"""
from __future__ import annotations


from typing import Any, Callable, Mapping

from amaranth.hdl import Module, Shape, Signal, Value, unsigned
from amaranth.lib import enum, memory
from amaranth.utils import ceil_log2

from nmpu_model.golden.config import COEF_NAMES

__all__ = ["CoefSel", "coef_memories", "out_frac_register", "delay_line"]


class CoefSel(enum.Enum, shape=unsigned(2)):
    """Which coefficient a write on the ``coef`` port sets (``coef.sel``)."""

    #: per-column scale ``s`` of the affine correction
    SCALE = 0
    #: per-column offset ``o`` of the affine correction
    OFFSET = 1
    #: per-column batch-norm scale ``g`` (ignored without the BN stage)
    BN_SCALE = 2
    #: per-column batch-norm offset ``h`` (ignored without the BN stage)
    BN_OFFSET = 3

    @property
    def coef_name(self) -> str:
        """The coefficient's name in configs, coefficient files and the golden model (``"scale"``, ...)."""
        return COEF_NAMES[self.value]

    @classmethod
    def of(cls, name: str) -> "CoefSel":
        """The selector of coefficient ``name``."""
        return cls(COEF_NAMES.index(name))


def coef_memories(m: Module, unit: Any, shapes: Mapping[str, Any], advance: Value) -> dict[str, list[Value]]:
    """The coefficient memories of ``unit`` (which has the NMPU's interface, ``unit.iface``).

    One bank per coefficient and lane (lane ``j`` holds columns ``g * lanes + j``), written by the
    ``coef`` port (``addr >= columns`` and unknown selectors ignored, ``data`` LSB-aligned), read
    at the input beat's ``group`` when ``advance`` is high. Returns, per coefficient, each lane's
    read data (valid one cycle after the beat is accepted).
    """
    itf = unit.iface
    L, G = itf.lanes, itf.groups
    wsel = unit.coef
    lane_bits = ceil_log2(L)
    if L & (L - 1) == 0:   # power of two: bank and row are bit fields of the address
        w_lane, w_row = (wsel.addr[:lane_bits] if lane_bits else 0), wsel.addr[lane_bits:]
    else:
        w_lane, w_row = wsel.addr % L, wsel.addr // L
    addr_ok = wsel.addr < itf.columns
    out: dict[str, list[Value]] = {}
    for name, shape in shapes.items():
        out[name] = []
        for j in range(L):
            # depth >= 2: a one-row memory has a zero-width address, `[-1:0]` in Verilog
            mem = memory.Memory(shape=shape, depth=max(G, 2), init=[])
            m.submodules[f"mem_{name}_{j}"] = mem
            wp = mem.write_port()
            rp = mem.read_port()
            m.d.comb += [wp.addr.eq(w_row), wp.data.eq(wsel.data[:Shape.cast(shape).width]),
                         wp.en.eq(wsel.en & addr_ok & (wsel.sel == CoefSel.of(name)) & (w_lane == j)),
                         rp.addr.eq(unit.i_stream.payload.group), rp.en.eq(advance)]
            out[name].append(rp.data)
    return out


def out_frac_register(m: Module, port: Any, out_frac_min: int, out_frac_max: int, shape: Any, init: int,
                      name: str, encode: Callable[[Value], Value] = lambda v: v) -> Signal:
    """The register behind the ``out_frac`` write port: ``encode(data)`` is stored when ``en`` is high
    and ``out_frac_min <= data <= out_frac_max``; other writes are ignored. Reset value ``init``."""
    reg = Signal(shape, init=init, name=name)
    with m.If(port.en & (port.data >= out_frac_min) & (port.data <= out_frac_max)):
        m.d.sync += reg.eq(encode(port.data))
    return reg


def delay_line(m: Module, values: Mapping[str, Value], stages: int, advance: Value) -> dict[str, list[Signal]]:
    """Values carried along the pipeline with their beat, in lockstep.

    ``values`` maps a register name pattern (``name.format(k)`` names the copy delayed by ``k``
    advances) to the value; returns, per pattern, ``[value, delayed 1, ..., delayed stages]``.
    The registers have no reset: a payload counts only where its valid bit says so.
    """
    lines = {name: [v] for name, v in values.items()}
    for k in range(stages):
        for name, line in lines.items():
            r = Signal.like(line[-1], name=name.format(k + 1), reset_less=True)
            with m.If(advance):
                m.d.sync += r.eq(line[-1])
            line.append(r)
    return lines
