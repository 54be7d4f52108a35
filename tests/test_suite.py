"""The suite's own machinery: `make test` runs `pytest -n 2 --dist loadgroup`, and the tests that share a build
or a synthesis are grouped with `xdist_group` so that one worker makes it once. A pytest and pytest-xdist pair
that ignores the marks (pytest 9.2 with xdist 3.8) silently makes every shared build twice: this test fails then."""
import re
import subprocess
import sys
import textwrap


def test_xdist_groups_run_on_one_worker(tmp_path) -> None:
    (tmp_path / "test_grouped.py").write_text(textwrap.dedent("""
        import os, pytest
        pytestmark = pytest.mark.xdist_group("shared")
        @pytest.mark.parametrize("i", range(6))
        def test_g(i):
            print(os.environ["PYTEST_XDIST_WORKER"])
    """))
    (tmp_path / "test_free.py").write_text("import pytest\n@pytest.mark.parametrize('i', range(6))\ndef test_f(i): pass\n")
    r = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p", "no:cacheprovider",
                        str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:]
    grouped = re.findall(r"\[(gw\d)\] .*PASSED .*test_grouped\.py::test_g\[\d\](@shared)?", r.stdout)
    assert len(grouped) == 6, r.stdout[-2000:]
    assert all(suffix == "@shared" for _, suffix in grouped), "xdist_group marks are ignored: " + r.stdout[-1500:]
    assert len({w for w, _ in grouped}) == 1, grouped
