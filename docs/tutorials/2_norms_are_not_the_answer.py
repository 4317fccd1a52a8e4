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
# # 2. Norms are not the answer
#
# A popular explanation of implicit regularization is that gradient descent finds the solution of smallest
# *norm* (for depth-2 matrix factorization: the nuclear norm). Razin & Cohen (NeurIPS 2020) built a problem where
# that cannot be true: a 2×2 matrix with three observed entries,
#
# ```text
#     W = [[ ?, 1 ],
#          [ 1, 0 ]]        observed: w₁₂ = 1, w₂₁ = 1, w₂₂ = 0;  w₁₁ free.
# ```
#
# Every completion `[[x, 1], [1, 0]]` has det = −1, so its rank is 2 for every finite x, and it approaches rank 1
# only as |x| → ∞. The minimum-norm completion (any norm) is x = 0. This tutorial shows that gradient flow on a
# deep factorization W = W_N⋯W_1 goes the other way: |w₁₁| → ∞, every norm grows without bound, and the
# effective rank falls towards 1.

# %%
import matplotlib.pyplot as plt
import torch

from implicitrank.experiments.razin2020_norms import OBSERVED, init_with_det_sign
from implicitrank.factorizations import MatrixFactorization
from implicitrank.flow import integrate
from implicitrank.measure import effective_rank
from implicitrank.tasks import Completion
from implicitrank.train import TrainConfig

torch.set_num_threads(1)  # a 2×2 problem gains nothing from more threads

# %% [markdown]
# ## The task and the runs
#
# `Completion(shape, indices, values)` holds the observations, one row of values per run. We start three depths
# from small *balanced* initializations (the factors' Gram matrices agree, W_{j+1}ᵀW_{j+1} = W_jW_jᵀ, the
# setting of the theorem) with det W(0) > 0; `init_with_det_sign` keeps the seeds whose product has that sign.
# The loss is the mean over the three observations of the squared error (the library's convention), and we follow
# gradient flow itself with an adaptive Runge–Kutta integrator, `integrate`.

# %%
task = Completion((2, 2), torch.tensor(OBSERVED), torch.tensor([[1.0, 1.0, 0.0]] * 2, dtype=torch.float64))


def follow_flow(depth: int, sign: int = +1, runs: int = 2):
    """Gradient flow from balanced inits with sign(det W(0)) = sign; W(t), det and the loss at every step."""
    model = MatrixFactorization(2, 2, depth)
    params, _ = init_with_det_sign(depth, "balanced", 1e-3, sign, runs)
    measure = lambda p, loss: {"w": model.end_to_end(p), "det": torch.linalg.det(model.end_to_end(p))}  # noqa: E731
    config = TrainConfig(max_steps=4_000, loss_threshold=1e-4, record_every=1, record_per_decade=0, progress=False)
    state = integrate(model, task, params, config, rtol=1e-6, atol=1e-12, measure=measure)
    return {key: state.history(key) for key in ("w", "det", "train_loss", "time")}  # each (T, runs, …)


flows = {depth: follow_flow(depth) for depth in (2, 3, 4)}
for depth, h in flows.items():
    w = h["w"][-1, 0]
    print(f"depth {depth}: loss {float(h['train_loss'][-1, 0]):.1e}, W(end) = {w.numpy().round(3).tolist()}")

# %% [markdown]
# ## |w₁₁| grows as the loss falls
#
# With ℓ = ½·Σ(squared errors) the paper's loss, det W > 0 forces
#
# ```text
#     |w₁₁| ≥ (1 − √(2ℓ))² / √(2ℓ)   →  ∞   as ℓ → 0,
# ```
#
# because a matrix that fits the three observations up to ℓ and keeps a positive determinant must have a large
# top-left entry. Depths 3 and 4 follow |w₁₁| ≈ 1/√(2ℓ) (depth 3's curve lies under depth 4's); depth 2 stalls on a
# plateau and ends below the bound: its determinant decays exponentially, reaches the noise level of the integration
# and turns negative, where the bound no longer applies (see below).

# %%
fig, ax = plt.subplots(figsize=(6, 4))
for depth, h in flows.items():
    half_sum = 1.5 * h["train_loss"][:, 0]  # ℓ = ½Σ = 1.5 × (mean over the three observations)
    ax.plot(half_sum, h["w"][:, 0, 0, 0].abs(), label=f"depth {depth}")
