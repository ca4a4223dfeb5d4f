"""The import rules docs/architecture.md states: one direction between packages, no cycle between
modules, and a core that imports neither Prefect nor Starlette. Read from the source (`ast`),
so imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("imgsearch", "tasks", "flows", "search_app", "cli", "deployments", "benchmarks")
# What each package may import of the others: everything to its right in the chain, nothing back.
ALLOWED = {
    "imgsearch": set(),
    "tasks": {"imgsearch"},
    "flows": {"tasks", "imgsearch"},
    "search_app": {"flows", "tasks", "imgsearch"},
    "deployments": {"flows", "tasks", "imgsearch"},
    "cli": {"search_app", "deployments", "flows", "tasks", "imgsearch", "benchmarks"},
    # Beside the CLI, not in the product: `imgsearch bench` runs it, and it starts `imgsearch` commands.
    "benchmarks": {"search_app", "flows", "tasks", "imgsearch"},
}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            found[name] = path
    return found


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Project modules `path` imports, at any depth of its code."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name in known}


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(path, set(found)) - {name} for name, path in found.items()}


def test_packages_import_only_downwards() -> None:
    wrong = [f"{module} imports {target}" for module, targets in graph().items() for target in targets
             if target.split(".")[0] != module.split(".")[0]
             and target.split(".")[0] not in ALLOWED[module.split(".")[0]]]
    assert not wrong, wrong


def test_no_module_imports_one_that_imports_it_back() -> None:
    edges = graph()
    cycles = []
    for start in edges:
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for target in edges[node]:
                if target == start:
                    cycles.append(" -> ".join([*trail, start]))
                elif target not in seen:
                    seen.add(target)
                    stack.append((target, [*trail, target]))
    assert not cycles, cycles[:5]


def test_the_core_imports_neither_prefect_nor_starlette() -> None:
    for name, path in modules().items():
        if name.startswith("imgsearch"):
            tree = ast.parse(path.read_text())
            roots = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                     for alias in node.names}
            roots |= {node.module.split(".")[0] for node in ast.walk(tree)
                      if isinstance(node, ast.ImportFrom) and node.module}
            assert not roots & {"prefect", "starlette", "uvicorn"}, name
