"""One protocol, three factorizations: the same contract checked on the matrix, CP and hierarchical factorizations
(Arora et al. 2019; Razin, Maman & Cohen 2021, 2022), so that learning one teaches the other two."""

from __future__ import annotations

import math

import pytest
import torch

from implicitrank.factorizations import (
    CPFactorization,
    HierarchicalFactorization,
    MatrixFactorization,
    generators,
    loss_and_grad,
)
from implicitrank.factorizations._protocol import INITS
from implicitrank.tasks import complete_from_target

BUILD = {
    "matrix": lambda **kw: MatrixFactorization(5, 4, 3, **kw),
    "cp": lambda **kw: CPFactorization((3, 4, 2), components=3, **kw),
    "ht": lambda **kw: HierarchicalFactorization((2, 3, 2, 2), widths=2, **kw),
}
KINDS = tuple(BUILD)
ALL_INITS = [(kind, init) for kind in KINDS for init in BUILD[kind]().inits]


def _indices(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.cartesian_prod(*(torch.arange(d) for d in shape)).reshape(-1, len(shape))


def _task(model, batch: int, seed: int = 0, data_seeds: list[int] | None = None):
    """Completion of a random target from half its entries, run b observing the entries drawn by data seed b."""
    target = torch.randn(model.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    count = math.prod(model.shape) // 2
    return complete_from_target(target, count, data_seeds or list(range(batch))).to("cpu", torch.float64)


@pytest.mark.parametrize("kind", KINDS)
def test_protocol_methods_are_present_and_shaped_alike(kind):
    model = BUILD[kind]()
    assert set(model.inits) <= set(INITS) and model.init_method in model.inits and "gaussian" in model.inits
    assert isinstance(model.quantity_name, str)
    params = model.init(3, 0.5, generators([0, 1, 2]), dtype=torch.float64)
    assert all(p.shape[0] == 3 and p.dtype == torch.float64 for p in params)
    w = model.end_to_end(params)
    assert w.shape == (3, *model.shape)
    idx = _indices(model.shape)
    torch.testing.assert_close(model.evaluate(params, idx), w.reshape(3, -1))
    sigma, fixed = model.quantities(params), model.quantities(params, sort=False)
    assert sigma.dim() == 2 and sigma.shape[0] == 3 and fixed.shape == sigma.shape
    assert bool((sigma[:, :-1] >= sigma[:, 1:]).all()) and bool((sigma >= 0).all())
    torch.testing.assert_close(fixed.sort(dim=-1, descending=True).values, sigma)
    gradient = _task(model, 3).dense_loss_and_grad(w)[1]
    rates = model.predicted_rates(params, gradient)
    assert rates.shape == sigma.shape and bool(rates.isfinite().all())
    assert model.num_parameters == sum(p[0].numel() for p in params)  # what init allocates per run
    wide = BUILD[kind](**({"widths": (7, 6)} if kind == "matrix" else {}))
    assert wide.num_parameters == sum(p[0].numel() for p in wide.init(1, 0.5, generators([0])))


@pytest.mark.parametrize(("kind", "init"), ALL_INITS)
def test_init_scale_is_the_root_mean_square_norm_of_the_end_to_end_tensor(kind, init):
    """sqrt(E||W(0)||_F²) = init_scale for every factorization and init; the same init_scale gives the three
    W(0) of the same size (with init_scale = 0.1 they used to be 0.22, 0.21 and 4.2e-6)."""
    model, batch = BUILD[kind](init_method=init), 3000
    params = model.init(batch, 0.1, generators(list(range(batch))), dtype=torch.float64)
    draws = {"init": params}
    if init == "gaussian":
        # the same per-entry variance with entries ±s: the same E||W||², without the heavy tails of products of
        # up to seven Gaussians (which leave the Gaussian draws' estimate a standard error of up to ~10%)
        draws["signs"] = [model.entry_std(0.1) * p.sign() for p in params]
    for name, drawn in draws.items():
        squared = model.end_to_end(drawn).flatten(1).pow(2).sum(1)
        standard_error = float(squared.std() / squared.mean()) / math.sqrt(batch)  # relative, of E||W||²
        assert standard_error < (0.1 if name == "init" else 0.02), name
        # within three standard errors (the root halves a relative error)
        assert float(squared.mean().sqrt()) == pytest.approx(0.1, rel=max(1.5 * standard_error, 1e-12)), name
    if kind == "matrix" and init != "gaussian":  # not random: exact
        norms = torch.linalg.matrix_norm(model.end_to_end(params))
        torch.testing.assert_close(norms, torch.full_like(norms, 0.1))


@pytest.mark.parametrize("kind", ["cp", "ht"])
def test_with_a_nonzero_init_mean_init_scale_is_the_norm_of_the_random_part(kind):
    """W(0) − E W(0) has root-mean-square norm init_scale; E W(0) is the tensor of all-mean factors."""
    model, batch = BUILD[kind](init_mean=0.5), 3000
    params = model.init(batch, 0.1, generators(list(range(batch))), dtype=torch.float64)
    mean = model.end_to_end([torch.where(p[:1] != 0, 0.5, 0.0) for p in params])  # CP padding stays 0
    squared = (model.end_to_end(params) - mean).flatten(1).pow(2).sum(1)
    standard_error = float(squared.std() / squared.mean()) / math.sqrt(batch)
    assert float(squared.mean().sqrt()) == pytest.approx(0.1, rel=1.5 * standard_error)
    std = float(model.entry_std(0.1))
    assert model.scale_for_entry_std(std) == pytest.approx(0.1, rel=1e-9)
    assert float(params[0][:, :, :2].std()) == pytest.approx(std, rel=0.05)


@pytest.mark.parametrize("kind", KINDS)
def test_entry_std_converts_the_tensor_papers_per_entry_std(kind):
    """A per-entry factor std s (the tensor papers' convention) is the init_scale sqrt(E||W(0)||²) computed
    from s, and the gaussian init given that init_scale draws its entries with std s."""
    model = BUILD[kind]()
    scale = model.scale_for_entry_std(0.3)
    assert float(model.entry_std(scale)) == pytest.approx(0.3, rel=1e-12)
    params = model.init(400, scale, generators(list(range(400))), dtype=torch.float64)
    entries = torch.cat([p.flatten() for p in params])
    assert float(entries[entries != 0].std()) == pytest.approx(0.3, rel=0.03)


@pytest.mark.parametrize("kind", KINDS)
def test_a_batch_of_runs_equals_the_same_runs_one_by_one(kind):
    model = BUILD[kind]()
    scales = torch.tensor([0.2, 0.5, 1.0], dtype=torch.float64)
    batch = model.init(3, scales, generators([7, 8, 9]), dtype=torch.float64)
    task = _task(model, 3)
    w = model.end_to_end(batch)
    loss, grads = loss_and_grad(model, batch, task)
    gradient = task.dense_loss_and_grad(w)[1]
    rates = model.predicted_rates(batch, gradient)
    for b, (seed, scale) in enumerate(zip([7, 8, 9], scales.tolist())):
        alone = model.init(1, scale, generators([seed]), dtype=torch.float64)
        assert all(torch.equal(p[b:b + 1], a) for p, a in zip(batch, alone, strict=True))
        torch.testing.assert_close(model.end_to_end(alone), w[b:b + 1])
        torch.testing.assert_close(model.quantities(alone), model.quantities(batch)[b:b + 1])
        torch.testing.assert_close(model.predicted_rates(alone, gradient[b:b + 1]), rates[b:b + 1])
        one_loss, one_grads = loss_and_grad(model, alone, _task(model, 1, data_seeds=[b]))
        torch.testing.assert_close(one_loss, loss[b:b + 1])
        for g, one in zip(grads, one_grads, strict=True):
            torch.testing.assert_close(one, g[b:b + 1])


@pytest.mark.parametrize("kind", KINDS)
def test_the_gradient_equals_autograd_through_the_dense_tensor(kind):
    """The factorization's gradient (closed form, or autograd through ``evaluate`` without forming W) equals
    autograd through the dense end-to-end tensor W, the loss being the mean squared error on observed entries."""
    model = BUILD[kind]()
    params = model.init(2, 1.0, generators([3, 4]), dtype=torch.float64)
    task = _task(model, 2, seed=5)
    loss, grads = loss_and_grad(model, params, task)
    leaves = [p.clone().requires_grad_(True) for p in params]
    w = model.end_to_end(leaves).flatten(1)
    flat = torch.stack([torch.tensor(idx, dtype=torch.long) for idx in _flat_indices(task, model.shape)])
    dense_loss = (w.gather(1, flat) - task.values).pow(2).mean(1)
    reference = torch.autograd.grad(dense_loss.sum(), leaves)
    torch.testing.assert_close(loss, dense_loss.detach())
    for g, r in zip(grads, reference, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-12)


def _flat_indices(task, shape: tuple[int, ...]) -> list[list[int]]:
    idx = task.indices if task.indices.dim() == 3 else task.indices.expand(task.values.shape[0], -1, -1)
    strides = [math.prod(shape[n + 1:]) for n in range(len(shape))]
    return [[sum(int(i) * s for i, s in zip(row, strides)) for row in run.tolist()] for run in idx]


@pytest.mark.parametrize("kind", KINDS)
def test_the_stated_law_holds_over_a_tiny_gradient_step_from_a_balanced_init(kind):
    """σ̇ = N·γ·σ^(2−2/N) (``predicted_rates``) against (σ(θ − h∇L) − σ(θ))/h at a balanced point, h = 1e-7."""
    model = BUILD[kind](init_method="balanced")
    params = model.init(2, 1.0, generators([1, 2]), dtype=torch.float64)
    task = _task(model, 2, seed=1)
    _, grads = loss_and_grad(model, params, task)
    h = 1e-7
    stepped = [p - h * g for p, g in zip(params, grads, strict=True)]
    measured = (model.quantities(stepped, sort=False) - model.quantities(params, sort=False)) / h
    predicted = model.predicted_rates(params, task.dense_loss_and_grad(model.end_to_end(params))[1])
    torch.testing.assert_close(measured, predicted, rtol=1e-4, atol=1e-6 * float(predicted.abs().max()))
    wrong = model.predicted_rates(params, task.dense_loss_and_grad(model.end_to_end(params))[1], order=1)
    assert float((wrong - measured).abs().max()) > 0.1 * float(measured.abs().max())


def test_a_run_configured_with_an_init_its_model_lacks_is_refused_naming_the_allowed_ones():
    from implicitrank.errors import UsageError
    from implicitrank.run import RunConfig

    with pytest.raises(UsageError, match=r"init must be one of \['gaussian', 'balanced'\], got 'identity'"):
        RunConfig(model="cp", shape=(4, 4, 4), rank=1, num_observations=10, init="identity")
    assert RunConfig(model="cp", shape=(4, 4, 4), rank=1, num_observations=10, init="balanced").init == "balanced"


@pytest.mark.parametrize("kind", KINDS)
def test_an_init_that_does_not_apply_is_refused_in_one_line_naming_the_allowed_ones(kind):
    model = BUILD[kind]()
    for init in [*(i for i in INITS if i not in model.inits), "xavier"]:
        with pytest.raises(ValueError, match="init_method must be one of") as error:
            BUILD[kind](init_method=init)
        message = str(error.value)
        assert "\n" not in message and all(repr(i) in message for i in model.inits) and repr(init) in message


@pytest.mark.parametrize("kind", KINDS)
def test_every_factorization_refuses_inits_that_are_no_numbers(kind):
    model = BUILD[kind]()
    for scale in (math.inf, math.nan):  # were inf/NaN factors
        with pytest.raises(ValueError, match="init_scale must be positive and finite"):
            model.init(1, torch.tensor([scale]), generators([0]))
    with pytest.raises(ValueError, match="dtype must be a floating-point"):  # were all-zero integer factors
        model.init(1, torch.tensor([0.1]), generators([0]), dtype=torch.int64)
    with pytest.raises(ValueError, match="one torch.Generator per run"):
        model.init(1, torch.tensor([0.1]), torch.Generator())
    with pytest.raises(ValueError, match="batch must be an integer >= 1"):
        model.init(0, torch.tensor([0.1]), [])
    with pytest.raises(ValueError, match="init_scale must be positive and finite"):  # was 'math domain error'
        model.entry_std(0.0)


@pytest.mark.parametrize("kind", KINDS)
def test_training_refuses_parameters_of_another_model(kind):
    """Depth-2 factors handed to a depth-3 model trained as depth 2 and read its depth-3 theory."""
    from implicitrank.errors import UsageError
    from implicitrank.optim import gradient_descent
    from implicitrank.train import TrainConfig, train

    model = BUILD[kind]()
    other = {"matrix": lambda: MatrixFactorization(5, 4, 2), "cp": lambda: CPFactorization((3, 4, 2), components=2),
             "ht": lambda: HierarchicalFactorization((2, 3, 2, 2), widths=3)}[kind]()
    task = _task(model, 1)
    params = other.init(1, 0.5, generators([0]), dtype=torch.float64)
    with pytest.raises(UsageError, match="the parameters do not fit the model"):
        train(model, task, params, gradient_descent(), torch.tensor([0.1]), TrainConfig(max_steps=2, progress=False))
    fitting = model.init(1, 0.5, generators([0]), dtype=torch.float64)
    train(model, task, fitting, gradient_descent(), torch.tensor([0.1]), TrainConfig(max_steps=2, progress=False))


def test_mode_sizes_are_positive_integers_not_truncated_floats():
    from implicitrank.errors import UsageError
    from implicitrank.run import RunConfig
    from implicitrank.tasks import complete_from_target
    from implicitrank.tasks.tensors import low_rank_tensor

    for build in (lambda: CPFactorization((2.7, 3), components=2), lambda: HierarchicalFactorization((2, 2.5, 2, 2)),
                  lambda: low_rank_tensor((2.7, 3), 1)):  # were read as 2
        with pytest.raises(ValueError, match="positive integer mode sizes"):
            build()
    with pytest.raises(UsageError, match="positive integer mode sizes"):  # a sweep spec's shape = [10.5, 10]
        RunConfig(shape=(10.5, 10))
    with pytest.raises(ValueError, match="need at least one run"):
        complete_from_target(torch.ones(2, 2), 2, [])


@pytest.mark.parametrize("kind", KINDS)
def test_evaluate_refuses_indices_out_of_range_and_reads_any_integer_dtype(kind):
    """The matrix model read column 6 of a 4×5 matrix as W[1, 1] (flat offsets), and failed inside ``gather`` on
    uint8 indices; a task of another shape computed its loss on the wrong entries."""
    model = BUILD[kind]()
    params = model.init(1, 0.5, generators([0]), dtype=torch.float64)
    beyond = torch.zeros(1, len(model.shape), dtype=torch.long)
    beyond[0, -1] = model.shape[-1]
    with pytest.raises(ValueError, match="out of range"):
        model.evaluate(params, beyond)
    small = torch.zeros(1, len(model.shape), dtype=torch.uint8)
    torch.testing.assert_close(model.evaluate(params, small), model.end_to_end(params).reshape(1, -1)[:, :1])
    other = tuple(d + 1 for d in model.shape)
    task = complete_from_target(torch.ones(other, dtype=torch.float64), 3, [0])
    with pytest.raises(ValueError, match="does not match model shape"):
        task.loss(model, params)


def test_hierarchical_widths_and_width_cap_must_be_integers():
    """``widths=(2.7, ...)`` became widths 2, silently."""
    with pytest.raises(ValueError, match="widths"):
        HierarchicalFactorization((2, 3, 2, 2), widths=(2.7, 2, 2))
    with pytest.raises(ValueError, match="width_cap must be an integer"):
        HierarchicalFactorization((2, 3, 2, 2), width_cap=2.5)


@pytest.mark.parametrize("kind", KINDS)
def test_a_task_s_loss_does_not_check_its_indices_again(kind, monkeypatch):
    """The index check waits for the device; a task's indices were checked against its shape when it was made,
    and its loss checks the model's shape, so the loss (every step of an autograd model) skips it."""
    from implicitrank.factorizations import _protocol

    model = BUILD[kind]()
    params = model.init(2, 0.5, generators([0, 1]), dtype=torch.float64)
    task = _task(model, 2)
    calls = []
    monkeypatch.setattr(_protocol, "check_indices", lambda *args: calls.append(args))
    loss = task.loss(model, params)
    assert calls == []
    model.evaluate(params, task.indices)
    assert len(calls) == 1
    expected = (model.end_to_end(params).reshape(2, -1).gather(1, task.flat_indices()) - task.values).pow(2).mean(1)
    torch.testing.assert_close(loss, expected)
