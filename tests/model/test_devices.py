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
    with pytest.raises(ValueError, match="drift compensation must be one of global, column"):
        TileParams(drift_compensation="per-column")


def test_device_names_and_same_seed_same_bits() -> None:
    assert device_names() == ("pcm", "hermes", "hermes-1")
    assert device_by_name("pcm") == PCMParams() and device_by_name("hermes-1") == HermesParams(num_devices=1)
    with pytest.raises(ValueError, match="--device must be one of pcm, hermes, hermes-1, not 'rram'"):
        device_by_name("rram")
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
    assert (errs["column"] < 0.01).all()          # each column's own drift undone (nu's spread remains)
    # one factor, set by the larger column's readout: it is ~3% off, the small column's drift (~45%) stays
    assert (errs["global"] > 2 * errs["column"]).all() and errs["global"].max() > 0.3


def test_cli_device_and_compensation(tmp_path, capsys) -> None:
    out = tmp_path / "d.json"
    assert main(["devices", "--device", "pcm,hermes", "--size", "32", "--inputs", "16", "--drift", "1,3600",
                 "--json", str(out), "--plot", str(tmp_path / "d.png")]) == 0
    text = capsys.readouterr().out
    assert "hermes: AIHWKit HermesNoiseModel, 2 device(s)" in text and (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"
    import json
    doc = json.loads(out.read_text())
    assert set(doc["devices"]) == {"pcm", "hermes"} and [r["t"] for r in doc["devices"]["pcm"]["per_tile"]] == [1, 3600]
    assert main(["devices", "--device", "rram"]) == 2
    assert capsys.readouterr().err.strip() == ("nmpu devices: error: --device must be one of pcm, hermes, hermes-1, "
                                               "not 'rram'")
    assert main(["eval", "--images", "12", "--seeds", "1", "--drift", "60", "--compensation", "col"]) == 2
    assert "--compensation must be one of global, column, not 'col'" in capsys.readouterr().err
    ev = tmp_path / "e.json"
    assert main(["eval", "--images", "24", "--seeds", "1", "--drift", "60", "--device", "hermes",
                 "--compensation", "column", "--json", str(ev)]) == 0
    res = json.loads(ev.read_text())
    assert res["tiles"].startswith("hermes: AIHWKit HermesNoiseModel") and res["tiles"].endswith("compensation column")
