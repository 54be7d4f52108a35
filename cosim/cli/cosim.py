"""``nmpu cosim``: a real network's analog layers post-processed by the RTL (hardware in the loop)."""
from __future__ import annotations

import argparse
import sys

from . import workload
from .io import check_parent, progress_bars, write_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cosim", help="RTL in the loop: stream a network's tile outputs through the Verilated NMPU",
                       description="Program the network onto simulated PCM tiles (as `nmpu eval`), stream each "
                       "chosen analog layer's ADC codes through the NMPU RTL with the layer's calibrated "
                       "coefficients and out_frac loaded through the unit's write ports, compare every output code "
                       "with the golden model, and feed the RTL's outputs to the next layer. Prints one line per "
                       "layer and the accuracy of the golden model vs the RTL; exit 1 on any mismatch. A layer wider "
                       "than the unit's coefficient memory (rtl.columns) runs as column blocks, the coefficients "
                       "reloaded between blocks. values = samples x columns; cycles from reset release to the last "
                       "output, writes and random stalls included; seconds = wall time of the simulator runs.")
    workload.add_args(p)
    workload.add_mapping_arg(p)
    p.add_argument("--layers", default="all",
                   help="'all' (default) or comma-separated analog layer indices (0 = first analog layer) or names "
                   "(a name wins: digits-cnn's analog layers are named 3, 7, 12)")
    p.add_argument("--config", metavar="CFG.toml", help="NMPU configuration (default: the spec's defaults)")
    p.add_argument("--mode", default="bulk", help="bulk (default: C++ Verilator harness) or cocotb")
    p.add_argument("--seed", type=int, default=0, help="noise seed of the tiles and of the stalls (default 0)")
    p.add_argument("--drift", type=float, default=3600.0, help="read time in seconds after programming (default 3600)")
    p.add_argument("--p-valid", type=float, default=0.8, help="probability that a waiting input beat is offered "
                   "in a cycle (default 0.8)")
    p.add_argument("--p-ready", type=float, default=0.7, help="probability of o_stream.ready in a cycle "
                   "(default 0.7; 1 = no output stalls)")
    p.add_argument("--json", metavar="OUT", help="write the full result as JSON to OUT")
    p.add_argument("--waves", action="store_true", help="record a waveform of every RTL call and print its path")
    p.add_argument("--window", metavar="START:END", help="with --waves: cycles [START, END) of each call only "
                   "(bulk mode; default 0:2000)")
    # a deliberately broken RTL (rtl.nmpu.NMPU faults), so that tests prove a bug is caught: not for users
    p.add_argument("--fault", choices=("tie", "ready"), help=argparse.SUPPRESS)


def parse_window(text: str | None, waves: bool) -> tuple[int, int] | None:
    """``"100:500"`` -> ``(100, 500)``; None without ``--waves``."""
    if text is not None and not waves:
        raise ValueError("--window needs --waves")
    if not waves:
        return None
    if text is None:
        return (0, 2000)
    try:
        a, b = (int(v) for v in text.split(":"))
    except ValueError:
        raise ValueError(f"--window must be START:END in cycles, not {text!r}") from None
    if not 0 <= a < b:
        raise ValueError(f"--window START:END needs 0 <= START < END, not {text!r}")
    return a, b


def run(args: argparse.Namespace) -> int:
    from nmpu_model import load_config

    from ..sim.network import MODES, cosim_network, select_layers

    if args.mode not in MODES:
        raise ValueError(f"--mode must be one of {', '.join(MODES)}, not {args.mode!r}")
    if args.images is not None and args.images < 1:
        raise ValueError(f"--images must be >= 1, not {args.images}")
    if args.seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, not {args.seed}")
    if not args.drift >= 0 or args.drift == float("inf"):
        raise ValueError(f"--drift must be a finite time >= 0 s, not {args.drift}")
    for name in ("p_valid", "p_ready"):
        v = getattr(args, name)
        if not 0 < v <= 1:
            raise ValueError(f"--{name.replace('_', '-')} must be in (0, 1], not {v}")
    window = parse_window(args.window, args.waves)
    if args.waves and args.mode == "cocotb":
        # cocotb's Verilator main traces from the first cycle to the last; only the harness opens a window
        print("waves: cocotb mode traces the whole run (--window applies to --mode bulk)", file=sys.stderr)
    check_parent(args.json, "--json")
    tty = progress_bars()
    work = workload.load(args, progress=tty)
    config = work.layer_map.base if work.layer_map is not None else load_config(args.config)
    fp16 = work.layer_map.names("fp16") if work.layer_map is not None else []
    select_layers(args.layers, [n for n in work.analog if n not in fp16])  # a bad --layers: one line, before the table
    workload.show(work)
    bar = None
    if tty:
        from tqdm import tqdm
        bar = tqdm(desc=f"cosim {work.name} ({args.mode})", unit="layer-call", leave=False)
    try:
        res = cosim_network(work, config, layers=args.layers, mode=args.mode, seed=args.seed, drift=args.drift,
                            p_valid=args.p_valid, p_ready=args.p_ready, window=window, fault=args.fault,
                            mapping=work.layer_map, progress=bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    print(res.text())
    for layer in res.layers:
        if layer.first_mismatch:
            print(f"layer {layer.name}: first mismatch {layer.first_mismatch}", file=sys.stderr)
        if layer.first_error:
            print(f"layer {layer.name}: protocol error: {layer.first_error}", file=sys.stderr)
        for w in layer.waves:
            print(f"waves: {w}", file=sys.stderr)
    if args.waves and not any(layer.waves for layer in res.layers):
        print("waves: none written (the window lies beyond the last cycle?)", file=sys.stderr)
    if args.json:
        write_json(args.json, {**res.to_json(), "mapping": work.mapping})
    return 0 if res.ok else 1
