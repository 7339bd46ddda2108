"""The layering contract of DESIGN.md: shared layers, then methods, then faces; no import cycles.

The import graph is read from the source with :mod:`ast` (module-level and function-level imports, relative
and absolute; ``if TYPE_CHECKING:`` blocks are skipped, since they never run), so a lazy import inside a
function counts like any other: it runs the moment the function does. Imports by computed name
(``importlib.import_module(f"...")``, the lazy ``__getattr__`` of the packages) are not seen.
"""

import ast
import functools
from pathlib import Path

import matsight

ROOT = Path(matsight.__file__).parent

SHARED = {"io", "data", "metrics", "nn", "report", "progress", "_atomic", "_errors", "_duration"}
METHODS = {"fuse", "restore", "tem", "segment"}
FACES = {"cli", "gui", "demos", "napari"}

# Import edges of file cycles that another change is breaking right now (issue #40): each is left out of the
# file-cycle check only. Remove an entry as soon as its cycle is gone.
PENDING = {("matsight.gui.jobs", "matsight.gui.worker")}


def module_files(root):
    """``{dotted module name: (file, is_package)}`` for every module of the package in folder ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_package)
    return out


def _is_type_checking(test):
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree):
    """Import nodes of a module, anywhere in it, except under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _existing(name, modules):
    """The module ``name`` names, or its nearest existing parent (``pkg.mod.func`` -> ``pkg.mod``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(root):
    """``{module: {imported module of the same package: line of the import}}``."""
    modules = module_files(root)
    top = root.name
    graph = {}
    for name, (path, is_package) in modules.items():
        edges = graph.setdefault(name, {})
        package = name if is_package else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    stem = ".".join(base + ([node.module] if node.module else []))
                else:
                    stem = node.module
                # ``from pkg import mod`` imports ``pkg.mod``; ``from mod import func`` only ``mod``
                targets = [f"{stem}.{alias.name}" for alias in node.names]
            for target in targets:
                if target != top and not target.startswith(top + "."):
                    continue
                found = _existing(target, modules)
                if found and found != name:
                    edges.setdefault(found, node.lineno)
    return graph


@functools.cache
def _graph():
    return import_graph(ROOT)


def layer(module):
    """The top-level part of the package a module belongs to (``matsight.tem.fft`` -> ``tem``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _where(module, line, root=ROOT):
    path, _ = module_files(root)[module]
    return f"{path.relative_to(root.parent)}:{line}"


def _edges_text(edges):
    return "\n".join(f"  {a} -> {b}  ({_where(a, line)})" for a, b, line in edges)


def _cycles(graph):
    """Strongly connected components of more than one node (Tarjan's algorithm, iterative), sorted lists."""
    index, low, on_stack, stack, comps = {}, {}, set(), [], []
    for root in graph:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(graph[root]))]
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph.get(child, ()))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = set()
                    while True:
                        item = stack.pop()
                        on_stack.discard(item)
                        comp.add(item)
                        if item == node:
                            break
                    if len(comp) > 1:
                        comps.append(comp)
    return [sorted(comp) for comp in comps]


def _cycle_path(graph, comp):
    """A shortest cycle through the first node of a strongly connected component: its node list."""
    start = min(comp)
    parent, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(graph.get(node, ())):
                if child == start:
                    path = [node]
                    while parent[path[-1]] is not None:
                        path.append(parent[path[-1]])
                    return path[::-1] + [start]
                if child in comp and child not in parent:
                    parent[child] = node
                    nxt.append(child)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")  # a strongly connected component always has one


def _cycle_text(graph, comp, because):
    """One cycle of a component, each arrow with ``because(a, b)`` (the import behind it), then the rest."""
    cycle = _cycle_path(graph, comp)
    steps = [f"{a} ({because(a, b)})" for a, b in zip(cycle, cycle[1:], strict=False)]
    rest = sorted(set(comp) - set(cycle))
    return "  " + " -> ".join(steps + [cycle[-1]]) + (f"  (also in it: {', '.join(rest)})" if rest else "")


def _forbidden(graph, sources, targets):
    return sorted(
        (a, b, line)
        for a, edges in graph.items()
        for b, line in edges.items()
        if layer(a) in sources and layer(b) in targets and layer(a) != layer(b)
    )


def _package_graph(graph):
    packages = {}
    for a, edges in graph.items():
        packages.setdefault(layer(a), {})
        for b, line in edges.items():
            if layer(b) != layer(a):
                packages[layer(a)].setdefault(layer(b), (a, b, line))
    return packages


def test_the_checker_sees_lazy_relative_imports_and_cycles(tmp_path):
    pkg = tmp_path / "toy"
    for rel, text in {
        "__init__.py": "",
        "a/__init__.py": "",
        "a/one.py": "def f():\n    from .two import g\n",
        "a/two.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import three\n"
        "import toy.a.one\n",
        "a/three.py": "from .. import b\n",
        "b.py": "from toy.a import one\nimport numpy\n",
    }.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    graph = import_graph(pkg)
    assert graph == {
        "toy": {},
        "toy.a": {},
        "toy.a.one": {"toy.a.two": 2},
        "toy.a.two": {"toy.a.one": 4},
        "toy.a.three": {"toy.b": 1},
        "toy.b": {"toy.a.one": 1},
    }
    cycles = _cycles(graph)
    assert cycles == [["toy.a.one", "toy.a.two"]]
    text = _cycle_text(graph, cycles[0], lambda a, b: _where(a, graph[a][b], pkg))
    assert text == "  toy.a.one (toy/a/one.py:2) -> toy.a.two (toy/a/two.py:4) -> toy.a.one"
    assert _cycles(_package_graph(graph)) == [["a", "b"]]


def test_the_graph_covers_the_package():
    graph = _graph()
    assert {layer(m) for m in graph} >= SHARED | METHODS | FACES
    assert "matsight.report" in graph["matsight.tem.report"]  # ``from ..report import Report`` in a function


def test_shared_layers_import_no_method_and_no_face():
    bad = _forbidden(_graph(), SHARED, METHODS | FACES)
    assert not bad, "a shared layer imports a method or a face:\n" + _edges_text(bad)


def test_methods_import_no_other_method_and_no_face():
    bad = _forbidden(_graph(), METHODS, METHODS | FACES)
    assert not bad, "a method imports another method or a face:\n" + _edges_text(bad)


def test_no_cycle_between_packages():
    packages = _package_graph(_graph())

    def because(a, b):
        module, target, line = packages[a][b]
        return f"{_where(module, line)} imports {target}"

    text = [_cycle_text(packages, comp, because) for comp in _cycles(packages)]
    assert not text, "package cycles:\n" + "\n".join(text)


def test_no_cycle_between_files():
    graph = {a: {b: n for b, n in edges.items() if (a, b) not in PENDING} for a, edges in _graph().items()}
    text = [_cycle_text(graph, comp, lambda a, b: _where(a, graph[a][b])) for comp in _cycles(graph)]
    assert not text, "file cycles:\n" + "\n".join(text)
