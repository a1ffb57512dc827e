"""Structure of the engine: the shared kernel utilities live in one private module.

The numba options, the teacher T(x), the mini-batch sampler and the input checks are defined in
``engine/_kernels.py`` only; every other module imports them from there and none imports a
private name from ``engine/fa.py`` (the Fukumizu–Amari model and its integrators). Parsed with
``ast``, so nothing is imported or compiled.
"""

import ast
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parent.parent / "engine"
KERNELS = "_kernels.py"
#: names that only engine/_kernels.py may define (at module level)
SHARED = {"_JIT", "_count", "_seed", "_positive", "_choose", "_teacher", "_apply_teacher",
          "_teacher_id", "_teacher_name", "_theta_array", "TEACHERS", "MAX_COUNT", "MAX_ELEMENTS",
          "teacher_numpy"}
#: ... and no module may define these again (removed duplicates: an unused size check beside
#: run_ensemble's, and stability's own array form of the teacher)
FORBIDDEN = SHARED | {"_check_size", "_teacher_values"}
MODULES = sorted(p for p in ENGINE.glob("*.py"))


def _defined(tree: ast.Module) -> set[str]:
    """Names bound at module level by def, class or assignment (not by import)."""
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
    return names


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def test_kernels_module_defines_every_shared_helper():
    assert SHARED <= _defined(_tree(ENGINE / KERNELS))


@pytest.mark.parametrize("path", [p for p in MODULES if p.name != KERNELS], ids=lambda p: p.name)
def test_no_other_module_defines_a_shared_helper(path):
    again = FORBIDDEN & _defined(_tree(path))
    assert not again, f"{path.name} defines {sorted(again)}: import them from engine/{KERNELS}"


def _private_imports_from_fa(tree: ast.Module) -> list[str]:
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("fa", "engine.fa") and (
                node.level > 0 or node.module == "engine.fa"):
            bad += [a.name for a in node.names if a.name.startswith("_") or a.name == "*"]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id == "fa" and node.attr.startswith("_"):
            bad.append(f"fa.{node.attr}")
    return bad


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_module_imports_a_private_name_from_fa(path):
    bad = _private_imports_from_fa(_tree(path))
    assert not bad, f"{path.name} uses private names of engine/fa.py: {bad}"


def test_the_checks_see_a_violation():
    src = ("from .fa import _count, run_ensemble\nfrom engine.fa import _seed\n"
           "_JIT = dict(cache=True)\ndef _choose(): pass\n")
    tree = ast.parse(src)
    assert _private_imports_from_fa(tree) == ["_count", "_seed"]
    assert SHARED & _defined(tree) == {"_JIT", "_choose"}


def test_every_jit_caches():
    """Every ``@njit``/``@jit`` in the engine compiles with cache=True (directly or via _JIT)."""
    for path in MODULES:
        for node in ast.walk(_tree(path)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for dec in node.decorator_list:
                call = dec if isinstance(dec, ast.Call) else None
                name = (call.func if call else dec)
                name = getattr(name, "id", getattr(name, "attr", ""))
                if name not in ("njit", "jit"):
                    continue
                assert call is not None, f"{path.name}:{node.name} uses a bare @{name}"
                kw = {k.arg: k.value for k in call.keywords}
                cached = (isinstance(kw.get("cache"), ast.Constant) and kw["cache"].value is True) \
                    or any(k.arg is None and isinstance(k.value, ast.Name)
                           and k.value.id.startswith("_JIT") for k in call.keywords)
                assert cached, f"{path.name}:{node.name} is jitted without cache=True"
