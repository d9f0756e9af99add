"""The import graph keeps its shape (docs/architecture.md): dependencies point inward, no circles.

    spiker_app ─┬─> spiker_gateway ─┐
                └─> spiker_services ┴─> spiker_api ─> spiker

The graph is read from the sources with ``ast`` (every ``import``, also those inside functions;
those under ``if TYPE_CHECKING:`` count for the layers but not for circles, since they never run).
The checker itself is tested on a small synthetic tree, so a broken checker cannot pass silently.
"""

from __future__ import annotations

import argparse
import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("spiker", "spiker_api", "spiker_services", "spiker_gateway", "spiker_app")
#: generated gRPC stubs: not ours to shape
SKIP = ("spiker_api/v1/",)
#: the repository packages each package may import (besides itself); spiker_app, the composition
#: root, may import every one and is imported by none
ALLOWED = {
    "spiker": set(),
    "spiker_api": {"spiker"},
    "spiker_services": {"spiker", "spiker_api"},
    "spiker_gateway": {"spiker", "spiker_api"},
    "spiker_app": {"spiker", "spiker_api", "spiker_services", "spiker_gateway"},
}
#: the shared part of the services, which every service may import (and which imports none)
SERVICES_COMMON = "spiker_services.common"
#: a circle that predates this test, to be broken by its own change (docs/architecture.md,
#: "Known circles"); it is tolerated only while it stays within this set
KNOWN_CYCLES = (
    # SpikingNet.load / .to_nir call spiker.nir, which builds nets and quantized nets (issue 21)
    frozenset({"spiker.golden.model", "spiker.net.builder", "spiker.net.model", "spiker.nir"}),
)


@dataclass
class ImportGraph:
    """Modules and the modules each imports: ``edges`` all of them, ``runtime`` those that run."""

    modules: dict[str, Path] = field(default_factory=dict)
    edges: dict[str, set[str]] = field(default_factory=dict)
    runtime: dict[str, set[str]] = field(default_factory=dict)


def module_name(root: Path, path: Path) -> str:
    """``spiker/hdl/sim.py`` -> ``spiker.hdl.sim``; a package's ``__init__.py`` is the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """Ids of the nodes inside ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``) blocks."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
            if name == "TYPE_CHECKING":
                out.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return out


