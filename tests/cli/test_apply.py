"""`nmpu apply`: one test per bad-input class of the spec (exit 2, one line, no output file)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cosim.cli import main
from nmpu_model import apply, load_config


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    codes = rng.integers(-128, 128, (5, 4))
    np.save(tmp_path / "codes.npy", codes)
    np.savez(tmp_path / "coeffs.npz", scale=np.array([128, 255, 3, 0]), offset=np.array([0, -3, 100, -128]))
    return tmp_path


def run(capsys, *argv):
    rc = main(list(argv))
    err = capsys.readouterr().err
    return rc, err


def test_apply_writes_model_output(files, capsys):
    out = files / "out.npy"
    rc, err = run(capsys, "apply", "--coeffs", str(files / "coeffs.npz"), "--codes", str(files / "codes.npy"),
                  "--out", str(out))
    assert rc == 0 and err == ""
    co = dict(np.load(files / "coeffs.npz"))
    want = apply(np.load(files / "codes.npy"), load_config(), co)
    got = np.load(out)
    assert got.dtype == np.int64 and (got == want).all()


def test_console_script_entry_point(files):
    exe = Path(sys.executable).parent / "nmpu"
    r = subprocess.run([str(exe), "apply", "--coeffs", str(files / "coeffs.npz"), "--codes", str(files / "nope.npy"),
                        "--out", str(files / "o.npy")], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "nope.npy: No such file or directory" in r.stderr
    assert "Traceback" not in r.stderr


def bad(files, name, **arrays):
    p = files / name
    if name.endswith(".npz"):
        np.savez(p, **arrays)
    else:
        np.save(p, arrays["a"])
    return str(p)


CASES = {
    "code out of range": (dict(codes=np.array([[0, 1, 2, 3], [200, 0, -300, 0]])), None,
                          r"codes.npy: codes: code outside .* at index \(1, 0\) \(value 200\); 2 such values"),
    "non-integer codes": (dict(codes=np.zeros((2, 4)) + 0.5), None, "codes.npy: codes: expected integer codes, got dtype float64"),
    "shape mismatch": (None, dict(scale=np.array([1, 2, 3]), offset=np.array([0, 0, 0])),
                       r"coeffs.npz: scale: expected shape \(4,\) to match the 4 columns"),
    "coefficient out of range": (None, dict(scale=np.array([1, 2, 3, 999]), offset=np.zeros(4, int)),
                                 r"scale: code outside ap_ufixed<8,1> range \[0, 255\] at index 3 \(value 999\); 1 such value"),
    "NaN coefficient": (None, dict(scale=np.array([1.0, 2, 3, 4]), offset=np.array([0, np.nan, 0, 0])),
                        r"offset: NaN at index 1 \(value nan\); 1 such value"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(files, capsys, case):
    codes, coeffs, msg = CASES[case]
    codes_p = bad(files, "bad_codes.npy", a=codes["codes"]) if codes else str(files / "codes.npy")
    coeffs_p = bad(files, "bad_coeffs.npz", **coeffs) if coeffs else str(files / "coeffs.npz")
    out = files / "out.npy"
    arith = "fp16" if case == "NaN coefficient" else "fixed"
    rc, err = run(capsys, "apply", "--coeffs", coeffs_p, "--codes", codes_p, "--out", str(out), "--arith", arith)
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("nmpu apply: error: ")
    import re
    assert re.search(msg, err), err
    assert not out.exists()
    assert not list(files.glob(".out.npy*")), "temporary file left behind"


@pytest.mark.parametrize("text, msg", [
    ('[output]\nbits = 8\nfrac = 0\nrounding = "NEAR"\n', "output.rounding must be one of"),
    ("[scale]\nbits = 0\nfrac = 0\n", "scale.bits must be at least 1"),
    ("[scale]\nbits = 60\nfrac = 0\n", "more than 62"),
])
def test_bad_config(files, capsys, text, msg):
    cfg = files / "bad.toml"
    cfg.write_text(text)
    out = files / "out.npy"
    rc, err = run(capsys, "apply", "--config", str(cfg), "--coeffs", str(files / "coeffs.npz"),
                  "--codes", str(files / "codes.npy"), "--out", str(out))
    assert rc == 2 and msg in err and str(cfg) in err and err.count("\n") == 1
    assert not out.exists()


def test_pickled_array_is_refused(files, capsys):
    p = files / "obj.npy"
    np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    rc, err = run(capsys, "apply", "--coeffs", str(files / "coeffs.npz"), "--codes", str(p), "--out", str(files / "o.npy"))
    assert rc == 2 and "obj.npy" in err and err.count("\n") == 1


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path):
    from cosim.cli.io import write_atomic

    out = tmp_path / "out.npy"
    out.write_bytes(b"old")

    def half(f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_atomic(out, half, binary=True)
    assert out.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.npy"]


def test_bad_input_leaves_an_existing_output_unchanged(files, capsys):
    out = files / "out.npy"
    out.write_bytes(b"old")
    np.save(files / "bad.npy", np.array([[0, 1, 2, 300]]))
    rc, err = run(capsys, "apply", "--coeffs", str(files / "coeffs.npz"), "--codes", str(files / "bad.npy"),
                  "--out", str(out))
    assert rc == 2 and out.read_bytes() == b"old"


@pytest.mark.parametrize("arith", ["fp16", "fp32"])
def test_float_baselines_through_the_cli(files, capsys, arith):
    """Real coefficients (not binary16 values: rounded once by the unit) and an out_frac in the archive,
    against the exact reference."""
    from fractions import Fraction

    from tests.model.reference import apply_float_ref, round_binary

    s, o = np.array([0.3, 1.7, -0.45, 0.01]), np.array([2.2, -7.3, 0.1, 40.0])
    np.savez(files / "real.npz", scale=s, offset=o, out_frac=np.array(2))
    out = files / "out.npy"
    rc, err = run(capsys, "apply", "--coeffs", str(files / "real.npz"), "--codes", str(files / "codes.npy"),
                  "--out", str(out), "--arith", arith)
    assert rc == 0 and err == ""
    got, x, cfg = np.load(out), np.load(files / "codes.npy"), load_config()
    for (i, j), y in np.ndenumerate(got):
        sb, ob = (float(round_binary(Fraction(v), arith)) for v in (s[j], o[j]))
        assert y == apply_float_ref(int(x[i, j]), sb, ob, cfg, 2, arith), (i, j)


def test_bn_configuration_through_the_cli(files, capsys):
    from tests.model.reference import apply_ref

    cfg = files / "bn.toml"
    cfg.write_text('relu = false\nbn_stage = true\n[bn_scale]\nbits = 6\nfrac = 4\nsigned = true\n'
                   '[bn_offset]\nbits = 6\nfrac = 1\nsigned = true\n'
                   '[mid]\nbits = 10\nfrac = 3\nsigned = true\nrounding = "RND_CONV"\noverflow = "SAT"\n')
    np.savez(files / "bn.npz", scale=np.array([128, 255, 3, 0]), offset=np.array([0, -3, 100, -128]),
             bn_scale=np.array([16, -32, 31, 5]), bn_offset=np.array([-7, 31, 0, -32]))
    out = files / "out.npy"
    rc, err = run(capsys, "apply", "--config", str(cfg), "--coeffs", str(files / "bn.npz"),
                  "--codes", str(files / "codes.npy"), "--out", str(out))
    assert rc == 0 and err == ""
    config, c = load_config(cfg), dict(np.load(files / "bn.npz"))
    assert config.bn_stage and not config.relu
    x = np.load(files / "codes.npy")
    for (i, j), y in np.ndenumerate(np.load(out)):
        want = apply_ref(int(x[i, j]), int(c["scale"][j]), int(c["offset"][j]), config, 0,
                         int(c["bn_scale"][j]), int(c["bn_offset"][j]))
        assert y == want, (i, j)
    # the same archive without its BN coefficients is refused, naming the missing one
    np.savez(files / "nobn.npz", scale=c["scale"], offset=c["offset"])
    rc, err = run(capsys, "apply", "--config", str(cfg), "--coeffs", str(files / "nobn.npz"),
                  "--codes", str(files / "codes.npy"), "--out", str(out))
    assert rc == 2 and "'bn_scale' is missing" in err and err.count("\n") == 1


@pytest.mark.parametrize("argv, msg", [
    ([], "nmpu: error: a command is required: apply, "),
    (["frob"], "nmpu: error: argument COMMAND: invalid choice: 'frob'"),
    (["eval", "--seeds", "x"], "nmpu eval: error: argument --seeds: invalid int value: 'x'"),
    (["apply"], "nmpu apply: error: the following arguments are required: --coeffs, --codes, --out"),
    (["apply", "--arith", "bf16"], "nmpu apply: error: argument --arith: invalid choice: 'bf16'"),
])
def test_usage_errors_are_one_line(capsys, argv, msg):
    assert main(argv) == 2
    cap = capsys.readouterr()
    assert cap.err.startswith(msg) and cap.err.count("\n") == 1 and cap.out == ""


def test_help_is_not_an_error(capsys):
    assert main(["--help"]) == 0 and "usage: nmpu" in capsys.readouterr().out
