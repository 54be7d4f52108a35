"""``apply()``: the NMPU datapath of ``docs/datapath.md`` on whole arrays.

The fixed-point path is integer from end to end and never goes through floating point: one
compiled pass (:data:`nmpu_model.golden.kernels.DATAPATH`) per call, in the narrowest of int16, int32 and int64
that holds the configuration's widest exact intermediate (:meth:`NMPUConfig.plan`, :func:`work_dtype`;
int64 holds every configuration's), which also checks the codes' range on the way when their dtype can
hold a bad one; each requantization is the same integer recipe as :func:`nmpu_model.golden.formats.quantize`.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .config import NMPUConfig, Plan
from .formats import Fmt
from .kernels import DATAPATH, DATAPATH_BN, Q_FIELDS

ARITHS = ("fixed", "fp16", "fp32")


def _first_bad(mask: np.ndarray, arr: np.ndarray, what: str, why: str) -> ValueError:
    idx = np.argwhere(mask)
    first = tuple(int(i) for i in idx[0])
    first_s = first[0] if len(first) == 1 else first
    return ValueError(f"{what}: {why} at index {first_s} (value {arr[first].item()!r}); "
                      f"{len(idx)} such value{'s' if len(idx) != 1 else ''}")


def check_codes(arr: Any, fmt: Fmt, what: str) -> np.ndarray:
    """Return ``arr`` (any integer dtype, not copied) if every code is in ``fmt``'s range, else raise a
    ``ValueError`` naming the first bad one."""
    a = np.asarray(arr)
    if a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{what}: expected integer codes, got dtype {a.dtype}")
    if a.dtype == np.uint64 and a.size and a.max() > np.iinfo(np.int64).max:
        raise _first_bad(a > np.iinfo(np.int64).max, a, what, "code too large")
    if a.size and (a.min() < fmt.min or a.max() > fmt.max):  # two reductions, no temporaries
        a = a.astype(np.int64, copy=False)
        bad = (a < fmt.min) | (a > fmt.max)
        raise _first_bad(bad, a, what, f"code outside {fmt.describe()} range [{fmt.min}, {fmt.max}]")
    return a


def check_floats(arr: Any, what: str) -> np.ndarray:
    """Return ``arr`` as float64, refusing NaN and non-numeric data."""
    a = np.asarray(arr)
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{what}: expected numbers, got dtype {a.dtype}")
    a = a.astype(np.float64)
    nan = np.isnan(a)
    if nan.any():
        raise _first_bad(nan, a, what, "NaN")
    # +-inf is a binary16/32 value a float unit can hold: accepted, it propagates as IEEE says
    # (inf * 0 gives NaN, which the output stage maps to 0). NaN has no meaning as a coefficient.
    return a


def check_inputs(codes: Any, config: NMPUConfig, coeffs: Mapping[str, Any], arith: str = "fixed",
                 out_frac: int | None = None, check_range: bool = True) -> tuple[np.ndarray, dict[str, np.ndarray], int]:
    """Validate codes, coefficients and ``out_frac``; return them normalized.

    Raises ``ValueError`` naming the array, the first offending index and value and the count.
    ``check_range=False`` leaves the codes' range to the caller (the fixed-point kernel checks it
    in its own pass) and checks only that they are integers.
    """
    if arith not in ARITHS:
        raise ValueError(f"arith must be one of {', '.join(ARITHS)}, not {arith!r}")
    x = check_codes(codes, config.adc, "codes") if check_range else _integer_codes(codes)
    if x.ndim != 2:
        raise ValueError(f"codes: expected a 2-D array (samples, columns), got shape {x.shape}")
    n_cols = x.shape[1]
    out: dict[str, np.ndarray] = {}
    for name in config.coef_names:
        if name not in coeffs:
            raise ValueError(f"coefficients: {name!r} is missing (bn_stage = {str(config.bn_stage).lower()})")
        if arith == "fixed":
            c = check_codes(coeffs[name], getattr(config, name), name).astype(np.int64)
        else:
            c = check_floats(coeffs[name], name)
        if c.shape != (n_cols,):
            raise ValueError(f"{name}: expected shape ({n_cols},) to match the {n_cols} columns of codes, "
                             f"got {c.shape}")
        out[name] = c
    if out_frac is None:
        of = coeffs.get("out_frac") if hasattr(coeffs, "get") else None
        if of is None:
            out_frac = config.output.frac
        else:
            a = np.asarray(of)
            if a.ndim != 0 or not np.issubdtype(a.dtype, np.integer) or a.dtype == bool:
                raise ValueError(f"out_frac: expected a 0-d integer, got {a!r}")
            out_frac = int(a)
    return x, out, config.check_out_frac(out_frac)


def apply(codes: Any, config: NMPUConfig, coeffs: Mapping[str, Any], arith: str = "fixed",
          out_frac: int | None = None, *, dtype: Any = np.int64) -> np.ndarray:
    """Post-process ADC codes as the NMPU does.

    Parameters
    ----------
    codes : array of int, shape (N, C)
        Signed ADC codes, ``adc_bits`` wide.
    config : NMPUConfig
        Formats and stages.
    coeffs : mapping
        ``scale``, ``offset`` (and ``bn_scale``, ``bn_offset`` with the BN stage), each of
        shape ``(C,)``: integer codes for ``arith="fixed"``, real values for ``fp16``/``fp32``
        (rounded to the binary format once). Optional 0-d integer ``out_frac``.
    arith : {"fixed", "fp16", "fp32"}
        The bit-accurate fixed-point unit, or a floating-point baseline.
    out_frac : int, optional
        The output format's ``frac`` for this layer; overrides ``coeffs["out_frac"]``.
    dtype : integer dtype, optional
        Of the result: int64 by default; any integer dtype that holds the output format's codes
        (e.g. int8 for the default signed 8-bit output: an eighth of the memory traffic).

    Returns
    -------
    ndarray of ``dtype`` (int64), shape (N, C)
        Output codes in the output format.
    """
    out_dtype = output_dtype(dtype, config.output)
    fixed = arith == "fixed"
    x, c, out_frac = check_inputs(codes, config, coeffs, arith, out_frac, check_range=not fixed)
    if fixed:
        return apply_fixed(x, config, c, out_frac, out_dtype)
    from .baselines import apply_float
    return apply_float(x, config, c, out_frac, arith).astype(out_dtype, copy=False)


def output_dtype(dtype: Any, fmt: Fmt) -> np.dtype:
    """``dtype`` as a numpy dtype if it is an integer type holding every code of ``fmt``, else a ``ValueError``."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype: {dtype!r} is not a numpy dtype") from None
    if dt == bool or not np.issubdtype(dt, np.integer):
        raise ValueError(f"dtype: expected an integer dtype, not {dt}")
    info = np.iinfo(dt)
    if fmt.min < info.min or fmt.max > info.max:
        raise ValueError(f"dtype: {dt} cannot hold the output format {fmt.describe()} "
                         f"(codes {fmt.min} .. {fmt.max})")
    return dt


