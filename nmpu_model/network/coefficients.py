"""Per-column NMPU coefficients of an analog layer from its calibration, for a configuration.

:class:`LayerCal` is what calibration measured (config-independent real numbers); :func:`make_coefficients`
turns it into :class:`LayerCoeffs` for one configuration: the real scale/offset (and BN) values, their
integer codes in the configuration's formats, the layer's ``out_frac`` and the quantization error (the
rule is in :mod:`nmpu_model.network.analog_network`'s docstring, "Coefficients").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..golden.config import NMPUConfig
from ..golden.datapath import apply

__all__ = ["LayerCal", "LayerCoeffs", "make_coefficients"]


@dataclass
class LayerCal:
    """Config-independent calibration of one analog layer (real numbers)."""

    step_in: float
    step_out: float
    out_bound: float
    alpha: np.ndarray
    beta: np.ndarray
    A0: np.ndarray          # real z per offset-free ADC code at t_cal (sign included)
    bias: np.ndarray
    g: np.ndarray
    h: np.ndarray
    sign: np.ndarray
    readout_cal: float      # the global drift-compensation readout at t_cal
    x_cal: np.ndarray       # calibration ADC codes (subsample), for the out_frac choice
    zmax: float             # max |z| on calibration, for the BN-stage mid scaling
    readout_cal_columns: np.ndarray | None = None   # the per-column readout at t_cal


@dataclass
class LayerCoeffs:
    """Coefficients of one analog layer for one config.

    Attributes
    ----------
    codes : dict of int64 arrays
        ``scale``, ``offset`` (and ``bn_scale``, ``bn_offset``) as integer codes of the config's
        formats: what the fixed-point NMPU (and the RTL) is loaded with.
    real : dict of float64 arrays
        The exact real values (what ``fp16``/``fp32`` get).
    out_frac : int
    config : NMPUConfig
        The config for this layer (``relu`` on or off as the layer has it).
    qerr : dict
        Coefficient quantization error: ``scale_rel_max``, ``scale_rel_mean`` (relative),
        ``offset_abs_max`` (in output codes), ``saturated`` (coefficients clipped to the format),
        ``out_mse`` (mean squared output error on the calibration codes, output codes squared).
    """

    codes: dict[str, np.ndarray]
    real: dict[str, np.ndarray]
    out_frac: int
    config: NMPUConfig
    qerr: dict[str, float]


def _q_coeff(v: np.ndarray, fmt) -> tuple[np.ndarray, int]:
    """Nearest code of ``fmt`` (ties to even), saturated; and how many saturated."""
    c = np.round(np.ldexp(v, fmt.frac))
    sat = int(((c < fmt.min) | (c > fmt.max)).sum())
    return np.clip(c, fmt.min, fmt.max).astype(np.int64), sat


def _layer_config(config: NMPUConfig, relu: bool) -> NMPUConfig:
    want = config.relu and relu
    return config if want == config.relu else config.with_fields(relu=want)


def _real_post(x: np.ndarray, real: Mapping[str, np.ndarray], cfg: NMPUConfig, out_frac: int) -> np.ndarray:
    """The exact real datapath (no coefficient or intermediate rounding), output not rounded."""
    b = x * real["scale"] + real["offset"]
    if cfg.bn_stage:
        b = b * real["bn_scale"] + real["bn_offset"]
    if cfg.relu:
        b = np.maximum(b, 0.0)
    y = np.ldexp(b, out_frac)
    return np.clip(y, cfg.output.min, cfg.output.max)


def make_coefficients(cal: LayerCal, gdc: float | np.ndarray, config: NMPUConfig, relu: bool) -> LayerCoeffs:
    """Real and integer coefficients of one layer for ``config`` (see the module docstring)."""
    cfg = _layer_config(config, relu)
    A = cal.A0 * gdc

    def candidate(f: int) -> tuple[dict, dict, int]:
        kappa = 1.0 / (cal.step_out * 2.0 ** f)
        if cfg.bn_stage:
            absA = np.abs(A)
            # mid holds kappa1 * sign * z: as large a scale as the format allows, with mid not overflowing
            smax = cfg.scale.max * 2.0 ** -cfg.scale.frac
            mid_real = cfg.mid.max * 2.0 ** -cfg.mid.frac
            k1 = min(0.95 * smax / max(float(absA.max()), 1e-30), 0.9 * mid_real / max(cal.zmax, 1e-30))
            real = {"scale": k1 * absA, "offset": k1 * (cal.sign * cal.bias - absA * cal.beta),
                    "bn_scale": kappa * np.abs(cal.g) / k1, "bn_offset": kappa * cal.h}
        else:
            s = kappa * cal.g * A
            real = {"scale": s, "offset": kappa * (cal.g * cal.bias + cal.h) - s * cal.beta}
        codes, sat = {}, 0
        for k, v in real.items():
            codes[k], n = _q_coeff(v, getattr(cfg, k))
            sat += n
        return real, codes, sat

    # Coefficients grow as 2**-out_frac: the smallest out_frac without saturation (f0) gives the
    # finest steps; f0 - 1 may still win when few coefficients saturate. Judge f0-1..f0+1 by the
    # output error on the calibration codes (of equal errors, the first).
    fs = range(cfg.out_frac_min, cfg.out_frac_max + 1)
    cands = {f: candidate(f) for f in fs}
    f0 = next((f for f in fs if cands[f][2] == 0), cfg.out_frac_max)
    best = None
    for f in (f0 - 1, f0, f0 + 1):
        if f not in cands:
            continue
        real, codes, sat = cands[f]
        ref = _real_post(cal.x_cal.astype(np.float64), real, cfg, f)
        got = apply(cal.x_cal, cfg, codes, "fixed", f)
        mse = float(np.mean((got - ref) ** 2)) if ref.size else 0.0
        if best is None or mse < best[0] - 1e-12:
            best = (mse, f, real, codes, sat)
    mse, f, real, codes, sat = best
    sfmt, ofmt = cfg.scale, cfg.offset
    sq = codes["scale"] * 2.0 ** -sfmt.frac
    nz = np.abs(real["scale"]) > 0
    rel = np.abs(sq - real["scale"])[nz] / np.abs(real["scale"][nz]) if nz.any() else np.zeros(1)
    oq = codes["offset"] * 2.0 ** -ofmt.frac
    # offset error in output codes: offsets add before the 2**out_frac output gain (and BN scale)
    ogain = 2.0 ** f * (np.abs(real["bn_scale"]) if cfg.bn_stage else 1.0)
    qerr = {"scale_rel_max": float(rel.max()), "scale_rel_mean": float(rel.mean()),
            "offset_abs_max": float(np.max(np.abs(oq - real["offset"]) * ogain)),
            "saturated": float(sat), "out_mse": mse}
    return LayerCoeffs(codes, real, int(f), cfg, qerr)
