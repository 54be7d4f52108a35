"""The precision question per device model: for each `--device`, `nmpu sweep` over scale and offset bits, then a
Markdown table of fp16's accuracy and the cheapest fixed-point format within the tolerance.

    python scripts/device_study.py --model mnist-resnet --images 500 --out docs/devices

runs `nmpu sweep --model M --images N --grid examples/grid_mnist.toml --workers 0 --device D --json OUT/D.json` for
each device (the defaults below) and prints the table the README shows. Each sweep is the project's own command,
so any row can be rerun alone.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEVICES = ("pcm", "hermes", "hermes-1", "rram:levels=32,d2d_sigma=0.05,prog_sigma=0.02")


def main() -> int:
    from cosim.cli import main as nmpu

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="mnist-resnet")
    ap.add_argument("--images", default="500")
    ap.add_argument("--grid", default=str(ROOT / "examples" / "grid_mnist.toml"))
    ap.add_argument("--seeds", default="3")
    ap.add_argument("--drift", default="3600")
    ap.add_argument("--device", action="append", help=f"device specs (default: {', '.join(DEVICES)})")
    ap.add_argument("--out", default="docs/devices", help="folder for each sweep's JSON")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for dev in args.device or DEVICES:
        f = out / (re.sub(r"[^A-Za-z0-9_.-]+", "_", dev) + ".json")
        argv = ["sweep", "--model", args.model, "--images", args.images, "--grid", args.grid, "--seeds", args.seeds,
                "--drift", args.drift, "--workers", "0", "--device", dev, "--json", str(f)]
        if f.exists():
            f.unlink()                       # a fresh sweep, not a resumed one
        print("$ nmpu " + " ".join(argv), flush=True)
        t0 = time.perf_counter()
        if nmpu(argv) != 0:
            return 1
        doc = json.loads(f.read_text())
        c = doc["chosen"]
        best = max(doc["points"], key=lambda p: p["mean"])
        point = ", ".join(f"{k.split('.')[0]} {v}" for k, v in c["point"].items()) if c else ""
        rows.append(f"| `{dev}` | {100 * doc['fp16']['mean']:.2f} | {100 * best['mean']:.2f} | "
                    + (f"{point} ({c['cost_bits']} bits), {100 * c['mean']:.2f}" if c else "none within the tolerance")
                    + f" | {time.perf_counter() - t0:.0f} s |")
    print("\n| device | fp16 (%) | best grid point (%) | cheapest within 0.2 pp of fp16 (%) | time |")
    print("| --- | ---: | ---: | --- | ---: |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
