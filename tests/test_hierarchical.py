"""Hierarchical tensor factorization: the ConvAC evaluation, gradients, local components, matricization
ranks, the incremental learning of local components and its theory (Razin, Maman & Cohen, ICML 2022)."""

from __future__ import annotations

import math

import pytest
import torch

from implicitrank.factorizations import Factorization, HierarchicalFactorization, generators
from implicitrank.factorizations.mode_tree import (
    ModeTree,
    balanced_binary_tree,
    opposite_modes_tree,
    square_windows_tree,
    tree_from_spec,
)
from implicitrank.measure import check_rates, relative_error
from implicitrank.measure.tensor import hierarchical_ranks, matricize
from implicitrank.optim import global_rmsprop
from implicitrank.tasks.completion import complete_from_target
from implicitrank.tasks.hierarchical_truth import low_hierarchical_rank_tensor
from implicitrank.theory import record_trajectory
from implicitrank.train import TrainConfig, train

TREES = [
    ((3, 4, 2, 3), None),  # balanced binary over adjacent modes
    ((2, 3, 2, 2, 3), ((0, (1, 2)), 4, 3)),  # non-binary, unbalanced, modes out of order
    ((3, 2, 3, 2), square_windows_tree(2, 2)),  # one node with four children
    ((2,) * 7, opposite_modes_tree(7)),
    ((2,) * 9, square_windows_tree(3, 3)),  # border windows of 2 and 1 cells
]


