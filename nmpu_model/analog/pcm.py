"""The PCM device model: AIHWKit's ``PCMLikeNoiseModel``, the published PCM statistical model.

Nandakumar et al., ICECS 2019; Joshi et al., Nat. Commun. 11, 2473, 2020; AIHWKit
``src/aihwkit/inference/noise/pcm.py``, rewritten with its published constants:

- programming noise std (c0 + c1 g + c2 g^2) * g_max / 25 uS, g = g_target / g_max (fit made at 25 uS);
- drift exponent nu ~ |N(mu(g), sigma(g))| with mu = clip(-0.0155 ln g + 0.0244, 0.049, 0.1) and
  sigma = clip(-0.0125 ln g - 0.0059, 0.008, 0.045) (Nandakumar 2019, as AIHWKit);
- 1/f read noise (Joshi 2020): relative std q_s sqrt(ln((t + t0 + t_read) / (2 t_read))),
  q_s = min(0.0088 / max((g_prog / g_max)^0.65, 1e-3), 0.2).

The tiles program and read it as every device model (:mod:`nmpu_model.analog.devices`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .devices import DeviceModel

__all__ = ["PCMParams"]


@dataclass(frozen=True)
class PCMParams(DeviceModel):
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

    name = "pcm"

    def __post_init__(self) -> None:
        self.check()

    def prog_std(self, g: np.ndarray) -> np.ndarray:
        c0, c1, c2 = self.prog_coeff
        return (c0 + c1 * g + c2 * g * g) * (self.g_max / 25.0)

    def drift_stats(self, g: np.ndarray, log_g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lg = log_g.astype(np.float64)
        return (np.minimum(np.maximum(-0.0155 * lg + 0.0244, 0.049), 0.1),
                np.minimum(np.maximum(-0.0125 * lg - 0.0059, 0.008), 0.045))

    def read_noise_factor(self, g_prog: torch.Tensor) -> torch.Tensor:
        return (0.0088 / (g_prog / self.g_max).abs().pow(0.65).clamp(min=1e-3)).clamp(max=0.2)

    def describe(self) -> str:
        return f"pcm: AIHWKit PCMLikeNoiseModel, g_max {self.g_max:g} uS, t0 {self.t0:g} s"
