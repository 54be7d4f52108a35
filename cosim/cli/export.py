"""``nmpu export``: write a unit (the NMPU, or ``--unit fp16`` the FP16 unit) as Verilog plus a JSON sidecar, and lint it."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="write the NMPU as Verilog with a port/latency header and a JSON sidecar")
    p.add_argument("--config", metavar="CFG.toml", help="configuration (default: the spec's defaults)")
    p.add_argument("-o", "--output", metavar="FILE.v", default="build/nmpu.v", help="Verilog output (default %(default)s)")
    p.add_argument("--name", metavar="TOP", help="top module name (default: nmpu, or fp16_unit with --unit fp16)")
    p.add_argument("--unit", choices=("fixed", "fp16"), default="fixed",
                   help="the NMPU (default) or the FP16 baseline unit")
    p.add_argument("--no-lint", action="store_true", help="skip `verilator --lint-only -Wall` with rtl/verilator_waivers.vlt")


def run(args: argparse.Namespace) -> int:
    from nmpu_model.golden.config import load_config
    from rtl.export import write_verilog

    from ..sim.toolchain import lint

    config = load_config(args.config)
    out = Path(args.output)
    if out.is_dir():
        raise ValueError(f"{out}: is a directory; -o takes the Verilog file to write")
    meta = write_verilog(config, out, args.name, unit_name=args.unit)
    lint_note = "lint skipped"
    if not args.no_lint:
        lint(out, meta["top"])
        lint_note = "verilator --lint-only -Wall clean (waivers: rtl/verilator_waivers.vlt)"
    print(f"wrote {out} and {out.with_suffix('.json')}: top {meta['top']}, latency {meta['latency']} cycles, "
          f"II 1, {meta['lanes']} lane(s), {meta['columns']} columns; {lint_note}")
    return 0
