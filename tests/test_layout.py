"""The layout's contract, read from the source alone (AST, nothing imported): the house stands as DESIGN.md draws it.

* No import cycles among lstmkit's modules (module-level imports; `from lstmkit.x import y` is an edge to
  lstmkit.x, and to lstmkit.x.y when that is a module).
* Imports point down the layers of LAYERS; function-level imports count too. The reference imports only NumPy
  and the standard library.
* No source file over MAX_FILE_LINES lines, no function over MAX_FUNCTION_LINES, outside ALLOWED.
"""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lstmkit"

TRAINING = ("train", "checkpoint", "run_files", "files", "models", "experiment", "compare", "distributed", "resume")
TRAINING += ("curriculum", "evaluation")
LAYERS = {
    # layer: (its modules and packages, the layers it may import besides its own)
    "reference": (("lstmkit.reference",), ()),
    "nn": (("lstmkit.nn",), ()),  # DESIGN.md: nn uses the reference in its tests only, never at run time
    "tasks": (("lstmkit.tasks",), ("reference", "nn")),
    "training": (tuple(f"lstmkit.{name}" for name in TRAINING), ("reference", "nn", "tasks")),
    "explain": (("lstmkit.explain",), ("reference", "nn", "tasks", "training")),
    "bench": (("lstmkit.bench",), ("nn", "tasks", "training")),
    "yardsticks": (("lstmkit.yardsticks",), ("nn", "tasks", "training")),
    "cli": (("lstmkit.cli", "lstmkit.__main__"), ("reference", "nn", "tasks", "training", "explain", "bench")),
}
"""Bottom to top. `lstmkit` itself (its __init__: the version) belongs to no layer; it imports nothing."""
REFERENCE_MAY_IMPORT = ("numpy",)
"""Besides the standard library and the reference itself."""

MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60
ALLOWED = {
    "lstmkit/train.py::_train": "the one training loop, top to bottom in nanoGPT's order (STYLE §9); 61 lines, "
    "12 of them its signature",
}
"""Files ("path") and functions ("path::name") allowed over the limits, each with its reason."""


class Import(NamedTuple):
    module: str
    """The module importing."""
    target: str
    """The lstmkit module imported (or any module, for the reference's check)."""
    line: int
    top_level: bool
    """False inside a function or under `if TYPE_CHECKING:`: it does not run when the module is imported."""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def sources() -> dict[str, Path]:
    """Every module of lstmkit by dotted name."""
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


@cache
def tree(module: str) -> ast.Module:
    return ast.parse(sources()[module].read_text(), filename=str(sources()[module]))


def imports(module: str) -> list[Import]:
    """Every import in the module, with `from a import b` also naming a.b where that is a module."""
    found = []

    def visit(node: ast.AST, top_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            runs = top_level and not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                runs = False
            if isinstance(child, ast.Import):
                found.extend(Import(module, alias.name, child.lineno, runs) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = resolved(module, child)
                found.append(Import(module, base, child.lineno, runs))
                for alias in child.names:
                    if f"{base}.{alias.name}" in sources():
                        found.append(Import(module, f"{base}.{alias.name}", child.lineno, runs))
            visit(child, runs)

    visit(tree(module), True)
    return found


def resolved(module: str, node: ast.ImportFrom) -> str:
    """The absolute name of `from ... import`, relative imports included."""
    if not node.level:
        return node.module
    package = module.split(".") if sources()[module].name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def internal(edge: Import) -> bool:
    return edge.target == "lstmkit" or edge.target.startswith("lstmkit.")


def layer_of(module: str) -> str | None:
    for layer, (names, _) in LAYERS.items():
        if any(module == name or module.startswith(name + ".") for name in names):
            return layer
    return None


def test_every_module_has_a_layer():
    homeless = [module for module in sources() if module != "lstmkit" and layer_of(module) is None]
    assert not homeless, f"modules in no layer of LAYERS (add them where they belong): {', '.join(homeless)}"


def test_no_import_cycles():
    graph = {
        module: sorted(
            {edge.target for edge in imports(module) if edge.top_level and edge.target in sources().keys() - {module}}
        )
        for module in sources()  # a package's __init__ importing its own submodules is no cycle
    }
    cycles = find_cycles(graph)
    assert not cycles, "import cycles among module-level imports:\n" + "\n".join(" -> ".join(c) for c in cycles)


def find_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """One cycle through each group of modules that import each other (depth-first search, colouring nodes)."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(graph, WHITE)
    path: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        colour[node] = GREY
        path.append(node)
        for target in graph[node]:
            if colour[target] == GREY:
                cycles.append([*path[path.index(target) :], target])
            elif colour[target] == WHITE:
                visit(target)
        path.pop()
        colour[node] = BLACK

    for node in graph:
        if colour[node] == WHITE:
            visit(node)
    return cycles


def test_imports_point_down_the_layers():
    wrong = []
    for module in sources():
        for edge in filter(internal, imports(module)):
            mine, theirs = layer_of(module), layer_of(edge.target)
            if edge.target == "lstmkit" or theirs == mine:
                continue
            if module == "lstmkit" or theirs not in LAYERS[mine][1]:
                wrong.append(
                    f"{sources()[module].relative_to(ROOT)}:{edge.line} ({mine}) imports {edge.target} ({theirs})"
                )
    assert not wrong, "imports that point up or sideways (see LAYERS):\n" + "\n".join(wrong)


def test_the_reference_imports_only_numpy_and_the_standard_library():
    allowed = set(sys.stdlib_module_names) | set(REFERENCE_MAY_IMPORT)
    wrong = [
        f"{sources()[module].relative_to(ROOT)}:{edge.line} imports {edge.target}"
        for module in sources()
        if layer_of(module) == "reference"
        for edge in imports(module)
        if not internal(edge) and edge.target.split(".")[0] not in allowed
    ]
    assert not wrong, "the reference imports only NumPy (never torch):\n" + "\n".join(wrong)


def test_no_file_or_function_is_too_long():
    too_long = []
    for path in sources().values():
        relative = path.relative_to(ROOT).as_posix()
        lines = len(path.read_text().splitlines())
        if lines > MAX_FILE_LINES and relative not in ALLOWED:
            too_long.append(f"{relative}: {lines} lines (at most {MAX_FILE_LINES})")
        for node in ast.walk(tree(module_name(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES and f"{relative}::{node.name}" not in ALLOWED:
                    too_long.append(
                        f"{relative}:{node.lineno} {node.name}: {length} lines (at most {MAX_FUNCTION_LINES})"
                    )
    assert not too_long, "split these along a concept (or add them to ALLOWED with a reason):\n" + "\n".join(too_long)


def test_the_allowed_exceptions_are_still_needed():
    """An entry of ALLOWED whose file or function is gone or short enough again is removed, so the list stays short."""
    stale = []
    for entry in ALLOWED:
        relative, _, name = entry.partition("::")
        path = ROOT / relative
        if not path.exists():
            stale.append(f"{entry}: no such file")
            continue
        if not name:
            if len(path.read_text().splitlines()) <= MAX_FILE_LINES:
                stale.append(f"{entry}: now within {MAX_FILE_LINES} lines")
            continue
        lengths = [
            node.end_lineno - node.lineno + 1
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name
        ]
        if not any(length > MAX_FUNCTION_LINES for length in lengths):
            stale.append(f"{entry}: no function {name} over {MAX_FUNCTION_LINES} lines")
    assert not stale, "remove from ALLOWED:\n" + "\n".join(stale)
