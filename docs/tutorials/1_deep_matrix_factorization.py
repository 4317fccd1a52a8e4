# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 1. Deep matrix factorization
#
# Matrix completion: recover a low-rank matrix `W*` from a few of its entries. With no explicit regularizer, fit the
# observed entries by gradient descent on a product of matrices W = W_N⋯W_1, starting near zero, and read off what
# it predicts for the unobserved ones. Arora, Cohen, Hu & Luo (NeurIPS 2019) found that deeper products complete
# better, better even than the nuclear-norm minimizer that depth 2 was conjectured to find, and explained why: the
# singular values of W move as
#
# ```text
#     σ̇_r = N · σ_r^(2−2/N) · ⟨−∇L(W), u_r v_rᵀ⟩        (Theorem 3; gradient flow, balanced init)
# ```
#
# so at depth N ≥ 2 a large singular value grows faster than a small one, and the values are learned one at a time.
# This tutorial shows the three in turn: the completion, the one-at-a-time learning, and the law itself, measured.

# %%
import matplotlib.pyplot as plt
import torch

from implicitrank.baselines import nuclear_norm_min
from implicitrank.factorizations import MatrixFactorization, generators
from implicitrank.measure import check_rates, effective_rank, relative_error, singular_values
from implicitrank.optim import global_rmsprop
from implicitrank.tasks import complete_from_target, low_rank_matrix
from implicitrank.theory import record_trajectory
from implicitrank.train import TrainConfig, train

torch.set_num_threads(1)  # small problems: one thread is fastest

# %% [markdown]
# ## Depth 1, 2, 3 against the nuclear norm
#
# A 50×50 matrix of rank 3 (entries of RMS 1), 600 of its 2500 entries observed. The loss is the mean over the observed
# entries of the squared error, `L(W) = mean_{(i,j)∈Ω} (W_ij − W*_ij)²`. Each depth trains from a small Gaussian init
# (`init_scale` is ‖W(0)‖_F, here 1e-2, against `‖W*‖_F = 50`) with the papers' global RMSprop (the step direction is
# the gradient; only its length adapts) until the loss is below 1e-5. The baseline is the minimum nuclear norm
# completion, `min ‖X‖_* subject to X_ij = W*_ij on Ω`.

# %%
target = low_rank_matrix(50, 50, rank=3, seed=0)
task = complete_from_target(target, 600, data_seeds=[0]).to(torch.float32)  # one run, one observation set

solutions = {}
for depth in (1, 2, 3):
    model = MatrixFactorization(50, 50, depth=depth)
    params = model.init(1, torch.tensor([1e-2]), generators([0]))
    state = train(model, task, params, global_rmsprop(), torch.tensor([1e-2]),
                  TrainConfig(max_steps=8000, loss_threshold=1e-5, progress=False))
    solutions[f"depth {depth}"] = model.end_to_end(state.params)[0].double()
solutions["nuclear norm"] = nuclear_norm_min(task.to(torch.float64)).solution

truth = target.double()
for name, w in solutions.items():
    print(f"{name:>12}: error ‖W−W*‖_F/‖W*‖_F = {float(relative_error(w[None], truth[None])[0]):.4f}, "
          f"effective rank {float(effective_rank(singular_values(w))):5.2f}")

# %% [markdown]
# Every method fits the 600 observations; they differ in what they put everywhere else. Depth 1 (gradient descent
# on W itself) leaves the unobserved entries near zero; depth 2 and the nuclear norm do much better; depth 3 nearly
# recovers `W*`. The singular values say why: depth 3 concentrates the energy in three values, as the truth does.

# %% tags=["front-page"]
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
names = list(solutions)
errors = [float(relative_error(solutions[n][None], truth[None])[0]) for n in names]
left.bar(names, errors, color=["C0", "C1", "C2", "C3"])
left.set(yscale="log", ylabel=r"$\|W - W^*\|_F\, /\, \|W^*\|_F$", title="50×50 rank 3, 600 observed entries")
for name, color in zip(names, ["C0", "C1", "C2", "C3"]):
    right.semilogy(singular_values(solutions[name])[:12], "o-", color=color, ms=3, label=name)
