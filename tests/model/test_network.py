"""Network execution on tiles: calibration, post-processors, hooks, seeds, residual adds."""
import numpy as np
import pytest
import torch
from torch import nn

from nmpu_model import NMPUConfig, apply
from nmpu_model.analog.tiles import TileParams
from nmpu_model.golden.formats import Fmt
from nmpu_model.network.analog_network import AnalogNetwork, replay
from nmpu_model.workloads.models import resnet9


def _small_cnn(seed=0):
    torch.manual_seed(seed)
    m = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(128, 32), nn.ReLU(), nn.Linear(32, 10))
    for bn in (m[1], m[4]):  # trained-looking statistics, some negative BN scales
        n = bn.num_features
        bn.running_mean.copy_(torch.randn(n) * 0.1)
        bn.running_var.copy_(torch.rand(n) + 0.5)
        bn.weight.data.copy_(torch.randn(n))
        bn.bias.data.copy_(torch.randn(n) * 0.1)
    return m.eval()


X = torch.rand(96, 1, 8, 8, generator=torch.Generator().manual_seed(1))
XCAL, XTEST = X[:64], X[64:]
CFG = NMPUConfig()


@pytest.fixture(scope="module")
def net():
    # rows = 64, cols = 16: the 128 x 32 linear spans 2 x 2 tiles
    return AnalogNetwork.build(_small_cnn(), XCAL, seed=3, t=3600.0, tile=TileParams(rows=64, cols=16))


def test_layers_marked_and_split(net):
    assert net.analog_layers == ["3", "8"]
    assert [l.digital for l in net.layers] == [True, False, False, True]
    assert net.programmed["8"].n_row_tiles == 2 and net.programmed["8"].n_col_tiles == 2


def test_fixed_layer_output_is_the_golden_model_on_the_same_codes(net):
    _, tr = net.run(XTEST, CFG, "fixed", record=True)
    for name, lt in tr.items():
        lc = lt.coeffs
        assert lt.adc_codes.dtype == np.int64
        assert CFG.out_frac_min <= lc.out_frac <= CFG.out_frac_max
        ref = apply(lt.adc_codes, lc.config, lc.codes, "fixed", lc.out_frac)
        np.testing.assert_array_equal(lt.out_codes, ref)
        # the coefficients are codes of the configured formats
        assert lc.codes["scale"].min() >= CFG.scale.min and lc.codes["scale"].max() <= CFG.scale.max
        assert lc.codes["offset"].min() >= CFG.offset.min and lc.codes["offset"].max() <= CFG.offset.max


def test_float_posts_use_the_real_coefficients_and_the_same_tile_outputs(net):
    traces = {p: net.run(XTEST, CFG, p, record=True)[1] for p in ("fp32", "fp16", "fixed")}
    first = net.analog_layers[0]
    # the first analog layer sees the same upstream: identical ADC codes for all three
    a = traces["fp32"][first].adc_codes
    assert np.array_equal(a, traces["fp16"][first].adc_codes) and np.array_equal(a, traces["fixed"][first].adc_codes)
    for p in ("fp32", "fp16"):
        for name, lt in traces[p].items():
            ref = apply(lt.adc_codes, lt.coeffs.config, lt.coeffs.real, p, lt.coeffs.out_frac)
            np.testing.assert_array_equal(lt.out_codes, ref)
    # fixed and fp32 agree to within a few output codes on the same ADC codes
    f32 = traces["fp32"][first].out_codes
    fx = apply(a, traces["fixed"][first].coeffs.config, traces["fixed"][first].coeffs.codes, "fixed",
               traces["fixed"][first].coeffs.out_frac)
    assert np.abs(f32 - fx).max() <= 3 and np.mean(f32 != fx) < 0.3


