"""The PCM device model: programming a target conductance, its drift and 1/f read noise at a time.

The published PCM statistical model as implemented by AIHWKit's ``PCMLikeNoiseModel`` (Nandakumar et al.,
ICECS 2019; Joshi et al., Nat. Commun. 11, 2473, 2020), rewritten with its published constants:

- programming noise std (c0 + c1 g + c2 g^2) * g_max / 25 uS, g = g_target / g_max (fit made at 25 uS);
- drift exponent nu ~ |N(mu(g), sigma(g))| with mu = clip(-0.0155 ln g + 0.0244, 0.049, 0.1) and
  sigma = clip(-0.0125 ln g - 0.0059, 0.008, 0.045) (Nandakumar 2019, as AIHWKit);
- 1/f read noise (Joshi 2020): relative std q_s sqrt(ln((t + t0 + t_read) / (2 t_read))),
  q_s = min(0.0088 / max((g_prog / g_max)^0.65, 1e-3), 0.2).

Each weight is a differential pair of devices ``(G+ - G-) / g_max``. The tiles
(:mod:`nmpu_model.analog.tiles`) call :func:`program` once per layer and :func:`read` per drift time;
every draw is by counter (:mod:`nmpu_model.analog.streams`), one compiled pass per layer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from numba import njit

from .streams import _fill_normals

__all__ = ["PCMParams", "program", "read", "read_noise_factor"]


@dataclass(frozen=True)
class PCMParams:
    """PCM device statistics (AIHWKit ``PCMLikeNoiseModel`` defaults, Nandakumar et al. 2019).

    Parameters
    ----------
    g_max : float
        Conductance of the largest weight, uS. 25 uS: the reference of the programming-noise fit
        (AIHWKit ``prog_coeff_g_max_reference = 25.0``).
    prog_coeff : tuple of float
        Programming-noise std ``c0 + c1 g + c2 g^2`` (uS, ``g = g_target / g_max``), scaled by
        ``g_max / 25``: AIHWKit ``prog_coeff = [0.26348, 1.9650, -1.1731]``.
    t0 : float
        First reading time of the drift fit, s (AIHWKit ``t_0 = 20.0``).
    t_read : float
        Read pulse time of the 1/f fit, s (AIHWKit ``t_read = 250e-9``).
    prog_noise_scale, read_noise_scale, drift_scale : float
        Multipliers (1 = the published model; 0 turns a mechanism off).
    """

    g_max: float = 25.0
    prog_coeff: tuple[float, float, float] = (0.26348, 1.9650, -1.1731)
    t0: float = 20.0
    t_read: float = 250e-9
    prog_noise_scale: float = 1.0
    read_noise_scale: float = 1.0
    drift_scale: float = 1.0


def program(target: torch.Tensor, p: PCMParams, key_prog: int, key_nu: int) -> tuple[torch.Tensor, ...]:
    """Program the normalized ``(K, C)`` weights ``target`` (in ``[-1, 1]``) as device pairs: the programmed
    conductances of the ``G+`` and ``G-`` devices and their drift exponents, each ``(K, C)`` float32."""
    k, c = target.shape
    # float32 for the devices: conductances need ~1e-4 relative precision, not 1e-16, at half the cost
    t32 = target.float().reshape(-1)
    g_t = p.g_max * torch.cat([t32.clamp(min=0), (-t32).clamp(min=0)])  # G+ devices, then G- devices
    log_g = torch.log((g_t / p.g_max).clamp(min=1e-7))
    g_prog = np.empty(2 * k * c, np.float32)
    nu = np.empty(2 * k * c, np.float32)
    program_devices(g_t.numpy(), log_g.numpy(), p.g_max, *p.prog_coeff, p.prog_noise_scale, p.drift_scale,
                    np.uint64(key_prog), np.uint64(key_nu), g_prog, nu)
    gpp, gpn = (torch.from_numpy(a).view(k, c) for a in np.split(g_prog, 2))
    nup, nun = (torch.from_numpy(a).view(k, c) for a in np.split(nu, 2))
    return gpp, gpn, nup, nun


def read_noise_factor(g_prog: torch.Tensor, p: PCMParams) -> torch.Tensor:
    """The devices' 1/f read-noise factor ``q_s`` (Joshi 2020, AIHWKit): a function of the programmed
    conductances alone, so a layer computes it once for every drift time."""
    return (0.0088 / (g_prog / p.g_max).abs().pow(0.65).clamp(min=1e-3)).clamp(max=0.2)


def read(p: PCMParams, g_prog: torch.Tensor, nu: torch.Tensor, q_s: torch.Tensor, t: float, key: int,
         shape: tuple[int, int]) -> torch.Tensor:
    """The normalized weights ``(G+ - G-) / g_max`` (float32, ``shape``) read at ``t`` seconds after
    programming: drift, and the 1/f read noise accumulated up to ``t``. ``g_prog``, ``nu`` and ``q_s`` hold
    the ``G+`` devices, then the ``G-`` devices (flat)."""
    tt = float(t) + p.t0  # t counts from the end of programming; the drift fit starts at t0
    g = g_prog * torch.exp(nu * -math.log(tt / p.t0)) if tt > p.t0 else g_prog
    spread = p.read_noise_scale * math.sqrt(math.log((tt + p.t_read) / (2 * p.t_read)))
    w = torch.empty(shape, dtype=torch.float32)
    read_devices(g.numpy(), q_s.numpy(), spread, p.g_max, np.uint64(key), w.view(-1).numpy())
    return w


@njit(cache=True)
def program_devices(g_t, log_g, g_max, c0, c1, c2, prog_scale, drift_scale, key_prog, key_nu, g_prog, nu):
    """Program devices of target conductance ``g_t`` (flat float32, ``ln(max(g_t / g_max, 1e-7))`` in
    ``log_g``): ``g_prog`` = target + programming noise of std ``(c0 + c1 g + c2 g^2) g_max / 25``, not
    negative; ``nu`` = drift exponent ``|N(mu(g), sigma(g))|``. Device ``i`` draws ``normal(key_prog, i)``
    and ``normal(key_nu, i)``."""
    n = g_t.shape[0]
    fit = g_max / 25.0
    blk = 1024
    zp = np.empty(blk, np.float32)
    zn = np.empty(blk, np.float32)
    bad = np.empty(blk, np.bool_)
    for b0 in range(0, n, blk):
        m = min(blk, n - b0)
        _fill_normals(key_prog, np.uint64(b0), zp, bad)
        _fill_normals(key_nu, np.uint64(b0), zn, bad)
        for j in range(m):
            i = b0 + j
            gt = np.float64(g_t[i])
            g = gt / g_max
            sig = (c0 + c1 * g + c2 * g * g) * fit
            g_prog[i] = max(gt + prog_scale * sig * zp[j], 0.0)
            lg = np.float64(log_g[i])
            mu = min(max(-0.0155 * lg + 0.0244, 0.049), 0.1)
            sd = min(max(-0.0125 * lg - 0.0059, 0.008), 0.045)
            nu[i] = abs(mu + sd * zn[j]) * drift_scale


@njit(cache=True)
def read_devices(g_drift, q_s, spread, g_max, key, w):
    """Read drifted devices: ``g = g_drift + |g_drift| * q_s * spread * normal(key, i)``, not negative
    (accumulated 1/f read noise); ``g_drift``, ``q_s`` hold the ``G+`` devices then the ``G-`` devices
    (``2 n``). Writes the normalized weights ``w = (G+ - G-) / g_max`` (``n``, float32)."""
    n = w.shape[0]
    blk = 1024
    zp = np.empty(blk, np.float32)
    zn = np.empty(blk, np.float32)
    bad = np.empty(blk, np.bool_)
    for b0 in range(0, n, blk):
        m = min(blk, n - b0)
        _fill_normals(key, np.uint64(b0), zp, bad)
        _fill_normals(key, np.uint64(n + b0), zn, bad)
        for j in range(m):
            i = b0 + j
            gp = np.float64(g_drift[i])
            gn = np.float64(g_drift[n + i])
            gp = max(gp + abs(gp) * np.float64(q_s[i]) * spread * zp[j], 0.0)
            gn = max(gn + abs(gn) * np.float64(q_s[n + i]) * spread * zn[j], 0.0)
            w[i] = (gp - gn) / g_max


def warm_up() -> None:
    program_devices(np.zeros(2, np.float32), np.zeros(2, np.float32), 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, np.uint64(0),
                    np.uint64(1), np.zeros(2, np.float32), np.zeros(2, np.float32))
    read_devices(np.zeros(2, np.float32), np.zeros(2, np.float32), 1.0, 1.0, np.uint64(0), np.zeros(1, np.float32))
