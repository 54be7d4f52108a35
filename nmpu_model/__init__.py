"""nmpu_model: the bit-accurate golden model of the NMPU and everything numerical in Python, in rooms by domain.

- :mod:`nmpu_model.golden`: the numerical contract (formats, configuration, the datapath, FP16/FP32 baselines);
- :mod:`nmpu_model.analog`: random streams, device models, tiles with their DACs and ADCs;
- :mod:`nmpu_model.network`: any PyTorch network as ATen steps, calibration, coefficients, the run on tiles;
- :mod:`nmpu_model.workloads`: the built-in networks, their data sets, the registry of names;
- :mod:`nmpu_model.studies`: accuracy against drift, precision sweeps, per-layer sensitivity.

The names users script against are one import away (``from nmpu_model import AnalogNetwork, load_config,
apply, program_layer, TileParams, PCMParams, resnet9``). They load on first use, so that importing the
golden model's configuration (as :mod:`rtl` does) loads neither torch nor numba.
"""
from __future__ import annotations

import importlib
import os
from typing import Any

from .cache import cache_root

# numba's compiled kernels go to the project's cache too, not beside the installed modules (numba reads this
# when it is first imported, which the rooms below do)
os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_root() / "numba"))

_API = {
    "golden.config": ("NMPUConfig", "Plan", "RTLParams", "Span", "load_config", "set_field", "COEF_NAMES"),
    "golden.formats": ("OVERFLOW_MODES", "ROUNDING_MODES", "ConfigError", "Fmt", "Overflow", "Rounding", "quantize"),
    "golden.datapath": ("apply", "check_inputs"),
    "analog.pcm": ("PCMParams",),
    "analog.hermes": ("HermesParams",),
    "analog.rram": ("RRAMParams",),
    "analog.measured": ("MeasuredParams",),
    "analog.devices": ("DeviceModel",),
    "analog.tiles": ("TileParams", "program_layer"),
    "network.analog_network": ("AnalogNetwork", "capture", "replay"),
    "workloads.models": ("resnet9", "digits_cnn"),
    "workloads.registry": ("load_workload", "Workload"),
    "studies.evaluate": ("evaluate",),
}
_WHERE = {name: mod for mod, names in _API.items() for name in names}
__all__ = sorted(_WHERE) + ["warm_up"]


def __getattr__(name: str) -> Any:
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module 'nmpu_model' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


def warm_up() -> None:
    """Compile (or load from numba's cache) every kernel for the types the network and the golden model use:
    ``make install`` runs this once (~20 s), so that no first call pays a compilation."""
    from .analog import devices, streams, tiles
    from .golden import kernels as golden_kernels
    from .network import kernels as network_kernels
    for m in (streams, tiles, devices, network_kernels, golden_kernels):
        m.warm_up()
