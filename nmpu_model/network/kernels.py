"""Calibration's compiled loops (numba): per-column least squares, the exact real post-processing, and
the count of large values behind a quantile; each one pass over the data."""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["lsq_columns", "requant_real", "abs_at_least"]


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


def warm_up() -> None:
    f32, i32 = np.float32, np.int32
    z2 = np.zeros((2, 2), f32)
    lsq_columns(np.zeros((2, 2), i32), z2, 1.0, -1, 1, np.zeros((5, 2)))
    requant_real(np.zeros((2, 2), i32), np.zeros(2), np.zeros(2), True, -1.0, 1.0, np.zeros((2, 2), f32))
    for a in (np.zeros(2, f32), np.zeros(2)):
        abs_at_least(a, a.dtype.type(1), np.zeros(2, a.dtype))
