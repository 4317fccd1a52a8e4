import math

import numpy as np
import pytest
import torch
from counting import CountingMatrix

from implicitrank import run as run_module
from implicitrank.errors import UsageError
from implicitrank.factorizations import MatrixFactorization, generators
from implicitrank.optim import adam, global_rmsprop, gradient_descent, make_optimizer
from implicitrank.results import load_torch, read_json, read_metrics
from implicitrank.run import RunConfig, run_batch
from implicitrank.tasks import complete_from_target, low_rank_matrix
from implicitrank.train import TrainConfig, train

SMALL = dict(shape=(12, 10), rank=2, num_observations=70, depth=3, max_steps=400, checkpoint_every=100,
             record_per_decade=5, dtype="float64")


def _problem(batch=2, depth=2):
    target = low_rank_matrix(10, 8, 2, seed=0)
    task = complete_from_target(target, 40, [0] * batch).to("cpu", torch.float64)
    model = MatrixFactorization(10, 8, depth)
    params = model.init(batch, torch.tensor([0.1] * batch), generators(range(batch)), dtype=torch.float64)
    return model, task, params


def test_a_converged_run_freezes_while_the_others_go_on():
    model, task, params = _problem()
    lr = torch.tensor([0.05, 0.005], dtype=torch.float64)
    config = TrainConfig(max_steps=3000, loss_threshold=1e-3, sync_every=10, progress=False)
    state = train(model, task, params, gradient_descent(), lr, config)
    fast, slow = state.converged_at.tolist()
    assert 0 < fast < slow or slow == -1
    assert float(state.loss[0]) <= 1e-3
    # The fast run's parameters are those at its convergence step: rerunning it alone to that step agrees.
    _, task_alone, _ = _problem(batch=1)
    alone = train(model, task_alone, [p[:1] for p in params], gradient_descent(), lr[:1],
                  TrainConfig(max_steps=fast, loss_threshold=0.0, progress=False))
    for p, q in zip(state.params, alone.params, strict=True):
        torch.testing.assert_close(p[:1], q)


@pytest.mark.parametrize("make", [global_rmsprop, adam])
def test_stopped_runs_leave_the_batch_and_every_run_still_equals_itself_alone(make):
    # Four runs stopping at four different steps: once a run stops, the steps compute only the runs still going
    # (fewer gradients), and each run's parameters, status and records are bitwise those of the run done alone.
    batch = 4
    target = low_rank_matrix(10, 8, 2, seed=0)
    task = complete_from_target(target, 40, list(range(batch))).to("cpu", torch.float64)
    model = CountingMatrix(10, 8, 3)
    scales = torch.tensor([0.3, 0.1, 0.03, 0.01], dtype=torch.float64)
    params = model.init(batch, scales, generators(range(batch)), dtype=torch.float64)
    lr = torch.tensor([2e-2, 1.5e-2, 1e-2, 5e-3], dtype=torch.float64)
    config = TrainConfig(max_steps=4000, loss_threshold=1e-4, sync_every=10, record_per_decade=5, progress=False)
    state = train(model, task, params, make(), lr, config)
    stops = state.converged_at.tolist()
    assert all(s > 0 for s in stops) and len(set(stops)) == batch, stops
    assert sorted(set(model.batch_sizes), reverse=True)[:2] == [4, 3] and min(model.batch_sizes) == 1
    assert len(model.batch_sizes) < batch * max(stops) * 0.9
    for b in range(batch):
        alone_model = MatrixFactorization(10, 8, 3)
        alone = train(alone_model, task.runs(torch.tensor([b])), [p[b:b + 1] for p in params], make(),
                      lr[b:b + 1], config)
        assert alone.converged_at.tolist() == [stops[b]]
        for p, q in zip(state.params, alone.params, strict=True):
            assert torch.equal(p[b:b + 1], q)
        assert torch.equal(state.loss[b:b + 1], alone.loss)
        recorded = {r["step"]: r["train_loss"][b:b + 1] for r in state.records}
        shared = [r for r in alone.records if r["step"] in recorded]
        assert len(shared) >= len(alone.records) - 1  # all but the stopping step's row
        assert all(torch.equal(recorded[r["step"]], r["train_loss"]) for r in shared)
    assert all(torch.equal(p, q) for p, q in zip(params, model.init(batch, scales, generators(range(batch)),
                                                                     dtype=torch.float64)))  # inputs untouched


