"""The report of a ``reproduce NAME`` or ``reproduce all`` directory: does each published claim hold?

A header with the provenance of the runs (version, commit, torch, device, dtype, threads, seeds, command, dates, wall
time per experiment), a summary of every experiment (failures first, each linking to its section), and per
experiment its figures beside its claims table (the paper's value with its source, ours with the spread over seeds,
the test applied, the status), then the notes that explain known differences (the claims' notes and the
experiment's docstring). Older ``claims.json`` files (text values, no provenance) render with what they hold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._page import cell, css_class, duration, file_figure, fmt, read_json_or_none, render, seconds_between, table

CLAIMS = "claims.json"
CLAIM_STATUSES = ("fail", "pass", "not run")  # the order of the claims tables: failures first
EXPERIMENT_ORDER = ("failed", "not run", "passed")  # the order of the summary: failures first
PROVENANCE_KEYS = ("implicitrank", "git_commit", "git_dirty", "torch", "python", "numpy", "device", "dtype",
                   "torch_threads", "torch_interop_threads", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "platform",
                   "seeds", "command", "started", "ended")
PER_EXPERIMENT_KEYS = ("seeds", "command", "started", "ended")


def is_reproduction(root: Path) -> bool:
    """Whether ``root`` holds one experiment's output (claims.json) or several (reproduce all)."""
    return (root / CLAIMS).is_file() or bool(_experiment_dirs(root))


def _known() -> dict[str, str]:
    from ..experiments.registry import MODULES

    return MODULES


def _scale_notes(scales: list[str]) -> list[str]:
    """What the reader must know about the small scales the experiments ran at (``claims.SCALE_NOTES``)."""
    from ..experiments.claims import SCALE_NOTES

    return [SCALE_NOTES[s] for s in scales if s in SCALE_NOTES]


def _experiment_dirs(root: Path) -> dict[str, Path]:
    known = _known()
    return {d.name: d for d in sorted(root.iterdir())
            if d.is_dir() and ((d / CLAIMS).is_file() or (d.name in known and (d / "log.txt").is_file()))}


def write(root: Path) -> Path:
    """Write ``root/report.html``; return its path."""
    root = Path(root)
    data, _ = read_json_or_none(root / CLAIMS)
    summary = isinstance(data, dict) and "experiments" in data  # ``reproduce all`` writes a summary there
    if (root / CLAIMS).is_file() and not summary:
        name = (data or {}).get("experiment") or root.name
        experiments = [gather_experiment(name, root, anchor="experiment-0")]
    else:
        experiments = [gather_experiment(n, d, f"experiment-{i}")
                       for i, (n, d) in enumerate(_experiment_dirs(root).items())]
    experiments.sort(key=lambda e: EXPERIMENT_ORDER.index(e["status"]))
    shared, varying = _split_provenance([e["provenance"] for e in experiments if e["provenance"]])
    for e in experiments:
        e["provenance_rows"] = {k: _show(k, e["provenance"].get(k)) for k in varying if k in e["provenance"]}
    claim_counts = {s: sum(e["counts"][s] for e in experiments) for s in CLAIM_STATUSES}
    experiment_counts = {s: sum(e["status"] == s for e in experiments) for s in EXPERIMENT_ORDER}
    scales = sorted({e["scale"] for e in experiments if e["scale"]})
    title = (f"Reproduction: {experiments[0]['name']}" if len(experiments) == 1
             else f"Reproduction of {len(experiments)} experiments")
    return render("reproduction.html", root, title=title, root=str(root), scales=", ".join(scales) or "—",
                  scale_notes=_scale_notes(scales),
                  provenance={k: _show(k, v) for k, v in shared.items()}, experiments=experiments,
                  summary=_summary_table(experiments), claim_counts=claim_counts,
                  experiment_counts=experiment_counts, total_seconds=duration(_total_seconds(experiments)))


def gather_experiment(name: str, directory: Path, anchor: str) -> dict[str, Any]:
    """One experiment's section: status, claims, figures, provenance, notes, and what is wrong with its output."""
    problems: list[str] = []
    data, problem = read_json_or_none(directory / CLAIMS)
    if problem:
        log = directory / "log.txt"
        tail = log.read_text(errors="replace")[-2000:] if log.is_file() else ""
        problems.append(f"{problem}: the experiment did not finish (it failed or is still running)"
                        + (f"; the end of its log.txt:\n{tail}" if tail else ""))
    claims = [claim_row(c) for c in (data or {}).get("claims", [])]
    claims.sort(key=lambda c: CLAIM_STATUSES.index(c["status"]) if c["status"] in CLAIM_STATUSES else 0)
    counts = {s: sum(c["status"] == s for c in claims) for s in CLAIM_STATUSES}
    if counts["fail"] or data is None:
        status = "failed"
    elif counts["pass"]:
        status = "passed"
    else:
        status = "not run"
    # its figures, and those of its parts one folder down (razin2022-locality: is-same-class/, pathfinder/)
    pngs = sorted(directory.glob("*.png")) + sorted(directory.glob("*/*.png"))
    figures = [file_figure(p, str(p.relative_to(directory))) for p in pngs]
    if data is not None and not figures:
        problems.append("no figure: this experiment's directory (or a folder in it) holds no PNG (it was not "
                        "written or was removed)")
    controls = [c["control"] for c in (data or {}).get("claims", []) if isinstance(c.get("control"), dict)]
    title, notes = _module_text(name)
    provenance = (data or {}).get("provenance") or {}
    seconds = seconds_between(provenance.get("started"), provenance.get("ended"))
    return {"name": name, "anchor": anchor, "status": status, "css": css_class(status), "counts": counts,
            "claims": claims, "figures": figures, "problems": problems, "title": title, "notes": notes,
            "scale": (data or {}).get("scale"), "provenance": provenance, "seconds": seconds,
            "wall_time": duration(seconds),
            "controls": {"total": len(controls),
                         "failing": sum(_verdict(c)[0] == "discriminates" for c in controls)},
            "directory": str(directory)}


