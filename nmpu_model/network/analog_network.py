"""Run a PyTorch network on analog tiles with an NMPU (or a floating-point unit) after every tile.

Structure
---------
Any model that ``torch.export`` takes (:mod:`nmpu_model.network.graph`) becomes a list of steps: *layers*
(a ``conv2d``/``linear`` with a constant weight, fused with the batch norm and ReLU that alone consume it),
*grid* ops that keep integer codes codes (max pooling, ReLU, shape-only ops) and other ops run in float32 at
their place. A layer is analog (on tiles, its outputs post-processed by the NMPU) or digital (float32, named
in ``digital``; by default the first and the last layer, as is usual for analog accelerators).

What an analog layer does
-------------------------
input codes ``u`` (DAC codes in the NMPU output format's range: signed 8-bit by default; the
previous NMPU's output codes when the previous step was an analog layer followed only by max
pooling/flatten/ReLU, otherwise the real input quantized with a calibrated step: after a digital
layer or a residual add, which are done on real values, as a digital adder and requantizer
would) -> tiles (:mod:`nmpu_model.analog`; a layer larger than a tile is split, and the row
tiles' ADC codes are summed by a saturating integer adder in front of the NMPU) -> ADC codes
``x`` (integers, ``(samples, columns)``) -> post-processor ``y = P(x, coeffs, out_frac)`` -> the
next layer's codes, real value ``y * step_out``.

Calibration (done once per seed, at ``t_cal`` seconds after programming)
-----------------------------------------------------------------------
With a small calibration batch, layer by layer (the upstream layers analog, post-processed
with the exact real coefficients):

1. Column signs: where batch norm's folded scale ``gamma/sqrt(var+eps)`` is negative, the
   column's weights are programmed negated, so the NMPU scale is never negative (the default
   scale format is unsigned). The sign is thus moved into the tile weights.
2. ADC full scale: 1.1 x the 99.99th percentile of the ideal MVM (headroom for ADC gain
   mismatch; shared by the row tiles).
3. Per column, a least-squares line ``x = alpha * m + beta`` of the measured ADC codes ``x``
   against the ideal MVM ``m`` (in ADC steps), unclipped samples only: ``alpha`` is the ADC gain
   times the column's conductance error, ``beta`` the ADC offset. This removes injected
   gain/offset mismatch whatever its source.
4. The output step ``step_out`` (the real value of one output code): the 99.99th percentile of
   the layer's real output divided by the largest output code.

At read time ``t`` the drift compensation factor ``gdc = readout(t_cal) / readout(t)`` (global: one per layer;
with ``TileParams.drift_compensation = "column"``, one per column) multiplies the scale (so the coefficients are
re-written for each ``t``, as the chip would).

Coefficients
------------
Real: the layer's real output ``r = g * z + h`` (``z`` the conv/linear output with its bias,
``g, h`` the folded batch norm) in output codes is ``r / step_out = s * x + o`` with
``kappa = 1 / (step_out * 2**out_frac)``, ``A = sign * col_scale * step_in * lsb / alpha * gdc``,
``s = kappa * g * A`` and ``o = kappa * (g * (bias - A * beta) + h)``. For every ``out_frac`` in
the configured range the coefficients are rounded to the nearest code and saturated into the
``scale``/``offset`` formats; ``f0`` is the smallest ``out_frac`` at which none saturates, and of
``f0 - 1, f0, f0 + 1`` the one whose fixed-point outputs on the calibration codes are closest
(mean squared error) to the exact real ones is kept. ``fp16``/``fp32`` get the real
values and the same ``out_frac`` (:func:`nmpu_model.apply` rounds them to binary16/32).
With ``config.bn_stage``: ``s, o`` map the codes to ``kappa1 * sign * z`` in the ``mid`` format
(``kappa1`` as large as the scale format allows, keeping the calibration maximum within 90 % of
``mid``'s range) and ``bn_scale = kappa * |g| / kappa1``, ``bn_offset = kappa * h``.

The API for the precision sweep and the RTL in the loop
-------------------------------------------------------
- :meth:`AnalogNetwork.build` programs the tiles of one seed and calibrates (expensive, once).
- :meth:`AnalogNetwork.at` reads the same programmed tiles at drift time ``t`` (cheap).
- :meth:`AnalogNetwork.coefficients` gives, for a config, every layer's :class:`LayerCoeffs`
  (integer codes, real values, ``out_frac``, quantization error); cached per config.
- :meth:`AnalogNetwork.run` runs inputs with a post-processor per layer: ``"fixed"``, ``"fp16"``,
  ``"fp32"`` or a callable ``(codes, coeffs, out_frac) -> codes`` (coeffs: integer codes), and
  optionally records a :class:`Trace` (per layer ADC codes, coefficients, output codes).
- :func:`replay` re-runs only the post-processing of a recorded trace for another config
  (upstream fixed): the cheap inner loop of a precision sweep.
- :func:`capture` does build + run + record in one call.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import kernels
from ..analog.tiles import Conv, DriftState, ProgrammedLayer, TileParams, program_layer
from ..analog.streams import derive_seed, generator
from ..golden.config import NMPUConfig
from .coefficients import LayerCal, LayerCoeffs, make_coefficients
from ..golden.datapath import ARITHS, apply, code_dtype
from .graph import GraphError, LayerSpec, Ref, Step, parse

PostProcessor = Callable[[np.ndarray, Mapping[str, np.ndarray], int], np.ndarray]
_PCT = 0.9999  # percentile for ADC full scale, input and output steps (clips ~1e-4 of values)


# ---- which layers are analog -----------------------------------------------------------------------
def mark_digital(layers: list[LayerSpec], digital: Iterable[str] | str) -> None:
    """Mark the layers kept digital: names, ``"first"``, ``"last"`` (``()``: all analog), with why;
    refuse an analog layer that cannot be mapped (:class:`~nmpu_model.network.graph.GraphError`)."""
    dig = {digital} if isinstance(digital, str) else set(digital)
    unknown = dig - {l.name for l in layers} - {"first", "last"}
    if unknown:
        raise ValueError(f"network: unknown digital layer {sorted(unknown)[0]!r} "
                         f"(layers: {', '.join(l.name for l in layers)})")
    for l in layers:
        l.digital, l.why = False, ""
        if l.name in dig:
            l.digital, l.why = True, "named digital"
        elif "first" in dig and l.index == 0:
            l.digital, l.why = True, "first layer"
        elif "last" in dig and l.index == len(layers) - 1:
            l.digital, l.why = True, "last layer"
        elif l.problem:
            raise GraphError(f"network: {l.name} ({l.op}): {l.problem} cannot be mapped onto tiles; "
                             f"keep it digital (--digital {l.name})")


def float_weight_ops(steps: list[Step]) -> dict[str, list[str]]:
    """The float32 ops that take a constant weight matrix (2-D or more: an embedding, a transposed convolution, ...),
    by op name: the nodes (module paths) where they run."""
    from .graph import op_name
    consts = {st.name for st in steps if st.kind == "const" and isinstance(st.args[0], torch.Tensor)
              and st.args[0].ndim >= 2}
    out: dict[str, list[str]] = {}
    for st in steps:
        if st.kind == "op" and set(st.refs) & consts:
            out.setdefault(op_name(st.fn), []).append(st.path or st.name)
    return out


def require_tiles(layers: list[LayerSpec], steps: list[Step]) -> None:
    """Refuse (:class:`GraphError`, one line) a network of which nothing is on tiles: every "analog" figure
    of a study would be the float model's own. Names the layers and why each is digital, and the ops with
    weights that ran in float32 instead (those the front end does not map onto tiles)."""
    if any(not l.digital for l in layers):
        return
    names = ", ".join(f"{l.name} ({l.why})" for l in layers) or "none"
    weighted = sorted(float_weight_ops(steps))
    floats = f"; ops with weights that run in float32, not on tiles: {', '.join(weighted)}" if weighted else ""
    raise GraphError(f"network: nothing is on tiles (conv2d/linear layers: {names}{floats}); its analog "
                     f"figures would be the float model's: keep fewer layers digital (--digital)")


def check_on_tiles(model: object, calib_x: torch.Tensor, digital: Iterable[str] | str = ("first", "last")) -> None:
    """:func:`require_tiles` before anything is programmed (one parse; the export is cached per model)."""
    graph = parse(model, calib_x[:2])
    mark_digital(graph.layers, digital)
    require_tiles(graph.layers, graph.steps)


def layer_table(model: object, calib_x: torch.Tensor, tile: TileParams | None = None,
                digital: Iterable[str] | str = ("first", "last")) -> str:
    """The network as it will be mapped: per conv/linear its name (module path), kind, K x C, row x
    column tiles and analog or digital with why; then the ops that run digitally in float32."""
    return mapping(model, calib_x, tile, digital)[0]


def mapping(model: object, calib_x: torch.Tensor, tile: TileParams | None = None,
            digital: Iterable[str] | str = ("first", "last")) -> tuple[str, list[str], dict]:
    """:func:`layer_table`'s text, the names of the analog layers in order, and the same as JSON (one parse for
    all): per layer its name, op, kind, K, C, uses, tiles and ``where`` (``analog`` or ``digital``, with ``why``);
    per float32 op with a constant weight matrix (an embedding, a transposed convolution, ...) its op and nodes."""
    from .graph import op_name

    graph = parse(model, calib_x[:2])
    mark_digital(graph.layers, digital)
    tp = tile or TileParams()
    rows = [("layer", "kind", "K x C", "tiles", "where")]
    doc: dict = {"layers": [], "float_weight_ops": []}
    for l in graph.layers:
        k, c = l.inputs, l.outputs
        kind = f"conv{l.kernel_size[0]}x{l.kernel_size[1]}" if l.is_conv else "linear"
        kind += "+bn" if l.g is not None else ""
        kind += "+relu" if l.relu else ""
        tiles = "-" if l.digital else f"{-(-k // tp.rows)} x {-(-c // tp.cols)}"
        rows.append((l.name, kind + (f", {l.uses} uses" if l.uses > 1 else ""), f"{k} x {c}", tiles,
                     f"digital ({l.why})" if l.digital else "analog + NMPU"))
        doc["layers"].append({"name": l.name, "op": l.op, "kind": kind, "inputs": k, "outputs": c, "uses": l.uses,
                              "tiles": None if l.digital else [-(-k // tp.rows), -(-c // tp.cols)],
                              "where": "digital" if l.digital else "analog", "why": l.why})
    w = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(v.ljust(w[i]) for i, v in enumerate(r)).rstrip() for r in rows]
    ops: dict[str, list[str]] = {}
    for st in graph.ops():
        ops.setdefault(op_name(st.fn), []).append(st.path or st.name)
    if ops:
        lines.append("digital float32 ops: " + "; ".join(
            f"{k} ({', '.join(v[:3])}{', ...' if len(v) > 3 else ''})" for k, v in ops.items()
            if k not in ("aten.sym_size", "getitem")))
    doc["float_weight_ops"] = [{"op": k, "nodes": v, "where": "digital", "why": "not a weight-stationary product "
                                "the front end maps onto tiles"} for k, v in float_weight_ops(graph.steps).items()]
    return "\n".join(lines), [l.name for l in graph.layers if not l.digital], doc


# ---- activations carried between steps -----------------------------------------------------------
class _Act:
    """A real tensor, and, when it is exactly ``codes * step``, the integer codes (as float); given codes
    and step alone, the real tensor is made when first asked for (an analog layer feeding the next one
    needs only the codes)."""

    __slots__ = ("_real", "codes", "step")

    def __init__(self, real: torch.Tensor | None, codes: torch.Tensor | None = None, step: float | None = None):
        if real is None and codes is None:
            raise ValueError("_Act: a real tensor or codes are needed")
        self._real, self.codes, self.step = real, codes, step

    @property
    def real(self) -> torch.Tensor:
        if self._real is None:
            self._real = self.codes * self.step
        return self._real


def _geometry(spec: LayerSpec, x: torch.Tensor) -> tuple[torch.Tensor, Conv | None, tuple[int, ...]]:
    """A layer's input as :meth:`ProgrammedLayer.mvm` takes it, its convolution geometry and the shape of
    its output rows: ``(N, Ho, Wo)`` for a convolution; for a linear layer the input's leading dimensions,
    ``(N,)`` for one vector per sample, ``(N, T)`` for one per token (a transformer's projections): the rows
    are sample-major, so a sample's rows, and the noise drawn for them, do not depend on the batch."""
    if not spec.is_conv:
        f = x.shape[-1]
        x = (x if spec.lead is None else x.reshape(*spec.lead, f)).movedim(spec.batch_dim, 0)
        return x.reshape(-1, f), None, tuple(x.shape[:-1])
    conv = Conv(tuple(spec.kernel_size), tuple(spec.padding), tuple(spec.stride))
    if spec.one_d:
        x = x.unsqueeze(2)
    return x, conv, (x.shape[0], *conv.out_hw(x.shape[2], x.shape[3]))


def _ideal_mvm(spec: LayerSpec, p: ProgrammedLayer, u: torch.Tensor, conv: Conv | None) -> torch.Tensor:
    """The ideal MVM (target weights, no noise) of input codes ``u`` in full-scale units, ``(M, C)`` float32."""
    x = u.float() / p.params.dac_max
    w = p.target.float()
    if conv is None:
        return x @ w
    k_in, c = w.shape
    wk = w.t().reshape(c, x.shape[1], *conv.kernel)
    y = F.conv2d(x, wk, padding=conv.padding, stride=conv.stride)
    return y.permute(0, 2, 3, 1).reshape(-1, c)


def _use(spec: LayerSpec) -> tuple[int, ...]:
    """The noise-seed key of a use of a shared matrix past its first (none for the first: a layer used once draws
    what it always drew)."""
    return (spec.use,) if spec.use else ()


def _inputs(x: torch.Tensor) -> torch.Tensor:
    """Model inputs as the network takes them: float32, or integers as they are (token ids for an embedding)."""
    return x.float() if x.is_floating_point() else x


def dac_codes(x: torch.Tensor, step: float, tp: TileParams) -> torch.Tensor:
    """The input DAC: ``x / step`` rounded half to even and clipped to the DAC's codes (float32, in place
    on the one new tensor)."""
    return (x / step).round_().clamp_(tp.dac_min, tp.dac_max)


def _col2im(y: torch.Tensor, shape: tuple[int, ...], conv: Conv | None, spec: LayerSpec,
            lead: tuple[int, ...]) -> torch.Tensor:
    """Output rows ``(M, C)`` of any dtype as a float32 tensor: for a linear layer ``(*lead, C)``, the layer
    input's leading axes (the rows of :func:`_geometry` put back in their order), for a convolution a
    contiguous ``(N, C, Ho, Wo)`` one (one pass: the conversion and the transpose together)."""
    if conv is None:
        return y.float().reshape(*shape, y.shape[1]).movedim(0, spec.batch_dim).reshape(*lead, y.shape[1])
    n, ho, wo = shape
    out = torch.empty((n, y.shape[1], ho, wo))
    out.copy_(y.reshape(n, ho, wo, -1).permute(0, 3, 1, 2))
    return out.squeeze(2) if spec.one_d else out


_SAMPLE = 16384


@lru_cache(maxsize=64)
def _sample_index(n: int) -> np.ndarray:
    """The positions of :func:`_quantile_abs`'s fixed random sample of an array of ``n`` values."""
    return np.random.default_rng(0).integers(0, n, _SAMPLE)


def _quantile_abs(v: torch.Tensor, q: float = _PCT) -> float:
    """``np.quantile(|v|, q)`` (linear interpolation between the two nearest order statistics), exactly,
    from the few largest values: a random sample sets a threshold that about three times as many
    values as needed pass, one pass collects them, and a sort of those gives the order statistics
    (a threshold that lets too few pass falls back to all the values)."""
    a = v.detach().reshape(-1).numpy()
    n = a.size
    if n == 0:
        return 0.0
    pos = (n - 1) * q
    lo = math.floor(pos)
    k = n - lo                                     # the k largest hold order statistics lo and lo + 1
    # a fixed random sample (a strided one can see only some channels of a structured tensor); its size only
    # sets how fast the threshold is found (the result is exact for any sample): a gather from a large array
    # costs about a cache miss per element
    sample = np.abs(a[_sample_index(n)]) if n > _SAMPLE else np.abs(a)
    rank = min(sample.size - 1, max(0, sample.size - 1 - (3 * k * sample.size) // n - 8))
    thr = float(np.partition(sample, rank)[rank]) if k < n // 4 else 0.0
    buf = np.empty(min(n, 16 * k + 4096), a.dtype)
    got = kernels.abs_at_least(a, a.dtype.type(thr), buf)
    if got < k or got > buf.size:
        buf = np.abs(a)
        got = n
    top = np.sort(buf[:got])                      # ascending: top[got - k] is order statistic lo
    v_lo = float(top[got - k])
    v_hi = float(top[got - k + 1]) if k >= 2 else v_lo
    return v_lo + (v_hi - v_lo) * (pos - lo)


@dataclass
class LayerTrace:
    """What one analog layer saw and produced in :meth:`AnalogNetwork.run` (``record=True``): rows in the order
    of the inputs, and for a matrix used several times (:attr:`LayerSpec.uses`) those of its first use, then its
    second's, ..."""

    name: str
    adc_codes: np.ndarray
    coeffs: LayerCoeffs
    out_codes: np.ndarray
    post: str


Trace = dict  # layer name -> LayerTrace



# ---- the network on tiles ------------------------------------------------------------------------
class AnalogNetwork:
    """A model whose analog layers are programmed on tiles and calibrated, for one noise seed.

    Build with :meth:`build`; read at another drift time with :meth:`at`; run with :meth:`run`.
    Picklable (for distributed sweeps).
    """

    def __init__(self) -> None:  # use build()
        self.steps: list[Step]
        self.layers: list[LayerSpec]
        self.tile: TileParams
        self.seed: int
        self.t_cal: float
        self.t: float
        self.programmed: dict[str, ProgrammedLayer] = {}
        self.cal: dict[str, LayerCal] = {}
        self.states: dict[str, DriftState] = {}
        self.gdc: dict[str, float | np.ndarray] = {}
        self._coeff_cache: dict[tuple, dict[str, LayerCoeffs]] = {}
        self.values_per_image = 1

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def build(cls, model: nn.Module, calib_x: torch.Tensor, *, seed: int = 0, t: float = 3600.0,
              tile: TileParams | None = None, digital: Iterable[str] | str = ("first", "last"),
              t_cal: float = 0.0) -> "AnalogNetwork":
        """Program the analog layers of ``model`` for noise seed ``seed`` and calibrate.

        Parameters
        ----------
        model : nn.Sequential
            In eval mode (a copy is taken). See the module docstring for what it may contain.
        calib_x : Tensor
            A small calibration batch of model inputs (e.g. 64-256 training images).
        seed : int
            Fixes every random draw: programming noise, drift exponents, ADC mismatch, read and
            output noise.
        t : float
            Drift time (seconds after programming) at which :meth:`run` reads the tiles.
        tile : TileParams
            Tile size, periphery and device model (default: HERMES-like 256 x 256, PCM).
        digital : iterable of str
            Layers kept digital: layer names, and/or ``"first"``/``"last"``. ``()``: all analog.
        t_cal : float
            Time of the calibration (seconds after programming).
        """
        net = cls()
        graph = parse(model, calib_x[:2])
        # the steps hold the ATen ops and constant tensors they need: the graph module itself (not picklable,
        # and a sweep ships networks to Dask workers) is not kept
        net.steps, net.layers = graph.steps, graph.layers
        mark_digital(net.layers, digital)
        net.tile = tile or TileParams()
        net.seed = int(seed)
        net.t_cal = float(t_cal)
        for l in net.layers:
            if l.digital:
                continue
            g, _ = l.bn_fold()
            sign = torch.where(g < 0, -1.0, 1.0).double()
            net.programmed[l.name] = program_layer(l.matrix(), net.tile, net.seed, l.index, sign)
        with torch.no_grad():
            net._calibrate(calib_x)
        net._set_time(t)
        return net

    def at(self, t: float) -> "AnalogNetwork":
        """The same programmed tiles and calibration, read at drift time ``t`` (a new object)."""
        other = copy.copy(self)
        other.states, other.gdc, other._coeff_cache = {}, {}, {}
        other._set_time(t)
        return other

    def _set_time(self, t: float) -> None:
        self.t = float(t)
        for name, p in self.programmed.items():
            st = p.at(self.t)
            self.states[name] = st
            cal = self.cal[name]
            self.gdc[name] = p.compensation(cal.readout_cal, cal.readout_cal_columns, st)
        self._coeff_cache = {}

    @property
    def analog_layers(self) -> list[str]:
        """Names of the analog layers, in order."""
        return [l.name for l in self.layers if not l.digital]

    def require_tiles(self) -> None:
        """:func:`require_tiles` for this network."""
        require_tiles(self.layers, self.steps)

    # -- calibration -------------------------------------------------------------------------
    def _calibrate(self, calib_x: torch.Tensor) -> None:
        states = {n: p.at(self.t_cal) for n, p in self.programmed.items()}
        self._n_cal = max(int(calib_x.shape[0]), 1)
        self.values_per_image = 1
        x = _inputs(calib_x)
        # a matrix used several times (an RNN's recurrent one, once per time step) is calibrated once on the
        # inputs of all its uses: they are gathered from a float run of the network first; the layer-by-layer
        # calibration below then runs it on its tiles with that calibration
        shared = [l.name for l in self.layers if l.uses > 1 and not l.digital]
        if shared:
            pooled: dict[str, list] = {n: [] for n in shared}
            self._execute(_Act(x), mode="pool", ctx=pooled)
            for name in shared:
                self._fit(pooled[name], states[name])
        self._execute(_Act(x), mode="cal", states=states)

    def _calibrate_layer(self, spec: LayerSpec, a: _Act, state: DriftState) -> _Act:
        """Calibrate a layer used once on its input ``a``; its output (exact real post-processing) as codes."""
        return self._cal_output(spec, *self._fit([(spec, a)], state)[0])

    def _fit(self, uses: list[tuple[LayerSpec, _Act]], state: DriftState) -> list[tuple]:
        """Calibrate the layer of ``uses`` (its spec at each use and the input there) from all of them together;
        per use ``(adc_codes, conv, shape, u_full)`` for :meth:`_cal_output`."""
        spec = uses[0][0].owner
        p = self.programmed[spec.name]
        tp = self.tile
        if len(uses) == 1 and uses[0][1].codes is not None:
            step_in = uses[0][1].step
            fulls = [uses[0][1].codes]
        else:
            real = uses[0][1].real if len(uses) == 1 else torch.cat([a.real.reshape(-1) for _, a in uses])
            step_in = _quantile_abs(real) / tp.dac_max or 1.0
            fulls = [dac_codes(a.real, step_in, tp) for _, a in uses]
        geo = [_geometry(s, u) for (s, _), u in zip(uses, fulls)]
        ms = [_ideal_mvm(spec, p, u, conv) for u, conv, _ in geo]     # ideal MVM, full-scale units, (M, C)
        m = torch.cat(ms) if len(ms) > 1 else ms[0]
        # the largest per-image working set (output rows x max(K, C)) sizes run()'s default chunks
        self.values_per_image = max(self.values_per_image, *(
            -(-mi.shape[0] // self._n_cal) * max(p.target.shape[0], p.target.shape[1]) for mi in ms))
        out_bound = tp.out_bound or (_quantile_abs(m) * 1.1 or 1.0)  # headroom for ADC gain mismatch
        lsb = out_bound / tp.adc_max
        xs = [p.mvm(u, state, out_bound, derive_seed(self.seed, spec.index, "cal-out", *_use(s)), conv=conv)
              for (s, _), (u, conv, _) in zip(uses, geo)]
        x = np.concatenate(xs) if len(xs) > 1 else xs[0]
        # per-column least squares x = alpha * m/lsb + beta on unclipped samples
        sums = np.zeros((5, x.shape[1]))
        kernels.lsq_columns(x, m.numpy(), 1.0 / lsb, -tp.adc_max - 1, tp.adc_max, sums)
        nw = np.maximum(sums[0], 1.0)
        mx, mmu = sums[1] / nw, sums[2] / nw
        cov = sums[3] / nw - mx * mmu
        var = sums[4] / nw - mmu * mmu
        ok = var > 1e-6
        alpha = np.where(ok, cov / np.where(ok, var, 1.0), 1.0)
        alpha = np.where(alpha > 1e-3, alpha, 1.0)   # a dead column: no gain info
        beta = mx - alpha * mmu
        sign, col_scale = p.col_sign.numpy(), p.col_scale.numpy()
        A0 = sign * col_scale * step_in * tp.dac_max * lsb / alpha
        bias = spec.bias64().numpy()
        g, h = (t.numpy() for t in spec.bn_fold())
        # the real output r = g * z + h of the ideal MVM, z = k1 * m + bias, per column
        k1 = sign * col_scale * tp.dac_max * step_in
        r_ideal = m * torch.from_numpy(g * k1).float() + torch.from_numpy(g * bias + h).float()
        if spec.relu:
            r_ideal.clamp_(min=0)
        step_out = _quantile_abs(r_ideal) / tp.dac_max or 1.0
        if m.numel():
            mlo, mhi = m.amin(0).double().numpy(), m.amax(0).double().numpy()
            zmax = float(np.maximum(np.abs(k1 * mlo + bias), np.abs(k1 * mhi + bias)).max())
        else:
            zmax = 1.0
        rng = np.random.default_rng(generator(self.seed, spec.index, "cal-sub").initial_seed())
        keep = rng.choice(x.shape[0], size=min(x.shape[0], 8192), replace=False)
        keep.sort()
        self.cal[spec.name] = LayerCal(
            step_in=float(step_in), step_out=float(step_out), out_bound=float(out_bound),
            alpha=alpha, beta=beta, A0=A0, bias=bias, g=g, h=h,
            sign=sign, readout_cal=state.readout, x_cal=x[keep].astype(np.int64), zmax=zmax,
            readout_cal_columns=state.readout_columns.numpy())
        return [(xi, conv, shape, u) for xi, (_, conv, shape), u in zip(xs, geo, fulls)]

    def _cal_shared(self, spec: LayerSpec, a: _Act, state: DriftState) -> _Act:
        """One use of a matrix calibrated by :meth:`_fit` on all its uses: its tiles read at calibration time."""
        cal = self.cal[spec.name]
        u_full = self._dac_input(a, cal)
        u, conv, shape = _geometry(spec, u_full)
        x = self.programmed[spec.name].mvm(u, state, cal.out_bound,
                                           derive_seed(self.seed, spec.index, "cal-run", spec.use), conv=conv)
        return self._cal_output(spec, x, conv, shape, u_full)

    def _dac_input(self, a: _Act, cal: LayerCal) -> torch.Tensor:
        """A calibrated layer's DAC codes: the codes of an analog layer before it in the calibrated step as they are;
        after a digital step, the real input quantized with the calibrated step."""
        if a.codes is not None and a.step == cal.step_in:
            return a.codes
        return dac_codes(a.real, cal.step_in, self.tile)

    def _cal_output(self, spec: LayerSpec, x: np.ndarray, conv: Conv | None, shape: tuple[int, ...],
                    u_full: torch.Tensor) -> _Act:
        """The upstream for the next layer during calibration: the exact real post-processing of the ADC codes
        ``x`` (``g * (A0 * (x - beta) + bias) + h``) / ``step_out``, with output rounding."""
        c = self.cal[spec.name]
        y = np.empty(x.shape, np.float32)
        kernels.requant_real(x, c.g * c.A0 / c.step_out, (c.g * (c.bias - c.A0 * c.beta) + c.h) / c.step_out,
                             bool(spec.relu), float(self.tile.dac_min), float(self.tile.dac_max), y)
        out = _col2im(torch.from_numpy(y), shape, conv, spec, tuple(u_full.shape[:-1]))
        return _Act(None, out, c.step_out)

    # -- coefficients ------------------------------------------------------------------------
    def coefficients(self, config: NMPUConfig) -> dict[str, LayerCoeffs]:
        """Per analog layer :class:`LayerCoeffs` for ``config`` at this network's drift time."""
        self._check_config(config)
        key = (config.identity(), config.relu)
        if key not in self._coeff_cache:
            self._coeff_cache[key] = {
                l.name: make_coefficients(self.cal[l.name], self.gdc[l.name], config, l.relu)
                for l in self.layers if not l.digital}
        return self._coeff_cache[key]

    def _check_config(self, config: NMPUConfig) -> None:
        if config.adc_bits != self.tile.adc_bits:
            raise ValueError(f"config adc_bits = {config.adc_bits} but the tiles were built with "
                             f"adc_bits = {self.tile.adc_bits}: build the network with "
                             f"TileParams(adc_bits={config.adc_bits})")
        if config.output.bits != self.tile.dac_bits or config.output.signed != self.tile.dac_signed:
            kind = "signed" if self.tile.dac_signed else "unsigned"
            raise ValueError(f"config output {config.output.describe()} does not match the tiles' {kind} "
                             f"{self.tile.dac_bits}-bit DAC: build the network with TileParams(dac_bits="
                             f"{config.output.bits}, dac_signed={config.output.signed})")

    # -- running -----------------------------------------------------------------------------
    def run(self, x: torch.Tensor, config: NMPUConfig, post: str | PostProcessor = "fixed", *,
            per_layer: Mapping[str, str | PostProcessor] | None = None, record: bool = False,
            batch_size: int | None = None,
            progress: Callable[[int], object] | None = None) -> tuple[torch.Tensor, Trace | None]:
        """Run inputs through the tiles and post-processors.

        Parameters
        ----------
        x : Tensor
            Model inputs.
        config : NMPUConfig
        post : {"fixed", "fp16", "fp32"} or callable
            Default post-processor of every analog layer. A callable gets ``(codes, coeffs,
            out_frac)``: int64 ADC codes ``(samples, columns)``, the integer coefficient codes
            (``LayerCoeffs.codes``), the layer's ``out_frac``; it returns int64 output codes of the
            same shape (e.g. the RTL's). ``"fixed"`` is :func:`nmpu_model.apply`.
        per_layer : mapping, optional
            Layer name -> post-processor, overriding ``post`` (heterogeneous mapping, RTL in the loop).
        record : bool
            Return a :class:`Trace` with every analog layer's ADC codes and output codes.
        batch_size : int, optional
            Inputs per chunk (default: as many as keep the largest layer's working set near 2**24 values,
            a fixed function of the model): a memory bound only. The output noise of an input row is
            drawn by its index in ``x`` (:mod:`nmpu_model.analog`): the same seed and inputs give the
            same bits whatever the batch size and the post-processor.
        progress : callable, optional
            Called with the number of inputs of each chunk when it is done (e.g. ``tqdm.update``).

        Returns
        -------
        (Tensor, Trace or None)
            The model output (float32) and, with ``record``, the trace.
        """
        self._check_config(config)
        coeffs = self.coefficients(config)
        per_layer = dict(per_layer or {})
        unknown = set(per_layer) - set(self.analog_layers)
        if unknown:
            raise ValueError(f"per_layer: {sorted(unknown)[0]!r} is not an analog layer "
                             f"(analog: {', '.join(self.analog_layers)})")
        for p in [post, *per_layer.values()]:
            if isinstance(p, str) and p not in ARITHS:
                raise ValueError(f"post-processor must be one of {', '.join(ARITHS)} or a callable, not {p!r}")
        if batch_size is None:
            batch_size = max(1, (1 << 24) // self.values_per_image)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {batch_size}")
        outs = []
        trace: Trace | None = {} if record else None
        with torch.no_grad():
            for start in range(0, x.shape[0], batch_size):
                xb = _inputs(x[start:start + batch_size])
                ctx = {"coeffs": coeffs, "post": post, "per_layer": per_layer, "first_image": start,
                       "trace": trace}
                outs.append(self._execute(_Act(xb), mode="run", ctx=ctx).real)
                if progress is not None:
                    progress(len(xb))
        if trace is not None:
            # rows use by use (a matrix used once: just the chunks in order), each use's sample-major
            for lt in trace.values():
                for key in ("adc_codes", "out_codes"):
                    parts = sorted(getattr(lt, key), key=lambda p: p[0])
                    setattr(lt, key, np.concatenate([p[1] for p in parts]))
                lt.adc_codes = lt.adc_codes.astype(np.int64, copy=False)
        return torch.cat(outs), trace

    def _execute(self, a: _Act, mode: str, states=None, ctx=None) -> _Act:
        """Run the graph's steps in order on input ``a``. ``mode``: ``run`` (``ctx``: coefficients and
        post-processors), ``cal`` (calibrate each analog layer used once; ``states``: the tiles at calibration
        time) or ``pool`` (every layer in float32; ``ctx``: layer name -> list, gathering each use's input)."""
        env: dict[str, object] = {}

        def value(v: object, codes: bool) -> object:
            # an argument: a step's value (its codes for a grid op on codes), or a constant
            if isinstance(v, Ref):
                got = env[v.name]
                return (got.codes if codes else got.real) if isinstance(got, _Act) else got
            if isinstance(v, (list, tuple)):
                return type(v)(value(u, codes) for u in v)
            if isinstance(v, dict):
                return {k: value(u, codes) for k, u in v.items()}
            return v

        for st in self.steps:
            if st.kind == "input":
                env[st.name] = a
            elif st.kind == "const":
                env[st.name] = st.args[0]
            elif st.kind == "output":
                out = env[st.args[0].name]
                return out if isinstance(out, _Act) else _Act(out)
            elif st.kind == "layer":
                x = env[st.args[0].name]
                spec = st.spec
                if spec.owner.digital or mode == "pool":
                    if mode == "pool" and spec.name in ctx:
                        ctx[spec.name].append((spec, x))
                    env[st.name] = _Act(spec.digital_forward(x.real))
                elif mode == "cal":
                    env[st.name] = (self._calibrate_layer(spec, x, states[spec.name]) if spec.owner.uses == 1
                                    else self._cal_shared(spec, x, states[spec.name]))
                else:
                    env[st.name] = self._run_layer(spec, x, ctx)
            else:
                # a grid op keeps codes codes when its tensor input is codes (see nmpu_model.network.graph)
                src = [env[r] for r in st.refs]
                on_codes = (st.kind == "grid" and len(src) >= 1 and isinstance(src[0], _Act)
                            and src[0].codes is not None)
                r = st.fn(*value(st.args, on_codes), **value(st.kwargs, on_codes))
                if on_codes and isinstance(r, torch.Tensor):
                    env[st.name] = _Act(r * src[0].step, r, src[0].step)
                elif isinstance(r, torch.Tensor):
                    env[st.name] = _Act(r)
                else:
                    env[st.name] = r
        raise GraphError("network: the graph has no output")

    def _run_layer(self, spec: LayerSpec, a: _Act, ctx: dict) -> _Act:
        cal = self.cal[spec.name]
        u_full = self._dac_input(a, cal)
        u, conv, shape = _geometry(spec, u_full)
        rows_per_image = int(np.prod(shape[1:]))
        x = self.programmed[spec.name].mvm(u, self.states[spec.name], cal.out_bound,
                                           derive_seed(self.seed, spec.index, "out", self.t, *_use(spec)),
                                           first_row=ctx["first_image"] * rows_per_image, conv=conv)
        lc: LayerCoeffs = ctx["coeffs"][spec.name]
        p = ctx["per_layer"].get(spec.name, ctx["post"])
        # the output codes in the narrowest integer type holding the output format: the datapath writes and the
        # conversion to float32 below reads a quarter to an eighth of int64's bytes (the trace keeps int64)
        y = postprocess(x, lc, p, dtype=code_dtype(lc.config.output))
        if spec.relu and not lc.config.relu:  # the config has no ReLU stage: done digitally after
            y = np.maximum(y, 0)
        tr = ctx["trace"]
        if tr is not None:
            lt = tr.setdefault(spec.name, LayerTrace(spec.name, [], lc, [], p if isinstance(p, str) else
                                                     getattr(p, "__name__", "callable")))
            lt.adc_codes.append((spec.use, x))
            lt.out_codes.append((spec.use, y.astype(np.int64)))
        c = _col2im(torch.from_numpy(y), shape, conv, spec, tuple(u_full.shape[:-1]))
        return _Act(None, c, cal.step_out)


def postprocess(x: np.ndarray, lc: LayerCoeffs, post: str | PostProcessor, dtype: Any = np.int64) -> np.ndarray:
    """Post-process one layer's ADC codes ``x`` with ``post`` (see :meth:`AnalogNetwork.run`): output codes of
    ``dtype`` (an integer type that holds the output format; a user's post-processor's codes are int64)."""
    if callable(post):
        y = np.asarray(post(x.astype(np.int64, copy=False), lc.codes, lc.out_frac))
        if y.shape != x.shape or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"post-processor returned {y.dtype} {y.shape}, expected integer codes {x.shape}")
        return y.astype(np.int64, copy=False)
    if post == "fixed":
        return apply(x, lc.config, lc.codes, "fixed", lc.out_frac, dtype=dtype)
    return apply(x, lc.config, lc.real, post, lc.out_frac, dtype=dtype)


def replay(trace: Trace, net: AnalogNetwork, config: NMPUConfig,
           post: str | PostProcessor = "fixed") -> dict[str, np.ndarray]:
    """Re-run only the post-processing of every layer of ``trace`` for ``config``.

    The ADC codes are those recorded (upstream fixed as it was when recorded), so this measures
    what the post-processing alone changes, layer by layer, without running the tiles again.
    Returns layer name -> output codes.
    """
    coeffs = net.coefficients(config)
    return {name: postprocess(lt.adc_codes, coeffs[name], post) for name, lt in trace.items()}


def capture(model: nn.Module, x: torch.Tensor, calib_x: torch.Tensor, config: NMPUConfig, *, seed: int = 0,
            t: float = 3600.0, tile: TileParams | None = None, post: str | PostProcessor = "fixed",
            digital: Iterable[str] | str = ("first", "last")) -> tuple[AnalogNetwork, torch.Tensor, Trace]:
    """Build, run once and record: the one-call entry for the sweep and the RTL co-simulation.

    Returns ``(net, outputs, trace)``; ``trace[name]`` holds the layer's ADC codes (int64,
    ``(samples, columns)``), its :class:`LayerCoeffs` (integer codes, real values, ``out_frac``)
    and its output codes.
    """
    tile = tile or TileParams(adc_bits=config.adc_bits, dac_bits=config.output.bits, dac_signed=config.output.signed)
    net = AnalogNetwork.build(model, calib_x, seed=seed, t=t, tile=tile, digital=digital)
    out, trace = net.run(x, config, post, record=True)
    return net, out, trace
