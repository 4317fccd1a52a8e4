"""Completion tasks from a user's files: ``.npz`` (matrix + mask) and MovieLens ``u.data``."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import MissingInputError, UsageError
from .completion import Completion

MOVIELENS_100K_SHAPE = (943, 1682)


def _existing(path: str | Path, argument: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{argument}: no such file {str(path)!r}")
    return path


def load_npz_completion(path: str | Path, batch: int = 1) -> Completion:
    """Observed entries from an ``.npz`` holding ``matrix`` (m×n, the values; used as ground truth for
    errors when it is fully finite) and ``mask`` (m×n booleans, True where observed)."""
    path = _existing(path, "data")
    try:
        archive = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise UsageError(f"data: {path} is not a readable .npz file ({err})") from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise UsageError(f"data: {path} is a single array, not an .npz archive with 'matrix' and 'mask'")
    with archive:
        if "matrix" not in archive.files or "mask" not in archive.files:
            raise UsageError(f"data: {path} must contain arrays 'matrix' and 'mask', has {sorted(archive.files)}")
        matrix, mask = np.asarray(archive["matrix"], dtype=np.float64), np.asarray(archive["mask"], dtype=bool)
    if matrix.ndim != 2 or mask.shape != matrix.shape:
        raise UsageError(f"data: 'matrix' must be 2-D and 'mask' the same shape, got {matrix.shape} and {mask.shape}")
    if not mask.any():
        raise UsageError("data: 'mask' observes no entry")
    rows, cols = np.nonzero(mask)
    values = matrix[rows, cols]
    if not np.isfinite(values).all():
        raise UsageError("data: 'matrix' has NaN or inf at observed entries")
    target = torch.from_numpy(matrix).expand(batch, *matrix.shape) if np.isfinite(matrix).all() else None
    indices = torch.from_numpy(np.stack([rows, cols], axis=1)).long()
    return Completion(matrix.shape, indices, torch.from_numpy(values).expand(batch, -1).clone(), target=target)


def read_movielens(path: str | Path) -> np.ndarray:
    """Rows (user, item, rating) from a MovieLens ``u.data`` file (tab-separated
    ``user item rating timestamp``, ids from 1), as an (K, 3) float array with 0-based ids."""
    path = _existing(path, "data")
    try:
        table = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as err:
        raise UsageError(f"data: {path} is not a MovieLens u.data file (user item rating timestamp): {err}") from err
    if table.shape[1] != 4 or table.shape[0] == 0:
        raise UsageError(f"data: {path} must have 4 columns (user item rating timestamp), got {table.shape}")
    if (table[:, :2] < 1).any() or not np.isfinite(table).all():
        raise UsageError(f"data: {path} has user/item ids < 1 or non-finite values")
    return np.column_stack([table[:, 0] - 1, table[:, 1] - 1, table[:, 2]])


def movielens_completion(
    path: str | Path, num_observations: int = 10_000, seed: int = 0, batch: int = 1
) -> Completion:
    """MovieLens completion (Arora et al. 2019, Fig. 3): ``num_observations`` random ratings train,
    the rest are held out (``test_indices``/``test_values``). Ratings are not normalized."""
    table = read_movielens(path)
    shape = (max(MOVIELENS_100K_SHAPE[0], int(table[:, 0].max()) + 1),
             max(MOVIELENS_100K_SHAPE[1], int(table[:, 1].max()) + 1))
    if not 1 <= num_observations < len(table):
        raise UsageError(f"num_observations must be in [1, {len(table) - 1}] for {path}, got {num_observations}")
    order = torch.randperm(len(table), generator=torch.Generator().manual_seed(int(seed))).numpy()
    train, test = table[order[:num_observations]], table[order[num_observations:]]
    to_idx = lambda t: torch.from_numpy(t[:, :2].astype(np.int64))  # noqa: E731
    to_val = lambda t: torch.from_numpy(t[:, 2]).expand(batch, -1).clone()  # noqa: E731
    return Completion(shape, to_idx(train), to_val(train), test_indices=to_idx(test), test_values=to_val(test))
