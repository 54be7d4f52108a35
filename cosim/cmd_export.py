"""``nmpu export``: write the NMPU as Verilog (plus a JSON sidecar) and lint it with Verilator."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="write the NMPU as Verilog with a port/latency header and a JSON sidecar")
    p.add_argument("--config", metavar="CFG.toml", help="configuration (default: the spec's defaults)")
    p.add_argument("-o", "--output", metavar="FILE.v", default="build/nmpu.v", help="Verilog output (default %(default)s)")
    p.add_argument("--name", metavar="TOP", default="nmpu", help="top module name (default %(default)s)")
    p.add_argument("--no-lint", action="store_true", help="skip `verilator --lint-only -Wall` with rtl/verilator_waivers.vlt")


def run(args: argparse.Namespace) -> int:
    from nmpu_model.config import load_config
    from rtl.export import lint, write_verilog

    config = load_config(args.config)
    out = Path(args.output)
    if out.is_dir():
        raise ValueError(f"{out}: is a directory; -o takes the Verilog file to write")
    meta = write_verilog(config, out, args.name)
    lint_note = "lint skipped"
    if not args.no_lint:
        lint(out, args.name)
        lint_note = "verilator --lint-only -Wall clean (waivers: rtl/verilator_waivers.vlt)"
    print(f"wrote {out} and {out.with_suffix('.json')}: top {args.name}, latency {meta['latency']} cycles, "
          f"II 1, {meta['lanes']} lane(s), {meta['columns']} columns; {lint_note}")
    return 0
