"""The simulator build cache: a build is reused only while the Verilog it was made from is the same, and
two processes never build one folder at once (Icarus builds: seconds)."""
from __future__ import annotations

import threading

import pytest

from cosim.sim import runner, toolchain
from nmpu_model import NMPUConfig
from nmpu_model.golden.formats import Fmt

# a configuration of its own, so no other test shares (or races on) these folders
CFG = NMPUConfig(scale=Fmt(5, 4, False), offset=Fmt(5, 1, True))


@pytest.fixture
def fresh_root(tmp_path, monkeypatch):
    monkeypatch.setenv("NMPU_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_a_changed_rtl_is_built_again(fresh_root, monkeypatch):
    import rtl.export as export

    first = runner.build(CFG, "icarus")
    assert not first.cached and str(first.folder).startswith(str(fresh_root))
    binary = first.folder / "sim" / "sim.vvp"
    before = binary.stat().st_mtime_ns
    again = runner.build(CFG, "icarus")
    assert again.cached and binary.stat().st_mtime_ns == before
    # the same configuration, but the RTL's Verilog changed (a new version of the unit): not the old binary
    real = export.export_verilog

    def changed(*a, **kw):
        text, meta = real(*a, **kw)
        return text + "\n// a changed unit\n", meta

    monkeypatch.setattr(export, "export_verilog", changed)
    new = runner.build(CFG, "icarus")
    assert new.folder == first.folder and not new.cached
    assert binary.stat().st_mtime_ns != before and "a changed unit" in new.verilog.read_text()
    res = runner.verify(CFG, vectors=200, seed=3, sim="icarus")
    assert res.mismatches == 0 and res.vectors == 200


def test_a_build_waits_for_the_lock_of_its_folder(fresh_root):
    from rtl.export import unit as unit_spec

    folder = toolchain.build_dir("cocotb-icarus", CFG.identity())
    done, errors = threading.Event(), []

    def build():
        try:
            runner.build(CFG, "icarus")
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
        done.set()

    with toolchain.locked(folder):
        t = threading.Thread(target=build)
        t.start()
        # while another holder has the lock, the builder writes nothing into the folder
        assert not done.wait(1.5)
        assert not (folder / f"{unit_spec('fixed').top}.v").exists()
    t.join(120)
    assert done.is_set() and not errors and (folder / "sim" / "sim.vvp").exists()
