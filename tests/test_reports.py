"""HTML reports, checked as a reader sees them: in headless Chromium (tests/browser.py), from the live page.

Each page's screenshot is saved under the test's tmp_path (``*.png``) to be looked at.
"""

import json
import shutil

import pytest
from browser import all_images_decoded, console_errors, images, open_page, screenshot

from implicitrank.cli import main
from implicitrank.reports import detect, write_report

EXPERIMENTS = ("arora2019-completion", "razin2021-incremental")  # the two fastest at test scale with figures
SWEEP_SPEC = """
name = "report-test"
[base]
shape = [8, 8]
rank = 1
num_observations = 40
max_steps = 300
lr = 0.05
checkpoint_every = 0
[axes]
depth = [2, 3]
init_scale = [1e-1, 1e-2, 1e-3]
seed = "0..1"
"""
TINY = ["--shape", "10", "8", "--rank", "2", "--num-observations", "50", "--max-steps", "200", "--no-progress"]


@pytest.fixture(scope="module")
def reproduction(tmp_path_factory):
    """Two experiments reproduced at test scale into one directory (the command writes the report)."""
    out = tmp_path_factory.mktemp("reproduce")
    for name in EXPERIMENTS:
        assert main(["reproduce", name, "--scale", "test", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A 12-run sweep (depth × init scale × seed) run by the command, which writes the report."""
    root = tmp_path_factory.mktemp("sweep")
    spec = root / "spec.toml"
    spec.write_text(SWEEP_SPEC)
    assert main(["sweep", str(spec), "--out", str(root / "out"), "--no-progress"]) == 0
    return root / "out"


def _claims(directory):
    return {d.name: json.loads((d / "claims.json").read_text())["claims"]
            for d in sorted(directory.iterdir()) if (d / "claims.json").is_file()}


def _rows(driver, selector):
    return driver.execute_script(
        f"return Array.from(document.querySelectorAll({json.dumps(selector)})).map(r => "
        "Array.from(r.cells).map(c => c.textContent.trim()))")


def _external_references(driver):
    """Every src/href of the page that is not embedded (data:) or an anchor in the page (#...): must be none."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('[src], [href]')).map(e => e.getAttribute('src') || "
        "e.getAttribute('href')).filter(u => !u.startsWith('data:') && !u.startsWith('#'))")


def _sort_by(driver, table_id, header):
    """Click the header named ``header`` of the table; return the column's values in the new row order."""
    column = driver.execute_script(
        f"var ths = Array.from(document.querySelectorAll('#{table_id} thead th'));"
        f"var i = ths.findIndex(th => th.textContent.trim() === {json.dumps(header)}); ths[i].click(); return i;")
    assert column >= 0, f"no column {header!r} in #{table_id}"
    return [row[column] for row in _rows(driver, f"#{table_id} tbody tr")]


def test_reproduction_report_shows_every_claim_and_counts_them(reproduction, chromium, tmp_path):
    claims = _claims(reproduction)
    assert set(claims) == set(EXPERIMENTS)
    page = open_page(chromium, reproduction / "report.html")
    assert all_images_decoded(page), images(page)
    assert len(images(page)) >= len(EXPERIMENTS)  # every experiment writes at least one figure
    assert _external_references(page) == []  # one self-contained file
    # One row per claim, with its status, in the section of its experiment.
    for name, rows in claims.items():
        section = page.execute_script(
            "return Array.from(document.querySelectorAll('section.experiment')).find("
            f"s => s.querySelector('h2').textContent.includes({json.dumps(name)})).id")
        shown = _rows(page, f"#{section} tr.claim")
        assert len(shown) == len(rows)
        assert sorted(r[-1] for r in shown) == sorted(c["status"] for c in rows)
    assert len(_rows(page, "tr.claim")) == sum(map(len, claims.values()))
    # The headline counts equal the claims'.
    for status in ("pass", "fail", "not run"):
        shown = page.execute_script(f"return document.querySelector('#verdict [data-count=\"{status}\"]').textContent")
        assert int(shown) == sum(c["status"] == status for rows in claims.values() for c in rows)
    # The summary has one row per experiment, failures first, each linking to its section.
    summary = _rows(page, "#summary tbody tr")
    assert sorted(r[0] for r in summary) == sorted(EXPERIMENTS)
    statuses = [r[1] for r in summary]
    assert statuses == sorted(statuses, key=("failed", "not run", "passed").index)
    links = page.execute_script("return Array.from(document.querySelectorAll('#summary a')).map(a => a.hash)")
    assert all(page.execute_script(f"return document.querySelector('{h}') !== null") for h in links)
    # Sorting a column reorders the rows, both ways.
    names = _sort_by(page, "summary", "experiment")
    assert names == sorted(EXPERIMENTS)
    assert _sort_by(page, "summary", "experiment") == sorted(EXPERIMENTS, reverse=True)
    assert console_errors(page) == []
    screenshot(page, tmp_path / "reproduction.png")


def test_a_figure_beside_the_claims_opens_at_full_size_on_a_click(reproduction, chromium, tmp_path):
    """The figures beside a claims table get half the page (a 9-panel figure there was illegible): a click shows
    one at its own size, up to the window's; a second click, or Esc, puts it back."""
    page = open_page(chromium, reproduction / "report.html")
    width = ("const i = document.querySelectorAll('.side-by-side figure img')[{k}]; {act} "
             "return [i.getBoundingClientRect().width, i.naturalWidth, window.innerWidth];")
    count = page.execute_script("return document.querySelectorAll('.side-by-side figure img').length")
    wide = max(range(count), key=lambda k: page.execute_script(width.format(k=k, act=""))[1])
    shrunk, natural, window = page.execute_script(width.format(k=wide, act=""))
    assert shrunk < min(natural, window) * 0.8, (shrunk, natural, window)  # the case this is for
    zoomed = page.execute_script(width.format(k=wide, act="i.click();"))[0]
    assert zoomed > shrunk * 1.5 and zoomed <= window, (zoomed, shrunk, window)
    screenshot(page, tmp_path / "zoomed.png")
    escape = "document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape'}));"
    assert page.execute_script(width.format(k=wide, act=escape))[0] == shrunk
    page.execute_script(width.format(k=wide, act="i.click();"))
    assert page.execute_script(width.format(k=wide, act="i.click();"))[0] == shrunk
    assert console_errors(page) == []


def test_sweep_report_sorts_its_table_and_plots_against_init_scale(sweep, chromium, tmp_path):
    page = open_page(chromium, sweep / "report.html")
    assert all_images_decoded(page)
    assert len(images(page)) == 2  # error and effective rank against init scale; final singular values
    assert _external_references(page) == []
    rows = _rows(page, "#collected tbody tr")
    assert len(rows) == 12
    shown = page.execute_script(
        "return Array.from(document.querySelectorAll('#verdict [data-status]')).map(s => s.textContent.trim())")
    assert sum(int(s.split()[0]) for s in shown) == 12
    for order in (sorted, lambda v: sorted(v, reverse=True)):
        scales = _sort_by(page, "collected", "init_scale")
        assert [float(s) for s in scales] == order([float(s) for s in scales])
    errors = _sort_by(page, "collected", "reconstruction error")
    assert [float(e) for e in errors] == sorted(float(e) for e in errors)
    assert console_errors(page) == []
    screenshot(page, tmp_path / "sweep.png")


def test_run_reports_draw_trajectories_with_summary_and_config(tmp_path, chromium, capsys):
    out = tmp_path / "mf"
    assert main(["mf", *TINY, "--seeds", "0..1", "--out", str(out)]) == 0
    assert main(["report", str(out)]) == 0
    run = next(p for p in sorted(out.iterdir()) if p.is_dir())
    assert main(["report", str(run)]) == 0
    assert capsys.readouterr().out.count("report.html") == 2
    assert detect(out) == detect(run) == "runs"
    page = open_page(chromium, out / "report.html")
    assert len(_rows(page, "#runs tbody tr")) == 2
    assert len(images(page)) == 4 and all_images_decoded(page)  # quantities and errors of each run
    page = open_page(chromium, run / "report.html")
    assert len(images(page)) == 2 and all_images_decoded(page)
    text = page.execute_script("return document.body.innerText")
    assert "init_scale" in text and "reconstruction_error" in text  # the config and the summary
    assert console_errors(page) == []
    screenshot(page, tmp_path / "run.png")


def test_a_run_report_embeds_the_runs_own_figures_until_its_metrics_change(tmp_path):
    """The report reuses quantities.png and errors.png while they are newer than metrics.jsonl (drawing them again
    was most of a report's time); a newer record, or a missing or damaged figure, is drawn anew."""
    import base64
    import os

    from implicitrank.results import METRICS

    out = tmp_path / "mf"
    assert main(["mf", *TINY, "--out", str(out)]) == 0
    run = next(p for p in sorted(out.iterdir()) if p.is_dir())
    own = [base64.b64encode((run / name).read_bytes()).decode() for name in ("quantities.png", "errors.png")]

    def embedded() -> tuple[int, int]:
        html = write_report(run).read_text()
        return html.count("data:image/png;base64,"), sum(uri in html for uri in own)

    assert embedded() == (2, 2)
    drawn = [(run / name).stat().st_mtime_ns for name in ("quantities.png", "errors.png")]
    later = max(drawn) + 10**9
    os.utime(run / METRICS, ns=(later, later))  # the run recorded more after drawing
    assert embedded() == (2, 0)
    # older than both figures again (not only than errors.png: on a loaded machine quantities.png, drawn first, was
    # more than a second older than errors.png, and this read it as stale)
    os.utime(run / METRICS, ns=(min(drawn) - 10**9,) * 2)
    assert embedded() == (2, 2)
    (run / "errors.png").write_bytes(b"")
    assert embedded() == (2, 0)
    (run / "errors.png").unlink()
    assert embedded() == (2, 0)


def test_a_damaged_directory_still_renders_and_says_what_is_wrong(reproduction, tmp_path, chromium):
    # A reproduction with a failed claim and a missing figure.
    damaged = tmp_path / "reproduction"
    shutil.copytree(reproduction, damaged)
    target = damaged / EXPERIMENTS[1] / "claims.json"
    record = json.loads(target.read_text())
    record["claims"][0]["status"] = "fail"
    target.write_text(json.dumps(record))
    for png in (damaged / EXPERIMENTS[1]).glob("*.png"):
        png.unlink()
    crashed = damaged / "razin2022-locality"  # a worker that died: its log, no claims
    crashed.mkdir()
    (crashed / "log.txt").write_text("Traceback (most recent call last):\nRuntimeError: out of memory\n")
    page = open_page(chromium, write_report(damaged))
    text = page.execute_script("return document.body.innerText")
    assert "no figure" in text
    assert "did not finish" in text and "RuntimeError: out of memory" in text
    summary = _rows(page, "#summary tbody tr")
    assert sorted(r[0] for r in summary[:2]) == sorted([EXPERIMENTS[1], "razin2022-locality"])
    assert [r[1] for r in summary] == ["failed", "failed", "passed"]
    assert all_images_decoded(page) and console_errors(page) == []
    screenshot(page, tmp_path / "damaged-reproduction.png")

    # A sweep with a diverged run and two failed runs.
    from implicitrank.sweeps.runner import run_sweep
    from implicitrank.sweeps.spec import parse_spec

    missing = str(tmp_path / "missing.npz")
    spec = parse_spec({"name": "damaged", "base": {"shape": [8, 8], "rank": 1, "num_observations": 40,
                                                   "max_steps": 200, "optimizer": "gd", "depth": 1,
                                                   "checkpoint_every": 0},
                       "axes": {"lr": [0.3, 1e4], "data": [None, missing]}})
    run_sweep(spec, tmp_path / "sweep", "serial", progress=False)
    page = open_page(chromium, write_report(tmp_path / "sweep"))
    problems = _rows(page, "#problems tbody tr")
    assert sorted(r[1] for r in problems) == ["diverged", "failed", "failed"]
    assert all("missing.npz" in r[3] for r in problems if r[1] == "failed")
    assert any("NaN/inf" in r[3] for r in problems if r[1] == "diverged")
    assert "left out of the plots" in page.execute_script("return document.body.innerText")
    assert console_errors(page) == []
    screenshot(page, tmp_path / "damaged-sweep.png")


def test_report_of_a_directory_holding_no_output_is_refused(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "dir:" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "absent")]) == 2


