"""Accuracy evaluation, datasets and the ``nmpu eval`` command."""
import json

import numpy as np
import pytest
import torch

from cosim.cli import main
from nmpu_model import NMPUConfig
from nmpu_model.workloads.datasets import CIFAR_MEAN, CIFAR_STD, load_cifar10, load_digits, write_cifar_binary
from nmpu_model.workloads.registry import Workload
from nmpu_model.studies.evaluate import evaluate, format_table
from nmpu_model.workloads.models import digits_cnn, resnet9


def test_digits_split_is_fixed():
    a, b = load_digits(), load_digits()
    assert a.x_test.shape == (360, 1, 8, 8) and a.x_train.shape == (1437, 1, 8, 8)
    assert torch.equal(a.y_test, b.y_test) and torch.equal(a.x_test, b.x_test)
    assert 0.0 <= float(a.x_train.min()) and float(a.x_train.max()) <= 1.0


def test_evaluate_reports_every_post_processor_per_drift_time():
    torch.manual_seed(0)
    d = load_digits()
    work = Workload("tiny", digits_cnn().eval(), d.x_test[:40], d.y_test[:40], d.x_train[:32])
    res = evaluate(work, NMPUConfig(), drifts=(1.0, 3600.0), seeds=2)
    for key in ("fp32_digital", "analog_fp32", "analog_fp16", "analog_fixed"):
        assert [e["t"] for e in res[key]] == [1.0, 3600.0]
        for e in res[key]:
            assert 0.0 <= e["mean"] <= 1.0 and e["std"] >= 0.0
    assert len(res["analog_fixed"][0]["runs"]) == 2
    assert res["config"] == NMPUConfig().to_dict()
    assert set(res["layers"]) == {"3", "7", "12"}
    json.dumps(res)
    assert "analog + fixed NMPU" in format_table(res)


def _fake_cifar(folder, n=8, seed=0):
    rng = np.random.default_rng(seed)
    imgs = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    write_cifar_binary(folder / "data_batch_1.bin", imgs, labels)
    write_cifar_binary(folder / "test_batch.bin", imgs[::-1], labels[::-1])
    return imgs, labels


def test_cifar_binary_reader(tmp_path):
    imgs, labels = _fake_cifar(tmp_path)
    d = load_cifar10(tmp_path)
    assert d.x_train.shape == (8, 3, 32, 32) and d.y_train.tolist() == labels.tolist()
    # pixel (c, y, x) of record i: byte 1 + c*1024 + y*32 + x, normalized per channel
    c, y, x = 2, 5, 7
    raw = imgs[3, c, y, x] / 255.0
    assert float(d.x_train[3, c, y, x]) == pytest.approx((raw - CIFAR_MEAN[c]) / CIFAR_STD[c], abs=1e-6)
    assert d.y_test.tolist() == labels[::-1].tolist()
    (tmp_path / "test_batch.bin").write_bytes(b"\x01" * 100)
    with pytest.raises(ValueError, match="not a CIFAR-10 binary file"):
        load_cifar10(tmp_path)


def test_eval_without_cifar_data_is_one_line_exit_2(tmp_path, capsys):
    assert main(["eval", "--model", "resnet9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CIFAR-10 data not found" in err and "--data" in err
    assert main(["eval", "--model", "resnet9", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "test_batch.bin" in err


@pytest.mark.parametrize("argv, msg", [
    (["--drift", "1,soon"], "item 1 'soon'"),
    (["--drift", "-5"], ">= 0"),
    (["--seeds", "0"], "--seeds"),
    (["--images", "0"], "--images"),
    (["--data", "x"], "resnet9"),
])
def test_eval_bad_arguments(argv, msg, capsys):
    assert main(["eval", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and msg in err


def test_eval_digits_writes_json(tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["eval", "--seeds", "1", "--drift", "3600", "--images", "40", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res) >= {"fp32_digital", "analog_fp32", "analog_fp16", "analog_fixed", "config"}
    assert res["images"] == 40 and res["analog_fixed"][0]["t"] == 3600.0
    assert "float model" in capsys.readouterr().out


def test_eval_resnet9_on_local_binary_data(tmp_path, capsys):
    _fake_cifar(tmp_path, n=6)
    w = tmp_path / "r9.pt"
    torch.manual_seed(0)
    torch.save(resnet9().state_dict(), w)
    out = tmp_path / "r9.json"
    rc = main(["eval", "--model", "resnet9", "--data", str(tmp_path), "--weights", str(w), "--seeds", "1",
               "--drift", "1", "--images", "2", "--json", str(out)])
    assert rc == 0
    assert json.loads(out.read_text())["model"] == "resnet9"


def test_shipped_digits_model_loads_safely_and_is_trained():
    from nmpu_model.workloads.models import SHIPPED_DIGITS, accuracy, load_or_train_digits

    assert SHIPPED_DIGITS.is_file() and SHIPPED_DIGITS.stat().st_size < 200_000
    torch.load(SHIPPED_DIGITS, weights_only=True)  # plain tensors, no pickled code
    d = load_digits()
    assert accuracy(load_or_train_digits(), d.x_test, d.y_test) > 0.98
