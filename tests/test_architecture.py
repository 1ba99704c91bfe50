"""The shape of the package, read from its source with `ast`: which module may import which.

* the command line (medconv.cli) is imported only by the entry point (and the completion script
  generator, which renders the click group);
* no two modules import each other, directly or round a loop, when they are imported (top-level
  imports; an import inside a function runs later and breaks no start-up);
* a private name (`_x`) is not used from another module, except the exceptions listed below.
"""
from __future__ import annotations

import ast
import os

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "medconv")

#: modules that may import medconv.cli (the console script and the completion script generator)
CLI_IMPORTERS = {"medconv.entry", "medconv.completions"}

#: (importing module, imported module, name): private names still used across modules, left for the
#: format backends, the DICOM package and anonymisation to retire
PRIVATE_EXCEPTIONS: set = set()


def _modules() -> dict:
    """{dotted name: path} of every module under medconv/."""
    out = {}
    base = os.path.dirname(ROOT)
    for root, _, files in os.walk(ROOT):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(root, name)
            parts = os.path.relpath(path, base)[:-3].split(os.sep)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _package(module: str) -> str:
    return module if MODULES[module].endswith("__init__.py") else module.rpartition(".")[0]


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = _package(module)
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    return f"{base}.{node.module}" if node.module else base


def _imports(module: str, tree, top_level_only: bool):
    """(imported module, names taken from it or None, node) of each medconv import; `from P import m`
    of a submodule m counts as an import of P.m."""
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    if top_level_only:  # module level, including the bodies of if/try at module level
        nodes = list(_top_level(tree.body))
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "medconv":
                    yield alias.name, None, node
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            if target.split(".")[0] != "medconv":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield (sub, None, node) if sub in MODULES else (target, alias.name, node)


def _top_level(body):
    for node in body:
        yield node
        if isinstance(node, (ast.If, ast.Try)):
            for part in (node.body, node.orelse, getattr(node, "finalbody", []),
                         *(h.body for h in getattr(node, "handlers", []))):
                yield from _top_level(part)


def _trees() -> dict:
    out = {}
    for module, path in MODULES.items():
        with open(path, encoding="utf-8") as fh:
            out[module] = ast.parse(fh.read(), path)
    return out


TREES = _trees()


def cli_imports() -> list:
    """(importer, imported) of every import of medconv.cli from outside the command line."""
    return sorted({(m, target) for m, tree in TREES.items() for target, _, _ in _imports(m, tree, False)
                   if (target == "medconv.cli" or target.startswith("medconv.cli."))
                   and not (m == "medconv.cli" or m.startswith("medconv.cli.")) and m not in CLI_IMPORTERS})


def import_cycles(top_level_only: bool = True) -> list:
    """The strongly connected groups (of two or more modules) of the import graph."""
    graph = {m: set() for m in MODULES}
    for m, tree in TREES.items():
        for target, _, _ in _imports(m, tree, top_level_only):
            if target in MODULES and target != m:
                graph[m].add(target)
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v):  # Tarjan's algorithm
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
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(groups)


def private_imports() -> set:
    """(importer, module, name) of each private name of one medconv module used by another:
    `from m import _x`, or `m._x` on a name bound to the module m by an import; and (importer,
    package, module) of each private module (`_m`) imported from outside its package."""
    found = set()
    for m, tree in TREES.items():
        aliases = {}
        for target, name, node in _imports(m, tree, False):
            package, _, leaf = target.rpartition(".")
            if leaf.startswith("_") and not leaf.startswith("__") and _package(m) != package:
                found.add((m, package, leaf))  # a private module, or a name taken from one
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                if name is None and target in MODULES and target.endswith(alias.name) and target != m:
                    aliases[bound] = target
            if name is not None and name.startswith("_") and not name.startswith("__") and target != m:
                found.add((m, target, name))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                found.add((m, aliases[node.value.id], node.attr))
    return found


def long_functions(limit: int = 80) -> list:
    """(module, function, lines) of every function longer than `limit` lines."""
    out = []
    for m, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    out.append((m, node.name, lines))
    return sorted(out)


def test_only_the_entry_point_imports_the_command_line():
    assert cli_imports() == []


def test_no_import_cycle_at_import_time():
    assert import_cycles(top_level_only=True) == []


def test_entry_point_and_command_line_do_not_import_each_other():
    assert not [group for group in import_cycles(top_level_only=False) if "medconv.entry" in group]


def test_no_private_name_used_across_modules_beyond_the_known_exceptions():
    found = private_imports()
    assert found <= PRIVATE_EXCEPTIONS, sorted(found - PRIVATE_EXCEPTIONS)
    assert not PRIVATE_EXCEPTIONS - found, f"exceptions no longer needed: {sorted(PRIVATE_EXCEPTIONS - found)}"


#: the modules that end the process: the CLI's one handler, the entry point's version answer, the
#: stop-signal watchdog
EXITERS = {"medconv.cli", "medconv.entry", "medconv.signals"}


def process_exits() -> list:
    """(module, line, call) of each sys.exit/os._exit/ctx.exit outside EXITERS, and of each one anywhere
    whose status is a bare number."""
    out = []
    for m, tree in TREES.items():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("exit", "_exit") and isinstance(node.func.value, ast.Name)
                    and node.func.value.id in ("sys", "os", "ctx")):
                continue
            bare = any(isinstance(a, ast.Constant) and isinstance(a.value, int) for a in node.args)
            if m not in EXITERS or bare:
                out.append((m, node.lineno, ast.unparse(node)))
    return out


def test_exit_statuses_are_set_in_one_place():
    assert process_exits() == []


def test_layout_doc_names_every_module_and_only_existing_ones():
    """docs/layout.md lists each module under medconv/ (a new module gets its line there)."""
    import re

    with open(os.path.join(os.path.dirname(ROOT), "docs", "layout.md"), encoding="utf-8") as fh:
        listed = set(re.findall(r"^(medconv/\S+\.py)\s", fh.read(), re.MULTILINE))
    present = {os.path.relpath(os.path.join(d, f), os.path.dirname(ROOT)).replace(os.sep, "/")
               for d, _, files in os.walk(ROOT) for f in files if f.endswith(".py")}
    assert present - listed == set(), "modules missing from docs/layout.md"
    assert listed - present == set(), "docs/layout.md names modules that do not exist"
