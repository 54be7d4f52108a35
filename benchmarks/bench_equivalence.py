"""Both units' gate-level netlists proved equivalent to their RTL, on the default and on random configurations.

    .venv/bin/python benchmarks/bench_equivalence.py [--draws 13 32] [--max-lanes 2] [--units fixed fp16]
                                                     [--libraries sky130 osu018] [--timeout S] [--json OUT]

For each configuration (the default one, then ``tests/random_configs.draw_config(seed)`` for each of
``--draws``: every format, mode and width the loader accepts), unit and library: the netlist as the flow maps
it (:func:`cosim.synth.equivalence.prove_unit`, into ``build/bench-equivalence``) and the two proofs of the
chain, with their signal pairs, proven pairs and seconds. The first proof (RTL -> Yosys's generic gates)
is shared by the two libraries of a unit and done once. A proof that fails is printed with the signal it
names, one stopped at ``--timeout`` as ``unknown``; either makes the script exit 1.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from random_configs import draw_config  # noqa: E402
from timing import save_json  # noqa: E402

from cosim.synth.equivalence import LIBRARIES, prove_unit  # noqa: E402
from nmpu_model import load_config  # noqa: E402


def _describe(cfg) -> str:
    return (f"adc {cfg.adc_bits} b, scale {cfg.scale.bits} b, offset {cfg.offset.bits} b, output {cfg.output.bits} b "
            f"{cfg.output.rounding}/{cfg.output.overflow}, BN {'on' if cfg.bn_stage else 'off'}, "
            f"{cfg.rtl.lanes} lanes")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--draws", type=int, nargs="*", default=[13, 32], help="random configurations (seeds)")
    ap.add_argument("--max-lanes", type=int, default=2,
                    help="lanes a draw may have (draw_config's max_lanes; default %(default)s): the FP16 unit's "
                         "first proof grows with its FMAs' mantissa products and more than linearly with lanes")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds a proof step may take (default %(default)s)")
    ap.add_argument("--units", nargs="+", default=["fixed", "fp16"], choices=("fixed", "fp16"))
    ap.add_argument("--libraries", nargs="+", default=list(LIBRARIES), choices=LIBRARIES)
    ap.add_argument("--json", help="write the figures as JSON")
    args = ap.parse_args()

    configs = [("default", load_config())] + [(f"draw {s}", draw_config(s, max_lanes=args.max_lanes))
                                               for s in args.draws]
    rows, failed = [], 0
    for name, cfg in configs:
        print(f"{name}: {_describe(cfg)}", flush=True)
        for unit in args.units:
            for lib in args.libraries:
                base = REPO / "build" / "bench-equivalence" / cfg.identity()
                t0 = time.perf_counter()
                proof, _ = prove_unit(cfg, unit, lib, base / "netlists", base / unit, timeout=args.timeout)
                wall = time.perf_counter() - t0
                steps = [{"name": s.name, "pairs": s.pairs, "proven": s.proven, "seconds": round(s.seconds, 1),
                          "reused": s.cached, "unproven": s.unproven} for s in proof.steps]
                rows.append({"config": name, "identity": cfg.identity(), "unit": unit, "library": lib,
                             "result": proof.line(), "wall_s_with_synthesis": round(wall, 1), "steps": steps})
                failed += not proof.equivalent
                print(f"  {unit:5s} {lib:6s} {proof.line():24s} "
                      + "; ".join(f"{s['name']}: {s['proven']}/{s['pairs']} "
                                  + f"in {s['seconds']} s" + (" (proved before)" if s["reused"] else "") for s in steps)
                      + f"; {wall:.0f} s with synthesis", flush=True)
    res = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
           "load_avg_1min": round(os.getloadavg()[0], 2), "proofs": rows}
    print(f"{len(rows) - failed} of {len(rows)} netlists proved equivalent; load average {res['load_avg_1min']} "
          f"on {res['cpus']} CPUs")
    save_json(args.json, res)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
