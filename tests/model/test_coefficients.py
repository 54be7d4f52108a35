"""Coefficients of an analog layer against an exact derivation written from the rule in
``nmpu_model.network.analog_network``'s docstring ("Coefficients"), and against what they mean: the fixed-point
unit loaded with them maps ADC codes to the layer's real output in output codes.

The reference (``coefficients_ref``) is ``fractions.Fraction`` arithmetic on the calibration's
numbers and ``tests/model/reference.py``'s datapath; nothing of ``make_coefficients`` is reused.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from nmpu_model import NMPUConfig
from nmpu_model.network.coefficients import LayerCal, make_coefficients
from nmpu_model.golden.formats import Fmt

from .reference import apply_ref, code_range

TWO = Fraction(2)


def _cal(seed: int, cols: int = 5, samples: int = 40, *, big: float = 1.0, dead: bool = False) -> LayerCal:
    """A calibration of one layer with random but plausible numbers: ADC gains near 1, offsets of a few
    codes, folded BN with some negative scales (their sign moved into the weights), biases, shifts;
    ``big`` scales the conversion factor and the biases, ``dead`` makes column 1 a dead one (no gain)."""
    rng = np.random.default_rng(seed)
    g = rng.normal(1.0, 0.6, cols)
    sign = np.where(g < 0, -1.0, 1.0)
    A0 = sign * rng.uniform(0.002, 0.03, cols) * big
    if dead:
        A0[1] = 0.0
    x = rng.integers(-128, 128, size=(samples, cols))
    beta, bias = rng.normal(0, 3, cols), rng.normal(0, 0.3, cols) * min(big, 1.0)
    # max |z| over the ADC's codes, z = A0 * (x - beta) + bias: what calibration measures
    zmax = float(np.max(np.abs(A0 * (np.array([[-128], [127]]) - beta) + bias)))
    return LayerCal(step_in=0.01, step_out=float(rng.uniform(0.02, 0.2)), out_bound=3.0,
                    alpha=rng.uniform(0.9, 1.1, cols), beta=beta, A0=A0, bias=bias, g=g, h=rng.normal(0, 0.4, cols) * min(big, 1.0), sign=sign,
                    readout_cal=1.0, x_cal=x.astype(np.int64), zmax=zmax)


def _code(v: Fraction, fmt: Fmt) -> tuple[int, bool, bool]:
    """Nearest code of ``fmt`` (ties to even, Python's ``round`` of a Fraction), saturated; whether it
    saturated and whether ``v`` lies within 1e-9 of a tie (where float64 and exact may differ)."""
    t = v * TWO ** fmt.frac
    near_tie = abs(t - math.floor(t) - Fraction(1, 2)) < Fraction(1, 10 ** 9)
    lo, hi = code_range(fmt.bits, fmt.signed)
    c = round(t)
    return min(max(c, lo), hi), not lo <= c <= hi, near_tie


def _real(cal: LayerCal, gdc: float, cfg: NMPUConfig, f: int) -> dict[str, list[Fraction]]:
    """The exact real coefficients at ``out_frac = f`` (the docstring's formulas)."""
    F = Fraction
    kappa = 1 / (F(cal.step_out) * TWO ** f)
    A = [F(a) * F(gdc) for a in cal.A0]
    cols = range(len(A))
    if not cfg.bn_stage:
        s = [kappa * F(cal.g[j]) * A[j] for j in cols]
        o = [kappa * (F(cal.g[j]) * F(cal.bias[j]) + F(cal.h[j])) - s[j] * F(cal.beta[j]) for j in cols]
        return {"scale": s, "offset": o}
    smax = F(code_range(cfg.scale.bits, cfg.scale.signed)[1]) * TWO ** -cfg.scale.frac
    mid_max = F(code_range(cfg.mid.bits, cfg.mid.signed)[1]) * TWO ** -cfg.mid.frac
    k1 = min(F(0.95) * smax / max(max(abs(a) for a in A), F(1e-30)), F(0.9) * mid_max / max(F(cal.zmax), F(1e-30)))
    return {"scale": [k1 * abs(A[j]) for j in cols],
            "offset": [k1 * (F(cal.sign[j]) * F(cal.bias[j]) - abs(A[j]) * F(cal.beta[j])) for j in cols],
            "bn_scale": [kappa * abs(F(cal.g[j])) / k1 for j in cols],
            "bn_offset": [kappa * F(cal.h[j]) for j in cols]}


def _post_real(x: int, real: dict, j: int, cfg: NMPUConfig, f: int) -> Fraction:
    """The exact real datapath, output scaled by 2**f and clipped to the output range, not rounded."""
    b = x * real["scale"][j] + real["offset"][j]
    if cfg.bn_stage:
        b = b * real["bn_scale"][j] + real["bn_offset"][j]
    if cfg.relu:
        b = max(b, Fraction(0))
    lo, hi = code_range(cfg.output.bits, cfg.output.signed)
    return min(max(b * TWO ** f, Fraction(lo)), Fraction(hi))


def coefficients_ref(cal: LayerCal, gdc: float, cfg: NMPUConfig) -> dict:
    """Every candidate ``out_frac``'s codes and saturation count, ``f0``, and the output error of
    ``f0 - 1, f0, f0 + 1`` (exact mean squared error of the fixed outputs against the real ones)."""
    cands = {}
    for f in range(cfg.out_frac_min, cfg.out_frac_max + 1):
        real = _real(cal, gdc, cfg, f)
        codes, sat, ties = {}, 0, 0
        for name, vals in real.items():
            got = [_code(v, getattr(cfg, name)) for v in vals]
            codes[name] = [c for c, _, _ in got]
            sat += sum(s for _, s, _ in got)
            ties += sum(t for _, _, t in got)
        cands[f] = {"real": real, "codes": codes, "sat": sat, "ties": ties}
    f0 = next((f for f in cands if cands[f]["sat"] == 0), cfg.out_frac_max)
    mse = {}
    for f in (f0 - 1, f0, f0 + 1):
        if f not in cands:
            continue
        c, real, err = cands[f]["codes"], cands[f]["real"], Fraction(0)
        for row in cal.x_cal.tolist():
            for j, x in enumerate(row):
                bn = (c["bn_scale"][j], c["bn_offset"][j]) if cfg.bn_stage else (0, 0)
                y = apply_ref(x, c["scale"][j], c["offset"][j], cfg, f, *bn)
                err += (y - _post_real(x, real, j, cfg, f)) ** 2
        mse[f] = err / cal.x_cal.size if cal.x_cal.size else Fraction(0)
    return {"cands": cands, "f0": f0, "mse": mse}


BN = dict(bn_stage=True, bn_scale=Fmt(8, 6, True), bn_offset=Fmt(8, 2, True), mid=Fmt(12, 6, True, "RND", "SAT"))
CONFIGS = {
    "default": NMPUConfig(),
    "no-relu": NMPUConfig(relu=False),
    "narrow": NMPUConfig(scale=Fmt(4, 3, False), offset=Fmt(3, -4, True)),
    "signed-scale": NMPUConfig(scale=Fmt(6, 4, True), offset=Fmt(6, 2, True),
                               output=Fmt(8, 0, True, "RND_CONV", "SAT_SYM")),
    # a narrow out_frac range: every candidate saturates, so f0 falls back to out_frac_max
    "saturating": NMPUConfig(output=Fmt(8, 0, True, "RND", "SAT"), out_frac_min=-2, out_frac_max=0),
    "saturating-no-relu": NMPUConfig(relu=False, out_frac_min=-2, out_frac_max=0),
    # tiny coefficients: none saturates even at out_frac_min, so f0 - 1 is outside the range
    "tiny": NMPUConfig(),
    "bn": NMPUConfig(**BN),
    "bn-no-relu": NMPUConfig(relu=False, **BN),
    # a wide mid format: the scale format, not mid's range, bounds the BN stage's first gain
    "bn-wide-mid": NMPUConfig(**{**BN, "mid": Fmt(16, 4, True, "RND", "SAT")}),
    # a calibration maximum below 1 (small conversion factor and biases)
    "bn-small": NMPUConfig(**BN),
}
BIG = {"saturating": 40.0, "saturating-no-relu": 40.0, "tiny": 0.01, "bn-small": 0.01}


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("seed", [0, 1])
def test_codes_out_frac_and_error_are_the_documented_rule(name: str, seed: int) -> None:
    cfg = CONFIGS[name]
    cal = _cal(seed, big=BIG.get(name, 1.0), dead=seed == 1)
    gdc = 1.0 + 0.05 * seed
    ref = coefficients_ref(cal, gdc, cfg)
    lc = make_coefficients(cal, gdc, cfg, relu=True)
    assert lc.config == cfg
    # the out_frac of least output error among f0 - 1, f0, f0 + 1 (a near tie may go either way)
    best = min(ref["mse"].values())
    assert lc.out_frac in ref["mse"] and ref["mse"][lc.out_frac] <= best + Fraction(1, 10 ** 9), (lc.out_frac, ref["mse"])
    if name.startswith("saturating"):
        assert ref["f0"] == cfg.out_frac_max and ref["cands"][ref["f0"]]["sat"] > 0
    if name == "tiny":
        assert ref["f0"] == cfg.out_frac_min
    if name == "bn-small":
        assert cal.zmax < 1
    want = ref["cands"][lc.out_frac]
    assert want["ties"] == 0
    for k in cfg.coef_names:
        assert lc.codes[k].dtype == np.int64
        assert lc.codes[k].tolist() == want["codes"][k], k
        np.testing.assert_allclose(lc.real[k], [float(v) for v in want["real"][k]], rtol=1e-12, atol=1e-300)
    assert lc.qerr["saturated"] == want["sat"]
    assert lc.qerr["out_mse"] == pytest.approx(float(ref["mse"][lc.out_frac]), rel=1e-9, abs=1e-12)
    # the quantization error figures, from the exact codes and values
    sq = [Fraction(c) * TWO ** -cfg.scale.frac for c in want["codes"]["scale"]]
    rel = [abs(q - r) / abs(r) for q, r in zip(sq, want["real"]["scale"]) if r != 0]
    assert lc.qerr["scale_rel_max"] == pytest.approx(float(max(rel)), rel=1e-9)
    assert lc.qerr["scale_rel_mean"] == pytest.approx(float(sum(rel) / len(rel)), rel=1e-9)
    oq = [Fraction(c) * TWO ** -cfg.offset.frac for c in want["codes"]["offset"]]
    gain = [TWO ** lc.out_frac * (abs(b) if cfg.bn_stage else 1)
            for b in (want["real"]["bn_scale"] if cfg.bn_stage else oq)]
    off = max(abs(q - r) * g for q, r, g in zip(oq, want["real"]["offset"], gain))
    assert lc.qerr["offset_abs_max"] == pytest.approx(float(off), rel=1e-9)


def test_the_layer_relu_and_the_config_relu_combine() -> None:
    cal = _cal(3)
    on, off = NMPUConfig(), NMPUConfig(relu=False)
    assert make_coefficients(cal, 1.0, on, relu=False).config.relu is False
    assert make_coefficients(cal, 1.0, off, relu=True).config.relu is False
    assert make_coefficients(cal, 1.0, on, relu=True).config.relu is True


@pytest.mark.parametrize("name", ["default", "no-relu", "signed-scale", "bn"])
def test_the_loaded_unit_gives_the_layer_output_in_output_codes(name: str) -> None:
    """What the coefficients mean, without the rule: the unit's output code of an ADC code ``x`` is the
    layer's real output ``r = g * (A * (x - beta) + bias) + h`` (ReLU'd, clipped) divided by the output
    step, within the rounding of the output (1/2) and of the coefficients (half a step each, times what
    multiplies them), whatever ``out_frac`` was chosen."""
    from nmpu_model import apply

    cfg = CONFIGS[name]
    for seed in range(3):
        cal = _cal(10 + seed, cols=8, samples=64)
        gdc = 0.9 + 0.1 * seed
        lc = make_coefficients(cal, gdc, cfg, relu=True)
        # columns whose coefficients saturated (the rule may accept a few) are outside the bound
        ok = np.ones(8, bool)
        for k in cfg.coef_names:
            fmt = getattr(cfg, k)
            t = np.ldexp(lc.real[k], fmt.frac)
            ok &= (t >= fmt.min - 0.5) & (t <= fmt.max + 0.5)
        assert ok.sum() >= 6
        x = np.arange(-128, 128)[:, None].repeat(8, 1)
        y = apply(x, lc.config, lc.codes, "fixed", lc.out_frac).astype(np.float64)
        A = cal.A0 * gdc
        r = cal.g * (A * (x - cal.beta) + cal.bias) + cal.h
        if cfg.relu:
            r = np.maximum(r, 0)
        want = np.clip(r / cal.step_out, cfg.output.min, cfg.output.max)
        f = lc.out_frac
        ds, do = 2.0 ** -cfg.scale.frac / 2, 2.0 ** -cfg.offset.frac / 2
        if cfg.bn_stage:
            # the mid value's error (coefficients and its own rounding) times the BN scale, plus the BN offset's
            mid_err = np.abs(x) * ds + do + 2.0 ** -cfg.mid.frac / 2
            g_real = lc.real["bn_scale"]
            mid_val = np.abs(x * lc.real["scale"] + lc.real["offset"]) + mid_err
            bound = 0.5 + 2.0 ** f * (mid_err * (g_real + 2.0 ** -cfg.bn_scale.frac / 2)
                                      + mid_val * 2.0 ** -cfg.bn_scale.frac / 2 + 2.0 ** -cfg.bn_offset.frac / 2)
        else:
            bound = 0.5 + 2.0 ** f * (np.abs(x) * ds + do)
        err = np.abs(y - want)[:, ok]
        bound = np.broadcast_to(bound, y.shape)[:, ok]
        assert (err <= bound + 1e-9).all(), (name, seed, float((err - bound).max()))
        # and the error is a rounding error, not a bias: where the coefficients' own rounding adds at most
        # half an output code on average, the mean signed error is small (measured: at most 0.06)
        if float(np.mean(bound)) <= 1.0:
            assert abs(float(np.mean((y - want)[:, ok]))) < 0.15, (name, seed, float(np.mean(y - want)))


def test_coefficients_at_the_ends_of_their_formats_are_not_saturated() -> None:
    """A scale exactly at the format's largest code (255/128) and one at its smallest (0: a dead column) are
    codes of the format, not saturations: the out_frac that gives them is f0, and nothing is counted."""
    n = 4
    cal = LayerCal(step_in=0.01, step_out=0.125, out_bound=1.0, alpha=np.ones(n), beta=np.zeros(n),
                   A0=np.array([255 / 1024, 0.0, 0.1, -0.05]), bias=np.zeros(n), g=np.array([1.0, 1.0, 1.0, -1.0]),
                   h=np.zeros(n), sign=np.array([1.0, 1.0, 1.0, -1.0]), readout_cal=1.0,
                   x_cal=np.arange(-128, 128).reshape(-1, 4).astype(np.int64), zmax=32.0)
    # at out_frac 0 the first column's scale is 255/1024 / 0.125 = 255/128: the largest code, exactly
    lc = make_coefficients(cal, 1.0, NMPUConfig(out_frac_min=0, out_frac_max=3), relu=True)
    assert lc.out_frac == 0 and lc.codes["scale"].tolist() == [255, 0, 102, 51]
    assert lc.qerr["saturated"] == 0 and lc.qerr["scale_rel_max"] == pytest.approx(abs(102 / 128 / 0.8 - 1))


def test_degenerate_layers() -> None:
    """A layer of zero weights (every scale 0) and a calibration without codes do not break the rule: the
    error figures are 0, and of equal output errors the smallest out_frac (f0 - 1) is kept."""
    cal = _cal(2)
    zero = LayerCal(**{**cal.__dict__, "A0": np.zeros(5)})
    lc = make_coefficients(zero, 1.0, NMPUConfig(), relu=True)
    assert (lc.codes["scale"] == 0).all() and lc.qerr["scale_rel_max"] == 0 and lc.qerr["scale_rel_mean"] == 0
    empty = LayerCal(**{**cal.__dict__, "x_cal": np.zeros((0, 5), np.int64)})
    lc = make_coefficients(empty, 1.0, NMPUConfig(), relu=True)
    ref = coefficients_ref(empty, 1.0, NMPUConfig())
    assert lc.out_frac == ref["f0"] - 1 and lc.qerr["out_mse"] == 0.0
    assert lc.codes["scale"].tolist() == ref["cands"][ref["f0"] - 1]["codes"]["scale"]