right.semilogy(singular_values(truth)[:3], "k*", ms=10, label="truth W*")
right.set(xlabel="index r", ylabel=r"$\sigma_r$", title="singular values of the completions", ylim=(1e-3, None))
right.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Singular values are learned one at a time
#
# Now plain gradient descent (lr 0.1) from the identity init W(0) = 1e-3·I, each factor 1e-3^(1/N)·I (balanced: every
# factor's Gram matrices agree; `init_scale` = ‖W(0)‖_F = 1e-3·√40) on a 40×40 rank-3 completion from 400 entries,
# recording W(t) and ∇L(W(t)) every 40 steps (`record_trajectory`; time t = lr·step). At depth 1 the singular values
# rise together from the start; at depth 2 they rise at different speeds, the top three far above the rest; at depth
# 3 they stay near zero, then take off one after another, and the rest stay small.

# %%
target = low_rank_matrix(40, 40, rank=3, seed=1)
task = complete_from_target(target, 400, data_seeds=[1]).to(torch.float64)
trajectories = {}
for depth in (1, 2, 3):
    model = MatrixFactorization(40, 40, depth=depth, init_method="identity")
    params = model.init(1, torch.tensor([1e-3 * 40**0.5]), generators([0]), dtype=torch.float64)
    trajectories[depth] = (model, record_trajectory(model, task, params, lr=0.1, steps=8000, every=40))

fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=True)
for ax, (depth, (_, trajectory)) in zip(axes, trajectories.items()):
    sigma = singular_values(trajectory.end_to_end[:, 0])  # (T, 40), descending
    for r in range(6):
        ax.plot(trajectory.times / 0.1, sigma[:, r], label=f"$\\sigma_{{{r + 1}}}$")
    ax.set(title=f"depth {depth}", xlabel="step", yscale="log")
axes[0].set_ylabel("singular value")
axes[0].legend(ncol=2, fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The law, measured
#
# `model.predicted_rates(params, gradient)` states Theorem 3 for a matrix factorization: the right-hand side
# N·σ_r^(2−2/N)·⟨−∇L(W), u_r v_rᵀ⟩ from the singular triplets of W and the gradient ∇L(W). `check_rates` compares
# it with the measured rate, the finite difference (σ_r(t+Δt) − σ_r(t))/Δt along the recorded trajectory, for the
# `top` values that grew. Gradient descent with a small step follows gradient flow, so they should agree — and the
# law of the wrong depth (`order=`) should not: that is what makes the check a test.

# %%
model, trajectory = trajectories[3]
check = check_rates(model, trajectory, top=3)
wrong = check_rates(model, trajectory, top=3, order=2)
steps = trajectory.times[1:] / 0.1
fig, ax = plt.subplots(figsize=(7, 4))
for r in range(3):
    ax.plot(steps, check.predicted[:, 0, r], color=f"C{r}", label=f"N·σ^(2−2/N)·⟨−∇L, u vᵀ⟩, r = {r + 1}")
    ax.plot(steps[::4], check.measured[::4, 0, r], "o", color=f"C{r}", ms=3, mfc="none",
            label=f"measured $\\dot\\sigma_{{{r + 1}}}$")
ax.plot(steps, wrong.predicted[:, 0, 0], "k:", label="the depth-2 law, r = 1 (wrong)")
ax.set(xlabel="step", ylabel=r"$d\sigma_r/dt$", title="depth 3: measured rates against Theorem 3")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
for depth, (model, trajectory) in trajectories.items():
    print(f"depth {depth}: relative error of the law {float(check_rates(model, trajectory, top=3).error[0]):.1e}")
print(f"depth 3 against the depth-2 law: {float(wrong.error[0]):.1e}")

# %% [markdown]
# The same protocol method exists for CP and hierarchical tensor factorizations (tutorials 3 and 4): one law,
# σ̇ = N·γ·σ^(2−2/N), for singular values, component norms and local component norms.
# `implicitrank reproduce arora2019-completion` and `arora2019-dynamics` rerun the paper's figures and check them
# against the published numbers.
#
# **Reference.** S. Arora, N. Cohen, W. Hu, Y. Luo, *Implicit Regularization in Deep Matrix Factorization*,
# NeurIPS 2019.
