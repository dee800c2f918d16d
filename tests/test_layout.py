"""The layout by role (docs/layout.md): imports run one way between places, so no two places import
each other, directly or round a longer loop, function-local imports included. The graph is built from
the code itself: every source file is grouped into its place, every import of ours is an edge between
two places, and the graph must have no cycle (the order docs/layout.md gives is one order it allows)."""
from __future__ import annotations

import ast
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent


def place(path: str) -> str:
    """The place of a source file: a top-level package (part/, cam/, attacks/, models/, bench/,
    experiments/) or script (train_eval_part.py, ...); inside utils/, each subpackage (utils/training/,
    ...) and each top-level module (utils/main.py, utils/argtypes.py, ...)."""
    parts = path.split("/")
    if parts[0] == "utils":
        return f"utils/{parts[1]}/" if len(parts) > 2 else path
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
    # Not the tests, results, git or the default dataset root data/ (utils/data/ is source).
    files = [p for p in ROOT.rglob("*.py") if not ({"tests", ".git", "results"} & set(p.relative_to(ROOT).parts)
                                                   or p.relative_to(ROOT).parts[0] == "data")]
    return sorted(p.relative_to(ROOT).as_posix() for p in files if not p.name.startswith("."))


def import_graph(files: list[str], planted: dict[str, str] | None = None) -> dict[str, dict[str, list[str]]]:
    """{place: {place it imports: ["file:line imports module", ...]}}, imports within a place left out;
    `planted`: {file: source} read instead of the checkout's."""
    graph: dict[str, dict[str, list[str]]] = {place(f): {} for f in files}
    for f in files:
        for line, module in imports(f, (planted or {}).get(f)):
            target = module_file(module)
            if target is not None and place(target) != place(f):
                witnesses = graph[place(f)].setdefault(place(target), [])
                if f"{f}:{line} imports {module}" not in witnesses:
                    witnesses.append(f"{f}:{line} imports {module}")
    return graph


def find_cycle(graph: dict[str, dict[str, list[str]]]) -> list[str] | None:
    """A cycle of places [a, b, ..., a], or None (depth-first search, white / grey / black)."""
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
    return "the places import each other round a loop, " + " -> ".join(cycle) + ":\n" + "\n".join(steps)


def test_provenance_knows_the_checkout():
    """The runner and bench.jobs start the scripts from provenance's REPO: it must be the checkout's root."""
    from utils.infra.provenance import REPO
    assert REPO == ROOT and (REPO / "train_eval_part.py").is_file()


def test_docs_layout_names_every_place():
    """docs/layout.md describes every place the source files fall into (derived from the code)."""
    text = (ROOT / "docs" / "layout.md").read_text()
    places = {place(f) for f in source_files() if f != "utils/__init__.py"}      # the package marker alone
    missing = sorted(p for p in places if f"`{p}" not in text)
    assert not missing, f"docs/layout.md does not name {missing}"
    assert place("utils/training/trainer.py") == "utils/training/" and place("cam/rules.py") == "cam/"


def _planted(path: str, body: str) -> tuple[dict[str, str], int]:
    """The file's source with a function-local import appended, and the line it stands on."""
    text = (ROOT / path).read_text().rstrip("\n") + "\n\n\ndef _planted():\n    " + body + "\n"
    return {path: text}, len(text.splitlines())


def test_the_import_graph_sees_every_import():
    """The graph has the edges the code has, and a planted back-import, function-local, closes a loop
    that the check reports with its places and the importing file and line."""
    graph = import_graph(source_files())
    assert "part/" in graph["utils/training/"] and "utils/main.py" in graph["train_eval_part.py"]
    assert "cam/" in graph["part/"] and "attacks/" in graph["part/"] and "utils/argtypes.py" in graph["cam/"]
    # cam/rules.py importing part.step (which imports cam.rules): cam/ <-> part/.
    planted, line = _planted("cam/rules.py", "from part.step import train_batch")
    bad = import_graph(source_files(), planted)
    cycle = find_cycle(bad)
    assert cycle is not None and cycle[0] == cycle[-1] and {"cam/", "part/"} <= set(cycle)
    assert f"cam/rules.py:{line} imports part.step" in cycle_message(bad, cycle)
    # A longer loop: utils/data/ importing utils.main (-> utils/training/ -> utils/data/).
    planted, line = _planted("utils/data/sources.py", "import utils.main")
    bad = import_graph(source_files(), planted)
    cycle = find_cycle(bad)
    assert cycle is not None and len(cycle) > 3
    assert f"utils/data/sources.py:{line} imports utils.main" in cycle_message(bad, cycle)
    # A relative import is an edge as well.
    planted, line = _planted("attacks/pgd.py", "from ..cam import rules")
    assert any(f"attacks/pgd.py:{line} imports cam.rules" in w
               for w in import_graph(source_files(), planted)["attacks/"].get("cam/", []))


def test_no_two_places_import_each_other():
    graph = import_graph(source_files())
    cycle = find_cycle(graph)
    assert cycle is None, cycle_message(graph, cycle)
