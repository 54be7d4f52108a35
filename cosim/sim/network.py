"""Network co-simulation: a real network's analog layers post-processed by the RTL, checked against the model.

:func:`cosim_network` programs and calibrates the network on tiles as ``nmpu eval`` does
(:meth:`AnalogNetwork.build` with the workload's calibration images, the noise seed and the drift
time), then runs the test images twice with the same seed, images and batch size:

- golden: every analog layer post-processed by :func:`nmpu_model.apply` (``"fixed"``);
- RTL in the loop: each chosen layer's post-processor is the RTL (bulk C++ harness or cocotb), fed
  with the layer's ADC codes and loaded with its coefficient codes and ``out_frac`` through the
  unit's write ports; the next layer's inputs are the RTL's outputs. Every RTL output code is
  compared with ``apply`` on the same ADC codes and coefficients.

Because tiles, noise draws and calibration are the same in both runs, an RTL that agrees with the
model gives the same logits, so the two scores (the workload's metric: accuracy, or perplexity) must be equal
exactly. The result is a :class:`NetworkCosim`.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from nmpu_model.golden.config import NMPUConfig
from nmpu_model.workloads.metrics import METRICS, agreement

MODES = ("bulk", "cocotb")


@dataclass
class LayerReport:
    """Per analog layer counts, summed over the calls (one per batch chunk)."""

    name: str
    index: int
    columns: int
    out_frac: int = 0
    values: int = 0
    mismatches: int = 0
    protocol_errors: int = 0
    cycles: int = 0
    seconds: float = 0.0
    sim_seconds: float = 0.0
    calls: int = 0
    config_identity: str = ""
    first_mismatch: dict | None = None
    first_error: str | None = None
    waves: list[str] = field(default_factory=list)

    @property
    def values_per_s(self) -> float:
        return self.values / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        return (f"layer={self.name} values={self.values} mismatches={self.mismatches} cycles={self.cycles} "
                f"seconds={self.seconds:.3f} values_per_s={self.values_per_s:.0f}")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "values_per_s": round(self.values_per_s, 1)}


@dataclass
class NetworkCosim:
    """What :func:`cosim_network` found: per layer counts, and the network's score with the golden model and with
    the RTL in the loop (``golden``, ``rtl``: the workload's ``metric``, accuracy or perplexity)."""

    model: str
    metric: str
    images: int
    mode: str
    seed: int
    drift: float
    stall_seed: int
    p_valid: float
    p_ready: float
    fault: str | None
    layers: list[LayerReport]
    analog_layers: list[str]
    golden: float
    rtl: float
    prediction_agreement: float
    logits_equal: bool
    builds: dict[str, dict[str, Any]]
    seconds: dict[str, float]
    config: dict[str, Any]
    layer_mapping: dict[str, str] | None = None     # with a mapping: every layer's choice (label)

    @property
    def mismatches(self) -> int:
        """Output codes that differ from the model's, and protocol errors, over every layer."""
        return sum(r.mismatches + r.protocol_errors for r in self.layers)

    @property
    def ok(self) -> bool:
        """No mismatch, and the same score with the RTL as with the model."""
        return self.mismatches == 0 and self.golden == self.rtl

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` document (``accuracy_golden``/``accuracy_rtl`` hold the metric's values, whatever it is)."""
        doc = {k: v for k, v in asdict(self).items() if k not in ("layers", "golden", "rtl")}
        return {**doc, "layers": [r.to_json() for r in self.layers], "mismatches": self.mismatches,
                "accuracy_golden": self.golden, "accuracy_rtl": self.rtl}

    def text(self) -> str:
        """The per-layer lines and the score line."""
        m = METRICS[self.metric]
        lines = [r.line() for r in self.layers]
        fp16 = [n for n, c in (self.layer_mapping or {}).items() if c == "fp16"]
        if fp16:
            lines.append(f"on the fp16 unit (its model, not the RTL, in both runs): {', '.join(fp16)}")
        lines.append(f"{m.name} golden={m.show(self.golden)}{m.suffix} rtl={m.show(self.rtl)}{m.suffix} "
                     f"({'equal' if self.golden == self.rtl else 'DIFFERENT'}; {self.images} {m.samples}, "
                     f"mode {self.mode}, "
                     f"logits {'identical' if self.logits_equal else 'differ'})")
        return "\n".join(lines)


def select_layers(spec: str, analog: Sequence[str]) -> list[str]:
    """``"all"``, or comma-separated indices into the analog layers and/or layer names -> names in order."""
    if spec.strip() == "all":
        return list(analog)
    chosen = []
    for i, part in enumerate(p.strip() for p in spec.split(",")):
        if part in analog:
            name = part
        else:
            try:
                k = int(part)
            except ValueError:
                raise ValueError(f"--layers: item {i} {part!r} is neither an analog layer index (0..{len(analog) - 1}) "
                                 f"nor a layer name ({', '.join(analog)})") from None
            if not 0 <= k < len(analog):
                raise ValueError(f"--layers: index {k} out of range: the network has {len(analog)} analog layers "
                                 f"({', '.join(analog)})")
            name = analog[k]
        if name not in chosen:
            chosen.append(name)
    if not chosen:
        raise ValueError("--layers: no layer chosen")
    return [n for n in analog if n in chosen]


def rtl_stream(mode: str) -> Callable[..., Any]:
    """The function that streams one layer through the RTL in ``mode`` (same signature in both)."""
    if mode == "bulk":
        from .bulk import run_layer
        return run_layer
    if mode == "cocotb":
        from .cocotb_mode import run_layer
        return run_layer
    raise ValueError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")


def cosim_network(work: Any, config: NMPUConfig, *, layers: str | Sequence[str] = "all", mode: str = "bulk",
                  seed: int = 0, drift: float = 3600.0, stall_seed: int | None = None, p_valid: float = 0.8,
                  p_ready: float = 0.7, fault: str | None = None, window: tuple[int, int] | None = None,
                  mapping: Any = None, progress: Callable[[int], Any] | None = None) -> NetworkCosim:
    """Run ``work`` with the RTL as the post-processor of the chosen analog layers; compare with the model.

    Parameters
    ----------
    work : nmpu_model.workloads.registry.Workload
        Model, test images (``x_test``, ``y_test``), calibration images and batch size.
    config : NMPUConfig
        The NMPU configuration (each layer gets ``LayerCoeffs.config``: ReLU off where the layer has none).
    layers : str or sequence of str
        ``"all"``, a spec for :func:`select_layers`, or layer names.
    mode : {"bulk", "cocotb"}
        The C++ harness, or the cocotb testbench (slow; for small runs and as the reference of the harness).
    seed : int
        Noise seed of the tiles (as ``nmpu eval``'s seeds).
    drift : float
        Read time in seconds after programming.
    stall_seed : int, optional
        Seed of the valid gaps and ready stalls (default: ``seed``); each call adds its chunk and layer index.
    fault : str or None
        A deliberately broken RTL variant (tests of the co-simulation itself).
    window : (int, int), optional
        Record a waveform of cycles ``[start, end)`` of every RTL call (bulk: only that window is traced;
        cocotb: the whole run is traced).
    mapping : nmpu_model.studies.mapping.Mapping, optional
        Every layer where the mapping says (``work.digital`` its digital layers, ``config`` its base): each
        fixed-point layer's RTL built and loaded with that layer's own configuration; fp16 layers run the fp16
        model in both runs (they are not RTL-checked here).
    progress : callable, optional
        Called with 1 after every RTL call.

    Returns
    -------
    NetworkCosim
        Per layer :class:`LayerReport`, the golden and RTL-in-the-loop scores, the fraction of equal predictions,
        timings and builds (``to_json()`` for ``--json``).
    """
    import torch

    # One torch thread for the whole co-simulation (both runs, so their tile outputs stay bit-identical):
    # between parallel regions torch's OpenMP workers spin, and they fight the simulator subprocess for
    # the cores. Measured on 2 cores: the 360-image RTL run in 8.1 s with 2 threads, 0.53 s with 1.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _cosim(work, config, layers=layers, mode=mode, seed=seed, drift=drift, stall_seed=stall_seed,
                      p_valid=p_valid, p_ready=p_ready, fault=fault, window=window, mapping=mapping,
                      progress=progress)
    finally:
        torch.set_num_threads(threads)


def _cosim(work: Any, config: NMPUConfig, *, layers: str | Sequence[str], mode: str, seed: int, drift: float,
           stall_seed: int | None, p_valid: float, p_ready: float, fault: str | None,
           window: tuple[int, int] | None, mapping: Any,
           progress: Callable[[int], Any] | None) -> NetworkCosim:
    import torch

    from nmpu_model import apply
    from nmpu_model.network.analog_network import AnalogNetwork

    stream = rtl_stream(mode)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, not {seed!r}")
    if window is not None and not 0 <= window[0] < window[1]:
        raise ValueError(f"--window START:END needs 0 <= START < END, not {window[0]}:{window[1]}")
    stall_seed = seed if stall_seed is None else stall_seed
    t_all = time.perf_counter()
    tile = work.tile_params(config.adc_bits, config.output.bits, config.output.signed)
    t0 = time.perf_counter()
    net = AnalogNetwork.build(work.model, work.x_cal, seed=seed, t=drift, tile=tile, digital=work.digital)
    net.require_tiles()
    t_build_net = time.perf_counter() - t0
    analog = net.analog_layers
    # the layers the fixed-point unit post-processes (with a mapping: not those on the fp16 unit), each with its
    # own coefficients (its own configuration with a mapping)
    fp16 = mapping.names("fp16") if mapping is not None else []
    own = mapping.configs() if mapping is not None else {}
    fixed = [n for n in analog if n not in fp16]
    if not fixed:
        raise ValueError("every analog layer of the mapping is on the fp16 unit: no fixed-point layer to co-simulate")
    spec = layers if isinstance(layers, str) else ",".join(layers)
    names = select_layers(spec, fixed)
    coeffs = {n: net.coefficients(own.get(n, config))[n] for n in fixed}
    posts = mapping.posts(net) if mapping is not None else {}

    t0 = time.perf_counter()
    out_golden, _ = net.run(work.x_test, config, "fixed", per_layer=posts, batch_size=work.batch_size)
    t_golden = time.perf_counter() - t0

    # one RTL build per distinct layer configuration; built before the run so build time is reported apart
    builds: dict[str, dict] = {}
    t0 = time.perf_counter()
    for name in names:
        cfg = coeffs[name].config
        if cfg.identity() in builds:
            continue
        if mode == "bulk":
            from .bulk import build
            b = build(cfg, fault=fault, waves=window is not None)
        else:
            from .cocotb_mode import build_cached
            b = build_cached(cfg, fault=fault, waves=window is not None)
        builds[cfg.identity()] = {"seconds": round(b.seconds, 3), "cached": b.cached, "folder": str(b.folder)}
    t_builds = time.perf_counter() - t0

    reports = {n: LayerReport(n, analog.index(n), int(coeffs[n].codes["scale"].shape[0]),
                              out_frac=coeffs[n].out_frac, config_identity=coeffs[n].config.identity())
               for n in names}
    calls = {n: 0 for n in names}

    def make_post(name: str) -> Callable[[np.ndarray, Any, int], np.ndarray]:
        lc = coeffs[name]
        rep = reports[name]

        def post(x: np.ndarray, _codes: Any, _out_frac: int) -> np.ndarray:
            codes, out_frac = lc.codes, lc.out_frac      # the layer's own (a mapping's format)
            k = calls[name]
            calls[name] += 1
            kw = {"seed": stall_seed + 1000 * k + rep.index, "p_valid": p_valid, "p_ready": p_ready, "fault": fault}
            if mode == "bulk":
                if window is not None:
                    kw.update(window=window, wave_name=f"{name}-chunk{k}")
            else:
                kw.update(waves=window is not None, tag=f"cosim-{name}-chunk{k}")
            r = stream(x, codes, out_frac, lc.config, **kw)
            want = apply(x, lc.config, codes, "fixed", out_frac)
            bad = r.outputs != want
            rep.values += int(x.size)
            rep.mismatches += int(bad.sum())
            rep.protocol_errors += r.protocol_errors
            rep.first_error = rep.first_error or r.first_error
            rep.cycles += r.cycles
            rep.seconds += r.seconds
            rep.sim_seconds += r.sim_seconds
            rep.calls += 1
            if r.waves is not None:
                rep.waves.append(str(r.waves))
            if bad.any() and rep.first_mismatch is None:
                i, j = (int(v) for v in np.argwhere(bad)[0])
                rep.first_mismatch = {"call": k, "sample": i, "column": j, "adc_code": int(x[i, j]),
                                      "coefficients": {c: int(v[j]) for c, v in codes.items()},
                                      "out_frac": int(out_frac), "rtl": int(r.outputs[i, j]),
                                      "golden": int(want[i, j])}
            if progress is not None:
                progress(1)
            # the RTL's codes go on to the next layer: the accuracy below is the hardware's
            return r.outputs

        post.__name__ = f"rtl-{mode}"
        return post

    t0 = time.perf_counter()
    out_rtl, _ = net.run(work.x_test, config, "fixed", per_layer={**posts, **{n: make_post(n) for n in names}},
                         batch_size=work.batch_size)
    t_rtl = time.perf_counter() - t0

    return NetworkCosim(
        model=work.name, metric=work.metric.name, images=int(len(work.y_test)), mode=mode, seed=seed, drift=drift,
        stall_seed=stall_seed, p_valid=p_valid, p_ready=p_ready, fault=fault, layers=list(reports.values()),
        analog_layers=analog, golden=work.metric(out_golden, work.y_test), rtl=work.metric(out_rtl, work.y_test),
        prediction_agreement=agreement(out_golden, out_rtl), logits_equal=bool(torch.equal(out_golden, out_rtl)),
        builds=builds,
        seconds={"network_build": round(t_build_net, 3), "golden_run": round(t_golden, 3),
                 "rtl_builds": round(t_builds, 3), "rtl_run": round(t_rtl, 3),
                 "total": round(time.perf_counter() - t_all, 3)},
        config=config.to_dict(), layer_mapping=mapping.to_dict()["layers"] if mapping is not None else None)
