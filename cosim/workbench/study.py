"""A study as the form or the API submits it, checked into parameters, and each stage's command line.

Every check gives a one-line ``ValueError`` before anything is stored. The NMPU configuration is checked by the
project's own loader (:func:`nmpu_model.golden.config.load_config`) on the TOML text the run will be given.
A new stage is one entry in :data:`STAGES`: its name -> the function that turns the parameters into the
arguments of its ``nmpu`` command (after the command's name) and the name of the JSON file it writes.
"""
from __future__ import annotations

import shlex
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

from nmpu_model.analog.devices import device_by_name, device_names
from nmpu_model.analog.tiles import DRIFT_COMPENSATIONS
from nmpu_model.golden.config import ConfigError, NMPUConfig, load_config, toml_text
from nmpu_model.workloads.registry import MODELS

#: the built-in networks the form offers: resnet9 needs a CIFAR-10 folder (--data), which this slice cannot upload
NETWORKS = tuple(m for m in MODELS if m != "resnet9")
DEVICES = device_names()
COMPENSATIONS = DRIFT_COMPENSATIONS
#: the configuration fields the form shows: (form name, TOML table or None, key)
CONFIG_FIELDS = (("adc_bits", None, "adc_bits"),
                 ("scale_bits", "scale", "bits"), ("scale_frac", "scale", "frac"),
                 ("offset_bits", "offset", "bits"), ("offset_frac", "offset", "frac"),
                 ("output_bits", "output", "bits"), ("output_frac", "output", "frac"))
MAX_SEEDS, MAX_DRIFTS = 100, 20


def defaults() -> dict[str, Any]:
    """The form's starting values: the CLI's defaults, on a small run."""
    d = NMPUConfig().to_dict()
    cfg = {name: (d[key] if table is None else d[table][key]) for name, table, key in CONFIG_FIELDS}
    return {"stage": "eval", "network": "digits-cnn", "device": "pcm", "compensation": "global",
            "seeds": 2, "drift": "1,3600,86400", "images": 200, "config_toml": "", **cfg}


def _int(form: Mapping[str, Any], name: str, low: int, high: int | None = None, blank: bool = False) -> int | None:
    v = form.get(name)
    if v is None or (isinstance(v, str) and not v.strip()):
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


def parse_drifts(text: Any) -> list[float]:
    """``"1,3600"`` -> ``[1.0, 3600.0]``: finite times >= 0 s (as ``nmpu eval --drift``)."""
    from nmpu_model.studies.evaluate import parse_drifts as parse

    if not isinstance(text, str) or not text.strip():
        raise ValueError("drift: give comma-separated drift times in seconds, e.g. 1,3600")
    out = parse(text, "drift")
    if len(out) > MAX_DRIFTS:
        raise ValueError(f"drift: at most {MAX_DRIFTS} times, not {len(out)}")
    return out


def config_toml(form: Mapping[str, Any]) -> str:
    """The run's configuration TOML, checked by the project's loader: the form's TOML text if given, else the
    spec's defaults with the form's fields; its error is one line naming the field."""
    text = form.get("config_toml")
    if not (isinstance(text, str) and text.strip()):
        d = NMPUConfig().to_dict()
        for name, table, key in CONFIG_FIELDS:
            if form.get(name) not in (None, ""):
                v = _int(form, name, -64, 64)
                (d if table is None else d[table])[key] = v
        text = toml_text(d)
    with tempfile.TemporaryDirectory(prefix="nmpu-wb-") as tmp:
        path = Path(tmp) / "config.toml"
        path.write_text(text)
        try:
            load_config(path)
        except (ConfigError, ValueError) as e:
            raise ValueError("config: " + str(e).replace(str(path), "config.toml").splitlines()[0]) from None
    return text


def check(form: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of a submitted study (form fields or JSON), or a one-line ValueError."""
    stage = form.get("stage") or "eval"
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {', '.join(STAGES)}, not {stage!r}")
    network = form.get("network") or "digits-cnn"
    if network not in NETWORKS:
        raise ValueError(f"network must be one of {', '.join(NETWORKS)}, not {network!r} "
                         "(uploaded .pt2/.onnx networks are not in the workbench yet)")
    device = str(form.get("device") or "pcm")
    if device.partition(":")[0] not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)} (optionally NAME:field=value,...), "
                         f"not {device!r}")
    try:
        device_by_name(device)
    except ValueError as e:
        raise ValueError(str(e).replace("--device", "device").splitlines()[0]) from None
    compensation = form.get("compensation") or "global"
    if compensation not in COMPENSATIONS:
        raise ValueError(f"compensation must be one of {', '.join(COMPENSATIONS)}, not {compensation!r}")
    seeds = _int(form, "seeds", 1, MAX_SEEDS)
    drift = parse_drifts(form.get("drift"))
    images = _int(form, "images", 1, None, blank=True)
    return {"stage": stage, "network": network, "device": device, "compensation": compensation, "seeds": seeds,
            "drift": ",".join(str(int(t)) if t.is_integer() else repr(t) for t in drift), "images": images, "config_toml": config_toml(form)}


def eval_args(p: Mapping[str, Any], folder: Path) -> tuple[list[str], str]:
    """``nmpu eval``'s arguments for the parameters, its configuration file in the run folder."""
    args = ["eval", "--model", p["network"], "--device", p["device"], "--compensation", p["compensation"],
            "--config", str(folder / "config.toml"), "--seeds", str(p["seeds"]), "--drift", p["drift"]]
    if p.get("images"):
        args += ["--images", str(p["images"])]
    return args + ["--json", str(folder / "eval.json")], "eval.json"


#: stage -> (parameters, run folder) -> (the command's arguments, the JSON file it writes into the folder)
STAGES: dict[str, Callable[[Mapping[str, Any], Path], tuple[list[str], str]]] = {"eval": eval_args}


def command_line(args: list[str]) -> str:
    """The command as a user types it."""
    return shlex.join(["nmpu", *args])
