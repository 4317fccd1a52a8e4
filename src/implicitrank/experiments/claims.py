"""Published claims checked against our numbers: one record per claim, written as claims.json and claims.md.

A claim holds numbers as numbers: the reference it is tested against (a published value with its source, or a
value we derived, labelled so), our value per seed, their aggregate (the median over seeds, element-wise for a
list) and spread (min–max), and a machine-readable test with its parameter:

* ``relative``:  |x − ref| <= p·|ref|            * ``factor``:   ref/p <= x <= ref·p
* ``absolute``:  |x − ref| <= p
* ``at_least``:  x >= p (every element)           * ``at_most``:  x <= p (every element)
* ``equal``:     x == p                           * ``ordering``: the elements of x are ``p`` (``increasing``,
  ``decreasing``, ``non-increasing``, ``non-decreasing``; ``increasing`` and ``decreasing`` are strict)
* ``less``:      x[0] < x[1] < ... (a list whose first element must be the smallest, e.g. [ours, rival])

A seed rule decides over seeds: ``all`` (holds in n of n seeds) or ``median`` (holds on the median, and in a
majority of seeds). A claim whose control (the same test where the phenomenon must not appear) passes too
fails: it does not discriminate. Any NaN, inf or None in any seed's value — Python, NumPy or torch numbers, 0-d
or n-d tensors, nested lists — makes the claim fail, reported as "k of n runs missing". The status is ``pass``,
``fail`` or ``not run`` (the claim needs data we do not ship: reported, never passed). ``claims.md`` renders the
same record as ``claims.json``: the tolerance printed is the one applied.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import provenance, results
from ..errors import UsageError
from .published import Published

STATUSES = ("pass", "fail", "not run")
TESTS = ("relative", "absolute", "factor", "at_least", "at_most", "equal", "ordering", "less")
ORDERINGS = ("increasing", "decreasing", "non-increasing", "non-decreasing")
RULES = ("all", "median")
# What a reader of a claims table must know about the scale it ran at: the small scales are not the reproduction.
SCALE_NOTES = {
    "test": "Test scale checks, in seconds, that every part runs end to end, on problems far smaller than the "
            "papers' and with few steps; several claims need the published sizes and fail or are not run here. "
            "Whether the papers' claims hold is decided at --scale quick (minutes) or --scale paper.",
    "quick": "Quick scale runs smaller problems and fewer seeds than the papers (minutes on 2 CPU cores); --scale "
             "paper runs the published sizes.",
}


def seed_list(seeds, default: int | Sequence[int]) -> tuple[int, ...]:
    """The seeds an experiment runs.

    Parameters
    ----------
    seeds : int, sequence of int or None
        A count (``3`` -> 0, 1, 2) or the seeds themselves (a list or tuple); None takes ``default``.
    default : int or sequence of int
        The seeds when ``seeds`` is None, in the same forms.

    Returns
    -------
    tuple of int
        The seeds, in the order given.

    Raises
    ------
    UsageError
        For a bool, a count below 1, or seeds that are empty, repeated or negative.
    """
    chosen = default if seeds is None else seeds
    if isinstance(chosen, bool):
        raise UsageError(f"seeds must be a count >= 1 or a list of seeds, got {chosen!r}")
    if isinstance(chosen, int):
        if chosen < 1:
            raise UsageError(f"seeds must be >= 1, got {chosen}")
        return tuple(range(chosen))
    out = tuple(int(s) for s in chosen)
    if not out or len(set(out)) != len(out) or min(out) < 0:
        raise UsageError(f"seeds must be distinct non-negative integers, at least one, got {list(chosen)}")
    return out


def as_number(value):
    """``value`` as a float or a (nested) list of floats; None stays None. Accepts Python, NumPy and torch numbers,
    NumPy arrays and tensors of any dimension, and nested lists/tuples of these."""
    if value is None:
        return None
    if hasattr(value, "tolist"):  # numpy scalars and arrays, torch tensors (0-d gives a number)
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [as_number(v) for v in value]
    if isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"a claim's value must be numeric, got {value!r}") from err


def is_missing(value) -> bool:
    """True when ``value`` (any numeric form) is None or holds a NaN, inf or None anywhere."""
    value = as_number(value)
    if value is None:
        return True
    if isinstance(value, list):
        return not value or any(is_missing(v) for v in value)
    return not math.isfinite(value)


def ratio(numerator, denominator) -> float:
    """``numerator / denominator`` as a claim's value: NaN (a missing number, which fails the claim) where either is
    missing or the denominator is 0, instead of a ZeroDivisionError or an inf that reads as a huge margin.

    Parameters
    ----------
    numerator, denominator : float
        Numbers in any numeric form (``as_number``), or None.

    Returns
    -------
    float
        The quotient, or NaN.
    """
    if is_missing(numerator) or is_missing(denominator) or as_number(denominator) == 0:
        return math.nan
    return as_number(numerator) / as_number(denominator)


def _flat(value) -> list[float]:
    return [x for v in value for x in _flat(v)] if isinstance(value, list) else [value]


def holds(test: str, parameter, value, reference=None) -> bool:
    """Whether ``value`` (a number or list, no missing entries) passes ``test`` with ``parameter``."""
    xs = _flat(value)
    if test == "relative":
        return all(abs(x - r) <= parameter * abs(r) for x, r in zip(xs, _reference(reference, len(xs))))
    if test == "absolute":
        return all(abs(x - r) <= parameter for x, r in zip(xs, _reference(reference, len(xs))))
    if test == "factor":
        return all(r / parameter <= x <= r * parameter for x, r in zip(xs, _reference(reference, len(xs))))
    if test == "at_least":
        return all(x >= parameter for x in xs)
    if test == "at_most":
        return all(x <= parameter for x in xs)
    if test == "equal":
        return all(x == parameter for x in xs)
    if test == "less":
        return len(xs) >= 2 and all(xs[0] < x for x in xs[1:])
    if test == "ordering":
        pairs = list(zip(xs, xs[1:]))
        compare = {"increasing": lambda a, b: a < b, "decreasing": lambda a, b: a > b,
                   "non-increasing": lambda a, b: a >= b, "non-decreasing": lambda a, b: a <= b}[parameter]
        return len(xs) >= 2 and all(compare(a, b) for a, b in pairs)
    raise ValueError(f"test must be one of {TESTS}, got {test!r}")


def _reference(reference, n: int) -> list[float]:
    ref = _flat(as_number(reference))
    if len(ref) == 1:
        return ref * n
    if len(ref) != n:
        raise ValueError(f"reference has {len(ref)} values for {n} of ours")
    return ref


def describe(test: str, parameter, reference=None) -> str:
    """The test in words, with the parameter exactly as applied (``repr`` of the float)."""
    ref = "" if reference is None else _fmt(as_number(reference), exact=True)
    return {"relative": lambda: f"|ours − {ref}| <= {parameter!r} × |{ref}|",
            "absolute": lambda: f"|ours − {ref}| <= {parameter!r}",
            "factor": lambda: f"{ref} / {parameter!r} <= ours <= {ref} × {parameter!r}",
            "at_least": lambda: f"every value >= {parameter!r}",
            "at_most": lambda: f"every value <= {parameter!r}",
            "equal": lambda: f"every value == {parameter!r}",
            "ordering": lambda: f"values {parameter} in order",
            "less": lambda: "first value < each of the others"}[test]()


def median(values: Sequence):
    """The median of numbers, or the element-wise median of equal-length lists (nested). NaN anywhere gives NaN:
    nothing is dropped."""
    values = [as_number(v) for v in values]
    if not values:
        return math.nan
    if isinstance(values[0], list):
        if any(not isinstance(v, list) or len(v) != len(values[0]) for v in values):
            raise ValueError("median: lists of unequal length")
        return [median([v[i] for v in values]) for i in range(len(values[0]))]
    if any(v is None or not math.isfinite(v) for v in values):
        return math.nan
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else 0.5 * (ordered[n // 2 - 1] + ordered[n // 2])


def _spread(values: list):
    """(min, max) over seeds, element-wise for lists; None when a value is missing."""
    if any(is_missing(v) for v in values):
        return None
    if isinstance(values[0], list):
        return [_spread([v[i] for v in values]) for i in range(len(values[0]))]
    return [min(values), max(values)]


@dataclass(frozen=True)
class Claim:
    """One claim, its numbers and its verdict (see the module docstring).

    Attributes
    ----------
    claim : str
        The claim in words.
    status : str
        ``pass``, ``fail`` or ``not run``.
    test : str or None
        One of ``TESTS`` (None for a claim not run). Default None.
    parameter : float, str or None
        The test's parameter (a tolerance, a bound, an ordering). Default None.
    reference : float, list or None
        The value the test compares with (``relative``, ``absolute``, ``factor``), if any. Default None.
    published : Published or None
        The paper's value and where it is, if the paper gives one. Default None.
    derived : str or None
        How we derived the reference when it is not the paper's (a formula). Default None.
    seeds : tuple of int
        The seeds of the runs. Default ().
    per_seed : tuple
        Our value for each seed (a number or a list). Default ().
    aggregate : float, list or None
        The median over seeds (element-wise for lists). Default None.
    spread : list or None
        [min, max] over seeds (element-wise for lists); None when a value is missing. Default None.
    rule : str
        The seed rule: ``all`` or ``median``. Default ``"all"``.
    holds_in : int
        In how many seeds the test holds. Default 0.
    missing : int
        How many seeds' values are missing (NaN, inf or None). Default 0.
    note : str
        Remarks shown beside the verdict. Default ``""``.
    control : Claim or None
        The same test on a control run, which must fail; not compared by ``==``. Default None.

    Raises
    ------
    ValueError
        On construction, when ``status`` is not one of ``STATUSES``.
    """

    claim: str
    status: str
    test: str | None = None
    parameter: float | str | None = None
    reference: float | list | None = None  # the value the test compares with (relative, factor), if any
    published: Published | None = None  # the paper's value and where it is, if the paper gives one
    derived: str | None = None  # how we derived the reference when it is not the paper's (a formula)
    seeds: tuple[int, ...] = ()
    per_seed: tuple = ()  # our value for each seed (a number or a list)
    aggregate: float | list | None = None  # median over seeds
    spread: list | None = None  # [min, max] over seeds (element-wise for lists)
    rule: str = "all"
    holds_in: int = 0
    missing: int = 0
    note: str = ""
    control: Claim | None = field(default=None, compare=False)  # the same test on a control run (must fail)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    @property
    def passed(self) -> bool:
        """Whether the status is ``pass``."""
        return self.status == "pass"

    @property
    def tolerance(self) -> str:
        """The test as applied, in words, with the seed rule."""
        if self.test is None:
            return "—"
        return f"{describe(self.test, self.parameter, self.reference)}; {rule_text(self.rule, len(self.per_seed))}"

    def to_dict(self) -> dict:
        """The claim as JSON-ready data (claims.json), its control nested.

        Returns
        -------
        dict
            Every field (tuples as lists, ``published`` as its ``to_dict``), with ``passed`` and ``tolerance``
            (the test as applied, in words).
        """
        return {"claim": self.claim, "status": self.status, "passed": self.passed, "test": self.test,
                "parameter": self.parameter, "tolerance": self.tolerance, "reference": self.reference,
                "published": None if self.published is None else self.published.to_dict(),
                "derived": self.derived, "seeds": list(self.seeds), "per_seed": list(self.per_seed),
                "aggregate": self.aggregate, "spread": self.spread, "rule": self.rule, "holds_in": self.holds_in,
                "missing": self.missing, "note": self.note,
                "control": None if self.control is None else self.control.to_dict()}


def rule_text(rule: str, n: int) -> str:
    """The seed rule ``rule`` over ``n`` seeds in words (as claims.md prints it): what a pass needs, not how many
    seeds it held in (``Claim.holds_in``)."""
    if rule == "all":
        return f"needs all {n} of {n} seeds"
    return f"needs the median and >= {n // 2 + 1} of {n} seeds"


def evaluate(claim: str, test: str, parameter, per_seed: Sequence, *, seeds: Iterable[int] | None = None,
             reference=None, published: Published | None = None, derived: str | None = None, rule: str = "all",
             note: str = "", control: Claim | None = None) -> Claim:
    """A claim evaluated over seeds: ``per_seed[i]`` is our value for ``seeds[i]`` (a number or a list).

    Missing numbers (NaN, inf, None, of any numeric type, anywhere) fail the claim. With rule ``all`` the claim
    passes when the test holds in every seed; with ``median`` when it holds on the median and in a majority
    (n // 2 + 1 of n) of seeds.

    Parameters
    ----------
    claim : str
        The claim in words.
    test : str
        One of ``TESTS`` (see the module docstring).
    parameter : float or str
        The test's parameter; for ``ordering`` one of ``ORDERINGS``.
    per_seed : sequence
        Our value for each seed: Python, NumPy or torch numbers or arrays, or nested lists of them.
    seeds : iterable of int or None, optional
        The seeds of ``per_seed``. Default None: 0, 1, ..., len(per_seed) − 1.
    reference : float, list or None, optional
        The value compared with. Default None: the published value for ``relative``, ``absolute`` and ``factor``.
    published : Published or None, optional
        The paper's value and its place. Default None.
    derived : str or None, optional
        How a reference that is not the paper's was derived. Default None.
    rule : str, optional
        ``all`` or ``median``. Default ``"all"``.
    note : str, optional
        A remark kept with the claim. Default ``""``.
    control : Claim or None, optional
        The same test on a control run (it must fail). A claim whose control passes fails, with a note: it does not
        discriminate. Default None.

    Returns
    -------
    Claim
        Status ``pass`` or ``fail`` with its numbers: per-seed values, median, spread, seeds where it holds.

    Raises
    ------
    ValueError
        For an unknown test, rule or ordering, a count of values unequal to the count of seeds, or a test that
        needs a reference without one.
    """
    if test not in TESTS:
        raise ValueError(f"test must be one of {TESTS}, got {test!r}")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if test == "ordering" and parameter not in ORDERINGS:
        raise ValueError(f"ordering must be one of {ORDERINGS}, got {parameter!r}")
    values = [as_number(v) for v in per_seed]
    seeds = tuple(range(len(values))) if seeds is None else tuple(seeds)
    if len(seeds) != len(values):
        raise ValueError(f"{len(values)} values for {len(seeds)} seeds")
    if reference is None and published is not None and test in ("relative", "absolute", "factor"):
        reference = published.value
    if test in ("relative", "absolute", "factor") and reference is None:
        raise ValueError(f"test {test!r} needs a reference value")
    reference = as_number(reference)
    # A tolerance or reference of inf passes anything and NaN fails anything: both are mistakes in the claim
    # itself (ours, not the runs'), so they raise instead of deciding the status.
    if test in ("relative", "absolute", "factor") and is_missing(reference):
        raise ValueError(f"test {test!r} needs a finite reference, got {reference!r}")
    floor = {"factor": 1.0, "relative": 0.0, "absolute": 0.0, "at_least": -math.inf, "at_most": -math.inf}.get(test)
    if floor is not None and not (isinstance(parameter, (int, float)) and math.isfinite(parameter)
                                  and parameter >= floor):
        raise ValueError(f"test {test!r} needs a finite parameter (>= 1 for factor, >= 0 for a tolerance), got "
                         f"{parameter!r}")
    missing = sum(is_missing(v) for v in values)
    notes = [note] if note else []
    if not values:
        status, count, aggregate, spread = "fail", 0, None, None
        notes.append("no runs")
    elif missing:
        status, count, spread = "fail", 0, None
        aggregate = median(values) if all(_shape(v) == _shape(values[0]) for v in values) else None
        notes.append(f"{missing} of {len(values)} runs missing (NaN, inf or None)")
    else:
        count = sum(holds(test, parameter, v, reference) for v in values)
        aggregate = median(values) if all(_shape(v) == _shape(values[0]) for v in values) else None
        spread = _spread(values) if aggregate is not None else None
        if rule == "all":
            ok = count == len(values)
        else:
            majority = count >= len(values) // 2 + 1
            ok = aggregate is not None and holds(test, parameter, aggregate, reference) and majority
        status = "pass" if ok else "fail"
        if ok and control is not None and control.status == "pass":
            status = "fail"
            notes.append("its control passes too, so the claim does not tell the phenomenon from its absence")
    return Claim(claim, status, test, parameter, reference, published, derived, seeds, tuple(values),
                 aggregate, spread, rule, count, missing, "; ".join(notes), control)


def _shape(value):
    return [_shape(v) for v in value] if isinstance(value, list) else None


def not_run(claim: str, published: Published | None, reason: str) -> Claim:
    """A claim we cannot check here (e.g. it needs data we do not ship): reported, never passed.

    Parameters
    ----------
    claim : str
        The claim in words.
    published : Published or None
        The paper's value, if it gives one.
    reason : str
        Why it is not run; the note reads ``not run: REASON``.

    Returns
    -------
    Claim
        Status ``not run``.
    """
    return Claim(claim, "not run", published=published, note=f"not run: {reason}")


# --- rendering ---------------------------------------------------------------------------------------------------

def _fmt(value, exact: bool = False) -> str:
    if value is None:
        return "—"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v, exact) for v in value) + "]"
    if isinstance(value, float):
        if exact:
            return repr(value)
        return "NaN" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def ours_text(c: Claim) -> str:
    """Our value in words: the one seed's value, or the median, min–max and every seed's value."""
    if not c.per_seed:
        return "—"
    if len(c.per_seed) == 1:
        return _fmt(c.per_seed[0])
    spread = "" if c.spread is None else f" ({_range(c.spread)})"
    return f"median {_fmt(c.aggregate)}{spread}; per seed {_fmt(list(c.per_seed))}"


def _range(spread) -> str:
    if isinstance(spread[0], list):
        return "[" + ", ".join(_range(s) for s in spread) + "]"
    return f"{_fmt(spread[0])}–{_fmt(spread[1])}"


def _paper(c: Claim) -> str:
    return "—" if c.published is None else c.published.render()


def _reference_cell(c: Claim) -> str:
    if c.derived:
        return f"{_fmt(c.reference)} (derived: {c.derived})"
    if c.reference is not None and c.published is not None:
        return "the paper's"
    return "—"


CONTROL_VERDICTS = {
    "discriminates": "fails, as it must",
    "does not discriminate": "PASSES (the claim does not discriminate)",
    "no numbers": "no numbers (its runs are missing or did not run): not a check",
}


def control_verdict(control: dict) -> str:
    """What a control (a claim's ``to_dict()``) shows: ``"discriminates"`` when it fails on numbers it has,
    ``"does not discriminate"`` when it passes, ``"no numbers"`` when it fails only because its values are missing
    (NaN, inf, None, no runs) or it did not run: failing for lack of numbers proves nothing.

    Parameters
    ----------
    control : dict
        The control claim as JSON-ready data (``status``, ``missing``, ``per_seed``).

    Returns
    -------
    str
        A key of ``CONTROL_VERDICTS``.
    """
    if control.get("status") == "pass":
        return "does not discriminate"
    if control.get("status") == "fail" and not control.get("missing") and control.get("per_seed"):
        return "discriminates"
    return "no numbers"


def _control_cell(c: Claim) -> str:
    if c.control is None:
        return "—"
    return f"{c.control.claim}: {ours_text(c.control)} — {CONTROL_VERDICTS[control_verdict(c.control.to_dict())]}"


def counts(claims: Sequence[Claim]) -> dict[str, int]:
    """How many claims have each status."""
    return {s: sum(c.status == s for c in claims) for s in STATUSES}


def markdown_rows(claims: Sequence[Claim]) -> list[str]:
    """The claims table of claims.md (header first; failures first, then passes, then not run)."""
    lines = ["| claim | paper (source) | reference | ours | test as applied | status | control | note |",
             "|---|---|---|---|---|---|---|---|"]
    for c in sorted(claims, key=lambda c: STATUSES.index(c.status) if c.status != "fail" else -1):
        cells = [c.claim, _paper(c), _reference_cell(c), ours_text(c), c.tolerance, c.status, _control_cell(c), c.note]
        lines.append("| " + " | ".join(x.replace("|", "\\|").replace("\n", " ") for x in cells) + " |")
    return lines


def write_claims(out_dir: str | Path, experiment: str, scale: str, claims: list[Claim], *,
                 seeds: Sequence[int] | None = None, started: str | None = None) -> tuple[Path, Path]:
    """Write claims.json and claims.md (failures first) into ``out_dir``, with the provenance of the run.

    Parameters
    ----------
    out_dir : str or Path
        The experiment's output directory (it must exist).
    experiment : str
        The experiment's name.
    scale : str
        The scale it ran at (``test``, ``quick``, ``paper``).
    claims : list of Claim
        The claims.
    seeds : sequence of int or None, optional
        The seeds used, recorded in the provenance. Default None.
    started : str or None, optional
        ISO time the experiment started (``provenance.now()``). Default None.

    Returns
    -------
    tuple of Path
        The paths of ``claims.json`` and ``claims.md``.
    """
    out_dir = Path(out_dir)
    record = provenance.collect(seeds=seeds, started=started)
    n = counts(claims)
    controls = [c.control for c in claims if c.control is not None]
    discriminating = sum(control_verdict(c.to_dict()) == "discriminates" for c in controls)
    results.write_json(out_dir / "claims.json", {
        "experiment": experiment, "scale": scale, "counts": n,
        "controls": {"total": len(controls), "failed_as_they_must": discriminating},
        "claims": [c.to_dict() for c in claims], "provenance": record})
    lines = [f"# {experiment} ({scale} scale)", "",
             f"{n['pass']} passed, {n['fail']} failed, {n['not run']} not run; controls: "
             f"{discriminating} of {len(controls)} fail as they must", "",
             f"Seeds: {_fmt(None if seeds is None else list(seeds))}. Commit {record['git_commit']}"
             f"{' (dirty)' if record['git_dirty'] else ''}, implicitrank {record['implicitrank']}, torch "
             f"{record['torch']}, {record['started']} – {record['ended']}.", "",
             "The paper column holds only values the paper gives (≈: read off a plot); references we derived are "
             "labelled so.", ""]
    if scale in SCALE_NOTES:
        lines += [SCALE_NOTES[scale], ""]
    lines += markdown_rows(claims)
    (out_dir / "claims.md").write_text("\n".join(lines) + "\n")
    return out_dir / "claims.json", out_dir / "claims.md"
