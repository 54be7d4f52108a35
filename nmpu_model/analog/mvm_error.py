"""The relative MVM error of one PCM tile against drift time: the device model's check against AIHWKit."""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from .devices import DeviceModel
from .pcm import PCMParams
from .streams import derive_seed, generator
from .tiles import TileParams, program_layer


def mvm_error_vs_drift(times: Sequence[float] = (1.0, 3600.0, 86400.0, 31536000.0), *, size: int = 256,
                       n_inputs: int = 1024, seed: int = 0, device: DeviceModel | None = None,
                       periphery: bool = False, columnwise: bool = True,
                       compensation: str = "global") -> dict[float, float]:
    """Relative MVM error ``||y - y_ideal|| / ||y_ideal||`` of one ``size x size`` tile vs drift time.

    Weights: Gaussian, normalized per column (``columnwise``, as the network mapping does) or per
    tile (AIHWKit's default) to ``[-1, 1]``; inputs: uniform in ``[-1, 1]``, through
    the 8-bit DAC. Drift compensation ``"global"`` (AIHWKit ``GlobalDriftCompensation``, its default) or
    ``"column"`` (``PerColumnDriftCompensation``). ``device`` defaults to the PCM preset.
    ``periphery=False`` isolates the PCM devices (no output noise, no ADC); ``True`` adds output noise
    and an 8-bit ADC with full scale at the largest ideal output (mismatch known and removed).
    """
    tp = TileParams(rows=size, cols=size, device=device or PCMParams(), adc_gain_std=0.0, adc_offset_std=0.0,
                    out_noise=TileParams.out_noise if periphery else 0.0, drift_compensation=compensation)
    g = generator(seed, "mvm-error")
    w = torch.randn(size, size, generator=g, dtype=torch.float64)
    u = torch.round((torch.rand(n_inputs, size, generator=g, dtype=torch.float64) * 2 - 1) * tp.dac_max)
    layer = program_layer(w, tp, seed, 0, columnwise=columnwise)
    ideal = (u / tp.dac_max) @ layer.target
    bound = float(ideal.abs().max())
    base = layer.at_programming()
    out = {}
    for t in times:
        st = layer.at(t)
        gdc = layer.compensation(base.readout, base.readout_columns, st)
        if periphery:
            x = torch.from_numpy(layer.mvm(u, st, bound, derive_seed(seed, "mvm-error-out", float(t)))).double()
            y = x * (bound / tp.adc_max) * torch.as_tensor(gdc)
        else:
            y = layer.currents(u, st).double() * torch.as_tensor(gdc)
        out[float(t)] = float((y - ideal).norm() / ideal.norm())
    return out


MAPPINGS = {"per_column": "per-column mapping, devices only", "per_column_periphery": "+ output noise + ADC",
            "per_tile": "per-tile mapping (AIHWKit default), devices only"}


def device_errors(models: dict[str, DeviceModel], times: Sequence[float] = (1.0, 3600.0, 86400.0, 31536000.0), *,
                  size: int = 256, n_inputs: int = 1024, seed: int = 0, compensation: str = "global",
                  progress: Callable[[int], None] | None = None) -> dict[str, dict]:
    """:func:`mvm_error_vs_drift` of each device model under the three settings of :data:`MAPPINGS`:
    ``{name: {"model": its one-line description, setting: {t: error}}}``."""
    out = {}
    for name, model in models.items():
        kw = dict(size=size, n_inputs=n_inputs, seed=seed, device=model, compensation=compensation)
        out[name] = {"model": model.describe(),
                     "per_column": mvm_error_vs_drift(times, **kw),
                     "per_column_periphery": mvm_error_vs_drift(times, periphery=True, **kw),
                     "per_tile": mvm_error_vs_drift(times, columnwise=False, **kw)}
        if progress:
            progress(1)
    return out


def time_label(t: float) -> str:
    names = {1.0: "1 s", 3600.0: "1 h", 86400.0: "1 day", 31536000.0: "1 year"}
    return names.get(float(t), f"{t:g} s")


def format_device_errors(res: dict[str, dict], size: int = 256, compensation: str = "global") -> str:
    """The table of :func:`device_errors`: per device, the error per drift time under each setting."""
    w = max([10] + [len(n) for n in res])
    lines = [f"relative MVM error of a {size} x {size} tile (Gaussian weights, uniform inputs, "
             f"{compensation} drift compensation)",
             f"{'device':{w}s} {'t':8s} " + "  ".join(f"{v:>16s}" for v in ("per-column map", "+ out noise, ADC",
                                                                          "per-tile map"))]
    for name, r in res.items():
        for t in r["per_column"]:
            lines.append(f"{name:{w}s} {time_label(t):8s} "
                         + "  ".join(f"{100 * r[k][t]:15.2f}%" for k in MAPPINGS))
    lines += [r["model"] for r in res.values()]
    return "\n".join(lines)


def format_mvm_error(seed: int = 0) -> str:
    """The table of :func:`device_errors` for the PCM preset."""
    return format_device_errors(device_errors({"pcm": PCMParams()}, seed=seed))


if __name__ == "__main__":  # python -m nmpu_model.analog.mvm_error: print the MVM error table
    print(format_mvm_error())
