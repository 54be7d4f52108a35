"""The compiled kernels against independent references: scipy's normal distribution, numpy."""

import numpy as np
import pytest
import torch
from scipy import stats

from nmpu_model.analog import streams
from nmpu_model.network import kernels
from nmpu_model.network.analog_network import _quantile_abs


@pytest.fixture(scope="module")
def draws():
    out = np.empty(2_000_000)
    streams.normals(np.uint64(12345), 0, out)
    return out


def test_normals_follow_the_standard_normal(draws):
    # the draws are a fixed function of the key: these statistics are not random across runs
    assert stats.kstest(draws, "norm").pvalue > 0.01
    assert abs(draws.mean()) < 4 / np.sqrt(draws.size) and abs(draws.std() - 1) < 2e-3
    for z in (1.0, 2.0, 3.0, 3.65, 4.0):                     # 3.65: the ziggurat's base-strip edge
        expect = 2 * stats.norm.sf(z) * draws.size
        assert abs(np.sum(np.abs(draws) > z) - expect) < 5 * np.sqrt(expect), z
    assert np.abs(draws).max() > 4.5                           # the tail beyond the strips is reached


def test_normals_are_independent_across_indices_and_keys(draws):
    other = np.empty(draws.size)
    streams.normals(np.uint64(12346), 0, other)               # the neighbouring key
    lim = 4 / np.sqrt(draws.size)
    assert abs(np.corrcoef(draws, other)[0, 1]) < lim
    assert abs(np.corrcoef(draws[:-1], draws[1:])[0, 1]) < lim
    assert abs(np.corrcoef(draws[:-128], draws[128:])[0, 1]) < lim
    assert abs(np.corrcoef(draws ** 2, other ** 2)[0, 1]) < lim


def test_normal_is_a_function_of_key_and_index(draws):
    part = np.empty(777)
    streams.normals(np.uint64(12345), 1001, part)             # any start, odd or even
    assert np.array_equal(part, draws[1001:1778])
    for i in (0, 1, 2, 999_999, 1_999_999):
        assert streams.normal(np.uint64(12345), np.uint64(i)) == draws[i]


@pytest.mark.parametrize("n", [1, 2, 3, 7, 100, 4099, 70_000, 300_001])
def test_quantile_abs_is_numpys(n):
    rng = np.random.default_rng(n)
    for a in (rng.normal(size=n), rng.integers(-3, 4, size=n).astype(float),          # many ties
              np.repeat(rng.normal(size=(n + 63) // 64), 64)[:n] * np.tile([1.0, -2.0], n)[:n]):
        for q in (0.9999, 0.5, 0.0, 1.0):
            got = _quantile_abs(torch.from_numpy(a), q)
            assert got == pytest.approx(float(np.quantile(np.abs(a), q)), rel=1e-12, abs=1e-300), (n, q)


def test_requant_real_and_lsq_columns_against_numpy():
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, size=(500, 9)).astype(np.int32)
    a, b = rng.normal(size=9), rng.normal(size=9) * 50
    for relu in (False, True):
        out = np.empty(x.shape, np.float32)
        kernels.requant_real(x, a, b, relu, -128.0, 127.0, out)
        r = x * a + b
        ref = np.clip(np.round(np.maximum(r, 0) if relu else r), -128, 127)
        assert np.array_equal(out, ref)
    m = rng.normal(size=x.shape).astype(np.float32)
    sums = np.zeros((5, 9))
    kernels.lsq_columns(x, m, 2.5, -128, 127, sums)
    keep = (x > -128) & (x < 127)
    mm = m.astype(np.float64) * 2.5
    ref = [keep.sum(0), (keep * x).sum(0), (keep * mm).sum(0), (keep * x * mm).sum(0), (keep * mm * mm).sum(0)]
    np.testing.assert_allclose(sums, np.array(ref, dtype=float), rtol=1e-12)


def test_quantile_abs_of_nothing_is_zero():
    assert _quantile_abs(torch.zeros(0)) == 0.0 and _quantile_abs(torch.zeros((3, 0))) == 0.0
    assert _quantile_abs(torch.tensor([-2.5])) == 2.5
