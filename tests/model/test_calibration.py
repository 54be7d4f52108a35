"""Calibration (nmpu_model.network.analog_network's docstring, "Calibration") against the rules recomputed in
float64 NumPy from the PyTorch layers' own weights: the input step, the DAC codes, the ADC full scale, the fitted
line, the folded batch norm, the output step and the next layer's input codes. On noise-free tiles the ADC codes
are the ideal MVM rounded, so every figure has a value the rules fix."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nmpu_model import NMPUConfig
from nmpu_model.analog.tiles import TileParams
from nmpu_model.network.analog_network import AnalogNetwork, dac_codes

Q = 0.9999  # the documented percentile


def _model() -> nn.Sequential:
    torch.manual_seed(7)
    m = nn.Sequential(nn.Linear(24, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Linear(12, 6), nn.ReLU(),
                      nn.Linear(6, 5, bias=False)).eval()
    bn = m[1]
    bn.weight.data.copy_(torch.linspace(-1.5, 2.0, 12))        # negative BN scales: columns programmed negated
    bn.bias.data.copy_(torch.linspace(-0.3, 0.4, 12))
    bn.running_mean.copy_(torch.linspace(-0.2, 0.2, 12))
    bn.running_var.copy_(torch.linspace(0.5, 2.0, 12))
    m[3].bias.data.fill_(1.5)        # a large bias: the largest |z| is not where the MVM is largest
    return m


XC = torch.randn(300, 24, generator=torch.Generator().manual_seed(1), dtype=torch.float32) * 1.7


def _q(v: np.ndarray) -> float:
    return float(np.quantile(np.abs(np.asarray(v, np.float64)), Q))


@pytest.mark.parametrize("out_bound", [None, 2.5])
def test_calibration_follows_the_documented_rules(out_bound) -> None:
    model = _model()
    tile = TileParams.ideal(out_bound=out_bound)
    net = AnalogNetwork.build(model, XC, seed=0, tile=tile, digital=())
    assert net.analog_layers == ["0", "3", "5"]
    x = XC.double().numpy()
    for name, lin, bn, relu in (("0", model[0], model[1], True), ("3", model[3], None, True),
                                ("5", model[5], None, False)):
        cal, p = net.cal[name], net.programmed[name]
        W = lin.weight.detach().double().numpy().T                 # (K, C)
        b = np.zeros(W.shape[1]) if lin.bias is None else lin.bias.detach().double().numpy()
        if bn is None:
            g, h = np.ones(W.shape[1]), np.zeros(W.shape[1])
        else:
            g = bn.weight.detach().double().numpy() / np.sqrt(bn.running_var.double().numpy() + bn.eps)
            h = bn.bias.detach().double().numpy() - bn.running_mean.double().numpy() * g
        np.testing.assert_allclose(cal.g, g, rtol=1e-12)
        np.testing.assert_allclose(cal.h, h, rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(cal.bias, b)
        sign = np.where(g < 0, -1.0, 1.0)
        np.testing.assert_array_equal(cal.sign, sign)
        # 1. the input: the first layer's real inputs quantized at the 99.99th percentile / 127, half to even;
        # the next layers take the previous layer's output codes as they are, in its output step
        if name == "0":
            step_in = _q(x) / 127
            assert cal.step_in == pytest.approx(step_in, rel=1e-6)
            u = np.clip(np.round(x / cal.step_in), -128, 127)
        else:
            assert cal.step_in == prev_step_out
            u = prev_codes
        # 2. ADC full scale: 1.1 x the 99.99th percentile of the ideal MVM (full-scale units), or the tile's own
        colmax = np.abs(W).max(axis=0)
        m = (u / 127) @ (W * sign / colmax)
        assert cal.out_bound == pytest.approx(out_bound or 1.1 * _q(m), rel=1e-5)
        lsb = cal.out_bound / 127
        # 3. ideal tiles: the fitted line is the identity up to the ADC's rounding (+-0.5 LSB a code; measured: gain
        # within 0.004, offset within 0.16 LSB where a ReLU'd input keeps the MVM on one side of 0)
        np.testing.assert_allclose(cal.alpha, 1.0, atol=0.01)
        np.testing.assert_allclose(cal.beta, 0.0, atol=0.3)
        np.testing.assert_allclose(cal.A0, sign * colmax * cal.step_in * 127 * lsb / cal.alpha, rtol=1e-9)
        # 4. the output step: the 99.99th percentile of the real output (ReLU'd where the layer has one) / 127
        r = g * (u * cal.step_in @ W + b) + h
        if relu:
            r = np.maximum(r, 0)
        assert cal.step_out == pytest.approx(_q(r) / 127, rel=1e-5)
        assert cal.zmax == pytest.approx(np.abs(u * cal.step_in @ W + b).max(), rel=1e-5)
        # the calibration codes kept for the out_frac choice are this layer's ADC codes (all 300 rows: < 8192)
        codes = np.clip(np.round(m / lsb), -128, 127)
        assert cal.x_cal.shape == codes.shape and np.abs(cal.x_cal - codes).max() <= 1
        assert np.mean(cal.x_cal != codes) < 0.01                # float32 MVM vs float64: rare rounding ties
        # the next layer's input: the exact real post-processing of the ADC codes, rounded into the output codes
        y = g * (cal.A0 * (cal.x_cal - cal.beta) + b) + h
        if relu:
            y = np.maximum(y, 0)
        prev_codes = np.clip(np.round(y / cal.step_out), -128, 127)
        prev_step_out = cal.step_out


def test_calibration_gathers_a_layer_after_a_digital_one_from_real_values() -> None:
    """After a digital layer the input is real again: quantized at its own 99.99th percentile."""
    model = _model()
    net = AnalogNetwork.build(model, XC, seed=0, tile=TileParams.ideal(), digital=("0",))
    h1 = model[2](model[1](model[0](XC))).detach().double().numpy()
    assert net.cal["3"].step_in == pytest.approx(_q(h1) / 127, rel=1e-6)


@pytest.mark.parametrize("signed, lo, hi", [(True, -128, 127), (False, 0, 255)])
def test_dac_codes_round_half_to_even_and_clip(signed, lo, hi) -> None:
    tp = TileParams(dac_signed=signed)
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, 126.5, 127.5, 300.0, -300.0, -128.5, 254.5, 255.5, 0.49])
    # by hand: ties to even, then the DAC's range
    want = [0, 2, 2, -0, -2, 126, 128, 300, -300, -128, 254, 256, 0]
    got = dac_codes(x * 0.25, 0.25, tp)
    assert got.tolist() == [float(min(max(w, lo), hi)) for w in want]


class Shared(nn.Module):
    """A matrix used twice (as an RNN's recurrent one is, once per step): calibrated once on both uses' inputs."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.a, self.sh, self.out = nn.Linear(24, 10), nn.Linear(10, 10), nn.Linear(10, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h1 = torch.relu(self.a(x))
        h2 = torch.relu(self.sh(h1))
        return self.out(torch.relu(self.sh(h2)))


def test_a_matrix_used_twice_is_calibrated_on_both_uses() -> None:
    model = Shared().eval()
    net = AnalogNetwork.build(model, XC, seed=0, tile=TileParams.ideal(), digital=())
    assert [l.uses for l in net.layers] == [1, 2, 1]
    W = model.sh.weight.detach().double().numpy().T
    b = model.sh.bias.detach().double().numpy()
    colmax = np.abs(W).max(axis=0)
    # the inputs of both uses, from the float model: the step covers both
    with torch.no_grad():
        h1 = torch.relu(model.a(XC)).double().numpy()
        h2 = torch.relu(model.sh(torch.relu(model.a(XC)))).double().numpy()
    cal = net.cal["sh"]
    assert cal.step_in == pytest.approx(_q(np.concatenate([h1, h2])) / 127, rel=1e-6)
    us = [np.clip(np.round(h / cal.step_in), -128, 127) for h in (h1, h2)]
    m = np.concatenate([(u / 127) @ (W / colmax) for u in us])
    assert cal.out_bound == pytest.approx(1.1 * _q(m), rel=1e-5)
    r = np.maximum(np.concatenate([u * cal.step_in @ W + b for u in us]), 0)
    assert cal.step_out == pytest.approx(_q(r) / 127, rel=1e-5)
    assert cal.x_cal.shape == (2 * len(XC), 10)                    # the rows of both uses
    # the layer after it takes the second use's output codes in the shared layer's output step, as they are
    assert net.cal["out"].step_in == cal.step_out
    # ... which are the tiles' second use on the first use's output (requantized into the shared input step)
    lsb = cal.out_bound / 127
    ca = net.cal["a"]
    ya = np.clip(np.round(np.maximum(ca.g * (ca.A0 * (ca.x_cal - ca.beta) + ca.bias) + ca.h, 0) / ca.step_out),
                 -128, 127)
    u1 = np.clip(np.round(ya * ca.step_out / cal.step_in), -128, 127)
    x1 = np.clip(np.round((u1 / 127) @ (W / colmax) / lsb), -128, 127)
    y1 = np.clip(np.round(np.maximum(cal.A0 * (x1 - cal.beta) + b, 0) / cal.step_out), -128, 127)
    u2 = np.clip(np.round(y1 * cal.step_out / cal.step_in), -128, 127)
    x2 = np.clip(np.round((u2 / 127) @ (W / colmax) / lsb), -128, 127)
    y2 = np.clip(np.round(np.maximum(cal.A0 * (x2 - cal.beta) + b, 0) / cal.step_out), -128, 127)
    co = net.cal["out"]
    Wo = model.out.weight.detach().double().numpy().T
    mo = (y2 / 127) @ (Wo / np.abs(Wo).max(axis=0))
    xo = np.clip(np.round(mo / (co.out_bound / 127)), -128, 127)
    assert np.mean(co.x_cal != xo) < 0.01 and np.abs(co.x_cal - xo).max() <= 2
    # a run on the same inputs (noise-free tiles: the read is the calibration's) hands the same codes on: the
    # second use's input is requantized from the first use's output step into the shared input step
    _, tr = net.run(XC, NMPUConfig(), "fp32", record=True)
    assert np.mean(tr["out"].adc_codes != co.x_cal) < 0.02 and np.abs(tr["out"].adc_codes - co.x_cal).max() <= 2


def test_the_fit_leaves_out_codes_the_adc_clipped() -> None:
    """An ADC range far below the MVM's (out_bound 0.05 of full scale): most codes clip at -128 or 127; fitted on
    them the line would flatten. Only the unclipped ones count: the identity again."""
    net = AnalogNetwork.build(_model(), XC, seed=0, tile=TileParams.ideal(out_bound=0.05), digital=())
    cal = net.cal["0"]
    assert np.mean((cal.x_cal == -128) | (cal.x_cal == 127)) > 0.5
    np.testing.assert_allclose(cal.alpha, 1.0, atol=0.05)
    np.testing.assert_allclose(cal.beta, 0.0, atol=0.3)


class _Dead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(24, 6), nn.Linear(6, 3)
        with torch.no_grad():
            self.a.weight[2:4] = 0.0      # two dead columns: no signal to fit
            self.a.bias[2:4] = 0.0
            self.b.weight.zero_()         # a dead layer: its outputs are all zero
            self.b.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)))


