"""Analog tiles: mapping, split layers, the PCM statistics, seeds."""

import numpy as np
import pytest
import torch

from nmpu_model.analog import PCMParams, TileParams, mvm_error_vs_drift, program_layer


def _codes(rng, m, k, dac_max=127):
    return torch.from_numpy(rng.integers(-dac_max - 1, dac_max + 1, size=(m, k)).astype(np.float64))


def test_noise_free_tile_is_the_float_matmul_up_to_quantization():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(100, 20))
    u = _codes(rng, 64, 100)
    tp = TileParams.ideal()
    layer = program_layer(torch.from_numpy(w), tp, seed=0, layer=0)
    # independent reference: the float matmul with per-column normalization, in numpy float64
    ref = (u.numpy() @ w) / (127 * np.abs(w).max(axis=0))
    bound = float(np.abs(ref).max())
    lsb = bound / 127
    x = layer.mvm(u, layer.at(0.0), bound)
    assert x.dtype == torch.int64 and x.shape == (64, 20)
    err = np.abs(x.numpy() * lsb - ref)
    assert err.max() <= 0.5 * lsb * (1 + 1e-5)       # only the ADC's rounding
    assert err.mean() > 0.1 * lsb                      # and the ADC does round


def test_adc_clips_to_signed_adc_bits():
    rng = np.random.default_rng(2)
    w = torch.from_numpy(rng.normal(size=(50, 10)))
    u = _codes(rng, 30, 50)
    tp = TileParams.ideal(adc_bits=6)
    layer = program_layer(w, tp, 0, 0)
    x = layer.mvm(u, layer.at(0.0), out_bound=0.5)    # far too small a range: most values clip
    assert x.min() == -32 and x.max() == 31


def test_split_layer_sums_tile_codes_digitally():
    rng = np.random.default_rng(3)
    k, c, rows = 600, 20, 256
    w = rng.normal(size=(k, c))
    u = _codes(rng, 40, k)
    tp = TileParams.ideal(rows=rows, cols=8, adc_bits=8)
    layer = program_layer(torch.from_numpy(w), tp, 0, 0)
    assert layer.n_row_tiles == 3 and layer.n_col_tiles == 3
    wn = w / np.abs(w).max(axis=0)
    bound = 0.5 * float(np.abs(u.numpy() @ wn / 127).max())  # some partial sums and totals clip
    lsb = bound / 127
    # reference: each row slice through its own ADC (round, clip), integer sum, saturate
    parts = []
    for r0 in range(0, k, rows):
        p = u.numpy()[:, r0:r0 + rows] @ wn[r0:r0 + rows] / 127
        parts.append(np.clip(np.round(p / lsb), -128, 127))
    ref = np.clip(np.sum(parts, axis=0), -128, 127)
    x = layer.mvm(u, layer.at(0.0), bound).numpy()
    # float32 MVM inside the tile: allow a rare one-LSB disagreement at a rounding tie
    assert np.mean(x != ref) < 2e-3 and np.abs(x - ref).max() <= 1
    assert (x == 127).any() and (x == -128).any()


def test_same_seed_same_bits_other_seed_other_bits():
    w = torch.from_numpy(np.random.default_rng(4).normal(size=(300, 40)))
    u = _codes(np.random.default_rng(5), 16, 300)
    tp = TileParams()

    def codes(seed):
        layer = program_layer(w, tp, seed, layer=3)
        g = torch.Generator().manual_seed(99)
        return layer.mvm(u, layer.at(3600.0), 3.0, g)

    a, b, c = codes(7), codes(7), codes(8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_programming_noise_follows_the_published_polynomial():
    # AIHWKit PCMLikeNoiseModel: std = 0.26348 + 1.9650 g - 1.1731 g^2 (uS, g = G/g_max) at g_max = 25 uS
    n = 200_000
    w = torch.full((n, 1), 0.5, dtype=torch.float64)
    w[0] = 1.0  # the column's largest weight goes to g_max: the others to g_max / 2
    layer = program_layer(w, TileParams(rows=n), 0, 0)
    expect = 0.26348 + 1.9650 * 0.5 - 1.1731 * 0.25
    g = layer.g_prog_pos[1:]
    assert abs(float(g.std()) / expect - 1) < 0.02
    assert abs(float(g.mean()) - 12.5) < 0.02


def test_drift_exponent_and_drift_decay():
    n = 100_000
    w = torch.ones(n, 1, dtype=torch.float64)
    layer = program_layer(w, TileParams(rows=n), 0, 0)
    # at g = g_max: mu = max(0.0244, 0.049) = 0.049, sigma = max(-0.0059, 0.008) = 0.008
    assert abs(float(layer.nu_pos.mean()) - 0.049) < 0.001
    assert abs(float(layer.nu_pos.std()) - 0.008) < 0.0005
    r = [layer.at(t).readout for t in (1.0, 3600.0, 31536000.0)]
    assert r[0] > r[1] > r[2]
    # mean decay at 1 year: ((t + t0)/t0)^-0.049 with t0 = 20 s
    expect = ((31536000 + 20) / 20) ** -0.049
    assert abs(r[2] / layer.readout_programmed() / expect - 1) < 0.02


def test_mvm_error_grows_with_drift_and_has_a_plausible_size():
    e = mvm_error_vs_drift((1.0, 86400.0, 31536000.0), size=64, n_inputs=128)
    v = list(e.values())
    assert v[0] < v[1] < v[2]
    assert 0.02 < v[0] < 0.3 and v[2] < 0.5
    off = mvm_error_vs_drift((1.0,), size=64, n_inputs=128,
                             pcm=PCMParams(prog_noise_scale=0, read_noise_scale=0, drift_scale=0))
    assert off[1.0] < 0.02  # programming-noise floor at zero-conductance devices only: none here


def test_tile_params_reject_bad_values():
    with pytest.raises(ValueError, match="rows"):
        TileParams(rows=0)
    with pytest.raises(ValueError, match="out_noise"):
        TileParams(out_noise=-1.0)
