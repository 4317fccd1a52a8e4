"""The packages' imports run one way: models and tasks at the bottom, then optimizers and the loops, then
measurements, then experiments and the command line. Every import counts, those inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "implicitrank"

# Bottom first. A package may import its own layer (without a cycle) and the layers below, never one above.
LAYERS: tuple[tuple[str, ...], ...] = (
    # plumbing: errors, Ctrl-C deferral, progress bars, threads, devices, the allocator and worker processes,
    # provenance, run directories, TensorBoard logs
    ("errors", "interrupts", "progress", "threads", "devices", "allocator", "workers", "provenance", "results",
     "tensorboard"),
    ("factorizations",),  # the models of the analogy table
    ("tasks",),  # observations to fit (their ground truths may be built with a factorization)
    ("optim", "baselines"),  # optimizers' (init, update) pairs; solvers that do not train
    ("train", "flow"),  # the loops: batched (minibatch) gradient methods and gradient flow
    ("measure", "theory"),  # spectra, ranks, rate checks; the theory's recorders train, so they sit above the loops
    ("nn", "cnn"),  # networks and their minibatch SGD
    ("plots", "run", "sweeps", "experiments"),  # runs, sweeps and the reproduced figures
    ("reports",),  # HTML pages over run, sweep and reproduction directories
    ("commands", "cli", "__init__"),  # the command line and the public facade
)
LAYER = {name: level for level, names in enumerate(LAYERS) for name in names}


def _modules() -> list[tuple[Path, str]]:
    """Every source file with its dotted module name."""
    out = []
    for path in sorted(SRC.rglob("*.py")):
        parts = ("implicitrank",) + path.relative_to(SRC).with_suffix("").parts
        out.append((path, ".".join(parts[:-1] if parts[-1] == "__init__" else parts)))
    return out


def _imports(path: Path, module: str, source: str | None = None) -> list[tuple[str, list[str], int]]:
    """(absolute module imported, names imported from it, line) for every import in the file, at any depth."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, [alias.name for alias in node.names], node.lineno))
    return found


def _package(module: str) -> str:
    """The top-level package or module of implicitrank a dotted name belongs to (``__init__`` for the root)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _edges() -> list[tuple[str, str, str, int]]:
    """(importer file, importer package, imported package, line), between different packages of implicitrank."""
    edges = []
    for path, module in _modules():
        for target, names, line in _imports(path, module):
            if not (target == "implicitrank" or target.startswith("implicitrank.")):
                continue
            # ``from . import x`` inside the root names the submodule x; the root's own names are only __version__
            targets = [f"{target}.{n}" for n in names] if target == "implicitrank" else [target]
            for imported in targets:
                if imported == "implicitrank.__version__":
                    continue
                source, dest = _package(module), _package(imported)
                if source != dest:
                    edges.append((str(path.relative_to(SRC)), source, dest, line))
    return edges


def test_imports_inside_functions_and_relative_imports_are_seen():
    source = "import torch\nfrom .. import results\n\ndef f():\n    from ..experiments.claims import Claim\n"
    found = _imports(SRC / "tasks" / "x.py", "implicitrank.tasks.x", source)
    assert found == [("torch", [], 1), ("implicitrank", ["results"], 2), ("implicitrank.experiments.claims",
                                                                          ["Claim"], 5)]
    assert LAYER[_package("implicitrank.experiments.claims")] > LAYER[_package("implicitrank.tasks.x")]


def test_every_package_is_placed_in_a_layer():
    packages = {_package(module) for _, module in _modules()}
    assert packages <= set(LAYER), f"place {sorted(packages - set(LAYER))} in LAYERS"


def test_no_package_imports_a_higher_layer():
    upward = [f"{file}:{line}: {source} (layer {LAYER[source]}) imports {dest} (layer {LAYER[dest]})"
              for file, source, dest, line in _edges()
              if LAYER[dest] > LAYER[source]]
    assert not upward, "\n".join(upward)


def test_packages_import_each_other_without_cycles():
    graph: dict[str, set[str]] = {}
    for _, source, dest, _ in _edges():
        graph.setdefault(source, set()).add(dest)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph.get(start, ()))

    cycles = sorted(f"{a} <-> {b}" for a in graph for b in graph[a] if a < b and reaches(b, a, {b}))
    assert not cycles, cycles


def test_private_names_are_not_imported_across_packages():
    private = []
    for path, module in _modules():
        for target, names, line in _imports(path, module):
            if not target.startswith("implicitrank.") or _package(target) == _package(module):
                continue
            hidden = [n for n in names if n.startswith("_") and n != "__version__"]
            if any(part.startswith("_") for part in target.split(".")[1:]) or hidden:
                private.append(f"{path.relative_to(SRC)}:{line}: from {target} import {', '.join(names)}")
    assert not private, "\n".join(private)


def test_attribute_access_to_private_helpers_of_another_package_is_absent():
    # ``from .. import results`` then ``results._helper(...)`` hides a private import from the checks above
    offenders = []
    for path, module in _modules():
        imported = {name for target, names, _ in _imports(path, module) if target.startswith("implicitrank")
                    for name in names if _package(f"implicitrank.{name}") != _package(module)}
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in imported
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}: {node.value.id}.{node.attr}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("statement", ["matplotlib.use("])
def test_importing_the_library_sets_no_global_state(statement):
    # the plotting backend is the user's: only the command line picks one (cli.main sets MPLBACKEND, once)
    users = [str(path.relative_to(SRC)) for path, module in _modules() if statement in path.read_text()]
    assert not users, users