def test_history_stacks_each_recorded_metric_over_the_records():
    model, task, params = _problem()
    config = TrainConfig(max_steps=50, loss_threshold=0.0, record_every=10, record_per_decade=0, progress=False)
    state = train(model, task, params, gradient_descent(), torch.tensor([0.05, 0.01], dtype=torch.float64), config,
                  measure=lambda p, loss: {"sigma": model.quantities(p)})
    assert state.history("step").tolist() == [0, 10, 20, 30, 40, 50]
    assert state.history("sigma").shape == (6, 2, 8)
    torch.testing.assert_close(state.history("sigma")[-1], model.quantities(state.params))
    torch.testing.assert_close(state.history("train_loss")[3], state.records[3]["train_loss"])
    with pytest.raises(ValueError, match="'sigma', 'step', 'train_loss'"):
        state.history("singular_values")


def test_converge_patience_keeps_a_run_going_until_its_loss_has_stayed_below_the_threshold():
    model, task, params = _problem(batch=1)
    lr = torch.tensor([0.05], dtype=torch.float64)
    at_once = train(model, task, params, gradient_descent(), lr,
                    TrainConfig(max_steps=3000, loss_threshold=1e-3, sync_every=10, progress=False))
    reached = int(at_once.converged_at[0])
    assert reached > 0
    patient = train(model, task, params, gradient_descent(), lr,
                    TrainConfig(max_steps=3000, loss_threshold=1e-3, converge_patience=50, sync_every=10,
                                progress=False))
    assert int(patient.converged_at[0]) == reached + 50  # GD keeps lowering the loss, so it stays below
    assert float(patient.loss[0]) < float(at_once.loss[0])
    with pytest.raises(ValueError, match="converge_patience"):
        TrainConfig(converge_patience=-1)


def test_divergence_stops_the_run_names_the_step_and_keeps_the_records():
    model, task, params = _problem()
    lr = torch.tensor([1e-3, 1e3], dtype=torch.float64)
    config = TrainConfig(max_steps=200, loss_threshold=0.0, record_every=1, record_per_decade=0, progress=False)
    state = train(model, task, params, gradient_descent(), lr, config)
    step = int(state.diverged_at[1])
    assert step > 0 and int(state.diverged_at[0]) == -1
    assert f"step {step}" in state.messages()[0]
    finite = [r for r in state.records if math.isfinite(float(r["train_loss"][1]))]
    assert len(finite) == step  # every step before the divergence was recorded and kept
    assert int(state.steps[0]) == 200


def test_a_diverged_run_s_integer_metrics_are_missing_not_a_count_of_zero():
    from implicitrank.measure import numerical_rank

    model, task, params = _problem()
    lr = torch.tensor([1e-3, 1e3], dtype=torch.float64)
    config = TrainConfig(max_steps=60, loss_threshold=0.0, record_every=1, record_per_decade=0, progress=False)
    state = train(model, task, params, gradient_descent(), lr, config,
                  measure=lambda p, loss: {"rank": numerical_rank(model.quantities(p))})
    step = int(state.diverged_at[1])
    ranks = state.history("rank")
    assert step > 0 and ranks[:step, 1].ge(1).all()  # measured while finite
    assert ranks[step:, 1].isnan().all() and ranks[:, 0].ge(1).all()


def test_an_infinite_loss_counts_as_divergence():
    from implicitrank.train import mark_status, start

    state = start([torch.zeros(3, 1)], gradient_descent())
    mark_status(state, torch.tensor([float("inf"), float("nan"), 1e-9]), threshold=1e-6)
    assert state.active.tolist() == [False, False, False]
    assert state.diverged_at.tolist() == [0, 0, -1] and state.converged_at.tolist() == [-1, -1, 0]


