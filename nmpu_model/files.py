"""The one way the project reads a TOML or JSON file a user gives it: a leaf every room may use."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any


def read_text(path: str | Path, kind: str, error: type[ValueError] = ValueError) -> str:
    """The text of a file the user named; unreadable or not UTF-8 is a one-line ``error`` naming the file."""
    p = Path(path)
    try:
        return p.read_text()
    except OSError as e:
        raise error(f"{p}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise error(f"{p}: not valid {kind}: not UTF-8 text") from None


def read_document(path: str | Path, kind: str, error: type[ValueError] = ValueError) -> Any:
    """The content of a ``"TOML"`` or ``"JSON"`` file; an unreadable file or bad syntax is a one-line ``error``
    (a ``ValueError``) naming the file (configurations, precision grids, sweep results, device tables)."""
    p = Path(path)
    text = read_text(p, kind, error)
    try:
        return tomllib.loads(text) if kind == "TOML" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise error(f"{p}: not valid {kind}: {e}") from None
