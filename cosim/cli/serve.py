"""``nmpu serve``: the local workbench in the browser (cosim.workbench)."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="the workbench in the browser: a study form, runs in the background, results",
                       description="Serve the local workbench: submit studies (nmpu eval, sweep, map, cosim, synth; a "
                       "built-in network or an uploaded .pt2/.onnx with its .npz) from a form, follow their "
                       "progress, read their tables and plots, download their files and compare runs. Runs are "
                       "subprocesses of this command (at most --max-running at once, the rest queued), recorded in "
                       "a database (SQLite in the user's data folder by default).")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.add_argument("--db", metavar="URL", help="SQLAlchemy database URL (default: NMPU_WORKBENCH_DB, else "
                   "sqlite:///<user data folder>/nmpu-cosim/workbench.sqlite; e.g. postgresql://user@host/nmpu); "
                   "commands run with --record (or NMPU_RECORD=1) are stored in the same one")
    p.add_argument("--runs", metavar="DIR", help="folder of the run folders (default: runs/ beside the SQLite file, "
                   "or in the user's data folder)")
    p.add_argument("--max-running", type=int, default=2, metavar="N", help="runs at once; more wait (default 2)")
    p.add_argument("--max-upload", type=int, default=256, metavar="MB", help="largest uploaded network or data file "
                   "(default 256 MB)")


def run(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be in 1..65535, not {args.port}")
    if args.max_running < 1:
        raise ValueError(f"--max-running must be >= 1, not {args.max_running}")
    if args.max_upload < 1:
        raise ValueError(f"--max-upload must be >= 1 MB, not {args.max_upload}")
    from cosim.workbench.app import serve
    serve(args.host, args.port, args.db, args.runs, args.max_running, args.max_upload)
    return 0
