"""``nmpu serve``: the local workbench in the browser (cosim.workbench)."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="the workbench in the browser: a study form, runs in the background, results",
                       description="Serve the local workbench: submit studies (nmpu eval) from a form, follow their "
                       "progress, read their tables and plots, download their files and compare runs. Runs are "
                       "subprocesses of this command (at most --max-running at once, the rest queued), recorded in "
                       "a database (SQLite in the user's data folder by default).")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.add_argument("--db", metavar="URL", help="SQLAlchemy database URL (default: sqlite:///<user data folder>/"
                   "nmpu-cosim/workbench.sqlite; e.g. postgresql://user@host/nmpu)")
    p.add_argument("--runs", metavar="DIR", help="folder of the run folders (default: runs/ beside the SQLite file, "
                   "or in the user's data folder)")
    p.add_argument("--max-running", type=int, default=2, metavar="N", help="runs at once; more wait (default 2)")


def run(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be in 1..65535, not {args.port}")
    if args.max_running < 1:
        raise ValueError(f"--max-running must be >= 1, not {args.max_running}")
    from cosim.workbench.app import serve
    serve(args.host, args.port, args.db, args.runs, args.max_running)
    return 0
