"""cocotb test of the NMPU (:mod:`rtl.nmpu`) against ``nmpu_model.apply``: random layers under stalls.

Its stimulus: edge-biased codes and coefficients of every format (:func:`nmpu_coef_values`); the
components and the stimulus schedule are :mod:`cosim.sim.tb.components`'.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import register
from .components import Model, edge_biased, run_stream_test


def nmpu_coef_values(config: Any, coef_names: list[str], coef_bits: int):
    """``coef_values`` for the fixed-point NMPU: edge-biased codes of each coefficient format."""
    fmts = [getattr(config, n) for n in coef_names]
    mask = (1 << coef_bits) - 1

    def gen(rng: np.random.Generator, sel: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        f = fmts[sel]
        v = edge_biased(rng, f.min, f.max, n)
        # bits above the format's width are "ignored" by the unit: fill them with noise to prove it
        noise = rng.integers(0, 1 << coef_bits, n, dtype=np.int64) & (mask ^ ((1 << f.bits) - 1))
        return (v & ((1 << f.bits) - 1)) | noise, v

    return gen


def nmpu_model(config: Any, arith: str = "fixed") -> Model:
    from nmpu_model import apply

    def model(codes: np.ndarray, coefs: dict[str, np.ndarray], out_frac: int) -> np.ndarray:
        # every lane is an independent column: flatten to one row of n*L columns
        flat = {k: v.reshape(-1) for k, v in coefs.items()}
        return apply(codes.reshape(1, -1), config, flat, arith=arith, out_frac=out_frac).reshape(codes.shape)

    return model


async def nmpu_stream(dut: Any, p: dict) -> dict:
    """Random layers, stalls and a reset; every output beat checked against ``nmpu_model.apply``."""
    from nmpu_model.golden.config import load_config
    from rtl.nmpu import interface, latency

    config = load_config(p["config"])
    iface = interface(config)
    names = config.coef_names
    return await run_stream_test(
        dut, iface=iface, model=nmpu_model(config), coef_names=names,
        coef_values=nmpu_coef_values(config, names, iface.coef_bits), vectors=int(p["vectors"]),
        seed=int(p["seed"]), out_frac_init=config.output.frac, latency=latency(config),
        p_valid=float(p.get("p_valid", 0.8)), p_ready=float(p.get("p_ready", 0.7)))


register(nmpu_stream)
