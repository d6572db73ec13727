"""The package's import graph: no loops, and no module imports from a layer above its own.

Why: the stages are meant to build on each other (data → models → … → report, with the study and
the command line on top). An upward import is how a seam grows copies and loops (the gather ⇄
pipeline loop, training importing the command line); this test names the first one that appears.
The graph is read from the source (every ``import`` statement, also those inside functions, which
the package uses to defer torch), without importing anything; ``if TYPE_CHECKING:`` imports never
run and are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "rmtension"

# Low to high. A module may import from its own layer and the layers below. The longest matching
# prefix decides a module's layer, so a pure leaf module can sit below its package.
LAYERS: list[tuple[str, ...]] = [
    # base: no stage of the study; anything may use these
    ("rmtension", "rmtension.errors", "rmtension.lazy", "rmtension.registry", "rmtension.names", "rmtension.hub",
     "rmtension.files", "rmtension.validate"),
    # pure statistics and tables (base imports only): intervals, mean ± std, length controls and the
    # helpful/harmless group table, used by evaluation's results, the model card and the analyses alike
    ("rmtension.evaluation.aggregate", "rmtension.analysis.length", "rmtension.bench.groups"),
    ("rmtension.data",),
    ("rmtension.models",),
    ("rmtension.bench",),
    ("rmtension.evaluation",),
    ("rmtension.training",),
    ("rmtension.neurons",),
    ("rmtension.ablation",),
    ("rmtension.analysis",),
    ("rmtension.report",),
    ("rmtension.study",),
    ("rmtension.api",),  # the Python API: one function per stage, over everything below
    ("rmtension.cli",),
    ("rmtension.__main__",),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(path: Path, module: str, modules: set[str]) -> set[str]:
    """The package modules ``module`` imports (resolved to modules; a ``from P import name`` counts as
    P.name where that is a module, else P)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in child.names:
                    found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    out = set()
    for name in found:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        # importing one's own ancestor package happens anyway (Python imports parents first)
        if name and name != module and not module.startswith(name + "."):
            out.add(name)
    return out


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {m: _imports(p, m, set(files)) for m, p in files.items()}


def _layer(module: str) -> int:
    best, rank = -1, None
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    assert rank is not None, f"{module} is in no layer: add it to LAYERS"
    return rank


def test_every_module_has_a_layer():
    for module in _graph():
        _layer(module)


def test_no_upward_imports():
    upward = sorted(f"{m} → {n}" for m, deps in _graph().items() for n in deps if _layer(n) > _layer(m))
    assert upward == [], upward


def test_no_import_loops():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    loops: list[list[str]] = []

    def strongconnect(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    assert loops == [], loops


def test_the_walk_sees_the_imports_it_must():
    """The reader itself: a lazy import inside a function and a relative import are both edges."""
    graph = _graph()
    assert "rmtension.evaluation.scorer" in graph["rmtension.training.trainer"]  # imported inside a function
    assert "rmtension.study.pipeline" not in graph["rmtension.study.gather"]  # only under TYPE_CHECKING
    assert "rmtension.names" in graph["rmtension.cli.cmd_neurons"]
