"""The claims model: numbers stored as numbers, machine-readable tests applied per seed, missing numbers of any
type failing, tolerances printed as applied, published values with their sources, claims files with provenance."""

import json
import math

import numpy as np
import pytest
import torch

from implicitrank.experiments import Claim, evaluate, not_run, seed_list, write_claims
from implicitrank.experiments import published as published_values
from implicitrank.experiments._matrix_common import median, per_seed, worst
from implicitrank.experiments.claims import describe, is_missing
from implicitrank.experiments.published import A19_ERROR_2000, Published

NAN_FORMS = [math.nan, np.float32("nan"), np.float64("nan"), torch.tensor(math.nan), torch.tensor([1.0, math.nan]),
             [1.0, math.nan], [[1.0], [math.inf]], None, [1.0, None], np.array([[0.5, np.nan]])]


@pytest.mark.parametrize("value", NAN_FORMS, ids=repr)
def test_a_missing_number_of_any_numeric_type_fails_and_is_counted(value):
    """Today's check() treats only a Python float NaN or None as missing: NumPy, tensor and nested NaNs passed."""
    claim = evaluate("c", "at_least", -1e9, [value], seeds=[0])
    assert claim.status == "fail" and claim.missing == 1 and "1 of 1 runs missing" in claim.note


def test_a_nan_in_one_run_of_many_fails_the_claim():
    values = [1e-5, 2e-5, np.float32("nan"), 1e-5]
    claim = evaluate("every depth recovers", "at_most", 1e-3, values, seeds=[0, 1, 2, 3])
    assert claim.status == "fail" and "1 of 4 runs missing" in claim.note
    assert evaluate("c", "at_most", 1e-3, values, seeds=[0, 1, 2, 3], rule="median").status == "fail"


def test_aggregations_never_drop_nan():
    """The old median kept only the finite values (median([1e-5, nan, nan]) was 1e-5) and max([x, nan]) is x."""
    assert math.isnan(median([1e-5, math.nan, math.nan])) and math.isnan(median([None, 1.0]))
    assert math.isnan(worst([1e-5, math.nan])) and math.isnan(worst([math.nan, 1e-5]))  # order does not matter
    rows = [{"seed": 0, "depth": 3, "error": 1e-5}, {"seed": 0, "depth": 4, "error": math.nan}]
    assert math.isnan(per_seed(rows, "error", [0])[0]) and math.isnan(per_seed(rows, "error", [1])[0])


@pytest.mark.parametrize("depths", [[3, 4], [4, 3]])
def test_every_depth_recovers_fails_when_every_depth_four_run_is_nan_whatever_the_order_of_depths(depths):
    errors = {3: [1e-5, 2e-5, 3e-5], 4: [math.nan] * 3}
    per_depth = [list(x) for x in zip(*(errors[d] for d in depths))]
    claim = evaluate("every depth recovers", "at_most", 1e-3, per_depth, seeds=[0, 1, 2])
    assert claim.status == "fail" and "3 of 3 runs missing" in claim.note


def test_values_are_stored_as_numbers_and_the_tolerance_is_printed_as_applied():
    """Today check_close(1.0, 1.0004, rel=1e-4) records 'fail | 1 | 1 | within 0%'."""
    claim = evaluate("c", "relative", 1e-4, [1.0004], reference=1.0)
    assert claim.status == "fail" and claim.per_seed == (1.0004,) and claim.reference == 1.0
    assert "0.0001" in claim.tolerance and "0%" not in claim.tolerance
    assert describe("at_least", 5.0) == "every value >= 5.0"
    assert evaluate("c", "relative", 1e-4, [1.00009], reference=1.0).status == "pass"
    claim = evaluate("c", "absolute", 3.0, [62.0, 58.5, 65.0], seeds=[0, 1, 2], reference=61.2)
    assert claim.status == "fail" and claim.holds_in == 2 and "|ours − 61.2| <= 3.0" in claim.tolerance