def code_dtype(fmt: Fmt) -> np.dtype:
    """The narrowest of int8, int16 and int64 that holds every code of ``fmt`` (the types the compiled datapath
    is warmed up for)."""
    return next(np.dtype(t) for t in (np.int8, np.int16, np.int64) if np.iinfo(t).min <= fmt.min
                and fmt.max <= np.iinfo(t).max)


def _integer_codes(codes: Any) -> np.ndarray:
    a = np.asarray(codes)
    if a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"codes: expected integer codes, got dtype {a.dtype}")
    return a


def requant_desc(v_frac: int, fmt: Fmt, nonneg: bool = False) -> tuple[int, np.ndarray]:
    """How :data:`nmpu_model.golden.kernels.DATAPATH` does ``quantize(v, v_frac, fmt)``: the left shift to fold
    into the coefficients that make ``v``, and the 10 integers of the rest (see :mod:`nmpu_model.golden.kernels`).
    ``nonneg``: ``v`` is never negative (after ReLU), so rounding needs no term for negative values."""
    shift = fmt.frac - v_frac
    left, pre, d = max(shift, 0), 0, max(-shift, 0)
    if 0 < fmt.pre_truncate < d:
        pre, d = d - fmt.pre_truncate, fmt.pre_truncate
    c0 = c_neg = c_odd = 0
    if d > 0:
        base, step = fmt.rounding.bias(d)
        always, negative, odd = fmt.rounding.up.terms
        c0, c_neg, c_odd = base + step * always, step * negative, step * odd
    if nonneg:
        c_neg = 0
    lo, hi = fmt.min, fmt.max
    lo_sat = fmt.overflow.bounds(fmt)[0]
    kind = 0 if fmt.overflow.wraps else (2 if fmt.overflow.to_zero else 1)
    desc = np.array([pre, d, c0, c_neg, c_odd, lo, hi, lo_sat, (1 << fmt.bits) - 1, kind], np.int64)
    assert desc.shape == (Q_FIELDS,)
    return left, desc