def test_hook_and_heterogeneous_mapping(net):
    calls = []

    def rtl_standin(codes, coeffs, out_frac):
        calls.append((codes.shape, sorted(coeffs), out_frac))
        return apply(codes, net.coefficients(CFG)["8"].config, coeffs, "fixed", out_frac)

    ref, _ = net.run(XTEST, CFG, "fixed")
    got, tr = net.run(XTEST, CFG, "fixed", per_layer={"8": rtl_standin}, record=True)
    assert torch.equal(ref, got)
    assert calls == [((32, 32), ["offset", "scale"], net.coefficients(CFG)["8"].out_frac)]
    mixed, tr = net.run(XTEST, CFG, "fixed", per_layer={"3": "fp16"}, record=True)
    assert tr["3"].post == "fp16" and tr["8"].post == "fixed"
    with pytest.raises(ValueError, match="not an analog layer"):
        net.run(XTEST, CFG, per_layer={"0": "fp16"})
    with pytest.raises(ValueError, match="post-processor"):
        net.run(XTEST, CFG, "fp8")
    with pytest.raises(ValueError, match="integer codes"):
        net.run(XTEST, CFG, per_layer={"8": lambda c, k, f: c * 0.5})


def test_replay_reproduces_the_recorded_post_processing(net):
    _, tr = net.run(XTEST, CFG, "fixed", record=True)
    out = replay(tr, net, CFG, "fixed")
    for name, lt in tr.items():
        np.testing.assert_array_equal(out[name], lt.out_codes)
    # a coarser scale format changes the outputs of the same codes
    coarse = CFG.with_fields(scale=Fmt(4, 3, False))
    out4 = replay(tr, net, coarse, "fixed")
    assert any(not np.array_equal(out4[n], tr[n].out_codes) for n in tr)


def test_seeds_reproduce_bits():
    a = AnalogNetwork.build(_small_cnn(), XCAL, seed=5, t=86400.0)
    b = AnalogNetwork.build(_small_cnn(), XCAL, seed=5, t=86400.0)
    c = AnalogNetwork.build(_small_cnn(), XCAL, seed=6, t=86400.0)
    ra, ta = a.run(XTEST, CFG, "fixed", record=True)
    rb, tb = b.run(XTEST, CFG, "fixed", record=True)
    rc, tc = c.run(XTEST, CFG, "fixed", record=True)
    assert torch.equal(ra, rb)
    for n in ta:
        assert np.array_equal(ta[n].adc_codes, tb[n].adc_codes)
    assert not np.array_equal(ta["3"].adc_codes, tc["3"].adc_codes)
    # at() gives the same bits as building at that time
    d = AnalogNetwork.build(_small_cnn(), XCAL, seed=5, t=1.0).at(86400.0)
    assert torch.equal(d.run(XTEST, CFG, "fixed")[0], ra)


def test_calibration_removes_injected_gain_and_offset_mismatch():
    torch.manual_seed(0)
    lin = nn.Linear(64, 16)
    model = nn.Sequential(lin).eval()
    tile = TileParams(device=None, out_noise=0.0, adc_gain_std=0.2, adc_offset_std=8.0)
    xc = torch.randn(256, 64, generator=torch.Generator().manual_seed(2))
    xt = torch.randn(128, 64, generator=torch.Generator().manual_seed(3))
    net = AnalogNetwork.build(model, xc, seed=1, tile=tile, digital=())
    cal = net.cal["0"]
    p = net.programmed["0"]
    # the fitted line is the injected ADC gain and offset
    assert np.abs(cal.alpha - p.adc_gain[0].numpy()).max() < 0.01
    assert np.abs(cal.beta - p.adc_offset[0].numpy()).max() < 0.3
    assert np.abs(p.adc_gain[0].numpy() - 1).max() > 0.2 and np.abs(p.adc_offset[0].numpy()).max() > 8
    out, tr = net.run(xt, CFG, "fp32", record=True)
    # independent reference: the float layer on the DAC-quantized inputs, in output codes
    u = torch.clamp(torch.round(xt / cal.step_in), -128, 127) * cal.step_in
    ref = (lin(u) / cal.step_out).detach().numpy()
    got = out.numpy() / cal.step_out
    # where neither the ADC (range set without knowing the gain) nor the output saturates
    ok = (np.abs(tr["0"].adc_codes) < 127) & (np.abs(ref) < 127)
    assert ok.mean() > 0.95
    err = np.abs(got - ref)[ok]
    assert err.max() < 1.6 and err.mean() < 0.6
    # without the correction (gain 1, offset 0) the same codes are far off
    lsb = cal.out_bound / 127
    naive = (tr["0"].adc_codes * (p.col_scale * 127 * cal.step_in * lsb).numpy() + cal.bias) / cal.step_out
    assert np.abs(naive - ref).max() > 10


