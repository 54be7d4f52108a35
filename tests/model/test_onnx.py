"""ONNX models through ``nmpu eval``: written with onnx.helper (no PyTorch exporter involved), converted by onnx2torch
into the same front end; the float row against a numpy forward pass of the same weights; an op that cannot be
converted refused in one line naming it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def nmpu(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cosim.cli", *args], capture_output=True, text=True)


def _save(path: Path, nodes: list, inits: dict[str, np.ndarray], out_shape: list) -> None:
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
                              [numpy_helper.from_array(a, n) for n, a in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def test_cli_eval_of_an_onnx_mlp(tmp_path: Path) -> None:
    """Three Gemm layers with ReLUs: the middle one on tiles (first and last digital), the float model's accuracy
    equal to numpy's on the test images (the first 30 calibrate), the JSON's mapping naming the layers."""
    g = np.random.default_rng(0)
    w = {"W1": g.normal(0, 0.4, (16, 8)), "b1": g.normal(0, 0.1, 16), "W2": g.normal(0, 0.3, (16, 16)),
         "b2": g.normal(0, 0.1, 16), "W3": g.normal(0, 0.3, (4, 16)), "b3": g.normal(0, 0.1, 4)}
    w = {k: v.astype(np.float32) for k, v in w.items()}
    nodes = [helper.make_node("Gemm", ["x", "W1", "b1"], ["h1"], transB=1), helper.make_node("Relu", ["h1"], ["r1"]),
             helper.make_node("Gemm", ["r1", "W2", "b2"], ["h2"], transB=1), helper.make_node("Relu", ["h2"], ["r2"]),
             helper.make_node("Gemm", ["r2", "W3", "b3"], ["y"], transB=1)]
    _save(tmp_path / "mlp.onnx", nodes, w, ["N", 4])
    x = g.normal(0, 1, (300, 8)).astype(np.float32)
    ref = np.maximum(np.maximum(x @ w["W1"].T + w["b1"], 0) @ w["W2"].T + w["b2"], 0) @ w["W3"].T + w["b3"]
    y = ref.argmax(1)
    y[::4] = (y[::4] + 1) % 4
    np.savez(tmp_path / "d.npz", x=x, y=y)
    r = nmpu("eval", "--model", str(tmp_path / "mlp.onnx"), "--data", str(tmp_path / "d.npz"), "--seeds", "1",
             "--drift", "3600", "--json", str(tmp_path / "e.json"))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "e.json").read_text())
    assert res["images"] == 270
    # the accuracy is a float32 mean: 203/270 to 7 digits
    assert res["fp32_digital"][0]["mean"] == pytest.approx(float((ref[30:].argmax(1) == y[30:]).mean()), abs=1e-7)
    assert [(l["where"], l["why"]) for l in res["mapping"]["layers"]] == [
        ("digital", "first layer"), ("analog", ""), ("digital", "last layer")]
    assert res["analog_fixed"][0]["mean"] > 0.25


def test_an_onnx_op_that_cannot_be_converted_exits_2(tmp_path: Path) -> None:
    nodes = [helper.make_node("Gemm", ["x", "W"], ["h"], transB=1), helper.make_node("Det", ["h"], ["y"], name="det0")]
    _save(tmp_path / "bad.onnx", nodes, {"W": np.ones((4, 8), np.float32)}, ["N"])
    np.savez(tmp_path / "d.npz", x=np.zeros((20, 8), np.float32), y=np.zeros(20, np.int64))
    r = nmpu("eval", "--model", str(tmp_path / "bad.onnx"), "--data", str(tmp_path / "d.npz"))
    assert r.returncode == 2
    assert r.stderr.strip() == (f"nmpu eval: error: --model {tmp_path / 'bad.onnx'}: ONNX op Det (node det0) cannot "
                                f"be converted to PyTorch (onnx2torch)")
