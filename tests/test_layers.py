"""The package's layers follow the data flow: imports only point down it, no cycles, no hidden local imports.

utils -> config -> models -> checkpoints -> data -> engine -> diagnostics -> viz -> apps. Every import statement
of a regular module counts (function-local ones too, and ``lazy_module("lseg_nb...")`` calls, the command line's
deferred imports); package ``__init__`` files only re-export.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lseg_nb"
LAYERS = ["utils", "config", "models", "checkpoints", "data", "engine", "diagnostics", "viz", "apps"]


def _modules() -> dict[str, Path]:
    out = {}
    for f in PACKAGE.rglob("*.py"):
        if f.name != "__init__.py" and "data_manifests" not in f.parts:
            out[".".join(("lseg_nb", *f.relative_to(PACKAGE).with_suffix("").parts))] = f
    return out


def _is_lazy_module_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and getattr(node.func, "id", getattr(node.func, "attr", None)) == "lazy_module"
        and len(node.args) == 1
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    )


def _imports(name: str, tree: ast.AST, known: set[str]) -> list[tuple[str, ast.AST]]:
    """(imported lseg_nb module, node) for every import statement, resolving package re-exports to the package."""
    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(name.split(".")[: -node.level] + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        elif _is_lazy_module_call(node):  # lazy_module("lseg_nb.x.y"): an import, deferred to first use
            targets = [node.args[0].value]
        for t in targets:
            if t.startswith("lseg_nb.") and (t in known or t.count(".") == 1):
                found.append((t, node))
    return found


def _layer(module: str) -> int:
    part = module.split(".")[1]
    if part == "__main__":  # `python -m lseg_nb`: the command line's entry point sits on top
        return len(LAYERS)
    return LAYERS.index(part) if part in LAYERS else -1


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods) | {f"lseg_nb.{layer}" for layer in LAYERS}
    return {m: {t for t, _ in _imports(m, ast.parse(f.read_text()), known)} - {m} for m, f in mods.items()}


def test_every_module_belongs_to_a_layer():
    assert all(_layer(m) >= 0 for m in _modules()), [m for m in _modules() if _layer(m) < 0]


def test_imports_only_point_down_the_data_flow():
    upward = [f"{m} imports {t}" for m, targets in _graph().items() for t in targets if _layer(t) > _layer(m)]
    assert not upward, "imports must point down the data flow:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    graph = _graph()
    modules = set(graph)
    edges = {m: {t for t in ts if t in modules} for m, ts in graph.items()}
    state: dict[str, int] = {}
    cycles: list[str] = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                cycles.append(" -> ".join(path[path.index(t) :] + [t]))
            elif t not in state:
                visit(t, [*path, t])
        state[m] = 2

    for m in sorted(modules):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_function_local_imports_of_lseg_nb():
    local = []
    for name, f in _modules().items():
        tree = ast.parse(f.read_text())
        for fn in ast.walk(tree):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                for node in ast.walk(fn):
                    if isinstance(node, ast.Import | ast.ImportFrom):
                        mod = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                        if (mod or "").startswith("lseg_nb") or getattr(node, "level", 0):
                            local.append(f"{name}:{node.lineno}")
    assert not local, "function-local imports of lseg_nb hide the dependency structure: " + ", ".join(local)