def test_the_tests_and_the_seed_rules():
    assert evaluate("c", "factor", 10.0, [2e-4], reference=2.58e-5).status == "pass"
    assert evaluate("c", "ordering", "increasing", [[1.0, 2.0, 3.0]]).status == "pass"
    assert evaluate("c", "ordering", "increasing", [[1.0, 1.0, 3.0]]).status == "fail"
    assert evaluate("c", "ordering", "non-increasing", [[3.0, 3.0, 1.0]]).status == "pass"
    assert evaluate("c", "less", None, [[1.0, 2.0, 5.0]]).status == "pass"
    assert evaluate("c", "less", None, [[2.0, 2.0]]).status == "fail"
    assert evaluate("c", "equal", 1.0, [[1.0, 1.0]]).status == "pass"
    two_of_three = [0.5, 0.8, 2.0]
    all_seeds = evaluate("c", "at_most", 1.0, two_of_three, seeds=[0, 1, 2])
    assert all_seeds.status == "fail" and all_seeds.holds_in == 2 and "needs all 3 of 3 seeds" in all_seeds.tolerance
    on_median = evaluate("c", "at_most", 1.0, two_of_three, seeds=[0, 1, 2], rule="median")
    assert on_median.status == "pass" and "needs the median and >= 2 of 3 seeds" in on_median.tolerance
    assert on_median.aggregate == 0.8 and on_median.spread == [0.5, 2.0]
    assert evaluate("c", "at_most", 1.0, [0.5, 2.0, 3.0], rule="median").status == "fail"
    with pytest.raises(ValueError, match="test"):
        evaluate("c", "roughly", 1.0, [1.0])
    with pytest.raises(ValueError, match="reference"):
        evaluate("c", "relative", 0.1, [1.0])


def test_seeds_are_a_count_or_the_seeds_themselves():
    assert seed_list(None, 3) == (0, 1, 2) and seed_list(2, 3) == (0, 1) and seed_list([4, 7], 3) == (4, 7)
    assert seed_list((0, 1, 2, 3, 4), 1) == (0, 1, 2, 3, 4)
    for bad in (0, [], [1, 1], [-1]):
        with pytest.raises(ValueError, match="seeds"):
            seed_list(bad, 3)


def test_a_factor_band_no_longer_accepts_the_neighbouring_method():
    """A factor-10 band accepted the nuclear-norm error 1.06e-1 for the depth-2 claim 5.92e-2; factor 1.5 does not."""
    depth2, nuclear = A19_ERROR_2000[2], A19_ERROR_2000["nuclear norm"]
    assert evaluate("depth 2", "factor", 10.0, [nuclear.value], published=depth2).status == "pass"  # the old band
    assert evaluate("depth 2", "factor", 1.5, [nuclear.value], published=depth2).status == "fail"
    assert evaluate("depth 2", "factor", 1.5, [6.5e-2], published=depth2).status == "pass"


def test_every_published_value_names_its_paper_place_and_how_it_was_obtained():
    values = [v for v in vars(published_values).values() if isinstance(v, Published)]
    values += [v for d in vars(published_values).values() if isinstance(d, dict) for v in d.values()
               if isinstance(v, Published)]
    assert len(values) > 40
    papers = {published_values.ARORA2019, published_values.RAZIN2020, published_values.RAZIN2021,
              published_values.RAZIN2022}
    for v in values:
        assert v.paper in papers and v.where and v.how in ("stated", "read off a plot")
        assert "re-run" not in str(v.value) and "papers.md" not in v.where
    with pytest.raises(ValueError, match="how"):
        Published(1.0, published_values.ARORA2019, "Figure 1", "derived")
    # papers.md states the natural-data errors as numbers, all but the random variants' ≈0.09 and ≈0.15
    natural = published_values.R21_NATURAL_PUBLISHED
    assert natural[("mnist", "original", 1, "train")].how == "stated"
    assert natural[("mnist", "random-labels", 1, "train")].how == "read off a plot"
    assert sum(v.how == "stated" for v in natural.values()) == len(natural) - 4


