"""The README says only what is true of the code: its examples run, and everything it names exists.

* Every ```python block runs as written (each in a fresh namespace, in a temporary working folder), except those
  listed in QUOTED, which quote the library's source and are checked to be in it, line by line. The block that
  loads the xLSTM authors' models gets those models built with their package (a `peers` extra, which `make`
  installs), under the names it uses.
* Every `path::name` it cites names a file that defines `name` at its top level ("Where the math is" among them).
* Every `lstmkit/…`, `tests/…`, `docs/…` and `benchmarks/…` path exists (a `{a,b}` alternation or a `*` glob
  must match), and every dotted `lstmkit.x.y` imports, as a module or an attribute; docs/benchmarks.md too.
* Every file and folder of the layout tree in "What is here" exists where the tree puts it.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"^```python\n(.*?)^```", README, flags=re.S | re.M)
QUOTED = {"z = p.W_ih @ x": ROOT / "lstmkit" / "reference" / "lstm.py"}
"""First words of a block -> the source file it quotes (the block is checked against it instead of run)."""
NOT_MODULES = {"lstmkit.walkthrough": "the walkthrough JSON's schema name (`lstmkit.walkthrough/1`), not a module"}
"""Dotted names the README writes that are not Python names, and why."""

CITED = re.compile(r"((?:lstmkit|tests)/[\w/.-]+\.py)::(\w+)")
PATH = re.compile(r"(?<![\w./~-])((?:lstmkit|tests|docs|benchmarks)/[\w./{},*-]*)")
DOTTED = re.compile(r"(?<![\w./-])lstmkit(?:\.[A-Za-z_]\w*)+")


def their_models() -> dict:
    """The names the compat example uses: a model of the xLSTM authors' package, its state dict and config."""
    try:
        import xlstm
    except ImportError as error:  # never a silent skip: the README promises this example works
        raise AssertionError(f"the README's compat example needs the xLSTM authors' package: {error}") from error
    from lstmkit.nn import xLSTMConfig, xLSTMLM

    block = xlstm.mLSTMBlockConfig(
        mlstm=xlstm.mLSTMLayerConfig(conv1d_kernel_size=4, qkv_proj_blocksize=4, num_heads=4)
    )
    config = xlstm.xLSTMLMModelConfig(
        vocab_size=41, mlstm_block=block, context_length=32, num_blocks=2, embedding_dim=32, slstm_at=[]
    )
    their_model = xlstm.xLSTMLMModel(config)
    their_model.reset_parameters()
    our_lm = xLSTMLM(xLSTMConfig(vocab_size=40, embedding_dim=32, blocks="mm"))
    return {
        "their_model": their_model,
        "their_state_dict": their_model.state_dict(),
        "their_config": config,
        "our_xlstm_lm": our_lm,
    }


def section(title: str) -> str:
    """The README's text under `## title`, up to the next heading of that level."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, flags=re.S | re.M)
    assert match, f"the README has no section '## {title}'"
    return match.group(1)


def top_level_names(path: Path) -> set[str]:
    """The functions and classes a Python file defines at its top level."""
    tree = ast.parse(path.read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.ClassDef)}


def undefined(citations: list[tuple[str, str]]) -> list[str]:
    """The `path::name` citations whose file is missing or defines no top-level `name`."""
    wrong = []
    for path, name in citations:
        file = ROOT / path
        if not file.is_file():
            wrong.append(f"{path}::{name} (no such file)")
        elif name not in top_level_names(file):
            wrong.append(f"{path}::{name} (no top-level def or class {name} in {path})")
    return wrong


def expand_braces(pattern: str) -> list[str]:
    """`a/{b,c}.py` -> [`a/b.py`, `a/c.py`] (nested alternations too), as the shell expands them."""
    match = re.search(r"\{([^{}]*)\}", pattern)
    if not match:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [name for option in match.group(1).split(",") for name in expand_braces(head + option + tail)]


def missing_paths(text: str) -> list[str]:
    """The repository paths `text` names (alternations expanded, globs matched) that do not exist."""
    missing = []
    for written in sorted(set(PATH.findall(text))):
        written = written.rstrip(".,;:")
        for path in expand_braces(written):
            exists = any(ROOT.glob(path)) if "*" in path else (ROOT / path).exists()
            if not exists:
                missing.append(written if path == written else f"{path} (from {written})")
    return missing


def resolves(dotted: str) -> bool:
    """Whether `lstmkit.x.y` imports: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(value, attribute):
                return False
            value = getattr(value, attribute)
        return True
    return False


def layout_paths(tree: str) -> list[str]:
    """The files and folders a layout tree names, each joined to the folders above it (by indentation).

    A line that starts with `name/` opens that folder for the deeper lines below it and for the rest of its own line;
    any other `name.py`, `name.cpp`, `name.md` or `name/` on a line (comments included) lies in the open folder."""
    open_folders: list[tuple[int, str]] = []
    paths = []
    for line in tree.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        while open_folders and open_folders[-1][0] >= indent:
            open_folders.pop()
        folder = open_folders[-1][1] if open_folders else ""
        rest = line.strip()
        first = rest.split()[0]
        if first.endswith("/"):
            folder += first
            open_folders.append((indent, folder))
            paths.append(folder)
            rest = rest[len(first) :]
        paths += [folder + name for name in re.findall(r"(?<![\w./-])([\w-]+(?:/[\w-]+)*(?:\.(?:py|cpp|md)|/))", rest)]
    return paths


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 5


