"""ONNX models: ``--model FILE.onnx`` converted by onnx2torch into a ``torch.fx`` module, which the graph front end
exports like any ``nn.Module`` (:mod:`nmpu_model.network.graph`).

onnx2torch imports torchvision at import time, for its NMS and RoIAlign converters only; torchvision's PyPI wheels
are CUDA builds that do not load beside the CPU torch this project pins, so it is not installed, and those two
converters get a stand-in module whose functions refuse. An ONNX op onnx2torch cannot convert is refused in one line
naming it.
"""
from __future__ import annotations

import sys
import types
from pathlib import Path

from torch import nn


def _torchvision_stand_in() -> None:
    """A ``torchvision`` module with the two functions onnx2torch names, each refusing (only when torchvision itself
    is not importable)."""
    if "torchvision" in sys.modules:
        return
    try:
        import torchvision  # noqa: F401
        return
    except Exception:
        pass

    def refuse(*_a, **_k):
        raise NotImplementedError("NMS and RoIAlign (torchvision ops) are not supported")

    tv = types.ModuleType("torchvision")
    tv.ops = types.ModuleType("torchvision.ops")
    tv.ops.nms = tv.ops.roi_align = tv.ops.box_convert = refuse
    sys.modules["torchvision"], sys.modules["torchvision.ops"] = tv, tv.ops


def load_onnx(path: str | Path) -> nn.Module:
    """The ONNX model at ``path`` as an ``nn.Module`` (onnx2torch), in eval mode; a one-line ``ValueError`` for a file
    that is not ONNX or an op that cannot be converted."""
    import onnx

    _torchvision_stand_in()
    from onnx2torch import convert

    try:
        model = onnx.load(str(path))
    except Exception as e:
        raise ValueError(f"--model {path}: not a readable ONNX file ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:160] if str(e) else ''})") from None
    try:
        module = convert(model)
    except NotImplementedError as e:
        op = next((n for n in model.graph.node if f"operation_type='{n.op_type}'" in str(e)), None)
        what = f"ONNX op {op.op_type} (node {op.name or '?'})" if op is not None else str(e).splitlines()[0][:200]
        raise ValueError(f"--model {path}: {what} cannot be converted to PyTorch (onnx2torch)") from None
    except Exception as e:
        raise ValueError(f"--model {path}: cannot be converted to PyTorch ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:160] if str(e) else ''})") from None
    return module.eval()
