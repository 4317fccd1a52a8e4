"""One docstring style for the public surface: NumPy sections, every parameter documented by its own name, a Returns
section where a function returns something, and a References section (paper, year, and section/equation/figure)
wherever a docstring cites a paper.

The public surface is every function and class in a package's or top-level module's ``__all__``, with the public
methods and properties each class defines itself.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "implicitrank"
MODULES = sorted({f"implicitrank.{p.parent.name}" for p in SRC.glob("*/__init__.py")}
                 | {f"implicitrank.{p.stem}" for p in SRC.glob("*.py") if p.stem != "__init__"})
# numpydoc's section order; a docstring uses a subset, in this order.
SECTIONS = ("Parameters", "Attributes", "Methods", "Returns", "Yields", "Other Parameters", "Raises", "Warns",
            "Warnings", "See Also", "Notes", "References", "Examples")
ENTRY_SECTIONS = ("Parameters", "Attributes", "Other Parameters", "Returns", "Yields", "Raises", "Warns")
CITATION = re.compile(r"\b(?:NeurIPS|NIPS|ICML|ICLR|COLT|JMLR|CVPR)\b[^\n]{0,40}?\b(?:19|20)\d\d\b|\bet al\.?,? "
                      r"\(?(?:19|20)\d\d")
LOCATION = re.compile(r"§|\b(?:Section|Sec\.|Eq\.|Eqs\.|Equation|Theorem|Lemma|Proposition|Corollary|Definition|"
                      r"Figure|Fig\.|Table|Appendix|App\.|Algorithm|Remark|Example|Claim)")
YEAR = re.compile(r"\b(?:19|20)\d\d\b")
ENTRY = re.compile(r"^(\*{0,2}[A-Za-z_]\w*(?:\s*,\s*\*{0,2}[A-Za-z_]\w*)*)(?:\s*:.*)?$")


def _own_members(cls: type) -> Iterator[tuple[str, object]]:
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    for name, value in vars(cls).items():
        if name.startswith("_") or name in fields:
            continue
        if isinstance(value, (classmethod, staticmethod)):
            yield name, value.__func__
        elif inspect.isfunction(value) or isinstance(value, property):
            yield name, value


def _public_objects() -> dict[str, object]:
    found: dict[int, tuple[str, object]] = {}
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if not getattr(obj, "__module__", "").startswith("implicitrank"):
                continue
            found.setdefault(id(obj), (f"{obj.__module__}.{obj.__qualname__}", obj))
            if inspect.isclass(obj):
                for member_name, member in _own_members(obj):
                    found.setdefault(id(member), (f"{obj.__module__}.{obj.__qualname__}.{member_name}", member))
    return dict(sorted(found.values(), key=lambda item: item[0]))


PUBLIC = _public_objects()


def _sections(doc: str) -> dict[str, list[str]]:
    """The docstring's sections by title ('' for the text before the first), each as its lines."""
    lines = doc.splitlines()
    sections: dict[str, list[str]] = {"": []}
    title, i = "", 0
    while i < len(lines):
        line = lines[i]
        underline = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and not line.startswith(" ") and re.fullmatch(r"-{3,}", underline.strip() or "x"):
            title = line.strip()
            assert title in SECTIONS, f"unknown section {title!r} (allowed: {', '.join(SECTIONS)})"
            assert len(underline.strip()) == len(title), f"section {title!r}: underline its title exactly"
            assert title not in sections, f"section {title!r} appears twice"
            sections[title] = []
            i += 2
            continue
        sections[title].append(line)
        i += 1
    return sections


def _entries(title: str, lines: list[str]) -> list[str]:
    """The names of a section's entries; each entry is ``name : type`` with an indented description below."""
    names: list[str] = []
    body = [line for line in lines]
    while body and not body[-1].strip():
        body.pop()
    for i, line in enumerate(body):
        if not line.strip() or line.startswith(" "):
            continue
        match = ENTRY.match(line.strip()) if title not in ("Returns", "Yields", "Raises", "Warns") else None
        following = body[i + 1] if i + 1 < len(body) else ""
        assert following.startswith("    ") and following.strip(), (
            f"{title}: entry {line.strip()!r} needs its description on the next line, indented")
        if match:
            names += [n.strip() for n in match.group(1).split(",")]
        elif title in ("Parameters", "Attributes", "Other Parameters"):
            raise AssertionError(f"{title}: {line.strip()!r} is not 'name : type'")
    return names


