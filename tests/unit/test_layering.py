"""The layering of the package, read from the source with `ast` (nothing is imported): each
module imports only from its own package or from lower ones, module-level imports form no cycle,
and the model's settings reach neither the recipe loader (YAML) nor sacrebleu."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Lowest first, as the README's Layout and each package's __init__ docstring say.
LAYERS = ("nmt.errors", "vocab", "nmt.config", "nmt.files", "nmt.system", "nmt.model", "nmt.data",
          "nmt.search", "nmt.evaluation", "nmt.storage", "nmt.translation", "nmt.serving",
          "nmt.training",
          "nmt.bench", "nmt.cli", "nmt.__main__")
# Modules the model takes its settings from: importing them must not reach these.
MODEL_SETTINGS = ("nmt.config.options", "nmt.config.checks", "nmt.config.penalties")
HEAVY = ("yaml", "sacrebleu", "nmt.config.recipes")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    files = sorted((ROOT / "nmt").rglob("*.py")) + sorted((ROOT / "vocab").rglob("*.py"))
    return {_module_name(path): path for path in files}


MODULES = _modules()


def _resolve(name: str) -> str:
    """The module an imported name lives in (`from nmt.config import options` imports the module
    nmt.config.options; `from nmt.errors import X` the module nmt.errors)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(module: str, top_level_only: bool = False) -> list[tuple[str, int]]:
    """(imported module or name, line) of every import in `module`, those inside functions too
    unless `top_level_only`."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found += [(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base,
                       node.lineno) for alias in node.names]
    return found


def _layer(name: str) -> int | None:
    for index, layer in enumerate(LAYERS):
        if name == layer or name.startswith(layer + "."):
            return index
    return None


def test_every_module_has_a_layer():
    assert [m for m in MODULES if m != "nmt" and _layer(m) is None] == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_from_a_package_above_it(module):
    own = _layer(module)
    above = [f"line {line}: {name}" for name, line in _imports(module)
             if own is not None and _layer(name) is not None and _layer(name) > own]
    assert above == [], f"{module} imports from above its layer ({LAYERS[own]})"


def test_module_level_imports_form_no_cycle():
    graph = {m: {_resolve(name) for name, _ in _imports(m, top_level_only=True)} & set(MODULES)
             - {m} for m in MODULES}
    done, path = set(), []

    def visit(module):
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(module):] +
                                                                  [module]))
        if module in done:
            return
        path.append(module)
        for imported in sorted(graph[module]):
            visit(imported)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def _reached(module: str) -> set[str]:
    """Every module and outside package that importing `module` imports, transitively."""
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        for name, _ in _imports(current, top_level_only=True):
            target = _resolve(name) or name
            if target not in seen:
                seen.add(target)
                if target in MODULES:
                    todo.append(target)
    return seen


@pytest.mark.parametrize("module", [m for m in sorted(MODULES) if m.startswith("nmt.model")]
                         + list(MODEL_SETTINGS))
def test_the_model_reaches_neither_yaml_nor_sacrebleu(module):
    reached = {name for name in _reached(module)
               if any(name == heavy or name.startswith(heavy + ".") for heavy in HEAVY)}
    assert reached == set()
