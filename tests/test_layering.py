"""The package's layering, read from the source with ``ast`` (nothing is imported).

Data flows one way (docs/architecture.md):

    bottom (errors, targets, io, typed_config, metrics)
      → data → models → training | evaluation → experiments | apply → cli

A module may import from its own package and from layers below it, never from a layer
above it nor from a sibling on its own layer (training and evaluation do not know each
other; neither do experiments and apply). Nothing imports ``cli`` but ``__main__``. The
module graph, lazy imports inside functions included, has no cycle (imports under
``if TYPE_CHECKING:`` are for type hints only, never run, and are not counted).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import avstan

PACKAGE_ROOT = Path(avstan.__file__).parent
BOTTOM = ("avstan", "avstan.errors", "avstan.targets", "avstan.io", "avstan.typed_config",
          "avstan.metrics", "avstan.devices", "avstan.progress", "avstan.cluster",
          "avstan.memory")
LAYERS = {"avstan.data": 1, "avstan.models": 2, "avstan.training": 3, "avstan.evaluation": 3,
          "avstan.experiments": 4, "avstan.apply": 4, "avstan.cli": 5, "avstan.__main__": 6}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE_ROOT.rglob("*.py"))}


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (type hints only,
    never executed, so they make no import-time cycle)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The avstan modules ``path`` imports, anywhere in the file (lazy imports too).

    ``from avstan.x import y`` counts as importing ``avstan.x.y`` when that is a module,
    else ``avstan.x``."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "avstan")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            if source.split(".")[0] != "avstan":
                continue
            for alias in node.names:
                child = f"{source}.{alias.name}"
                found.add(child if child in known else source)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    known = set(modules)
    return {name: imported_modules(path, known) for name, path in modules.items()}


def layer_of(module: str) -> tuple[str, int]:
    """(the layer's package, its rank); the bottom modules are rank 0."""
    if module in BOTTOM:
        return "bottom", 0  # they may import each other (the cycle check still applies)
    for package, rank in LAYERS.items():
        if module == package or module.startswith(package + "."):
            return package, rank
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS or BOTTOM")


def layering_violations(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, imports in sorted(graph.items()):
        package, rank = layer_of(module)
        for imported in sorted(imports):
            other, other_rank = layer_of(imported)
            if other == package or other_rank < rank:
                continue
            if other_rank == rank:
                problems.append(f"{module} imports {imported}, a sibling on its layer")
            else:
                problems.append(f"{module} imports {imported}, a layer above it")
    return problems


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for neighbour in sorted(graph.get(node, ())):
            if state.get(neighbour) == 1:
                return path[path.index(neighbour):] + [neighbour]
            if neighbour not in state and (cycle := visit(neighbour)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_every_module_is_in_a_layer():
    for module in all_modules():
        layer_of(module)


def test_no_module_imports_a_layer_above_it_or_a_sibling():
    assert layering_violations(import_graph()) == []


def test_nothing_but_main_imports_the_cli():
    importers = sorted(m for m, imports in import_graph().items() if "avstan.cli" in imports)
    assert importers == ["avstan.__main__"]


def test_the_import_graph_has_no_cycle():
    assert find_cycle(import_graph()) is None


def test_the_model_registry_imports_no_model_file():
    assert import_graph()["avstan.models.registry"] <= set(BOTTOM)


@pytest.mark.parametrize("module, added, kind", [
    # The cycles the restructure removed, put back: each must be caught.
    ("avstan.training.module", "avstan.evaluation.metrics", "sibling"),
    ("avstan.evaluation.evaluate", "avstan.training.fit", "sibling"),
    ("avstan.data.store", "avstan.models.registry", "above"),
    ("avstan.evaluation.inference", "avstan.apply.predict", "above"),
    ("avstan.apply.predict", "avstan.experiments.demo", "sibling"),
])
def test_the_checks_catch_an_upward_or_sideways_import(module, added, kind):
    graph = import_graph()
    graph[module] = graph[module] | {added}
    graph.setdefault(added, set())
    problems = layering_violations(graph)
    wanted = "a sibling on its layer" if kind == "sibling" else "a layer above it"
    assert f"{module} imports {added}, {wanted}" in problems


def test_the_cycle_check_catches_a_lazy_registry_import():
    graph = import_graph()
    graph["avstan.models.registry"] = graph["avstan.models.registry"] | {"avstan.models.audio"}
    cycle = find_cycle(graph)
    assert cycle is not None and "avstan.models.registry" in cycle
    assert "avstan.models.audio" in cycle


def test_imports_are_read_from_function_bodies_and_relative_forms(tmp_path, monkeypatch):
    source = tmp_path / "avstan" / "data" / "thing.py"
    source.parent.mkdir(parents=True)
    source.write_text("def f():\n    from avstan.models import registry\n"
                      "from . import store\nfrom ..errors import AvstanError\n"
                      "if TYPE_CHECKING:\n    from avstan.apply import predict\n")
    monkeypatch.setattr(f"{__name__}.PACKAGE_ROOT", tmp_path / "avstan")
    known = {"avstan.models.registry", "avstan.data.store", "avstan.errors"}
    assert imported_modules(source, known) == known
