"""Published claims checked against our numbers: one row per claim, written as claims.json and claims.md.

A claim has the paper's value, ours, a tolerance in words, and a status: ``pass``, ``fail``, or
``not run`` (e.g. it needs data we do not ship: never silently passed).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import results

STATUSES = ("pass", "fail", "not run")


@dataclass(frozen=True)
class Claim:
    claim: str
    paper_value: str
    our_value: str
    tolerance: str
    status: str

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    @property
    def passed(self) -> bool:
        return self.status == "pass"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def check(claim: str, paper_value, our_value, tolerance: str, holds: bool) -> Claim:
    """A claim whose truth the caller computed (``holds``); values are formatted for the table.

    A NaN/None ``our_value`` fails: a missing number never passes.
    """
    missing = our_value is None or (isinstance(our_value, float) and not math.isfinite(our_value))
    return Claim(claim, _fmt(paper_value), _fmt(our_value), tolerance, "pass" if holds and not missing else "fail")


def check_close(claim: str, paper_value: float, our_value: float, rel: float) -> Claim:
    """Passes when |ours − paper| <= rel·|paper|."""
    holds = our_value is not None and abs(our_value - paper_value) <= rel * abs(paper_value)
    return check(claim, paper_value, our_value, f"within {rel:.0%}", holds)


def check_order_of_magnitude(claim: str, paper_value: float, our_value: float, factor: float = 10.0) -> Claim:
    """Passes when ours is within a factor ``factor`` of the paper's value (for errors spanning decades)."""
    holds = our_value is not None and our_value > 0 and paper_value / factor <= our_value <= paper_value * factor
    return check(claim, paper_value, our_value, f"within a factor {factor:g}", holds)


def not_run(claim: str, paper_value, reason: str) -> Claim:
    """A claim that was not checked (e.g. its data set was not given), with the reason shown in its place."""
    return Claim(claim, _fmt(paper_value), f"not run ({reason})", "—", "not run")


def write_claims(out_dir: str | Path, experiment: str, scale: str, claims: list[Claim]) -> tuple[Path, Path]:
    """Write claims.json and claims.md into ``out_dir``."""
    out_dir = Path(out_dir)
    rows = [asdict(c) | {"passed": c.passed} for c in claims]
    results.write_json(out_dir / "claims.json", {"experiment": experiment, "scale": scale, "claims": rows})
    counts = {s: sum(c.status == s for c in claims) for s in STATUSES}
    lines = [f"# {experiment} ({scale} scale)", "",
             f"{counts['pass']} passed, {counts['fail']} failed, {counts['not run']} not run", "",
             "| claim | paper | ours | tolerance | status |", "|---|---|---|---|---|"]
    lines += [f"| {c.claim} | {c.paper_value} | {c.our_value} | {c.tolerance} | {c.status} |" for c in claims]
    (out_dir / "claims.md").write_text("\n".join(lines) + "\n")
    return out_dir / "claims.json", out_dir / "claims.md"
