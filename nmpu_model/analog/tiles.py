"""Analog in-memory computing tiles in PyTorch: weights -> device conductances -> ADC codes per column.

A layer's weight matrix ``W`` (``K`` inputs x ``C`` outputs, im2col for convolutions) is mapped
onto a grid of crossbar tiles of ``rows x cols`` devices pairs (default 256 x 256, one HERMES core).
Each weight is a differential pair of devices, ``G+ - G-``, with the largest weight of a column
at ``g_max`` (column-wise weight scaling, as AIHWKit's ``MappingParameter.weight_scaling_columnwise``;
the per-column factor is undone by the NMPU's per-column scale, which is what that scale is for).

The device model is one of :mod:`nmpu_model.analog.devices` (``TileParams.device``); by default the published PCM
statistical model as implemented by AIHWKit's ``PCMLikeNoiseModel`` (Nandakumar et al., ICECS 2019; Joshi et
al., Nat. Commun. 11, 2473, 2020), :mod:`nmpu_model.analog.pcm`:

- programming noise: Gaussian, std a 2nd-order polynomial of ``g_target / g_max`` (in uS at 25 uS);
- drift: ``g(t) = g_prog * ((t + t0) / t0) ** -nu``, ``nu`` drawn per device (mean and spread
  depend on ``g_target``), ``t`` counted from the end of programming, ``t0 = 20 s``;
- 1/f read noise accumulated up to ``t``: relative std ``q_s * sqrt(log((t + t_read) / (2 t_read)))``;
- drift compensation: global (AIHWKit ``GlobalDriftCompensation``): one factor per layer from reading the
  array with a known all-ones input, now against right after programming; or per column (AIHWKit
  ``PerColumnDriftCompensation``): one factor per output column, the mean ``|w|`` of the column read with
  one-hot inputs, now against right after programming (``TileParams.drift_compensation``).

Periphery: inputs are ``dac_bits`` codes, signed or not (value ``u / dac_max`` of full scale),
Gaussian output noise, then per-column ADCs with a gain and offset mismatch that is fixed per tile
and seed, rounding to signed ``adc_bits`` codes with clipping.

Where the partial sums of a split layer meet: all row tiles of a layer share one ADC step (in units
of the whole layer's MVM), each tile's ADC clips to ``adc_bits``, and a digital integer adder in
front of the NMPU sums the tiles' codes and saturates the sum to ``adc_bits``. So the NMPU sees one
``adc_bits`` code per column whatever the layer size, as the datapath contract requires; a
partial sum can clip on its own tile (rare: partial sums are smaller than the whole).

Every Gaussian draw is made by counter (:func:`nmpu_model.analog.streams.normal`), from a stream key that
:func:`derive_seed` makes of ``(seed, layer, purpose[, time])`` with ``numpy.random.SeedSequence``:
device ``i``'s programming noise, drift exponent and read noise at ``t`` are ``normal(key, i)`` of
their streams, and the output noise added to row tile ``t``'s column ``j`` for input row ``r`` is
``normal(key, (r * n_row_tiles + t) * C + j)``, so it does not depend on how the rows are batched.
The per-tile ADC gain and offset come from a ``torch.Generator`` seeded the same way. The same seed
gives the same bits.

The MVM is computed tile by tile: a float32 matrix product per row tile on a block of input rows, or,
for a convolution, a float32 convolution per row tile over the input channels that the tile's rows
touch (its weight zero where the rows of the neighbouring tiles are; no im2col matrix is made), then
one compiled pass (:func:`nmpu_model.analog.tiles.adc_tile`) adds the noise, applies the ADC and sums the
tile's codes into the layer's. A convolution call always takes the same number of images for a layer
(:func:`conv_group`), so that an image's currents, to the last bit, do not depend on the batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from numba import njit

from . import devices
from .devices import DeviceModel
from .pcm import PCMParams
from .streams import _fill_normals, derive_seed, generator

__all__ = ["TileParams", "ProgrammedLayer", "DriftState", "Conv", "program_layer"]


#: how the drift of a layer's conductances is compensated: one factor per layer (read with an all-ones input, or with
#: one-hot inputs as AIHWKit's GlobalDriftCompensation since its #412), or one per output column
DRIFT_COMPENSATIONS = ("global", "global-onehot", "column")


@dataclass(frozen=True)
class TileParams:
    """Crossbar and periphery parameters.

    Parameters
    ----------
    rows, cols : int
        Tile size (HERMES: 256 x 256, Le Gallo et al., Nat. Electron. 2023).
    dac_bits, adc_bits : int
        Input and output code widths (HERMES: 8-bit inputs and outputs); ADC codes are signed.
    dac_signed : bool
        Signed DAC codes (default) or unsigned (``[0, 2**dac_bits - 1]``, for an NMPU whose output
        format is unsigned after ReLU).
    out_noise : float
        Std of additive Gaussian output noise in units of one full-scale input times one
        full-scale weight (AIHWKit ``IOParameters.out_noise`` default 0.06).
    adc_gain_std, adc_offset_std : float
        Per-column ADC gain mismatch (relative std) and offset (std in LSB). No published per-column
        figure for HERMES' CCO ADCs is at hand (the chip is "digitally calibrated"); 3 % and 1.5 LSB
        are assumptions, large enough that the affine correction has visible work to do.
    out_bound : float or None
        ADC full scale in the units of ``out_noise``. ``None``: chosen per layer by calibration
        (models HERMES' programmable integration time); AIHWKit's default is 12.
    device : DeviceModel or None
        Device model (:class:`~nmpu_model.analog.pcm.PCMParams`, :class:`~nmpu_model.analog.hermes.HermesParams`);
        ``None`` gives ideal devices (exact target conductances, no drift).
    drift_compensation : str
        ``"global"`` (one factor per layer, read with an all-ones input), ``"global-onehot"`` (one factor per layer,
        read with one-hot inputs: AIHWKit's ``GlobalDriftCompensation``) or ``"column"`` (one factor per output
        column: AIHWKit's ``PerColumnDriftCompensation``).
    """

    rows: int = 256
    cols: int = 256
    dac_bits: int = 8
    adc_bits: int = 8
    dac_signed: bool = True
    out_noise: float = 0.06
    adc_gain_std: float = 0.03
    adc_offset_std: float = 1.5
    out_bound: float | None = None
    device: DeviceModel | None = field(default_factory=PCMParams)
    drift_compensation: str = "global"

    def __post_init__(self) -> None:
        for name in ("rows", "cols", "dac_bits", "adc_bits"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"TileParams.{name} must be a positive integer, not {v!r}")
        for name in ("out_noise", "adc_gain_std", "adc_offset_std"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"TileParams.{name} must be >= 0, not {getattr(self, name)!r}")
        if self.device is not None and not isinstance(self.device, DeviceModel):
            raise ValueError(f"TileParams.device must be a device model (PCMParams, HermesParams) or None, "
                             f"not {self.device!r}")
        if self.drift_compensation not in DRIFT_COMPENSATIONS:
            raise ValueError(f"drift compensation must be one of {', '.join(DRIFT_COMPENSATIONS)}, "
                             f"not {self.drift_compensation!r}")

    def describe_devices(self) -> str:
        """One line: the device model and the drift compensation."""
        dev = self.device.describe() if self.device is not None else "ideal devices (no noise, no drift)"
        return f"{dev}; drift compensation {self.drift_compensation}"

    @classmethod
    def ideal(cls, **kw) -> "TileParams":
        """A noise-free tile: ideal devices, no output noise, no ADC mismatch (quantization stays)."""
        return cls(out_noise=0.0, adc_gain_std=0.0, adc_offset_std=0.0, device=None, **kw)

    @property
    def dac_max(self) -> int:
        return (1 << (self.dac_bits - 1)) - 1 if self.dac_signed else (1 << self.dac_bits) - 1

    @property
    def dac_min(self) -> int:
        return -(1 << (self.dac_bits - 1)) if self.dac_signed else 0

    @property
    def adc_max(self) -> int:
        return (1 << (self.adc_bits - 1)) - 1


# ---- one layer on its tiles ----------------------------------------------------------------------
@dataclass
class DriftState:
    """The conductances of a programmed layer read at time ``t`` (s after programming).

    ``weights`` has shape ``(K, C)``, float32: normalized ``(G+ - G-) / g_max``; row tile ``r`` holds
    rows ``r * rows`` to ``(r + 1) * rows``.
    ``readout`` is the global-drift-compensation readout (mean |column current| for an all-ones input),
    ``readout_columns`` the per-column one (float64 ``(C,)``: mean ``|w|`` of each column, one-hot inputs).
    """

    t: float
    weights: torch.Tensor
    readout: float
    readout_columns: torch.Tensor
    #: the row tiles of ``weights`` as convolution weights, made on first use (see :meth:`ProgrammedLayer.mvm`)
    conv_weights: dict = field(default_factory=dict, init=False, repr=False, compare=False)


@dataclass(frozen=True)
class Conv:
    """The geometry of a convolution that :meth:`ProgrammedLayer.mvm` computes on the tiles (rows of the
    weight matrix in im2col order: input channel, then kernel row and column)."""

    kernel: tuple[int, int]
    padding: tuple[int, int]
    stride: tuple[int, int]

    def out_hw(self, h: int, w: int) -> tuple[int, int]:
        return ((h + 2 * self.padding[0] - self.kernel[0]) // self.stride[0] + 1,
                (w + 2 * self.padding[1] - self.kernel[1]) // self.stride[1] + 1)


#: input rows per block of :meth:`ProgrammedLayer.mvm` (one matrix product per row tile, then the ADCs)
BLOCK_ROWS = 2048
#: the most images per convolution call of :meth:`ProgrammedLayer.mvm`
CONV_GROUP = 8


def conv_group(per_image: int) -> int:
    """Images per convolution call for ``per_image`` output rows an image: a function of the layer's
    geometry alone (the last call of a batch is filled up with zero images), so that the convolution
    that computes an image's currents is the same call, with the same arithmetic, whatever the batch."""
    return max(1, min(CONV_GROUP, BLOCK_ROWS // per_image))


@dataclass
class ProgrammedLayer:
    """A weight matrix programmed onto tiles, with its ADC mismatch. Create with :func:`program_layer`.

    Attributes
    ----------
    target : Tensor (K, C)
        Normalized target weights in ``[-1, 1]`` (what the ideal device would hold).
    col_scale : Tensor (C,)
        Per-column factor: ``W[:, j] = col_sign[j] * col_scale[j] * target[:, j]``.
    col_sign : Tensor (C,)
        +1 or -1: the sign moved into the weights of column ``j`` (negative folded scales).
    adc_gain, adc_offset : Tensor (n_row_tiles, C)
        Per tile and column ADC gain (around 1) and offset (in LSB).
    """

    params: TileParams
    seed: int
    layer: int
    target: torch.Tensor
    col_scale: torch.Tensor
    col_sign: torch.Tensor
    g_prog_pos: torch.Tensor | None
    g_prog_neg: torch.Tensor | None
    nu_pos: torch.Tensor | None
    nu_neg: torch.Tensor | None
    adc_gain: torch.Tensor
    adc_offset: torch.Tensor
    #: the devices' 1/f read-noise factor ``q_s`` (a function of the programmed conductances alone): made by
    #: the first :meth:`at`, kept for the next drift times; not pickled
    _q_s: torch.Tensor | None = field(default=None, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_q_s": None}

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.target.shape)  # type: ignore[return-value]

    @property
    def n_row_tiles(self) -> int:
        return -(-self.target.shape[0] // self.params.rows)

    @property
    def n_col_tiles(self) -> int:
        return -(-self.target.shape[1] // self.params.cols)

    def at(self, t: float) -> DriftState:
        """Read the array at ``t`` seconds after programming (drift and 1/f noise drawn per seed and t)."""
        p = self.params.device
        if p is None:
            w = self.target.float()
        else:
            g_prog = torch.cat([self.g_prog_pos.reshape(-1), self.g_prog_neg.reshape(-1)])
            nu = torch.cat([self.nu_pos.reshape(-1), self.nu_neg.reshape(-1)])
            if self._q_s is None:
                self._q_s = p.read_noise_factor(g_prog)
            w = devices.read(p, g_prog, nu, self._q_s, t, derive_seed(self.seed, self.layer, "read", float(t)),
                             tuple(self.target.shape))
        wd = w.double()
        # AIHWKit GlobalDriftCompensation with an all-ones input; PerColumnDriftCompensation with one-hot inputs
        return DriftState(float(t), w, float(wd.sum(dim=0).abs().mean()), wd.abs().mean(dim=0))

    def at_programming(self) -> DriftState:
        """The programmed conductances, before drift and read noise: the drift-compensation baseline (AIHWKit
        ``init_baseline``)."""
        p = self.params.device
        w = self.target if p is None else (self.g_prog_pos.double() - self.g_prog_neg.double()) / p.g_max
        return DriftState(0.0, w.float(), float(w.sum(dim=0).abs().mean()), w.abs().mean(dim=0))

    def readout_programmed(self) -> float:
        """The global drift-compensation baseline (:meth:`at_programming`'s readout)."""
        return self.at_programming().readout

    def compensation(self, base: float, base_columns: torch.Tensor, state: DriftState) -> float | np.ndarray:
        """The drift compensation that brings ``state``'s readout back to a baseline (``base``: the global
        readout, ``base_columns``: the per-column one), to multiply the layer's outputs by: a number, or with
        ``drift_compensation = "column"`` a float64 array ``(C,)``, one factor per column."""
        comp = self.params.drift_compensation
        if comp == "column":
            return (torch.as_tensor(base_columns, dtype=torch.float64)
                    / state.readout_columns.clamp(min=1e-30)).numpy()
        if comp == "global-onehot":      # mean |w| over the layer: the columns' readouts averaged
            return float(torch.as_tensor(base_columns, dtype=torch.float64).mean()
                         / max(float(state.readout_columns.mean()), 1e-30))
        return base / max(state.readout, 1e-30)

    def currents(self, u: torch.Tensor, state: DriftState) -> torch.Tensor:
        """Column currents ``(M, C)`` of the whole layer (all row tiles summed) in full-scale units,
        noise-free, for input DAC codes ``u`` ``(M, K)``."""
        return (u.float() / self.params.dac_max) @ state.weights

    def row_tiles(self) -> list[tuple[int, int]]:
        """The rows ``[a, b)`` of the weight matrix on each row tile."""
        k, rows = self.target.shape[0], self.params.rows
        return [(a, min(k, a + rows)) for a in range(0, k, rows)]

    def conv_tiles(self, w: torch.Tensor, kernel: tuple[int, int]) -> list[tuple[int, int, torch.Tensor]]:
        """The row tiles of a convolution's ``(K, C)`` weight matrix ``w`` (im2col order: channel, then
        kernel row and column) as convolution weights: per tile the input channels ``[c0, c1)`` that its
        rows touch and a ``(C, c1 - c0, kh, kw)`` weight holding its rows, zero where the rows of the
        neighbouring tiles are."""
        kk = kernel[0] * kernel[1]
        c = w.shape[1]
        tiles = []
        for a, b in self.row_tiles():
            c0, c1 = a // kk, (b - 1) // kk + 1
            wt = torch.zeros(c, (c1 - c0) * kk)
            wt[:, a - c0 * kk:b - c0 * kk] = w[a:b].t()
            tiles.append((c0, c1, wt.view(c, c1 - c0, *kernel).contiguous(memory_format=torch.channels_last)))
        return tiles

    def mvm(self, u: torch.Tensor, state: DriftState, out_bound: float, noise_key: int | None = None, *,
            first_row: int = 0, conv: Conv | None = None) -> np.ndarray:
        """ADC codes of the layer for input DAC codes ``u``: int32 ``(M, C)``.

        ``u`` is ``(M, K)``, or with ``conv`` the ``(N, C_in, H, W)`` input of a convolution, whose
        ``M = N * Ho * Wo`` rows (image by image, then output position) are those of im2col.
        Each row tile: currents + output noise, ADC gain/offset, round, clip to ``adc_bits``;
        then the digital adder sums the row tiles' codes and saturates to ``adc_bits``. The output
        noise of row ``r`` is drawn from stream ``noise_key`` (needed when ``out_noise > 0``) at row
        ``first_row + r`` (see the module docstring).
        """
        tp = self.params
        if tp.out_noise > 0 and noise_key is None:
            raise ValueError("mvm: a noise key is needed when out_noise > 0")
        key = np.uint64(noise_key or 0)
        k_in, c = self.target.shape
        nrt = self.n_row_tiles
        gain = (self.adc_gain / (out_bound / tp.adc_max)).float().numpy()
        offset = self.adc_offset.float().numpy()
        lo, hi = -tp.adc_max - 1, tp.adc_max
        x = u.detach().float()
        if conv is None:
            if x.ndim != 2 or x.shape[1] != k_in:
                raise ValueError(f"mvm: expected inputs (M, {k_in}), got {tuple(x.shape)}")
            per_image, n = 1, x.shape[0]
        else:
            if x.ndim != 4 or x.shape[1] * conv.kernel[0] * conv.kernel[1] != k_in:
                raise ValueError(f"mvm: a {conv.kernel} convolution onto {k_in} rows cannot take inputs "
                                 f"{tuple(x.shape)}")
            ho, wo = conv.out_hw(x.shape[2], x.shape[3])
            per_image, n = ho * wo, x.shape[0]
        out = np.empty((n * per_image, c), np.int32)

        def adc(cur: torch.Tensor, r0: int, t: int) -> None:
            adc_tile(cur.numpy(), gain[t], offset[t], tp.out_noise, key, first_row + r0, t, nrt,
                             lo, hi, out[r0:r0 + cur.shape[0]], t == 0, t == nrt - 1)

        if conv is None:
            w = state.weights / tp.dac_max   # float32: the DAC's full scale is the code dac_max
            cur = torch.empty(min(n, BLOCK_ROWS), c)
            row_tiles = self.row_tiles()
            for r0 in range(0, n, BLOCK_ROWS):
                blk = x[r0:r0 + BLOCK_ROWS]
                cb = cur[:blk.shape[0]]
                for t, (a, b) in enumerate(row_tiles):
                    torch.mm(blk[:, a:b], w[a:b], out=cb)
                    adc(cb, r0, t)
            return out
        # a convolution: each row tile is a convolution over the input channels its rows touch, with the
        # weights of the other rows zero; always on the same number of images (zero images fill the last
        # group), so that an image's currents do not depend on how many came with it
        group = conv_group(per_image)
        made_for = (conv.kernel, tp.rows, tp.dac_max)
        tiles = state.conv_weights.get(made_for)
        if tiles is None:
            tiles = state.conv_weights[made_for] = self.conv_tiles(state.weights / tp.dac_max, conv.kernel)
        xs = x.contiguous(memory_format=torch.channels_last)
        for i0 in range(0, n, group):
            xb = xs[i0:i0 + group]
            rows = xb.shape[0] * per_image
            if xb.shape[0] < group:
                pad = torch.zeros((group, *xb.shape[1:])).contiguous(memory_format=torch.channels_last)
                pad[:xb.shape[0]] = xb
                xb = pad
            for t, (c0, c1, wt) in enumerate(tiles):
                y = F.conv2d(xb[:, c0:c1], wt, padding=conv.padding, stride=conv.stride)
                adc(y.permute(0, 2, 3, 1).reshape(-1, c)[:rows], i0 * per_image, t)
        return out


def program_layer(weight: torch.Tensor, params: TileParams, seed: int, layer: int,
                  col_sign: torch.Tensor | None = None, columnwise: bool = True) -> ProgrammedLayer:
    """Program a ``(K, C)`` weight matrix (inputs x outputs) onto tiles.

    Parameters
    ----------
    weight : Tensor (K, C)
        Real weights; column ``j`` computes output ``j``.
    params : TileParams
    seed, layer : int
        The noise realization (programming noise, drift exponents, ADC mismatch) is a function of
        ``(seed, layer)`` alone.
    col_sign : Tensor (C,) of +-1, optional
        Columns to program negated (to keep the NMPU scale non-negative).
    columnwise : bool
        Each column's largest weight at ``g_max`` (default), or the layer's largest weight only
        (AIHWKit's default mapping, ``beta = 1 / w_max``).
    """
    w = weight.detach().to(torch.float64)
    if w.ndim != 2:
        raise ValueError(f"program_layer: expected a 2-D (inputs, outputs) weight, got shape {tuple(w.shape)}")
    k, c = w.shape
    sign = torch.ones(c, dtype=torch.float64) if col_sign is None else col_sign.to(torch.float64)
    scale = w.abs().amax(dim=0) if columnwise else w.abs().max().expand(c).clone()
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    target = (w * sign / safe).clamp(-1.0, 1.0)
    p = params.device
    gpp = gpn = nup = nun = None
    if p is not None:
        gpp, gpn, nup, nun = devices.program(target, p, derive_seed(seed, layer, "program"),
                                             derive_seed(seed, layer, "drift-nu"))
    nr = -(-k // params.rows)
    gen = generator(seed, layer, "adc")
    gain = 1.0 + params.adc_gain_std * torch.randn(nr, c, generator=gen, dtype=torch.float64)
    offset = params.adc_offset_std * torch.randn(nr, c, generator=gen, dtype=torch.float64)
    return ProgrammedLayer(params, seed, layer, target, scale, sign, gpp, gpn, nup, nun,
                           gain.float(), offset.float())


@njit(cache=True)
def adc_tile(cur, gain, offset, sigma, key, first_row, tile, n_tiles, lo, hi, acc, first, last):
    """One row tile's ADCs on its column currents, summed into the codes of the layer.

    ``cur`` (M, C) float32 currents in full-scale units; per column ``gain`` (ADC gain / LSB) and
    ``offset`` (LSB), float32. The current of row ``s``, column ``j`` gets output noise
    ``sigma * normal(key, ((first_row + s) * n_tiles + tile) * C + j)`` (``sigma = 0``: none), then
    ``v = (cur + noise) * gain + offset`` is rounded half to even and clipped to ``[lo, hi]``:
    that is the tile's ADC code. ``acc`` (M, C) int32 holds the sum over the row tiles (``first``:
    set it; ``last``: saturate it to ``[lo, hi]``, the digital adder in front of the NMPU).
    """
    m, c = cur.shape
    z = np.zeros(c, np.float64)
    bad = np.empty(c, np.bool_)
    flo, fhi = np.float32(lo), np.float32(hi)
    for s in range(m):
        if sigma != 0:
            _fill_normals(key, np.uint64(((first_row + s) * n_tiles + tile) * c), z, bad)
        for j in range(c):
            v = (cur[s, j] + np.float32(sigma * z[j])) * gain[j] + offset[j]
            q = np.int32(min(max(np.rint(v), flo), fhi))
            a = q if first else acc[s, j] + q
            if last:
                a = min(max(a, np.int32(lo)), np.int32(hi))
            acc[s, j] = a


def warm_up() -> None:
    z2 = np.zeros((2, 2), np.float32)
    adc_tile(z2, z2[0], z2[0], 0.0, np.uint64(0), 0, 0, 1, -1, 1, np.zeros((2, 2), np.int32), True, True)
