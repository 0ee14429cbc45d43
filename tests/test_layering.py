"""Dependencies point down, never up: checked by walking every module's imports with `ast`.

Rules (DESIGN.md, "The house"):
  ir        imports nothing of kcompile but itself;
  passes    imports only ir (and itself);
  compiler  imports only ir and passes (and itself);
  runtime   never imports compiler or frontend (a deployed artifact needs runtime and numpy only);
  frontend  model definition imports only ir; fit/predict live in frontend/training/ and may reach
            the passes, compiler and runtime. Kept simple: outside frontend/training/, no module
            imports kcompile.compiler at module top level (a lazy import inside a function, made
            when the user asks to compile, is allowed).
Imports anywhere in a file count for ir, passes, compiler and runtime; relative imports are
resolved to absolute names first. `import kcompile` (the facade) counts as the layer "kcompile".
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {
    "ir": {"ir"},
    "passes": {"ir", "passes"},
    "compiler": {"ir", "passes", "compiler"},
    "runtime": {"ir", "passes", "runtime"},
}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts[:-1]) if rel.name == "__init__" else list(rel.parts)
    return ".".join(["kcompile", *parts])


def imports(source: str, module: str, is_package: bool):
    """(imported module, line, at module top level) for every import in the source."""
    tree = ast.parse(source)
    nested = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
              for n in ast.walk(f)}
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            names = [".".join(base + ([node.module] if node.module else []))]
        else:
            continue
        for name in names:
            yield name, node.lineno, id(node) not in nested


def layer(module: str):
    parts = module.split(".")
    if parts[0] != "kcompile":
        return None
    return parts[1] if len(parts) > 1 else "kcompile"


def files(part: str):
    return sorted((ROOT / part).rglob("*.py"))


def violations(part: str) -> list:
    found = []
    for path in files(part):
        mod = module_name(path)
        for name, line, top in imports(path.read_text(), mod, path.name == "__init__.py"):
            target = layer(name)
            if part in ALLOWED:
                bad = target is not None and target not in ALLOWED[part]
            else:  # frontend
                bad = target == "compiler" and top and "training" not in path.relative_to(ROOT / part).parts
            if bad:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return found


@pytest.mark.parametrize("part", ["ir", "passes", "compiler", "runtime", "frontend"])
def test_layering(part):
    assert not violations(part), f"{part} breaks the layering (see this test's docstring)"


def test_the_walker_sees_imports():
    found = {name for name, _, _ in imports((ROOT / "runtime/reference.py").read_text(),
                                             "kcompile.runtime.reference", False)}
    assert "kcompile.ir" in found
    assert files("ir") and module_name(ROOT / "ir/ops/nn.py") == "kcompile.ir.ops.nn"


def test_relative_imports_resolve_and_nesting_is_seen():
    src = "from ..x import a\nfrom . import b\nfrom ...passes import c\ndef f():\n    from kcompile.compiler import d\n"
    got = sorted(imports(src, "kcompile.ir.ops.nn", False))
    assert got == [("kcompile.compiler", 5, False), ("kcompile.ir.ops", 2, True), ("kcompile.ir.x", 1, True),
                   ("kcompile.passes", 3, True)]
    assert [layer(n) for n, _, _ in got] == ["compiler", "ir", "ir", "passes"]
