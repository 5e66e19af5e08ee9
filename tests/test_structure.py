"""The package's shape: no import cycle among its modules, no module grown past a size limit.

Imports are read with `ast`, not by importing: every `import forensics...` and
`from forensics... import` counts, at module level or inside a function (a lazy import still
closes a cycle the first time that function runs). Imports under `if TYPE_CHECKING:` never
run and do not count. `from forensics.x import y` is an edge to `forensics.x.y` when that is
a module, else to `forensics.x`.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "forensics"
MAX_LINES = 450
TOO_BIG_ON_PURPOSE = {
    "forensics/synth/scenarios.py",  # one scenario per detector, read side by side
    "forensics/case/schema.py",  # the case's DDL in one place
    "forensics/ingest/provider_usage.py",  # four providers' export shapes
}


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package is its
    `__init__.py`)."""
    found: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement under `node`, at any depth, except in `if TYPE_CHECKING:`."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        elif isinstance(child, ast.If) and _is_type_checking(child):
            yield from _import_nodes(ast.Module(body=child.orelse, type_ignores=[]))
        else:
            yield from _import_nodes(child)


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that module `name` imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        if node.level:  # relative: from . import x, from ..y import z
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            source = ".".join([*base, *([node.module] if node.module else [])])
        else:
            source = node.module or ""
        for alias in node.names:
            submodule = f"{source}.{alias.name}"
            targets.add(submodule if submodule in known else source)
    return {t for t in targets if t in known and t != name}


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One shortest cycle for each group of modules that import each other (Tarjan's
    strongly connected components, then a breadth-first search inside each)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_shortest_cycle(graph, group) for group in groups]


def _shortest_cycle(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    start = min(group)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target in sorted(graph[node] & group):
            if target == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if target not in came_from:
                came_from[target] = node
                queue.append(target)
    raise AssertionError(f"no cycle through {start}")  # a strongly connected group has one


def describe(found: list[list[str]]) -> str:
    return "\n".join(" -> ".join(cycle) for cycle in found)


def test_imports_inside_functions_count_and_type_checking_ones_do_not(tmp_path):
    path = tmp_path / "example.py"
    path.write_text(
        "from typing import TYPE_CHECKING\n"
        "from forensics.detect import load\n"
        "from . import model\n"
        "if TYPE_CHECKING:\n"
        "    from forensics.case import db\n"
        "def f():\n"
        "    from forensics.errors import UsageError\n"
        "    import forensics.times\n",
        encoding="utf-8",
    )
    assert imports_of("forensics.detect.example", path, modules()) == {
        "forensics.detect.load",
        "forensics.detect.model",
        "forensics.errors",
        "forensics.times",
    }


def test_cycles_are_reported_as_paths():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": {"d"}, "f": {"a"}}
    assert cycles(graph) == [["d", "e", "d"], ["a", "b", "c", "a"]]


def test_no_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + describe(found)


def test_no_module_is_too_long():
    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE.parent).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES and name not in TOO_BIG_ON_PURPOSE:
            too_long.append(f"{name}: {lines} lines")
    assert not too_long, f"modules over {MAX_LINES} lines (split them):\n" + "\n".join(too_long)
