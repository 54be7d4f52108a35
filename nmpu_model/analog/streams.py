"""Random streams: every draw of the analog model is a pure function of a seed and a path of keys.

``normal(key, i)`` is the ``i``-th standard normal value of the stream ``key``: a pure function
of the two 64-bit integers, so a draw does not depend on the order, the chunking or the batch
size of the work around it. Its 64-bit uniform is SplitMix64's output function applied to
``key + i * 0x9E3779B97F4A7C15`` (Steele, Lea and Flood, OOPSLA 2014: SplitMix64's own state
sequence, which passes BigCrush); the normal is Marsaglia and Tsang's ziggurat (J. Stat. Softw.
5(8), 2000) with 256 layers, the layout of numpy's legacy generator: 8 bits choose the layer, 1 bit
the sign, 52 bits the abscissa. The rare draws outside a layer's rectangle (~1.1 %) take the exact
wedge or tail test, and a rejected draw starts again, with further uniforms from a private stream
of the same ``(key, i)``.

Streams are named by :func:`derive_seed` from ``(seed, layer, purpose[, time])``; the few draws that are
not made by counter (a tile's ADC mismatch) come from a ``torch.Generator`` seeded the same way
(:func:`generator`).
"""
from __future__ import annotations

import hashlib
import math

import numpy as np
import torch
from numba import njit

__all__ = ["derive_seed", "generator", "normal", "normals"]


def derive_seed(seed: int, *keys: int | str | float) -> int:
    """A 63-bit seed derived from ``seed`` and a path of keys (ints, strings, floats; hashed stably)."""
    path = []
    for k in keys:
        if isinstance(k, str):
            path.append(int.from_bytes(hashlib.blake2b(k.encode(), digest_size=8).digest(), "little"))
        elif isinstance(k, float):
            path.append(int(np.float64(k).view(np.uint64)))  # all 64 bits: 3600.0 and 86400.0 differ only high
        else:
            path.append(int(k) & 0xFFFFFFFFFFFFFFFF)
    ss = np.random.SeedSequence(entropy=int(seed) & 0xFFFFFFFFFFFFFFFF, spawn_key=tuple(path))
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def generator(seed: int, *keys: int | str | float) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(derive_seed(seed, *keys))
    return g


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
def uniforms(key, start, out):
    """Fill the 1-D float array ``out`` with uniform doubles in ``[0, 1)``, the ``start + j``-th of stream ``key``."""
    for j in range(out.shape[0]):
        out[j] = _unit(_mix(key + (np.uint64(start) + np.uint64(j)) * _GOLD))


def warm_up() -> None:
    normals(np.uint64(0), 0, np.empty(2))
    uniforms(np.uint64(0), 0, np.empty(2))


# numba's dispatch machinery starts on the first call of any kernel (~0.3 s): at import, not inside the
# first network build
normals(np.uint64(0), 0, np.empty(1))
