"""Device models behind one interface: HERMES-fitted PCM against AIHWKit's HermesNoiseModel formulas worked by
hand, per-column drift compensation, and the `--device`/`--compensation` options."""
import math

import numpy as np
import pytest
import torch

from cosim.cli import main
from nmpu_model.analog.devices import device_by_name, device_names
from nmpu_model.analog.hermes import HermesParams
from nmpu_model.analog.pcm import PCMParams
from nmpu_model.analog.tiles import TileParams, program_layer

# AIHWKit 1.2 HermesNoiseModel (src/aihwkit/inference/noise/hermes.py), two devices per conductance, worked by hand:
# programming std (0.16603222 + 4.71806468 x - 8.48101252 x^2 + 4.68961419 x^3) uS at g_max = 20.7 uS
PROG_2 = {0.5: 0.16603222 + 4.71806468 * 0.5 - 8.48101252 * 0.25 + 4.68961419 * 0.125,      # 0.99101
          1.0: 0.16603222 + 4.71806468 - 8.48101252 + 4.68961419}                           # 1.09270


def _column(value: float, n: int) -> torch.Tensor:
    """One column: its first weight 1 (mapped to g_max), the other n - 1 at ``value`` of it."""
    w = torch.full((n, 1), value, dtype=torch.float64)
    w[0] = 1.0
    return w


@pytest.mark.parametrize("x", [0.5, 1.0])
def test_hermes_programming_noise_follows_the_cubic(x: float) -> None:
    n = 200_000
    layer = program_layer(_column(x, n), TileParams(rows=n, device=HermesParams()), 0, 0)
    g = layer.g_prog_pos[1:].double()
    assert abs(float(g.std()) / PROG_2[x] - 1) < 0.02
    # the mean: 20.7 x (clipping at 0 is 10 sigma away); 3 standard errors
    assert abs(float(g.mean()) - 20.7 * x) < 3 * PROG_2[x] / math.sqrt(n)


@pytest.mark.parametrize("x, num_devices, mu, sd", [
    (1.0, 2, -0.0436 - 0.0126 + 0.0736, -0.0118 + 0.0093 + 0.0073),                       # above both breaks
    (0.05, 2, -0.0387 * math.log(0.05) - 0.0182, -0.0117 * math.log(0.05) - 0.0057),     # below both
    (0.05, 1, -0.0387 * math.log(0.05) - 0.0182, -0.0120 * math.log(0.05) - 0.0023),
    (0.5, 1, -0.0436 * 0.25 - 0.0126 * 0.5 + 0.0736, -0.0165 * 0.25 + 0.0116 * 0.5 + 0.0104),
])
def test_hermes_drift_exponent_mean_and_spread(x: float, num_devices: int, mu: float, sd: float) -> None:
    n = 200_000
    dev = HermesParams(num_devices=num_devices, prog_noise_scale=0.0)
    nu = program_layer(_column(x, n), TileParams(rows=n, device=dev), 0, 0).nu_pos[1:].double()
    # nu = |N(mu, sd)|: the folded normal's mean and std
    phi = 0.5 * (1 + math.erf(-mu / (sd * math.sqrt(2))))
    mean = sd * math.sqrt(2 / math.pi) * math.exp(-mu * mu / (2 * sd * sd)) + mu * (1 - 2 * phi)
    std = math.sqrt(mu * mu + sd * sd - mean * mean)
    assert abs(float(nu.mean()) - mean) < 4 * std / math.sqrt(n)
    assert abs(float(nu.std()) / std - 1) < 0.02


@pytest.mark.parametrize("g, num_devices, q", [
    (0.1, 2, -0.0117 * math.log(0.1) - 0.0069),                   # 0.02004
    (0.01, 2, 0.04),                                             # the log branch clipped at its top
    (0.5, 2, 0.0069 * 0.125 - 0.0280 * 0.25 + 0.0211 * 0.5 + 0.0123),
    (1.0, 1, 0.0664 - 0.1352 + 0.0768 + 0.0088),
    (0.1, 1, max(-0.0078 * math.log(0.1) + 0.0038, 0.0179)),    # 0.0218
])
def test_hermes_read_noise_factor(g: float, num_devices: int, q: float) -> None:
    dev = HermesParams(num_devices=num_devices)
    got = dev.read_noise_factor(torch.tensor([g * dev.g_max], dtype=torch.float32))
    assert float(got[0]) == pytest.approx(q, rel=1e-5)


