"""``nmpu verify``: build the NMPU for a configuration (cached) and check it against the golden model in cocotb.

``--unit fp16`` checks the FP16 baseline unit instead (against ``apply(..., arith="fp16")``);
``--gate-level`` simulates the unit's netlist in SkyWater 130 nm cells, as ``nmpu synth`` maps it
(the netlist whose area ``nmpu synth`` reports), instead of the RTL; ``--library osu018`` the netlist in
OSU 0.18 um cells whose timing and power ``nmpu synth`` reports.

``--exhaustive`` checks every input of the configuration instead of random beats (every ADC code x every
coefficient code x every ``out_frac``, :mod:`cosim.sim.exhaustive`), in the bulk C++ harness.

``--equivalence`` proves the unit's gate-level netlist (``--library``) equivalent to its RTL with Yosys's SAT
equivalence passes (:mod:`cosim.synth.equivalence`): ``equivalent``, or ``not equivalent: <signal>`` and exit 1.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from .io import progress_bars

DEFAULT_TIMEOUT = 1800.0     # seconds a proof step of --equivalence may take


def register(subparsers) -> None:
    p = subparsers.add_parser("verify", help="run the cocotb testbench on the RTL; every output checked against the model")
    p.add_argument("--config", metavar="CFG.toml", help="configuration (default: the spec's defaults)")
    p.add_argument("--vectors", type=int, help="output beats to check (default 2000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default %(default)s)")
    p.add_argument("--sim", default="verilator", help="verilator (default) or icarus")
    p.add_argument("--waves", action="store_true", help="record an FST waveform and print its path")
    p.add_argument("--json", metavar="FILE", help="also write the full result (first mismatch, timing) as JSON")
    p.add_argument("--unit", choices=("fixed", "fp16"), default="fixed",
                   help="the NMPU (default) or the FP16 baseline unit")
    p.add_argument("--gate-level", action="store_true",
                   help="synthesize (as `nmpu synth`) and simulate the gate-level netlist instead of the RTL")
    p.add_argument("--library", choices=("sky130", "osu018"), default="sky130",
                   help="with --gate-level or --equivalence: the netlist in SkyWater 130 nm cells (the area figure; default) or in "
                        "OSU 0.18 um cells (the timing and power figures), with the library's cell models")
    p.add_argument("--exhaustive", action="store_true",
                   help="every input of the configuration (ADC code x coefficient codes x out_frac) through the "
                        "RTL in the bulk C++ harness, against the golden model; beyond --limit, the largest "
                        "exhaustive sub-space that fits, said")
    p.add_argument("--equivalence", action="store_true",
                   help="prove the unit's gate-level netlist (--library) equivalent to the RTL (Yosys's SAT "
                        "equivalence passes, every input and every reachable state): prints `equivalent` or "
                        "`not equivalent: <signal>`")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="with --equivalence: seconds a proof step may take (default 1800); a step stopped there is "
                        "reported `unknown`")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="with --exhaustive: values a run may check (default 2^30, ~4.5 min at 4 M values/s)")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="with --exhaustive: harness runs at a time (default: the CPU count)")


def _gate_level_netlist(config, unit: str, library: str = "sky130") -> list[Path]:
    """Synthesize ``unit`` as ``nmpu synth`` does (into the build cache); return its netlist and cell models."""
    from ..sim.toolchain import build_dir
    from ..synth.flow import synthesize

    if library == "osu018":
        from ..synth.ppa import map_netlist
        n = map_netlist(config, unit, build_dir("gate-level", config.identity()),
                        notify=lambda m: print(m, file=sys.stderr, flush=True))
        print(f"gate-level: {n.netlist} ({n.cells} OSU 0.18 um cells, {n.area:,.0f} um^2, memories as macros)",
              file=sys.stderr)
        return [n.netlist] + n.models
    r = synthesize(config, unit, "generic", build_dir("gate-level", config.identity()),
                   notify=lambda m: print(m, file=sys.stderr, flush=True))
    print(f"gate-level: {r.files['netlist_sky130']} ({r.std_cells} sky130_fd_sc_hd cells, {r.area:,.0f} um^2)",
          file=sys.stderr)
    return [Path(r.files["sky130_models"]), Path(r.files["netlist_sky130"])]


def run(args: argparse.Namespace) -> int:
    from nmpu_model.golden.config import load_config

    from ..sim.runner import check_sim, require_sim, verify
    from .io import check_parent, write_json

    # the user's input first (the same message on every machine), then the environment
    if args.exhaustive and args.equivalence:
        raise ValueError("--exhaustive simulates every input, --equivalence proves the netlist: one at a time")
    if args.exhaustive:
        return _exhaustive(args)
    if args.equivalence:
        return _equivalence(args)
    for opt in ("limit", "jobs"):
        if getattr(args, opt) is not None:
            raise ValueError(f"--{opt} belongs to --exhaustive")
    if args.timeout is not None:
        raise ValueError("--timeout belongs to --equivalence")
    args.vectors = 2000 if args.vectors is None else args.vectors
    if args.vectors < 1:
        raise ValueError(f"--vectors must be a positive integer, not {args.vectors}")
    if args.seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, not {args.seed}")
    check_sim(args.sim)
    check_parent(args.json, "--json")
    config = load_config(args.config)
    require_sim(args.sim)
    if args.library != "sky130" and not args.gate_level:
        raise ValueError("--library chooses the gate-level netlist: use it with --gate-level or --equivalence")
    netlist = _gate_level_netlist(config, args.unit, args.library) if args.gate_level else None
    res = verify(config, vectors=args.vectors, seed=args.seed, sim=args.sim, waves=args.waves, netlist=netlist,
                 unit=args.unit)
    print(res.line())
    if res.waves is not None:
        note = "" if res.waves.suffix == ".fst" else " (VCD: Verilator's FST writer needs the lz4 headers, liblz4-dev)"
        print(f"waves: {res.waves}{note}", file=sys.stderr)
    elif args.waves:
        print("waves: none written (the simulator produced no trace file)", file=sys.stderr)
    d = res.details
    if d.get("error"):
        print(f"error: {d['error']}", file=sys.stderr)
    if d.get("first_mismatch"):
        print(f"first mismatch: {json.dumps(d['first_mismatch'])}", file=sys.stderr)
    if args.json:
        write_json(args.json, {**d, "sim": res.sim, "build_seconds": round(res.build.seconds, 3),
                               "build_cached": res.build.cached, "run_seconds": round(res.run_seconds, 3),
                               "latency": res.build.meta["latency"], "verilog": str(res.build.verilog),
                               "unit": args.unit, "netlist": [str(p) for p in netlist] if netlist else None})
    return 0 if res.mismatches == 0 and not d.get("error") and res.vectors >= args.vectors else 1


def _exhaustive(args: argparse.Namespace) -> int:
    """``verify --exhaustive``: the configuration's whole input space (or its largest exhaustive sub-space)."""
    import os

    from nmpu_model.golden.config import load_config

    from ..sim import exhaustive
    from .io import check_parent, write_json

    clash = [o for o, on in (("--vectors", args.vectors is not None), ("--gate-level", args.gate_level),
                             ("--waves", args.waves), ("--sim", args.sim != "verilator"),
                             ("--timeout", args.timeout is not None), ("--library", args.library != "sky130")) if on]
    if clash:
        raise ValueError(f"--exhaustive checks every input of the RTL in the bulk harness; it takes no {clash[0]}")
    if args.unit != "fixed":
        raise ValueError("--exhaustive covers the fixed-point NMPU (integer coefficient codes); the FP16 unit's "
                         "binary16 coefficients make 2^32 pairs per code: verify it with random beats")
    limit = exhaustive.DEFAULT_LIMIT if args.limit is None else args.limit
    jobs = (os.cpu_count() or 1) if args.jobs is None else args.jobs
    if isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"--jobs must be a positive integer, not {jobs}")
    if limit < 1:
        raise ValueError(f"--limit must be a positive integer, not {limit}")
    check_parent(args.json, "--json")
    config = load_config(args.config)
    plan = exhaustive.plan_space(config, limit)
    print(f"exhaustive: {plan.describe()}", file=sys.stderr, flush=True)
    bar = None
    if progress_bars():
        from tqdm import tqdm
        bar = tqdm(total=plan.values, desc="verify --exhaustive", unit="value", unit_scale=True, leave=False)
    try:
        res = exhaustive.run(plan, jobs=jobs, progress=bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    print(res.line())
    rate = res.values / res.seconds if res.seconds else 0.0
    print(f"{res.values:,} values in {res.seconds:.1f} s ({rate / 1e6:.2f} M values/s, {res.runs} harness runs, "
          f"{jobs} at a time; the harness's clock loops {res.sim_seconds:.1f} s, the golden model "
          f"{res.model_seconds:.1f} s; build {res.build_seconds:.1f} s before)", file=sys.stderr)
    if res.first_mismatch:
        print(f"first mismatch: {json.dumps(res.first_mismatch)}", file=sys.stderr)
    if res.first_error:
        print(f"protocol error: {res.first_error}", file=sys.stderr)
    if args.json:
        write_json(args.json, {**res.to_dict(), "full": plan.full, "space_values": plan.total,
                               "config": config.to_dict()})
    return 0 if res.ok else 1


def _equivalence(args: argparse.Namespace) -> int:
    """``verify --equivalence``: the gate-level netlist proved equivalent to the RTL."""
    from nmpu_model.golden.config import load_config

    from ..sim.toolchain import build_dir, locked
    from ..synth.equivalence import prove_unit
    from .io import check_parent, write_json

    clash = [o for o, on in (("--vectors", args.vectors is not None), ("--gate-level", args.gate_level),
                             ("--waves", args.waves), ("--sim", args.sim != "verilator"),
                             ("--limit", args.limit is not None), ("--jobs", args.jobs is not None)) if on]
    if clash:
        raise ValueError(f"--equivalence proves the gate-level netlist against the RTL; it takes no {clash[0]}")
    timeout = DEFAULT_TIMEOUT if args.timeout is None else args.timeout
    if not (timeout > 0 and math.isfinite(timeout)):
        raise ValueError(f"--timeout must be a positive number of seconds, not {args.timeout}")
    check_parent(args.json, "--json")
    config = load_config(args.config)
    folder = build_dir("equivalence", config.identity()) / args.unit
    folder.mkdir(parents=True, exist_ok=True)
    print(f"equivalence: the {args.unit} unit's {args.library} netlist against its RTL", file=sys.stderr, flush=True)
    with locked(folder):
        proof, netlist = prove_unit(config, args.unit, args.library, build_dir("gate-level", config.identity()),
                                    folder, notify=lambda m: print(m, file=sys.stderr, flush=True), timeout=timeout)
    print(proof.line())
    for s in proof.steps:
        if s.timed_out:
            print(f"{s.name}: stopped after {s.seconds:.0f} s (--timeout); neither proved nor refuted (SAT on wide "
                  "multipliers grows fast with their width: see the README's figures)", file=sys.stderr)
            continue
        print(f"{s.name}: {s.proven} of {s.pairs} signal pairs (ports, registers, named wires) proven equal "
              + ("(proved before, same files)" if s.cached else f"in {s.seconds:.1f} s"), file=sys.stderr)
    print(f"logs: {folder}/*/equiv.log", file=sys.stderr)
    if proof.unproven:
        shown = ", ".join(proof.unproven[:8]) + (", ..." if len(proof.unproven) > 8 else "")
        print(f"not proven: {shown} ({len(proof.unproven)} signals). The SAT proof could not show them equal "
              f"(they differ, or the pair is beyond its reach); to simulate the netlist: nmpu verify --gate-level "
              f"--library {args.library}"
              + (f" --unit {args.unit}" if args.unit != "fixed" else ""), file=sys.stderr)
    if args.json:
        write_json(args.json, {**proof.to_dict(), "netlist": str(netlist), "config": config.to_dict()})
    return 0 if proof.equivalent else 1
