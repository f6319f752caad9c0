"""The module-level import graph of rabbitbus has no cycle, and no module calls
another's private names (issue 15).

Imports inside functions (lazy ones, kept for Django's app loading and optional
extras) are not edges here: they run after every module is loaded.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "rabbitbus"


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def top_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports run when the module loads (``try`` bodies included, ``TYPE_CHECKING`` not)."""
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.Try):
            yield from (n for n in node.body if isinstance(n, ast.Import | ast.ImportFrom))


def import_graph() -> dict[str, set[str]]:
    known = modules()

    def owner(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in top_level_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, *([node.module] if node.module else [])])
                # `from pkg import submodule` depends on the submodule, else on pkg.
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                    for alias in node.names
                ]
            graph[name].update(t for t in map(owner, targets) if t and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_module_level_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    edges = sum(len(targets) for targets in graph.values())
    print(f"rabbitbus: {len(graph)} modules, {edges} module-level imports between them")
    assert graph["rabbitbus.consuming.worker"] >= {"rabbitbus.publishing"}  # the graph sees imports
    assert cycles(graph) == []


def test_cycles_are_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_module_uses_another_modules_private_names() -> None:
    """``othermodule._name`` for a rabbitbus module imported as ``othermodule``."""
    known = modules()
    offences = []
    for name, path in known.items():
        text = path.read_text()
        imported = set()
        for node in top_level_imports(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rabbitbus"):
                imported.update(
                    alias.asname or alias.name
                    for alias in node.names
                    if f"{node.module}.{alias.name}" in known
                )
        for alias in imported:
            for match in re.finditer(rf"\b{alias}\.(_[a-z]\w*)", text):
                offences.append(f"{name}: {alias}.{match.group(1)}")
    assert offences == []


DRIVERS = ("pika", "aiormq", "aio_pika")


def driver_imports(tree: ast.Module) -> list[str]:
    """Every import of a driver in ``tree``: module level, in functions, under
    ``TYPE_CHECKING``, anywhere."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        else:
            continue
        found += [n for n in names if n.split(".")[0] in DRIVERS]
    return found


def test_only_the_transport_imports_pika_aiormq_or_aio_pika() -> None:
    offences, transport = [], []
    for name, path in modules().items():
        imports = driver_imports(ast.parse(path.read_text()))
        if name == "rabbitbus.transport" or name.startswith("rabbitbus.transport."):
            transport += imports
        else:
            offences += [f"{name} imports {module}" for module in imports]
    assert {module.split(".")[0] for module in transport} == set(DRIVERS)  # the scan sees them
    assert offences == []


def test_driver_imports_are_found_wherever_they_are() -> None:
    tree = ast.parse(
        "import pika.exceptions\n"
        "def f():\n    from aiormq.abc import ChannelFrame\n"
        "if TYPE_CHECKING:\n    import aio_pika as ap\n"
        "import pikachu\nfrom .aiormq import x\n"
    )
    assert driver_imports(tree) == ["pika.exceptions", "aiormq.abc", "aio_pika"]
