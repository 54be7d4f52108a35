"""Regenerate the small example shipped beside this file (deterministic, seed 0).

ADC codes of a 16-column tile for 64 inputs, with per-column gain and offset mismatch, and the affine
coefficients that undo it: real values (`coeffs_float.npz`, for the fp16/fp32 baselines) and the same
values quantized into the default formats (`coeffs.npz`, for the fixed-point unit).
"""
from pathlib import Path

import numpy as np

here = Path(__file__).parent
rng = np.random.default_rng(0)
n, c = 64, 16
ideal = rng.normal(0, 30, (n, c))                       # what the column should read, in ADC LSB
gain = rng.uniform(0.7, 1.3, c)                         # per-column ADC gain mismatch
offset = rng.normal(0, 6, c)                            # per-column ADC offset, LSB
codes = np.clip(np.round(ideal * gain + offset + rng.normal(0, 1, (n, c))), -128, 127).astype(np.int64)
scale_real = 1 / gain                                   # undo the gain ...
offset_real = -offset / gain                            # ... and the offset
np.save(here / "codes.npy", codes)
np.savez(here / "coeffs_float.npz", scale=scale_real, offset=offset_real)
np.savez(here / "coeffs.npz", scale=np.clip(np.round(scale_real * 128), 0, 255).astype(np.int64),
         offset=np.clip(np.round(offset_real * 2), -128, 127).astype(np.int64))
print(f"wrote {here}/codes.npy {codes.shape}, coeffs.npz, coeffs_float.npz")
