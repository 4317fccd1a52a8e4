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
# # 5. In practice: over-parameterized layers
#
# The low-rank bias of depth is not only a theory of toy problems: it can be put to work in an ordinary network.
# Replace a `nn.Linear` by a `DeepLinear` — the same function class, y = W_N⋯W_1·x + b, stored as N factors — and
# train as usual. The end-to-end matrix W = W_N⋯W_1 then moves as
#
# ```text
#     σ̇_r = −N·σ_r^(2−2/N)·⟨∇L(W), u_r v_rᵀ⟩        (Arora et al., NeurIPS 2019, Thm. 3)
# ```
#
# so large singular values grow faster than small ones and the layer ends up close to low rank. After training,
# `collapse` turns every factorized layer back into a plain one (no cost at inference), and `compress` truncates
# each layer's SVD into two thin layers — cheap exactly because the layer is close to low rank.
#
# This tutorial trains a small classifier on the built-in 8×8 digits (scikit-learn's, 1200 training and 597 test
# images) twice, with plain and with depth-3 layers, and compares what comes out.

# %%
import matplotlib.pyplot as plt
import torch
from torch import nn
from torch.nn import functional as F

from implicitrank.nn import DeepLinear, SpectraLog, collapse, compress, layer_spectra
from implicitrank.nn.digits_experiment import accuracy, compression_curve, fit, load_digits

torch.set_num_threads(1)  # small layers: one thread is fastest
data = load_digits()
print("train", tuple(data.train_x.shape), "test", tuple(data.test_x.shape))

# %% [markdown]
# ## Over-parameterize the layers
#
# An MLP 64 → 64 → 64 → 10 whose three layers are `DeepLinear`s. With `depth=1` each is an ordinary linear layer;
# with `depth=3` each holds three factors, their inner widths min(in, out) by default (64×64 three times; the last
# layer 10×64, 10×10, 10×10). `init_scale` sets ‖W(0)‖_F ≈ init_scale·√min(in, out):
# small values bring out the low-rank bias.

# %%
def mlp(depth: int, init_scale: float = 0.1, seed: int = 0) -> nn.Sequential:
    g = torch.Generator().manual_seed(seed)
    layer = dict(depth=depth, init_scale=init_scale, generator=g)
    return nn.Sequential(nn.Flatten(), DeepLinear(64, 64, **layer), nn.ReLU(),
                         DeepLinear(64, 64, **layer), nn.ReLU(), DeepLinear(64, 10, **layer))


print(mlp(3))

# %% [markdown]
# ## Train, watching every layer's effective rank
#
# `fit` is a plain Adam loop over minibatches; `SpectraLog` is a callback that records, after each epoch, every
# layer's singular values and its effective rank exp H(σ/Σσ) (Roy & Vetterli 2007). Factorized layers are
# measured end to end.

# %%
models, logs = {}, {}
for depth in (1, 3):
    models[depth], logs[depth] = mlp(depth), SpectraLog()
    fit(models[depth], data.train_x, F.cross_entropy, data.train_y, epochs=30, batch_size=64, lr=3e-3,
        generator=torch.Generator().manual_seed(0), after_epoch=logs[depth])
    print(f"depth {depth}: test accuracy {accuracy(models[depth], data.test_x, data.test_y):.3f}")

fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), sharey=True)
for ax, name in zip(axes, ("1", "3", "5")):
    for depth, style in ((1, "--"), (3, "-")):
        ax.plot(logs[depth].steps, logs[depth].effective_ranks[name], style, label=f"depth {depth}")
    ax.set(title=f"layer {name} ({'64×64' if name != '5' else '10×64'})", xlabel="epoch")
axes[0].set_ylabel("effective rank")
axes[0].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# Both networks classify about equally well, but the depth-3 layers end at a much lower effective rank. The
# singular values of the middle layer show why: a few large ones, the rest pushed down.

# %%
fig, ax = plt.subplots(figsize=(6, 3.6))
for depth, style in ((1, "--"), (3, "-")):
    spectrum = layer_spectra(models[depth])["3"]
    ax.semilogy(spectrum.singular_values, style + "o", ms=3,
                label=f"depth {depth} (effective rank {spectrum.effective_rank:.1f})")
ax.set(xlabel="index r", ylabel=r"$\sigma_r$", title="singular values of the middle 64×64 layer")
ax.legend()
plt.show()

# %% [markdown]
# ## Collapse: the same function in plain layers
#
# Over-parameterization by linear factors is free at inference: `collapse` multiplies the factors out.

# %%
deep = models[3]
plain = collapse(deep)
print(plain)
with torch.no_grad():
    print("largest output difference:", float((plain(data.test_x) - deep(data.test_x)).abs().max()))
print("parameters trained:", sum(p.numel() for p in deep.parameters()),
      "→ after collapse:", sum(p.numel() for p in plain.parameters()))

# %% [markdown]
# ## Compress: keep the top singular triplets
#
# `compress(model, energy=e)` keeps in each layer the fewest singular values with Σ_{i≤r} σ_i² ≥ e·Σ σ_i²
# (Eckart–Young: the best rank-r approximation) and stores W ≈ (U_r S_r^½)(S_r^½ V_rᵀ) as two thin layers.

# %%
small, report = compress(deep, energy=0.99, example_input=data.test_x[:1])
print(report.table())
print(f"test accuracy {accuracy(deep, data.test_x, data.test_y):.3f} → {accuracy(small, data.test_x, data.test_y):.3f}")

# %% [markdown]
# Truncating every layer to the same rank r shows the difference the depth made: the depth-3 network keeps its
# accuracy at ranks where the plain one has already lost it.

# %%
ranks = (1, 2, 3, 4, 6, 8, 12, 16, 32, 64)
fig, ax = plt.subplots(figsize=(6, 3.6))
for depth, style in ((1, "--o"), (3, "-o")):
    curve = compression_curve(models[depth], data, ranks)
    ax.plot([p["kept_rank"] for p in curve], [p["test_accuracy"] for p in curve], style, ms=4,
            label=f"depth {depth}")
ax.set(xscale="log", xlabel="rank kept in every layer", ylabel="test accuracy", title="truncated SVD of each layer")
ax.legend()
plt.show()

# %% [markdown]
# The same tools work for convolutions (`DeepConv2d`) and for large weights held as tensor factorizations
# (`TensorizedLinear`); `implicitrank layers demo` runs a fuller version of this experiment from the command line.
#
# **References.** S. Arora, N. Cohen, W. Hu, Y. Luo, *Implicit Regularization in Deep Matrix Factorization*,
# NeurIPS 2019. S. Guo, J. M. Alvarez, M. Salzmann, *ExpandNets: Linear Over-parameterization to Train Compact
# Convolutional Networks*, NeurIPS 2020.