def _imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The dotted names an import statement names (a ``from`` import: ``base.name`` and ``base``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:  # relative: from the module's package, one level up per extra dot
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[:len(package) - (node.level - 1)]
        base = ".".join([*package, *([base] if base else [])])
    return [f"{base}.{alias.name}" for alias in node.names] + [base]


def build_graph(root: Path, packages: Iterable[str], skip: Iterable[str] = ()) -> ImportGraph:
    """The import graph of ``packages`` under ``root``: each import is an edge to the most specific
    module of the tree it names (``from spiker import data`` -> ``spiker.data``); imports of
    anything outside the tree are left out."""
    graph = ImportGraph()
    skip = tuple(skip)
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            if not path.relative_to(root).as_posix().startswith(skip):
                graph.modules[module_name(root, path)] = path
    for module, path in graph.modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        type_only = _type_checking_nodes(tree)
        edges, runtime = graph.edges.setdefault(module, set()), graph.runtime.setdefault(module, set())
        for node in ast.walk(tree):
            names = _imported(node, module, path.name == "__init__.py")
            if isinstance(node, ast.ImportFrom):  # ``base.name`` when it is a module, else ``base``
                *members, base = names
                names = [m if m in graph.modules else base for m in members]
            for name in names:
                parts = name.split(".")
                while parts and ".".join(parts) not in graph.modules:
                    parts.pop()
                target = ".".join(parts)
                if target and target != module:
                    edges.add(target)
                    if id(node) not in type_only:
                        runtime.add(target)
    return graph


def layer_violations(edges: Mapping[str, set[str]], allowed: Mapping[str, set[str]] = ALLOWED,
                     services_common: str = SERVICES_COMMON) -> list[str]:
    """Each import against the layers: an outward import, or one service importing another."""
    out = []
    services_pkg = services_common.rpartition(".")[0]
    for module, targets in sorted(edges.items()):
        top = module.split(".")[0]
        for target in sorted(targets):
            target_top = target.split(".")[0]
            if target_top != top and target_top not in allowed.get(top, set()):
                out.append(f"{module} imports {target}: {top} may import only {sorted(allowed.get(top, ()))}")
            if top == target_top == services_pkg:
                own, other = _service_of(module, services_pkg), _service_of(target, services_pkg)
                if other not in (None, own, services_common) and own is not None:
                    out.append(f"{module} imports {target}: a service imports only itself and {services_common}")
    return out


def _service_of(module: str, services_pkg: str) -> str | None:
    """``spiker_services.hdlgen.job`` -> ``spiker_services.hdlgen``; the package itself -> None."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 and parts[0] == services_pkg else None


def cycles(edges: Mapping[str, set[str]]) -> list[set[str]]:
    """The import circles: strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(root: str) -> None:  # iterative, so deep graphs need no recursion limit
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return found


def new_cycles(edges: Mapping[str, set[str]], known: Iterable[frozenset[str]] = KNOWN_CYCLES) -> list[list[str]]:
    """The circles that are not within one of the ``known`` ones."""
    known = list(known)
    return [sorted(c) for c in cycles(edges) if not any(c <= k for k in known)]


# -- the repository ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def repo_graph() -> ImportGraph:
    return build_graph(ROOT, PACKAGES, SKIP)


def test_every_package_is_read(repo_graph: ImportGraph) -> None:
    tops = {m.split(".")[0] for m in repo_graph.modules}
    assert tops == set(PACKAGES)
    assert "spiker_api.v1.common_pb2" not in repo_graph.modules  # generated stubs are skipped
    assert {"spiker.cli", "spiker_app.cli", "spiker_services.common.server"} <= set(repo_graph.modules)
    assert "spiker_gateway.cli" in repo_graph.edges["spiker_app.cli"]  # the graph has the composition root's edges


def test_dependencies_point_inward(repo_graph: ImportGraph) -> None:
    """The library imports nothing outward, gateway and services never each other, no service another."""
    assert layer_violations(repo_graph.edges) == []


def test_no_new_import_circles(repo_graph: ImportGraph) -> None:
    assert new_cycles(repo_graph.runtime) == []


# -- the checker, on a synthetic tree ------------------------------------------------------------

def _tree(root: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_checker_finds_outward_imports_and_cross_service_imports(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "spiker/__init__.py": "",
        "spiker/cli.py": "def f():\n    from spiker_gateway.cli import main\n",  # lazy imports count
        "spiker/ok.py": "from . import cli\nimport json\n",
        "spiker_api/__init__.py": "",
        "spiker_services/__init__.py": "",
        "spiker_services/common/__init__.py": "",
        "spiker_services/common/server.py": "from spiker_services.trainer import servicer\n",
        "spiker_services/trainer/__init__.py": "",
        "spiker_services/trainer/servicer.py": "from spiker_services.common import server\nfrom spiker import ok\n",
        "spiker_services/simulator/__init__.py": "",
        "spiker_services/simulator/job.py": "from ..trainer.servicer import X\n",  # relative, to another service
        "spiker_gateway/__init__.py": "",
        "spiker_gateway/cli.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                 "    from spiker_services.common.server import S\n",
        "spiker_app/__init__.py": "",
        "spiker_app/cli.py": "import spiker_gateway.cli, spiker_services.trainer.servicer\n",
    })
    graph = build_graph(root, PACKAGES)
    assert graph.edges["spiker.ok"] == {"spiker.cli"}
    assert graph.edges["spiker_services.simulator.job"] == {"spiker_services.trainer.servicer"}
    assert "spiker_services.common.server" not in graph.runtime["spiker_gateway.cli"]
    found = layer_violations(graph.edges)
    assert [line.split(":")[0] for line in found] == [
        "spiker.cli imports spiker_gateway.cli",
        "spiker_gateway.cli imports spiker_services.common.server",  # TYPE_CHECKING counts for layers
        "spiker_services.common.server imports spiker_services.trainer.servicer",
        "spiker_services.simulator.job imports spiker_services.trainer.servicer",
    ]
    # common -> trainer -> common is a circle; the app importing everything is not a violation
    assert new_cycles(graph.runtime, known=()) == [["spiker_services.common.server",
                                                    "spiker_services.trainer.servicer"]]
    assert new_cycles(graph.runtime, known=[frozenset({"spiker_services.common.server",
                                                       "spiker_services.trainer.servicer"})]) == []


def test_checker_finds_long_circles_but_not_type_only_ones(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "spiker/__init__.py": "",
        "spiker/a.py": "import spiker.b\n",
        "spiker/b.py": "from spiker.c import thing\n",
        "spiker/c.py": "def g():\n    from spiker import a\n",
        "spiker/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from spiker.e import E\n",
        "spiker/e.py": "from spiker.d import D\n",
    })
    graph = build_graph(root, ["spiker"])
    assert cycles(graph.runtime) == [{"spiker.a", "spiker.b", "spiker.c"}]
    assert sorted(map(sorted, cycles(graph.edges))) == [["spiker.a", "spiker.b", "spiker.c"], ["spiker.d", "spiker.e"]]
    assert layer_violations(graph.edges) == []


# -- the composition root -----------------------------------------------------------------------

def _commands(parser: argparse.ArgumentParser) -> list[str]:
    """The parser's top-level commands, in the order ``--help`` lists them."""
    from spiker.cli import all_subparsers

    return [sub.prog.split()[-1] for sub in all_subparsers(parser) if sub.prog.count(" ") == 1]


def test_the_console_script_assembles_the_library_service_and_gateway_commands() -> None:
    """``spiker``'s commands: the library's own, then serve/worker, run/up and the gateway's (in that order)."""
    from spiker.cli import build_parser as library_parser
    from spiker_app.cli import build_parser

    library = ["train", "optimize", "hdl", "simulate", "implement"]
    assert _commands(library_parser()) == library
    assert _commands(build_parser()) == [*library, "serve", "worker", "run", "up", "gateway", "submit", "watch",
                                         "get", "cancel", "ls", "gc"]