ell = torch.logspace(-6, -0.5, 100, dtype=torch.float64)
ax.plot(ell, (1 - (2 * ell).sqrt()) ** 2 / (2 * ell).sqrt(), "k--", label="bound (1−√(2ℓ))²/√(2ℓ)")
ax.set(xscale="log", yscale="log", xlabel="loss ℓ = ½Σ (squared errors)", ylabel="|w₁₁|",
       title="gradient flow, det W(0) > 0")
ax.invert_xaxis()
ax.legend()
plt.show()

# %% [markdown]
# ## Every norm grows while the rank falls
#
# Along the depth-3 trajectory, after a first dip (to t ≈ 10), the nuclear, Frobenius and spectral norms all grow
# with |w₁₁|, and coincide once the rank is 1, while the effective rank exp H(σ/Σσ) (Roy & Vetterli 2007), after a
# first rise, goes down towards 1. No norm is being minimized; something closer to rank is.

# %%
h = flows[3]
s = torch.linalg.svdvals(h["w"][:, 0])  # (T, 2) singular values of run 0 along the flow
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
left.plot(h["time"][:, 0], s.sum(1), label=r"nuclear $\|W\|_*$")
left.plot(h["time"][:, 0], s.pow(2).sum(1).sqrt(), label=r"Frobenius $\|W\|_F$")
left.plot(h["time"][:, 0], s[:, 0], label="spectral ‖W‖₂")
left.set(xscale="log", yscale="log", xlabel="flow time t", ylabel="norm", title="depth 3: every norm grows")
left.legend()
right.plot(h["time"][:, 0], effective_rank(s))
right.axhline(1.0, color="k", ls=":")
right.set(xscale="log", xlabel="flow time t", ylabel="effective rank", title="…while the effective rank falls")
plt.tight_layout()
plt.show()
print(f"end: nuclear norm {float(s[-1].sum()):.1f} (minimum-norm completion: 2.0), "
      f"effective rank {float(effective_rank(s[-1:])):.3f} (minimum-norm completion: 2.0)")

# %% [markdown]
# ## The det-sign theorem
#
# Why can the flow not settle at a small completion? For a balanced initialization, gradient flow keeps the sign
# of det W(t) (Razin & Cohen 2020, Lemma 1): a singular value of W cannot reach zero in finite time, since
#
# ```text
#     σ̇_r = −N·σ_r^(2−2/N)·⟨∇L(W), u_r v_rᵀ⟩
# ```
#
# vanishes with σ_r. Every completion of our problem has det = −1 < 0, so from det W(0) > 0 the flow can only
# approach the set of completions "from the positive side", which forces |w₁₁| → ∞. Runs started with
# det W(0) < 0 are free to converge to a finite completion.

# %%
negative = {depth: follow_flow(depth, sign=-1) for depth in (3,)}
fig, ax = plt.subplots(figsize=(6, 4))
for depth, h in flows.items():
    ax.plot(h["time"][:, 0], h["det"][:, 0], label=f"depth {depth}, det W(0) > 0")
h = negative[3]
ax.plot(h["time"][:, 0], h["det"][:, 0], "k--", label="depth 3, det W(0) < 0")
ax.set(xscale="log", xlabel="flow time t", ylabel="det W(t)", title="the sign of det W (depth 2: see below)")
ax.set_yscale("symlog", linthresh=1e-9)  # linear only within ±1e-9: the small positive dets stay visible
ax.axhline(0.0, color="grey", lw=0.5)
ax.legend()
plt.show()
for depth, h in flows.items():
    print(f"depth {depth} from det > 0: smallest det along the flow {float(h['det'][:, 0].min()):.2e}")
print(f"depth 3 from det < 0: final W = {negative[3]['w'][-1, 0].numpy().round(3).tolist()}")

# %% [markdown]
# At depth 2 the determinant decays exponentially (σ̇ ∝ σ at N = 2) to the noise level of the numerical integration
# (about 6e-15 here, below the integrator's absolute tolerance of 1e-12), where its sign is noise; it crosses zero
# here: that run settles at a finite completion with det W < 0. At depths 3
# and 4 it decays only polynomially and stays clearly positive, and |w₁₁| keeps growing. The experiment
# `implicitrank reproduce razin2020-norms` checks all of this against the paper's figures, over seeds, with
# plain gradient descent as published.
#
# **Reference.** N. Razin, N. Cohen, *Implicit Regularization in Deep Learning May Not Be Explainable by Norms*,
# NeurIPS 2020.
