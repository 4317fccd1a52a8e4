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
# # 4. Hierarchical tensor factorization and locality
#
# A CP factorization (tutorial 3) is a shallow network; a *hierarchical* tensor factorization is a deep one. It
# combines the modes along a **mode tree**: every node ν holds a matrix W^(ν), and bottom-up
#
# ```text
#     W_{ν,r} = Σ_{r'} W^(ν)[r', r] · ⊗_{c ∈ children(ν)} W_{c,r'},        W = W_{root,1}.
# ```
#
# Evaluated at one entry this is a deep convolutional arithmetic circuit: product pooling over siblings, then a
# 1×1 map. A *local component* (ν, r) — row r of W^(ν) with column r of each child's matrix, K_ν = |children| + 1
# vectors — has a norm σ_{ν,r}, and Razin, Maman & Cohen (ICML 2022, Theorem 1) showed that under gradient flow
#
# ```text
#     σ̇_{ν,r} = K_ν · γ_{ν,r} · σ_{ν,r}^(2−2/K_ν),
# ```
#
# the law of tutorials 1 and 3 once more. Local components are learned one at a time, which lowers the
# **hierarchical tensor rank**: the ranks of the matricizations of W at the nodes of the tree. For a convolutional
# network, whose tree joins neighbouring pixels first, low rank at a node means weak interaction between what lies
# inside the node and what lies outside: an implicit bias towards **locality**, which the paper counters with a
# regularizer.

# %%
import matplotlib.pyplot as plt
import torch

from implicitrank.cnn import IsSameClass, PlainCNN, TrainingConfig, digits_source, train_classifier
from implicitrank.factorizations import HierarchicalFactorization, generators
from implicitrank.measure import relative_error, singular_values
from implicitrank.measure.tensor import hierarchical_ranks, matricize
from implicitrank.optim import global_rmsprop
from implicitrank.tasks.hierarchical_truth import low_hierarchical_rank_tensor
from implicitrank.tasks.tensors import prefix_completion
from implicitrank.train import TrainConfig, train

torch.set_num_threads(1)  # small problems: one thread is fastest

# %% [markdown]
# ## Local component norms over a mode tree
#
# An order-4 tensor (mode size 4, 256 entries) of hierarchical rank 2 over the tree ((0, 1), (2, 3)), half of its
# entries observed. The factorization has width 8 at every internal node — room for rank 8 — and starts from
# factor entries of std 0.1 (the end tensor is a product of many factors, so its norm at init is about 4e-5). We
# train with global RMSprop and record the local component norms at the root (K = 3) and at the node (0, 1).

# %%
shape, tree = (4, 4, 4, 4), ((0, 1), (2, 3))
truth = low_hierarchical_rank_tensor(shape, 2, tree, seed=0, frobenius_norm=16.0)  # entries of RMS 1
task = prefix_completion(truth, 128, seed=0).to(torch.float32)
model = HierarchicalFactorization(shape, tree, widths=8)
node = model.tree.node_of((0, 1))
print("nodes:", dict(enumerate(model.tree.modes)), "root:", model.tree.root)


def measure(p, loss):
    return {"root": model.local_component_norms(p), "node": model.local_component_norms(p, node=node),
            "error": relative_error(model.end_to_end(p), task.target)}


params = model.init(1, torch.tensor([model.scale_for_entry_std(0.1)]), generators([0]))  # entries of std 0.1
state = train(model, task, params, global_rmsprop(eps=1e-6), torch.tensor([1e-2]),
              TrainConfig(max_steps=4000, loss_threshold=1e-6, record_every=25, record_per_decade=0, progress=False),
              measure=measure)
steps = state.history("step")
print(f"relative error {float(state.history('error')[-1, 0]):.4f} after {int(state.steps[0])} steps")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
for ax, key, title in zip(axes, ("root", "node"), ("root (K = 3)", "node (0, 1) (K = 3)")):
    norms = state.history(key)[:, 0]  # (T, 8): run 0, by component index
    for k, r in enumerate(norms[-1].argsort(descending=True)[:5]):
        ax.plot(steps, norms[:, r], label=f"$\\sigma_{{{k + 1}}}$")
    ax.set(yscale="log", xlabel="step", title=f"local component norms at the {title}")
axes[0].set_ylabel(r"$\sigma_{\nu,r}$")
axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))  # beside the panels, over no curve
plt.tight_layout()
plt.show()

