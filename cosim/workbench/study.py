"""A study as the form or the API submits it, checked into parameters, and each stage's command line.

Every check gives a one-line ``ValueError`` before anything is stored. The NMPU configuration is checked by the
project's own loader (:func:`nmpu_model.golden.config.load_config`) on the TOML text the run will be given, a grid
by the sweep's own reader; an uploaded network and its data by the loader ``nmpu eval --model FILE --data FILE``
uses (:func:`nmpu_model.workloads.registry.load_workload`: the ``.npz`` read without pickles, the network run on
two samples).

A stage is one entry in :data:`STAGES`: the ``nmpu`` command it runs, the JSON file that command writes, the form
fields it takes beyond the ones every stage takes (network, device, compensation, images, digital layers,
configuration), and the arguments it builds from the parameters. Every
path in a command is relative to the run folder (the command runs there), so the command shown is the one to
type in that folder.
"""
from __future__ import annotations

import math
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from nmpu_model.analog.devices import device_by_name, device_names
from nmpu_model.analog.tiles import DRIFT_COMPENSATIONS
from nmpu_model.golden.config import ConfigError, NMPUConfig, load_config, toml_text
from nmpu_model.workloads.registry import MODELS

#: the built-in networks the form offers: resnet9 needs a CIFAR-10 folder (--data), which is not uploaded
NETWORKS = tuple(m for m in MODELS if m != "resnet9")
#: the network field's value for an uploaded network (its file and its data come with the form)
UPLOAD = "upload"
#: an uploaded network's and data's names in the run folder (the names the user gave are never paths)
MODEL_SUFFIXES = (".pt2", ".onnx")
DATA_NAME = "data.npz"
DEVICES = device_names()
COMPENSATIONS = DRIFT_COMPENSATIONS
#: the configuration fields the form shows: (form name, TOML table or None, key)
CONFIG_FIELDS = (("adc_bits", None, "adc_bits"),
                 ("scale_bits", "scale", "bits"), ("scale_frac", "scale", "frac"),
                 ("offset_bits", "offset", "bits"), ("offset_frac", "offset", "frac"),
                 ("output_bits", "output", "bits"), ("output_frac", "output", "frac"))
MAX_SEEDS, MAX_DRIFTS, MAX_TRIALS = 100, 20, 10_000
OBJECTIVES = ("energy", "area")


def defaults() -> dict[str, Any]:
    """The form's starting values: the CLI's defaults, on a small run."""
    d = NMPUConfig().to_dict()
    cfg = {name: (d[key] if table is None else d[table][key]) for name, table, key in CONFIG_FIELDS}
    return {"stage": "eval", "network": "digits-cnn", "device": "pcm", "compensation": "global", "digital": "",
            "seeds": 2, "drift": "1,3600,86400", "drift_time": 3600, "images": 200, "config_toml": "",
            "grid_toml": "", "tolerance": "", "workers": "", "formats_toml": "", "trials": 64, "objective": "energy",
            "verify": True, "seed": 0, "samples": "", "ppa": True, "layout": False,
            "precisions": False, **cfg}


# ---- the fields' checks ---------------------------------------------------------------------------------------
def _blank(v: Any) -> bool:
    return v is None or isinstance(v, str) and not v.strip()


def _int(form: Mapping[str, Any], name: str, low: int, high: int | None = None, blank: bool = False) -> int | None:
    v = form.get(name)
    if _blank(v):
        if blank:
            return None
        raise ValueError(f"{name} is missing")
    if isinstance(v, bool) or isinstance(v, float) and not v.is_integer():
        raise ValueError(f"{name} must be an integer, not {v!r}")
    try:
        n = int(str(v).strip()) if not isinstance(v, (int, float)) else int(v)
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {v!r}") from None
    if n < low or high is not None and n > high:
        raise ValueError(f"{name} must be {'>= ' + str(low) if high is None else f'in {low}..{high}'}, not {n}")
    return n