def test_negative_bn_scale_moves_into_the_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 8), nn.Linear(8, 12, bias=False), nn.BatchNorm1d(12), nn.ReLU(),
                          nn.Linear(12, 3)).eval()
    bn = model[2]
    bn.weight.data.copy_(torch.tensor([1.0, -1.0] * 6))
    bn.running_var.fill_(0.5)
    xc = torch.randn(256, 20, generator=torch.Generator().manual_seed(4))
    net = AnalogNetwork.build(model, xc, tile=TileParams.ideal())
    p = net.programmed["1"]
    assert p.col_sign.tolist() == [1.0, -1.0] * 6
    lc = net.coefficients(CFG)["1"]
    assert (lc.real["scale"] >= 0).all() and (lc.codes["scale"] > 0).all()
    out, _ = net.run(xc, CFG, "fixed")
    ref = model(xc).detach()
    assert float(torch.corrcoef(torch.stack([out.flatten(), ref.flatten()]))[0, 1]) > 0.99


def test_bn_stage_config_runs_bit_accurately():
    cfg = NMPUConfig(bn_stage=True, bn_scale=Fmt(8, 6, True), bn_offset=Fmt(8, 2, True),
                     mid=Fmt(12, 6, True, "RND", "SAT"))
    net = AnalogNetwork.build(_small_cnn(), XCAL, seed=0, tile=TileParams(rows=64))
    out, tr = net.run(XTEST, cfg, "fixed", record=True)
    ref_out, _ = net.run(XTEST, CFG, "fp32")
    for lt in tr.values():
        ref = apply(lt.adc_codes, lt.coeffs.config, lt.coeffs.codes, "fixed", lt.coeffs.out_frac)
        np.testing.assert_array_equal(lt.out_codes, ref)
    assert float(torch.corrcoef(torch.stack([out.flatten(), ref_out.flatten()]))[0, 1]) > 0.95


def test_resnet9_with_residual_adds_runs_on_tiles():
    from .test_graph import _init

    torch.manual_seed(0)
    model = _init(resnet9(width=4))   # batch norms that are not the identity: every layer has offsets to apply
    x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    net = AnalogNetwork.build(model, x[:4], tile=TileParams.ideal(rows=64, cols=64))
    assert len(net.analog_layers) == 7  # 8 convs + 1 linear, first and last digital
    out, tr = net.run(x, CFG, "fixed", record=True)
    assert all(np.abs(lt.coeffs.codes["offset"]).max() > 16 for lt in tr.values())
    ref = model(x).detach()
    assert out.shape == ref.shape == (6, 10)
    # noise-free tiles: the error is the DAC/ADC/output quantization, measured 0.0218 (limit 1.3x); a gain
    # error of one out_frac bit gives ~0.3 (a correlation would not see it)
    assert float((out - ref).norm() / ref.norm()) < 0.0284


def test_config_that_does_not_match_the_tiles_is_refused(net):
    with pytest.raises(ValueError, match="adc_bits"):
        net.run(XTEST, CFG.with_fields(adc_bits=6))
    with pytest.raises(ValueError, match="unknown digital layer"):
        AnalogNetwork.build(_small_cnn(), XCAL, digital=("nope",))


def test_unsigned_output_format_drives_an_unsigned_dac():
    cfg = NMPUConfig(output=Fmt(8, 0, False, "RND", "SAT"))
    net = AnalogNetwork.build(_small_cnn(), XCAL, seed=0, tile=TileParams(dac_signed=False))
    _, tr = net.run(XTEST, cfg, "fixed", record=True)
    for lt in tr.values():
        assert lt.out_codes.min() >= 0 and lt.out_codes.max() <= 255
        np.testing.assert_array_equal(
            lt.out_codes, apply(lt.adc_codes, lt.coeffs.config, lt.coeffs.codes, "fixed", lt.coeffs.out_frac))
    assert max(lt.out_codes.max() for lt in tr.values()) > 127  # the extra bit is used
    with pytest.raises(ValueError, match="dac_signed=False"):
        AnalogNetwork.build(_small_cnn(), XCAL).run(XTEST, cfg)


