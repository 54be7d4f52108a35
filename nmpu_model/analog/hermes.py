"""PCM fitted to IBM's HERMES chip: AIHWKit 1.2's ``HermesNoiseModel``.

Source: IBM/aihwkit ``src/aihwkit/inference/noise/hermes.py`` (added in AIHWKit 0.9.2, PR #685; the formulas
are the same in 1.2.0), fitted to the HERMES chip's PCM (Le Gallo et al., Nat. Electron. 6, 680, 2023;
Khaddam-Aljameh et al., JSSC 57, 1027, 2022) with the drift model of Nandakumar et al. (ICECS 2019) refitted.
Each of ``G+`` and ``G-`` is ``num_devices`` PCM devices programmed together (two by default: the chip's
multi-device unit cell, treated "as if the two devices host the same conductance"), hence ``g_max`` 20.7 uS
(two devices) or 10.35 uS (one). With ``g = g_target / g_max``:

- programming noise std ``(c0 + c1 g + c2 g^2 + c3 g^3) * g_max / g_ref`` uS, ``g_ref`` the ``g_max`` of the fit;
- drift exponent ``nu = |N(mu, sd)|``: ``mu = clip(-0.0387 ln g - 0.0182, 0.0720, 0.13)`` below ``g = 0.0945``,
  ``-0.0436 g^2 - 0.0126 g + 0.0736`` above (both device counts); ``sd`` (two devices)
  ``clip(-0.0117 ln g - 0.0057, 0.0091, 0.04)`` below 0.3055, ``-0.0118 g^2 + 0.0093 g + 0.0073`` above; (one
  device) ``clip(-0.0120 ln g - 0.0023, 0.0124, 0.04)`` below 0.3039, ``-0.0165 g^2 + 0.0116 g + 0.0104`` above;
  ``g`` clipped to at least 1e-7;
- 1/f read noise factor of the programmed ``g = |g_prog| / g_max`` (not clipped): (two devices)
  ``clip(-0.0117 ln g - 0.0069, 0.015, 0.04)`` below 0.16, ``0.0069 g^3 - 0.0280 g^2 + 0.0211 g + 0.0123`` above;
  (one device) ``clip(-0.0078 ln g + 0.0038, 0.0179, 0.04)`` below 0.1591,
  ``0.0664 g^3 - 0.1352 g^2 + 0.0768 g + 0.0088`` above;
- ``t0`` 300 s (two devices) or 200 s (one), ``t_read`` 512 ns.

AIHWKit maps a whole weight tensor with one scale (``SinglePairConductanceConverter``); the tiles here scale
each column to ``g_max`` (the NMPU's per-column scale undoes it), as for every device model.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .devices import DeviceModel

__all__ = ["HermesParams"]

#: (g_max uS, t0 s, programming-noise polynomial c0..c3 at g_max) per device count, AIHWKit's defaults
_DEFAULTS = {2: (20.7, 300.0, (0.16603222, 4.71806468, -8.48101252, 4.68961419)),
             1: (10.35, 200.0, (0.15781817, 2.32443916, -2.16310839, 0.68841818))}


def _branch(g: np.ndarray, cut: float, below: np.ndarray, above: np.ndarray) -> np.ndarray:
    return np.where(g < cut, below, above)


@dataclass(frozen=True)
class HermesParams(DeviceModel):
    """HERMES-fitted PCM statistics (AIHWKit ``HermesNoiseModel`` defaults).

    Parameters
    ----------
    num_devices : int
        PCM devices per conductance, 1 or 2 (AIHWKit's default 2).
    g_max : float or None
        Conductance of the largest weight, uS; at most the fit's (20.7 uS for two devices, 10.35 for one),
        which ``None`` takes. The programming noise scales with ``g_max / g_ref``.
    t0 : float or None
        First reading time of the drift fit, s (``None``: 300 s for two devices, 200 s for one).
    t_read : float
        Read pulse time of the 1/f fit, s (512 ns).
    prog_noise_scale, read_noise_scale, drift_scale : float
        Multipliers (1 = the published model; 0 turns a mechanism off).
    """

    num_devices: int = 2
    g_max: float | None = None
    t0: float | None = None
    t_read: float = 512e-9

    name = "hermes"

    def __post_init__(self) -> None:
        if self.num_devices not in _DEFAULTS:
            raise ValueError(f"HermesParams.num_devices must be 1 or 2, not {self.num_devices!r}")
        g_ref, t0, _ = _DEFAULTS[self.num_devices]
        if self.g_max is None:
            object.__setattr__(self, "g_max", g_ref)
        elif not 0 < self.g_max <= g_ref:
            raise ValueError(f"HermesParams.g_max must be in (0, {g_ref}] uS for {self.num_devices} device(s), "
                             f"not {self.g_max!r}")
        if self.t0 is None:
            object.__setattr__(self, "t0", t0)
        self.check()

    def prog_std(self, g: np.ndarray) -> np.ndarray:
        g_ref, _, (c0, c1, c2, c3) = _DEFAULTS[self.num_devices]
        return (c0 + c1 * g + c2 * g ** 2 + c3 * g ** 3) * (self.g_max / g_ref)

    def drift_stats(self, g: np.ndarray, log_g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        g = np.maximum(np.abs(g), 1e-7)
        lg = np.log(g)
        mu = _branch(g, 0.0945, np.clip(-0.0387 * lg - 0.0182, 0.0720, 0.13), -0.0436 * g ** 2 - 0.0126 * g + 0.0736)
        if self.num_devices == 2:
            sd = _branch(g, 0.3055, np.clip(-0.0117 * lg - 0.0057, 0.0091, 0.04), -0.0118 * g ** 2 + 0.0093 * g + 0.0073)
        else:
            sd = _branch(g, 0.3039, np.clip(-0.0120 * lg - 0.0023, 0.0124, 0.04), -0.0165 * g ** 2 + 0.0116 * g + 0.0104)
        return mu, sd

    def read_noise_factor(self, g_prog: torch.Tensor) -> torch.Tensor:
        g = (g_prog.double() / self.g_max).abs()
        lg = torch.log(g)           # -inf at 0: clipped to the top of the range (the device reads 0 anyway)
        if self.num_devices == 2:
            q = torch.where(g < 0.16, (-0.0117 * lg - 0.0069).clamp(0.015, 0.04),
                            0.0069 * g ** 3 - 0.0280 * g ** 2 + 0.0211 * g + 0.0123)
        else:
            q = torch.where(g < 0.1591, (-0.0078 * lg + 0.0038).clamp(0.0179, 0.04),
                            0.0664 * g ** 3 - 0.1352 * g ** 2 + 0.0768 * g + 0.0088)
        return q.float()

    def describe(self) -> str:
        return (f"hermes: AIHWKit HermesNoiseModel, {self.num_devices} device(s) per conductance, "
                f"g_max {self.g_max:g} uS, t0 {self.t0:g} s")
