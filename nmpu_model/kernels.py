"""Compiled inner loops (numba): Gaussian noise by counter, the tiles' ADCs, the NMPU datapath.

Everything here is a plain loop over arrays that numpy or torch would otherwise do in several passes
with temporaries the size of the data; each kernel does its work in one pass. The callers
(:mod:`nmpu_model.analog`, :mod:`nmpu_model.datapath`) validate shapes and dtypes first.

Noise by counter
----------------
``normal(key, i)`` is the ``i``-th standard normal value of the stream ``key``: a pure function
of the two 64-bit integers, so a draw does not depend on the order, the chunking or the batch
size of the work around it. Its 64-bit uniform is SplitMix64's output function applied to
``key + i * 0x9E3779B97F4A7C15`` (Steele, Lea and Flood, OOPSLA 2014: SplitMix64's own state
sequence, which passes BigCrush); the normal is Marsaglia and Tsang's ziggurat (J. Stat. Softw.
5(8), 2000) with 256 layers, the layout of numpy's legacy generator: 8 bits choose the layer, 1 bit
the sign, 52 bits the abscissa. The rare draws outside a layer's rectangle (~1.1 %) take the exact
wedge or tail test, and a rejected draw starts again, with further uniforms from a private stream
of the same ``(key, i)``.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["normal", "normals", "adc_tile", "DATAPATH", "DATAPATH_BN", "lsq_columns", "requant_real"]


def _ziggurat_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Marsaglia & Tsang's tables for 256 layers and 52-bit abscissae (``k``: acceptance bounds,
    ``w``: abscissa scale, ``f``: density at the layer edges), and the base strip's edge ``r``."""
    r, v, m1 = 3.6541528853610088, 0.00492867323399, 2.0 ** 52
    k, w, f = np.zeros(256, np.int64), np.zeros(256), np.zeros(256)
    dn = tn = r
    q = v / math.exp(-0.5 * dn * dn)
    k[0], k[1] = int((dn / q) * m1), 0
    w[0], w[255] = q / m1, dn / m1
    f[0], f[255] = 1.0, math.exp(-0.5 * dn * dn)
    for i in range(254, 0, -1):
        dn = math.sqrt(-2.0 * math.log(v / dn + math.exp(-0.5 * dn * dn)))
        k[i + 1] = int((dn / tn) * m1)
        tn = dn
        f[i] = math.exp(-0.5 * dn * dn)
        w[i] = dn / m1
    return k, w, f, r


ZIG_K, ZIG_W, ZIG_F, ZIG_R = _ziggurat_tables()
_GOLD = np.uint64(0x9E3779B97F4A7C15)
_ALT = np.uint64(0xD1B54A32D192ED03)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_S8, _S11, _S27, _S30, _S31 = np.uint64(8), np.uint64(11), np.uint64(27), np.uint64(30), np.uint64(31)
_ONE, _LOW8, _LOW52 = np.uint64(1), np.uint64(0xFF), np.uint64(0x000FFFFFFFFFFFFF)


