"""The rooms of the house and the direction of their imports (docs/architecture.md), read from the code.

Every ``import`` and ``from ... import`` of the project's packages, at module level or inside a
function, is checked against the allowed order:

    cosim.cli -> cosim.workbench -> cosim.report -> cosim.studies -> cosim.sim, cosim.synth -> rtl -> nmpu_model.golden
    nmpu_model.studies -> nmpu_model.workloads -> nmpu_model.network -> nmpu_model.analog, nmpu_model.golden

``cosim.sim`` and ``cosim.synth`` never import each other (``cosim.studies`` composes them), ``cosim.report``
imports neither (it renders the studies' results), and
``cosim.sim.tb`` (code that runs inside the simulator) imports nothing of ``cosim`` outside ``cosim.sim``.
``rtl`` sees the golden model alone (its configuration and formats), so the RTL needs neither torch nor numba;
``nmpu_model``'s own ``__init__`` is the public facade over its rooms and is not imported from inside them.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("nmpu_model", "rtl", "cosim")
MODEL_ROOMS = {"nmpu_model", "nmpu_model.cache", "nmpu_model.files", "nmpu_model.golden", "nmpu_model.analog", "nmpu_model.network",
               "nmpu_model.workloads", "nmpu_model.studies"}

# room -> the rooms it may import (besides itself); nmpu_model.cache (the one cache folder) is a leaf anyone may use
ALLOWED = {
    "nmpu_model.cache": set(),
    "nmpu_model.files": set(),
    "nmpu_model": MODEL_ROOMS - {"nmpu_model"},       # the facade (nmpu_model/__init__.py)
    "nmpu_model.golden": {"nmpu_model.files"},
    "nmpu_model.analog": {"nmpu_model.files"},
    "nmpu_model.network": {"nmpu_model.golden", "nmpu_model.analog", "nmpu_model.files"},
    "nmpu_model.workloads": {"nmpu_model.network", "nmpu_model.analog", "nmpu_model.cache", "nmpu_model.files"},
    "nmpu_model.studies": {"nmpu_model.golden", "nmpu_model.analog", "nmpu_model.network", "nmpu_model.workloads",
                           "nmpu_model.files"},
    "rtl": {"nmpu_model.golden", "nmpu_model.files"},
    "cosim.report": {"cosim.studies"} | MODEL_ROOMS,   # the studies' result types, to render them
    "cosim.sim": {"rtl"} | MODEL_ROOMS,
    "cosim.synth": {"rtl"} | MODEL_ROOMS,
    "cosim.studies": {"cosim.sim", "cosim.synth", "rtl"} | MODEL_ROOMS,
    "cosim.workbench": {"cosim.report", "cosim.studies"} | MODEL_ROOMS,   # the browser's pages over the studies
    "cosim.cli": {"cosim.workbench", "cosim.report", "cosim.studies", "cosim.sim", "cosim.synth", "rtl"} | MODEL_ROOMS,
    "cosim": set(),                          # the package's own __init__
}


def room(module: str) -> str:
    """The room of a dotted module name: the longest key of ALLOWED it starts with."""
    return max((r for r in ALLOWED if module == r or module.startswith(r + ".")), key=len)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, name: str) -> list[tuple[int, str]]:
    """(line, absolute module) of every import of one of the project's packages in ``path`` (module ``name``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from pkg import sub`: the submodule (or a name in pkg) is what is imported
            out += [(node.lineno, f"{mod}.{a.name}") for a in node.names]
    return [(ln, m) for ln, m in out if m.split(".")[0] in PACKAGES]


def check(path: Path, name: str) -> list[str]:
    """The imports of ``path`` (module ``name``) that go against the order."""
    bad, src = [], room(name)
    for line, mod in imports(path, name):
        dst = room(mod)
        if dst != src and dst not in ALLOWED[src]:
            bad.append(f"{path.name}:{line}: {src} imports {mod} ({dst})")
        if name.startswith("cosim.sim.tb") and dst.startswith("cosim") and dst != "cosim.sim":
            bad.append(f"{path.name}:{line}: simulator-side code imports {mod}")
    return bad


def test_imports_follow_the_rooms() -> None:
    bad = [f"{p.parent.relative_to(ROOT)}/{v}" for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))
           for v in check(p, module_name(p))]
    assert bad == []


def test_the_check_sees_an_arrow_against_the_order(tmp_path: Path) -> None:
    """Relative and absolute imports, in functions too, are read (so the test above can fail)."""
    f = tmp_path / "probe.py"
    f.write_text("def f():\n    from cosim.sim import runner\n    from ..cosim import cli\n    from .arith import Fit\n")
    assert check(f, "rtl.probe") == ["probe.py:2: rtl imports cosim.sim.runner (cosim.sim)",
                                     "probe.py:3: rtl imports cosim.cli (cosim.cli)"]
    f.write_text("from cosim.synth import flow\nfrom ..components import Harness\n")
    assert check(f, "cosim.sim.tb.probe") == ["probe.py:1: cosim.sim imports cosim.synth.flow (cosim.synth)",
                                              "probe.py:1: simulator-side code imports cosim.synth.flow"]


def test_every_room_exists() -> None:
    for r in ALLOWED:
        assert (ROOT / r.replace(".", "/") / "__init__.py").exists() or (ROOT / f"{r.replace('.', '/')}.py").exists(), r


def test_the_rtl_loads_neither_torch_nor_numba() -> None:
    """The RTL needs only the configuration: `import rtl` (and making a unit's Verilog) stays light."""
    code = ("import sys, rtl, rtl.export, rtl.fp16_unit\n"
            "print(sorted(m for m in ('torch', 'numba', 'nmpu_model.golden.datapath') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_the_public_names_are_one_import_away() -> None:
    """The README's import line, and every name of the facade resolves (the facade's table is not stale)."""
    import nmpu_model
    from nmpu_model import AnalogNetwork, PCMParams, TileParams, apply, load_config, program_layer, resnet9  # noqa: F401
    missing = [n for n in nmpu_model.__all__ if not hasattr(nmpu_model, n)]
    assert missing == []