def test_richer_claims_render_paper_source_spread_test_and_control(tmp_path):
    """claims.json with published values, per-seed numbers, the test applied and a control (the richer record)."""
    experiment = tmp_path / "arora2019-completion"
    experiment.mkdir()
    published = {"value": 2.58e-5, "paper": "Arora et al. 2019", "where": "Table 1 (2000 observations)",
                 "how": "stated", "approximate": False}
    control = {"claim": "depth 1 recovers too", "status": "fail", "per_seed": [0.3, 0.31]}
    claim = {"claim": "depth 3 error", "status": "pass", "passed": True, "test": "factor", "parameter": 10.0,
             "tolerance": "2.58e-05 / 10.0 <= ours <= 2.58e-05 × 10.0; holds in 2 of 2 seeds",
             "published": published, "seeds": [0, 1], "per_seed": [3e-5, 5e-5], "aggregate": 4e-5,
             "spread": [3e-5, 5e-5], "rule": "all", "holds_in": 2, "missing": 0, "note": "", "control": control}
    provenance = {"implicitrank": "0.1.0", "git_commit": "abc123", "torch": "2.13.0", "device": "cpu",
                  "dtype": "float32", "torch_threads": 1, "seeds": [0, 1], "command": ["implicitrank", "reproduce"],
                  "started": "2026-12-02T06:00:00+00:00", "ended": "2026-12-02T06:01:30+00:00"}
    (experiment / "claims.json").write_text(json.dumps({"experiment": "arora2019-completion", "scale": "quick",
                                                        "claims": [claim], "provenance": provenance}))
    html = write_report(tmp_path).read_text()
    for shown in ("Arora et al. 2019, Table 1 (2000 observations), stated", "median 4e-05", "3e-05–5e-05 over 2 seeds",
                  "holds in 2 of 2", "seed 1: 5e-05", "2.58e-05 / 10.0 &lt;= ours", "fails, as it must",
                  "controls: 1 of 1 fail as they must", "abc123", "90 s"):
        assert shown in html, shown


