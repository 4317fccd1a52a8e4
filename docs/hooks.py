"""MkDocs hooks: the pages generated from the code, so that they cannot drift from it.

- ``tutorials/NAME.md`` (+ its figures and the executed ``NAME.ipynb``): each jupytext percent script
  ``docs/tutorials/NAME.py`` executed in a fresh kernel, its cells and outputs written as Markdown.
  Executed notebooks are cached under ``$IMPLICITRANK_DOCS_NOTEBOOKS`` (default ``build/notebooks``)
  keyed by the script's SHA-256, so the test that executes the tutorials hands its notebooks to the build.
- ``reference/cli.md``: the ``--help`` of every command, walked from ``implicitrank.cli.build_parser``.
- ``assets/front-page.png``: the figure of the tutorial cell tagged ``front-page``, shown on the home page.
- ``claims.md``: every reproduced experiment and its claims, from the experiment registry; each claim's status
  from the ``claims.json`` files of a ``reproduce all`` run named by ``$IMPLICITRANK_DOCS_CLAIMS`` (the docs test
  makes one at test scale).

A public name without a docstring in a documented package is logged as a warning, which fails a strict build.
The functions here are also used by ``tests/test_docs.py``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib
import inspect
import json
import logging
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "docs" / "tutorials"
KERNEL_TIMEOUT_S = 600  # per cell

log = logging.getLogger("mkdocs.hooks.implicitrank")


def tutorial_sources() -> list[Path]:
    """The tutorial scripts, in reading order (their names start with their number)."""
    return sorted(TUTORIALS.glob("[0-9]*.py"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def kernel_environment() -> dict[str, str]:
    """The kernel's environment: this one, one thread per BLAS/OpenMP pool, ``src`` first on the path, Agg."""
    from implicitrank.threads import thread_environment

    env = dict(os.environ) | thread_environment(1)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    return env


def execute_tutorial(source: Path):
    """Execute ``source`` (a jupytext percent script) in a fresh kernel, in a scratch directory.

    Returns the executed notebook; its metadata records the script's SHA-256 and the wall seconds.
    A cell that raises makes this raise ``nbclient.exceptions.CellExecutionError``.
    """
    import jupytext
    from nbclient import NotebookClient

    notebook = jupytext.read(source)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    with tempfile.TemporaryDirectory(prefix=f"tutorial-{source.stem}-") as scratch:
        client = NotebookClient(notebook, timeout=KERNEL_TIMEOUT_S, kernel_name="python3",
                                resources={"metadata": {"path": scratch}})
        start = time.perf_counter()
        client.execute(env=kernel_environment())
        seconds = time.perf_counter() - start
    notebook.metadata["implicitrank"] = {"source_sha256": _sha256(source), "seconds": round(seconds, 1)}
    return notebook


def notebook_cache() -> Path:
    return Path(os.environ.get("IMPLICITRANK_DOCS_NOTEBOOKS", ROOT / "build" / "notebooks"))


def executed_notebook(source: Path, cache: Path | None = None):
    """The executed notebook of ``source``: from ``cache`` when it was executed from the same script, else run now."""
    import nbformat

    cache = notebook_cache() if cache is None else cache
    cached = cache / f"{source.stem}.ipynb"
    if cached.exists():
        notebook = nbformat.read(cached, as_version=4)
        if notebook.metadata.get("implicitrank", {}).get("source_sha256") == _sha256(source):
            return notebook
    log.info("executing %s", source.name)
    notebook = execute_tutorial(source)
    cache.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, cached)
    return notebook


