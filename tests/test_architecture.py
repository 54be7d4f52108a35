"""The rooms of the house and the direction of their imports (docs/architecture.md), read from the code.

Every ``import`` and ``from ... import`` of the project's packages, at module level or inside a
function, is checked against the allowed order:

    cosim.cli -> cosim.report, cosim.sim, cosim.synth -> rtl -> nmpu_model

``cosim.sim`` and ``cosim.synth`` never import each other, ``cosim.report`` imports neither, and
``cosim.sim.tb`` (code that runs inside the simulator) imports nothing of ``cosim`` outside ``cosim.sim``.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("nmpu_model", "rtl", "cosim")

# room -> the rooms it may import (besides itself)
ALLOWED = {
    "nmpu_model": set(),
    "rtl": {"nmpu_model"},
    "cosim.report": {"nmpu_model"},
    "cosim.sim": {"rtl", "nmpu_model"},
    "cosim.synth": {"rtl", "nmpu_model"},
    "cosim.cli": {"cosim.report", "cosim.sim", "cosim.synth", "rtl", "nmpu_model"},
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
        assert (ROOT / r.replace(".", "/") / "__init__.py").exists(), r
