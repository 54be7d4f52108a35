"""The ``nmpu`` command.

Each subcommand lives in its own module ``cosim.cli.<name>`` exposing ``register(subparsers)``
(adds its parser, with ``help``) and ``run(args) -> int``. A bad input raises ``ValueError``
(or ``ConfigError``, ``FileNotFoundError``); this module turns it into one line on stderr and
exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ("apply", "export", "verify", "eval", "sweep", "cosim", "synth", "cost", "map", "devices", "run",
            "serve")


class _Parser(argparse.ArgumentParser):
    """argparse's parser with its errors as one line on stderr (exit status 2), as every other bad input:
    argparse's own form is the usage block followed by the message."""

    def error(self, message: str):  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, object]]:
    parser = _Parser(prog="nmpu", description="Fixed-point NMPU co-simulator: golden model, "
                     "RTL verification, accuracy evaluation and synthesis.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {}
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"cosim.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"cosim.cli.{name}":
                continue
            raise
        mod.register(sub)
        modules[name] = mod
        if name != "serve":
            sub.choices[name].add_argument(
                "--record", action="store_true", help="record this run in the workbench's database (nmpu serve lists "
                "it); NMPU_RECORD=1 records every run, NMPU_WORKBENCH_DB=URL names the database")
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    parser, modules = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:         # --help (0) or a usage error already printed in one line (2)
        return int(e.code or 0)
    if args.command is None:
        print(f"nmpu: error: a command is required: {', '.join(modules)} (see nmpu --help)", file=sys.stderr)
        return 2
    from datetime import datetime, timezone
    started = datetime.now(timezone.utc).replace(tzinfo=None)
    rc = _run(modules[args.command], args)
    if rc != 2 and args.command != "serve":          # bad input changed nothing: nothing to record
        from cosim.workbench.record import wanted
        if wanted(args):
            _record(args, list(sys.argv[1:] if argv is None else argv), rc, started)
    return rc


def _record(args: argparse.Namespace, argv: list[str], rc: int, started) -> None:
    from datetime import datetime, timezone

    from cosim.workbench.record import record
    try:
        run_id = record(args.command, argv, args, rc, started, datetime.now(timezone.utc).replace(tzinfo=None))
    except (ValueError, RuntimeError, OSError) as e:
        print(f"nmpu {args.command}: not recorded: {str(e).splitlines()[0]}", file=sys.stderr)
    else:
        print(f"nmpu {args.command}: recorded as run {run_id} (nmpu serve)", file=sys.stderr)


def _run(module: object, args: argparse.Namespace) -> int:
    try:
        return int(module.run(args) or 0)  # type: ignore[attr-defined]
    except (ValueError, FileNotFoundError, IsADirectoryError, PermissionError) as e:
        msg = str(e) if isinstance(e, ValueError) else f"{e.filename}: {e.strerror}"
        print(f"nmpu {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        # a tool failed (Yosys, a simulator build, a missing data package): not bad input; the
        # first line says what, the rest (a log's tail) follows, and no traceback
        first, _, rest = str(e).partition("\n")
        print(f"nmpu {args.command}: failed: {first}", file=sys.stderr)
        if rest.strip():
            print(rest, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"nmpu {args.command}: interrupted", file=sys.stderr)
        return 130