def notebook_markdown(notebook, name: str) -> tuple[str, dict[str, bytes]]:
    """Markdown for an executed notebook: text cells as they are, code in fences, outputs below their cell.

    Images become files ``NAME/figure-K.png`` (returned with their bytes) referenced from the page.
    """
    parts: list[str] = []
    figures: dict[str, bytes] = {}
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            parts.append(cell.source)
            continue
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        parts.append(f"```python\n{cell.source}\n```")
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                parts.append(f"```text\n{output.text.rstrip()}\n```")
            elif output.output_type in ("display_data", "execute_result"):
                data = output.get("data", {})
                if "image/png" in data:
                    figure = f"{name}/figure-{len(figures) + 1}.png"
                    figures[figure] = base64.b64decode(data["image/png"])
                    parts.append(f"![Figure {len(figures)} of this tutorial]({figure})")
                elif "text/plain" in data:
                    parts.append(f"```text\n{data['text/plain'].rstrip()}\n```")
    return "\n\n".join(parts) + "\n", figures


def front_page_figure(notebook) -> bytes | None:
    """The first image of a cell tagged ``front-page`` (``# %% tags=["front-page"]`` in the script), or None."""
    for cell in notebook.cells:
        if "front-page" in cell.get("metadata", {}).get("tags", []):
            for output in cell.get("outputs", []):
                if "image/png" in output.get("data", {}):
                    return base64.b64decode(output["data"]["image/png"])
    return None


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def cli_reference() -> str:
    """Every command's ``--help``, walked from ``implicitrank.cli.build_parser`` (nested commands included)."""
    from implicitrank.cli import build_parser

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "110"  # argparse wraps to the terminal width; fix it so the page is stable
    try:
        lines = ["# Command line", "",
                 "Generated from the parsers of `implicitrank.cli.build_parser` at build time: "
                 "this is exactly what `--help` prints.", ""]

        def walk(parser: argparse.ArgumentParser, depth: int) -> None:
            lines.extend([f"{'#' * min(depth, 4)} `{parser.prog}`", "", "```text",
                          parser.format_help().rstrip(), "```", ""])
            for sub in _subcommands(parser).values():
                walk(sub, depth + 1)

        walk(build_parser(), 2)
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous
    return "\n".join(lines)


def claims_directory() -> Path | None:
    """A ``reproduce all`` output directory (one ``NAME/claims.json`` per experiment) named by
    ``$IMPLICITRANK_DOCS_CLAIMS``, or None."""
    path = os.environ.get("IMPLICITRANK_DOCS_CLAIMS")
    return Path(path) if path else None