def test_global_rmsprop_follows_its_formula():
    opt = global_rmsprop(decay=0.9, eps=1e-3)
    g = [torch.tensor([[[3.0, 4.0]]]), torch.tensor([[[0.0]]])]
    state = opt.init(g)
    upd, state = opt.update(g, state, torch.tensor([0.5]))
    s = 0.1 * 25.0
    expected = 0.5 / (math.sqrt(s / 0.1) + 1e-3)
    torch.testing.assert_close(upd[0], expected * g[0])
    upd2, _ = opt.update(g, state, torch.tensor([0.5]))
    s2 = 0.9 * s + 0.1 * 25.0
    torch.testing.assert_close(upd2[0], 0.5 / (math.sqrt(s2 / (1 - 0.81)) + 1e-3) * g[0])


def test_adam_matches_torch_adam():
    model, task, params = _problem(batch=1)
    ours = train(model, task, params, adam(), torch.tensor([1e-2], dtype=torch.float64),
                 TrainConfig(max_steps=50, loss_threshold=0.0, progress=False)).params
    leaves = [p[0].clone().requires_grad_(True) for p in params]
    ref = torch.optim.Adam(leaves, lr=1e-2)
    for _ in range(50):
        ref.zero_grad()
        task.loss(model, [leaf[None] for leaf in leaves]).sum().backward()
        ref.step()
    for p, leaf in zip(ours, leaves, strict=True):
        torch.testing.assert_close(p[0], leaf.detach(), rtol=1e-6, atol=1e-9)


def test_unknown_optimizer_is_named():
    with pytest.raises(ValueError, match="optimizer must be one of"):
        make_optimizer("sgdw")


@pytest.mark.parametrize("eps", [-1.0, 0.0, math.inf, math.nan])
def test_optimizers_refuse_an_eps_that_is_not_positive_and_finite(eps):
    for optimizer in (adam, global_rmsprop):  # adam(eps=-1) trained on; rmsprop(eps=inf) froze every run
        with pytest.raises(ValueError, match="eps must be positive and finite"):
            optimizer(eps=eps)


def test_batched_runs_equal_the_same_runs_done_one_by_one(tmp_path):
    configs = [RunConfig(**SMALL, seed=s, init_scale=i, lr=lr, data_seed=ds)
               for s, i, lr, ds in [(0, 1e-2, 1e-2, 0), (1, 1e-3, 3e-3, 1)]]
    batch = run_batch(configs, [tmp_path / "b0", tmp_path / "b1"], progress=False)
    for k, config in enumerate(configs):
        alone = run_batch([config], [tmp_path / f"a{k}"], progress=False)
        assert alone.summaries[0]["steps"] == batch.summaries[k]["steps"]
        for x, y in zip(load_torch(tmp_path / f"a{k}" / "factors.pt"), load_torch(tmp_path / f"b{k}" / "factors.pt"),
                        strict=True):
            torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-12)


def test_same_seed_same_result(tmp_path):
    config = RunConfig(**SMALL)
    a = run_batch([config], [tmp_path / "a"], progress=False).summaries[0]
    b = run_batch([config], [tmp_path / "b"], progress=False).summaries[0]
    assert a["reconstruction_error"] == b["reconstruction_error"] and a["steps"] == b["steps"]


def test_resume_after_interruption_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    configs = [RunConfig(**SMALL, seed=s) for s in (0, 1)]
    whole = run_batch(configs, [tmp_path / "w0", tmp_path / "w1"], progress=False)

    save = run_module._save_checkpoints

    def crash_after_second_checkpoint(state, dirs, *seconds):
        save(state, dirs, *seconds)
        if state.step == 200:
            raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(run_module, "_save_checkpoints", crash_after_second_checkpoint)
    dirs = [tmp_path / "r0", tmp_path / "r1"]
    with pytest.raises(KeyboardInterrupt):
        run_batch(configs, dirs, progress=False)
    monkeypatch.setattr(run_module, "_save_checkpoints", save)
    assert (dirs[0] / "checkpoint.pt").exists() and not (dirs[0] / "summary.json").exists()
    with pytest.raises(FileExistsError, match="--resume"):
        run_batch(configs, dirs, progress=False)
    resumed = run_batch(configs, dirs, resume=True, progress=False)
    for k in range(2):
        for key in ("steps", "train_loss", "reconstruction_error", "effective_rank"):
            assert resumed.summaries[k][key] == whole.summaries[k][key]
        assert read_metrics(dirs[k]) == read_metrics(tmp_path / f"w{k}")
        assert not (dirs[k] / "checkpoint.pt").exists()


