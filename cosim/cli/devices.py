"""``nmpu devices``: the device models side by side, by the relative MVM error of one tile against drift time."""
from __future__ import annotations

import argparse

from .io import check_parent, progress_bars, write_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("devices", help="compare the device models: relative MVM error of one tile vs drift time",
                       description="Program one size x size tile with Gaussian weights under each device model "
                       "(--device of eval, sweep and cosim), read it at each drift time with drift compensation, "
                       "and print the relative MVM error ||y - y_ideal|| / ||y_ideal|| on uniform random inputs "
                       "through the 8-bit DAC: per-column weight mapping (as the networks are mapped) with the "
                       "devices only and with output noise and an 8-bit ADC, and per-tile mapping (AIHWKit's "
                       "default) with the devices only.")
    p.add_argument("--device", metavar="SPEC", action="append", help="a device model to compare, as eval's --device "
                   "(NAME or NAME:field=value,...); repeat for several (default: every model with its defaults)")
    p.add_argument("--compensation", default="global", metavar="KIND", help="drift compensation: global (default), "
                   "global-onehot (as AIHWKit's GlobalDriftCompensation) or column")
    p.add_argument("--drift", default="1,3600,86400,31536000", help="drift times in seconds (default 1 s, 1 h, 1 day, "
                   "1 year)")
    p.add_argument("--size", type=int, default=256, help="tile rows and columns (default 256, one HERMES core)")
    p.add_argument("--inputs", type=int, default=1024, help="random input vectors (default 1024)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--json", metavar="OUT", help="write the errors as JSON")
    p.add_argument("--plot", metavar="PNG", help="draw the errors against drift time")


def run(args: argparse.Namespace) -> int:
    from nmpu_model.analog.devices import device_by_name, device_names
    from nmpu_model.analog.mvm_error import device_errors, format_device_errors
    from nmpu_model.analog.tiles import DRIFT_COMPENSATIONS
    from nmpu_model.studies.evaluate import parse_drifts

    models = {n: device_by_name(n) for n in (args.device or device_names())}
    if args.compensation not in DRIFT_COMPENSATIONS:
        raise ValueError(f"--compensation must be one of {', '.join(DRIFT_COMPENSATIONS)}, not {args.compensation!r}")
    times = parse_drifts(args.drift)
    for opt, v, lo in (("--size", args.size, 2), ("--inputs", args.inputs, 1), ("--seed", args.seed, 0)):
        if v < lo:
            raise ValueError(f"{opt} must be an integer >= {lo}, not {v}")
    check_parent(args.json, "--json")
    check_parent(args.plot, "--plot")
    bar = None
    if progress_bars():
        from tqdm import tqdm
        bar = tqdm(total=len(models), desc="devices", unit="model", leave=False)
    try:
        res = device_errors(models, times, size=args.size, n_inputs=args.inputs, seed=args.seed,
                            compensation=args.compensation, progress=bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    print(format_device_errors(res, args.size, args.compensation))
    doc = {"size": args.size, "inputs": args.inputs, "seed": args.seed, "compensation": args.compensation,
           "devices": {n: {"model": r["model"], **{k: [{"t": t, "error": e} for t, e in r[k].items()]
                                                   for k in r if k != "model"}} for n, r in res.items()}}
    if args.plot:
        from ..report.plots import device_plot
        print(f"plot: {device_plot(doc, args.plot)}")
    if args.json:
        write_json(args.json, doc)
        print(f"wrote {args.json}")
    return 0