def _documented_parameters(sections: dict[str, list[str]]) -> list[str]:
    return [name.lstrip("*") for title in ("Parameters", "Other Parameters", "Attributes") if title in sections
            for name in _entries(title, sections[title])]


def _signature_parameters(fn: Callable, skip_first: bool) -> list[str]:
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return []
    if skip_first and parameters and parameters[0].name in ("self", "cls"):
        parameters = parameters[1:]
    return [p.name for p in parameters]


def _returns_something(fn: Callable) -> bool:
    annotation = inspect.signature(fn).return_annotation
    return annotation not in (inspect.Signature.empty, None, "None", "NoReturn", "Never")


@pytest.mark.parametrize("qualname", list(PUBLIC))
def test_public_docstring_follows_the_numpy_style(qualname):
    obj = PUBLIC[qualname]
    doc = inspect.getdoc(obj.fget if isinstance(obj, property) else obj) or ""
    assert doc.strip(), f"{qualname} has no docstring"
    sections = _sections(doc)
    order = [title for title in sections if title]
    assert order == sorted(order, key=SECTIONS.index), f"{qualname}: sections out of numpydoc order: {order}"
    for title in ENTRY_SECTIONS:
        if title in sections:
            _entries(title, sections[title])
    documented = _documented_parameters(sections)
    if isinstance(obj, property):
        expected: list[str] = []
    elif inspect.isclass(obj):
        init = obj.__dict__.get("__init__") or (obj.__init__ if dataclasses.is_dataclass(obj) else None)
        if getattr(init, "__module__", None) == "typing":  # typing.Protocol's placeholder, not the class's own
            init = None
        expected = _signature_parameters(init, skip_first=True) if inspect.isfunction(init) else []
        documented = [n for n in documented if n in expected] if not expected else documented
    else:
        expected = _signature_parameters(obj, skip_first="." in obj.__qualname__)
    missing = [name for name in expected if name not in documented]
    extra = [name for name in documented if name not in expected] if expected else []
    assert not missing, f"{qualname}: parameters not documented under 'Parameters': {missing}"
    assert not extra, f"{qualname}: documents parameters it does not take: {extra}"
    if inspect.isfunction(obj) and _returns_something(obj):
        assert "Returns" in sections or "Yields" in sections, f"{qualname} returns a value: add a 'Returns' section"


@pytest.mark.parametrize("qualname", list(PUBLIC))
def test_a_docstring_that_cites_a_paper_has_references_with_the_place_in_the_paper(qualname):
    obj = PUBLIC[qualname]
    doc = inspect.getdoc(obj.fget if isinstance(obj, property) else obj) or ""
    sections = _sections(doc)
    if not CITATION.search(doc) and "References" not in sections:
        return
    assert "References" in sections, f"{qualname} cites a paper: add a 'References' section"
    entries = [e for e in "\n".join(sections["References"]).split("\n\n") if e.strip()]
    assert entries, f"{qualname}: empty References section"
    for entry in entries:
        assert YEAR.search(entry), f"{qualname}: reference {entry.strip()!r} names no year"
        assert LOCATION.search(entry), (
            f"{qualname}: reference {entry.strip()!r} names no place in the paper (§, Theorem, Eq., Figure, ...)")


def test_the_style_checker_rejects_what_it_should():
    def ok(a: int, *, b: float = 1.0) -> int:
        """Add.

        Parameters
        ----------
        a : int
            First.
        b : float
            Second.

        Returns
        -------
        int
            The sum.

        References
        ----------
        A. Author, "A paper", NeurIPS 2019, Theorem 3.
        """
        return a

    sections = _sections(inspect.getdoc(ok))
    assert _documented_parameters(sections) == _signature_parameters(ok, skip_first=False) == ["a", "b"]
    with pytest.raises(AssertionError, match="description on the next line"):
        _entries("Parameters", ["a : int, first", "b : float"])
    with pytest.raises(AssertionError, match="unknown section"):
        _sections("Summary.\n\nParams\n------\na : int\n    x")
    with pytest.raises(AssertionError, match="underline"):
        _sections("Summary.\n\nParameters\n-----\na : int\n    x")
    assert CITATION.search("Razin, Maman & Cohen, ICML 2022") and CITATION.search("Arora et al., 2019")
    assert not LOCATION.search("A. Author, NeurIPS 2019.") and LOCATION.search("NeurIPS 2019, §5")