def test_dead_columns_and_layers_get_unit_gain_and_unit_steps() -> None:
    """Nothing to measure: the documented fallbacks (gain 1, steps and ADC range 1.0), never a division by 0."""
    net = AnalogNetwork.build(_Dead().eval(), XC, seed=0, tile=TileParams.ideal(), digital=())
    a, b = net.cal["a"], net.cal["b"]
    assert a.alpha[2] == a.alpha[3] == 1.0 and a.beta[2] == a.beta[3] == 0.0
    assert b.out_bound == 1.0 and b.step_out == 1.0 and (b.alpha == 1.0).all()
    zero = AnalogNetwork.build(_Dead().eval(), XC * 0, seed=0, tile=TileParams.ideal(), digital=())
    assert zero.cal["a"].step_in == 1.0
    out, _ = net.run(XC, NMPUConfig(), "fixed")
    assert torch.isfinite(out).all() and (out == 0).all()


def test_calibration_noise_is_drawn_per_seed_layer_and_use() -> None:
    """With output noise, the calibration's reads differ between seeds, between two layers with the same weights and
    between two uses of one matrix on the same input (tests/model/test_network.py has the model)."""
    from .test_network import _Twins

    tile = TileParams(device=None, adc_gain_std=0.0, adc_offset_std=0.0)
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(5))
    n0 = AnalogNetwork.build(_Twins().eval(), x, seed=0, tile=tile)
    n1 = AnalogNetwork.build(_Twins().eval(), x, seed=1, tile=tile)
    differ = lambda u, v: np.mean(u != v) > 0.2          # noqa: E731
    assert differ(n0.cal["a"].x_cal, n0.cal["b"].x_cal)
    assert differ(n0.cal["a"].x_cal, n1.cal["a"].x_cal)
    s = n0.cal["s"].x_cal
    assert s.shape == (128, 8) and differ(s[:64], s[64:])


