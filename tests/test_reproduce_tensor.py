"""The tensor experiments of ``implicitrank reproduce`` at their test scale: each writes its figures, the
table behind them and claims, and its claims hold where the phenomenon survives the size."""

import gzip
import json
import math

import numpy as np
import pytest
import torch

from implicitrank.experiments import MODULES, experiment, reproduce
from implicitrank.experiments._tensor_common import epsilon_rank_lower_bound, takeoff_steps
from implicitrank.experiments.locality import setup_for
from implicitrank.experiments.razin2021_natural import find_idx_sets
from implicitrank.experiments.razin2022_locality import run_task, seed_claims
from implicitrank.tasks.tensors import low_rank_tensor

TENSOR_EXPERIMENTS = ("razin2020-tensor-completion", "razin2021-incremental", "razin2021-natural",
                      "razin2022-dynamics", "razin2022-locality")


def statuses(claims) -> dict[str, str]:
    return {c.claim: c.status for c in claims}


def status(claims, start: str) -> str:
    """The status of the one claim whose text starts with ``start``."""
    found = [c for c in claims if c.claim.startswith(start)]
    assert len(found) == 1, (start, [c.claim for c in claims])
    return found[0].status


def assert_controls_fail(claims) -> None:
    """The experiment's main claims carry a control where the phenomenon must not appear; each fails there."""
    controlled = [c for c in claims if c.control is not None]
    assert controlled and all(c.control.status == "fail" for c in controlled), [
        (c.claim, c.control.status) for c in controlled]


def test_every_tensor_experiment_is_registered_with_the_module_interface():
    for name in TENSOR_EXPERIMENTS:
        assert name in MODULES
        module = experiment(name)
        assert module.NAME == name and module.TITLE and set(module.SCALES) == {"test", "quick", "paper"}


def test_tensor_completion_from_small_init_learns_rank_one_and_recovers_from_few_observations(tmp_path):
    claims = reproduce("razin2020-tensor-completion", "test", tmp_path)
    assert not [c for c in claims if c.status == "fail"], [c for c in claims if c.status == "fail"]
    ran = statuses(claims)
    assert ran["order 3, rank 1, init 1e-3: learned tensor rank at every # observations (median over seeds, as the "
               "paper plots)"] == "pass"
    assert ran["order 3, rank 1, init 1e-3: reconstruction error at 200 observations"] == "pass"
    assert ran["order 4, rank 1, init 1e-3: reconstruction error from 1000 observations (median)"] == "not run"
    assert_controls_fail(claims)
    for name in ("runs.csv", "order3_rank1.png", "claims.json", "claims.md"):
        assert (tmp_path / name).is_file()
    header = (tmp_path / "runs.csv").read_text().splitlines()[0].split(",")
    assert {"observations", "method", "reconstruction_error", "tensor_rank"} <= set(header)


def test_cp_components_are_learned_one_at_a_time_and_smaller_init_recovers_better(tmp_path):
    claims = reproduce("razin2021-incremental", "test", tmp_path)
    assert status(claims, "init std 0.001: number of components learned (final norm > 10% of the largest)") == "pass"
    assert status(claims, "init std 0.001: the 3 largest components take off one at a time") == "pass"
    assert status(claims, "smaller init ⇒ lower final error") == "pass"
    assert_controls_fail(claims)
    assert all(c.status == "not run" for c in claims if "final reconstruction error" in c.claim)  # not the paper's size
    # each component's take-off and final norm is its own row with its own paper value (the row showed all five)
    from implicitrank.experiments.published import R21_FINAL_NORMS, R21_TAKEOFFS

    for k in range(5):
        for what, paper in (("take-off step", R21_TAKEOFFS), ("final norm", R21_FINAL_NORMS)):
            (row,) = [c for c in claims if c.claim == f"init std 5e-3: {what} of component {k + 1}"]
            assert row.status == "not run" and row.published.value == paper.value[k], row
    for name in ("curves.csv", "component_norms.png", "reconstruction_error.png"):
        assert (tmp_path / name).is_file()


def test_matrix_cp_and_hierarchical_factorizations_all_learn_incrementally(tmp_path):
    claims = reproduce("razin2022-dynamics", "test", tmp_path)
    assert not [c for c in claims if c.status == "fail"], [c for c in claims if c.status == "fail"]
    for kind in ("matrix: singular values", "cp: component norms", "hierarchical: root local component norms"):
        assert status(claims, f"{kind}: learned one at a time") == "pass"
    assert status(claims, "HT: the matricization is low-rank at the tree node, not at a non-node") == "pass"
    assert_controls_fail(claims)
    ht = [c for c in claims if c.claim.startswith("hierarchical") and c.status == "not run"]
    assert len(ht) == 3 and all("not comparable" in c.note and c.published is not None for c in ht)
    for name in ("curves.csv", "dynamics.png", "hierarchical_matricizations.png"):
        assert (tmp_path / name).is_file()


