"""Analog tiles: mapping, split layers, the PCM statistics, seeds."""

import numpy as np
import pytest
import torch

from nmpu_model.analog.pcm import PCMParams
from nmpu_model.analog.tiles import TileParams, program_layer
from nmpu_model.analog.mvm_error import mvm_error_vs_drift


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
    assert x.dtype == np.int32 and x.shape == (64, 20)
    err = np.abs(x * lsb - ref)
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
    x = layer.mvm(u, layer.at(0.0), bound)
    # float32 MVM inside the tile: allow a rare one-LSB disagreement at a rounding tie
    assert np.mean(x != ref) < 2e-3 and np.abs(x - ref).max() <= 1
    assert (x == 127).any() and (x == -128).any()


def test_same_seed_same_bits_other_seed_other_bits():
    w = torch.from_numpy(np.random.default_rng(4).normal(size=(300, 40)))
    u = _codes(np.random.default_rng(5), 16, 300)
    tp = TileParams()

    def codes(seed, key=99):
        layer = program_layer(w, tp, seed, layer=3)
        return layer.mvm(u, layer.at(3600.0), 3.0, key)

    a, b, c = codes(7), codes(7), codes(8)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, codes(7, key=100))   # the output noise alone differs


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
                             device=PCMParams(prog_noise_scale=0, read_noise_scale=0, drift_scale=0))
    assert off[1.0] < 0.02  # programming-noise floor at zero-conductance devices only: none here


def test_tile_params_reject_bad_values():
    with pytest.raises(ValueError, match="rows"):
        TileParams(rows=0)
    with pytest.raises(ValueError, match="out_noise"):
        TileParams(out_noise=-1.0)


def test_output_noise_is_drawn_by_row_whatever_the_batching():
    """The noise of an input row depends on its index, not on the calls: two halves with their first
    row give exactly the codes of one call; a shifted first row gives other codes."""
    rng = np.random.default_rng(6)
    w = torch.from_numpy(rng.normal(size=(300, 24)))
    u = _codes(rng, 50, 300)
    layer = program_layer(w, TileParams(rows=128), 1, 2)
    st = layer.at(60.0)
    whole = layer.mvm(u, st, 2.0, 5)
    halves = np.concatenate([layer.mvm(u[:17], st, 2.0, 5), layer.mvm(u[17:], st, 2.0, 5, first_row=17)])
    assert np.array_equal(whole, halves)
    assert not np.array_equal(whole[17:], layer.mvm(u[17:], st, 2.0, 5))


def test_output_noise_has_the_configured_std():
    """Ideal devices and ADCs with a step far below the noise: the codes' error against the ideal MVM is
    the output noise (std out_noise, mean 0, Gaussian tails) plus a uniform rounding error."""
    rng = np.random.default_rng(7)
    k, c, m = 64, 32, 4000
    w = torch.from_numpy(rng.normal(size=(k, c)))
    u = _codes(rng, m, k)
    tp = TileParams(rows=k, out_noise=0.06, adc_gain_std=0.0, adc_offset_std=0.0, device=None, adc_bits=16)
    layer = program_layer(w, tp, 0, 0)
    ideal = (u.numpy() / 127) @ layer.target.numpy()
    bound = float(np.abs(ideal).max()) + 1.0
    lsb = bound / tp.adc_max
    err = layer.mvm(u, layer.at(0.0), bound, 11) * lsb - ideal
    var = 0.06 ** 2 + lsb ** 2 / 12
    assert abs(err.std() / np.sqrt(var) - 1) < 0.01            # 128,000 draws: std known to ~0.2 %
    assert abs(err.mean()) < 5 * np.sqrt(var / err.size)
    assert abs(np.mean(np.abs(err) > 3 * 0.06) / 0.0027 - 1) < 0.15  # the 3-sigma tail of a Gaussian