def all_indices(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.stack(torch.unravel_index(torch.arange(math.prod(shape)), shape), dim=-1)


def random_model(shape, tree, *, batch=2, cap=5, seed=0):
    model = HierarchicalFactorization(shape, tree, width_cap=cap)
    stds = torch.linspace(0.6, 1.4, batch).tolist()
    scales = torch.tensor([model.scale_for_entry_std(s) for s in stds], dtype=torch.float64)
    params = model.init(batch, scales, generators(list(range(seed, seed + batch))), dtype=torch.float64)
    return model, params


def test_hierarchical_factorization_follows_the_protocol():
    assert isinstance(HierarchicalFactorization((2, 2, 2)), Factorization)


@pytest.mark.parametrize(("shape", "tree"), TREES)
def test_evaluation_at_indices_equals_the_full_tensor(shape, tree):
    model, params = random_model(shape, tree)
    w = model.end_to_end(params)
    assert w.shape == (2, *shape)
    torch.testing.assert_close(model.evaluate(params, all_indices(shape)), w.reshape(2, -1), rtol=1e-10, atol=0)
    per_run = torch.stack([all_indices(shape).flip(0), all_indices(shape)])  # (B, M, N): each run its own
    torch.testing.assert_close(model.evaluate(params, per_run.to(torch.int16))[1], w[1].reshape(-1))
    torch.testing.assert_close(model.evaluate(params, per_run)[0], w[0].reshape(-1).flip(0))


def test_end_tensor_follows_the_node_recursion():
    """W = Σ_r W^(root)[r]·W_{a,r} ⊗ W_{b,r} with W_{a,r} = Σ_r' W^(a)[r', r] w^(0)_{r'} ⊗ w^(1)_{r'}."""
    model, params = random_model((2, 3, 2, 3), ((0, 1), (2, 3)), batch=1)
    w0, w1, w2, w3, wa, wb, wroot = (p[0] for p in params)
    left = torch.einsum("ip,jp,pr->ijr", w0, w1, wa)
    right = torch.einsum("kq,lq,qr->klr", w2, w3, wb)
    expected = torch.einsum("ijr,klr,r->ijkl", left, right, wroot[:, 0])
    torch.testing.assert_close(model.end_to_end(params)[0], expected)


def test_rank_one_inner_products_equal_contracting_the_full_tensor():
    shape, tree = TREES[1]
    model, params = random_model(shape, tree)
    g = torch.Generator().manual_seed(3)
    vectors = [torch.randn(6, d, generator=g, dtype=torch.float64) for d in shape]
    expected = torch.einsum("bpqrst,xp,xq,xr,xs,xt->bx", model.end_to_end(params), *vectors)
    torch.testing.assert_close(model.inner_rank_one(params, vectors), expected)


def test_deep_tree_evaluation_in_float32_is_accurate_where_plain_products_leave_its_range():
    """Order 256 (a 16x16 grid, 2x2 windows, widths 3): with std 0.8 the values below the root are
    ~1e-65..1e-55, far under float32's range, and a 1e30 root brings the entries back into it (~1e-35..1e-25).
    The rescaled circuit in float32 matches float64."""
    shape = (2,) * 256
    model = HierarchicalFactorization(shape, square_windows_tree(16, 16), widths=3)
    params = model.init(1, model.scale_for_entry_std(0.8), generators([0]), dtype=torch.float64)
    idx = torch.randint(0, 2, (5, 256), generator=torch.Generator().manual_seed(0))
    below_root = model.evaluate(params, idx)
    assert float(below_root.abs().max()) < torch.finfo(torch.float32).tiny
    params[-1] = params[-1] * 1e30
    reference = model.evaluate(params, idx)
    single = model.evaluate([p.float() for p in params], idx)
    torch.testing.assert_close(single.double(), reference, rtol=1e-4, atol=0)


def test_gradients_of_the_circuit_equal_autograd_through_the_full_tensor():
    """Autograd through the rescaled ConvAC evaluation equals autograd through the dense end tensor, and
    both pass a finite-difference check."""
    shape, tree = TREES[1]
    model, params = random_model(shape, tree, batch=1)
    target = low_hierarchical_rank_tensor(shape, 2, tree, seed=5, frobenius_norm=3.0)
    task = complete_from_target(target, 40, [1])

    def circuit_loss(*p):
        return task.loss(model, list(p)).sum()

    def dense_loss(*p):
        return task.dense_loss_and_grad(model.end_to_end(list(p)))[0].sum()

    leaves = [p.clone().requires_grad_(True) for p in params]
    circuit = torch.autograd.grad(circuit_loss(*leaves), leaves)
    dense = torch.autograd.grad(dense_loss(*leaves), leaves)
    for a, b in zip(circuit, dense):
        torch.testing.assert_close(a, b)
    assert torch.autograd.gradcheck(circuit_loss, leaves)


@pytest.mark.parametrize("shape, tree, widths", [
    ((2, 2, 2, 2), None, 2), ((4, 4, 4, 4), None, 2), ((3, 3, 3, 3), None, 2), ((8, 8, 8), None, 2),
    ((2, 3, 2), ((0, 1, 2),), None),  # a node with a single child
])
def test_gradients_equal_autograd_through_the_full_tensor_where_the_balanced_init_makes_exact_zeros(shape, tree,
                                                                                                     widths):
    """The balanced init's ±c entries make node outputs exactly zero at some entries; the circuit's gradient there
    is still the plain circuit's (it was dropped: an all-zero output's scale of ``tiny`` underflowed its ancestors)."""
    model = HierarchicalFactorization(shape, tree, widths=widths, init_method="balanced")
    params = model.init(4, 1.0, generators([0, 1, 2, 3]), dtype=torch.float64)
    target = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    task = complete_from_target(target, min(12, math.prod(shape) - 1), [0, 1, 2, 3])
    leaves = [p.clone().requires_grad_(True) for p in params]
    circuit = torch.autograd.grad(task.loss(model, leaves).sum(), leaves)
    dense = torch.autograd.grad(task.dense_loss_and_grad(model.end_to_end(leaves))[0].sum(), leaves)
    assert (model.end_to_end(params) == 0).any()  # the case in question arises
    for a, b in zip(circuit, dense):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_local_component_norms_and_tensors_satisfy_the_multilinear_identity():
    """For each vector a_j of local component (ν, r): <a_j, ∂L/∂a_j> = <∇L(W), T_{ν,r}> (W is multilinear
    in the component's K vectors) — the identity behind σ̇ = K·γ·σ^(2−2/K)."""
    shape, tree = TREES[1]
    model, params = random_model(shape, tree, batch=1)
    target = low_hierarchical_rank_tensor(shape, 2, tree, seed=5)
    task = complete_from_target(target, 50, [1])
    leaves = [p.clone().requires_grad_(True) for p in params]
    grads = torch.autograd.grad(task.loss(model, leaves).sum(), leaves)
    dense_grad = task.dense_loss_and_grad(model.end_to_end(params))[1]
    for node in model.tree.internal_nodes:
        kids = model.tree.children[node]
        norms = model.local_component_norms(params, node)[0]
        for r in range(model.node_widths[node]):
            expected_norm = params[node][0, r].norm() * math.prod(params[c][0, :, r].norm() for c in kids)
            torch.testing.assert_close(norms[r], expected_norm)
            inner = (dense_grad * model.local_component_tensor(params, node, r)).sum()
            torch.testing.assert_close((params[node][0, r] * grads[node][0, r]).sum(), inner)
            for c in kids:
                torch.testing.assert_close((params[c][0, :, r] * grads[c][0, :, r]).sum(), inner)
    torch.testing.assert_close(model.quantities(params)[0], model.local_component_norms(params)[0].sort(
        descending=True).values)


@pytest.mark.parametrize(("shape", "tree"), TREES)
def test_matricization_spectra_without_the_tensor_equal_dense_svds(shape, tree):
    model, params = random_model(shape, tree)
    w = model.end_to_end(params)
    for node, values in enumerate(model.matricization_singular_values(params)):
        dense = torch.linalg.svdvals(matricize(w, model.tree.modes[node]))
        k = values.shape[1]
        torch.testing.assert_close(values, dense[:, :k], rtol=1e-8, atol=1e-8 * float(dense.max()))
        assert float(dense[:, k:].sum()) <= 1e-8 * float(dense.max())  # the rest of the spectrum is zero


def test_ground_truth_has_the_requested_hierarchical_tensor_rank():
    shape = (4, 4, 4, 4)
    target = low_hierarchical_rank_tensor(shape, 3, seed=1, frobenius_norm=2.0)
    assert torch.linalg.vector_norm(target).item() == pytest.approx(2.0)
    ranks = {modes: int(torch.linalg.matrix_rank(matricize(target[None], modes), rtol=1e-9)[0])
             for modes in [(0,), (1,), (2,), (3,), (0, 1), (2, 3), (0, 2)]}
    # tree nodes: min(R_ν, R_Pa) = 3; across the tree, (0, 2) spans u_p ⊗ x_q for p, q ∈ [3]: rank 9
    assert ranks == {(0,): 3, (1,): 3, (2,): 3, (3,): 3, (0, 1): 3, (2, 3): 3, (0, 2): 9}


def test_matricization_ranks_cover_tree_nodes_and_extra_mode_sets():
    shape = (3, 3, 3, 3)
    model = HierarchicalFactorization(shape, widths=2)
    params = model.init(2, model.scale_for_entry_std(1.0), generators([0, 1]), dtype=torch.float64)
    result = hierarchical_ranks(model, params, extra=[(0, 2), (3,)])
    # R_ν = 2 bounds every tree node; (0, 2) spans u_p ⊗ x_q for p, q ∈ [2]: rank 4
    assert result.modes == ((0,), (1,), (2,), (3,), (0, 1), (2, 3), (0, 2), (3,))
    assert result.ranks.tolist() == [[2, 2, 2, 2, 2, 2, 4, 2]] * 2
    assert bool((result.effective_ranks >= 1).all()) and bool((result.effective_ranks <= result.ranks).all())
    with pytest.raises(ValueError, match="extra"):
        hierarchical_ranks(model, params, extra=[(0, 1, 2, 3)])


def test_from_small_init_root_local_components_are_learned_one_at_a_time_and_the_tensor_is_recovered():
    """HT rank 3 target (root local components in ratio 3:2:1), 180 of 256 entries, init std 0.1, global
    RMSprop: each of the three root local components takes off (reaches half its final norm) well after the
    previous one, the other five stay an order of magnitude below, and the tensor is recovered."""
    shape = (4, 4, 4, 4)
    target = low_hierarchical_rank_tensor(shape, 3, seed=0, frobenius_norm=16.0, root_spectrum=(3, 2, 1))
    task = complete_from_target(target, 180, [0]).to("cpu", torch.float32)
    model = HierarchicalFactorization(shape, width_cap=8)
    params = model.init(1, model.scale_for_entry_std(0.1), generators([0]))

    def measure(p, loss):
        return {"root": model.local_component_norms(p)}

    config = TrainConfig(max_steps=3000, loss_threshold=1e-5, record_every=20, record_per_decade=0, progress=False)
    state = train(model, task, params, global_rmsprop(eps=1e-6), torch.tensor([1e-2]), config, measure=measure)
    final = state.records[-1]["root"][0]
    order = final.argsort(descending=True)
    assert bool((final[order[3:]] < 0.1 * final[order[2]]).all())
    takeoff = [next(r["step"] for r in state.records if r["root"][0, k] > 0.5 * final[k]) for k in order[:3]]
    assert takeoff[1] - takeoff[0] >= 200 and takeoff[2] - takeoff[1] >= 200, takeoff
    assert relative_error(model.end_to_end(state.params).double(), target[None]).item() < 0.05


def test_local_component_rates_agree_with_the_theory_on_a_small_lr_balanced_run():
    """σ̇_{ν,r} = K·γ·σ^(2−2/K) at the root (three children: K = 4) and at a node with two (K = 3), over a gradient
    descent run (lr 0.03, 1000 steps) in which the components move from 0.35 to between 0.17 and 1; from an
    unbalanced (Gaussian) init the same formula is far off."""
    shape = (2, 3, 2, 2, 3)
    tree = ((0, (1, 2)), 4, 3)
    target = low_hierarchical_rank_tensor(shape, 2, tree, seed=2, frobenius_norm=4.0)
    task = complete_from_target(target, 50, [0])
    model = HierarchicalFactorization(shape, tree, widths=3, init_method="balanced")
    params = model.init(1, model.scale_for_entry_std(0.5), generators([0]), dtype=torch.float64)
    assert model.unbalancedness(params).item() < 1e-12
    trajectory = record_trajectory(model, task, params, lr=3e-2, steps=1000, every=50)
    for node in (model.tree.root, model.tree.node_of((0, 1, 2))):
        assert check_rates(model, trajectory, node=node).error.item() < 0.03, node
        # The check can fail: against the law of K = 1 (σ̇ = γ, exponent 0) the same trajectory is far off.
        assert check_rates(model, trajectory, node=node, order=1).error.item() > 0.5, node
    unbalanced = HierarchicalFactorization(shape, tree, widths=3)
    params = unbalanced.init(1, unbalanced.scale_for_entry_std(0.5), generators([0]), dtype=torch.float64)
    trajectory = record_trajectory(unbalanced, task, params, lr=3e-2, steps=100, every=10)
    assert check_rates(unbalanced, trajectory).error.item() > 0.3


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        (((0, 1), (1, 2)), "partition"),  # mode 1 twice
        (((0, 1), (3, 4)), "partition"),  # mode 2 missing
        (((0,), ()), "at least one child"),
        (3, "internal root"),
        (((0, 1.5),), "mode indices"),
        (((0, True),), "mode indices"),
        (((0, -1),), ">= 0"),
    ],
)
def test_a_tree_that_is_not_a_partition_of_the_modes_is_rejected(tree, message):
    with pytest.raises(ValueError, match=message):
        ModeTree(tree)