def test_derived_references_are_labelled_and_never_shown_as_the_papers(tmp_path):
    derived = evaluate("|w11| follows 1/sqrt(2 loss)", "relative", 0.1, [22.0], reference=22.36,
                       derived="1/√(2·1e-3)")
    paper = evaluate("depth 3 error", "factor", 3.0, [3e-5], published=A19_ERROR_2000[3])
    write_claims(tmp_path, "x", "test", [derived, paper])
    md = (tmp_path / "claims.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| |w11|") or "1/sqrt(2 loss)" in line)
    cells = [c.strip() for c in row.split(" | ")]
    assert cells[1] == "—" and "derived: 1/√(2·1e-3)" in cells[2]
    assert "2.58e-05 (Arora et al. 2019, Table 1 (2000 observations, completion), stated)" in md
    data = json.loads((tmp_path / "claims.json").read_text())["claims"]
    assert data[0]["published"] is None and data[0]["derived"] == "1/√(2·1e-3)"
    assert data[1]["published"]["value"] == 2.58e-5 and data[1]["published"]["how"] == "stated"


@pytest.mark.parametrize("test, parameter, reference", [
    ("relative", 0.1, math.inf), ("relative", 0.1, -math.inf), ("absolute", 1.0, math.nan), ("relative", math.inf, 1.0),
    ("at_most", math.inf, None), ("at_least", -math.inf, None), ("factor", 0.5, 1.0), ("relative", -0.1, 1.0),
    ("at_most", None, None),
])
def test_a_tolerance_or_reference_that_decides_nothing_is_refused(test, parameter, reference):
    """A reference of inf passed 0.5 and 7.0 under 'relative'; at_most inf passes anything; a factor below 1 or a
    negative tolerance fails even the reference itself."""
    with pytest.raises(ValueError, match="finite"):
        evaluate("c", test, parameter, [0.5, 7.0], seeds=[0, 1], reference=reference)


def test_a_control_without_numbers_is_no_check_rather_than_failing_as_it_must(tmp_path):
    """A control fails when its runs are missing too; that proves nothing about the claim, so it is neither counted
    among the controls that fail as they must nor shown so (it read "fails, as it must" before)."""
    from implicitrank.experiments.claims import control_verdict
    from implicitrank.reports.reproduction import gather_experiment

    missing = evaluate("control: diverged", "at_most", 1e-3, [math.nan, math.nan], seeds=[0, 1])
    empty = evaluate("control: no runs", "at_most", 1e-3, [], seeds=[])
    real = evaluate("control: depth 1", "at_most", 1e-3, [0.5, 0.6], seeds=[0, 1])
    assert [control_verdict(c.to_dict()) for c in (missing, empty, real)] == ["no numbers", "no numbers",
                                                                               "discriminates"]
    claims = [evaluate(f"claim {k}", "at_most", 1e-3, [1e-4, 2e-4], seeds=[0, 1], control=c)
              for k, c in enumerate((missing, empty, real))]
    write_claims(tmp_path / "x", "demo-exp", "test", claims, seeds=[0, 1])
    data = json.loads((tmp_path / "x" / "claims.json").read_text())
    assert data["controls"] == {"total": 3, "failed_as_they_must": 1}
    md = (tmp_path / "x" / "claims.md").read_text()
    assert "controls: 1 of 3 fail as they must" in md and md.count("no numbers") == 2
    section = gather_experiment("demo-exp", tmp_path / "x", "demo-exp")
    assert section["controls"]["failing"] == 1
    assert [c["control_css"] for c in section["claims"]] == ["fail", "fail", "pass"]


