"""The package's floors: ``genbench.core`` imports nothing above it, and modules import each
other without cycles. Every import statement counts, those inside functions too (a lazy import
is still a dependency). The known exceptions are listed, and must stay exactly these: a new one
fails, and so does a fixed one still on the list."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

KNOWN_UPWARD: set[tuple[str, str]] = set()
KNOWN_CYCLES: list[set[str]] = []


def _modules() -> dict[str, Path]:
    found = {}
    for path in (ROOT / "genbench").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The module that ``name`` (a module, or a name inside one) lives in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(name: str, path: Path) -> set[str]:
    """The genbench modules that module ``name`` imports, anywhere in its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {_resolve(alias.name) for alias in node.names if alias.name.startswith("genbench")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                kept = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(kept + ([base] if base else []))
            if base.startswith("genbench"):
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    found.add(full if full in MODULES else _resolve(base))
    return found - {None, name, "genbench"}  # the root package holds the version only


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_core_imports_nothing_above_it():
    upward = {
        (name, target)
        for name, targets in GRAPH.items()
        if name.startswith("genbench.core")
        for target in targets
        if not target.startswith("genbench.core")
    }
    assert upward == KNOWN_UPWARD, f"new: {sorted(upward - KNOWN_UPWARD)}, fixed: {sorted(KNOWN_UPWARD - upward)}"


def test_no_import_cycles():
    cycles = _cycles(GRAPH)
    assert sorted(map(sorted, cycles)) == sorted(map(sorted, KNOWN_CYCLES)), cycles


def test_the_checks_see_a_planted_cycle_and_relative_imports():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert "genbench.core.paths" in GRAPH["genbench.core.housekeeping"]
    assert GRAPH["genbench.plan.build"] >= {"genbench.core.paths", "genbench.plan.graph"}
