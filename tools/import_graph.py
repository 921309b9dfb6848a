"""Import graph of the pgdat package from its source (AST only, nothing is imported).

Usage: ``python tools/import_graph.py [src/pgdat]`` prints the import circles (strongly connected components),
the imports of ``pgdat.cli`` from outside ``cli/`` and the arrows that run up the floors
cli -> experiments -> training -> methods/eval/analysis -> attacks/models/data -> core; exit status 1 when any.

Every ``import``/``from ... import`` counts, at module level or inside a function (a lazy import still couples the
modules), except those under ``if TYPE_CHECKING:`` (never executed). ``from pgdat.a import b`` is an arrow to
``pgdat.a.b`` when that is a module, else to ``pgdat.a``; importing ``pgdat.a.b`` also runs ``pgdat/a/__init__.py``,
an arrow to the package ``pgdat.a`` unless the importer lives inside that package.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

# Floor of each top-level part of pgdat (higher may import lower, never the reverse). The package root
# (pgdat/__init__.py) and pgdat/__main__.py are entry points above every floor.
FLOORS: dict[str, int] = {
    "cli": 6,
    "experiments": 5,
    "training": 4, "report": 4,
    "methods": 3, "eval": 3, "analysis": 3,
    "attacks": 2, "models": 2, "data": 2,
    "checkpoint": 2,  # rebuilds models from checkpoints
    "config": 1, "threat": 1, "errors": 1, "registry": 1, "precision": 1, "memory": 1, "runinfo": 1, "fileio": 1,
    "seeding": 1, "integrity": 1, "rundir": 1, "killhook": 1,
}
ENTRY_POINTS = {"pgdat", "pgdat.__main__"}


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name -> file for every ``.py`` under ``root`` (the ``pgdat`` package folder)."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imported(tree: ast.AST, module: str, is_pkg: bool) -> list[str]:
    """Dotted names imported by a module's AST (``from X import a`` yields ``X.a`` and ``X``), skipping
    ``if TYPE_CHECKING:`` blocks."""
    found: list[str] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".") if is_pkg else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - node.level + 1]
                base = ".".join(pkg + ([base] if base else []))
            found += [f"{base}.{a.name}" for a in node.names] + [base]
        stack.extend(ast.iter_child_nodes(node))
    return found


def build_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the pgdat modules it imports (see the module docstring for what counts as an arrow)."""
    names = module_names(root)
    graph: dict[str, set[str]] = {m: set() for m in names}
    for mod, path in names.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_pkg = path.name == "__init__.py"
        for target in _imported(tree, mod, is_pkg):
            if target in names:
                graph[mod].add(target)
        # ``from X import a`` adds both X.a and X; keep X.a when it is a module and X only when a is a name in X.
        for target in list(graph[mod]):
            children = [t for t in graph[mod] if t.startswith(target + ".")]
            if children and not _names_attribute(tree, target):
                graph[mod].discard(target)
        for target in list(graph[mod]):
            parent = target.rsplit(".", 1)[0]
            while parent != "pgdat" and "." in parent:
                if not mod.startswith(parent + ".") and mod != parent:
                    graph[mod].add(parent)
                parent = parent.rsplit(".", 1)[0]
        graph[mod].discard(mod)
    return graph


def _names_attribute(tree: ast.AST, base: str) -> bool:
    """Whether some ``import base`` or ``from base import x`` (x not a submodule) appears: an arrow to ``base``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name == base for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module == base and not node.level:
            return True
    return False


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted, largest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out, key=lambda c: (-len(c), c))


def floor(module: str) -> int | None:
    """The floor of a module (None for the entry points above every floor)."""
    if module in ENTRY_POINTS:
        return None
    return FLOORS[module.split(".")[1]]


def cli_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) pairs where a module outside ``pgdat.cli`` imports ``pgdat.cli`` or a module in it."""
    return sorted((m, t) for m, ts in graph.items() for t in ts
                  if (t == "pgdat.cli" or t.startswith("pgdat.cli.")) and not m.startswith("pgdat.cli")
                  and m not in ENTRY_POINTS)


def upward_arrows(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) pairs where the imported module sits on a higher floor than the importer."""
    out = []
    for m, ts in graph.items():
        fm = floor(m)
        for t in ts:
            ft = floor(t)
            if fm is not None and ft is not None and ft > fm:
                out.append((m, t))
    return sorted(out)


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / "src" / "pgdat"
    graph = build_graph(root)
    n_arrows = sum(len(v) for v in graph.values())
    found = circles(graph)
    cli = cli_imports(graph)
    up = upward_arrows(graph)
    print(f"{len(graph)} modules, {n_arrows} import arrows")
    print(f"import circles: {len(found)}")
    for comp in found:
        print("  " + " <-> ".join(comp))
    print(f"imports of pgdat.cli outside cli/: {len(cli)}")
    for a, b in cli:
        print(f"  {a} -> {b}")
    print(f"arrows up the floors: {len(up)}")
    for a, b in up:
        print(f"  {a} (floor {floor(a)}) -> {b} (floor {floor(b)})")
    return 1 if found or cli or up else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