def test_an_experiment_s_figures_one_folder_down_are_shown_by_their_path(tmp_path):
    """razin2022-locality writes its figures under is-same-class/ and pathfinder/: the report said "no figure" and
    showed none."""
    from implicitrank.reports.reproduction import gather_experiment

    experiment = tmp_path / "razin2022-locality"
    for task in ("is-same-class", "pathfinder"):
        (experiment / task).mkdir(parents=True)
        (experiment / task / "accuracy.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(16))
    (experiment / "claims.json").write_text(json.dumps({"experiment": "razin2022-locality", "scale": "test",
                                                        "claims": [], "provenance": {}}))
    section = gather_experiment("razin2022-locality", experiment, "razin2022-locality")
    assert [f["name"] for f in section["figures"]] == ["is-same-class/accuracy.png", "pathfinder/accuracy.png"]
    assert all(f["uri"] for f in section["figures"]) and not section["problems"]


def test_a_locality_output_reports_its_nested_runs_and_its_figure(tmp_path, chromium):
    """``report`` on a locality output raised describe_setup's TypeError on a run (its config has no init scale), and
    refused the output's own directory: its runs sit three levels down (lam=…/d=…/seed=…)."""
    out = tmp_path / "locality"
    main(["locality", "is-same-class", "--scale", "test", "--seeds", "0", "--distances", "0,40", "--reg-weights", "0",
          "--threads", "1", "--device", "cpu", "--no-progress", "--out", str(out)])  # exit 1: its claims fail here
    runs = sorted(p.parent for p in out.rglob("config.json"))
    assert len(runs) == 2
    assert main(["report", str(runs[0])]) == 0
    assert main(["report", str(out)]) == 0
    assert detect(out) == detect(runs[0]) == "runs"
    page = open_page(chromium, out / "report.html")
    names = [row[0] for row in _rows(page, "#runs tbody tr")]
    assert names == [str(r.relative_to(out)) for r in runs]  # each run by its path, not three "seed=0"
    text = page.execute_script("return document.body.innerText")
    assert "training run; lr" in text and "records epochs, not a factorization's steps" in text
    assert len(images(page)) == 1 and all_images_decoded(page)  # the sweep's accuracy.png
    assert console_errors(page) == []
    screenshot(page, tmp_path / "locality.png")