def claim_row(c: dict[str, Any]) -> dict[str, Any]:
    """A claim of claims.json (either schema) as the cells of the claims table."""
    status = c.get("status") or ("pass" if c.get("passed") else "fail")
    published = c.get("published")
    if isinstance(published, dict):
        value = published.get("value")
        paper = published.get("text") or fmt(value)
        if published.get("approximate") and not isinstance(value, str):
            paper = f"≈{paper}"
        parts = [published.get(k) for k in ("source", "paper", "where", "how")]
        parts += [v for k, v in published.items() if k not in ("source", "paper", "where", "how", "value", "text",
                                                                  "approximate")]
        source = ", ".join(str(p) for p in parts if p not in (None, "", False, [])) or "—"
    elif published is not None:
        paper, source = fmt(published), "—"
    else:
        paper, source = str(c.get("paper_value", "—")), "—"
    reference = "—"
    if c.get("derived"):
        reference = f"{fmt(c.get('reference'))} (derived: {c['derived']})"
    per_seed = c.get("per_seed") or []
    seeds = c.get("seeds") or []
    if per_seed:
        n = len(per_seed)
        ours = fmt(per_seed[0]) if n == 1 else f"median {fmt(c.get('aggregate'))}"
        spread = "one seed" if n == 1 else f"{_range(c.get('spread'))} over {n} seeds"
        if c.get("holds_in") is not None and c.get("test"):
            spread += f"; holds in {c['holds_in']} of {n}"
        if c.get("missing"):
            spread += f"; {c['missing']} missing"
        per_seed_text = ", ".join(f"seed {s}: {fmt(v)}" for s, v in zip(seeds or range(n), per_seed))
    else:
        ours, spread, per_seed_text = str(c.get("our_value", "—")), "—", ""
    control = c.get("control")
    control_text, control_css = "", ""
    if isinstance(control, dict):
        verdict, text = _verdict(control)
        name = str(control.get("claim", ""))
        name = name if name.startswith("control") else f"control: {name}"
        control_text = f"{name}: {control.get('status')} ({text})"
        control_css = "pass" if verdict == "discriminates" else "fail"
    return {"claim": c.get("claim", "—"), "status": status, "css": css_class(status), "paper": paper,
            "source": source, "reference": reference, "ours": ours, "spread": spread, "per_seed": per_seed_text,
            "test": c.get("tolerance") or c.get("test") or "—", "note": c.get("note") or "",
            "control": control_text, "control_css": control_css}


def _verdict(control: dict) -> tuple[str, str]:
    """``claims.control_verdict`` of a control and its words, imported when a report has controls (the claims
    module brings torch, a second of start-up)."""
    from ..experiments.claims import CONTROL_VERDICTS, control_verdict

    verdict = control_verdict(control)
    return verdict, CONTROL_VERDICTS[verdict]


def _show(key: str, value: Any) -> str:
    """A provenance value as text: the command as the shell line it was, the rest as ``fmt`` gives it."""
    if key == "command" and isinstance(value, list):
        return " ".join(map(str, value))
    return fmt(value)


def _range(spread: Any) -> str:
    if not spread:
        return "—"
    if isinstance(spread[0], list):
        return "[" + ", ".join(_range(s) for s in spread) + "]"
    return f"{fmt(spread[0])}–{fmt(spread[1])}"


def _module_text(name: str) -> tuple[str, str]:
    """The experiment's title and docstring (its set-up and the known differences from the paper)."""
    try:
        from ..experiments.registry import experiment

        module = experiment(name)
    except (ValueError, ImportError):
        return "", ""
    return getattr(module, "TITLE", ""), (module.__doc__ or "").strip()


def _split_provenance(records: list[dict]) -> tuple[dict, list[str]]:
    """(the provenance shared by every experiment, the keys whose values differ or belong to one experiment)."""
    keys = [k for k in PROVENANCE_KEYS if any(k in r for r in records)]
    keys += sorted({k for r in records for k in r} - set(keys))
    shared, varying = {}, []
    for key in keys:
        values = [r.get(key) for r in records]
        if key not in PER_EXPERIMENT_KEYS and all(v == values[0] for v in values):
            shared[key] = values[0]
        else:
            varying.append(key)
    return shared, varying


def _total_seconds(experiments: list[dict]) -> float | None:
    """Wall time from the first start to the last end over the experiments (they may have run in parallel)."""
    starts = [e["provenance"].get("started") for e in experiments if e["provenance"].get("started")]
    ends = [e["provenance"].get("ended") for e in experiments if e["provenance"].get("ended")]
    return seconds_between(min(starts), max(ends)) if starts and ends else None


def _summary_table(experiments: list[dict]) -> dict:
    rows = [[cell(e["name"], href=f"#{e['anchor']}"), cell(e["status"], cls=f"status {e['css']}"),
             cell(e["counts"]["pass"]), cell(e["counts"]["fail"]), cell(e["counts"]["not run"]),
             cell(e["seconds"], text=e["wall_time"]), cell(e["scale"]), cell(e["title"])]
            for e in experiments]
    return table("summary", ["experiment", "status", "claims passed", "failed", "not run", "wall time", "scale",
                             "what it reproduces"], rows)