def _adc_reference(rows, layer, st, bound, key):
    """The documented tile model in float64 on im2col rows ``rows`` (M, K): per row tile, currents plus
    ``out_noise * normal(key, (r * n_tiles + t) * C + j)``, ADC gain and offset, round half to even, clip;
    the digital adder sums the tiles and saturates. Returns the codes and, per (row, column), whether some
    tile's ADC input lay within 1e-3 LSB of a rounding boundary (where float32 may round either way)."""
    from nmpu_model.analog import streams
    tp = layer.params
    m, k = rows.shape
    c, nrt = layer.target.shape[1], layer.n_row_tiles
    z = np.empty(m * nrt * c)
    streams.normals(np.uint64(key), 0, z)
    z = z.reshape(m, nrt, c)
    w = st.weights.double().numpy() / tp.dac_max
    gain = (layer.adc_gain / (bound / tp.adc_max)).float().double().numpy()
    offset = layer.adc_offset.float().double().numpy()
    acc = np.zeros((m, c))
    near = np.zeros((m, c), bool)
    for t in range(nrt):
        a, b = t * tp.rows, min(k, (t + 1) * tp.rows)
        v = (rows[:, a:b] @ w[a:b] + tp.out_noise * z[:, t]) * gain[t] + offset[t]
        near |= np.abs(v - np.floor(v) - 0.5) < 1e-3
        acc += np.clip(np.rint(v), -tp.adc_max - 1, tp.adc_max)
    return np.clip(acc, -tp.adc_max - 1, tp.adc_max), near


def test_convolution_is_the_tile_model_on_the_im2col_rows():
    """mvm with a convolution's geometry (each row tile a convolution over the channels its rows touch)
    gives the codes of the documented tile model, in float64, on F.unfold's rows, with the noise of each
    row by its index; and so does mvm on those rows. Odd geometries, tiles that split a channel's kernel,
    and more images than one convolution call takes (the last call filled up with zero images)."""
    from nmpu_model.analog.tiles import Conv, conv_group
    rng = np.random.default_rng(8)
    checked = ambiguous = 0
    for n, cin, cout, hw, k, pad, stride in [(3, 3, 5, (7, 9), (3, 3), (1, 1), (1, 1)),
                                            (5, 4, 6, (8, 8), (2, 3), (0, 1), (2, 1)),
                                            (11, 7, 3, (5, 6), (1, 1), (0, 0), (2, 2)),
                                            (13, 6, 40, (4, 4), (3, 3), (1, 1), (1, 1))]:
        x = torch.from_numpy(rng.integers(-128, 128, size=(n, cin, *hw)).astype(np.float32))
        w = torch.from_numpy(rng.normal(size=(cin * k[0] * k[1], cout)))
        layer = program_layer(w, TileParams(rows=16), 4, 1)
        st = layer.at(1.0)
        cols = torch.nn.functional.unfold(x, k, padding=pad, stride=stride)     # (N, K, L)
        rows = cols.transpose(1, 2).reshape(-1, cols.shape[1])
        ref, near = _adc_reference(rows.double().numpy(), layer, st, 3.0, 9)
        assert near.mean() < 0.01
        for got in (layer.mvm(x, st, 3.0, 9, conv=Conv(k, pad, stride)), layer.mvm(rows, st, 3.0, 9)):
            assert got.shape == ref.shape
            assert np.array_equal(got[~near], ref[~near])
            assert np.abs(got[near] - ref[near]).max(initial=0) <= layer.n_row_tiles
        checked += ref.size
        ambiguous += int(near.sum())
        if n > conv_group(rows.shape[0] // n):
            assert n % conv_group(rows.shape[0] // n) != 0      # the filled-up last call is exercised
    assert checked > 4000 and ambiguous < 0.01 * checked


def test_mvm_refuses_inputs_of_the_wrong_size():
    layer = program_layer(torch.ones(10, 3, dtype=torch.float64), TileParams.ideal(), 0, 0)
    with pytest.raises(ValueError, match=r"expected inputs \(M, 10\)"):
        layer.mvm(torch.zeros(4, 9), layer.at(0.0), 1.0)
