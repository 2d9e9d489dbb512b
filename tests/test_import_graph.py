"""The repository's modules import each other without a circle, counting imports
inside functions too (a circle that works only because an import sits in a
function is still a circle)."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("big_vision_like", "input_pipeline", "evaluators", "configs", "benchmarks",
            "studies")


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(tree: ast.AST):
    """Import nodes of a module, those under `if TYPE_CHECKING:` left out (they
    never run)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports. `from package import module` is an
    edge to the module alone: a parent package runs first whatever imports it."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in _imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parts = name.split(".")
                    anchor = parts[: len(parts) - node.level + (1 if is_package else 0)]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_finder_sees_a_circle_through_a_function_level_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles_in_the_repository():
    graph = import_graph()
    assert "input_pipeline.stream.batches" in graph  # the walk found the data layer
    assert "input_pipeline.sources.core" in graph["input_pipeline.stream.batches"]
    found = cycles(graph)
    assert not found, f"import circles: {found}"


def test_generic_pp_ops_import_no_dataset():
    """Ops for one dataset are registered by that dataset; the pp language imports none."""
    graph = import_graph()
    pp = [m for m in graph if m.startswith("input_pipeline.pp")]
    assert len(pp) >= 8
    leaks = {m: sorted(t for t in graph[m] if t.startswith("input_pipeline.sources"))
             for m in pp}
    assert not any(leaks.values()), leaks


def test_the_library_imports_no_driver():
    """big_vision_like/, input_pipeline/ and evaluators/ never import configs,
    studies or benchmarks: those are built on the library, not part of it."""
    graph = import_graph()
    library = [m for m in graph if m.split(".")[0] in ("big_vision_like", "input_pipeline",
                                                       "evaluators")]
    drivers = ("configs", "studies", "benchmarks")
    bad = {m: sorted(t for t in graph[m] if t.split(".")[0] in drivers) for m in library}
    assert not any(bad.values()), {m: t for m, t in bad.items() if t}
