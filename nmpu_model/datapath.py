"""``apply()``: the NMPU datapath of ``docs/datapath.md`` on whole arrays.

The fixed-point path is integer from end to end. Each configuration knows the width of its
widest exact intermediate (:meth:`NMPUConfig.plan`), so the work is done in int32 when that
fits (twice as fast as int64) and in int64 otherwise; never in floating point.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .config import NMPUConfig
from .formats import Fmt, quantize

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
                 out_frac: int | None = None) -> tuple[np.ndarray, dict[str, np.ndarray], int]:
    """Validate codes, coefficients and ``out_frac``; return them normalized.

    Raises ``ValueError`` naming the array, the first offending index and value and the count.
    """
    if arith not in ARITHS:
        raise ValueError(f"arith must be one of {', '.join(ARITHS)}, not {arith!r}")
    x = check_codes(codes, config.adc, "codes")
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
          out_frac: int | None = None) -> np.ndarray:
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

    Returns
    -------
    ndarray of int64, shape (N, C)
        Output codes in the output format.
    """
    x, c, out_frac = check_inputs(codes, config, coeffs, arith, out_frac)
    if arith == "fixed":
        return apply_fixed(x, config, c, out_frac)
    from .baselines import apply_float
    return apply_float(x, config, c, out_frac, arith)


def apply_fixed(x: np.ndarray, config: NMPUConfig, c: Mapping[str, np.ndarray], out_frac: int) -> np.ndarray:
    """The fixed-point path on already validated integer inputs (see :func:`apply`)."""
    plan = config.plan()
    dt = np.int32 if plan.bits <= 31 else np.int64
    s, o = config.scale, config.offset
    fa = plan.a.frac
    # a = x*s + o, aligned to the finer of the two fractions
    a = x.astype(dt)
    a *= (c["scale"] << (fa - s.frac)).astype(dt)
    a += (c["offset"] << (fa - o.frac)).astype(dt)
    b, fb = a, fa
    if config.bn_stage:
        a2 = quantize(a, fa, config.mid, inplace=True)
        fb = plan.b.frac
        g, h = config.bn_scale, config.bn_offset
        b = a2
        b *= (c["bn_scale"] << (fb - config.mid.frac - g.frac)).astype(dt)
        b += (c["bn_offset"] << (fb - h.frac)).astype(dt)
    if config.relu:
        np.maximum(b, 0, out=b)
    y = quantize(b, fb, config.output.with_frac(out_frac), inplace=True)
    return y.astype(np.int64, copy=False)
