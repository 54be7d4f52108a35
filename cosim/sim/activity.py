"""Switching activity of a unit's gate-level netlist, measured by simulating it on real network data.

:func:`layer_stimulus` takes one analog layer of a network (its real ADC codes, as the tiles produce
them, and its coefficients); :func:`random_codes` keeps the coefficients and draws the codes uniformly
from the ADC range (the stimulus to compare with). :func:`measure` simulates the netlist with the
library's cell models in the activity testbench (:mod:`cosim.sim.tb.activity`: full throughput, every
output checked against the model), traces it and counts, per net, the toggles per clock cycle and the
fraction of time high while the codes stream. The result is plain data for
:func:`cosim.synth.ppa.power` (OpenSTA ``set_power_activity`` per net).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nmpu_model.golden.config import NMPUConfig

#: samples of the layer streamed through the netlist (x columns / lanes cycles each)
DEFAULT_SAMPLES = 64


@dataclass
class Stimulus:
    """One block of a layer (at most ``rtl.columns`` columns) for the activity testbench."""

    name: str                          # where the data came from, for reports
    codes: np.ndarray                  # (samples, columns) ADC codes
    coef_codes: dict[str, np.ndarray]  # fixed-point coefficient codes per column
    coef_real: dict[str, np.ndarray]   # their real values (the FP16 unit gets them in binary16)
    out_frac: int

    def write(self, path: Path, config: NMPUConfig, unit: str) -> None:
        """The ``.npz`` the testbench reads: codes, and per coefficient the bits written and the model's value."""
        arrays: dict[str, Any] = {"codes": self.codes, "out_frac": np.int64(self.out_frac)}
        for name in config.coef_names:
            if unit == "fp16":
                raw = self.coef_real[name].astype(np.float16).view(np.uint16).astype(np.int64)
                arrays[f"raw_{name}"], arrays[f"value_{name}"] = raw, raw
            else:
                v = self.coef_codes[name].astype(np.int64)
                arrays[f"raw_{name}"], arrays[f"value_{name}"] = v & ((1 << getattr(config, name).bits) - 1), v
        np.savez(path, **arrays)