def test_a_claim_whose_control_passes_too_fails():
    """The control is the same test where the phenomenon must not appear; when it passes, the claim's pass shows
    nothing (razin2022-locality at test scale: "near chance at the far difficulty" passed for a network that learned
    nothing anywhere, and so did its control), so the claim fails and says why."""
    passing = evaluate("control: learns nothing", "absolute", 5.0, [50.0, 50.0], seeds=[0, 1], reference=50.0)
    failing = evaluate("control: learns", "absolute", 5.0, [90.0, 92.0], seeds=[0, 1], reference=50.0)
    for control, status in ((passing, "fail"), (failing, "pass"), (None, "pass")):
        claim = evaluate("near chance", "absolute", 5.0, [50.0, 51.0], seeds=[0, 1], reference=50.0, control=control)
        assert claim.status == status and claim.holds_in == 2
        assert ("control passes too" in claim.note) == (status == "fail")
    missing = evaluate("control: diverged", "absolute", 5.0, [math.nan, math.nan], seeds=[0, 1], reference=50.0)
    assert evaluate("near chance", "absolute", 5.0, [50.0], seeds=[0], reference=50.0, control=missing).status == "pass"


def test_claims_files_list_failures_first_with_counts_controls_and_provenance(tmp_path):
    control = evaluate("control: depth 1", "at_most", 1e-3, [0.5, 0.6], seeds=[0, 1])
    claims = [evaluate("good", "at_most", 1e-3, [1e-4, 2e-4], seeds=[0, 1], control=control),
              evaluate("bad", "at_least", 5.0, [1.0, 7.0], seeds=[0, 1]),
              not_run("movielens", A19_ERROR_2000[3], "needs --data")]
    write_claims(tmp_path, "demo-exp", "test", claims, seeds=[0, 1])
    data = json.loads((tmp_path / "claims.json").read_text())
    assert [c["status"] for c in data["claims"]] == ["pass", "fail", "not run"]
    assert [c["passed"] for c in data["claims"]] == [True, False, False]
    assert data["counts"] == {"pass": 1, "fail": 1, "not run": 1}
    assert data["claims"][0]["control"]["status"] == "fail" and data["controls"]["failed_as_they_must"] == 1
    assert data["claims"][1]["per_seed"] == [1.0, 7.0] and data["claims"][1]["holds_in"] == 1
    assert data["provenance"]["seeds"] == [0, 1] and data["provenance"]["git_commit"] is None or len(
        data["provenance"]["git_commit"]) == 40
    md = (tmp_path / "claims.md").read_text()
    assert "1 passed, 1 failed, 1 not run; controls: 1 of 1 fail as they must" in md
    rows = [line for line in md.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert rows[0].startswith("| bad |") and "every value >= 5.0; needs all 2 of 2 seeds" in rows[0]
    assert "fails, as it must" in rows[1] and "not run: needs --data" in rows[2]


def test_bad_status_is_rejected():
    with pytest.raises(ValueError, match="status"):
        Claim("c", "maybe")


def test_is_missing_accepts_every_numeric_form():
    assert not is_missing(np.float32(1.0)) and not is_missing(torch.tensor([[1.0, 2.0]])) and not is_missing([1, 2])
    assert is_missing([]) and is_missing(torch.tensor(math.inf))


def test_a_ratio_with_a_missing_or_zero_denominator_is_a_missing_number():
    """The margin claims' ratios: a zero denominator raised ZeroDivisionError (razin2021-incremental) or gave an inf
    that read as a huge margin; now it, like a missing operand, is NaN, which fails the claim."""
    from implicitrank.experiments.claims import ratio

    assert ratio(3.0, 2.0) == 1.5 and ratio(torch.tensor(3.0), 2) == 1.5
    assert all(math.isnan(ratio(a, b)) for a, b in ((1.0, 0.0), (1.0, None), (math.nan, 1.0), (1.0, math.inf)))
    assert evaluate("margin", "at_least", 1.5, [ratio(1.0, 0.0)], seeds=[0]).status == "fail"