def test_bad_factorization_arguments_are_rejected():
    with pytest.raises(ValueError, match="tree must be over the 3 modes"):
        HierarchicalFactorization((2, 2, 2), ((0, 1), (2, 3)))
    with pytest.raises(ValueError, match="widths"):
        HierarchicalFactorization((2, 2, 2, 2), widths=(2, 2))
    with pytest.raises(ValueError, match="widths"):
        HierarchicalFactorization((2, 2, 2, 2), widths=0)
    with pytest.raises(ValueError, match="init_method"):
        HierarchicalFactorization((2, 2), init_method="orthogonal")
    with pytest.raises(ValueError, match="shape"):
        HierarchicalFactorization((2, 0))
    model = HierarchicalFactorization((2, 3))
    params = model.init(1, torch.tensor(1.0), generators([0]))
    with pytest.raises(ValueError, match="out of range"):
        model.evaluate(params, torch.tensor([[1, 3]]))
    with pytest.raises(ValueError, match="integer"):
        model.evaluate(params, torch.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="node"):
        model.local_component_norms(params, 0)


def test_tree_helpers_build_the_named_trees():
    assert balanced_binary_tree(4).nested == ((0, 1), (2, 3))
    assert balanced_binary_tree(5).nested == (((0, 1), 2), (3, 4))
    assert opposite_modes_tree(6).nested == (((0, 5), (1, 4)), (2, 3))
    assert square_windows_tree(4, 4).nested == ((0, 1, 4, 5), (2, 3, 6, 7), (8, 9, 12, 13), (10, 11, 14, 15))
    digits = square_windows_tree(8, 8)
    assert digits.num_modes == 64 and digits.height[digits.root] == 3
    assert tree_from_spec("windows", (2,) * 16) == square_windows_tree(4, 4)
    assert tree_from_spec("((0,2),(1,3))", (2,) * 4).modes[-2] == (1, 3)
    with pytest.raises(ValueError, match="tree must be one of"):
        tree_from_spec("spiral", (2,) * 4)
    with pytest.raises(ValueError, match=r"one of balanced, opposite, windows, windows:HxW\[:K\] or a nested tuple"):
        tree_from_spec("spiral", (2,) * 4)
    for spec, shape, fit in (("windows", (2,) * 6, "2x3"), ("windows:3x3", (2,) * 3, "1x3"),
                             ("windows:2x2:2", (2,) * 12, "3x4")):
        with pytest.raises(ValueError, match=rf"name a grid of {len(shape)} pixels, e\.g\. windows:{fit}$"):
            tree_from_spec(spec, shape)
        assert tree_from_spec(f"windows:{fit}", shape).num_modes == len(shape)  # the grid it names fits
    assert tree_from_spec("windows:2x3:3", (2,) * 6) == ModeTree(tuple(range(6)))  # the longer side: one pool
    for window in (1, 4, 100):  # 4 and 100 built the tree of window 3 without a word
        with pytest.raises(ValueError, match=r"window must be in \[2, 3\] for a 2x3 grid"):
            tree_from_spec(f"windows:2x3:{window}", (2,) * 6)
