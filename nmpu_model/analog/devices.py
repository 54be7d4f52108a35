"""The device model interface the tiles call, and the one way every model programs and reads its devices.

A weight is a differential pair of conductances, ``(G+ - G-) / g_max``, each of ``devices_per_conductance``
physical devices that the model's statistics describe together. A device model (:class:`DeviceModel`) says,
for a target conductance, how far programming misses it (:meth:`~DeviceModel.prog_std`), the mean and spread
of its drift exponent (:meth:`~DeviceModel.drift_stats`), and its 1/f read noise (:meth:`~DeviceModel.read_noise_factor`);
:func:`program` and :func:`read` draw the noise, by counter, for every model alike:

- programming: ``g_prog = max(g_target + prog_noise_scale * prog_std * N(0, 1), 0)``; drift exponent
  ``nu = |mu + sd * N(0, 1)| * drift_scale`` (from the target conductance);
- reading at ``t`` s after programming (``t' = t + t0``): ``g = g_prog (t' / t0)^-nu``, then the 1/f noise
  accumulated up to ``t'``: ``g + |g| * read_noise_scale * q_s * sqrt(ln((t' + t_read) / (2 t_read))) * N(0, 1)``,
  not negative.

This is the structure of AIHWKit's inference noise models (``BaseNoiseModel``, ``PCMLikeNoiseModel``,
``HermesNoiseModel``); the models differ in their fitted functions and constants. Device ``i``'s draws are
``normal(key, i)`` of their streams (:mod:`nmpu_model.analog.streams`): the same seed gives the same bits,
whatever the batching.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from numba import njit

from .streams import _fill_normals

__all__ = ["DeviceModel", "program", "read", "device_names", "device_by_name"]


@dataclass(frozen=True)
class DeviceModel:
    """The statistics of one kind of device; subclasses give the fitted functions.

    Attributes every model has: ``g_max`` (uS, the conductance of the largest weight), ``t0`` (s, the first
    reading time of the drift fit), ``t_read`` (s, the read pulse of the 1/f fit) and the multipliers
    ``prog_noise_scale``, ``read_noise_scale``, ``drift_scale`` (1 = the published model, 0 turns a mechanism off;
    keyword-only, the same for every model).
    """

    prog_noise_scale: float = field(default=1.0, kw_only=True)
    read_noise_scale: float = field(default=1.0, kw_only=True)
    drift_scale: float = field(default=1.0, kw_only=True)

    #: the name a command line gives (``--device``)
    name = "device"

    def prog_std(self, g: np.ndarray) -> np.ndarray:
        """Programming-noise std in uS of devices whose target is ``g * g_max`` (``g`` float64 in [0, 1])."""
        raise NotImplementedError

    def drift_stats(self, g: np.ndarray, log_g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of the drift exponent of devices of relative target ``g`` (float64),
        ``log_g = ln(max(g, 1e-7))`` (float32, as the tiles compute it)."""
        raise NotImplementedError

    def read_noise_factor(self, g_prog: torch.Tensor) -> torch.Tensor:
        """The 1/f read-noise factor ``q_s`` of devices programmed to ``g_prog`` (uS): a function of the
        programmed conductances alone, so a layer computes it once for every drift time."""
        raise NotImplementedError

    def read_spread(self, tt: float) -> float:
        """How the read noise grows with the time ``tt`` since the drift fit's start (``t + t0``): the 1/f noise
        accumulated over the read, ``read_noise_scale * sqrt(ln((tt + t_read) / (2 t_read)))``."""
        return self.read_noise_scale * math.sqrt(math.log((tt + self.t_read) / (2 * self.t_read)))

    def program_conductances(self, g_t: np.ndarray, key_prog: int, key_nu: int) -> tuple[np.ndarray, np.ndarray]:
        """Programmed conductances and drift exponents (float32) of devices of target ``g_t`` (float32, uS, in
        ``[0, g_max]``): the Gaussian programming error of :meth:`prog_std` and the exponents of
        :meth:`drift_stats`. A model whose devices work otherwise (levels, faults) overrides this."""
        log_g = torch.log((torch.from_numpy(g_t) / self.g_max).clamp(min=1e-7)).numpy()
        g = g_t.astype(np.float64) / self.g_max
        mu, sd = self.drift_stats(g, log_g)
        g_prog = np.empty(g_t.shape[0], np.float32)
        nu = np.empty(g_t.shape[0], np.float32)
        program_devices(g_t, self.prog_std(g), mu, sd, self.prog_noise_scale, self.drift_scale, np.uint64(key_prog),
                        np.uint64(key_nu), g_prog, nu)
        return g_prog, nu

    def check(self) -> None:
        """Refuse parameters no device has (a ``ValueError`` naming the field): subclasses call it."""
        cls = type(self).__name__
        for f in ("g_max", "t0", "t_read"):
            v = getattr(self, f)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{cls}.{f} must be a positive number, not {v!r}")
        for f in ("prog_noise_scale", "read_noise_scale", "drift_scale"):
            v = getattr(self, f)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{cls}.{f} must be a number >= 0, not {v!r}")

    def describe(self) -> str:
        """One line: the model and its main constants."""
        return f"{self.name}: g_max {self.g_max:g} uS, t0 {self.t0:g} s"