def test_capture_records_every_analog_layer():
    from nmpu_model.network.analog_network import capture

    net, out, tr = capture(_small_cnn(), XTEST, XCAL, CFG, seed=2, t=1.0)
    assert list(tr) == net.analog_layers and out.shape == (32, 10)
    assert tr["3"].adc_codes.shape == (32 * 64, 8) and tr["8"].adc_codes.shape == (32, 32)


def test_batch_size_changes_nothing_and_progress_counts_images(net):
    """The output noise of an input row is drawn by its index: any batching gives the same codes; the
    progress callback sees every image once. (The digital float32 layers are torch's: a batch of one
    image may round differently there, by an ulp, as the float model does.)"""
    ref, tr_ref = net.run(XTEST, CFG, "fixed", record=True)
    seen = []
    for bs in (1, 7, 32):
        out, tr = net.run(XTEST, CFG, "fixed", record=True, batch_size=bs, progress=seen.append)
        if bs > 1:
            assert torch.equal(out, ref)
        torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)
        for name in tr_ref:
            assert np.array_equal(tr[name].adc_codes, tr_ref[name].adc_codes)
            assert np.array_equal(tr[name].out_codes, tr_ref[name].out_codes)
    assert sum(seen) == 3 * len(XTEST) and max(seen) == 32
    # a subset's rows are numbered from its own start: its noise is another draw than the whole's
    name = next(iter(tr_ref))
    _, tr_sub = net.run(XTEST[5:], CFG, "fixed", record=True)
    per_image = len(tr_ref[name].adc_codes) // len(XTEST)
    assert not np.array_equal(tr_sub[name].adc_codes, tr_ref[name].adc_codes[5 * per_image:])


# ---- against independent references ------------------------------------------------------------------
def _spec_config(relu: bool):
    """The default configuration as docs/datapath.md's table writes it, as plain attributes (not NMPUConfig)."""
    from types import SimpleNamespace as NS

    def fmt(bits, frac, signed, rounding="TRN", overflow="WRAP"):
        f = NS(bits=bits, frac=frac, signed=signed, rounding=rounding, overflow=overflow, pre_truncate=0)
        f.with_frac = lambda fr: fmt(bits, fr, signed, rounding, overflow)
        return f

    return NS(scale=fmt(8, 7, False), offset=fmt(8, 1, True), output=fmt(8, 0, True, "RND", "SAT"),
              bn_stage=False, relu=relu)


def test_every_analog_layer_is_the_documented_unit_on_its_codes(net):
    """Per layer: the coefficient codes are the real coefficients of the documented formula (from the
    layer's calibration) rounded to the nearest code of the spec's formats, and every output code is
    the spec's datapath (an exact Fraction reference) of its ADC code, in the spec's default formats."""
    from fractions import Fraction

    from .reference import apply_ref

    _, tr = net.run(XTEST, CFG, "fixed", record=True)
    rng = np.random.default_rng(0)
    relu = {l.name: l.relu for l in net.layers}
    for name, lt in tr.items():
        cal, lc = net.cal[name], lt.coeffs
        assert net.gdc[name] == pytest.approx(cal.readout_cal / net.states[name].readout, rel=1e-12)
        f = lc.out_frac
        kappa = 1.0 / (cal.step_out * 2.0 ** f)
        s = kappa * cal.g * cal.A0 * net.gdc[name]
        o = kappa * (cal.g * cal.bias + cal.h) - s * cal.beta
        np.testing.assert_allclose(lc.real["scale"], s, rtol=1e-12)
        np.testing.assert_allclose(lc.real["offset"], o, rtol=1e-12, atol=1e-12)
        for k, v, lo, hi, frac in (("scale", s, 0, 255, 7), ("offset", o, -128, 127, 1)):
            want = [min(max(round(Fraction(float(e)) * 2 ** frac), lo), hi) for e in v]
            assert lc.codes[k].tolist() == want, (name, k)
        assert np.abs(lc.codes["offset"]).max() > 0  # the offset path runs
        spec = _spec_config(relu[name])
        rows = rng.integers(0, lt.adc_codes.shape[0], 300)
        cols = rng.integers(0, lt.adc_codes.shape[1], 300)
        for r, c in zip(rows, cols):
            want = apply_ref(int(lt.adc_codes[r, c]), int(lc.codes["scale"][c]), int(lc.codes["offset"][c]), spec, f)
            assert lt.out_codes[r, c] == want, (name, r, c)


