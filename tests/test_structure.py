"""The structure as a contract: no import cycle among nlptransfer's modules (module-level and function-level imports
alike), the prediction side imports nothing of training, reports or publishing, and only the CLI configures
logging."""
from __future__ import annotations

import ast
import logging
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nlptransfer"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Every import statement, at any depth, except those under `if TYPE_CHECKING:` (they never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (n for child in node.orelse for n in _imports_of(child))
            continue
        yield from _imports_of(node)


def _imports_of(node: ast.AST):
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    else:
        yield from _imports(node)


def import_graph() -> dict[str, set[str]]:
    """module -> the nlptransfer modules it imports (a `from package import name` counts the submodule `name`
    when there is one, else the package). Importing a submodule imports its packages too, so they count, except the
    root package (it only re-exports, lazily) and the module's own packages (being imported already)."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        edges = set()
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[:len(base) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in files else module for a in node.names]
            edges |= {t for t in targets if t in files and t != name}
        for target in list(edges):
            parts = target.split(".")
            edges |= {p for p in (".".join(parts[:i]) for i in range(2, len(parts)))
                      if p in files and not name.startswith(p + ".")}
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for w in graph[todo.pop()]:
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def test_the_graph_reader_sees_relative_function_level_and_type_checking_imports():
    graph = import_graph()
    assert "nlptransfer.objectives" in graph["nlptransfer.recipe"]  # a function-level import
    assert "nlptransfer.strategies.registry" in graph["nlptransfer.strategies.frozen"]  # `from .registry import`
    assert "nlptransfer.model" in graph["nlptransfer.strategies.parameters"]  # `from ..model import`
    assert "nlptransfer.recipe" not in graph["nlptransfer.strategies.registry"]  # only under TYPE_CHECKING
    assert "nlptransfer.data" in graph["nlptransfer.recipe"]  # `from .data.schema import`: the package runs first
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_among_nlptransfer_modules():
    assert _cycles(import_graph()) == []


@pytest.mark.parametrize("side", ["nlptransfer.inference", "nlptransfer.serve"])
@pytest.mark.parametrize("forbidden", ["nlptransfer.train", "nlptransfer.report", "nlptransfer.publish",
                                       "nlptransfer.pipeline", "nlptransfer.api"])
def test_the_inference_side_and_the_server_import_nothing_of_training_reports_or_publishing(side, forbidden):
    graph = import_graph()
    reached = set()
    for module in graph:
        if module == side or module.startswith(side + "."):
            reached |= _reachable(graph, module)
    assert not {m for m in reached if m == forbidden or m.startswith(forbidden + ".")}


def test_report_never_imports_the_api():
    graph = import_graph()
    for module in graph:
        if module.startswith("nlptransfer.report"):
            assert "nlptransfer.api" not in _reachable(graph, module), module


def test_importing_the_prediction_side_in_a_fresh_process_loads_no_training_module():
    code = ("import sys, nlptransfer.inference; "
            "print(sorted(m for m in sys.modules if m.startswith(('nlptransfer.train', 'nlptransfer.report', "
            "'nlptransfer.publish', 'nlptransfer.pipeline'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_library_adds_no_log_handler_and_leaves_transformers_verbosity_alone(tiny_models, reviews_csv, tmp_path):
    import nlptransfer
    from transformers.utils import logging as hf_logging

    from .conftest import quick_overrides

    before = hf_logging.get_verbosity()
    handlers = list(logging.getLogger("nlptransfer").handlers)
    nlptransfer.finetune("sentiment-minilm", data=str(reviews_csv),
                         overrides=quick_overrides(tiny_models["bert"], tmp_path, **{"training.epochs": 1}))
    assert hf_logging.get_verbosity() == before
    assert logging.getLogger("nlptransfer").handlers == handlers


def test_every_package_folder_is_installed():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {_module_name(p) for p in PACKAGE.rglob("__init__.py")}
    assert found - {"nlptransfer.recipes"} <= listed, "add the new package to [tool.setuptools] packages"
