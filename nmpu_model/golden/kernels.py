"""The NMPU datapath as compiled loops (numba): one pass over the codes, no temporaries the size of the data.

The caller (:func:`nmpu_model.golden.datapath.apply`) validates shapes, dtypes and ranges first.
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["DATAPATH", "DATAPATH_BN", "Q_FIELDS"]


# ---- the NMPU datapath ---------------------------------------------------------------------------
# A requantization Q(v * 2**-f, fmt) (nmpu_model.golden.formats.quantize) is described by 10 integers:
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


def warm_up() -> None:
    """Compile (or load from numba's cache) the datapath for the types the network and a user's codes use:
    the network's int32 codes and a user's int64 ones into the default int64 result (range checked), the
    network's int32 codes into the int8/int16 result a network run asks for (range checked), and 8-bit codes
    into an 8-bit result (nothing to check); computing in int32 (the default configuration) and
    in int64; with and without the rounding terms. Other types compile on first use (into the cache)."""
    i32, i64 = np.int32, np.int64
    for wt in (i32, i64):
        c2, q = np.zeros(2, wt), np.zeros(Q_FIELDS, wt)
        for xd, od, check in ((i32, i64, True), (i64, i64, True), (i32, np.int8, True), (i32, np.int16, True),
                              (np.int8, np.int8, False)):
            x, out = np.zeros((2, 2), xd), np.zeros((2, 2), od)
            for terms in (False, True):
                DATAPATH[terms, check](x, -1, 1, c2, c2, wt(0), q, out)
                DATAPATH_BN[terms, check](x, -1, 1, c2, c2, q, c2, c2, wt(0), q, out)