def test_on_ideal_tiles_the_network_is_the_float_model_within_quantization():
    """Noise-free tiles: what is left is the 8-bit DAC, ADC and output quantization. Relative error
    ||out - model(x)|| / ||model(x)||, measured 0.0051 (fixed), 0.0047 (fp16, fp32); limit 1.3x. A gain one
    out_frac bit off gives 0.32, zeroed offsets 0.45, truncating outputs (TRN) 0.0089, wrapping ones 0.025."""
    model = _small_cnn()
    x = torch.rand(256, 1, 8, 8, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        ref = model(x)
    net = AnalogNetwork.build(model, XCAL, seed=3, tile=TileParams.ideal(rows=64, cols=16))
    for post, limit in (("fixed", 0.0066), ("fp16", 0.0061), ("fp32", 0.0061)):
        out, _ = net.run(x, CFG, post)
        assert float((out - ref).norm() / ref.norm()) < limit, post
    # drift: global drift compensation keeps a year-old PCM network near the float model (measured
    # 0.095 after a year against 0.051 after an hour)
    pcm = AnalogNetwork.build(model, XCAL, seed=3, t=3.15e7, tile=TileParams(rows=64, cols=16))
    out, _ = pcm.run(x, CFG, "fixed")
    assert float((out - ref).norm() / ref.norm()) < 0.13


class _Twins(nn.Module):
    """Two layers with the same weights on the same input, and a matrix used twice on the same input: on tiles
    without device noise or ADC mismatch, only the output noise tells their ADC codes apart."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(11)
        self.f, self.a, self.b, self.s = nn.Linear(16, 8), nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)
        self.b.load_state_dict(self.a.state_dict())
        self.o = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.f(x))
        return self.o(torch.cat([self.a(h), self.b(h), self.s(h), self.s(h)], -1))


def test_output_noise_is_drawn_per_seed_layer_read_time_and_use():
    tile = TileParams(device=None, adc_gain_std=0.0, adc_offset_std=0.0)     # output noise only
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(5))
    model = _Twins().eval()

    def adc(seed, t):
        net = AnalogNetwork.build(model, x, seed=seed, t=t, tile=tile)
        assert net.analog_layers == ["a", "b", "s"] and net.cal["a"].step_in == net.cal["b"].step_in
        return net.run(x, CFG, "fixed", record=True)[1]

    tr = adc(0, 60.0)
    a, b, s = tr["a"].adc_codes, tr["b"].adc_codes, tr["s"].adc_codes
    assert np.array_equal(adc(0, 60.0)["a"].adc_codes, a)                 # the same seed: the same bits
    differ = lambda u, v: np.mean(u != v) > 0.2                          # noqa: E731
    assert differ(a, b)                                                  # two layers: two draws
    assert s.shape == (128, 8) and differ(s[:64], s[64:])                # two uses of one matrix: two draws
    assert differ(adc(1, 60.0)["a"].adc_codes, a)                        # another seed
    assert differ(adc(0, 120.0)["a"].adc_codes, a)                       # another read time (no drift here)


def test_relu_without_the_units_relu_stage_is_applied_after_it(net):
    cfg = NMPUConfig(relu=False)
    _, tr = net.run(XTEST, cfg, "fixed", record=True)
    relu = {l.name: l.relu for l in net.layers}
    assert all(relu[n] for n in tr)
    for name, lt in tr.items():
        lc = lt.coeffs
        y = apply(lt.adc_codes, lc.config, lc.codes, "fixed", lc.out_frac)
        assert (y < 0).mean() > 0.1                                        # the unit itself lets negatives out
        assert np.array_equal(lt.out_codes, np.maximum(y, 0)), name


def test_the_trace_names_its_layers_and_post_processors(net):
    import functools

    def my_unit(codes, coeffs, out_frac):
        return apply(codes, CFG, coeffs, "fixed", out_frac).astype(np.int32)

    layers = net.analog_layers
    assert len(layers) == 2
    _, tr = net.run(XTEST[:4], CFG, "fixed", per_layer={layers[0]: my_unit, layers[1]: functools.partial(my_unit)},
                    record=True)
    assert [(n, tr[n].name, tr[n].post) for n in layers] == [(layers[0], layers[0], "my_unit"),
                                                              (layers[1], layers[1], "callable")]
    assert all(tr[n].out_codes.dtype == np.int64 and tr[n].adc_codes.dtype == np.int64 for n in layers)
    _, tr16 = net.run(XTEST[:4], CFG, "fp16", per_layer={layers[1]: "fixed"}, record=True)
    assert [tr16[n].post for n in layers] == ["fp16", "fixed"]
    # a user's post-processor's codes come back as int64 whatever integer type it returned
    assert replay(tr, net, CFG, my_unit)[layers[0]].dtype == np.int64


def test_a_linear_layer_on_tokens_keeps_their_axis():
    """(samples, tokens, features) inputs: a linear layer on tiles maps the last axis, as the float model does."""
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    x = torch.randn(40, 5, 6, generator=torch.Generator().manual_seed(9))
    net = AnalogNetwork.build(model, x, tile=TileParams.ideal(), digital=())
    out, tr = net.run(x, CFG, "fixed", record=True)
    ref = model(x).detach()
    assert out.shape == ref.shape == (40, 5, 3) and tr["2"].adc_codes.shape == (200, 16)
    assert float((out - ref).norm() / ref.norm()) < 0.05


@pytest.mark.parametrize("comp", ["column", "global-onehot"])
def test_drift_compensation_from_the_calibration_readouts(comp):
    """Per column (or the columns' mean): the readout at calibration over the readout at the read time."""
    net = AnalogNetwork.build(_small_cnn(), XCAL, seed=1, t=86400.0, tile=TileParams(drift_compensation=comp))
    for name in net.analog_layers:
        base = np.asarray(net.cal[name].readout_cal_columns, np.float64)
        now = net.states[name].readout_columns.double().numpy()
        assert base.shape == now.shape == (net.programmed[name].target.shape[1],)
        want = base / now if comp == "column" else base.mean() / now.mean()
        np.testing.assert_allclose(net.gdc[name], want, rtol=1e-12)
        assert np.ptp(base / now) > 0 and (np.abs(want - 1) > 1e-3).all()        # a day of drift, unequal columns


def test_run_refusals_and_what_it_returns(net):
    out, tr = net.run(XTEST[:2], CFG)
    assert tr is None and out.shape == (2, 10)                  # no trace unless asked for
    layers = ", ".join(net.analog_layers)
    for kw, msg in (({"per_layer": {"nope": "fixed"}}, f"per_layer: 'nope' is not an analog layer (analog: {layers})"),
                    ({"post": "fp8"}, "post-processor must be one of fixed, fp16, fp32 or a callable, not 'fp8'"),
                    ({"batch_size": 0}, "batch_size must be >= 1, not 0")):
        with pytest.raises(ValueError) as e:
            net.run(XTEST[:2], CFG, **kw)
        assert str(e.value) == msg
    unsigned = AnalogNetwork.build(_small_cnn(), XCAL, seed=0, tile=TileParams(dac_signed=False))
    with pytest.raises(ValueError) as e:
        unsigned.run(XTEST, CFG)
    assert str(e.value) == ("config output ap_fixed<8,8> does not match the tiles' unsigned 8-bit DAC: "
                            "build the network with TileParams(dac_bits=8, dac_signed=True)")
    with pytest.raises(ValueError) as e:
        net.run(XTEST, NMPUConfig(output=Fmt(8, 0, False, "RND", "SAT")))
    assert str(e.value) == ("config output ap_ufixed<8,8> does not match the tiles' signed 8-bit DAC: "
                            "build the network with TileParams(dac_bits=8, dac_signed=False)")
