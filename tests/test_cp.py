"""CP tensor factorization: evaluation without forming the tensor, gradients, quantities, bad input."""

import math

import pytest
import torch

from implicitrank.factorizations import CPFactorization, Factorization, generators
from implicitrank.factorizations.cp import DIRECT_MAX_ORDER, cp_to_tensor


def all_indices(shape, dtype=torch.int64):
    return torch.stack(torch.unravel_index(torch.arange(math.prod(shape)), shape), dim=-1).to(dtype)


@pytest.mark.parametrize("shape", [(5,), (3, 4), (3, 4, 5), (2, 3, 2, 2), (17, 3, 2), (2,) * 10,
                                   (3, 2, 2, 3, 2, 2, 2, 2, 2), (17, 2, 2, 2, 2, 2, 2, 2, 2)])
# order <= 8: direct products; order > 8: log domain; mode size 17 > 16: gathered instead of one-hot
@pytest.mark.parametrize("index_dtype", [torch.uint8, torch.int16, torch.int64])
def test_evaluation_at_indices_equals_the_full_tensor(shape, index_dtype):
    model = CPFactorization(shape, components=3, init_mean=0.2)
    params = model.init(2, model.scale_for_entry_std(0.7), generators([0, 1]), dtype=torch.float64)
    full = model.end_to_end(params).reshape(2, -1)
    assert torch.allclose(model.evaluate(params, all_indices(shape, index_dtype)), full, rtol=1e-12, atol=1e-14)