class _SharedConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(4)
        self.a, self.c, self.out = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.Linear(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.c(torch.relu(self.c(torch.relu(self.a(x))))))
        return self.out(h.flatten(1))


@pytest.mark.parametrize("digital", [("first", "last"), ("first",)])
def test_a_convolution_used_twice_runs_as_the_float_model_within_quantization(digital) -> None:
    """Followed by a digital layer, and by an analog one calibrated on the codes the shared convolution's second
    use hands on (in the layout of a convolution's output)."""
    x = torch.rand(48, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    model = _SharedConv().eval()
    net = AnalogNetwork.build(model, x, tile=TileParams.ideal(), digital=digital)
    assert [(l.name, l.uses) for l in net.layers if not l.digital][0] == ("c", 2)
    assert net.cal["c"].x_cal.shape == (2 * 48 * 16, 4)           # both uses' output positions
    out, _ = net.run(x, NMPUConfig(), "fixed")
    ref = model(x).detach()
    assert float((out - ref).norm() / ref.norm()) < 0.05          # measured 0.009 and 0.012


def test_calibration_codes_kept_are_a_seeded_subsample_of_8192_rows() -> None:
    x = torch.rand(160, 1, 8, 8, generator=torch.Generator().manual_seed(3))     # 10,240 output positions
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.Flatten(),
                          nn.Linear(256, 2)).eval()
    a = AnalogNetwork.build(model, x, seed=3, tile=TileParams.ideal(), digital=("first", "last"))
    b = AnalogNetwork.build(model, x, seed=3, tile=TileParams.ideal(), digital=("first", "last"))
    assert a.cal["2"].x_cal.shape == (8192, 4) and np.array_equal(a.cal["2"].x_cal, b.cal["2"].x_cal)