def layer_stimulus(work: Any, config: NMPUConfig, layer: str | None = None, samples: int = DEFAULT_SAMPLES,
                   seed: int = 0, drift: float = 3600.0, net: Any = None) -> Stimulus:
    """The ADC codes and coefficients of one analog layer of ``work``'s network (``nmpu cosim``'s workload).

    ``layer`` defaults to the first analog layer whose configuration is ``config`` itself (ReLU as the
    unit was built); its first ``rtl.columns`` columns and first ``samples`` output positions are taken.
    """
    import torch

    from nmpu_model import apply
    from nmpu_model.network.analog_network import AnalogNetwork

    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive integer, not {samples!r}")
    tile = work.tile_params(config.adc_bits, config.output.bits, config.output.signed)
    if net is None:             # else the caller's network, built with these arguments
        net = AnalogNetwork.build(work.model, work.x_cal, seed=seed, t=drift, tile=tile, digital=work.digital)
    coeffs = net.coefficients(config)
    same = [n for n in net.analog_layers if coeffs[n].config.identity() == config.identity()]
    if layer is None:
        if not same:
            raise ValueError(f"{work.name}: no analog layer runs on this configuration (ReLU as configured)")
        layer = same[0]
    elif layer not in net.analog_layers:
        raise ValueError(f"{work.name}: no analog layer {layer!r} (analog: {', '.join(net.analog_layers)})")
    elif layer not in same:
        raise ValueError(f"layer {layer}: its ReLU differs from the configuration the unit is built for")
    lc = coeffs[layer]
    seen: list[np.ndarray] = []

    def capture(x: np.ndarray, codes: Any, out_frac: int) -> np.ndarray:
        seen.append(x.copy())
        return apply(x, lc.config, codes, "fixed", out_frac)

    images = 1
    while True:
        seen.clear()
        with torch.no_grad():
            net.run(work.x_test[:images], config, "fixed", per_layer={layer: capture})
        rows = sum(len(x) for x in seen)
        if rows >= samples or images >= len(work.x_test):
            break
        images = min(len(work.x_test), images * 2)
    cols = min(lc.codes["scale"].shape[0], config.rtl.columns)
    L = config.rtl.lanes
    padded = -(-cols // L) * L

    def pad(a: np.ndarray) -> np.ndarray:
        return np.pad(a[..., :cols], [(0, 0)] * (a.ndim - 1) + [(0, padded - cols)])

    codes = pad(np.concatenate(seen)[:samples].astype(np.int64))
    return Stimulus(name=f"{work.name} layer {layer} (seed {seed}, t = {drift:g} s; {len(codes)} samples x "
                         f"{cols} columns)",
                    codes=codes, coef_codes={k: pad(v) for k, v in lc.codes.items()},
                    coef_real={k: pad(np.asarray(v, dtype=np.float64)) for k, v in lc.real.items()},
                    out_frac=int(lc.out_frac))


def random_codes(stim: Stimulus, config: NMPUConfig, seed: int = 0) -> Stimulus:
    """The same coefficients with ADC codes drawn uniformly from the ADC range (the random-code stimulus)."""
    lo, hi = -(1 << (config.adc_bits - 1)), (1 << (config.adc_bits - 1)) - 1
    codes = np.random.default_rng(seed).integers(lo, hi + 1, stim.codes.shape, dtype=np.int64)
    return Stimulus(name=f"uniform random ADC codes (seed {seed}) with the coefficients of {stim.name}",
                    codes=codes, coef_codes=stim.coef_codes, coef_real=stim.coef_real, out_frac=stim.out_frac)


# ---- the VCD -------------------------------------------------------------------------------------
_UNITS = {"s": 10 ** 12, "ms": 10 ** 9, "us": 10 ** 6, "ns": 10 ** 3, "ps": 1, "fs": 10 ** -3}


def toggle_counts(vcd: Path, scope: str, window_ps: tuple[float, float]) -> tuple[dict[str, tuple[int, float]], float]:
    """Per net bit of module ``scope`` (the netlist's top: nets, not the cells' insides), the toggles and
    the time high within ``window_ps``; returns ``({name or name[i]: (toggles, ps high)}, window length)``."""
    ids: dict[str, list[tuple[str, int, int, bool]]] = {}     # id -> [(name, width, lsb, has a range)]
    stack: list[str] = []
    scale = 1.0
    with open(vcd) as fh:
        header = []
        for line in fh:
            header.append(line)
            if "$enddefinitions" in line:
                break
        text = " ".join(header)
        m = re.search(r"\$timescale\s*(\d+)\s*(\w+)\s*\$end", text)
        if m:
            scale = int(m.group(1)) * _UNITS[m.group(2)]
        for tok in re.finditer(r"\$scope\s+\w+\s+(\S+)\s+\$end|\$upscope\s+\$end|"
                               r"\$var\s+\w+\s+(\d+)\s+(\S+)\s+(\S+)(?:\s+\[(\d+)(?::(\d+))?\])?\s+\$end", text):
            if tok.group(1):
                stack.append(tok.group(1))
            elif tok.group(0).startswith("$upscope"):
                stack.pop()
            elif stack and stack[-1] == scope:
                w = int(tok.group(2))
                lsb = int(tok.group(6) if tok.group(6) is not None else (tok.group(5) or 0))
                ids.setdefault(tok.group(3), []).append((tok.group(4), w, lsb, tok.group(5) is not None))
        t0, t1 = window_ps[0] / scale, window_ps[1] / scale
        value = {i: 0 for i in ids}
        last = {i: t0 for i in ids}
        toggles = {i: [0] * ids[i][0][1] for i in ids}
        high = {i: [0.0] * ids[i][0][1] for i in ids}
        t = 0.0

        def change(i: str, new: int) -> None:
            old = value[i]
            if t > t0:
                span = min(t, t1) - last[i]
                h = high[i]
                v, b = old, 0
                while v:
                    if v & 1:
                        h[b] += span
                    v >>= 1
                    b += 1
                if t <= t1:
                    d, b, tg = old ^ new, 0, toggles[i]
                    while d:
                        if d & 1:
                            tg[b] += 1
                        d >>= 1
                        b += 1
            last[i] = max(t, t0)
            value[i] = new

        for line in fh:
            c = line[:1]
            if c == "#":
                t = float(line[1:])
                if t > t1:
                    break
            elif c == "b":
                bits, i = line[1:].split()
                if i in value:
                    change(i, int(bits.replace("x", "0").replace("z", "0"), 2))
            elif c in "01xz" and len(line) > 1:
                i = line[1:].strip()
                if i in value:
                    change(i, 1 if c == "1" else 0)
    out: dict[str, tuple[int, float]] = {}
    for i, names in ids.items():
        # the time since the last change up to the window's end
        v, b = value[i], 0
        while v:
            if v & 1:
                high[i][b] += t1 - last[i]
            v >>= 1
            b += 1
        for name, w, lsb, ranged in names:
            for b in range(w):
                out[f"{name}[{lsb + b}]" if ranged else name] = (toggles[i][b], high[i][b] * scale)
    return out, (t1 - t0) * scale


def measure(config: NMPUConfig, unit: str, netlist: list[Path], stim: Stimulus, top: str) -> dict[str, Any]:
    """Simulate ``netlist`` (netlist file first, then the cell models) on ``stim`` and count toggles.

    Returns ``nets`` ({net: (toggles per cycle, fraction high)}), ``cycles``, ``values`` (output values in
    the window), ``source`` (a sentence) and the run's ``mismatches`` (0, or ``RuntimeError``).
    """
    from .runner import build, run_testbench

    b = build(config, netlist=netlist, unit=unit, waves=True, trace="vcd")
    run_name = f"activity-{os.getpid()}"
    stim_file = b.folder / "runs" / run_name / "stimulus.npz"
    stim_file.parent.mkdir(parents=True, exist_ok=True)
    stim.write(stim_file, config, unit)
    res, _, run_dir = run_testbench("cosim.sim.tb.activity", b, run_name,
                                    {"config": str(b.folder / "config.toml"), "unit": unit,
                                     "stimulus": str(stim_file)}, 0, waves=True)
    if res.get("error") or res.get("mismatches"):
        raise RuntimeError(f"the gate-level activity run of the {unit} unit failed: "
                           f"{res.get('error') or str(res.get('mismatches')) + ' mismatches'} (log {run_dir / 'sim.log'})")
    vcd = run_dir / "dump.vcd"
    if not vcd.exists():
        raise RuntimeError(f"the gate-level activity run wrote no trace ({vcd})")
    counts, span = toggle_counts(vcd, top, tuple(res["window_ps"]))
    cycles = int(res["stream_cycles"])
    vcd.unlink()                                   # large; the counts are what is kept
    nets = {k: (n / cycles, h / span if span else 0.0) for k, (n, h) in counts.items()}
    return {"nets": nets, "cycles": cycles, "values": int(res["codes"]), "mismatches": 0,
            "source": f"gate-level simulation of {Path(netlist[0]).name} on {stim.name}: {res['codes']} values "
                      f"in {cycles} cycles at full throughput, every output checked"}
