"""Memristive (RRAM) devices: on/off conductances with device-to-device variability, a finite number of
programmable levels, programming error, devices stuck at on or off, and no drift unless a relaxation is given.

A device ``i`` has its own on and off resistances, lognormal around the nominal ones (device-to-device
variability, fixed per seed): ``R_on,i = r_on exp(d2d_sigma z)``, ``R_off,i = r_off exp(d2d_sigma z')``. A weight's
two conductances are programmed to a target ``g`` (a fraction of the nominal range ``g_max = 1/r_on - 1/r_off``):

- ``levels`` (when given): ``g`` is rounded to the nearest of ``levels`` evenly spaced states (MemTorch's
  ``FiniteConductanceStates``);
- the device reaches ``G = G_off,i + g (G_on,i - G_off,i)``, plus a Gaussian programming error of std
  ``prog_sigma * g_max``, kept inside ``[G_off,i, G_on,i]``;
- a fraction ``p_stuck_on`` of the devices is stuck at ``G_on,i``, ``p_stuck_off`` at ``G_off,i`` whatever their
  target (MemTorch's ``apply_device_faults``: low- and high-resistance-state proportions); the fault map is a
  function of the seed and the layer alone;
- ``relaxation`` (a drift exponent; 0: none) decays every conductance as ``((t + t0) / t0)^-relaxation``;
- ``read_noise``: a relative Gaussian read noise per read (``read_noise_scale`` multiplies it), the same at every time.

The weight is ``(G+ - G-) / g_max``: the off conductance both devices carry cancels, up to the devices' own
``G_off,i``. The preset's on/off resistances are MemTorch's crossbar example (``r_on = 1e2``, ``r_off = 1e4``
ohms, an on/off ratio of 100; MemTorch ``docs/memtorch.bh.rst``); every non-ideality is off unless asked for
(``--device rram:levels=32,d2d_sigma=0.1,p_stuck_on=0.01``), since the published rates differ by device and stack.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .devices import DeviceModel
from .streams import derive_seed, normals, uniforms

__all__ = ["RRAMParams"]


@dataclass(frozen=True)
class RRAMParams(DeviceModel):
    """RRAM device statistics (see the module docstring).

    Parameters
    ----------
    r_on, r_off : float
        Nominal on (lowest) and off (highest) resistance, ohms.
    levels : int or None
        Programmable conductance states (at least 2); None: continuous.
    d2d_sigma : float
        Lognormal sigma of each device's on and off resistance (device-to-device variability).
    prog_sigma : float
        Programming error std as a fraction of the nominal conductance range.
    p_stuck_on, p_stuck_off : float
        Fractions of devices stuck at their on / off conductance.
    relaxation : float
        Conductance relaxation exponent (``((t + t0) / t0)^-relaxation``); 0: no drift.
    t0 : float
        Time the relaxation is counted from, s.
    read_noise : float
        Relative std of the Gaussian read noise.
    prog_noise_scale, read_noise_scale, drift_scale : float
        Multipliers of the programming error, the read noise and the relaxation.
    """

    r_on: float = 1e2
    r_off: float = 1e4
    levels: int | None = None
    d2d_sigma: float = 0.0
    prog_sigma: float = 0.0
    p_stuck_on: float = 0.0
    p_stuck_off: float = 0.0
    relaxation: float = 0.0
    t0: float = 1.0
    read_noise: float = 0.0
    t_read: float = 1e-6

    name = "rram"

    def __post_init__(self) -> None:
        if not 0 < self.r_on < self.r_off:
            raise ValueError(f"RRAMParams needs 0 < r_on < r_off, not r_on={self.r_on!r}, r_off={self.r_off!r}")
        if self.levels is not None and (isinstance(self.levels, bool) or not isinstance(self.levels, int)
                                        or self.levels < 2):
            raise ValueError(f"RRAMParams.levels must be an integer >= 2 or None, not {self.levels!r}")
        for f in ("d2d_sigma", "prog_sigma", "relaxation", "read_noise"):
            if not getattr(self, f) >= 0:
                raise ValueError(f"RRAMParams.{f} must be >= 0, not {getattr(self, f)!r}")
        for f in ("p_stuck_on", "p_stuck_off"):
            if not 0 <= getattr(self, f) <= 1:
                raise ValueError(f"RRAMParams.{f} must be a fraction in [0, 1], not {getattr(self, f)!r}")
        if self.p_stuck_on + self.p_stuck_off > 1:
            raise ValueError("RRAMParams.p_stuck_on + p_stuck_off must be at most 1")
        self.check()

    @property
    def g_on(self) -> float:
        """Nominal on conductance, uS."""
        return 1e6 / self.r_on

    @property
    def g_off(self) -> float:
        """Nominal off conductance, uS."""
        return 1e6 / self.r_off

    @property
    def g_max(self) -> float:  # type: ignore[override]
        """The conductance range a weight of 1 spans, uS."""
        return self.g_on - self.g_off

    def program_conductances(self, g_t: np.ndarray, key_prog: int, key_nu: int) -> tuple[np.ndarray, np.ndarray]:
        n = g_t.shape[0]
        g = np.clip(g_t.astype(np.float64) / self.g_max, 0.0, 1.0)
        if self.levels is not None:
            g = np.round(g * (self.levels - 1)) / (self.levels - 1)
        z = {k: np.empty(n) for k in ("on", "off", "prog")}
        for k, a in z.items():
            normals(np.uint64(derive_seed(key_prog, k)), 0, a)
        g_on = self.g_on * np.exp(-self.d2d_sigma * z["on"])        # R_on,i = r_on exp(sigma z): G = 1 / R
        g_off = self.g_off * np.exp(-self.d2d_sigma * z["off"])
        hi, lo = np.maximum(g_on, g_off), np.minimum(g_on, g_off)
        G = lo + g * (hi - lo) + self.prog_noise_scale * self.prog_sigma * self.g_max * z["prog"]
        on, off = self.stuck(n, key_prog)
        G = np.where(on, hi, np.where(off, lo, np.clip(G, lo, hi)))
        return G.astype(np.float32), np.full(n, self.relaxation * self.drift_scale, np.float32)

    def stuck(self, n: int, key_prog: int) -> tuple[np.ndarray, np.ndarray]:
        """Which of ``n`` devices programmed with ``key_prog`` are stuck on, and which stuck off (the fault map)."""
        u = np.empty(n)
        uniforms(np.uint64(derive_seed(key_prog, "faults")), 0, u)
        return u < self.p_stuck_on, (u >= self.p_stuck_on) & (u < self.p_stuck_on + self.p_stuck_off)

    def read_noise_factor(self, g_prog: torch.Tensor) -> torch.Tensor:
        return torch.full_like(g_prog, self.read_noise)

    def read_spread(self, tt: float) -> float:
        return self.read_noise_scale

    def describe(self) -> str:
        extra = [f"{self.levels} levels" if self.levels else "continuous"]
        extra += [f"{k} {getattr(self, k):g}" for k in ("d2d_sigma", "prog_sigma", "p_stuck_on", "p_stuck_off",
                                                         "relaxation", "read_noise") if getattr(self, k)]
        return (f"rram: R_on {self.r_on:g} ohm, R_off {self.r_off:g} ohm (g_max {self.g_max:g} uS), "
                + ", ".join(extra))
