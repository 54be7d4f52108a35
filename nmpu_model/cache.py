"""The one folder the project writes its caches to: simulator builds, trained weights, compiled kernels.

By default the user's cache folder (``platformdirs``: ``~/.cache/nmpu-cosim`` on Linux), or the folder that
``$NMPU_CACHE_DIR`` names; never inside the installed package, so that a project installed with
``pip install .`` works as the checkout does. Entries are keyed by what made them (a configuration's
identity and the Verilog's text, a training recipe), so one cache serves every checkout and version.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV = "NMPU_CACHE_DIR"


def cache_root() -> Path:
    """``$NMPU_CACHE_DIR``, else the user's cache folder for nmpu-cosim (read at each call)."""
    v = os.environ.get(ENV)
    if v:
        return Path(v).expanduser().resolve()
    import platformdirs
    return Path(platformdirs.user_cache_dir("nmpu-cosim", appauthor=False))


def cache_dir(*parts: str) -> Path:
    """A folder under :func:`cache_root`, made if missing."""
    d = cache_root().joinpath(*parts)
    d.mkdir(parents=True, exist_ok=True)
    return d