def test_the_matrix_panel_init_is_the_authors_per_entry_factor_std():
    from implicitrank.experiments.razin2022_dynamics import PAPER_PANELS
    from implicitrank.factorizations import MatrixFactorization, generators

    panel = PAPER_PANELS[0]
    assert panel.kind == "matrix"
    model = MatrixFactorization(*panel.shape, depth=3)
    params = model.init(1, model.scale_for_entry_std(panel.init_scale), generators([0]), dtype=torch.float64)
    for factor in params:
        assert abs(float(factor.std()) / panel.init_scale - 1) < 0.03  # 4096 entries: std within ~2%


def test_digits_are_fit_at_rank_one_random_data_is_not_and_mnist_claims_need_data(tmp_path):
    claims = reproduce("razin2021-natural", "test", tmp_path)
    digits = [c for c in claims if c.claim.startswith("digits")]
    assert len(digits) == 5 and all(c.status == "pass" for c in digits), digits
    assert_controls_fail(claims)
    # random data staying at the label variance holds for a model that learns nothing: its control is the original
    stays = next(c for c in digits if "stay at the label variance" in c.claim)
    assert stays.control is not None and stays.control.claim.startswith("control: digits, original")
    gap = next(c for c in digits if "test error close to train error" in c.claim)  # no control can fail for it
    assert "a model that learns nothing passes this too" in gap.note
    mnist = [c for c in claims if not c.claim.startswith("digits")]
    assert mnist and all(c.status == "not run" and "needs --data" in c.note for c in mnist)
    assert (tmp_path / "digits.png").is_file() and (tmp_path / "errors.csv").is_file()
    written = json.loads((tmp_path / "claims.json").read_text())["claims"]
    assert [c["status"] for c in written].count("not run") == len(mnist)


def write_idx(path, array: np.ndarray) -> None:
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.tobytes()))