def test_every_python_block_is_found():
    """No block escapes the runner: an indented fence or a ```py fence would not be matched by BLOCKS."""
    fences = re.findall(r"^[ \t]*```[ \t]*(?:python|py|python3)\b", README, flags=re.M)
    assert len(fences) == len(BLOCKS), f"{len(fences)} Python fences in the README, {len(BLOCKS)} run by this test"
    quoted = [block for block in BLOCKS if any(block.startswith(start) for start in QUOTED)]
    assert len(quoted) == len(QUOTED), "every entry of QUOTED must match one README block"


@pytest.mark.parametrize("block", BLOCKS, ids=[b.splitlines()[0][:40] for b in BLOCKS])
def test_readme_example_runs(block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for start, source in QUOTED.items():
        if block.startswith(start):
            text = source.read_text()
            missing = [line for line in block.splitlines() if line.strip() and line.strip() not in text]
            assert not missing, f"the README quotes lines that {source.name} no longer has: {missing}"
            return
    namespace = their_models() if "from lstmkit.nn.compat import" in block else {}
    torch.manual_seed(0)
    exec(compile(block, "README.md", "exec"), namespace)  # the README's own code, as a user runs it


def test_where_the_math_is_names_functions_that_exist():
    block = section("Where the math is")
    citations = CITED.findall(block)
    cited = {f"{path}::{name}" for path, name in citations}
    for needed in ("reference/lstm.py::step", "reference/gru.py::step", "reference/rnn.py::step", "train.py::"):
        assert any(needed in c for c in cited), f"'Where the math is' names no {needed}"
    for form in ("recurrent", "parallel", "chunkwise"):
        assert any(f"nn/mlstm/{form}.py::" in c for c in cited), f"'Where the math is' names no mLSTM {form} form"
    assert any("slstm/cell.py::" in c for c in cited), "'Where the math is' names no sLSTM step"
    assert not undefined(citations), undefined(citations)


def test_every_cited_function_exists():
    assert not undefined(CITED.findall(README)), undefined(CITED.findall(README))


def test_the_citation_check_catches_a_wrong_name():
    assert undefined([("lstmkit/train.py", "train")]) == []
    assert undefined([("lstmkit/train.py", "no_such_loop")]) != []
    assert undefined([("lstmkit/no_such_file.py", "train")]) != []


def test_every_path_the_readme_names_exists():
    assert not missing_paths(README), f"the README names paths that do not exist: {missing_paths(README)}"


def test_every_path_and_name_docs_benchmarks_gives_exists():
    """The benchmark page beside the README: its paths, citations and dotted names, checked the same way."""
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    assert not missing_paths(text), f"docs/benchmarks.md names paths that do not exist: {missing_paths(text)}"
    assert not undefined(CITED.findall(text)), undefined(CITED.findall(text))
    unresolved = [name for name in sorted(set(DOTTED.findall(text))) if not resolves(name)]
    assert not unresolved, f"docs/benchmarks.md names modules or attributes that do not import: {unresolved}"


def test_the_path_check_catches_a_wrong_path():
    assert missing_paths("`lstmkit/reference/{lstm,gru}.py` and `tests/nn/*/test_*.py`") == []
    assert missing_paths("`lstmkit/nn/steps.py`") == ["lstmkit/nn/steps.py"]
    assert missing_paths("`lstmkit/reference/{lstm,nope}.py`") == [
        "lstmkit/reference/nope.py (from lstmkit/reference/{lstm,nope}.py)"
    ]
    assert missing_paths("`tests/nn/*/test_nope_*.py`") == ["tests/nn/*/test_nope_*.py"]


def test_every_dotted_name_the_readme_names_imports():
    names = sorted(set(DOTTED.findall(README)) - set(NOT_MODULES))
    assert len(names) >= 5
    unresolved = [name for name in names if not resolves(name)]
    assert not unresolved, f"the README names modules or attributes that do not import: {unresolved}"


def test_the_dotted_check_catches_a_wrong_name():
    assert resolves("lstmkit.nn.rnn.dropin.FromTwin")
    assert not resolves("lstmkit.nn.dropin")
    assert not resolves("lstmkit.nn.no_such_name")


def test_the_layout_tree_names_files_that_exist():
    tree = re.search(r"^The layout \(folders and the key files\):\n\n```\n(.*?)^```", README, flags=re.S | re.M)
    assert tree, "the README's 'What is here' has no layout tree"
    paths = layout_paths(tree.group(1))
    assert "lstmkit/nn/mlstm/chunkwise.py" in paths and "lstmkit/cli/" in paths, paths
    missing = [path for path in paths if not (ROOT / path).exists()]
    assert not missing, f"the README's layout tree names what does not exist: {missing}"


def test_the_layout_check_catches_a_wrong_file():
    assert layout_paths("lstmkit/\n  nn/  masks.py\n    rnn/\n      cells.py   one step\n  train.py") == [
        "lstmkit/",
        "lstmkit/nn/",
        "lstmkit/nn/masks.py",
        "lstmkit/nn/rnn/",
        "lstmkit/nn/rnn/cells.py",
        "lstmkit/train.py",
    ]
