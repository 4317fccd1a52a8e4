"""The public surface: each package's ``__all__``, the few names at the top, and the examples that document them
(every package's docstring and the README's library example run as doctests)."""

from __future__ import annotations

import ast
import doctest
import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import implicitrank

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "implicitrank"
PACKAGES = sorted(p.parent.name for p in SRC.glob("*/__init__.py"))
# Modules beyond the package docstrings whose docstrings hold examples.
EXAMPLE_MODULES = ("implicitrank", "implicitrank.tasks._protocol")


def _run_doctests(name: str, test: doctest.DocTest | None = None) -> doctest.TestResults:
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [test] if test is not None else doctest.DocTestFinder().find(importlib.import_module(name))
    for case in tests:
        runner.run(case)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{name}: {results.failed} of {results.attempted} examples failed (output above)"
    return results


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_states_its_public_names_and_each_exists(package):
    module = importlib.import_module(f"implicitrank.{package}")
    assert isinstance(module.__all__, (list, tuple)), f"{package} has no explicit __all__"
    assert len(set(module.__all__)) == len(module.__all__)
    for name in module.__all__:
        assert getattr(module, name) is not None, f"implicitrank.{package}.{name}"


@pytest.mark.parametrize("module", sorted(p.stem for p in SRC.glob("*.py") if p.stem != "__init__"))
def test_every_top_level_module_states_its_public_names(module):
    # read with ast, not imported: importing cli or workers here must not be a side effect of this check
    tree = ast.parse((SRC / f"{module}.py").read_text())
    assigned = [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                if isinstance(t, ast.Name)]
    assert "__all__" in assigned, f"implicitrank/{module}.py has no explicit __all__"


def test_the_top_level_exposes_the_starting_names_lazily_and_they_are_the_packages_own():
    assert implicitrank.__all__[0] == "__version__" and "MatrixFactorization" in implicitrank.__all__
    for name in implicitrank.__all__[1:]:
        source = importlib.import_module(f"implicitrank.{implicitrank._EXPORTS[name]}")
        assert getattr(implicitrank, name) is getattr(source, name)
        assert name in source.__all__, f"{name} is not public in {source.__name__}"
        assert name in dir(implicitrank)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        implicitrank.nothing  # noqa: B018


def test_importing_implicitrank_imports_neither_torch_nor_matplotlib():
    code = "import sys, implicitrank; print(sorted({'torch', 'numpy', 'matplotlib'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_docstring_holds_an_example_that_runs(package):
    module = importlib.import_module(f"implicitrank.{package}")
    test = doctest.DocTestParser().get_doctest(module.__doc__ or "", vars(module).copy(), module.__name__,
                                               module.__file__, 0)
    assert test.examples, f"implicitrank.{package}'s docstring has no example"
    _run_doctests(module.__name__, test)


@pytest.mark.parametrize("name", EXAMPLE_MODULES)
def test_module_examples_run(name):
    assert _run_doctests(name).attempted > 0


def test_the_readme_library_example_runs():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## The library\s+```python\n(.*?)```", readme, re.S)
    assert block is not None, "README.md has no python block under '## The library'"
    test = doctest.DocTestParser().get_doctest(block.group(1), {}, "README.md", str(ROOT / "README.md"), 0)
    assert len(test.examples) >= 5, "the README's library example is written as a doctest (>>> lines)"
    _run_doctests("README.md", test)


def test_every_public_function_and_class_has_a_docstring():
    modules = [f"implicitrank.{p}" for p in PACKAGES] + [f"implicitrank.{p.stem}" for p in SRC.glob("*.py")
                                                         if p.stem != "__init__"]
    bare = []
    for name in modules:
        module = importlib.import_module(name)
        for public in module.__all__:
            value = getattr(module, public)
            if (inspect.isfunction(value) or inspect.isclass(value)) and not inspect.getdoc(value):
                bare.append(f"{name}.{public}")
    assert not bare, bare