def program(target: torch.Tensor, p: DeviceModel, key_prog: int, key_nu: int) -> tuple[torch.Tensor, ...]:
    """Program the normalized ``(K, C)`` weights ``target`` (in ``[-1, 1]``) as device pairs: the programmed
    conductances of the ``G+`` and ``G-`` devices and their drift exponents, each ``(K, C)`` float32."""
    k, c = target.shape
    # float32 for the devices: conductances need ~1e-4 relative precision, not 1e-16, at half the cost
    t32 = target.float().reshape(-1)
    g_t = p.g_max * torch.cat([t32.clamp(min=0), (-t32).clamp(min=0)])  # G+ devices, then G- devices
    g_prog, nu = p.program_conductances(g_t.numpy(), key_prog, key_nu)
    gpp, gpn = (torch.from_numpy(a).view(k, c) for a in np.split(g_prog, 2))
    nup, nun = (torch.from_numpy(a).view(k, c) for a in np.split(nu, 2))
    return gpp, gpn, nup, nun


def read(p: DeviceModel, g_prog: torch.Tensor, nu: torch.Tensor, q_s: torch.Tensor, t: float, key: int,
         shape: tuple[int, int]) -> torch.Tensor:
    """The normalized weights ``(G+ - G-) / g_max`` (float32, ``shape``) read at ``t`` seconds after
    programming: drift, and the 1/f read noise accumulated up to ``t``. ``g_prog``, ``nu`` and ``q_s`` hold
    the ``G+`` devices, then the ``G-`` devices (flat)."""
    tt = float(t) + p.t0  # t counts from the end of programming; the drift fit starts at t0
    g = g_prog * torch.exp(nu * -math.log(tt / p.t0)) if tt > p.t0 else g_prog
    spread = p.read_spread(tt)
    w = torch.empty(shape, dtype=torch.float32)
    read_devices(g.numpy(), q_s.numpy(), spread, p.g_max, np.uint64(key), w.view(-1).numpy())
    return w


#: devices per block of the kernels' draws
BLOCK = 1024


@njit(inline="always", cache=True)
def _draw_pair(key_a, start_a, key_b, start_b, za, zb, bad):
    """``za``, ``zb``: the next block of two normal streams (from ``start_a`` of ``key_a``, ``start_b`` of ``key_b``)."""
    _fill_normals(key_a, np.uint64(start_a), za, bad)
    _fill_normals(key_b, np.uint64(start_b), zb, bad)


@njit(cache=True)
def program_devices(g_t, sig, mu, sd, prog_scale, drift_scale, key_prog, key_nu, g_prog, nu):
    """Program devices of target conductance ``g_t`` (flat float32): ``g_prog`` = target + programming noise of
    std ``sig``, not negative; ``nu`` = drift exponent ``|N(mu, sd)|``. Device ``i`` draws ``normal(key_prog, i)``
    and ``normal(key_nu, i)``."""
    n = g_t.shape[0]
    zp, zn, bad = np.empty(BLOCK, np.float32), np.empty(BLOCK, np.float32), np.empty(BLOCK, np.bool_)
    for b0 in range(0, n, BLOCK):
        _draw_pair(key_prog, b0, key_nu, b0, zp, zn, bad)
        for j in range(min(BLOCK, n - b0)):
            i = b0 + j
            g_prog[i] = max(np.float64(g_t[i]) + prog_scale * sig[i] * zp[j], 0.0)
            nu[i] = abs(mu[i] + sd[i] * zn[j]) * drift_scale


