"""The layout by role (docs/layout.md): each place imports only the places below it, so no two
packages import each other and no import runs back up, function-local imports included."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# From the top down; a file may import its own place and the places below it.
LAYERS = (
    ("tools", ("train_eval_part.py", "train_eval_part_t.py", "train_eval_part_m.py", "bench/", "experiments/")),
    ("main", ("utils/main.py",)),
    ("training", ("utils/training/",)),
    ("evaluation", ("utils/evaluation/",)),
    ("command line", ("utils/cli/",)),
    ("method", ("utils/method/",)),
    ("data", ("utils/data.py",)),
    ("flag types", ("utils/argtypes.py",)),
    ("cam", ("cam/",)),
    ("infrastructure", ("utils/infra/",)),
    ("attacks", ("attacks/",)),
    ("models", ("models/",)),
    ("names", ("utils/names.py", "utils/__init__.py")),
)


def place(path: str) -> int:
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(path == p or (p.endswith("/") and path.startswith(p)) for p in prefixes):
            return i
    raise AssertionError(f"{path} is in no place of LAYERS: add it to the layout (and docs/layout.md)")


def module_file(module: str) -> str | None:
    """The project file a dotted module name resolves to, or None (not ours)."""
    parts = module.split(".")
    for candidate in (Path(*parts).with_suffix(".py"), Path(*parts, "__init__.py")):
        if (ROOT / candidate).exists():
            return candidate.as_posix()
    return None


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, function-local ones included; `from pkg import name`
    counts as pkg.name where that is a module of ours."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.append((node.lineno, sub if module_file(sub) else node.module))
    return out


def source_files() -> list[str]:
    files = [p for p in ROOT.rglob("*.py") if not {"tests", ".git", "results", "data"} & set(p.relative_to(ROOT).parts)]
    return sorted(p.relative_to(ROOT).as_posix() for p in files if not p.name.startswith("."))


def test_provenance_knows_the_checkout():
    """The runner and bench.jobs start the scripts from provenance's REPO: it must be the checkout's root."""
    from utils.infra.provenance import REPO
    assert REPO == ROOT and (REPO / "train_eval_part.py").is_file()


def test_every_source_file_has_a_place():
    assert [f for f in source_files() if f.startswith(("utils/", "cam/", "attacks/", "models/"))]
    for f in source_files():
        place(f)


@pytest.mark.parametrize("path", source_files())
def test_imports_run_down_the_layers(path):
    mine = place(path)
    for line, module in imports(ROOT / path):
        target = module_file(module)
        if target is None:
            continue
        theirs = place(target)
        assert theirs >= mine, (f"{path}:{line} imports {module} ({LAYERS[theirs][0]}), which stands above "
                                f"{LAYERS[mine][0]}")
