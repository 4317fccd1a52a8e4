"""Completion tasks from a user's files: ``.npz`` (matrix + mask) and MovieLens ``u.data``."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import MissingInputError, UsageError
from .completion import Completion

MOVIELENS_100K_SHAPE = (943, 1682)
ACCEPTED = ("accepted data files: .npz with arrays 'matrix' and 'mask' (same m×n shape), or a MovieLens u.data "
            "text file (user item rating timestamp per line)")


def _existing(path: str | Path, argument: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{argument}: no such file {str(path)!r}")
    return path


def load_npz_completion(path: str | Path, batch: int = 1) -> Completion:
    """Observed entries from an ``.npz`` holding ``matrix`` and ``mask``.

    Parameters
    ----------
    path : str or Path
        The file: ``matrix`` (m×n, the values; used as ground truth for errors when it is fully finite) and
        ``mask`` (m×n booleans, True where observed).
    batch : int, optional
        Number of runs B sharing the observations. Default 1.

    Returns
    -------
    Completion
        Shape (m, n), the observed entries as (M, 2) indices and (B, M) values, float64.

    Raises
    ------
    MissingInputError
        When ``path`` is not a file.
    UsageError
        When the file is not a readable ``.npz`` archive, lacks ``matrix`` or ``mask``, their shapes differ or
        are not 2-D, no entry is observed, or an observed value is NaN or inf.
    """
    path = _existing(path, "data")
    try:
        archive = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise UsageError(f"data: {path} is not a readable .npz file ({err})") from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise UsageError(f"data: {path} is a single array, not an .npz archive; {ACCEPTED}")
    with archive:
        if "matrix" not in archive.files or "mask" not in archive.files:
            raise UsageError(f"data: {path} must contain arrays 'matrix' and 'mask', has {sorted(archive.files)}")
        try:
            arrays = archive["matrix"], archive["mask"]
        except ValueError as err:  # object arrays: pickles are never loaded
            raise UsageError(f"data: {path} holds an array numpy cannot read without pickle ({err}); {ACCEPTED}") \
                from err
    matrix, mask = _real_matrix(arrays[0], path), _boolean_mask(arrays[1], path)
    if matrix.ndim != 2 or mask.shape != matrix.shape:
        raise UsageError(f"data: 'matrix' must be 2-D and 'mask' the same shape, got {matrix.shape} and {mask.shape}")
    if not mask.any():
        raise UsageError("data: 'mask' observes no entry")
    rows, cols = np.nonzero(mask)
    values = matrix[rows, cols]
    if not np.isfinite(values).all():
        raise UsageError("data: 'matrix' has NaN or inf at observed entries")
    if not values.any():
        raise UsageError("data: every observed value of 'matrix' is 0 (errors relative to the target are undefined)")
    target = torch.from_numpy(matrix).expand(batch, *matrix.shape) if np.isfinite(matrix).all() else None
    indices = torch.from_numpy(np.stack([rows, cols], axis=1)).long()
    return Completion(matrix.shape, indices, torch.from_numpy(values).expand(batch, -1).clone(), target=target)


def _real_matrix(array: np.ndarray, path: Path) -> np.ndarray:
    """'matrix' as float64; booleans, integers and floats only (a complex part would be dropped, text refused)."""
    if array.dtype.kind not in "biuf":
        raise UsageError(f"data: 'matrix' in {path} must hold real numbers (bool, integer or float), got dtype "
                         f"{array.dtype}")
    return np.asarray(array, dtype=np.float64)


def _boolean_mask(array: np.ndarray, path: Path) -> np.ndarray:
    """'mask' as booleans: a boolean array, or numbers that are all 0 or 1 (any other value is a mistake)."""
    if array.dtype.kind != "b" and (array.dtype.kind not in "iuf" or not np.isin(array, (0, 1)).all()):
        found = np.unique(array)[:5].tolist() if array.dtype.kind in "iuf" else str(array.dtype)
        raise UsageError(f"data: 'mask' in {path} must be boolean or 0/1 (True where observed), got {found}")
    return np.asarray(array, dtype=bool)


def read_movielens(path: str | Path) -> np.ndarray:
    """Rows (user, item, rating) from a MovieLens ``u.data`` file, with 0-based ids.

    The file is whitespace-separated ``user item rating timestamp`` per line, ids from 1; blank lines are
    skipped.

    Parameters
    ----------
    path : str or Path
        The ``u.data`` file.

    Returns
    -------
    numpy.ndarray
        (K, 3) float64: user, item (0-based) and rating.

    Raises
    ------
    MissingInputError
        When ``path`` is not a file.
    UsageError
        On a non-text file, a malformed line (reported with its 1-based line number), a rating outside 1–5, a
        (user, item) pair rated twice, or no ratings.
    """
    path = _existing(path, "data")
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError as err:
        raise UsageError(f"data: {path} is not a MovieLens u.data text file (user item rating timestamp): "
                         f"{err}; {ACCEPTED}") from err
    except PermissionError as err:
        raise UsageError(f"data: {path} cannot be read: {err.strerror}") from err
    rows, seen = [], {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 4:
            raise UsageError(f"data: {path} line {number} must have 4 columns (user item rating timestamp), "
                             f"got {len(fields)}: {line[:60]!r}")
        try:
            row = [float(v) for v in fields]
            if "_" in line:  # float() reads 1_0 as 10
                raise ValueError(line)
        except ValueError as err:
            raise UsageError(f"data: {path} line {number} is not a MovieLens u.data row (user item rating "
                             f"timestamp, numbers): {line[:60]!r}") from err
        if min(row[:2]) < 1 or not all(math.isfinite(v) for v in row) or any(v != int(v) for v in row[:2]):
            raise UsageError(f"data: {path} line {number}: user and item ids must be integers >= 1 and every "
                             f"value finite, got {line[:60]!r}")
        if not 1 <= row[2] <= 5:
            raise UsageError(f"data: {path} line {number}: ratings must be in 1..5 (MovieLens stars), got "
                             f"{line[:60]!r}")
        pair = (int(row[0]), int(row[1]))
        if pair in seen:
            raise UsageError(f"data: {path} line {number}: user {pair[0]} rated item {pair[1]} again (first on line "
                             f"{seen[pair]}); each (user, item) pair must be rated once")
        seen[pair] = number
        rows.append(row)
    if not rows:
        raise UsageError(f"data: {path} holds no ratings (an empty MovieLens u.data file)")
    table = np.asarray(rows, dtype=np.float64)
    return np.column_stack([table[:, 0] - 1, table[:, 1] - 1, table[:, 2]])


def _movielens_shape(table: np.ndarray, largest: int = 10**8) -> tuple[int, int]:
    """Users × items: MovieLens 100K's 943 × 1682, or more where the ids go beyond (the factors are dense, so ids
    that would make more than ``largest`` entries are refused: user 100000000 asked for 1.3 TB)."""
    shape = (max(MOVIELENS_100K_SHAPE[0], int(table[:, 0].max()) + 1),
             max(MOVIELENS_100K_SHAPE[1], int(table[:, 1].max()) + 1))
    if shape[0] * shape[1] > largest:
        raise UsageError(f"data: user ids up to {shape[0]} and item ids up to {shape[1]} make a dense "
                         f"{shape[0]}×{shape[1]} matrix, more than {largest:.0e} entries; renumber the ids from 1")
    return shape


def data_format(path: str | Path) -> str:
    """``"npz"`` or ``"movielens"``, from the file name; other binary formats (``.npy``, ...) are refused."""
    suffix = Path(path).suffix.lower()
    if suffix == ".npz":
        return "npz"
    if suffix in (".npy", ".csv", ".mat", ".pt", ".pkl", ".h5", ".zip", ".gz"):
        raise UsageError(f"data: {str(path)!r} is a {suffix} file; {ACCEPTED}")
    return "movielens"


def data_shape(path: str | Path) -> tuple[int, int]:
    """The (rows, cols) of the completion problem a data file holds (what ``shape`` must be)."""
    if data_format(path) == "npz":
        return tuple(load_npz_completion(path).shape)
    return _movielens_shape(read_movielens(path))


def data_observations(path: str | Path) -> int | None:
    """The observed entries a data file fixes: a ``.npz`` mask's count (what ``num_observations`` must be); None for
    MovieLens, whose training ratings are sampled (``num_observations`` of them)."""
    return load_npz_completion(path).num_observations if data_format(path) == "npz" else None


def movielens_completion(
    path: str | Path, num_observations: int = 10_000, seed: int = 0, batch: int = 1
) -> Completion:
    """MovieLens completion: ``num_observations`` random ratings train, the rest are held out.

    The held-out ratings are ``test_indices``/``test_values``. Ratings are not normalized. The shape is at
    least 943 × 1682 (MovieLens 100K).

    Parameters
    ----------
    path : str or Path
        The ``u.data`` file.
    num_observations : int, optional
        Ratings to train on, in [1, K − 1]. Default 10,000.
    seed : int, optional
        Seeds which ratings train and which are held out. Default 0.
    batch : int, optional
        Runs B, all trained on the same split. Default 1.

    Returns
    -------
    Completion
        The training ratings, with the rest as test entries; no target.

    Raises
    ------
    MissingInputError
        When ``path`` is not a file.
    UsageError
        On a malformed file or ``num_observations`` out of range.

    References
    ----------
    S. Arora, N. Cohen, W. Hu, Y. Luo, "Implicit Regularization in Deep Matrix Factorization", NeurIPS 2019,
    Figure 3 (MovieLens 100K, 10,000 random ratings for training).
    """
    table = read_movielens(path)
    shape = _movielens_shape(table)
    if not 1 <= num_observations < len(table):
        raise UsageError(f"num_observations must be in [1, {len(table) - 1}] for {path}, got {num_observations}")
    order = torch.randperm(len(table), generator=torch.Generator().manual_seed(int(seed))).numpy()
    train, test = table[order[:num_observations]], table[order[num_observations:]]
    to_idx = lambda t: torch.from_numpy(t[:, :2].astype(np.int64))  # noqa: E731
    to_val = lambda t: torch.from_numpy(t[:, 2]).expand(batch, -1).clone()  # noqa: E731
    return Completion(shape, to_idx(train), to_val(train), test_indices=to_idx(test), test_values=to_val(test))