def test_mnist_claims_are_checked_when_idx_files_are_given(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "data" / "mnist"
    data.mkdir(parents=True)
    for split, count in (("train", 60), ("t10k", 20)):
        labels = np.arange(count, dtype=np.uint8) % 10
        images = (rng.random((count, 28, 28)) * 255).astype(np.uint8)
        write_idx(data / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(data / f"{split}-labels-idx1-ubyte.gz", labels)
    assert set(find_idx_sets(str(tmp_path / "data"))) == {"mnist"}
    claims = reproduce("razin2021-natural", "test", tmp_path / "out", data=str(tmp_path / "data"))
    mnist = [c for c in claims if c.claim.startswith("mnist")]
    assert mnist and {c.status for c in mnist} <= {"pass", "fail", "not run"}
    assert any(c.status != "not run" for c in mnist)  # R=1 is in the test sweep: checked, never skipped
    assert all(c.status == "not run" for c in claims if c.claim.startswith("fashion-mnist"))
    with pytest.raises(FileNotFoundError, match="data"):
        find_idx_sets(str(tmp_path / "out"))


def test_locality_claims_are_evaluated_per_seed_and_a_missing_accuracy_fails(tmp_path):
    setup = setup_for("pathfinder", "quick")
    accuracy = {(0.0, 2): (0.97, 0.49, 0.96), (0.0, 6): (0.50, 0.51, 0.49), (3.0, 2): (0.97, 0.98, 0.97),
                (3.0, 6): (0.70, 0.50, 0.60)}
    rows = [{"reg_weight": lam, "difficulty": d, "seed": s, "last_test_acc": acc[s]}
            for (lam, d), acc in accuracy.items() for s in range(3)]
    claims = seed_claims(setup, rows, (0, 1, 2), "quick")
    fall = next(c for c in claims if "falls" in c.claim)
    assert fall.status == "pass" and fall.per_seed == pytest.approx((47.0, -2.0, 47.0)) and fall.holds_in == 2
    assert "needs the median and >= 2 of 3" in fall.tolerance  # the paper reports means over seeds
    # a difference claim shows the paper's difference, not a whole curve (its paper column listed all of λ = 0)
    from implicitrank.experiments.locality import PUBLISHED

    paper = PUBLISHED["pathfinder"]
    near, far, top = min(paper[0.0]), max(paper[0.0]), max(paper)
    assert fall.published.value == round(paper[0.0][near] - paper[0.0][far], 1)
    assert next(c for c in claims if "recovers" in c.claim).published.value == round(
        paper[top][far] - paper[0.0][far], 1)
    assert next(c for c in claims if "unchanged" in c.claim).published.value == round(
        paper[top][near] - paper[0.0][near], 1)
    gain = next(c for c in claims if "recovers" in c.claim)
    assert gain.status == "pass" and gain.control.status == "fail"  # no gain at L = 2, where λ = 0 learns already
    assert gain.control.per_seed == pytest.approx((0.0, 49.0, 1.0))
    # "near chance at L = 6" and "λ leaves L = 2 unchanged" also hold for a network that learns nothing: their
    # control (λ = 0 near chance at L = 2 too) fails here, where λ = 0 learns L = 2 in 2 of 3 seeds ...
    vacuous_if_passing = [c for c in claims if "near chance (%)" in c.claim or "unchanged" in c.claim]
    assert len(vacuous_if_passing) == 2 and all(c.status == "pass" for c in vacuous_if_passing)
    assert all(c.control.status == "fail" and c.control.per_seed == pytest.approx((97.0, 49.0, 96.0))
               for c in vacuous_if_passing)
    # ... and passes where every run is at chance: both claims hold there too, and fail, as not discriminating
    nothing = seed_claims(setup, [r | {"last_test_acc": 0.5} for r in rows], (0, 1, 2), "quick")
    flagged = {c.claim: (c.status, c.control.status, c.holds_in) for c in nothing if c.control is not None}
    assert [v for k, v in flagged.items() if "near chance (%)" in k or "unchanged" in k] == [("fail", "pass", 3)] * 2
    weaker_near = [r | {"last_test_acc": r["last_test_acc"] - 0.1} if (r["reg_weight"], r["difficulty"]) == (0.0, 2)
                   else r for r in rows]  # λ = 3 now gains 10, 59 and 11 points at L = 2 too
    control = next(c for c in seed_claims(setup, weaker_near, (0, 1, 2), "quick") if "recovers" in c.claim).control
    assert control.status == "pass"  # a regularizer that helps everywhere does not show locality restored
    rows[-1]["last_test_acc"] = math.nan
    gain = next(c for c in seed_claims(setup, rows, (0, 1, 2), "quick") if "recovers" in c.claim)
    assert gain.status == "fail" and "1 of 3 runs missing" in gain.note
    claims = run_task("pathfinder", "test", tmp_path, 1, None)
    written = (tmp_path / "pathfinder" / "claims.csv").read_text().splitlines()
    # claims.csv holds the figure's claims and their premise (λ = 0 above chance at L = 2), which the per-seed
    # claims carry as the control of the two claims that presume it
    assert len(claims) + 1 == len(written) - 1 and all(c.claim.startswith("pathfinder: ") for c in claims)
    assert (tmp_path / "pathfinder" / "accuracy.png").is_file()
    assert_controls_fail([c for c in claims if "recovers" in c.claim])
    # At test scale (64 images, 2 epochs) the chance claims' control says whether λ = 0 learned L = 2 at all
    chance = [c for c in claims if c.control is not None and "near chance too" in c.control.claim]
    learned = abs(chance[0].control.aggregate - 50) > 5
    assert len(chance) == 2 and all(c.control.status == ("fail" if learned else "pass") for c in chance)


def test_epsilon_rank_lower_bound_is_the_rank_of_an_exact_low_rank_tensor():
    for rank in (1, 3):
        w = low_rank_tensor((5, 6, 7), rank, seed=1)
        assert epsilon_rank_lower_bound(w, 1e-12) == rank
    w4 = low_rank_tensor((4, 4, 4, 4), 2, seed=0)
    assert epsilon_rank_lower_bound(w4, 1e-12) == 2
    assert epsilon_rank_lower_bound(w4, 1.0) == 0  # a budget above ||W||² allows the zero tensor


def test_takeoff_step_is_when_a_curve_first_reaches_half_its_final_value():
    curves = torch.tensor([[0.0, 0.0], [0.6, 0.1], [1.0, 0.4], [1.0, 1.0]])
    assert takeoff_steps([0, 10, 20, 30], curves) == [10, 30]
    curves[-1, 1] = math.nan  # the run diverged: no take-off to report (it read -1, then a spacing of 31 steps)
    assert takeoff_steps([0, 10, 20, 30], curves)[0] == 10 and math.isnan(takeoff_steps([0, 10, 20, 30], curves)[1])


def test_a_diverged_run_has_no_count_of_learned_components():
    """NaN final norms counted as "not learned" (0), which a control or an at-most claim could take as a result."""
    from implicitrank.experiments.razin2021_incremental import _learned as learned_cp
    from implicitrank.experiments.razin2022_dynamics import _learned as learned_hierarchical

    curve = torch.tensor([[0.1, 0.1, 0.1], [3.0, 2.0, 0.01]])
    assert learned_cp(curve) == 2.0 and learned_hierarchical(curve) == 2.0
    curve[-1, 2] = math.nan
    assert math.isnan(learned_cp(curve)) and math.isnan(learned_hierarchical(curve))


def test_a_tensor_completion_run_that_diverged_has_no_rank_and_the_others_go_on():
    """A run whose tensor is NaN stopped the experiment (LinAlgError from the rank bound's SVD); one that grew huge
    but finite got a tensor rank of −1 (its pruning tolerance fell below rounding)."""
    import dataclasses

    from implicitrank.experiments.razin2020_tensor_completion import SCALES, Panel, _runs

    panel = Panel(3, 1, (50,))
    for lr, diverges in ((1e20, True), (1e8, False)):
        setup = dataclasses.replace(SCALES["test"], lr=lr, max_steps=50, init_stds=(1.0,))
        run, baseline = _runs(setup, panel, 50, (0,), progress=False)
        assert math.isnan(run["tensor_rank"]) == math.isnan(run["reconstruction_error"]) == diverges
        assert diverges or run["tensor_rank"] >= 1
        assert baseline["method"] == "zero-filled baseline" and baseline["tensor_rank"] >= 1



def test_a_tensor_completion_run_stopped_before_fitting_has_no_learned_rank_in_the_claims():
    """A run the step cap stops with its observations unfit sits near rank 1 (it has just left the origin), so the
    claim "learned tensor rank 1 at every # observations" passed on it: 200 steps from init 1e-3 leave the 50- and
    200-observation runs at train MSE ~1e-4, rank 1. Its rank is now missing, and the claim says why."""
    import dataclasses

    from implicitrank.experiments.razin2020_tensor_completion import SCALES, _runs, claims

    setup = SCALES["test"]
    panel = setup.panels[0]
    for max_steps, fits in ((200, False), (setup.max_steps, True)):
        short = dataclasses.replace(setup, max_steps=max_steps)
        rows = [row for m in panel.observations for row in _runs(short, panel, m, (0,), progress=False)]
        trained = [r for r in rows if r["method"] != "zero-filled baseline"]
        assert all((r["train_loss"] < setup.loss_threshold) == fits for r in trained)
        learned = next(c for c in claims(short, rows, (0,)) if "learned tensor rank at every" in c.claim)
        if fits:
            assert learned.status == "pass" and not learned.missing and not learned.note
        else:
            assert all(r["tensor_rank"] == 1 for r in trained)  # what used to pass
            assert learned.status == "fail" and learned.missing == 1 and "stopped at the step cap" in learned.note


def test_ht_node_rank_claims_fail_where_nothing_was_learned_and_cite_the_paper_only_at_its_set_up():
    """"Rank at a non-node above the node's" compared the two numerical ranks with nothing else: the tree's widths
    make the node's spectrum fall faster whether or not anything is learned (5 vs 10 at step 0, W ≈ 0, and at the
    end of the large-init control), so it passed on a run that learned nothing. It now asks the node's σ_{r+1}/σ1 to
    lie TREE_MARGIN times below the non-node's, with the large-init run as its control; the node-rank claim has that
    control too, and never cites the paper's rank 5, which belongs to its MF and CP targets (papers.md gives no HT
    ground truth; the test scale's rank is 3)."""
    import dataclasses

    from implicitrank.experiments import razin2022_dynamics as dynamics
    from implicitrank.experiments.razin2022_dynamics import PAPER_PANELS, SCALES, SHOWN, claims

    def spectrum(*values):  # descending, padded to SHOWN with a geometric tail
        tail = [values[-1] * 0.5 ** (k + 1) for k in range(SHOWN - len(values))]
        return list(values) + tail

    start = (spectrum(3.8e-5, 1.2e-5, 4.8e-6, 2e-6), spectrum(3.7e-5, 1.1e-5, 8.2e-6, 5.3e-6, 5e-6))
    learned = (spectrum(13, 8.6, 4.3, 1.3e-4), spectrum(12, 6.2, 6.1, 3.6, 3.2, 2.3, 2.2, 0.47))  # test scale, seed 0
    large_init = (spectrum(14, 8.8, 1.5, 0.63, 0.33), spectrum(13, 7.7, 5.7, 3.6, 2.8, 1.7, 1.2, 0.97))
    runs = [(0, False), (0, True)]

    def ht_claims(setup, main_end):
        node, non_node = (torch.tensor([[start[i], start[i]], [main_end[i], large_init[i]]]) for i in (0, 1))
        values = torch.tensor([[spectrum(1e-5, 1e-6), spectrum(1e-5, 1e-6)],
                               [spectrum(3.0, 2.0, 1.0, 1e-5), spectrum(3.0, 2.0, 1.0, 0.5)]])
        curves = {"hierarchical": ([0, 20], values, {"node_singular_value": node, "non_node_singular_value": non_node})}
        found = {c.claim: c for c in claims(setup, curves, runs) if c.claim.startswith("HT: ")}
        assert len(found) == 2, list(found)
        node_rank = next(c for k, c in found.items() if "tree node (σ" in k)
        contrast = next(c for k, c in found.items() if "non-node" in k)
        return node_rank, contrast

    test = dataclasses.replace(SCALES["test"], panels=SCALES["test"].panels[2:])
    nothing = ht_claims(test, large_init)  # the "learned" run ends where the large-init one does
    assert [c.status for c in nothing] == ["fail", "fail"], [(c.claim, c.per_seed) for c in nothing]
    node_rank, contrast = ht_claims(test, learned)
    assert node_rank.status == contrast.status == "pass" and contrast.parameter == dynamics.TREE_MARGIN
    assert node_rank.control.status == contrast.control.status == "fail"  # from the large init: rank 5, contrast 6
    assert contrast.per_seed[0] >= 1000 and contrast.control.per_seed[0] < 10
    assert node_rank.published is None and node_rank.reference == 3.0 and "our choice" in node_rank.derived
    # the paper gives no HT ground truth (papers.md): even in the paper's set-up the HT panel's rank is ours, not
    # a number to show in the paper column (it showed the MF and CP targets' 5 there)
    paper = dataclasses.replace(SCALES["paper"], panels=PAPER_PANELS[2:])
    at_paper = ht_claims(paper, learned)[0]
    assert at_paper.published is None and at_paper.reference == 5.0 and "our choice" in at_paper.derived
    assert dynamics._rank_source(PAPER_PANELS[0]) == {"published": dynamics.published.R22_RANK}  # MF: the paper's


def test_smaller_cp_init_recovers_better_only_by_a_margin_and_cites_the_paper_rank_only_at_its_set_up():
    """"Smaller init ⇒ lower final error" asked the errors to increase with the std, with no margin: quick scale's
    0.0050 (std 5e-3) vs 0.0052 (std 1e-2), an order decided by when the stop rule fired, passed. It now asks each
    error to be ERROR_MARGIN times the next smaller std's (the published 0.005, 0.03, 0.08 step by 6x and 2.7x). The
    number-learned claim cited the paper's 5 components while the test scale tests against its rank 3."""
    import dataclasses

    from implicitrank.experiments import razin2021_incremental as incremental
    from implicitrank.experiments.razin2021_incremental import SCALES, claims

    steps = list(range(0, 200, 10))

    def rising(rank, last=1e-3):  # ``rank`` components learned one at a time; the last stays at ``last``
        return torch.tensor([[min(1.0, max(0.0, (t - 20 * k - 10) / 10)) * (rank - k) for k in range(rank)] + [last]
                             for t in steps])

    def smaller_init_claim(setup, errors: dict):
        # the control (large init) learns one component too many, so the number-learned claim's control fails
        curves = {(0, std): rising(setup.rank) for std in setup.init_stds} | {
            (0, setup.control_std): rising(setup.rank, last=1.0)}
        final_errors = {(0, std): e for std, e in errors.items()} | {(0, setup.control_std): 1.0}
        out = claims(setup, steps, curves, final_errors, (0,))
        return next(c for c in out if c.claim.startswith("smaller init ⇒ lower final error")), out

    quick = dataclasses.replace(SCALES["quick"], rank=3)  # the published stds, a problem other than the paper's
    tie, _ = smaller_init_claim(quick, {5e-3: 0.0050, 1e-2: 0.0052, 5e-2: 0.085})  # quick scale's measured errors
    assert tie.status == "fail", tie.per_seed
    paper_like, out = smaller_init_claim(quick, {5e-3: 0.005, 1e-2: 0.03, 5e-2: 0.08})
    assert paper_like.status == "pass" and paper_like.per_seed[0] == pytest.approx([6.0, 8 / 3])
    assert paper_like.parameter == incremental.ERROR_MARGIN
    learned = next(c for c in out if "number of components learned" in c.claim)
    assert learned.status == "pass" and learned.published is None and learned.reference == 3.0
    paper = dataclasses.replace(SCALES["paper"], rank=5)
    assert paper.problem == incremental.PAPER_PROBLEM
    _, out = smaller_init_claim(paper, {5e-3: 0.005, 1e-2: 0.03, 5e-2: 0.08})
    assert next(c for c in out if "number of components learned" in c.claim).published.value == 5.0


def test_smaller_tensor_completion_init_gives_a_lower_error_only_by_a_factor():
    """"Smaller init gives lower error" asked error(1e-3) < error(1e-2) with no margin, so a 2x difference passed
    where the paper shows ≈5e-7 against ≈4e-4 (a factor ≈800). It now asks the ratio to be >= SMALLER_INIT_FACTOR."""
    import dataclasses

    from implicitrank.experiments import razin2020_tensor_completion as completion
    from implicitrank.experiments.razin2020_tensor_completion import SCALES, claims

    setup = dataclasses.replace(SCALES["test"], init_stds=(1e-2, 1e-3))
    panel = setup.panels[0]

    def smaller_init_claim(small_error: float, large_error: float):
        rows = [{"order": 3, "truth_rank": 1, "observations": m, "seed": 0, "method": method, "init_std": std,
                 "train_loss": 1e-7, "reconstruction_error": error, "tensor_rank": 1}
                for m in panel.observations
                for method, std, error in (("init std 0.001", 1e-3, small_error), ("init std 0.01", 1e-2, large_error))]
        rows += [{"order": 3, "truth_rank": 1, "observations": m, "seed": 0, "method": "zero-filled baseline",
                  "init_std": math.nan, "reconstruction_error": 0.5, "tensor_rank": 6} for m in panel.observations]
        found = [c for c in claims(setup, rows, (0,)) if "smaller init gives" in c.claim]
        assert len(found) == 1
        return found[0]

    assert smaller_init_claim(5e-7, 1e-6).status == "fail"  # twice as large: not the published gap
    published_gap = smaller_init_claim(5e-7, 4e-4)
    assert published_gap.status == "pass" and published_gap.per_seed[0] == pytest.approx(800.0)
    assert published_gap.parameter == completion.SMALLER_INIT_FACTOR
    assert smaller_init_claim(math.nan, 4e-4).status == "fail"  # a diverged run is missing, not a ratio


def test_the_learned_rank_claims_take_the_median_over_seeds_as_the_paper_plots_and_name_the_others():
    """The paper plots the median of 5 runs: "rank 1 at every # observations" asked it of every seed, and one seed
    of three that learned rank 3 at 50 observations (a two-component fit, at every lr tried) failed it. On the median
    it holds while one seed in three differs, which the note names, and fails when two do."""
    from implicitrank.experiments.razin2020_tensor_completion import Panel, Setup, claims

    setup = Setup((Panel(3, 1, (50, 200)),), (1e-3,), seeds=3, max_steps=100)

    def rows(rank_at_50):
        out = []
        for seed, rank in enumerate(rank_at_50):
            for m in (50, 200):
                common = {"order": 3, "truth_rank": 1, "observations": m, "seed": seed, "train_loss": 0.0}
                out.append(common | {"method": "init std 0.001", "tensor_rank": float(rank if m == 50 else 1),
                                     "reconstruction_error": 1e-4})
                out.append(common | {"method": "zero-filled baseline", "tensor_rank": 6.0,
                                     "reconstruction_error": 0.8})
        return out

    def learned(rank_at_50):
        return next(c for c in claims(setup, rows(rank_at_50), (0, 1, 2)) if "learned tensor rank at every" in c.claim)

    one = learned((1, 3, 1))
    assert one.status == "pass" and one.rule == "median" and "seed 1: rank 3 at 50" in one.note
    assert learned((3, 3, 1)).status == "fail"
    assert learned((1, 1, 1)).status == "pass" and not learned((1, 1, 1)).note
