"""``nmpu eval``: accuracy of a network on analog tiles with fp32 / fp16 / fixed-point post-processing."""
from __future__ import annotations

import argparse

from . import workload
from .io import check_parent, progress_bars, write_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="accuracy on analog tiles: float model vs fp32 / fp16 / fixed post-processing",
                       description="Program a trained network onto simulated PCM tiles (seeded), calibrate the "
                       "per-column NMPU coefficients, and report test accuracy with fp32, fp16 and the bit-accurate "
                       "fixed-point NMPU after every analog layer: mean and std over noise seeds, per drift time.")
    p.add_argument("--config", help="NMPU configuration TOML (default: the spec's defaults)")
    p.add_argument("--drift", default="1,3600,86400,31536000",
                   help="comma-separated drift times in seconds after programming (default 1 s, 1 h, 1 day, 1 year)")
    p.add_argument("--seeds", type=int, default=5, help="number of noise seeds (default 5)")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    workload.add_args(p)
    workload.add_mapping_arg(p)


def run(args: argparse.Namespace) -> int:
    from nmpu_model import load_config
    from nmpu_model.studies.evaluate import evaluate, format_table, parse_drifts, run_images

    drifts = parse_drifts(args.drift)
    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, not {args.seeds}")
    check_parent(args.json, "--json")
    tty = progress_bars()
    work = workload.load(args, progress=tty)
    config = work.layer_map.base if work.layer_map is not None else load_config(args.config)
    workload.show(work)
    bar = None
    if tty:
        from tqdm import tqdm
        # images through the tiles (seeds x drifts x 3 post-processors x test images): rate and end estimate
        bar = tqdm(total=run_images(work, args.seeds, drifts), desc=f"eval {work.name}", unit="image",
                   unit_scale=True, leave=False)
    try:
        res = evaluate(work, config, drifts=drifts, seeds=args.seeds, mapping=work.layer_map,
                       progress=bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    print(format_table(res))
    if work.note:
        res["calibration"] = work.note
    res["mapping"] = work.mapping
    if args.json:
        write_json(args.json, res)
    return 0
