"""One layer's data as an NMPU stream: the stimulus shared by the cocotb and the bulk (C++) modes.

A layer is ADC codes ``(samples, columns)``, integer coefficient codes per column and an
``out_frac``. The unit holds ``config.rtl.columns`` columns of coefficients, so the layer's columns
are cut into *blocks* of at most that many; per block:

1. coefficient writes through ``coef`` (one per cycle, ``sel`` by ``sel`` then column by column; the
   layer's ``out_frac`` goes through the ``out_frac`` port with the first write of the first block),
2. the block's beats: for each sample, for each lane group ``g`` of the block, the codes of columns
   ``g*lanes .. g*lanes+lanes-1`` (relative to the block) with ``group = g``.

A block whose width is not a multiple of ``lanes`` is padded with zero codes (and zero
coefficients); the padded outputs are dropped. The writes of a block wait until every beat of the
previous block was accepted: a beat reads its coefficients when it is accepted (the unit's
documented timing), so the beats still in the pipeline are not disturbed by the reload.

Both modes read the very same binary stimulus file (format in ``cosim/harness/bulk_main.cpp``) and
draw their valid gaps and ready stalls from the same seeded :class:`XorShift`, so one seed gives the
same handshakes, cycle count and outputs in both.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from nmpu_model.golden.config import NMPUConfig

MAGIC = b"NMPUBLK1"
COEF_SEL = {"scale": 0, "offset": 1, "bn_scale": 2, "bn_offset": 3}
_M64 = (1 << 64) - 1


class XorShift:
    """xorshift64* with 24-bit draws: the stall generator of both modes (the C++ one is the same).

    ``random()`` is a draw ``u / 2**24``; ``random() < p`` is exactly ``u < threshold(p)``, the
    integer test the C++ harness makes.
    """

    def __init__(self, seed: int) -> None:
        self.s = (int(seed) * 0x9E3779B97F4A7C15 + 0x2545F4914F6CDD1D) & _M64 or 1

    def next24(self) -> int:
        s = self.s
        s ^= s >> 12
        s ^= (s << 25) & _M64
        s ^= s >> 27
        self.s = s
        return ((s * 0x2545F4914F6CDD1D) & _M64) >> 40

    def random(self) -> float:
        return self.next24() / (1 << 24)

    @staticmethod
    def threshold(p: float) -> int:
        """``ceil(p * 2**24)``: for an integer draw ``u``, ``u / 2**24 < p`` iff ``u < threshold(p)``."""
        if not 0.0 < p <= 1.0:
            raise ValueError(f"a handshake probability must be in (0, 1], not {p!r}")
        return math.ceil(p * (1 << 24))


@dataclass
class Block:
    """Coefficient writes ``(sel, addr, raw bits)``, an optional out_frac write, and a range of beats."""

    writes: np.ndarray
    frac: int | None
    beats: tuple[int, int]
    columns: tuple[int, int]          # the layer's columns [lo, hi) this block holds


@dataclass
class LayerStimulus:
    """A layer laid out as beats. ``codes`` ``(beats, lanes)`` int32, ``groups`` ``(beats,)`` uint32."""

    lanes: int
    samples: int
    columns: int
    blocks: list[Block]
    codes: np.ndarray
    groups: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def beats(self) -> int:
        return int(self.codes.shape[0])

    @property
    def values(self) -> int:
        """Output codes that count (padding excluded)."""
        return self.samples * self.columns

    def unpack(self, out: np.ndarray) -> np.ndarray:
        """Output codes ``(beats, lanes)`` in input order -> ``(samples, columns)`` int64."""
        out = np.asarray(out).reshape(self.beats, self.lanes)
        parts = []
        for b in self.blocks:
            lo, hi = b.beats
            width = b.columns[1] - b.columns[0]
            parts.append(out[lo:hi].reshape(self.samples, -1)[:, :width])
        return np.concatenate(parts, axis=1).astype(np.int64) if parts else np.zeros((self.samples, 0), np.int64)


def plan(codes: np.ndarray, coeffs: Mapping[str, np.ndarray], out_frac: int, config: NMPUConfig) -> LayerStimulus:
    """Lay out one layer as column blocks of coefficient writes and beats (see the module docstring).

    Parameters
    ----------
    codes : int array (samples, columns)
        ADC codes, within ``config.adc_bits`` signed.
    coeffs : mapping
        Integer coefficient codes per column (``LayerCoeffs.codes``), in their formats' ranges.
    out_frac : int
        The layer's output frac, within ``[config.out_frac_min, config.out_frac_max]``.
    """
    x = np.asarray(codes)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"codes must be a 2-D integer array (samples, columns), not {x.dtype} {x.shape}")
    lo, hi = -(1 << (config.adc_bits - 1)), (1 << (config.adc_bits - 1)) - 1
    bad = (x < lo) | (x > hi)
    if bad.any():
        i = np.argwhere(bad)[0]
        raise ValueError(f"codes[{i[0]}, {i[1]}] = {x[tuple(i)]} outside the {config.adc_bits}-bit ADC range "
                         f"({int(bad.sum())} such)")
    if not config.out_frac_min <= out_frac <= config.out_frac_max:
        raise ValueError(f"out_frac {out_frac} outside the configured range "
                         f"[{config.out_frac_min}, {config.out_frac_max}]")
    n, C = x.shape
    L, depth = config.rtl.lanes, config.rtl.columns
    names = config.coef_names
    raw = {}
    for name in names:
        c = np.asarray(coeffs[name]).reshape(-1)
        fmt = getattr(config, name)
        if c.shape != (C,):
            raise ValueError(f"coefficient {name!r} has {c.shape[0]} columns, the codes {C}")
        bad = (c < fmt.min) | (c > fmt.max)
        if bad.any():
            j = int(np.argmax(bad))
            raise ValueError(f"coefficient {name}[{j}] = {c[j]} outside {fmt.describe()}")
        raw[name] = c.astype(np.int64) & ((1 << fmt.bits) - 1)   # two's complement bits, LSB-aligned

    blocks, code_parts, group_parts = [], [], []
    beat = 0
    for b0 in range(0, C, depth):
        b1 = min(C, b0 + depth)
        width = b1 - b0
        G = -(-width // L)
        padded = G * L
        xb = np.zeros((n, padded), dtype=np.int32)
        xb[:, :width] = x[:, b0:b1]
        writes = []
        for name in names:
            data = np.zeros(padded, dtype=np.int64)
            data[:width] = raw[name][b0:b1]
            writes.append(np.stack([np.full(padded, COEF_SEL[name]), np.arange(padded), data], axis=1))
        code_parts.append(xb.reshape(n * G, L))
        group_parts.append(np.tile(np.arange(G, dtype=np.uint32), n))
        blocks.append(Block(np.concatenate(writes).astype(np.int64), int(out_frac) if b0 == 0 else None,
                            (beat, beat + n * G), (b0, b1)))
        beat += n * G
    if not blocks:  # no columns: nothing to stream, still set out_frac
        blocks.append(Block(np.zeros((0, 3), np.int64), int(out_frac), (0, 0), (0, 0)))
    codes_b = np.concatenate(code_parts) if code_parts else np.zeros((0, L), np.int32)
    groups_b = np.concatenate(group_parts) if group_parts else np.zeros(0, np.uint32)
    return LayerStimulus(L, n, C, blocks, np.ascontiguousarray(codes_b, dtype=np.int32),
                         np.ascontiguousarray(groups_b, dtype=np.uint32),
                         {"blocks": len(blocks), "out_frac": int(out_frac)})


def write_stimulus(stim: LayerStimulus, path: str | Path) -> None:
    """The binary stimulus the C++ harness and the cocotb layer test read (little endian)."""
    with open(path, "wb") as f:
        f.write(MAGIC + struct.pack("<IIQ", stim.lanes, len(stim.blocks), stim.beats))
        for b in stim.blocks:
            f.write(struct.pack("<IiiQ", len(b.writes), b.frac is not None, b.frac or 0, b.beats[1] - b.beats[0]))
            w = np.zeros(len(b.writes), dtype=[("sel", "<u4"), ("addr", "<u4"), ("data", "<u8")])
            if len(b.writes):
                w["sel"], w["addr"], w["data"] = b.writes[:, 0], b.writes[:, 1], b.writes[:, 2]
            f.write(w.tobytes())
        f.write(stim.codes.astype("<i4").tobytes())
        f.write(stim.groups.astype("<u4").tobytes())


def read_stimulus(path: str | Path) -> tuple[int, list[tuple[list[tuple[int, int, int]], int | None, int]],
                                              np.ndarray, np.ndarray]:
    """Read a stimulus file: ``(lanes, [(writes, frac, n_beats)], codes (beats, lanes), groups)``."""
    data = Path(path).read_bytes()
    if data[:8] != MAGIC:
        raise ValueError(f"{path}: not a stimulus file")
    lanes, n_blocks, n_beats = struct.unpack_from("<IIQ", data, 8)
    pos = 24
    blocks = []
    for _ in range(n_blocks):
        nw, has_frac, frac, nb = struct.unpack_from("<IiiQ", data, pos)
        pos += 20
        w = np.frombuffer(data, dtype=[("sel", "<u4"), ("addr", "<u4"), ("data", "<u8")], count=nw, offset=pos)
        pos += 16 * nw
        blocks.append(([(int(a), int(b), int(c)) for a, b, c in zip(w["sel"], w["addr"], w["data"])],
                       frac if has_frac else None, nb))
    codes = np.frombuffer(data, dtype="<i4", count=n_beats * lanes, offset=pos).reshape(n_beats, lanes)
    pos += 4 * n_beats * lanes
    groups = np.frombuffer(data, dtype="<u4", count=n_beats, offset=pos)
    return lanes, blocks, codes, groups


@dataclass
class StreamResult:
    """What streaming one layer through the RTL gave.

    Attributes
    ----------
    outputs : int64 array (samples, columns)
        The RTL's output codes.
    cycles : int
        Clock cycles from the end of reset to the last output beat (writes and stalls included).
    seconds : float
        Wall time of the simulation run as seen from Python (simulator start-up included).
    sim_seconds : float
        Time of the clock loop alone, measured inside the simulator.
    protocol_errors : int
        Stream-rule violations seen by the monitor (a stalled beat changed or withdrawn, an output with
        no input in flight, a deadlock).
    """

    outputs: np.ndarray
    cycles: int
    seconds: float
    sim_seconds: float
    protocol_errors: int = 0
    first_error: str | None = None
    waves: Path | None = None
    mode: str = ""