def _float(form: Mapping[str, Any], name: str, default: float) -> float:
    """A finite number >= 0 (blank: ``default``)."""
    v = form.get(name)
    if _blank(v):
        return default
    try:
        x = float(v) if not isinstance(v, bool) else math.nan
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, not {v!r}") from None
    if not (math.isfinite(x) and x >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, not {v!r}")
    return x


def _bool(form: Mapping[str, Any], name: str, default: bool) -> bool:
    """A checkbox: JSON true/false, or the form's "1"/"0" ("on" when a browser sends a box without a value)."""
    v = form.get(name)
    if v is None or v == "":
        return default
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("1", "on", "true", "yes", "0", "off", "false", "no"):
        return v.strip().lower() in ("1", "on", "true", "yes")
    raise ValueError(f"{name} must be true or false, not {v!r}")


def _choice(form: Mapping[str, Any], name: str, choices: tuple[str, ...], default: str) -> str:
    v = form.get(name)
    v = default if _blank(v) else v
    if v not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, not {v!r}")
    return v


def _number_text(t: float) -> str:
    """A time as the command gets it: whole seconds without '.0', else every digit."""
    return str(int(t)) if t.is_integer() else repr(t)


def parse_drifts(text: Any) -> list[float]:
    """``"1,3600"`` -> ``[1.0, 3600.0]``: finite times >= 0 s (as ``nmpu eval --drift``)."""
    from nmpu_model.studies.evaluate import parse_drifts as parse

    if not isinstance(text, str) or not text.strip():
        raise ValueError("drift: give comma-separated drift times in seconds, e.g. 1,3600")
    out = parse(text, "drift")
    if len(out) > MAX_DRIFTS:
        raise ValueError(f"drift: at most {MAX_DRIFTS} times, not {len(out)}")
    return out


def _checked_toml(text: str, name: str, read: Callable[[Path], Any]) -> Any:
    """``read`` (the project's own reader) on ``text`` written to a file ``name``; its error as one line."""
    with tempfile.TemporaryDirectory(prefix="nmpu-wb-") as tmp:
        path = Path(tmp) / name
        path.write_text(text)
        try:
            return read(path)
        except (ConfigError, ValueError) as e:
            raise ValueError(f"{Path(name).stem}: " + str(e).replace(str(path), name).splitlines()[0]) from None


def config_toml(form: Mapping[str, Any]) -> str:
    """The run's configuration TOML, checked by the project's loader: the form's TOML text if given, else the
    spec's defaults with the form's fields; its error is one line naming the field."""
    text = form.get("config_toml")
    if not (text is None or isinstance(text, str)):
        raise ValueError(f"config_toml must be TOML text, not {type(text).__name__}")
    if not (isinstance(text, str) and text.strip()):
        d = NMPUConfig().to_dict()
        for name, table, key in CONFIG_FIELDS:
            if form.get(name) not in (None, ""):
                v = _int(form, name, -64, 64)
                (d if table is None else d[table])[key] = v
        text = toml_text(d)
    _checked_toml(text, "config.toml", load_config)
    return text


def grid_toml(form: Mapping[str, Any], name: str, config: str) -> str | None:
    """A ``[grid]`` TOML (sweep's grid, map's formats) or None when blank: read by the sweep's reader, and every
    point's configuration made from the base, as ``nmpu sweep`` does before any work."""
    from nmpu_model.studies.sweep import grid_points, load_grid, point_config

    text = form.get(name)
    if _blank(text):
        return None
    if not isinstance(text, str):
        raise ValueError(f"{name} must be TOML text with a [grid] table")
    base = _checked_toml(config, "config.toml", load_config)
    file = name.replace("_toml", ".toml")

    def read(path: Path) -> None:
        for point in grid_points(load_grid(path)):
            try:
                point_config(base, point)
            except (ConfigError, ValueError) as e:
                raise ValueError(f"{path}: point {point}: {e}") from None
    _checked_toml(text, file, read)
    return text


# ---- the stages -------------------------------------------------------------------------------------------------
def _common_args(p: Mapping[str, Any]) -> list[str]:
    args = ["--model", p["network"]]
    if p.get("data"):
        args += ["--data", p["data"]]
    args += ["--device", p["device"], "--compensation", p["compensation"]]
    if p.get("images"):
        args += ["--images", str(p["images"])]
    if p.get("digital"):
        args += ["--digital", p["digital"]]
    return args + ["--config", "config.toml"]


def _workers(p: Mapping[str, Any]) -> list[str]:
    return ["--workers", str(p["workers"])] if p.get("workers") is not None else []


def eval_args(p: Mapping[str, Any]) -> list[str]:
    return ["eval", *_common_args(p), "--seeds", str(p["seeds"]), "--drift", p["drift"], "--json", "eval.json"]


def sweep_args(p: Mapping[str, Any]) -> list[str]:
    return (["sweep", *_common_args(p), "--seeds", str(p["seeds"]), "--drift", p["drift_time"]]
            + (["--grid", "grid.toml"] if p.get("grid_toml") else [])
            + (["--tolerance", _number_text(p["tolerance"])] if p.get("tolerance") is not None else [])
            + _workers(p) + ["--json", "sweep.json", "--plot", "sweep.png"])


def map_args(p: Mapping[str, Any]) -> list[str]:
    return (["map", *_common_args(p), "--seeds", str(p["seeds"]), "--drift", p["drift_time"]]
            + (["--formats", "formats.toml"] if p.get("formats_toml") else [])
            + ["--trials", str(p["trials"]), "--objective", p["objective"], "--seed", str(p["seed"])]
            + (["--tolerance", _number_text(p["tolerance"])] if p.get("tolerance") is not None else [])
            + (["--samples", str(p["samples"])] if p.get("samples") else [])
            + ([] if p["verify"] else ["--no-verify"]) + _workers(p) + ["--out", ".", "--json", "map.json"])


def cosim_args(p: Mapping[str, Any]) -> list[str]:
    return ["cosim", *_common_args(p), "--seed", str(p["seed"]), "--drift", p["drift_time"], "--json", "cosim.json"]


def synth_args(p: Mapping[str, Any]) -> list[str]:
    return (["synth", *_common_args(p), "--compare", "--breakdown", "--out", "synth"]
            + ([] if p["precisions"] else ["--no-precisions"])
            + ((["--samples", str(p["samples"])] if p["samples"] else []) if p["ppa"] else ["--no-ppa"])
            + (["--layout"] if p["layout"] else []) + ["--json", "synth.json"])


def _or_default(form: Mapping[str, Any], base: Mapping[str, Any], name: str, check: Callable[[], Any]) -> Any:
    """``check()`` on a given field; a blank one takes the form's default."""
    return base[name] if _blank(form.get(name)) else check()


#: each stage field's check: (the form, the parameters so far, the form's defaults) -> the field's parameter
FIELDS: dict[str, Callable[[Mapping[str, Any], dict[str, Any], Mapping[str, Any]], Any]] = {
    "seeds": lambda f, p, d: _int(f, "seeds", 1, MAX_SEEDS),
    "drift": lambda f, p, d: ",".join(_number_text(t) for t in parse_drifts(f.get("drift"))),
    "drift_time": lambda f, p, d: _number_text(_float(f, "drift_time", float(d["drift_time"]))),
    "grid_toml": lambda f, p, d: grid_toml(f, "grid_toml", p["config_toml"]),
    "formats_toml": lambda f, p, d: grid_toml(f, "formats_toml", p["config_toml"]),
    "tolerance": lambda f, p, d: None if _blank(f.get("tolerance")) else _float(f, "tolerance", 0.0),
    "workers": lambda f, p, d: _int(f, "workers", 0, 64, blank=True),
    "trials": lambda f, p, d: _or_default(f, d, "trials", lambda: _int(f, "trials", 1, MAX_TRIALS)),
    "objective": lambda f, p, d: _choice(f, "objective", OBJECTIVES, d["objective"]),
    "seed": lambda f, p, d: _or_default(f, d, "seed", lambda: _int(f, "seed", 0, 2**31 - 1)),
    "samples": lambda f, p, d: _int(f, "samples", 1, 100_000, blank=True),
    **{b: (lambda name: lambda f, p, d: _bool(f, name, d[name]))(b) for b in ("verify", "ppa", "layout", "precisions")},
}


@dataclass(frozen=True)
class Stage:
    """One kind of run: ``nmpu <name>`` with ``args(params)``, writing ``json`` into the run folder."""
    name: str
    json: str
    fields: tuple[str, ...]
    args: Callable[[Mapping[str, Any]], list[str]]
    help: str


STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("eval", "eval.json", ("seeds", "drift"), eval_args,
          "accuracy on analog tiles, fp32 / fp16 / fixed-point post-processing, per drift time"),
    Stage("sweep", "sweep.json", ("seeds", "drift_time", "grid_toml", "tolerance", "workers"), sweep_args,
          "precision study: the metric over a grid of formats against the fp16 unit, the cheapest within the "
          "tolerance"),
    Stage("map", "map.json", ("seeds", "drift_time", "formats_toml", "trials", "tolerance", "objective", "verify",
                              "workers", "seed", "samples"), map_args,
          "which layer on which unit with how many bits: sensitivity, the Pareto front of loss and cost per "
          "inference, the chosen mapping with the RTL in the loop"),
    Stage("cosim", "cosim.json", ("seed", "drift_time"), cosim_args,
          "RTL in the loop: every analog layer's codes through the Verilated NMPU, each output against the "
          "golden model"),
    Stage("synth", "synth.json", ("samples", "ppa", "layout", "precisions"), synth_args,
          "synthesis of the NMPU and the FP16 unit: area, flip-flops, latency; timing, power (and layout) in "
          "OSU 0.18 um"),
)}


