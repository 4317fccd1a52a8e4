"""The defaults the command line shows in ``--help``, importable without torch.

Building the parsers must stay cheap (``implicitrank --help`` answers in well under a second), so the
parsers cannot import the library's configuration classes, which load torch, submitit or scikit-learn.
The values here mirror those classes' defaults; ``tests/test_cli.py`` checks that every one of them equals
its library counterpart (``RunConfig``, ``SlurmOptions``, ``DigitsConfig``, the optimizer and experiment
registries), so the two cannot drift apart. ``TENSOR`` and ``HIERARCHICAL`` are the exception: the tensor
commands' own problem and stopping rule, on top of ``RunConfig``'s (a sweep of ``cp`` or ``ht`` runs names its own).
"""

from __future__ import annotations

# run.RunConfig (the matrix paper's set-up, Arora et al. 2019).
RUN = {
    "shape": (100, 100), "rank": 5, "task": "completion", "num_observations": 2000, "depth": 3,
    "init": "gaussian", "init_scale": 1e-3, "optimizer": "global-rmsprop", "lr": 1e-2, "eps": 1e-4,
    "rtol": 1e-4, "atol": 1e-9, "flow_method": "dopri5", "max_steps": 100_000, "loss_threshold": 1e-6,
    "dtype": "float32", "device": "auto", "record_every": 0, "record_per_decade": 20, "checkpoint_every": 2000,
    "top": 10,
}
# tf / htf: the tensor papers' global RMSprop eps (Razin et al. 2021, 2022: 1e-6; papers.md, conventions)
# and a small order-3 problem: 8×8×8 of CP rank 3, Razin & Cohen 2020's order-3 tensor completion (papers.md; its
# rank 1 and 3). The matrix paper's rank 5 from 200 of 512 entries was out of reach: tf stopped at its 100,000-step
# cap with error 4.6 (it converges from 300), htf with 0.47; from rank 3 tf converges in 2,947 steps (error 2.3e-3).
TENSOR = {**RUN, "shape": (8, 8, 8), "rank": 3, "num_observations": 200, "eps": 1e-6}
# htf stops where Razin et al. 2022's HT runs stop, train MSE < 5e-5 (papers.md): its last decade is slow (from rank
# 3, 3.5e-5 at 25,000 steps and 3.3e-5 at 100,000, error 1.3e-2 and 8.9e-3), so at 1e-6 every default run hit the
# cap; at 5e-5 the default run stops at 16,665 steps (21 s) with error 2.2e-2.
HIERARCHICAL = {**TENSOR, "loss_threshold": 5e-5}
# tf / htf: the tensor papers' init, a per-entry std of the factors (papers.md): 1e-3 for CP (Razin & Cohen 2020's
# 8×8×8 completion with R = 64, Razin et al. 2022's CP dynamics), 1e-2 for HT (Razin et al. 2022's HT dynamics).
# It becomes the init_scale (||W(0)||_F) through the model's ``scale_for_entry_std``: 1.8e-7 for the CP default.
INIT_STD = {"cp": 1e-3, "ht": 1e-2}
TASKS = ("completion", "sensing")
METHODS = ("gd", "global-rmsprop", "adam", "gradient-flow")  # run.METHODS
FLOW_METHODS = ("dopri5", "bosh3", "rkc")  # flow.METHODS
DTYPES = ("float32", "float64")  # run.DTYPES
MATRIX_INITS = ("gaussian", "balanced", "identity", "orthogonal")
CP_INITS = ("gaussian", "balanced")  # CPFactorization.inits
HT_INITS = ("gaussian", "balanced")  # HierarchicalFactorization.inits

SCALES = ("test", "quick", "paper")  # experiments.SCALE_NAMES
EXECUTORS = ("serial", "local", "slurm")  # sweeps.executors.EXECUTORS
SLURM = {"time": 60, "cpus": 1, "gpus": 0, "array_parallelism": 256}  # sweeps.executors.SlurmOptions
SLURM_MIN_TIME = 3  # sweeps.executors.MIN_TIME

# nn.digits_experiment.DigitsConfig (``implicitrank layers demo``).
DIGITS = {
    "architectures": ("mlp", "cnn"), "depths": (1, 2, 3), "hidden": 64, "init_scale": 0.3, "epochs": 30,
    "batch_size": 64, "lr": 3e-3, "kept_ranks": (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64), "latent": 32,
    "autoencoder_depths": (1, 4), "autoencoder_init_scale": 0.1, "autoencoder_epochs": 40, "seed": 0,
}
