"""The relative MVM error of one PCM tile against drift time: the device model's check against AIHWKit."""
from __future__ import annotations

from typing import Sequence

import torch

from .pcm import PCMParams
from .streams import derive_seed, generator
from .tiles import TileParams, program_layer


def mvm_error_vs_drift(times: Sequence[float] = (1.0, 3600.0, 86400.0, 31536000.0), *, size: int = 256,
                       n_inputs: int = 1024, seed: int = 0, pcm: PCMParams | None = None,
                       periphery: bool = False, columnwise: bool = True) -> dict[float, float]:
    """Relative MVM error ``||y - y_ideal|| / ||y_ideal||`` of one ``size x size`` tile vs drift time.

    Weights: Gaussian, normalized per column (``columnwise``, as the network mapping does) or per
    tile (AIHWKit's default) to ``[-1, 1]``; inputs: uniform in ``[-1, 1]``, through
    the 8-bit DAC. Global drift compensation on (AIHWKit ``GlobalDriftCompensation``).
    ``periphery=False`` isolates the PCM devices (no output noise, no ADC); ``True`` adds output noise
    and an 8-bit ADC with full scale at the largest ideal output (mismatch known and removed).
    """
    pcm = pcm or PCMParams()
    tp = TileParams(rows=size, cols=size, pcm=pcm, adc_gain_std=0.0, adc_offset_std=0.0,
                    out_noise=TileParams.out_noise if periphery else 0.0)
    g = generator(seed, "mvm-error")
    w = torch.randn(size, size, generator=g, dtype=torch.float64)
    u = torch.round((torch.rand(n_inputs, size, generator=g, dtype=torch.float64) * 2 - 1) * tp.dac_max)
    layer = program_layer(w, tp, seed, 0, columnwise=columnwise)
    ideal = (u / tp.dac_max) @ layer.target
    bound = float(ideal.abs().max())
    base = layer.readout_programmed()
    out = {}
    for t in times:
        st = layer.at(t)
        gdc = base / st.readout
        if periphery:
            x = torch.from_numpy(layer.mvm(u, st, bound, derive_seed(seed, "mvm-error-out", float(t)))).double()
            y = x * (bound / tp.adc_max) * gdc
        else:
            y = layer.currents(u, st).double() * gdc
        out[float(t)] = float((y - ideal).norm() / ideal.norm())
    return out


def format_mvm_error(seed: int = 0) -> str:
    """A small table of :func:`mvm_error_vs_drift`, devices only and with the periphery."""
    names = {1.0: "1 s", 3600.0: "1 h", 86400.0: "1 day", 31536000.0: "1 year"}
    dev = mvm_error_vs_drift(seed=seed)
    full = mvm_error_vs_drift(seed=seed, periphery=True)
    tile = mvm_error_vs_drift(seed=seed, columnwise=False)
    lines = ["relative MVM error of a 256 x 256 PCM tile (Gaussian weights, uniform inputs, global drift compensation)",
             "t        per-column mapping         per-tile mapping (AIHWKit default)",
             "         PCM only  + out noise, ADC  PCM only"]
    for t in dev:
        lines.append(f"{names.get(t, str(t)):8s} {100 * dev[t]:6.2f} %  {100 * full[t]:8.2f} %      "
                     f"{100 * tile[t]:6.2f} %")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m nmpu_model.analog.mvm_error: print the MVM error table
    print(format_mvm_error())