def _cell(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    if isinstance(value, dict):  # a published value: its number, paper, place and how it was obtained
        number = isinstance(value.get("value"), (int, float, list, tuple))
        approx = "≈" if value.get("approximate") and number else ""  # a statement carries its own ≈
        where = ", ".join(str(value[k]) for k in ("paper", "where", "how") if value.get(k))
        return f"{approx}{_cell(value.get('value'))} ({where})"
    return str(value).replace("|", "\\|")


def claims_table(record: dict) -> list[str]:
    """Markdown rows of one experiment's ``claims.json``: claim, published value (or what we derived), ours,
    the test applied, status."""
    lines = ["| claim | paper | ours | test | status |", "|---|---|---|---|---|"]
    for claim in record["claims"]:
        paper = claim.get("published") or claim.get("derived") or claim.get("paper_value")
        ours = claim.get("aggregate", claim.get("our_value"))
        lines.append(f"| {_cell(claim['claim'])} | {_cell(paper)} | {_cell(ours)} | "
                     f"{_cell(claim.get('tolerance'))} | **{claim['status']}** |")
    return lines


def claims_page() -> str:
    """Every reproduced experiment with its claims; their status from ``claims_directory()`` when given."""
    from implicitrank.experiments import MODULES, experiment

    found = claims_directory()
    lines = ["# Published claims", "",
             "Generated when this site was built from `implicitrank.experiments` (the experiments and what each "
             "checks) and, for the status of each claim, from the `claims.json` files of an "
             "`implicitrank reproduce all` run."]
    if found is None:
        lines += ["", "!!! note \"Status not run in this build\"",
                  "    Run `implicitrank reproduce all --scale quick --out OUT` (or `--scale paper`), then build the "
                  "site with `IMPLICITRANK_DOCS_CLAIMS=OUT mkdocs build` to show each claim's status here."]
    lines.append("")
    for name in MODULES:
        module = experiment(name)
        summary = (inspect.getdoc(module) or "").split("\n\n")[0].replace("\n", " ")
        lines += [f"## `{name}`", "", f"**{module.TITLE}**", "", summary, ""]
        path = None if found is None else found / name / "claims.json"
        if path is None:
            continue
        if not path.is_file():
            lines += [f"*Not run: no `{name}/claims.json` in the run this site was built from.*", ""]
            continue
        record = json.loads(path.read_text())
        counts = {s: sum(c["status"] == s for c in record["claims"]) for s in ("pass", "fail", "not run")}
        status = (f"At **{record['scale']}** scale: {counts['pass']} passed, {counts['fail']} failed, "
                  f"{counts['not run']} not run (rerun with `implicitrank reproduce {name} --scale "
                  f"{record['scale']}`).")
        if record["scale"] == "test":
            status += (" Test scale runs in seconds on sizes far below the papers': it shows that the code runs "
                       "and checks, not whether the paper's finding holds (that is the quick and paper scales).")
        lines += [status, "", *claims_table(record), ""]
    return "\n".join(lines)


def documented_modules() -> list[str]:
    """The modules the reference pages render (their ``::: module`` lines)."""
    lines = (line for page in sorted((ROOT / "docs").rglob("*.md")) for line in page.read_text().splitlines())
    return sorted({line.split()[1] for line in lines if line.startswith("::: ")})


def undocumented_public_names() -> list[str]:
    """Functions and classes of a rendered module's public names (its ``__all__``, or else what it defines without
    a leading underscore) that have no docstring of their own."""
    missing = []
    for package in documented_modules():
        module = importlib.import_module(package)
        names = getattr(module, "__all__", None) or [n for n, v in vars(module).items() if not n.startswith("_")
                                                     and getattr(v, "__module__", None) == package]
        for name in names:
            obj = getattr(module, name)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            doc = obj.__doc__ or ""
            # a dataclass without a docstring gets "Name(field: type, ...)" written for it
            if not doc.strip() or (inspect.isclass(obj) and doc.startswith(f"{obj.__name__}(")):
                missing.append(f"{package}.{name}")
    return missing


def on_pre_build(config) -> None:
    for name in undocumented_public_names():
        log.warning("public name without a docstring: %s", name)


def on_files(files, config):
    from mkdocs.structure.files import File

    def add(src_uri: str, content: str | bytes) -> None:
        existing = files.get_file_from_path(src_uri)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, src_uri, content=content))

    import nbformat

    for source in tutorial_sources():
        notebook = executed_notebook(source)
        markdown, figures = notebook_markdown(notebook, source.stem)
        seconds = notebook.metadata["implicitrank"]["seconds"]
        header = (f"[Download the notebook]({source.stem}.ipynb) · [the script]({source.name}) · "
                  f"executed in {seconds:.0f} s when this site was built\n\n")
        # the header goes after the title so that the page keeps its heading as its title
        title, _, body = markdown.partition("\n")
        add(f"tutorials/{source.stem}.md", f"{title}\n\n{header}{body}" if title.startswith("# ") else
            header + markdown)
        add(f"tutorials/{source.stem}.ipynb", nbformat.writes(notebook))
        for path, data in figures.items():
            add(f"tutorials/{path}", data)
        front = front_page_figure(notebook)
        if front is not None:
            add("assets/front-page.png", front)
    add("reference/cli.md", cli_reference())
    add("claims.md", claims_page())
    return files


def on_post_build(config) -> None:
    summary = {source.stem: executed_notebook(source).metadata["implicitrank"]["seconds"]
               for source in tutorial_sources()}
    log.info("tutorial execution seconds: %s", json.dumps(summary))
