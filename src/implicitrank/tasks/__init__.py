"""Tasks: completion and sensing observations, ground truths, and loaders for users' files."""

from .completion import Completion, complete_from_target, sample_observations
from .files import load_npz_completion, movielens_completion, read_movielens
from .ground_truth import low_rank_matrix
from .sensing import Sensing, gaussian_sensing

__all__ = [
    "Completion", "Sensing", "complete_from_target", "gaussian_sensing", "load_npz_completion",
    "low_rank_matrix", "movielens_completion", "read_movielens", "sample_observations",
]
