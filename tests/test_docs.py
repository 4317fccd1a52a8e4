"""The tutorials execute and the documentation site builds in strict mode and renders in a real browser.

Marked ``docs`` (not in the default run: executing the six tutorials takes minutes); ``.ci/run`` runs
``pytest -m docs`` after the test suite. The tutorials run first and leave their executed notebooks in a
session directory, which the site build then reuses instead of executing them again.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.docs


def _load_hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = _load_hooks()
TUTORIALS = hooks.tutorial_sources()


@pytest.fixture(scope="session")
def notebooks() -> Path:
    """Where the executed notebooks go: the site build's cache (``build/notebooks`` unless
    ``$IMPLICITRANK_DOCS_NOTEBOOKS`` says otherwise), so that the build below, and a later ``mkdocs build``,
    reuse them instead of executing the tutorials again."""
    cache = hooks.notebook_cache()
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def test_there_is_one_tutorial_per_line_of_work_plus_practice_and_scale():
    assert [p.name.split("_")[0] for p in TUTORIALS] == ["1", "2", "3", "4", "5", "6"]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("source", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_executes_and_shows_its_figures(source, notebooks):
    """Executed from scratch (never from the cache), in a fresh kernel and a scratch directory."""
    import nbformat

    notebook = hooks.execute_tutorial(source)
    nbformat.write(notebook, notebooks / f"{source.stem}.ipynb")
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert figures, f"{source.name} shows no figure"
    stderr = "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stderr")
    assert "Warning" not in stderr, f"{source.name} warned:\n{stderr}"
    markdown, files = hooks.notebook_markdown(notebook, source.stem)
    assert markdown.startswith("# ") and len(files) == len(figures)
    print(f"{source.stem}: {notebook.metadata['implicitrank']['seconds']} s")


def test_cli_reference_lists_every_command_with_its_help():
    from implicitrank.cli import build_parser

    page = hooks.cli_reference()
    for name, parser in hooks._subcommands(build_parser()).items():
        assert f"## `implicitrank {name}`" in page
        assert parser.format_help().splitlines()[0] in page


@pytest.fixture(scope="session")
def claims_run(tmp_path_factory) -> Path:
    """``reproduce all --scale test``: the claims whose status the site's claims page shows."""
    out = tmp_path_factory.mktemp("reproduce") / "all"
    done = subprocess.run([sys.executable, "-m", "implicitrank.cli", "reproduce", "all", "--scale", "test",
                           "--out", str(out), "--no-progress"], capture_output=True, text=True, timeout=1800)
    # its exit status says whether every claim passed; the page reports them either way
    missing = [name for name in hooks_experiments() if not (out / name / "claims.json").is_file()]
    assert not missing, f"no claims.json for {missing}:\n{done.stdout}{done.stderr}"
    return out


def hooks_experiments() -> list[str]:
    from implicitrank.experiments import MODULES

    return list(MODULES)


@pytest.fixture(scope="session")
def site(tmp_path_factory, notebooks, claims_run) -> Path:
    """The site built with ``mkdocs build --strict`` (a warning, a broken link or a missing docstring fails)."""
    out = tmp_path_factory.mktemp("site")
    env = os.environ | {"IMPLICITRANK_DOCS_NOTEBOOKS": str(notebooks), "IMPLICITRANK_DOCS_CLAIMS": str(claims_run),
                        "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@pytest.mark.timeout(1800)  # builds the site (and executes any tutorial not executed above)
def test_site_has_every_page(site):
    for page in ("index.html", "conventions/index.html", "claims/index.html", "reference/cli/index.html",
                 *(f"tutorials/{p.stem}/index.html" for p in TUTORIALS)):
        assert (site / page).is_file(), page
    assert json.loads((site / "tutorials" / f"{TUTORIALS[0].stem}.ipynb").read_text())["cells"]
    claims = (site / "claims" / "index.html").read_text()
    assert claims.count("At <strong>test</strong> scale") == len(hooks_experiments())


@pytest.mark.timeout(1800)
def test_index_and_a_tutorial_show_their_figures_in_chromium(site, chromium, tmp_path):
    from browser import console_errors, images, open_page, screenshot

    for page in ("index.html", f"tutorials/{TUTORIALS[0].stem}/index.html"):
        driver = open_page(chromium, site / page)
        found = images(driver)
        assert found and all(i["width"] > 0 for i in found), (page, found)
        assert console_errors(driver) == [], page
        screenshot(driver, tmp_path / f"{page.replace('/', '_')}.png")