def test_run_directory_holds_every_result(tmp_path):
    run_batch([RunConfig(**SMALL)], [tmp_path / "r"], progress=False)
    files = {p.name for p in (tmp_path / "r").iterdir()}
    assert {"config.json", "metrics.jsonl", "summary.json", "factors.pt", "quantities.png", "errors.png"} <= files
    summary = read_json(tmp_path / "r" / "summary.json")
    for key in ("reconstruction_error", "effective_rank", "nuclear_norm", "train_loss", "steps", "converged"):
        assert key in summary
    factors = load_torch(tmp_path / "r" / "factors.pt")
    assert [tuple(f.shape) for f in factors] == [(10, 10), (10, 10), (12, 10)]
    assert RunConfig.from_dict(read_json(tmp_path / "r" / "config.json")) == RunConfig(**SMALL)
    with pytest.raises(FileExistsError, match="finished run"):
        run_batch([RunConfig(**SMALL)], [tmp_path / "r"], progress=False)


def test_a_float64_run_keeps_init_scales_below_float32s_range(tmp_path):
    """The scales went through float32 whatever the dtype: 1.2e-44 and 1.3e-44 both became the subnormal
    1.4e-44, so two runs asked to differ by 8% started from the same W(0). Same seed: W(0) differs by the ratio."""
    base = dict(shape=(6, 6), rank=2, num_observations=20, max_steps=1, dtype="float64", seed=0)
    configs = [RunConfig(**base, init_scale=s) for s in (1.2e-44, 1.3e-44)]
    run_batch(configs, [tmp_path / "a", tmp_path / "b"], progress=False)
    first, second = (read_metrics(tmp_path / d)[0]["frobenius_norm"] for d in ("a", "b"))
    assert second / first == pytest.approx(1.3 / 1.2, rel=1e-9)
    with pytest.raises(UsageError, match="outside the range of float32"):
        RunConfig(**{**base, "dtype": "float32"}, init_scale=1.2e-44)


def test_parameters_that_require_grad_train_without_building_a_graph():
    """A leaf that requires grad (a user's nn.Parameter) chained every update into one autograd graph: 3000 steps
    held 3002 nodes, ran twice as slowly, and the returned parameters carried the history."""
    from implicitrank import flow

    model = MatrixFactorization(6, 6, 3)
    task = complete_from_target(low_rank_matrix(6, 6, 1, seed=0).requires_grad_(True), 20, [0])
    params = [p.requires_grad_(True) for p in model.init(1, 1e-2, generators([0]), dtype=torch.float64)]
    state = train(model, task, params, gradient_descent(), torch.tensor([0.1]),
                  TrainConfig(max_steps=20, progress=False))
    assert state.step == 20 and all(p.grad_fn is None and not p.requires_grad for p in state.params)
    assert task.values.grad_fn is None and params[0].requires_grad  # the caller's tensors are left as they were
    flowed = flow.integrate(model, task, params, TrainConfig(max_steps=5, progress=False))
    assert flowed.step == 5 and all(p.grad_fn is None for p in flowed.params)
    with pytest.raises(UsageError, match="first_step must be positive and finite"):  # inf: no step is accepted
        flow.integrate(model, task, params, TrainConfig(max_steps=5, progress=False), first_step=math.inf)


@pytest.mark.parametrize("name", ["max_steps", "record_every", "checkpoint_every", "converge_patience"])
def test_step_counts_must_be_integers(name):
    """``TrainConfig(max_steps=2.5)`` made 3 updates of "at most 2.5"."""
    with pytest.raises(UsageError, match=f"{name} must be an integer, got 2.5"):
        TrainConfig(**{name: 2.5})


