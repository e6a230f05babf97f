"""The structure as a contract: no module over MAX_LINES lines; every import runs to the same floor or a lower one
(FLOORS), so there is no import cycle among nlptransfer's modules (module-level and function-level imports alike); the
prediction side imports nothing of training, reports or publishing; and only the CLI configures logging."""
from __future__ import annotations

import ast
import logging
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nlptransfer"

#: the floors of the package, bottom first, following the data flow of DESIGN.md: a module may import modules of its
#: own floor and of the floors below it, never of one above. A module is on the floor of the longest name that covers
#: it: "data" covers nlptransfer.data and everything under it; "" is the root package (it re-exports the API lazily).
#: Where import needs differ from the data flow's order, the needs decide: the recipe composes the sections that data,
#: task kinds, strategies and objectives own, so it sits above them; the loop writes into the run folder and scores
#: with the scorer, so both sit below it; the pipeline builds the drift profile with the prediction side, which loads
#: runs from a hub, so hub < inference < pipeline.
FLOORS = (
    ("foundations", ("errors", "logs", "fsio", "markdown", "version", "cache", "plugins", "metrics", "multilabel_metrics", "registry")),
    ("run folder", ("run",)),
    ("data", ("data",)),
    ("task kinds", ("tasks",)),
    ("architectures", ("architectures",)),
    ("model", ("model",)),
    ("loading", ("models",)),
    ("registries", ("strategies", "objectives", "adaptation")),
    ("recipe", ("recipe", "sections")),
    ("batching", ("batching", "tokens")),
    ("scoring", ("scoring",)),
    ("train", ("train",)),
    ("hub", ("hub",)),
    ("inference", ("inference",)),
    ("pipeline", ("pipeline", "adapt", "fewshot", "run_context")),
    ("publish", ("publish",)),
    ("serve", ("serve",)),
    ("report", ("report",)),
    ("api", ("api", "")),
    ("cli", ("cli", "__main__")),
)
#: arrows that still run upward, each with the reason it is there (delete an entry once its arrow is gone)
UPWARD: dict[tuple[str, str], str] = {}
#: the most lines a module may have
MAX_LINES = 400
#: modules still over MAX_LINES, each with the reason (delete an entry once its module is split)
LONG: dict[str, str] = {}


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


def floor_of(module: str) -> int:
    """The index in FLOORS of the floor a module is on; AssertionError when no floor covers it."""
    name = module.removeprefix("nlptransfer").removeprefix(".")
    covering = [(len(prefix), i) for i, (_, prefixes) in enumerate(FLOORS) for prefix in prefixes
                if name == prefix or (prefix and name.startswith(prefix + "."))]
    assert covering, f"{module} is on no floor: add it (or its package) to FLOORS in {Path(__file__).name}"
    return max(covering)[1]


def upward_arrows(graph: dict[str, set[str]]) -> dict[tuple[str, str], str]:
    """Every import that runs to a higher floor: (importer, imported) -> "floor -> floor"."""
    found = {}
    for module, targets in graph.items():
        for target in targets:
            if floor_of(target) > floor_of(module):
                found[(module, target)] = f"{FLOORS[floor_of(module)][0]} -> {FLOORS[floor_of(target)][0]}"
    return found


def test_the_floor_of_a_module_is_that_of_the_longest_name_covering_it():
    names = [name for name, _ in FLOORS]
    assert names[floor_of("nlptransfer.data.read")] == "data"
    assert names[floor_of("nlptransfer.model.transfer")] == "model"
    assert names[floor_of("nlptransfer.models")] == "loading"  # "model" does not cover "models"
    assert names[floor_of("nlptransfer")] == "api"
    assert names[floor_of("nlptransfer.train.some_new_module")] == "train"
    with pytest.raises(AssertionError, match="nlptransfer.unheard_of is on no floor"):
        floor_of("nlptransfer.unheard_of")
    assert upward_arrows({"nlptransfer.data": {"nlptransfer.errors"}, "nlptransfer.errors": {"nlptransfer.data"}}) == {
        ("nlptransfer.errors", "nlptransfer.data"): "foundations -> data"}


def test_every_import_runs_to_the_same_floor_or_a_lower_one():
    found = upward_arrows(import_graph())
    assert {arrow: found[arrow] for arrow in set(found) - set(UPWARD)} == {}
    assert set(UPWARD) - set(found) == set(), "these arrows are gone: delete their entries from UPWARD"


def test_no_module_is_over_max_lines():
    lines = {str(p.relative_to(PACKAGE.parent)): len(p.read_text(encoding="utf-8").splitlines())
             for p in sorted(PACKAGE.rglob("*.py"))}
    assert {name: n for name, n in lines.items() if n > MAX_LINES and name not in LONG} == {}
    assert {name for name in LONG if lines.get(name, 0) <= MAX_LINES} == set(), \
        "these modules are short enough now (or gone): delete their entries from LONG"