def test_each_run_can_have_its_own_indices():
    shape = (2,) * 12  # above DIRECT_MAX_ORDER: the log-domain path
    assert len(shape) > DIRECT_MAX_ORDER
    model = CPFactorization(shape, components=4, init_mean=0.5)
    params = model.init(3, model.scale_for_entry_std(0.5), generators([0, 1, 2]), dtype=torch.float64)
    per_run = torch.randint(0, 2, (3, 50, 12), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    full = model.end_to_end(params).reshape(3, -1)
    flat = (per_run.long() * torch.tensor([2 ** (11 - k) for k in range(12)])).sum(-1)
    assert torch.allclose(model.evaluate(params, per_run), full.gather(1, flat), rtol=1e-12)


def test_end_to_end_is_the_sum_of_outer_products():
    model = CPFactorization((2, 3, 4), components=2)
    params = model.init(1, model.scale_for_entry_std(1.0), generators([3]), dtype=torch.float64)
    a, b, c = (f[0] for f in model.factor_matrices(params))
    expected = sum(torch.einsum("i,j,k->ijk", a[:, r], b[:, r], c[:, r]) for r in range(2))
    assert torch.allclose(model.end_to_end(params)[0], expected)
    assert torch.allclose(cp_to_tensor([a, b, c]), expected)


@pytest.mark.parametrize("shape", [(3, 4, 2), (17, 3, 2), (2,) * 11, (17, 2, 2, 2, 2, 2, 2, 2, 2)])
def test_gradients_of_a_completion_loss_match_autograd_through_the_dense_tensor(shape):
    model = CPFactorization(shape, components=3, init_mean=0.3)
    params = model.init(2, model.scale_for_entry_std(0.6), generators([4, 5]), dtype=torch.float64)
    gen = torch.Generator().manual_seed(1)
    observed = torch.randperm(math.prod(shape), generator=gen)[:20]
    indices, targets = all_indices(shape)[observed], torch.randn(2, 20, generator=gen, dtype=torch.float64)

    def grad(loss_of):
        leaf = params[0].clone().requires_grad_(True)
        return torch.autograd.grad(loss_of(leaf).sum(), leaf)[0]

    through_indices = grad(lambda f: (model.evaluate([f], indices) - targets).pow(2).mean(1))
    through_dense = grad(lambda f: (model.end_to_end([f]).reshape(2, -1)[:, observed] - targets).pow(2).mean(1))
    assert torch.allclose(through_indices, through_dense, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("shape", [(5,), (3, 4), (3, 4, 2), (2, 3, 4, 3), (3, 2, 2, 3, 2)])
def test_closed_form_gradient_through_the_dense_tensor_matches_autograd(shape):
    """The MTTKRP gradient (``loss_and_grad``, small tensors) equals autograd through ``evaluate``, for odd and
    even orders and unequal mode sizes (padding rows of the stacked factors get zero gradient)."""
    from implicitrank.factorizations import autograd_loss_and_grad, loss_and_grad
    from implicitrank.tasks import Completion

    model = CPFactorization(shape, components=4, init_mean=0.1)
    assert model.closed_form_gradient
    params = model.init(2, model.scale_for_entry_std(0.6), generators([4, 5]), dtype=torch.float64)
    gen = torch.Generator().manual_seed(1)
    count = max(2, math.prod(shape) // 3)
    observed = torch.stack([torch.randperm(math.prod(shape), generator=gen)[:count] for _ in range(2)])
    task = Completion(shape, torch.stack(torch.unravel_index(observed, shape), dim=-1),
                      torch.randn(2, count, generator=gen, dtype=torch.float64))
    loss, (grad,) = loss_and_grad(model, params, task)
    reference_loss, (reference,) = autograd_loss_and_grad(model, params, task)
    torch.testing.assert_close(loss, reference_loss, rtol=1e-12, atol=0)
    torch.testing.assert_close(grad, reference, rtol=1e-10, atol=1e-14)


def test_large_tensors_keep_the_gradient_through_evaluate():
    from implicitrank.factorizations.cp import DENSE_MAX_ENTRIES

    model = CPFactorization((2,) * 20, components=2)
    assert 2**20 > DENSE_MAX_ENTRIES and not model.closed_form_gradient
    with pytest.raises(ValueError, match="more than"):
        model.loss_and_grad(model.init(1, 0.1, generators([0])), lambda w: (w.sum(), w))


def test_log_domain_gradient_is_exact_at_a_zero_factor_entry():
    shape = (2,) * 10
    model = CPFactorization(shape, components=2, init_mean=1.0)
    params = model.init(1, model.scale_for_entry_std(0.3), generators([0]), dtype=torch.float64)
    params[0][0, 4, 1, 0] = 0.0  # component 0 vanishes wherever mode 4 takes value 1
    indices = all_indices(shape)
    leaf = params[0].clone().requires_grad_(True)
    g = torch.autograd.grad(model.evaluate([leaf], indices).sum(), leaf)[0]
    leaf = params[0].clone().requires_grad_(True)
    expected = torch.autograd.grad(model.end_to_end([leaf]).sum(), leaf)[0]
    assert torch.isfinite(g).all() and expected[0, 4, 1, 0] != 0
    assert torch.allclose(g, expected, rtol=1e-10, atol=1e-14)


def order_784_reference(factors: torch.Tensor, indices: torch.Tensor, mode_order=None) -> torch.Tensor:
    """Float64 direct products, mode by mode (an independent route from the log-domain evaluation)."""
    f = factors.double()
    value = torch.ones(f.shape[0], indices.shape[0], f.shape[-1], dtype=torch.float64)
    for n in mode_order if mode_order is not None else range(indices.shape[1]):
        value = value * f[:, n, indices[:, n].long(), :]
    return value.sum(-1)


def test_order_784_evaluation_is_finite_and_matches_a_float64_reference():
    model = CPFactorization((2,) * 784, components=15, init_mean=1.0)
    params = model.init(1, model.scale_for_entry_std(0.05), generators([0]))
    images = torch.randint(0, 2, (300, 784), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    values = model.evaluate(params, images)
    assert values.dtype == torch.float32 and torch.isfinite(values).all()
    assert torch.allclose(values.double(), order_784_reference(params[0], images), rtol=1e-4)

    leaf = params[0].clone().requires_grad_(True)
    grad = torch.autograd.grad(model.evaluate([leaf], images).sum(), leaf)[0]
    leaf64 = params[0].double().requires_grad_(True)
    expected = torch.autograd.grad(order_784_reference(leaf64, images).sum(), leaf64)[0]
    assert torch.isfinite(grad).all()
    assert torch.allclose(grad.double(), expected, rtol=1e-3, atol=1e-6 * expected.abs().max().item())


def test_order_784_evaluation_survives_partial_products_that_overflow_float32():
    # the first 392 modes are ~10, the last 392 ~0.1: every entry is O(1), but a running product over the
    # modes in order reaches 10^392 (beyond even float64); the reference multiplies them interleaved
    model = CPFactorization((2,) * 784, components=2)
    scale = torch.cat([torch.full((392,), 10.0), torch.full((392,), 0.1)]).view(1, 784, 1, 1)
    factors = scale * (1.0 + 0.01 * torch.randn(1, 784, 2, 2, generator=torch.Generator().manual_seed(0)))
    images = torch.randint(0, 2, (100, 784), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    assert torch.isinf(factors[:, :392].prod(1)).all()  # the direct float32 product overflows
    interleaved = [n for pair in zip(range(392), range(392, 784)) for n in pair]
    reference = order_784_reference(factors, images, interleaved)
    values = model.evaluate([factors], images)
    assert torch.isfinite(values).all() and torch.isfinite(reference).all()
    assert torch.allclose(values.double(), reference, rtol=1e-3)


def test_init_draws_n_mean_std_per_entry_leaves_padding_zero_and_is_reproducible_per_run():
    model = CPFactorization((3, 50, 40), components=200, init_mean=1.0)
    scales = torch.tensor([model.scale_for_entry_std(s) for s in (0.1, 0.01)], dtype=torch.float64)
    params = model.init(2, scales, generators([7, 8]), dtype=torch.float64)
    mode1 = params[0][:, 1, :50]
    assert abs(mode1.mean().item() - 1.0) < 0.01
    assert abs(mode1[0].std().item() - 0.1) < 0.005 and abs(mode1[1].std().item() - 0.01) < 0.0005
    assert (params[0][:, 0, 3:] == 0).all() and (params[0][:, 2, 40:] == 0).all()
    alone = model.init(1, model.scale_for_entry_std(0.01), generators([8]), dtype=torch.float64)
    assert torch.equal(alone[0][0], params[0][1])
    assert isinstance(model, Factorization) and model.num_components == 200


def test_default_components_do_not_constrain_the_rank():
    assert CPFactorization((8, 8, 8)).num_components == 64
    assert CPFactorization((10, 10, 10, 10)).num_components == 1000
    assert CPFactorization((3, 9, 5)).num_components == 15


def test_component_norms_factor_norms_and_unbalancedness():
    model = CPFactorization((3, 4, 5), components=4)
    params = model.init(2, model.scale_for_entry_std(1.0), generators([0, 1]), dtype=torch.float64)
    columns = model.factor_column_norms(params)
    by_index = model.component_norms(params)
    assert torch.allclose(by_index, columns.prod(1))
    assert torch.equal(model.quantities(params), by_index.sort(dim=-1, descending=True).values)
    assert model.quantity_name == "component_norms"
    sq = columns.pow(2)
    expected = torch.stack([max(abs(sq[b, n, r] - sq[b, m, r]) for r in range(4) for n in range(3) for m in range(3))
                            for b in range(2)])
    assert torch.allclose(model.unbalancedness(params), expected)

    balanced = model.balanced(params)
    assert torch.allclose(model.end_to_end(balanced), model.end_to_end(params))
    assert torch.allclose(model.component_norms(balanced), by_index)
    assert model.unbalancedness(balanced).max() < 1e-12


def test_component_norms_of_order_784_do_not_overflow():
    model = CPFactorization((2,) * 784, components=3, init_mean=1.0)
    norms = model.quantities(model.init(1, model.scale_for_entry_std(1e-3), generators([0])))
    expected = torch.full((1, 3), 392 * math.log(2.0), dtype=torch.float64)  # (√2)^784 = 2^392 > float32 max
    assert torch.isfinite(norms).all() and torch.allclose(norms.log(), expected, rtol=1e-3)


def test_inner_products_with_rank_one_tensors_need_no_dense_tensor():
    model = CPFactorization((3, 4, 2), components=5)
    params = model.init(2, model.scale_for_entry_std(1.0), generators([0, 1]), dtype=torch.float64)
    vectors = [torch.randn(7, d, dtype=torch.float64, generator=torch.Generator().manual_seed(d)) for d in (3, 4, 2)]
    a = torch.einsum("mi,mj,mk->mijk", *vectors)
    expected = torch.einsum("mijk,bijk->bm", a, model.end_to_end(params))
    assert torch.allclose(model.inner_rank_one(params, vectors), expected)


@pytest.mark.parametrize("kwargs, match", [
    ({"shape": (3, 0, 2)}, "shape"),
    ({"shape": ()}, "shape"),
    ({"shape": (2, 2), "components": 0}, "components"),
    ({"shape": (2,) * 784}, "components must be given"),
    ({"shape": (2, 2), "init_mean": float("nan")}, "init_mean"),
])
def test_bad_construction_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CPFactorization(**kwargs)


def test_bad_indices_and_init_are_refused():
    model = CPFactorization((3, 4, 5), components=2)
    params = model.init(1, model.scale_for_entry_std(0.1), generators([0]))
    with pytest.raises(ValueError, match="out of range"):
        model.evaluate(params, torch.tensor([[0, 4, 0]]))
    with pytest.raises(ValueError, match="out of range"):
        model.evaluate(params, torch.tensor([[0, -1, 0]]))
    with pytest.raises(ValueError, match="order 3"):
        model.evaluate(params, torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match="integer dtype"):
        model.evaluate(params, torch.tensor([[0.0, 1.0, 2.0]]))
    with pytest.raises(ValueError, match="init_scale"):
        model.init(1, 0.0, generators([0]))
    with pytest.raises(ValueError, match="one generator per run"):
        model.init(2, 0.1, generators([0]))


def test_one_hot_and_gathered_routes_give_the_same_values_and_gradients(monkeypatch):
    import implicitrank.factorizations.cp as cp

    model = CPFactorization((2, 3) * 6, components=4, init_mean=0.8)
    params = model.init(2, model.scale_for_entry_std(0.4), generators([0, 1]), dtype=torch.float64)
    indices = torch.stack([torch.randint(0, d, (60,), generator=torch.Generator().manual_seed(d)) for d in model.shape],
                          dim=-1)

    def value_and_grad():
        leaf = params[0].clone().requires_grad_(True)
        values = model.evaluate([leaf], indices)
        return values.detach(), torch.autograd.grad((values * torch.arange(60.0)).sum(), leaf)[0]

    one_hot = value_and_grad()
    monkeypatch.setattr(cp, "ONE_HOT_MAX_MODE_SIZE", 0)
    gathered = value_and_grad()
    assert torch.allclose(one_hot[0], gathered[0], rtol=1e-12) and torch.allclose(one_hot[1], gathered[1], rtol=1e-10)