# %% [markdown]
# At the root two local components take off, one after the other (the second near step 2,000); at the node (0, 1) the
# second follows the first within a few hundred steps. The other six stay one to two orders of magnitude below them.
#
# ## Hierarchical tensor rank
#
# `hierarchical_ranks` gives the numerical rank of W's matricization at every node of the tree (the hierarchical
# tensor rank) and, with `extra=`, at other splits of the modes. The tree constrains its own nodes, not the rest:
# the split {0, 2} against {1, 3} is no node of this tree, and its matricization has a higher rank. The ranks count
# singular values above 1% of the largest (`tol=1e-2`): the fit leaves a residue near 1e-3 of it in every split.

# %%
ranks = hierarchical_ranks(model, state.params, tol=1e-2, extra=[(0, 2)])
for modes, rank in zip(ranks.modes, ranks.ranks[0].tolist()):
    print(f"modes {modes} against the rest: rank {rank}")

learned = model.end_to_end(state.params)[0].double()
fig, ax = plt.subplots(figsize=(6, 3.6))
for modes, style in (((0, 1), "o-"), ((0, 2), "s--")):
    ax.semilogy(singular_values(matricize(learned[None], modes))[0], style, ms=4,  # matricize takes a batch
                label=f"modes {modes} vs the rest" + (" (a node)" if modes == (0, 1) else " (not a node)"))
ax.set(xlabel="index", ylabel="singular value", title="matricizations of the learned tensor")
ax.legend()
plt.show()

# %% [markdown]
# ## Locality in a convolutional network: Is Same Class
#
# A convolutional network is such a factorization with a tree that joins neighbouring pixels first, so low
# hierarchical rank means weak interaction between distant regions. The paper's test: two digits on one canvas, a
# gap d apart; is it the same class twice? At d = 0 a CNN learns this; as d grows it fails, though its receptive
# field covers the canvas. Razin et al. counter the bias with a regularizer that rewards interaction between two
# patches I, J: with ĝ the normalized gradient of the output with respect to patch I, and g̃ the same after patch J
# is swapped with another sample's,
#
# ```text
#     R = mean_b |⟨ĝ_b, g̃_b⟩|,        loss = BCE + λ·R
# ```
#
# (R = 1 when the gradient on I ignores J; lower R means more interaction). Here is a small version: a 6-layer
# plain CNN on 8×56 canvases of the built-in digits, 400 training pairs, 10 epochs, d ∈ {0, 40}, and λ = 1 at
# d = 40.

# %%
train_digits, test_digits = digits_source("train"), digits_source("test")
results = {}
for distance, reg_weight in ((0, 0.0), (40, 0.0), (40, 1.0)):
    pairs_train = IsSameClass.generate(train_digits, 400, (8, 56), distance, seed=0)
    pairs_test = IsSameClass.generate(test_digits, 400, (8, 56), distance, seed=1)
    torch.manual_seed(0)
    network = PlainCNN(in_channels=1, width=16, depth=6)
    config = TrainingConfig(max_epochs=10, epochs_after_fit=2, eval_every=100, reg_weight=reg_weight, progress=False)
    results[distance, reg_weight] = train_classifier(network, pairs_train, pairs_test, config)

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
names = [f"d = {d}, λ = {lam:g}" for d, lam in results]
left.bar(names, [100 * s["last_test_acc"] for s in results.values()], color=["C0", "C1", "C2"])
left.axhline(50, color="k", ls=":", label="chance")
left.set(ylabel="test accuracy (%)", title="Is Same Class on digits", ylim=(40, 100))
left.legend()
right.bar(names, [s["test_interaction"] for s in results.values()], color=["C0", "C1", "C2"])
right.set(ylabel="R on the test set", title="the regularizer's measure (lower: more interaction)")
plt.tight_layout()
plt.show()
for (d, lam), s in results.items():
    print(f"d = {d:2d}, λ = {lam:g}: train {s['last_train_acc']:.3f}, test {s['last_test_acc']:.3f}, "
          f"R {s['test_interaction']:.3f}")

# %% [markdown]
# Without the regularizer, accuracy falls towards chance as the two digits move apart: the locality bias. With
# λ = 1 the learned function interacts more across the gap (R falls), but at this size — a few hundred pairs, ten
# epochs — the regularized network has not yet fit its training set, and its accuracy tells little. At the quick
# scale of `implicitrank reproduce razin2022-locality` (a ResNet18 of width 1/8, 1000 pairs, up to 30 epochs, three
# seeds) λ = 1 gained about 6 points at d = 40 on seeds 0 and 1; the paper, on CIFAR-10 with full-width ResNets,
# reports about 8. `implicitrank locality is-same-class` runs such a study from the command line.
#
# **Reference.** N. Razin, A. Maman, N. Cohen, *Implicit Regularization in Hierarchical Tensor Factorization and
# Deep Convolutional Neural Networks*, ICML 2022.
