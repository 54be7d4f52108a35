"""Random configurations of the unit, drawn from everything the config loader accepts.

``draw_config(seed)`` is a pure function of the seed, so any failing draw is replayed with
``NMPU_CONFIG_SEED=<seed>`` (see tests/sim/test_random_configs.py), or in Python with
``draw_config(seed).to_toml()``.
"""
from __future__ import annotations

import numpy as np

from nmpu_model import OVERFLOW_MODES, ROUNDING_MODES, ConfigError, NMPUConfig


def _fmt(rng: np.random.Generator, quantizer: bool, max_bits: int = 12) -> dict:
    bits = int(rng.integers(1, max_bits + 1))
    d = {"bits": bits, "frac": int(rng.integers(-4, 15)), "signed": bool(rng.integers(2))}
    if quantizer:
        d.update(rounding=str(rng.choice(ROUNDING_MODES)), overflow=str(rng.choice(OVERFLOW_MODES)),
                 pre_truncate=int(rng.integers(0, 5)) if rng.random() < 0.5 else 0)
    return d


def draw_config(seed: int, max_lanes: int = 8, max_groups: int = 6, max_bits: int = 12) -> NMPUConfig:
    """One configuration the loader accepts: every format, mode, the BN stage or not, lanes 1..``max_lanes``,
    1..``max_groups`` lane groups (one group: a single-row coefficient memory), 3- or 5-stage FP16 FMAs;
    ADC codes and coefficients of 1..``max_bits`` bits (the output and BN mid formats up to 16)."""
    rng = np.random.default_rng([seed, 0x6E6D7075])
    while True:
        out = _fmt(rng, True, 16)
        frac = out["frac"]
        out.update(frac_min=frac - int(rng.integers(0, 11)), frac_max=frac + int(rng.integers(0, 11)))
        lanes = int(rng.integers(1, max_lanes + 1))
        d = {"adc_bits": int(rng.integers(1, max_bits + 1)), "relu": bool(rng.integers(2)),
             "bn_stage": bool(rng.integers(2)),
             "scale": _fmt(rng, False, max_bits), "offset": _fmt(rng, False, max_bits), "output": out,
             "rtl": {"lanes": lanes, "columns": lanes * int(rng.integers(1, max_groups + 1))}}
        if d["bn_stage"]:
            d.update(bn_scale=_fmt(rng, False, max_bits), bn_offset=_fmt(rng, False, max_bits), mid=_fmt(rng, True, 16))
        # the FP16 unit's FMA depth from a generator of its own: the draws above stay what they were
        d["rtl"]["fp16_fma_stages"] = int(np.random.default_rng([seed, 0x666D61]).choice([3, 5]))
        try:
            return NMPUConfig.from_dict(d, source=f"draw {seed}")
        except ConfigError:            # e.g. an intermediate over 62 bits: the loader refuses it, draw again
            continue
