"""The package's import graph: acyclic, one direction between packages, the command lines on top.

Every module of `uada` is parsed with `ast` (nothing is imported); an edge `a -> b` is any import
of `uada` module `b` anywhere in `a`, at module level or inside a function. `from uada.x import y`
is an edge to `uada.x.y` when that is a module, else to `uada.x`.

Packages import in one direction (STYLE.md, rule 16): each package has a rank (`RANKS`), and every
edge goes to a lower rank or stays inside its package.
"""

import ast
import graphlib
import json
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = REPO / "uada"

# The command lines (`python -m uada.X`): define flags, parse them, call the library.
COMMANDS = frozenset(
    f"uada.{name}"
    for name in (
        "train", "evaluate", "predict", "export", "retrieval", "predict_grid", "selection",
        "reproduce", "demo", "diagnostics", "pretrain", "inspect_dataset", "__main__",
    )
)  # fmt: skip
# What only the command lines use: their one-line error reporting and their console (which
# changes process-wide logging and environment, as library code never does).
COMMAND_SIDE = COMMANDS | {"uada.command_errors", "uada.console"}

# Package -> rank: an import goes down (to a lower rank) or sideways within its package. The
# closed name sets and the config at the bottom, with the one module that reaches private parts
# of Keras and TensorFlow (`framework_internals`); then layers, data -> models -> methods (the
# other adaptation methods, built on the models) -> runs -> analysis;
# the command lines and what only they use (their flags, error reporting, console) on top.
RANKS = {
    "uada.version": 0,
    "uada.names": 0,
    "uada.config": 1,
    "uada.config_flags": 2,
    "uada.framework_internals": 2,
    "uada.layers": 3,
    "uada.data": 3,
    "uada.models": 4,
    "uada.metrics": 4,
    "uada.methods": 5,
    "uada.runs": 6,
    "uada.analysis": 7,
    "uada.flags": 8,
    "uada.command_errors": 8,
    "uada.console": 8,
    **dict.fromkeys(COMMANDS, 9),
    "uada": 10,  # the package's __init__: imports only `uada.version`
}


def _module_name(path):
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name):
    """The module `name` names: itself, or its longest prefix that is a module."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name if name in MODULES else None


def imported_modules(source, module=""):
    """The `uada` modules that `source` imports anywhere (module-level or local imports).

    Args:
        source: Python source code.
        module: the importing module's name (for relative imports).
    """
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the importing module's package
                is_package = MODULES.get(module, pathlib.Path()).name == "__init__.py"
                package = module.split(".")
                package = package[: len(package) - node.level + (1 if is_package else 0)]
                base = ".".join(package + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
            # `from uada.x import y`: the module uada.x.y if there is one, else uada.x.
            names = [n for n in names[:-1] if n in MODULES] or [base]
        else:
            continue
        found.update(m for m in map(_resolve, names) if m and m.split(".")[0] == "uada")
    return found


GRAPH = {name: imported_modules(path.read_text(), name) - {name} for name, path in MODULES.items()}


def test_the_graph_sees_local_and_from_imports():
    source = "from uada import config\ndef f():\n    from uada.runs import workdir, trainer\n"
    assert imported_modules(source) == {"uada.config", "uada.runs.workdir", "uada.runs.trainer"}
    assert imported_modules("from uada.models import build_uada_model") == {"uada.models"}
    assert imported_modules("import numpy\nimport uada.data.labels") == {"uada.data.labels"}


def cycles(graph):
    """Import cycles `[a, b, ..., a]` of `graph` (`{module: imported modules}`): the one
    `graphlib` reports, then those left once its modules are removed, until none is left."""
    graph = {node: set(edges) for node, edges in graph.items()}
    found = []
    while True:
        try:
            list(graphlib.TopologicalSorter(graph).static_order())
            return found
        except graphlib.CycleError as error:
            cycle = error.args[1][::-1]  # graphlib lists it against the edges' direction
            found.append(cycle)
            for node in cycle[:-1]:  # the rest of the graph may hold other cycles
                graph.pop(node, None)
            for edges in graph.values():
                edges.difference_update(cycle)


def test_the_package_has_no_import_cycle():
    found = cycles(GRAPH)
    assert not found, "Import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in found)


def test_cycles_are_found_and_printed():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": {"d"}, "f": {"a"}}
    found = cycles(graph)
    assert sorted(sorted(cycle[:-1]) for cycle in found) == [["a", "b", "c"], ["d", "e"]]
    for cycle in found:
        assert cycle[0] == cycle[-1]
        assert all(b in graph[a] for a, b in zip(cycle, cycle[1:], strict=False))


def package_of(module):
    """The package a module belongs to: `uada.<sub-package>` or the top-level module itself."""
    parts = module.split(".")
    return ".".join(parts[:2])


def wrong_direction(graph, ranks):
    """The edges of `graph` (`{module: imported modules}`) between two packages that do not go to
    a lower rank of `ranks` (`{package: rank}`), as `["a -> b", ...]`."""
    return sorted(
        f"{a} -> {b}"
        for a, imported in graph.items()
        for b in imported
        if package_of(a) != package_of(b) and not ranks[package_of(b)] < ranks[package_of(a)]
    )


def test_every_package_has_a_rank():
    assert {package_of(name) for name in MODULES} <= set(RANKS)


def test_packages_import_in_one_direction():
    wrong = wrong_direction(GRAPH, RANKS)
    assert not wrong, "Imports against the direction of RANKS:\n" + "\n".join(wrong)


def test_a_wrong_direction_is_found():
    graph = {"uada.runs.a": {"uada.analysis.b", "uada.runs.c"}, "uada.analysis.b": {"uada.runs.a"}}
    graph["uada.data.d"] = {"uada.layers.e"}  # same rank, two packages: neither goes down
    assert wrong_direction(graph, RANKS) == [
        "uada.data.d -> uada.layers.e",
        "uada.runs.a -> uada.analysis.b",
    ]


def test_no_library_module_imports_a_command():
    wrong = {
        name: sorted(GRAPH[name] & COMMAND_SIDE) for name in MODULES if name not in COMMAND_SIDE
    }
    assert not {name: commands for name, commands in wrong.items() if commands}


def test_every_command_module_exists():
    assert COMMANDS - {"uada.__main__"} <= set(MODULES)


def _notebook_sources():
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        code = ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]
        # IPython magics and shell escapes are not Python.
        lines = [
            line
            for cell in code
            for line in cell.splitlines()
            if not line.lstrip().startswith(("%", "!"))
        ]
        yield path, "\n".join(lines)


def test_notebooks_and_benchmarks_use_the_library_only():
    sources = list(_notebook_sources())
    sources += [(path, path.read_text()) for path in sorted((REPO / "benchmarks").glob("*.py"))]
    assert len(sources) > 1
    wrong = {
        str(path.relative_to(REPO)): sorted(imported_modules(source) & COMMAND_SIDE)
        for path, source in sources
    }
    assert not {path: commands for path, commands in wrong.items() if commands}