@njit(cache=True)
def read_devices(g_drift, q_s, spread, g_max, key, w):
    """Read drifted devices: ``g = g_drift + |g_drift| * q_s * spread * normal(key, i)``, not negative
    (accumulated 1/f read noise); ``g_drift``, ``q_s`` hold the ``G+`` devices then the ``G-`` devices
    (``2 n``). Writes the normalized weights ``w = (G+ - G-) / g_max`` (``n``, float32)."""
    n = w.shape[0]
    zp, zn, bad = np.empty(BLOCK, np.float32), np.empty(BLOCK, np.float32), np.empty(BLOCK, np.bool_)
    for b0 in range(0, n, BLOCK):
        _draw_pair(key, b0, key, n + b0, zp, zn, bad)   # the G+ devices' draws, then the G- devices'
        for j in range(min(BLOCK, n - b0)):
            i = b0 + j
            gp = np.float64(g_drift[i])
            gn = np.float64(g_drift[n + i])
            gp = max(gp + abs(gp) * np.float64(q_s[i]) * spread * zp[j], 0.0)
            gn = max(gn + abs(gn) * np.float64(q_s[n + i]) * spread * zn[j], 0.0)
            w[i] = (gp - gn) / g_max


def device_names() -> tuple[str, ...]:
    """The device models a command line can name (``--device``)."""
    return tuple(_models())


def device_by_name(spec: str) -> DeviceModel:
    """The device model of a ``--device`` value: a name (its published defaults), optionally followed by
    ``:field=value,...`` to change parameters (``rram:levels=16,p_stuck_on=0.01``). Bad input is a one-line
    ``ValueError`` naming the choices."""
    import dataclasses

    name, _, rest = str(spec).partition(":")
    models = _models()
    if name.lower().endswith((".csv", ".json")):          # the user's own characterisation file
        from .measured import MeasuredParams
        fields = {"g_max", "t0", "t_read", "prog_noise_scale", "read_noise_scale", "drift_scale"}
        return _build(name, MeasuredParams.from_file, {"path": name}, fields, rest, spec)
    if name not in models:
        raise ValueError(f"--device must be one of {', '.join(models)} (optionally NAME:field=value,...), "
                         f"not {spec!r}")
    cls, preset = models[name]
    fields = {f.name for f in dataclasses.fields(cls)} - set(preset)
    return _build(name, cls, preset, fields, rest, spec)


def _build(name: str, make, preset: dict, fields: set[str], rest: str, spec: str) -> DeviceModel:
    """``make(**preset, **fields parsed from "field=value,...")``, every error one line."""
    kw = dict(preset)
    for item in filter(None, (i.strip() for i in rest.split(","))):
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or key not in fields:
            raise ValueError(f"--device {name}: {item!r} is not field=value of {', '.join(sorted(fields))}")
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"--device {name}: {key} must be a number, not {text.strip()!r}") from None
        kw[key] = int(value) if value.is_integer() and key in ("levels", "num_devices") else value
    try:
        return make(**kw)
    except (TypeError, ValueError) as e:
        msg = str(e)
        raise ValueError(msg if msg.startswith(name) else f"--device {spec}: {msg}") from None


def _models() -> dict:
    from .hermes import HermesParams
    from .pcm import PCMParams
    from .rram import RRAMParams
    return {"pcm": (PCMParams, {}), "hermes": (HermesParams, {}), "hermes-1": (HermesParams, {"num_devices": 1}),
            "rram": (RRAMParams, {})}


def warm_up() -> None:
    z = np.zeros(2, np.float32)
    program_devices(z, np.zeros(2), np.zeros(2), np.zeros(2), 1.0, 1.0, np.uint64(0), np.uint64(1), z.copy(), z.copy())
    read_devices(z, z, 1.0, 1.0, np.uint64(0), np.zeros(1, np.float32))
