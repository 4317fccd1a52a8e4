"""Tasks: completion and sensing observations, ground truths, and loaders for users' files.

Every task follows one protocol (:class:`Task`): ``shape``, ``values`` (B, M), ``batch``,
``num_observations``, ``dtype``, ``device``, a torch-like ``to`` and the per-run ``loss``.

Examples
--------
>>> import torch
>>> from implicitrank.tasks import complete_from_target, low_rank_matrix
>>> task = complete_from_target(low_rank_matrix(6, 5, rank=1), 12, data_seeds=[0, 1])
>>> task.batch, task.num_observations, task.to(torch.float32).dtype
(2, 12, torch.float32)
"""

from ._protocol import Task, check_task_matches, parse_to
from .completion import Completion, complete_from_target, minibatches, multi_indices, sample_observations
from .files import load_npz_completion, movielens_completion, read_movielens
from .ground_truth import low_rank_matrix
from .sensing import Sensing, gaussian_sensing

__all__ = [
    "Completion", "Sensing", "Task", "check_task_matches", "complete_from_target", "gaussian_sensing",
    "load_npz_completion", "low_rank_matrix", "minibatches", "movielens_completion", "multi_indices", "parse_to",
    "read_movielens", "sample_observations",
]
