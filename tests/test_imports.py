"""The import graph of both packages: no cycle, and the runtime never imports its tooling.

Read statically (``ast`` over the source files, relative imports resolved), so an import counts
wherever it is written: at module level, inside a function (a lazy import) and under
``if TYPE_CHECKING:`` alike. ``from package import name`` counts as an import of the submodule
``package.name`` when there is one, else of ``package``. A submodule's implicit import of its
parent package (``__init__``) is not counted: every module would make a cycle with it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("django_channels_router", "drf_bridge")
#: The contract tooling and what serves it: it may import the runtime, never the reverse.
TOOLING = ("django_channels_router.contract", "django_channels_router.management", "django_channels_router.urls")
#: Known edges of a cycle, each with why it is still here; empty this list as they go.
KNOWN_CYCLE_EDGES: set[tuple[str, str]] = set()


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that module ``name`` imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            base = ".".join(part for part in (base, node.module) if part)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # import a.b.c: the innermost of ours it names
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def is_tooling(name: str) -> bool:
    return any(name == t or name.startswith(t + ".") for t in TOOLING)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(_a_cycle(sorted(group)[0], group, edges))
    return groups


def _a_cycle(start: str, group: set[str], edges: dict[str, set[str]]) -> list[str]:
    """A path from ``start`` back to itself inside ``group`` (breadth first: a shortest one)."""
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child in sorted(edges[node] & group):
            if child == start:
                return paths[node] + [start]
            if child not in paths:
                paths[child] = paths[node] + [child]
                queue.append(child)
    raise AssertionError(f"no cycle through {start}")


def test_an_import_under_type_checking_counts(tmp_path):
    module = tmp_path / "pipeline.py"
    module.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .consumers import RouterMixin\n")
    known = {"django_channels_router.pipeline", "django_channels_router.consumers"}
    assert imports("django_channels_router.pipeline", module, known) == {"django_channels_router.consumers"}


def test_the_graph_is_read_from_both_packages_lazy_and_type_checking_imports_included():
    edges = graph()
    assert "django_channels_router.contract.asyncapi" in edges and "drf_bridge.generics" in edges
    assert "django_channels_router" in edges["drf_bridge.generics"]  # from django_channels_router import ...
    assert "drf_bridge.schema" in edges["drf_bridge.generics"]  # inside a method
    assert "django_channels_router.contract.asyncapi" in edges["django_channels_router.contract.views"]  # from .x


def test_the_import_graph_of_both_packages_has_no_cycle():
    edges = {name: {t for t in targets if (name, t) not in KNOWN_CYCLE_EDGES} for name, targets in graph().items()}
    assert cycles(edges) == []


def test_the_known_cycle_edges_still_exist():
    """An edge that went away leaves the allow-list: it must not excuse a new import later."""
    edges = graph()
    assert [edge for edge in sorted(KNOWN_CYCLE_EDGES) if edge[1] not in edges.get(edge[0], set())] == []


def test_no_runtime_module_imports_the_contract_tooling():
    edges = graph()
    wrong = sorted((name, target) for name, targets in edges.items() if not is_tooling(name)
                   for target in targets if is_tooling(target))
    assert wrong == []


def test_the_core_imports_nothing_of_the_bridge():
    """The bridge is built on the core; the core works without it."""
    wrong = sorted((name, target) for name, targets in graph().items() if name.startswith("django_channels_router")
                   for target in targets if target.split(".")[0] == "drf_bridge")
    assert wrong == []