def work_dtype(plan: Plan) -> np.dtype:
    """The narrowest of int16, int32, int64 that holds every exact intermediate of a configuration's ``plan``
    (its widest signal) with two bits to spare: the integer type the compiled datapath computes in."""
    bits = plan.bits
    return next(np.dtype(t) for t in (np.int16, np.int32, np.int64) if bits <= np.iinfo(t).bits - 2)


def _in_work(desc: np.ndarray, wt: np.dtype) -> np.ndarray:
    """A descriptor in the working type, a pre-truncation shift of the type's width or more shortened to
    width - 1 (a shift past the width is undefined in the compiled code; every value of the plan's range,
    under 2**(width - 2) in magnitude, shifts to the same 0 or -1 by either amount)."""
    d = desc.copy()
    d[0] = min(d[0], np.iinfo(wt).bits - 1)
    return d.astype(wt)


def _has_terms(*descs: np.ndarray) -> bool:
    """Whether a requantization does more than add its constant and shift: a pre-truncation, ``c_neg``, ``c_odd``."""
    return any(bool(d[0] or d[3] or d[4]) for d in descs)


def apply_fixed(x: np.ndarray, config: NMPUConfig, c: Mapping[str, np.ndarray], out_frac: int,
                dtype: Any = np.int64) -> np.ndarray:
    """The fixed-point path on integer codes and validated coefficients (see :func:`apply`); the codes'
    range is checked here, in the same pass (a bad code raises and nothing is returned)."""
    plan = config.plan()
    s, o = config.scale, config.offset
    fa = plan.a.frac
    if x.dtype == np.uint64 or x.dtype.itemsize > 8:  # not representable in int64 in general: check first
        x = check_codes(x, config.adc, "codes").astype(np.int64)
    info = np.iinfo(x.dtype)
    check = bool(info.min < config.adc.min or info.max > config.adc.max)  # else no code can be out of range
    wt = work_dtype(plan)
    out = np.empty(x.shape, dtype)
    relu_floor = wt.type(0 if config.relu else np.iinfo(wt).min)
    out_fmt = config.output.with_frac(out_frac)

    def coef(name: str, shift: int) -> np.ndarray:
        return (c[name].astype(np.int64) << shift).astype(wt)

    if config.bn_stage:
        fb = plan.b.frac
        left_mid, q_mid = requant_desc(fa, config.mid)
        left, q_out = requant_desc(fb, out_fmt, nonneg=config.relu)
        # a = x*s + o at the finer of the two fractions, then the mid requantization's left shift
        scale, offset = coef("scale", fa - s.frac + left_mid), coef("offset", fa - o.frac + left_mid)
        bn_scale = coef("bn_scale", fb - config.mid.frac - config.bn_scale.frac + left)
        bn_offset = coef("bn_offset", fb - config.bn_offset.frac + left)
        kernel = DATAPATH_BN[_has_terms(q_mid, q_out), check]
        bad = kernel(x, config.adc.min, config.adc.max, scale, offset, _in_work(q_mid, wt), bn_scale, bn_offset,
                     relu_floor, _in_work(q_out, wt), out)
    else:
        left, q_out = requant_desc(fa, out_fmt, nonneg=config.relu)
        scale, offset = coef("scale", fa - s.frac + left), coef("offset", fa - o.frac + left)
        bad = DATAPATH[_has_terms(q_out), check](x, config.adc.min, config.adc.max, scale, offset, relu_floor,
                                                 _in_work(q_out, wt), out)
    if bad:
        check_codes(x, config.adc, "codes")  # raises, naming the first bad code
    return out