def test_record_trajectory_takes_integer_step_counts():
    from implicitrank.theory import record_trajectory

    model = MatrixFactorization(4, 4, 2)
    task = complete_from_target(low_rank_matrix(4, 4, 1, seed=0), 8, [0])
    params = model.init(1, 1e-2, generators([0]), dtype=torch.float64)
    with pytest.raises(ValueError, match="need integers steps >= every >= 1, got steps=10.5"):
        record_trajectory(model, task, params, 0.1, 10.5)
    assert len(record_trajectory(model, task, params, 0.1, 10, 5).times) == 3


def test_a_resumed_batch_keeps_its_records_on_the_cpu_where_the_loop_adds_them(tmp_path):
    """Resuming on CUDA stacked the checkpoint's records onto the GPU while the loop keeps new ones on the CPU, so
    ``history`` met two devices. "meta" stands in for CUDA here (no GPU on this machine)."""
    model = MatrixFactorization(4, 4, 2)
    task = complete_from_target(low_rank_matrix(4, 4, 1, seed=0), 8, [0, 1])
    params = model.init(2, 1e-2, generators([0, 1]), dtype=torch.float64)
    state = train(model, task.to(torch.float64), params, gradient_descent(), torch.tensor([0.1, 0.1]),
                  TrainConfig(max_steps=5, record_every=1, progress=False))
    dirs = [tmp_path / "a", tmp_path / "b"]
    for d in dirs:
        d.mkdir()
    run_module._save_checkpoints(state, dirs)
    resumed, _ = run_module._load_checkpoints(dirs, torch.device("meta"))
    assert resumed.params[0].device.type == "meta"
    assert {v.device.type for r in resumed.records for v in r.values() if isinstance(v, torch.Tensor)} == {"cpu"}


def test_a_batch_whose_run_starts_under_the_loss_threshold_is_refused_before_anything_is_written(tmp_path):
    """The threshold is absolute: with target_norm 1e-3 the loss at init (2e-8) is already under 1e-6, and the run
    stopped at step 0 as "converged", reporting W(0)'s error 1.73 as its result. The run with the larger init scale
    starts above it; the refusal names the other."""
    configs = [RunConfig(**SMALL, target_norm=1e-3, init_scale=s) for s in (10.0, 1e-3)]
    with pytest.raises(UsageError, match=r"loss_threshold 1e-06 is not below the train loss of run 1 at init "
                                         r"\(seed 0, init_scale 0.001\)"):
        run_batch(configs, [tmp_path / "a", tmp_path / "b"], progress=False)
    assert not any(tmp_path.iterdir())


def test_a_converged_run_whose_final_metrics_are_not_finite_is_not_reported_converged(tmp_path):
    """An .npz whose unobserved entries are 0 makes the error on them relative to 0, NaN: the run reached the loss
    threshold and its summary said "converged" next to a null unobserved_error, without a word."""
    rng = np.random.default_rng(0)
    mask = rng.random((6, 5)) < 0.6
    np.savez(tmp_path / "x.npz", matrix=np.where(mask, np.outer(rng.standard_normal(6), rng.standard_normal(5)), 0.0),
             mask=mask)
    config = RunConfig(shape=(6, 5), num_observations=int(mask.sum()), data=str(tmp_path / "x.npz"), init_scale=1.0,
                       loss_threshold=0.1, max_steps=2000, device="cpu")
    summary = run_batch([config], [tmp_path / "r"], progress=False).summaries[0]
    assert summary["converged"] and summary["status"] == "metrics_not_finite", summary
    assert summary["message"].startswith(f"its train loss reached loss_threshold at step {summary['steps']}, but its "
                                         "final unobserved_error is NaN/inf")
    written = read_json(tmp_path / "r" / "summary.json")
    assert written["status"] == "metrics_not_finite" and written["unobserved_error"] is None
    assert summary["unobserved_error"] is None  # as written: the command's table printed nan beside "null here"
    assert math.isfinite(written["reconstruction_error"])
