"""The layout in three rings (docs/layout.md): the method (part/, cam/, attacks/, models/ and the helpers
below it, common/), the runner (runner/) and, beside them, the studies and tools (report/, experiments/,
bench/, exchange/, studies/). Imports run only inward: the method imports the standard library, its libraries
and itself; the runner the method and itself; neither imports the studies. No two files import each
other, directly or round a longer loop. The graph is built from the code itself, function-local imports
included; a planted import is reported with its file and line."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parent.parent


RINGS = {"method": ("part/", "cam/", "attacks/", "models/", "common/"), "runner": ("runner/",),
         "studies": ("report/", "experiments/", "bench/", "exchange/", "studies/")}   # the three scripts: the top
# What the method may import besides the standard library and itself: the field's libraries, and
# matplotlib for the official mask rule's `jet` colour table (cam/rules.py; the official code reads it).
METHOD_LIBRARIES = {"torch", "torchvision", "numpy", "pytorch_grad_cam", "torchattacks", "pyautoattack", "matplotlib"}
# What each ring may import of ours.
ALLOWED = {"method": {"method"}, "runner": {"method", "runner"}}


def ring(path: str) -> str:
    """The ring of a source file ("top" for the scripts)."""
    return next((r for r, folders in RINGS.items() if path.startswith(folders)), "top")


def place(path: str) -> str:
    """The place of a source file that docs/layout.md describes: a top-level package (part/, cam/, ...)
    or script; inside runner/, each subpackage (runner/training/, ...) and each top-level module."""
    parts = path.split("/")
    if parts[0] == "runner":
        return f"runner/{parts[1]}/" if len(parts) > 2 else path
    return f"{parts[0]}/" if len(parts) > 1 else path


def module_file(module: str) -> str | None:
    """The project file a dotted module name resolves to, or None (not ours)."""
    parts = module.split(".")
    for candidate in (Path(*parts).with_suffix(".py"), Path(*parts, "__init__.py")):
        if (ROOT / candidate).exists():
            return candidate.as_posix()
    return None


def imports(path: str, text: str | None = None) -> list[tuple[int, str]]:
    """(line, module) of every import in the file (`text`: its source, read from the checkout by
    default), function-local ones included; `from pkg import name` counts as pkg.name where that is a
    module of ours; a relative import is resolved from the file's package."""
    out = []
    package = Path(path).parent.parts
    text = (ROOT / path).read_text() if text is None else text
    for node in ast.walk(ast.parse(text, path)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package[:len(package) - node.level + 1]
                base = ".".join([*up, *([base] if base else [])])
            for a in node.names:
                sub = f"{base}.{a.name}" if base else a.name
                out.append((node.lineno, sub if module_file(sub) else base))
    return out


def source_files() -> list[str]:
    # Not the tests, results, git or the default dataset root data/ (runner/data/ is source).
    files = [p for p in ROOT.rglob("*.py") if not ({"tests", ".git", "results"} & set(p.relative_to(ROOT).parts)
                                                   or p.relative_to(ROOT).parts[0] == "data")]
    return sorted(p.relative_to(ROOT).as_posix() for p in files if not p.name.startswith("."))


def import_graph(files: list[str], planted: dict[str, str] | None = None) -> dict[str, dict[str, list[str]]]:
    """{file: {file of ours it imports: ["file:line imports module", ...]}}; `planted`: {file: source}
    read instead of the checkout's."""
    graph: dict[str, dict[str, list[str]]] = {f: {} for f in files}
    for f in files:
        for line, module in imports(f, (planted or {}).get(f)):
            target = module_file(module)
            if target is not None and target != f:
                witnesses = graph[f].setdefault(target, [])
                if f"{f}:{line} imports {module}" not in witnesses:
                    witnesses.append(f"{f}:{line} imports {module}")
    return graph


def find_cycle(graph: dict[str, dict[str, list[str]]]) -> list[str] | None:
    """A cycle of files [a, b, ..., a], or None (depth-first search, white / grey / black)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def cycle_message(graph: dict[str, dict[str, list[str]]], cycle: list[str]) -> str:
    steps = [f"  {a} -> {b}: " + "; ".join(graph[a][b]) for a, b in zip(cycle, cycle[1:])]
    return "the files import each other round a loop, " + " -> ".join(cycle) + ":\n" + "\n".join(steps)


def inward_violations(files: list[str], planted: dict[str, str] | None = None) -> list[str]:
    """Every import that runs outward: a method file importing the runner, the studies or a library
    outside METHOD_LIBRARIES; a runner file importing the studies ("file:line imports module")."""
    bad = []
    for f in files:
        mine = ring(f)
        if mine not in ALLOWED:
            continue
        for line, module in imports(f, (planted or {}).get(f)):
            target = module_file(module)
            if target is not None:
                outward = ring(target) not in ALLOWED[mine]
            else:
                top = module.split(".")[0]
                outward = mine == "method" and top not in sys.stdlib_module_names and top not in METHOD_LIBRARIES
            if outward:
                bad.append(f"{f}:{line} imports {module}")
    return bad


def test_provenance_knows_the_checkout():
    """The runner and bench.jobs start the scripts from provenance's REPO: it must be the checkout's root."""
    from runner.infra.provenance import REPO
    assert REPO == ROOT and (REPO / "train_eval_part.py").is_file()


def test_docs_layout_names_every_place_and_ring():
    """docs/layout.md describes every place the source files fall into and every ring's folders."""
    text = (ROOT / "docs" / "layout.md").read_text()
    places = {place(f) for f in source_files() if f != "runner/__init__.py"}      # the package marker alone
    places |= {folder for folders in RINGS.values() for folder in folders}
    missing = sorted(p for p in places if f"`{p}" not in text)
    assert not missing, f"docs/layout.md does not name {missing}"


def _planted(path: str, body: str) -> tuple[dict[str, str], int]:
    """The file's source with a function-local import appended, and the line it stands on."""
    text = (ROOT / path).read_text().rstrip("\n") + "\n\n\ndef _planted():\n    " + body + "\n"
    return {path: text}, len(text.splitlines())


def test_the_import_graph_sees_every_import():
    """The graph has the edges the code has, and a planted back-import, function-local, closes a loop
    that the check reports with its files and the importing file and line."""
    graph = import_graph(source_files())
    assert "part/step.py" in graph["runner/training/trainer.py"] and "runner/main.py" in graph["train_eval_part.py"]
    assert "cam/rules.py" in graph["part/step.py"] and "common/argtypes.py" in graph["cam/rules.py"]
    # cam/rules.py importing part.step (which imports cam.rules): a loop of two files.
    planted, line = _planted("cam/rules.py", "from part.step import train_batch")
    bad = import_graph(source_files(), planted)
    cycle = find_cycle(bad)
    assert cycle is not None and cycle[0] == cycle[-1] and {"cam/rules.py", "part/step.py"} <= set(cycle)
    assert f"cam/rules.py:{line} imports part.step" in cycle_message(bad, cycle)
    # A longer loop: runner/data/split.py importing runner.data.sources (which imports split).
    planted, line = _planted("runner/data/split.py", "import runner.data.sources")
    bad = import_graph(source_files(), planted)
    cycle = find_cycle(bad)
    assert cycle is not None and f"runner/data/split.py:{line} imports runner.data.sources" in cycle_message(bad, cycle)
    # A relative import is an edge as well.
    planted, line = _planted("attacks/pgd.py", "from ..cam import rules")
    assert f"attacks/pgd.py:{line} imports cam.rules" in import_graph(source_files(), planted)["attacks/pgd.py"]["cam/rules.py"]


def test_no_two_files_import_each_other():
    graph = import_graph(source_files())
    cycle = find_cycle(graph)
    assert cycle is None, cycle_message(graph, cycle)


def test_imports_run_only_inward():
    bad = inward_violations(source_files())
    assert not bad, "imports that run outward (docs/layout.md, the rings):\n" + "\n".join(bad)


@pytest.mark.parametrize("path,body,module", [
    ("part/step.py", "from runner.training.trainer import Trainer", "runner.training.trainer"),   # method -> runner
    ("cam/maps.py", "import report.tables", "report.tables"),                                    # method -> studies
    ("runner/training/run.py", "from exchange import robustbench", "exchange.robustbench"),      # runner -> studies
    ("runner/evaluation/evaluate.py", "from studies import cam_info", "studies.cam_info"),        # runner -> studies
    ("attacks/pgd.py", "import scipy.stats", "scipy.stats"),                   # method -> a library not its own
])
def test_an_outward_import_is_named_with_its_file_and_line(path, body, module):
    planted, line = _planted(path, body)
    assert inward_violations(source_files(), planted) == [f"{path}:{line} imports {module}"]


# The size limits that keep the core readable: the flag table is one list by design.
SIZE_LIMITS = {"Trainer": 150, "train_epoch": 30}
LONGEST_FUNCTION, FLAG_TABLES = 70, {"declare_flags"}


def sizes(files: list[str]) -> list[tuple[str, str, int]]:
    """(file, name, lines) of every function and class of the source files."""
    return [(f, n.name, n.end_lineno - n.lineno + 1) for f in files for n in ast.walk(ast.parse((ROOT / f).read_text()))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def test_sizes():
    found = sizes(source_files())
    over = [f"{f}: {name} {n} lines (at most {SIZE_LIMITS[name]})" for f, name, n in found
            if name in SIZE_LIMITS and n > SIZE_LIMITS[name]]
    over += [f"{f}: {name} {n} lines (a function: at most {LONGEST_FUNCTION})" for f, name, n in found
             if name not in FLAG_TABLES and name not in SIZE_LIMITS and n > LONGEST_FUNCTION
             and not name[:1].isupper()]
    assert not over, "\n".join(over)
    assert {name for _, name, _ in found} >= set(SIZE_LIMITS)       # the limits still name real code


# The functions of one PART batch that build constant tables once (docs/method.md leaves them out of what a
# reader reads), and the two a reader opens besides to see the attack's settings.
TABLE_BUILDERS = {"_table", "pil_bicubic_matrix", "_pil_bicubic", "_jet_table"}
SETTINGS_READ = ("phase", "attack_start")


def test_one_part_batch_is_the_count_docs_method_gives():
    """A PART batch (AT, GradCAM, the official rule), traced call by call: the count docs/method.md states,
    in at most 5 of the method's files and at most 15 functions to read."""
    import part.step
    from bench.batch_walk import walk
    assert all(callable(getattr(part.step, name, None)) for name in SETTINGS_READ)     # still real code
    method = [k for k in walk("at", "gradcam", "official") if not k[0].startswith("models/")]
    files = {f for f, _ in method}
    text = " ".join((ROOT / "docs/method.md").read_text().split())
    assert f"the step runs {len(method)} of the method's functions in these {len(files)} files" in text
    assert TABLE_BUILDERS <= {name for _, name in method}
    read = len(method) - len(TABLE_BUILDERS) + len(SETTINGS_READ)
    assert f"{read} functions" in text and len(files) <= 5 and read <= 15
