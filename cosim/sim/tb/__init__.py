"""Simulator-side code: the cocotb tests of both units and of a network layer, and their components.

Nothing here runs on the host: :mod:`cosim.sim.runner` starts a simulator with one of these modules
as cocotb's test module and a JSON file of parameters named by ``$NMPU_TB_PARAMS``. Every test
follows one exception policy (:func:`register`): what the test returns, or the error that ended
it, goes to the result file named in the parameters, and the host reads that file; a crash is a
failed run, said so, never a silent pass.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Awaitable, Callable

PARAMS_ENV = "NMPU_TB_PARAMS"


def load_params() -> dict:
    """The parameters the host wrote for this run."""
    path = os.environ.get(PARAMS_ENV)
    if not path:
        raise RuntimeError(f"${PARAMS_ENV} is not set: run the testbench through cosim.sim.runner")
    return json.loads(Path(path).read_text())


def register(body: Callable[[Any, dict], Awaitable[dict]]) -> None:
    """Make ``body(dut, params) -> result`` a cocotb test of the calling module (when run by the host).

    The result, with ``error`` (None, or what ended the test), is written to ``params["result"]``;
    the test fails on an error or on mismatches.
    """
    if not os.environ.get(PARAMS_ENV):
        return                                # imported on the host: no cocotb test to declare
    import sys

    import cocotb

    async def test(dut: Any) -> None:
        p = load_params()
        result: dict = {"error": None}
        try:
            result.update(await body(dut, p))
        except Exception as e:               # a crashed testbench is a failed run, said so
            result.update(error=f"{type(e).__name__}: {e}", mismatches=max(1, result.get("mismatches", 0)))
        finally:
            Path(p["result"]).write_text(json.dumps(result, indent=2, default=_plain) + "\n")
        assert result["error"] is None, result["error"]
        assert not result.get("mismatches"), f"{result['mismatches']} mismatches; first: {result.get('first_mismatch')}"

    test.__name__ = test.__qualname__ = body.__name__
    test.__doc__ = body.__doc__
    test.__module__ = body.__module__
    setattr(sys.modules[body.__module__], body.__name__, cocotb.test()(test))


def _plain(v: Any) -> Any:
    """numpy scalars in the result as JSON numbers."""
    return v.item() if hasattr(v, "item") else float(v)
