"""cocotb testbench of the FP16 baseline unit (:mod:`rtl.fp16_unit`) against ``nmpu_model.apply(..., arith="fp16")``.

The unit has the NMPU's ports, so the NMPU testbench's driver, monitor, configuration writer and
scoreboard (:func:`cosim.sim.tb.components.run_stream_test`) run it unchanged; only the coefficients differ:
binary16 bit patterns, which the scoreboard's integer shadow holds as such and the model turns into
values. They are drawn to reach every corner of the arithmetic: ordinary magnitudes, the largest
finite values (overflow to inf in the FMA, then saturation at the output), subnormals, signed zeros
and, rarely, infinities (``inf * 0`` gives NaN, which the output maps to 0).

The host side is :func:`cosim.sim.runner.verify` with ``unit="fp16"``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import register
from .components import run_stream_test

# binary16 patterns that exercise the corners (value in the comment)
EDGE_F16 = np.array([
    0x7BFF, 0xFBFF,          # +-65504: overflow of the FMA to +-inf
    0x7800, 0x5BFF,          # 32768, 255.9: large products
    0x0001, 0x8001, 0x03FF, 0x0400,   # subnormals and the smallest normal
    0x0000, 0x8000,          # +-0
    0x3C00, 0xBC00, 0x3800, 0x3555,   # 1, -1, 0.5, 1/3-ish
    0x6800, 0xE800,          # +-2048: ulp 2, ties for odd products
], dtype=np.int64)
INF_F16 = np.array([0x7C00, 0xFC00], dtype=np.int64)


def f16_values(bits: np.ndarray) -> np.ndarray:
    """binary16 bit patterns -> float64."""
    return np.asarray(bits, dtype=np.int64).astype(np.uint16).view(np.float16).astype(np.float64)


# coefficients that make s*x + o an exact binary16 tie for odd x, right at an output rounding
# boundary when x = +-1 (2.5 + 2**-10 lies halfway between 2.5 and 2.5 + 2**-9): a wrong tie rule
# in the FMA then changes the output code (with ReLU off and out_frac 0)
TIE_SCALES = np.array([0x1400, 0x1A00], dtype=np.int64)                 # 2**-10, 3 * 2**-10
TIE_OFFSETS = np.array([0x4100, 0xC100, 0x4300, 0xC300], dtype=np.int64)  # +-2.5, +-3.5


def tie_coef_values():
    """``coef_values`` that provoke binary16 ties at output boundaries (see :data:`TIE_SCALES`)."""

    def gen(rng: np.random.Generator, sel: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        raw = rng.choice(TIE_SCALES if sel == 0 else TIE_OFFSETS, n)
        return raw, raw

    return gen


def f16_coef_values(p_inf: float = 0.04):
    """``coef_values`` for the FP16 unit: ``(raw, raw)``, the bit pattern written and kept in the shadow."""

    def gen(rng: np.random.Generator, sel: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        typical = rng.normal(0.0, 1.5 if sel in (0, 2) else 30.0, n).astype(np.float16).view(np.uint16).astype(np.int64)
        wild = rng.integers(0, 0x7C00, n, dtype=np.int64) | (rng.integers(0, 2, n, dtype=np.int64) << 15)
        edge = rng.choice(EDGE_F16, n)
        # subnormals and the smallest normals: a tiny scale times a code, plus a tiny or zero
        # offset, is a subnormal FMA result
        tiny = rng.integers(0, 0x0800, n, dtype=np.int64) | (rng.integers(0, 2, n, dtype=np.int64) << 15)
        u = rng.random(n)
        raw = np.where(u < 0.45, typical, np.where(u < 0.67, wild, np.where(u < 0.8, tiny, edge)))
        raw = np.where(rng.random(n) < p_inf, rng.choice(INF_F16, n), raw)
        return raw, raw

    return gen


class FP16Model:
    """The golden model on binary16 bit patterns: ``apply(codes, config, values, arith="fp16")``.

    Also counts how often the stimulus reached each corner (``coverage``): FMA results that overflow
    to inf, are subnormal, zero or NaN, and output codes at the format's extremes (``out_min``: the
    lowest code the overflow mode produces, ``-max`` under ``SAT_SYM``).
    """

    def __init__(self, config: Any) -> None:
        self.config = config
        self.coverage = {"fma_inf": 0, "fma_subnormal": 0, "fma_zero": 0, "fma_nan": 0, "out_max": 0,
                         "out_min": 0, "values": 0}

    def __call__(self, codes: np.ndarray, coefs: dict[str, np.ndarray], out_frac: int) -> np.ndarray:
        from nmpu_model import apply
        from nmpu_model.golden.baselines import fma

        cfg = self.config
        flat = {k: f16_values(v.reshape(-1)) for k, v in coefs.items()}
        x = codes.reshape(1, -1)
        y = apply(x, cfg, flat, arith="fp16", out_frac=out_frac)
        with np.errstate(invalid="ignore", over="ignore"):
            a = fma(flat["scale"], x[0].astype(np.float64), flat["offset"], "fp16")
            stages = [a]
            if cfg.bn_stage:
                stages.append(fma(flat["bn_scale"], a, flat["bn_offset"], "fp16"))
        c = self.coverage
        for v in stages:
            c["fma_inf"] += int(np.isinf(v).sum())
            c["fma_nan"] += int(np.isnan(v).sum())
            c["fma_zero"] += int((v == 0).sum())
            c["fma_subnormal"] += int(((v != 0) & (np.abs(v) < 2.0 ** -14)).sum())
        out = cfg.output
        lowest = out.overflow.bounds(out)[0]
        c["out_max"] += int((y == out.max).sum())
        c["out_min"] += int((y == lowest).sum())      # the lowest code the overflow mode produces
        c["values"] += int(y.size)
        return y.reshape(codes.shape)


def fp16_model(config: Any) -> FP16Model:
    """The scoreboard's model for the FP16 unit (see :class:`FP16Model`)."""
    return FP16Model(config)


STIMULI = ("random", "ties")


async def fp16_stream(dut: Any, p: dict) -> dict:
    """Random layers, stalls and a reset; every output beat checked against ``apply(..., arith="fp16")``."""
    from nmpu_model.golden.config import load_config
    from rtl.fp16_unit import latency
    from rtl.nmpu import interface

    config = load_config(p["config"])
    iface = interface(config, coef_bits=16)
    model = fp16_model(config)
    res = await run_stream_test(
        dut, iface=iface, model=model, coef_names=config.coef_names,
        coef_values=tie_coef_values() if p.get("stimulus") == "ties" else f16_coef_values(),
        vectors=int(p["vectors"]), seed=int(p["seed"]), out_frac_init=config.output.frac,
        latency=latency(config), p_valid=float(p.get("p_valid", 0.8)), p_ready=float(p.get("p_ready", 0.7)))
    return {**res, "coverage": model.coverage}


register(fp16_stream)