def test_hermes_read_noise_and_drift_at_a_time() -> None:
    """Programming noise off: devices at g_max drift by ((t + t0) / t0)^-nu and carry 1/f noise of relative std
    q_s sqrt(ln((t + t0 + t_read) / (2 t_read))), q_s(1) = 0.0123, t0 = 300 s, t_read = 512 ns."""
    n, t = 100_000, 86400.0
    dev = HermesParams(prog_noise_scale=0.0)
    layer = program_layer(torch.ones(n, 1, dtype=torch.float64), TileParams(rows=n, device=dev), 3, 0)
    nu = layer.nu_pos.double()[:, 0]
    drifted = ((t + 300.0) / 300.0) ** -nu
    w = layer.at(t).weights.double()[:, 0]
    rel = (w / drifted - 1)
    spread = 0.0123 * math.sqrt(math.log((t + 300.0 + 512e-9) / (2 * 512e-9)))
    assert abs(float(rel.std()) / spread - 1) < 0.02 and abs(float(rel.mean())) < 4 * spread / math.sqrt(n)


def test_hermes_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="num_devices must be 1 or 2"):
        HermesParams(num_devices=3)
    with pytest.raises(ValueError, match=r"g_max must be in \(0, 10.35\] uS for 1 device"):
        HermesParams(num_devices=1, g_max=20.7)
    assert (HermesParams().g_max, HermesParams().t0) == (20.7, 300.0)
    assert (HermesParams(num_devices=1).g_max, HermesParams(num_devices=1).t0) == (10.35, 200.0)
    with pytest.raises(ValueError, match="TileParams.device must be a device model"):
        TileParams(device="hermes")
    with pytest.raises(ValueError, match="drift compensation must be one of global, global-onehot, column"):
        TileParams(drift_compensation="per-column")


