"""The layer rule of docs/architecture.md, read from the import statements of every module.

``llm`` and ``runtime`` know nothing of steps, the artifact layer or Snakemake; no module of
the library imports Snakemake; ``runtime`` and ``llm`` have no import cycles. Imports under
``if TYPE_CHECKING:`` are not run and do not count; imports inside functions do.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

LIB = Path(__file__).resolve().parents[1] / "agentskiller"

#: layer -> packages it must never import
FORBIDDEN = {
    "agentskiller.llm": ("agentskiller.steps", "agentskiller.artifacts", "agentskiller.jobs", "agentskiller.runtime"),
    "agentskiller.runtime": ("agentskiller.steps", "agentskiller.artifacts", "agentskiller.jobs", "agentskiller.llm"),
    "agentskiller.models": ("agentskiller.steps", "agentskiller.artifacts", "agentskiller.jobs"),
    "agentskiller.grounding": ("agentskiller.steps", "agentskiller.llm", "agentskiller.runtime"),
    # the config module is neutral: everything may read it, it reads nothing of the workflow
    "agentskiller.config": (
        "agentskiller.steps",
        "agentskiller.artifacts",
        "agentskiller.jobs",
        "agentskiller.llm",
        "agentskiller.runtime",
    ),
}


def _name(path: Path) -> str:
    parts = ["agentskiller", *path.relative_to(LIB).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path) -> set[str]:
    module = _name(path)
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    prefix = base[: len(base) - (child.level - 1)]
                    mod = ".".join(prefix + ([child.module] if child.module else []))
                else:
                    mod = child.module or ""
                found.add(mod)
                found.update(f"{mod}.{a.name}" for a in child.names)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


MODULES = {_name(p): _imports(p) for p in sorted(LIB.rglob("*.py"))}


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_walker_sees_function_level_imports():
    # agentskiller.llm.client imports its providers inside a function
    assert any(_under(m, "agentskiller.llm.offline") for m in MODULES["agentskiller.llm.client"])


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_point_one_way(layer):
    bad = [
        f"{mod} imports {imp}"
        for mod, imps in MODULES.items()
        if _under(mod, layer)
        for imp in sorted(imps)
        if any(_under(imp, f) for f in FORBIDDEN[layer])
    ]
    assert bad == []


def test_no_library_module_imports_snakemake():
    bad = [m for m, imps in MODULES.items() if any(_under(i, "snakemake") for i in imps)]
    assert bad == []


@pytest.mark.parametrize("package", ["agentskiller.runtime", "agentskiller.llm", "agentskiller.steps"])
def test_no_import_cycle_inside(package):
    graph = nx.DiGraph()
    for mod, imps in MODULES.items():
        if not _under(mod, package):
            continue
        graph.add_node(mod)
        for imp in imps:
            # a package's __init__ re-exporting its submodules is not a cycle between modules
            if imp in MODULES and _under(imp, package) and imp != mod and not mod.startswith(imp + "."):
                graph.add_edge(mod, imp)
    cycles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert cycles == []


def test_long_modules_say_why():
    """No module over 400 lines without a one-line reason ("Size: over 400 lines because ...")."""
    silent = []
    for path in sorted(LIB.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > 400:
            doc = ast.get_docstring(ast.parse(text)) or ""
            if "over 400 lines because" not in doc:
                silent.append(str(path.relative_to(LIB)))
    assert silent == []