def check(form: Mapping[str, Any], upload: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The parameters of a submitted study (form fields or JSON; a field left out takes the form's default), or a
    one-line ValueError.

    ``upload``: the uploaded network's and data's file names in the run folder (``network.pt2``, ``data.npz``), the
    folder they wait in and the names they were sent with (``names``); the network field must then be :data:`UPLOAD`.
    """
    form = {**defaults(), **form}
    stage = form.get("stage") or "eval"
    if not isinstance(stage, str) or stage not in STAGES:
        raise ValueError(f"stage must be one of {', '.join(STAGES)}, not {stage!r}")
    st = STAGES[stage]
    network = form.get("network") or "digits-cnn"
    if not isinstance(network, str):
        raise ValueError(f"network must be one of {', '.join(NETWORKS)} or {UPLOAD}, not {network!r}")
    if network == UPLOAD:
        if not upload:
            raise ValueError("network: upload a .pt2 or .onnx file and its .npz data (multipart form fields "
                             "model_file and data_file)")
    elif network not in NETWORKS:
        raise ValueError(f"network must be one of {', '.join(NETWORKS)} or {UPLOAD} (a .pt2/.onnx file with its "
                         f".npz data), not {network!r}")
    elif upload:
        raise ValueError(f"network: files were uploaded, but the network field says {network!r}: choose {UPLOAD}")
    device = str(form.get("device") or "pcm")
    if device.partition(":")[0] not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)} (optionally NAME:field=value,...), "
                         f"not {device!r}")
    try:
        device_by_name(device)
    except ValueError as e:
        raise ValueError(str(e).replace("--device", "device").splitlines()[0]) from None
    p: dict[str, Any] = {"stage": stage, "network": upload["model"] if upload else network}
    if upload:
        p["data"] = upload["data"]
        p["uploaded"] = upload.get("names", "")
    p["device"] = device
    p["compensation"] = _choice(form, "compensation", COMPENSATIONS, "global")
    p["images"] = _int(form, "images", 1, None, blank=True)
    p["digital"] = digital_text(form.get("digital"))
    if upload:
        folder = Path(upload["folder"])
        check_network(str(folder / upload["model"]), str(folder / upload["data"]), p["digital"], folder)
    elif p["digital"] is not None:
        check_network(network, None, p["digital"])
    p["config_toml"] = config_toml(form)
    base = defaults()
    for f in st.fields:
        p[f] = FIELDS[f](form, p, base)
    if stage == "synth" and p["layout"] and not p["ppa"]:
        raise ValueError("layout places and routes the OSU 0.18 um netlists of the timing and power flow: tick ppa too")
    return p


def texts(p: Mapping[str, Any]) -> dict[str, str]:
    """The text files a run's folder gets before its command starts: its configuration, and its grid."""
    out = {"config.toml": p["config_toml"]}
    for f in ("grid_toml", "formats_toml"):
        if p.get(f):
            out[f.replace("_toml", ".toml")] = p[f]
    return out


def digital_text(v: Any) -> str | None:
    """The layers kept digital as ``--digital`` takes them (names, first, last, none), or None (the default)."""
    if _blank(v):
        return None
    if not isinstance(v, str):
        raise ValueError(f"digital must be layer names separated by commas, not {v!r}")
    names = [t.strip() for t in v.split(",") if t.strip()]
    if not names or any(not all(c.isalnum() or c in "_.-" for c in n) for n in names):
        raise ValueError(f"digital must be layer names separated by commas (or first, last, none), not {v!r}")
    return ",".join(names)


def check_network(model: str, data: str | None, digital: str | None, folder: Path | None = None) -> None:
    """A network (an uploaded file and its data, or a built-in one with its digital layers) as ``nmpu eval``
    checks it before any work: the files read (the ``.npz`` without pickles), the network run on two samples, the
    digital layers known and something left on tiles. One-line ValueError; paths in it as named in the run folder."""
    from nmpu_model.network.analog_network import check_on_tiles
    from nmpu_model.workloads.registry import digital_names, load_workload

    try:
        work = load_workload(model, data, 2, digital=digital_names(digital, "digital"))
        check_on_tiles(work.model, work.x_cal, work.digital)
    except ValueError as e:
        msg = str(e).splitlines()[0]
        raise ValueError(msg.replace(str(folder) + "/", "") if folder is not None else msg) from None


def command_line(args: list[str]) -> str:
    """The command as a user types it (in the run folder)."""
    return shlex.join(["nmpu", *args])