def test_device_names_and_same_seed_same_bits() -> None:
    assert device_names() == ("pcm", "hermes", "hermes-1", "rram")
    assert device_by_name("pcm") == PCMParams() and device_by_name("hermes-1") == HermesParams(num_devices=1)
    with pytest.raises(ValueError, match="--device must be one of pcm, hermes, hermes-1, rram"):
        device_by_name("reram")
    w = torch.from_numpy(np.random.default_rng(2).normal(size=(300, 20)))
    tp = TileParams(device=HermesParams())
    a, b = (program_layer(w, tp, 5, 1).at(3600.0).weights for _ in range(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, program_layer(w, TileParams(), 5, 1).at(3600.0).weights)     # another model


def test_per_column_compensation_restores_each_column() -> None:
    """Two columns that drift apart (HERMES: devices at 90% of g_max drift with nu ~ 0.02, devices at 5% of it
    with nu ~ 0.098): one global factor cannot undo both after a year; one factor per column brings each column's
    mean |w| back to its value at programming, and each column's MVM close to the ideal."""
    n = 256
    w = torch.cat([_column(0.9, n), _column(0.05, n)], dim=1)
    u = torch.ones(8, n) * 100
    errs = {}
    for comp in ("global", "column"):
        dev = HermesParams(prog_noise_scale=0.0, read_noise_scale=0.0)
        layer = program_layer(w, TileParams(rows=n, device=dev, drift_compensation=comp), 0, 0)
        base, st = layer.at_programming(), layer.at(31536000.0)
        gdc = layer.compensation(base.readout, base.readout_columns, st)
        y = layer.currents(u, st).double() * torch.as_tensor(gdc)
        ideal = layer.currents(u, base).double()
        errs[comp] = (y / ideal - 1).abs().mean(dim=0)
        if comp == "column":
            assert torch.allclose(st.readout_columns * torch.as_tensor(gdc), base.readout_columns, rtol=1e-12)
    # AIHWKit's GlobalDriftCompensation: one factor, mean |w| over the layer at programming over the same now
    onehot = program_layer(w, TileParams(rows=n, device=HermesParams(prog_noise_scale=0.0, read_noise_scale=0.0),
                                         drift_compensation="global-onehot"), 0, 0)
    b, st = onehot.at_programming(), onehot.at(31536000.0)
    want = float(b.weights.double().abs().mean() / st.weights.double().abs().mean())
    assert onehot.compensation(b.readout, b.readout_columns, st) == pytest.approx(want, rel=1e-6)   # float32 w
    assert (errs["column"] < 0.01).all()          # each column's own drift undone (nu's spread remains)
    # one factor, set by the larger column's readout: it is ~3% off, the small column's drift (~45%) stays
    assert (errs["global"] > 2 * errs["column"]).all() and errs["global"].max() > 0.3


def test_cli_device_and_compensation(tmp_path, capsys) -> None:
    out = tmp_path / "d.json"
    assert main(["devices", "--device", "pcm", "--device", "hermes", "--size", "32", "--inputs", "16", "--drift", "1,3600",
                 "--json", str(out), "--plot", str(tmp_path / "d.png")]) == 0
    text = capsys.readouterr().out
    assert "hermes: AIHWKit HermesNoiseModel, 2 device(s)" in text and (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"
    import json
    doc = json.loads(out.read_text())
    assert set(doc["devices"]) == {"pcm", "hermes"} and [r["t"] for r in doc["devices"]["pcm"]["per_tile"]] == [1, 3600]
    assert main(["devices", "--device", "reram"]) == 2
    assert capsys.readouterr().err.strip() == ("nmpu devices: error: --device must be one of pcm, hermes, hermes-1, "
                                               "rram (optionally NAME:field=value,...), not 'reram'")
    assert main(["eval", "--images", "12", "--seeds", "1", "--drift", "60", "--compensation", "col"]) == 2
    assert "--compensation must be one of global, global-onehot, column, not 'col'" in capsys.readouterr().err
    ev = tmp_path / "e.json"
    assert main(["eval", "--images", "24", "--seeds", "1", "--drift", "60", "--device", "hermes",
                 "--compensation", "column", "--json", str(ev)]) == 0
    res = json.loads(ev.read_text())
    assert res["tiles"].startswith("hermes: AIHWKit HermesNoiseModel") and res["tiles"].endswith("compensation column")


# ---- RRAM -------------------------------------------------------------------------------------------------
from nmpu_model.analog.rram import RRAMParams  # noqa: E402
from nmpu_model.analog.streams import derive_seed  # noqa: E402


def _rram_layer(w: torch.Tensor, seed: int = 0, **kw):
    dev = RRAMParams(**kw)
    return dev, program_layer(w, TileParams(rows=w.shape[0], device=dev), seed, 0)


def test_rram_stuck_rates_measured_back_and_the_fault_map_fixed_per_seed() -> None:
    """Targets at half range: a G+ device at G_on was stuck on, one at G_off stuck off; the rates come back
    within 4 binomial standard deviations, the map is the seed's, and a stuck-on weight reads exactly 1
    (its error 1 - 0.5: the on conductance, not the target), a stuck-off one exactly 0."""
    n, p_on, p_off = 200_000, 0.02, 0.03
    w = torch.full((n, 1), 0.5, dtype=torch.float64)
    w[0] = 1.0
    dev, layer = _rram_layer(w, p_stuck_on=p_on, p_stuck_off=p_off)
    gp = layer.g_prog_pos[1:, 0].double().numpy()
    for p, g in ((p_on, dev.g_on), (p_off, dev.g_off)):
        frac = float(np.mean(gp == np.float32(g)))
        assert abs(frac - p) < 4 * math.sqrt(p * (1 - p) / n), (p, frac)
    wt = layer.at(0.0).weights[1:, 0].double().numpy()
    on, off = gp == np.float32(dev.g_on), gp == np.float32(dev.g_off)
    partner_off = layer.g_prog_neg[1:, 0].numpy() == np.float32(dev.g_off)     # G- not stuck on (target 0)
    assert np.all(wt[on & partner_off] == 1.0) and np.all(wt[off & partner_off] == 0.0)
    assert np.all(wt[~on & ~off & partner_off] == pytest.approx(0.5, abs=1e-6))
    assert np.all(wt[~on & ~off & ~partner_off] == pytest.approx(-0.5, abs=1e-6))   # G- stuck on: 0.5 - 1
    again = _rram_layer(w, p_stuck_on=p_on, p_stuck_off=p_off)[1].g_prog_pos
    other = _rram_layer(w, seed=1, p_stuck_on=p_on, p_stuck_off=p_off)[1].g_prog_pos
    assert torch.equal(again, layer.g_prog_pos) and not torch.equal(other, layer.g_prog_pos)


def test_rram_stuck_device_carries_its_own_on_or_off_conductance() -> None:
    """With device-to-device variability, a stuck device sits at its own 1/R_on,i (or 1/R_off,i), which the
    fault map and the device's lognormal draw say: recomputed here from the streams."""
    from nmpu_model.analog.streams import normals

    n = 4000
    dev, layer = _rram_layer(torch.full((n, 1), 0.5, dtype=torch.float64), d2d_sigma=0.2, p_stuck_on=0.1,
                             p_stuck_off=0.1)
    key = derive_seed(0, 0, "program")
    on, off = dev.stuck(2 * n, key)
    z_on, z_off = np.empty(2 * n), np.empty(2 * n)
    normals(np.uint64(derive_seed(key, "on")), 0, z_on)
    normals(np.uint64(derive_seed(key, "off")), 0, z_off)
    g = torch.cat([layer.g_prog_pos.reshape(-1), layer.g_prog_neg.reshape(-1)]).double().numpy()
    r_on_i, r_off_i = 1e2 * np.exp(0.2 * z_on), 1e4 * np.exp(0.2 * z_off)
    assert on.sum() > 600 and off.sum() > 600
    assert np.allclose(g[on], 1e6 / r_on_i[on], rtol=1e-6) and np.allclose(g[off], 1e6 / r_off_i[off], rtol=1e-6)
    assert abs(float(np.std(np.log(g[on] / 1e4))) / 0.2 - 1) < 0.1          # lognormal spread of R_on


def test_rram_levels_counted_back() -> None:
    n, levels = 20_000, 8
    w = torch.from_numpy(np.random.default_rng(3).uniform(0.0, 1.0, size=(n, 1)))
    w[0] = 1.0
    dev, layer = _rram_layer(w, levels=levels)
    g = np.unique(layer.g_prog_pos.double().numpy())
    assert len(g) == levels
    assert np.allclose(g, 100.0 + np.arange(levels) / (levels - 1) * 9900.0, rtol=1e-6)


def test_rram_relaxation_and_read_noise() -> None:
    n, t = 50_000, 3600.0
    dev, layer = _rram_layer(torch.ones(n, 1, dtype=torch.float64), relaxation=0.02, read_noise=0.03, t0=10.0)
    w = layer.at(t).weights.double()[:, 0]
    # G+ = G_on, G- = G_off: (G_on d - G_off d) / g_max with d the decay; read noise 3% of each, independent
    d = ((t + 10.0) / 10.0) ** -0.02
    sd = 0.03 * d * math.sqrt(1e4 ** 2 + 1e2 ** 2) / 9900
    assert abs(float(w.mean()) - d) < 4 * sd / math.sqrt(n) and abs(float(w.std()) / sd - 1) < 0.02
    assert torch.equal(_rram_layer(torch.ones(4, 1, dtype=torch.float64))[1].at(t).weights,
                       torch.ones(4, 1))                                   # no relaxation, no noise: exact


def test_rram_and_device_spec_errors() -> None:
    assert device_by_name("rram:levels=16,p_stuck_on=0.01") == RRAMParams(levels=16, p_stuck_on=0.01)
    assert device_by_name("hermes:g_max=15").g_max == 15
    for spec, msg in (("rram:foo=1", "'foo=1' is not field=value of"), ("rram:levels=1", "levels must be an integer >= 2"),
                      ("rram:p_stuck_on=0.7,p_stuck_off=0.4", r"p_stuck_on \+ p_stuck_off must be at most 1"),
                      ("pcm:t0=-1", "PCMParams.t0 must be a positive number"), ("rram:levels=x", "levels must be a number")):
        with pytest.raises(ValueError, match=msg):
            device_by_name(spec)
    with pytest.raises(ValueError, match="0 < r_on < r_off"):
        RRAMParams(r_on=1e4, r_off=1e2)


# ---- measured devices ---------------------------------------------------------------------------------------
def _pcm_table(path, n: int = 600) -> None:
    """The PCM preset's statistics written as a characterisation file, at conductances spaced finely near 0 and up
    to 1.5 g_max (programming noise takes a device past g_max)."""
    x = np.concatenate([[0.0], np.geomspace(1e-5, 1.5, n)])
    lx = np.log(np.maximum(x, 1e-7))
    cols = {"g_us": 25.0 * x, "prog_std_us": 0.26348 + 1.9650 * x - 1.1731 * x * x,
            "nu_mean": np.clip(-0.0155 * lx + 0.0244, 0.049, 0.1), "nu_std": np.clip(-0.0125 * lx - 0.0059, 0.008, 0.045),
            "q_s": np.minimum(0.0088 / np.maximum(x ** 0.65, 1e-3), 0.2)}
    lines = [",".join(cols)] + [",".join(repr(float(cols[c][i])) for c in cols) for i in range(len(x))]
    path.write_text("# the PCM preset, tabulated\n" + "\n".join(lines) + "\n")


def test_measured_file_of_the_pcm_polynomials_gives_the_pcm_statistics(tmp_path) -> None:
    """Same seed, same draws: the tabulated model programs and reads every device as the PCM preset does, up to
    the table's interpolation."""
    f = tmp_path / "pcm.csv"
    _pcm_table(f)
    assert device_by_name(str(f)).g_max == 37.5                 # the largest conductance of the table
    dev = device_by_name(f"{f}:g_max=25")
    assert dev.g_max == 25.0 and dev.t0 == 20.0
    w = torch.from_numpy(np.random.default_rng(8).normal(size=(500, 64)))
    a = program_layer(w, TileParams(device=PCMParams()), 4, 2)
    b = program_layer(w, TileParams(device=dev), 4, 2)
    assert float((a.g_prog_pos - b.g_prog_pos).abs().max()) < 2e-3            # uS, of up to 25
    assert float((a.nu_neg - b.nu_neg).abs().max()) < 1e-3
    wa, wb = a.at(86400.0).weights, b.at(86400.0).weights
    assert float((wa - wb).abs().max()) < 2e-3 and float(wa.abs().mean()) > 0.1


def test_measured_file_errors(tmp_path) -> None:
    head = "g_us,prog_std_us,nu_mean,nu_std,q_s\n"
    cases = {"missing.csv": ("g_us,prog_std_us,nu_mean,q_s\n0,0.3,0.1,0.2\n1,0.3,0.1,0.2\n", r"missing column\(s\) nu_std"),
             "order.csv": (head + "5,0.3,0.1,0.04,0.2\n2,1,0.05,0.01,0.01\n", r"g_us must increase, but g_us\[1\] = 2"),
             "neg.csv": (head + "0,0.3,0.1,-0.04,0.2\n2,1,0.05,0.01,0.01\n", r"nu_std\[0\] = -0.04 is negative"),
             "text.csv": (head + "0,0.3,x,0.04,0.2\n2,1,0.05,0.01,0.01\n", "line 2, column nu_mean: 'x' is not a number"),
             "one.csv": (head + "0,0.3,0.1,0.04,0.2\n", "at least 2 conductances"),
             "bad.json": ('{"table": {"g_us": [0, 1]}}', r"missing column\(s\) prog_std_us, nu_mean, nu_std, q_s")}
    for name, (text, msg) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=msg):
            device_by_name(str(tmp_path / name))
    (tmp_path / "ok.json").write_text('{"g_max": 20, "t0": 100, "table": {"g_us": [0, 25], "prog_std_us": [0.2, 1], '
                                      '"nu_mean": [0.1, 0.05], "nu_std": [0.02, 0.01], "q_s": [0.04, 0.01]}}')
    dev = device_by_name(str(tmp_path / "ok.json") + ":t_read=1e-6")
    assert (dev.g_max, dev.t0, dev.t_read) == (20, 100, 1e-6)
    assert dev.prog_std(np.array([0.5]))[0] == pytest.approx(0.2 + 0.8 * 10 / 25)      # 10 uS, interpolated
