"""Input and output helpers every command shares: output-folder checks, atomic writes, displayed paths."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, TextIO

PROJECT = Path(__file__).resolve().parents[2]


def check_parent(path: str | Path | None, option: str) -> None:
    """Refuse an output path whose folder does not exist, before any work is done (one-line ValueError)."""
    if path and str(Path(path).parent) and not Path(path).parent.is_dir():
        raise ValueError(f"{option}: folder {Path(path).parent} does not exist")


def write_atomic(path: str | Path, write: Callable[[Any], None], binary: bool = False) -> None:
    """Write through a temporary file in the same folder and rename: a failure leaves no partial file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    """``obj`` as indented JSON, written atomically."""
    def dump(f: TextIO) -> None:
        json.dump(obj, f, indent=2)
        f.write("\n")
    write_atomic(path, dump)


def progress_bars() -> bool:
    """Whether to draw progress bars: on a terminal, or when ``NMPU_PROGRESS=1`` (a stderr that is a file: the
    workbench shows its last line)."""
    import sys
    return sys.stderr.isatty() or os.environ.get("NMPU_PROGRESS") == "1"


def display_path(p: str | Path) -> str:
    """``p`` relative to the current folder when it lies inside it (so a printed command can be pasted
    and names no checkout), else as given."""
    rel = os.path.relpath(Path(p).resolve())
    return rel if not rel.startswith("..") else str(p)