@njit(inline="always", cache=True)
def _mix(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(inline="always", cache=True)
def _unit(z):
    """A uniform double in [0, 1) from the top 53 bits."""
    return np.int64(z >> _S11) * (1.0 / 9007199254740992.0)


@njit(inline="never", cache=True)
def _normal_slow(rr, s):
    """The ziggurat's wedge and tail tests for the draw ``rr`` (which missed its layer's rectangle),
    and new draws after a rejection; ``s`` seeds the private stream of further uniforms."""
    while True:
        idx = np.int64(rr & _LOW8)
        r2 = rr >> _S8
        neg = (r2 & _ONE) != 0
        rabs = np.int64((r2 >> _ONE) & _LOW52)
        x = rabs * ZIG_W[idx]
        if rabs < ZIG_K[idx]:
            return -x if neg else x
        if idx == 0:  # the tail beyond r (Marsaglia 1964)
            while True:
                s += _GOLD
                xx = -math.log1p(-_unit(_mix(s))) / ZIG_R
                s += _GOLD
                yy = -math.log1p(-_unit(_mix(s)))
                if yy + yy > xx * xx:
                    return -(ZIG_R + xx) if neg else ZIG_R + xx
        s += _GOLD
        if (ZIG_F[idx - 1] - ZIG_F[idx]) * _unit(_mix(s)) + ZIG_F[idx] < math.exp(-0.5 * x * x):
            return -x if neg else x
        s += _GOLD
        rr = _mix(s)


@njit(inline="always", cache=True)
def normal(key, i):
    """The ``i``-th standard normal value (float64) of stream ``key`` (both uint64)."""
    rr = _mix(key + i * _GOLD)
    idx = np.int64(rr & _LOW8)
    r2 = rr >> _S8
    rabs = np.int64((r2 >> _ONE) & _LOW52)
    if rabs < ZIG_K[idx]:
        x = rabs * ZIG_W[idx]
        return -x if (r2 & _ONE) else x
    return _normal_slow(rr, _mix(key ^ (i * _ALT)))


@njit(inline="always", cache=True)
def _fill_normals(key, start, z, bad):
    """``z[j] = normal(key, start + j)``: the rectangle tests in one vectorizable loop, the rare
    rejections after it."""
    nbad = 0
    for j in range(z.shape[0]):
        rr = _mix(key + (start + np.uint64(j)) * _GOLD)
        idx = np.int64(rr & _LOW8)
        r2 = rr >> _S8
        rabs = np.int64((r2 >> _ONE) & _LOW52)
        x = rabs * ZIG_W[idx]
        z[j] = -x if (r2 & _ONE) else x
        b = rabs >= ZIG_K[idx]
        bad[j] = b
        nbad += b
    if nbad:
        for j in range(z.shape[0]):
            if bad[j]:
                i = start + np.uint64(j)
                z[j] = _normal_slow(_mix(key + i * _GOLD), _mix(key ^ (i * _ALT)))


@njit(cache=True)
def normals(key, start, out):
    """Fill the 1-D float array ``out`` with ``normal(key, start + j)``."""
    n = out.shape[0]
    blk = 1024
    z = np.empty(blk, np.float64)
    bad = np.empty(blk, np.bool_)
    for b0 in range(0, n, blk):
        _fill_normals(key, np.uint64(start) + np.uint64(b0), z, bad)
        for j in range(min(blk, n - b0)):
            out[b0 + j] = z[j]


@njit(cache=True)
def adc_tile(cur, gain, offset, sigma, key, first_row, tile, n_tiles, lo, hi, acc, first, last):
    """One row tile's ADCs on its column currents, summed into the codes of the layer.

    ``cur`` (M, C) float32 currents in full-scale units; per column ``gain`` (ADC gain / LSB) and
    ``offset`` (LSB), float32. The current of row ``s``, column ``j`` gets output noise
    ``sigma * normal(key, ((first_row + s) * n_tiles + tile) * C + j)`` (``sigma = 0``: none), then
    ``v = (cur + noise) * gain + offset`` is rounded half to even and clipped to ``[lo, hi]``:
    that is the tile's ADC code. ``acc`` (M, C) int32 holds the sum over the row tiles (``first``:
    set it; ``last``: saturate it to ``[lo, hi]``, the digital adder in front of the NMPU).
    """
    m, c = cur.shape
    z = np.zeros(c, np.float64)
    bad = np.empty(c, np.bool_)
    flo, fhi = np.float32(lo), np.float32(hi)
    for s in range(m):
        if sigma != 0:
            _fill_normals(key, np.uint64(((first_row + s) * n_tiles + tile) * c), z, bad)
        for j in range(c):
            v = (cur[s, j] + np.float32(sigma * z[j])) * gain[j] + offset[j]
            q = np.int32(min(max(np.rint(v), flo), fhi))
            a = q if first else acc[s, j] + q
            if last:
                a = min(max(a, np.int32(lo)), np.int32(hi))
            acc[s, j] = a


@njit(cache=True)
def lsq_columns(x, m, m_scale, lo, hi, out):
    """Per column sums for the least-squares line ``x = alpha * m * m_scale + beta`` over the rows
    where the code ``x`` did not clip (``lo < x < hi``): ``out[:, j] += (n, sum x, sum m', sum x*m',
    sum m'*m')`` with ``m' = m * m_scale`` (float64)."""
    rows, c = x.shape
    for s in range(rows):
        for j in range(c):
            xv = x[s, j]
            if lo < xv < hi:
                mv = np.float64(m[s, j]) * m_scale
                xf = np.float64(xv)
                out[0, j] += 1.0
                out[1, j] += xf
                out[2, j] += mv
                out[3, j] += xf * mv
                out[4, j] += mv * mv


# ---- the NMPU datapath ---------------------------------------------------------------------------
# A requantization Q(v * 2**-f, fmt) (nmpu_model.formats.quantize) is described by 10 integers:
#   pre, d, c0, c_neg, c_odd, lo, hi, lo_sat, mask, kind
# pre: the pre-truncation shift; d: the rounding shift after it; the rounding adds c0 + c_neg * (v < 0) +
# c_odd * ((v >> d) & 1) before the arithmetic shift; then overflow: kind 0 WRAP (((n - lo) & mask) + lo),
# 1 saturate to [lo_sat, hi], 2 SAT_ZERO. A left shift (fmt.frac > f) is folded into the coefficients that
# make v.
#
# The arithmetic is numpy's ufuncs on scalars, so it runs in the integer type of the coefficients and the
# descriptor (numba's own operators widen every integer to int64): the caller picks the narrowest of int16,
# int32, int64 that holds every exact intermediate with two bits to spare (NMPUConfig.plan), so that a vector
# holds 4x (int16) or 2x (int32) the values of int64. Each kernel is compiled for two compile-time flags (one
# entry per pair, in DATAPATH / DATAPATH_BN), so that the common case runs without the work it does not need:
# ``terms`` (a pre-truncation, or a rounding term for negative or odd values: RND_ZERO, RND_INF, TRN_ZERO on
# values that may be negative, RND_CONV) and ``check`` (the codes' dtype can hold codes outside the ADC's
# range: count them in the same pass).
Q_FIELDS = 10


@njit(inline="always", cache=True)
def _requant(v, pre, d, c0, c_neg, c_odd, lo, hi, lo_sat, mask, kind, zero, terms):
    if terms:
        v = np.right_shift(v, pre)
        c = np.add(np.add(c0, c_neg if v < 0 else zero), c_odd if np.right_shift(v, d) & 1 else zero)
    else:
        c = c0
    n = np.right_shift(np.add(v, c), d)
    wrapped = np.add(np.bitwise_and(np.subtract(n, lo), mask), lo)
    sat = np.minimum(np.maximum(n, lo_sat), hi)
    in_range = n if (lo <= n) and (n <= hi) else zero
    return wrapped if kind == 0 else (sat if kind == 1 else in_range)


@njit(inline="always", cache=True)
def datapath(x, x_lo, x_hi, scale, offset, relu_floor, q_out, out, terms, check):
    """The fixed-point datapath without the BN stage on int codes ``x`` (M, C) into ``out`` (M, C, any integer
    dtype that holds the output format); returns the number of codes outside ``[x_lo, x_hi]`` (``check``;
    then ``out`` is garbage and the caller raises).

    ``scale``/``offset`` are the per column coefficients already shifted to the accumulator's fraction and
    by the output requantization's left shift, in the working integer type; ``relu_floor`` (of that type) is
    0 with ReLU, the type's smallest value without; ``q_out`` (of that type) describes the output
    requantization; ``terms``, ``check``: see above.
    """
    # the descriptor in locals: the loop's stores to ``out`` cannot then force it to be reloaded
    o0, o1, o2, o3, o4, o5, o6, o7, o8, o9 = q_out[0], q_out[1], q_out[2], q_out[3], q_out[4], q_out[5], \
        q_out[6], q_out[7], q_out[8], q_out[9]
    zero = np.subtract(o0, o0)
    rows, c = x.shape
    bad = 0
    for s in range(rows):
        xr, orow = x[s], out[s]
        for j in range(c):
            xv = xr[j]
            if check:
                bad += (xv < x_lo) | (xv > x_hi)
            a = np.maximum(np.add(np.multiply(xv, scale[j]), offset[j]), relu_floor)
            orow[j] = _requant(a, o0, o1, o2, o3, o4, o5, o6, o7, o8, o9, zero, terms)
    return bad


@njit(inline="always", cache=True)
def datapath_bn(x, x_lo, x_hi, scale, offset, q_mid, bn_scale, bn_offset, relu_floor, q_out, out, terms, check):
    """:func:`datapath` with the BN stage (a loop of its own: one loop with a branch on the stage runs at half
    the speed): the affine result requantized by ``q_mid`` to the mid format, then
    ``mid * bn_scale + bn_offset`` (both shifted to the BN accumulator's fraction and by the output's left
    shift; ``scale``/``offset`` by the mid requantization's)."""
    m0, m1, m2, m3, m4, m5, m6, m7, m8, m9 = q_mid[0], q_mid[1], q_mid[2], q_mid[3], q_mid[4], q_mid[5], \
        q_mid[6], q_mid[7], q_mid[8], q_mid[9]
    o0, o1, o2, o3, o4, o5, o6, o7, o8, o9 = q_out[0], q_out[1], q_out[2], q_out[3], q_out[4], q_out[5], \
        q_out[6], q_out[7], q_out[8], q_out[9]
    zero = np.subtract(o0, o0)
    rows, c = x.shape
    bad = 0
    for s in range(rows):
        xr, orow = x[s], out[s]
        for j in range(c):
            xv = xr[j]
            if check:
                bad += (xv < x_lo) | (xv > x_hi)
            a = _requant(np.add(np.multiply(xv, scale[j]), offset[j]), m0, m1, m2, m3, m4, m5, m6, m7, m8, m9,
                         zero, terms)
            b = np.maximum(np.add(np.multiply(a, bn_scale[j]), bn_offset[j]), relu_floor)
            orow[j] = _requant(b, o0, o1, o2, o3, o4, o5, o6, o7, o8, o9, zero, terms)
    return bad


# the compiled entries: (terms, check) -> kernel, the flags constants in each
@njit(cache=True)
def _dp_ff(x, x_lo, x_hi, scale, offset, relu_floor, q_out, out):
    return datapath(x, x_lo, x_hi, scale, offset, relu_floor, q_out, out, False, False)


@njit(cache=True)
def _dp_ft(x, x_lo, x_hi, scale, offset, relu_floor, q_out, out):
    return datapath(x, x_lo, x_hi, scale, offset, relu_floor, q_out, out, False, True)


@njit(cache=True)
def _dp_tf(x, x_lo, x_hi, scale, offset, relu_floor, q_out, out):
    return datapath(x, x_lo, x_hi, scale, offset, relu_floor, q_out, out, True, False)


@njit(cache=True)
def _dp_tt(x, x_lo, x_hi, scale, offset, relu_floor, q_out, out):
    return datapath(x, x_lo, x_hi, scale, offset, relu_floor, q_out, out, True, True)


@njit(cache=True)
def _dpbn_ff(x, x_lo, x_hi, scale, offset, q_mid, bn_scale, bn_offset, relu_floor, q_out, out):
    return datapath_bn(x, x_lo, x_hi, scale, offset, q_mid, bn_scale, bn_offset, relu_floor, q_out, out, False, False)


@njit(cache=True)
def _dpbn_ft(x, x_lo, x_hi, scale, offset, q_mid, bn_scale, bn_offset, relu_floor, q_out, out):
    return datapath_bn(x, x_lo, x_hi, scale, offset, q_mid, bn_scale, bn_offset, relu_floor, q_out, out, False, True)


@njit(cache=True)
def _dpbn_tf(x, x_lo, x_hi, scale, offset, q_mid, bn_scale, bn_offset, relu_floor, q_out, out):
    return datapath_bn(x, x_lo, x_hi, scale, offset, q_mid, bn_scale, bn_offset, relu_floor, q_out, out, True, False)


@njit(cache=True)
def _dpbn_tt(x, x_lo, x_hi, scale, offset, q_mid, bn_scale, bn_offset, relu_floor, q_out, out):
    return datapath_bn(x, x_lo, x_hi, scale, offset, q_mid, bn_scale, bn_offset, relu_floor, q_out, out, True, True)


DATAPATH = {(False, False): _dp_ff, (False, True): _dp_ft, (True, False): _dp_tf, (True, True): _dp_tt}
DATAPATH_BN = {(False, False): _dpbn_ff, (False, True): _dpbn_ft, (True, False): _dpbn_tf, (True, True): _dpbn_tt}


@njit(cache=True)
def requant_real(x, a, b, relu, lo, hi, out):
    """``out = clip(round(max(x * a + b, 0 if relu)))`` per column (float64 arithmetic, round half to
    even, clip to ``[lo, hi]``): codes of a real affine post-processing, into float32 ``out``."""
    rows, c = x.shape
    for s in range(rows):
        for j in range(c):
            r = np.float64(x[s, j]) * a[j] + b[j]
            if relu and r < 0.0:
                r = 0.0
            out[s, j] = min(max(np.rint(r), lo), hi)


@njit(cache=True)
def abs_at_least(a, thr, out):
    """Copy the ``|a|`` that are ``>= thr`` into ``out`` (in order) while there is room; return how
    many there are (may exceed ``out``'s size: then the copy is partial)."""
    n = 0
    cap = out.shape[0]
    for i in range(a.shape[0]):
        v = abs(a[i])
        if v >= thr:
            if n < cap:
                out[n] = v
            n += 1
    return n


# ---- PCM devices (the statistics of nmpu_model.analog, AIHWKit's PCMLikeNoiseModel) -------------------
# The transcendental functions run vectorized in torch before these passes; here the noise and the rest.
@njit(cache=True)
def program_devices(g_t, log_g, g_max, c0, c1, c2, prog_scale, drift_scale, key_prog, key_nu, g_prog, nu):
    """Program devices of target conductance ``g_t`` (flat float32, ``ln(max(g_t / g_max, 1e-7))`` in
    ``log_g``): ``g_prog`` = target + programming noise of std ``(c0 + c1 g + c2 g^2) g_max / 25``, not
    negative; ``nu`` = drift exponent ``|N(mu(g), sigma(g))|``. Device ``i`` draws ``normal(key_prog, i)``
    and ``normal(key_nu, i)``."""
    n = g_t.shape[0]
    fit = g_max / 25.0
    blk = 1024
    zp = np.empty(blk, np.float32)
    zn = np.empty(blk, np.float32)
    bad = np.empty(blk, np.bool_)
    for b0 in range(0, n, blk):
        m = min(blk, n - b0)
        _fill_normals(key_prog, np.uint64(b0), zp, bad)
        _fill_normals(key_nu, np.uint64(b0), zn, bad)
        for j in range(m):
            i = b0 + j
            gt = np.float64(g_t[i])
            g = gt / g_max
            sig = (c0 + c1 * g + c2 * g * g) * fit
            g_prog[i] = max(gt + prog_scale * sig * zp[j], 0.0)
            lg = np.float64(log_g[i])
            mu = min(max(-0.0155 * lg + 0.0244, 0.049), 0.1)
            sd = min(max(-0.0125 * lg - 0.0059, 0.008), 0.045)
            nu[i] = abs(mu + sd * zn[j]) * drift_scale


@njit(cache=True)
def read_devices(g_drift, q_s, spread, g_max, key, w):
    """Read drifted devices: ``g = g_drift + |g_drift| * q_s * spread * normal(key, i)``, not negative
    (accumulated 1/f read noise); ``g_drift``, ``q_s`` hold the ``G+`` devices then the ``G-`` devices
    (``2 n``). Writes the normalized weights ``w = (G+ - G-) / g_max`` (``n``, float32)."""
    n = w.shape[0]
    blk = 1024
    zp = np.empty(blk, np.float32)
    zn = np.empty(blk, np.float32)
    bad = np.empty(blk, np.bool_)
    for b0 in range(0, n, blk):
        m = min(blk, n - b0)
        _fill_normals(key, np.uint64(b0), zp, bad)
        _fill_normals(key, np.uint64(n + b0), zn, bad)
        for j in range(m):
            i = b0 + j
            gp = np.float64(g_drift[i])
            gn = np.float64(g_drift[n + i])
            gp = max(gp + abs(gp) * np.float64(q_s[i]) * spread * zp[j], 0.0)
            gn = max(gn + abs(gn) * np.float64(q_s[n + i]) * spread * zn[j], 0.0)
            w[i] = (gp - gn) / g_max


def warm_up() -> None:
    """Compile (or load from numba's cache) every kernel for the types the network and the golden model
    use: ``make install`` runs this once (~20 s), so that no first call pays a compilation."""
    f32, i32, i64 = np.float32, np.int32, np.int64
    z2 = np.zeros((2, 2), f32)
    normals(np.uint64(0), 0, np.empty(2))
    adc_tile(z2, z2[0], z2[0], 0.0, np.uint64(0), 0, 0, 1, -1, 1, np.zeros((2, 2), i32), True, True)
    lsq_columns(np.zeros((2, 2), i32), z2, 1.0, -1, 1, np.zeros((5, 2)))
    requant_real(np.zeros((2, 2), i32), np.zeros(2), np.zeros(2), True, -1.0, 1.0, np.zeros((2, 2), f32))
    # the network's int32 codes and a user's int64 ones into the default int64 result (range checked), and
    # 8-bit codes into an 8-bit result (nothing to check); computing in int32 (the default configuration) and
    # in int64; with and without the rounding terms. Other types compile on first use (into the cache).
    for wt in (i32, i64):
        c2, q = np.zeros(2, wt), np.zeros(Q_FIELDS, wt)
        for xd, od, check in ((i32, i64, True), (i64, i64, True), (np.int8, np.int8, False)):
            x, out = np.zeros((2, 2), xd), np.zeros((2, 2), od)
            for terms in (False, True):
                DATAPATH[terms, check](x, -1, 1, c2, c2, wt(0), q, out)
                DATAPATH_BN[terms, check](x, -1, 1, c2, c2, q, c2, c2, wt(0), q, out)
    for a in (np.zeros(2, f32), np.zeros(2)):
        abs_at_least(a, a.dtype.type(1), np.zeros(2, a.dtype))
    program_devices(np.zeros(2, f32), np.zeros(2, f32), 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, np.uint64(0), np.uint64(1),
                    np.zeros(2, f32), np.zeros(2, f32))
    read_devices(np.zeros(2, f32), np.zeros(2, f32), 1.0, 1.0, np.uint64(0), np.zeros(1, f32))


# numba's dispatch machinery starts on the first call of any kernel (~0.3 s): at import, not inside the
# first network build
normals(np.uint64(0), 0, np.empty(1))
