"""The shape of the robot_rl package: largest modules, long functions, import cycles, repeats.

    python bench/code_shape.py [--top 5] [--max-function-lines 80] [--no-duplicates]

Prints the largest modules (lines), every function longer than the limit, the import cycles
among robot_rl modules (module-level and function-level imports, read from the AST; imports
under ``if TYPE_CHECKING:`` are left out because they never run) and, when the ``duplicates``
tool is on PATH, the repeated-code pairs it finds in ``robot_rl/``. The import-graph helpers are
also used by ``tests/test_code_layering.py``.
"""
from __future__ import annotations

import argparse
import ast
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "robot_rl"


def module_files(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


@dataclass(frozen=True)
class ImportRef:
    importer: str
    imported: str  # dotted name as written (resolved when relative)
    line: int
    function_level: bool


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, in_function: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield from _walk_one(other, in_function)
            continue
        yield from _walk_one(child, in_function)


def _walk_one(node: ast.AST, in_function: bool) -> Iterator[tuple[ast.AST, bool]]:
    yield node, in_function
    inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
    yield from _walk(node, inner)


def imports_of(module: str, path: Path) -> list[ImportRef]:
    """Every import statement of a module (module level and inside functions), with relative
    imports resolved against the module's package; ``from a import b`` yields ``a.b`` (the caller
    decides whether that is a module or a name in ``a``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    refs = []
    for node, in_function in _walk(tree):
        if isinstance(node, ast.Import):
            refs += [ImportRef(module, alias.name, node.lineno, in_function) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            refs.append(ImportRef(module, base, node.lineno, in_function))
            refs += [ImportRef(module, f"{base}.{alias.name}", node.lineno, in_function)
                     for alias in node.names if alias.name != "*"]
    return refs


def import_graph(modules: dict[str, Path] | None = None) -> dict[str, set[str]]:
    """module -> the package modules it imports (only names that are modules of the package)."""
    modules = module_files() if modules is None else modules
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for ref in imports_of(name, path):
            if ref.imported in modules and ref.imported != name:
                graph[name].add(ref.imported)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The import cycles: strongly connected components with more than one module (Tarjan,
    iterative so deep packages do not hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[frozenset[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
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
                    out.append(frozenset(component))
    return sorted(out, key=lambda c: (-len(c), sorted(c)))


def a_cycle(graph: dict[str, set[str]], component: Iterable[str]) -> list[str]:
    """One concrete loop through a component, for the message: ``a -> b -> a``."""
    members = set(component)
    start = min(members)
    path, seen = [start], {start}
    while True:
        nxt = sorted(n for n in graph[path[-1]] if n in members)
        back = [n for n in nxt if n in path]
        if start in nxt:
            return path + [start]
        fresh = [n for n in nxt if n not in seen]
        if not fresh:
            return path + [back[0]] if back else path
        path.append(fresh[0])
        seen.add(fresh[0])


def largest_modules(modules: dict[str, Path], top: int) -> list[tuple[int, str]]:
    sizes = [(len(p.read_text(encoding="utf-8").splitlines()), str(p.relative_to(ROOT))) for p in modules.values()]
    return sorted(sizes, reverse=True)[:top]


def long_functions(modules: dict[str, Path], limit: int) -> list[tuple[int, str]]:
    out = []
    for path in modules.values():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    out.append((length, f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"))
    return sorted(out, reverse=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--top", type=int, default=5, help="how many of the largest modules to list")
    ap.add_argument("--max-function-lines", type=int, default=80)
    ap.add_argument("--no-duplicates", action="store_true", help="skip the `duplicates` pass")
    args = ap.parse_args(argv)
    modules = module_files()
    total = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in modules.values())
    print(f"{len(modules)} modules, {total} lines in {PACKAGE}/")
    print(f"\nlargest {args.top} modules (lines):")
    for n, name in largest_modules(modules, args.top):
        print(f"  {n:6d}  {name}")
    long = long_functions(modules, args.max_function_lines)
    print(f"\nfunctions over {args.max_function_lines} lines: {len(long)}")
    for n, name in long:
        print(f"  {n:6d}  {name}")
    graph = import_graph(modules)
    cycles = strongly_connected(graph)
    print(f"\nimport cycles (module- and function-level imports): {len(cycles)}")
    for component in cycles:
        print(f"  {len(component)} modules: {' -> '.join(a_cycle(graph, component))}")
        if len(component) > 2:
            print(f"    all: {', '.join(sorted(component))}")
    if args.no_duplicates:
        return 0
    tool = shutil.which("duplicates")
    if tool is None:
        print("\nrepeated-code pairs: `duplicates` is not on PATH; skipped")
        return 0
    result = subprocess.run([tool, "--repo", str(ROOT / PACKAGE), "--most", "40", "--seconds", "120"],
                            capture_output=True, text=True, check=False)
    print("\nrepeated-code pairs (duplicates --repo robot_rl --most 40):")
    print("  " + result.stdout.strip().replace("\n", "\n  "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
