import pytest
import torch

from implicitrank.factorizations import MatrixFactorization, autograd_loss_and_grad, generators, loss_and_grad
from implicitrank.tasks import complete_from_target, gaussian_sensing, low_rank_matrix


def _task(kind: str, rows: int, cols: int, batch: int):
    target = low_rank_matrix(rows, cols, 2, seed=1)
    if kind == "completion":
        return complete_from_target(target, rows * cols // 3, list(range(batch))).to("cpu", torch.float64)
    return gaussian_sensing(target, 40, seed=2, batch=batch).to("cpu", torch.float64)


@pytest.mark.parametrize("kind", ["completion", "sensing"])
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_closed_form_gradient_equals_autograd(kind, depth):
    model = MatrixFactorization(7, 5, depth, widths=(6,) * (depth - 1))
    params = model.init(3, torch.tensor([0.5, 1.0, 2.0]), generators([0, 1, 2]), dtype=torch.float64)
    task = _task(kind, 7, 5, 3)
    loss, grads = loss_and_grad(model, params, task)
    ref_loss, ref_grads = autograd_loss_and_grad(model, params, task)
    torch.testing.assert_close(loss, ref_loss)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)


def test_gradient_matches_finite_differences():
    model = MatrixFactorization(4, 3, 3)
    params = model.init(1, torch.tensor([1.0]), generators([5]), dtype=torch.float64)
    task = _task("completion", 4, 3, 1)
    _, grads = loss_and_grad(model, params, task)
    h = 1e-6
    for j, p in enumerate(params):
        for idx in [(0, 0, 0), (0, p.shape[1] - 1, p.shape[2] - 1)]:
            plus = [q.clone() for q in params]
            minus = [q.clone() for q in params]
            plus[j][idx] += h
            minus[j][idx] -= h
            numeric = (task.loss(model, plus) - task.loss(model, minus)) / (2 * h)
            assert float(numeric) == pytest.approx(float(grads[j][idx]), rel=1e-5, abs=1e-9)


def test_gaussian_init_has_the_papers_scale():
    model = MatrixFactorization(100, 100, 3)
    expected = 1e-3 * 100**0.5  # the paper's init scale 1e-3: ||W(0)||_F ≈ 1e-3·√n, our init_scale
    params = model.init(4, torch.tensor([expected] * 4), generators(range(4)), dtype=torch.float64)
    norms = torch.linalg.matrix_norm(model.end_to_end(params))
    torch.testing.assert_close(model.entry_std(expected), torch.tensor(1e-3 ** (1 / 3) / 10, dtype=torch.float64))
    # Product of three Gaussian factors: the norm concentrates around init_scale within ~20%.
    assert torch.all((norms > 0.7 * expected) & (norms < 1.3 * expected))


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_balanced_init_is_exactly_balanced_with_the_requested_norm(depth):
    model = MatrixFactorization(6, 4, depth, init_method="balanced")
    params = model.init(2, torch.tensor([1e-2, 1.0]), generators([0, 1]), dtype=torch.float64)
    assert float(model.unbalancedness(params).max()) < 1e-12
    norms = torch.linalg.matrix_norm(model.end_to_end(params))
    torch.testing.assert_close(norms, torch.tensor([1e-2, 1.0], dtype=torch.float64))


def test_identity_and_orthogonal_inits():
    ident = MatrixFactorization(5, 5, 3, init_method="identity")
    w = ident.end_to_end(ident.init(1, torch.tensor([0.1 * 5**0.5]), generators([0]), dtype=torch.float64))
    torch.testing.assert_close(w[0], 0.1 * torch.eye(5, dtype=torch.float64))  # ||0.1·I_5||_F = 0.1·√5
    orth = MatrixFactorization(6, 4, 2, init_method="orthogonal")
    # W(0) = Q_2 Q_1 has orthonormal columns: ||W(0)||_F = 2 leaves every factor exactly orthonormal
    params = orth.init(1, torch.tensor([2.0]), generators([0]), dtype=torch.float64)
    for p in params:
        gram = p[0].T @ p[0] if p.shape[1] >= p.shape[2] else p[0] @ p[0].T
        torch.testing.assert_close(gram, torch.eye(gram.shape[0], dtype=torch.float64))


def test_evaluate_equals_entries_of_end_to_end():
    model = MatrixFactorization(5, 7, 2)
    params = model.init(2, torch.tensor([1.0, 1.0]), generators([0, 1]), dtype=torch.float64)
    idx = torch.tensor([[0, 0], [4, 6], [2, 3]])
    w = model.end_to_end(params)
    torch.testing.assert_close(model.evaluate(params, idx), w[:, idx[:, 0], idx[:, 1]])


def test_same_seed_same_init_and_runs_are_independent_of_their_batch():
    model = MatrixFactorization(8, 8, 3)
    batch = model.init(3, torch.tensor([1.0, 2.0, 3.0]), generators([7, 8, 9]))
    alone = model.init(1, torch.tensor([2.0]), generators([8]))
    for b, a in zip(batch, alone, strict=True):
        torch.testing.assert_close(b[1:2], a)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"rows": 3, "cols": 3, "depth": 0}, "depth"),
        ({"rows": 0, "cols": 3}, "shape"),
        ({"rows": 3, "cols": 3, "init_method": "xavier"}, "init"),
        ({"rows": 3, "cols": 3, "depth": 3, "widths": (2,)}, "widths"),
        ({"rows": 3, "cols": 3, "depth": 2.5}, "depth must be an integer"),  # failed inside dims
        ({"rows": 3.5, "cols": 3}, "shape must be positive integers"),
        ({"rows": 3, "cols": 3, "depth": 2, "widths": (2.5,)}, "widths must be positive integers"),
    ],
)
def test_bad_model_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MatrixFactorization(**kwargs)


def test_non_positive_init_scale_is_rejected():
    with pytest.raises(ValueError, match="init_scale"):
        MatrixFactorization(3, 3).init(1, torch.tensor([0.0]), generators([0]))


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("shape", [(16, 16), (12, 9)])
def test_predicted_rates_at_repeated_singular_values_are_the_derivatives_of_the_sorted_ones(depth, shape):
    """At the identity init every singular value is the same, so u_r, v_r are any basis of it; the rates of the
    sorted values are −N·σ^(2−2/N)·eig(sym(U_cᵀ∇L V_c)), checked against (σ(θ − h∇L) − σ(θ))/h, h = 1e-7 (the
    per-vector projections were 0.07 against 3e-5 at depth 1)."""
    rows, cols = shape
    task = complete_from_target(low_rank_matrix(rows, cols, 2, seed=0), rows * cols // 2, [0, 1])
    model = MatrixFactorization(rows, cols, depth, init_method="identity")
    params = model.init(2, torch.tensor([4e-3, 1.0]), generators([0, 1]), dtype=torch.float64)
    _, grads = loss_and_grad(model, params, task)
    h = 1e-7
    stepped = [p - h * g for p, g in zip(params, grads, strict=True)]
    measured = (model.quantities(stepped) - model.quantities(params)) / h
    predicted = model.predicted_rates(params, task.dense_loss_and_grad(model.end_to_end(params))[1])
    torch.testing.assert_close(measured, predicted, rtol=1e-4, atol=1e-5 * float(predicted.abs().max()))
