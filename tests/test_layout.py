"""The layout's rules, read from the source with ast: no import circle between the project's modules (an
import at module level or inside a function counts alike), the library imports no app code, and every
module of the library and the benchmarks says what it is and stays under 500 lines unless it says why."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("anodfdnet", "benchmarks", "demo", "annotate")
NOT_FOR_THE_LIBRARY = {"app", "demo", "annotate", "benchmarks", "gradio", "gradio_client"}
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the project (a package is its __init__.py)."""
    found = {"app": ROOT / "app.py"}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def imported(name: str, path: Path) -> set[str]:
    """The dotted names of everything ``name`` imports, wherever the statement stands (TYPE_CHECKING too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module
            submodules = {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES}
            out |= submodules
            # The package itself counts unless it is one the importer lives in and only submodules are taken
            # (``from . import x``): that package is being imported already, and nothing is read from it.
            if not (name.startswith(base + ".") and len(submodules) == len(node.names)):
                out.add(base)
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the project's modules it imports (a submodule's implicit import of its own packages aside)."""
    return {name: {m for m in imported(name, path) if m in MODULES and m != name} for name, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
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


def test_the_walk_sees_relative_and_function_level_imports():
    edges = import_graph()
    assert "anodfdnet.models.config" in edges["anodfdnet.models.baselines"]  # from .config import ... (module level)
    assert "anodfdnet.data.source" in edges["anodfdnet.data.synth.pairs"]  # from ..source import Pair
    assert "anodfdnet.models" in edges["anodfdnet.cli"]  # from .models import describe, inside cmd_models
    assert {"anodfdnet.data", "anodfdnet.data.synth"} <= edges["demo.examples"]  # from anodfdnet.data import synth
    assert "anodfdnet.models" not in edges["anodfdnet.models.registry"]  # from . import baselines: a submodule only
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circle():
    found = cycles(import_graph())
    assert not found, "modules that import each other, directly or round a circle: " + "; ".join(" <-> ".join(c) for c in found)


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m.split(".")[0] == "anodfdnet"))
def test_the_library_imports_no_app_code(name):
    bad = sorted(m for m in imported(name, MODULES[name]) if m.split(".")[0] in NOT_FOR_THE_LIBRARY)
    assert not bad, f"{name} imports {bad}: the library knows nothing of the app, the benchmarks or Gradio"


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m.split(".")[0] in ("anodfdnet", "benchmarks")))
def test_every_module_says_what_it_is_and_stays_small(name):
    text = MODULES[name].read_text()
    doc = ast.get_docstring(ast.parse(text))
    assert doc, f"{name} has no docstring saying what it is"
    lines = len(text.splitlines())
    assert lines <= MAX_LINES or f"over {MAX_LINES} lines" in doc, f"{name} has {lines} lines and its docstring does not say why"
