"""Pathfinder images (Linsley et al. 2018), generated here, as used by Razin, Maman & Cohen 2022, §5.

Each image holds two target "snakes" of L short segments (``segment_length`` px long, ``thickness`` px thick, each
turning by at most ``max_turn`` from the previous one), starting ``start_distance`` px apart at points p and q,
plus ``n_distractors`` snakes of ``distractor_length`` segments, and two disc markers (radius ``marker_radius``):
one at p, the other at the far end of the snake from p (label 1, same snake) or at the far end of the snake from q
(label 0). Classes are exactly balanced. The paper: 300×300 images resized to 150×150, L ∈ {3, 5, 7, 9},
90/L distractors of int(L/3) segments, start distance 27, markers of radius 3, 10k train and 10k test images per L.

Labels are right by construction: every snake keeps its centre line at least ``marker_radius + thickness/2 +
clearance`` px away from the centre lines of the snakes drawn before it (targets first, then distractors, which may
cross each other but never touch a target), so after resizing by an integer factor the two targets' pixels and the
markers on them are connected within a target and never across targets (``clearance`` exceeds √2·(2f − 1) for the
resize factor f). Generation is vectorized over images and over distractors with NumPy; results are cached as
compressed .npz arrays keyed by the configuration, size, seed and generator version.

As in the authors' generator, a positive pair's markers (the ends of one snake) tend to lie closer than a negative
pair's (the far ends of two snakes starting ``start_distance`` apart), so the marker distance alone predicts part of
the labels: the best distance threshold classifies 95% at L = 3 and 84% at L = 9 (256 images of the paper's
geometry, measured 2026-12-03). Tracing the path is what the rest takes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import UsageError
from ..progress import progress_enabled
from .regularizer import Box, random_patch_pair

GENERATOR_VERSION = 3  # in the cache key: images cached by an older generator are not read as this one's (3: the
# targets' first segments head anywhere, no longer away from each other)
CHUNK = 128
TRIES = 10
RETRY_COPIES = 4
# A length is allowed when at least MIN_FIT_RATE of PROBE_PLACEMENTS random placements of its targets fit; an image
# then gets up to 1 + 4·999 = 3997 placements, and at a rate of 0.5% all of 10,000 images find room but with
# probability 2e-5.
PROBE_PLACEMENTS, MIN_FIT_RATE, PLACEMENT_ROUNDS = 512, 0.005, 1000


@dataclass(frozen=True)
class PathfinderConfig:
    """Geometry of Pathfinder images, validated at construction; the defaults are the paper's set-up.

    Lengths are in pixels of the generated ``image_size``×``image_size`` image, which is average-pooled by the
    integer factor f = image_size // output_size.

    Attributes
    ----------
    length : int
        L, the number of segments of each of the two target snakes (the paper: 3, 5, 7 or 9). Default 9.
    image_size : int
        Side of the generated image. Default 300.
    output_size : int
        Side of the stored image after pooling; must divide ``image_size``. Default 150.
    segment_length : float
        Length of one segment. Default 5.
    thickness : float
        Stroke thickness of the snakes. Default 2.
    start_distance : float
        Distance between the start points p and q of the two targets. Default 27.
    marker_radius : float
        Radius of the two disc markers. Default 3.
    max_turn : float
        The largest turn between consecutive segments, in radians, in [0, π]. Default π/6.
    clearance : float
        Extra gap kept between a snake's centre line and those of earlier snakes; must exceed √2·(2f − 1) so the
        snakes stay apart after pooling. Default 5.
    n_distractors : int or None
        Distractor snakes per image; ``None`` means 90 // L (the paper's 90/L).
    distractor_length : int or None
        Segments per distractor; ``None`` means max(1, L // 3) (the paper's int(L/3)).

    Raises
    ------
    UsageError
        When a field is out of range: L < 1, ``output_size`` not dividing ``image_size``, a non-positive length,
        ``max_turn`` outside [0, π], ``clearance`` too small for the pooling factor, negative ``n_distractors``,
        ``distractor_length`` < 1, ``start_distance`` not above :attr:`block_radius`, or an image too small for
        the start distance.

    References
    ----------
    N. Razin, A. Maman, N. Cohen, "Implicit Regularization in Hierarchical Tensor Factorization and Deep
    Convolutional Neural Networks", ICML 2022, §5 (Pathfinder: 300×300 images resized to
    150×150, L ∈ {3, 5, 7, 9}, 90/L distractors of int(L/3) segments, start distance 27, markers of radius 3).
    """

    length: int = 9
    image_size: int = 300
    output_size: int = 150
    segment_length: float = 5.0
    thickness: float = 2.0
    start_distance: float = 27.0
    marker_radius: float = 3.0
    max_turn: float = math.pi / 6
    clearance: float = 5.0
    n_distractors: int | None = None
    distractor_length: int | None = None

    def __post_init__(self) -> None:
        if self.length < 1:
            raise UsageError(f"length L must be >= 1, got {self.length}")
        if self.output_size < 1 or self.image_size % self.output_size:
            raise UsageError(f"output_size must divide image_size, got {self.output_size} and {self.image_size}")
        for name in ("segment_length", "thickness", "start_distance", "marker_radius"):
            if not getattr(self, name) > 0:
                raise UsageError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.max_turn <= math.pi:
            raise UsageError(f"max_turn must be in [0, pi], got {self.max_turn}")
        factor = self.image_size // self.output_size
        if not self.clearance > math.sqrt(2) * (2 * factor - 1):
            raise UsageError(f"clearance must exceed sqrt(2)*(2*{factor}-1) = {math.sqrt(2) * (2 * factor - 1):.2f} "
                             f"so that snakes stay apart after resizing by {factor}, got {self.clearance}")
        if self.n_distractors is not None and self.n_distractors < 0:
            raise UsageError(f"n_distractors must be >= 0, got {self.n_distractors}")
        if self.distractor_length is not None and self.distractor_length < 1:
            raise UsageError(f"distractor_length must be >= 1, got {self.distractor_length}")
        if self.start_distance <= self.block_radius:
            raise UsageError(f"start_distance must exceed marker_radius + thickness/2 + clearance + 3 = "
                             f"{self.block_radius:.1f}, got {self.start_distance}")
        if 2 * self._border + self.start_distance >= self.image_size:
            raise UsageError(f"image_size {self.image_size} is too small for start_distance {self.start_distance}")

    @property
    def distractors(self) -> int:
        """The number of distractor snakes per image: ``n_distractors``, or 90 // L when that is ``None``."""
        return 90 // self.length if self.n_distractors is None else self.n_distractors

    @property
    def distractor_segments(self) -> int:
        """Segments per distractor snake: ``distractor_length``, or max(1, L // 3) when that is ``None``."""
        return max(1, self.length // 3) if self.distractor_length is None else self.distractor_length

    @property
    def block_radius(self) -> float:
        """How close (centre line to centre line) a later snake may come to an earlier one; +3 px absorb the
        rounding of drawn and checked points to the pixel grid."""
        return self.marker_radius + self.thickness / 2 + self.clearance + 3

    @property
    def _border(self) -> float:
        return self.marker_radius + 1

    def key(self, n: int, seed: int) -> str:
        """The cache key of a generated data set: a hash of this configuration, ``n``, ``seed`` and the
        generator's version.

        Parameters
        ----------
        n : int
            The number of images.
        seed : int
            The seed they are generated from.

        Returns
        -------
        str
            The first 16 hex digits of the SHA-256 of the sorted JSON of these values.
        """
        text = json.dumps({**asdict(self), "n": n, "seed": seed, "version": GENERATOR_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _disc(radius: float) -> np.ndarray:
    """Integer offsets (K, 2) within ``radius`` of the origin."""
    r = math.floor(radius)
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    inside = dy ** 2 + dx ** 2 <= radius ** 2
    return np.stack([dy[inside], dx[inside]], 1)


def _stamp(canvas: np.ndarray, image: np.ndarray, points: np.ndarray, valid: np.ndarray, radius: float,
           stride: int = 1) -> None:
    """Set the pixels within ``radius`` of every ``stride``-th valid point (rounded to the pixel grid); points
    (N, P, 2) as (row, col), ``image`` (N,) the canvas index of each row of points."""
    take = np.unique(np.r_[np.arange(0, points.shape[1], stride), points.shape[1] - 1])
    points, valid = points[:, take], valid[:, take]
    pix = np.rint(points[valid]).astype(np.int64)[:, None, :] + _disc(radius)[None]  # (V, K, 2)
    which = np.broadcast_to(np.broadcast_to(image[:, None], valid.shape)[valid][:, None], pix.shape[:2])
    size = canvas.shape[1]
    inside = (pix >= 0).all(-1) & (pix < size).all(-1)
    canvas[which[inside], pix[..., 0][inside], pix[..., 1][inside]] = True


def _blocked(block: np.ndarray, image: np.ndarray, points: np.ndarray, border: float) -> np.ndarray:
    """(N,) whether any of the points (N, P, 2) leaves the allowed area or lands on a blocked pixel."""
    size = block.shape[1]
    outside = ((points < border) | (points > size - 1 - border)).any(axis=(1, 2))
    pix = np.clip(np.rint(points).astype(np.int64), 0, size - 1)
    return outside | block[image[:, None], pix[..., 0], pix[..., 1]].any(1)


def _grow(starts: np.ndarray, image: np.ndarray, block: np.ndarray, segments: int, config: PathfinderConfig,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grow snakes of ``segments`` segments from ``starts`` (N, 2) avoiding ``block``, the first segment in a
    uniformly random direction.

    Returns the centre-line points (N, segments·m + 1, 2), which of them were drawn (N, segments·m + 1), and
    whether all segments were drawn (N,); a snake that finds no free direction in TRIES tries stops there.
    """
    n = len(starts)
    m = max(2, math.ceil(2 * config.segment_length))
    t = np.arange(1, m + 1) / m
    points = np.repeat(starts[:, None, :], segments * m + 1, axis=1).astype(np.float64)
    drawn = np.zeros((n, segments * m + 1), dtype=bool)
    drawn[:, 0] = True
    heading = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    current = starts.astype(np.float64)
    for k in range(segments):
        pending = alive.copy()
        accepted_heading = heading.copy()
        for _ in range(TRIES):
            idx = np.flatnonzero(pending)
            if idx.size == 0:
                break
            if k == 0:
                proposal = rng.uniform(0, 2 * math.pi, idx.size)
            else:
                proposal = heading[idx] + rng.uniform(-config.max_turn, config.max_turn, idx.size)
            direction = np.stack([np.sin(proposal), np.cos(proposal)], 1) * config.segment_length
            seg = current[idx, None, :] + t[None, :, None] * direction[:, None, :]
            ok = ~_blocked(block, image[idx], seg, config._border)
            good = idx[ok]
            points[good, 1 + k * m:1 + (k + 1) * m] = seg[ok]
            drawn[good, 1 + k * m:1 + (k + 1) * m] = True
            accepted_heading[good] = proposal[ok]
            pending[good] = False
        alive &= ~pending
        heading = accepted_heading
        current = points[np.arange(n), k * m + m]
    complete = drawn[:, -1].copy()
    return points, drawn, complete


def _candidate_targets(config: PathfinderConfig, k: int, rng: np.random.Generator
                       ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray], np.ndarray]:
    """``k`` random placements of the two targets: whether each fits (k,), the starts p and q (k, 2, 2), the two
    centre lines ((k, P, 2) each) and the pixels they block (k, size, size).

    Each target heads off in a uniformly random first direction, as the authors' generator does (heading each away
    from the other's start made the marker distance alone tell the labels apart: 96–100% instead of 84–94% at
    L = 3…9)."""
    size = config.image_size
    lo, hi = config._border, size - 1 - config._border
    ids = np.arange(k)
    block = np.zeros((k, size, size), dtype=bool)
    p = rng.uniform(lo, hi, (k, 2))
    angle = rng.uniform(0, 2 * math.pi, k)
    q = p + config.start_distance * np.stack([np.sin(angle), np.cos(angle)], 1)
    ok = ((q >= lo) & (q <= hi)).all(1)
    path_a, drawn_a, done_a = _grow(p, ids, block, config.length, config, rng)
    _stamp(block, ids, path_a, drawn_a, config.block_radius, stride=4)
    ok &= done_a & ~_blocked(block, ids, q[:, None, :], config._border)
    path_b, drawn_b, done_b = _grow(q, ids, block, config.length, config, rng)
    ok &= done_b
    _stamp(block, ids, path_b, drawn_b, config.block_radius, stride=4)
    return ok, np.stack([p, q], 1), (path_a, path_b), block


def _place_targets(config: PathfinderConfig, n: int, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """The two targets of ``n`` images: the pixels they block (n, size, size), their starts (n, 2, 2) and their
    centre lines (two (n, P, 2) arrays). Images whose targets found no room are retried with RETRY_COPIES candidate
    placements each, keeping the first that fits, for at most PLACEMENT_ROUNDS rounds (a length too long to fit
    would otherwise retry forever).

    Raises
    ------
    UsageError
        When some image found no room within those rounds (a length at the edge of :func:`check_pathfinder_fits`).
    """
    size = config.image_size
    block = np.zeros((n, size, size), dtype=bool)
    starts = np.zeros((n, 2, 2))
    paths: list[np.ndarray] = []
    todo, copies = np.arange(n), 1
    for _ in range(PLACEMENT_ROUNDS):
        if not todo.size:
            break
        slot = np.repeat(todo, copies)
        ok, candidate_starts, candidate_paths, candidate_block = _candidate_targets(config, slot.size, rng)
        if not paths:
            paths = [np.zeros((n, *path.shape[1:])) for path in candidate_paths]
        fitting = np.flatnonzero(ok)
        placed, first = np.unique(slot[fitting], return_index=True)
        chosen = fitting[first]
        block[placed] = candidate_block[chosen]
        starts[placed] = candidate_starts[chosen]
        for path, candidate in zip(paths, candidate_paths):
            path[placed] = candidate[chosen]
        todo, copies = np.setdiff1d(todo, placed), RETRY_COPIES
    if todo.size:
        raise UsageError(f"length L={config.length}: {todo.size} of {n} images found no room for their two target "
                         f"snakes in {1 + RETRY_COPIES * (PLACEMENT_ROUNDS - 1)} random placements each in a "
                         f"{size}x{size} image; use a shorter length (or a larger image_size)")
    return block, starts, paths


@functools.lru_cache(maxsize=64)
def _target_fit_rate(config: PathfinderConfig) -> float:
    """The fraction of PROBE_PLACEMENTS random placements of the two targets of ``config`` that fit.

    From a stream of its own (seed 0): the same for the same configuration, and the streams of the generated images
    are left as they were.

    Parameters
    ----------
    config : PathfinderConfig
        The geometry, with the length L.

    Returns
    -------
    float
        In [0, 1]; it falls steeply with L (the test scale's 32-px images: 27% at L = 2, 3% at L = 6, 0 at L = 10).
    """
    ok, *_ = _candidate_targets(config, PROBE_PLACEMENTS, np.random.default_rng(0))
    return float(ok.mean())


def check_pathfinder_fits(config: PathfinderConfig) -> None:
    """Refuse a length L whose two target snakes do not fit the image, before any image is generated.

    No useful exact bound on L follows from the geometry: turning by ``max_turn`` at every segment, a snake coils
    within a circle of radius ``segment_length``/(2 sin(``max_turn``/2)), so wherever two such coils fit apart (as in
    the scales' images) a snake of any length fits in principle. What limits L is the chance that random snakes
    stay inside the image and the second keeps clear of the first, which falls with L: a length is allowed when at
    least MIN_FIT_RATE of random placements fit (:func:`_target_fit_rate`; an image then needs 1/MIN_FIT_RATE = 200
    placements on average, and gets up to 20 times as many).

    Parameters
    ----------
    config : PathfinderConfig
        The geometry, with the length L to check.

    Raises
    ------
    UsageError
        When fewer than MIN_FIT_RATE of placements fit; the message names the length, the image size and the rate.
    """
    rate = _target_fit_rate(config)
    if rate < MIN_FIT_RATE:
        raise UsageError(f"length L={config.length} does not fit a {config.image_size}x{config.image_size} image: its "
                         f"two target snakes fit in {rate:.1%} of {PROBE_PLACEMENTS} random placements, where at least "
                         f"{MIN_FIT_RATE:.1%} must; use a shorter length (or a larger image_size)")


def _generate_chunk(config: PathfinderConfig, labels: np.ndarray,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, output, output) uint8 for the given labels (1: markers on the same snake) and the marker
    centres (n, 2, 2) as (row, col) in generated pixels: the two targets first (:func:`_place_targets`), then
    markers and distractors.
    """
    n, size = len(labels), config.image_size
    lo, hi = config._border, size - 1 - config._border
    block, starts, paths = _place_targets(config, n, rng)
    ids = np.arange(n)
    drawn = np.ones(paths[0].shape[:2], dtype=bool)
    ink = np.zeros((n, size, size), dtype=bool)
    _stamp(ink, ids, paths[0], drawn, config.thickness / 2)
    _stamp(ink, ids, paths[1], drawn, config.thickness / 2)
    far = np.where((labels == 1)[:, None], paths[0][:, -1], paths[1][:, -1])
    markers = np.stack([starts[:, 0], far], 1)
    _stamp(ink, ids, markers, np.ones((n, 2), dtype=bool), config.marker_radius)
    if config.distractors:
        owner = np.repeat(ids, config.distractors)
        begin = rng.uniform(lo, hi, (owner.size, 2))
        free = ~_blocked(block, owner, begin[:, None, :], config._border)
        path_d, drawn_d, _ = _grow(begin[free], owner[free], block, config.distractor_segments, config, rng)
        _stamp(ink, owner[free], path_d, drawn_d, config.thickness / 2)
    images = ink
    factor = size // config.output_size
    pooled = images.reshape(n, config.output_size, factor, config.output_size, factor).mean(axis=(2, 4))
    return np.rint(pooled * 255).astype(np.uint8), markers


def generate_pathfinder(config: PathfinderConfig, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Generate ``n`` Pathfinder images with their labels, without a cache.

    Each image holds two target snakes of L segments starting ``start_distance`` apart at points p and q, the
    distractor snakes, and two disc markers: one at p, the other at the far end of the snake from p (label 1) or
    of the snake from q (label 0). Chunks of 128 images draw from independent streams of
    ``numpy.random.SeedSequence(seed)``; each chunk is half positive (an odd last chunk has one more negative).

    Parameters
    ----------
    config : PathfinderConfig
        Canvas, snake and marker geometry (and the number of distractors) of every image.
    n : int
        Number of images, at least 2, drawn in chunks of 128.
    seed : int
        Root of the ``SeedSequence`` the chunks' streams are spawned from; the same seed and configuration give
        the same images.

    Returns
    -------
    images : numpy.ndarray
        Shape (n, output_size, output_size), uint8 in 0..255 (the pooled ink coverage).
    labels : numpy.ndarray
        Shape (n,), int64: 1 when both markers lie on the same snake, else 0.
    markers : numpy.ndarray
        Shape (n, 2, 2), float: the marker centres as (row, col) in generated pixels (divide by
        image_size // output_size for output pixels).

    Raises
    ------
    UsageError
        When ``n`` < 2, or when L is too long for the two target snakes to fit the image (both checked by
        :func:`cached_pathfinder`, which does the work).

    References
    ----------
    N. Razin, A. Maman, N. Cohen, "Implicit Regularization in Hierarchical Tensor Factorization and Deep
    Convolutional Neural Networks", ICML 2022, §5 (the Pathfinder task).
    """
    return cached_pathfinder(config, n, seed, None)


def cached_pathfinder(config: PathfinderConfig, n: int, seed: int, cache_dir: str | Path | None,
                      progress: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`generate_pathfinder`, read from or written to a cache of compressed ``.npz`` files.

    With ``cache_dir`` the result is read from ``cache_dir/pathfinder-L<L>-<key>.npz`` when that file exists
    (``key`` from :meth:`PathfinderConfig.key`), else generated and written there (through a ``.partial.npz``
    file renamed when complete).

    Parameters
    ----------
    config : PathfinderConfig
        The geometry; with ``n`` and ``seed`` it makes the cache file's key.
    n : int
        How many images to read or generate, at least 2.
    seed : int
        The generation seed, also part of the cache key, so no other seed's file is ever read.
    cache_dir : str or Path or None
        The cache directory (created when needed); ``None`` generates without caching.
    progress : bool, optional
        Show a progress bar while generating. Default False.

    Returns
    -------
    images : numpy.ndarray
        Shape (n, output_size, output_size), uint8.
    labels : numpy.ndarray
        Shape (n,), int64, 1 = markers on the same snake.
    markers : numpy.ndarray
        Shape (n, 2, 2), the marker centres as (row, col) in generated pixels.

    Raises
    ------
    UsageError
        When ``n`` < 2, before any cache file is looked at; when L is too long for the two target snakes to fit the
        image (:func:`check_pathfinder_fits`), before generating; when some image's targets found no room in all
        its placements (a length at the edge of that check).
    """
    if n < 2:
        raise UsageError(f"n must be >= 2, got {n}")
    path = None if cache_dir is None else Path(cache_dir) / f"pathfinder-L{config.length}-{config.key(n, seed)}.npz"
    if path is not None and path.is_file():
        with np.load(path) as stored:
            return stored["images"], stored["labels"], stored["markers"]
    check_pathfinder_fits(config)  # a length out of reach: refused at once, not after a chunk's every placement
    progress = progress_enabled(progress)
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, unit="image", desc=f"Pathfinder L={config.length}", leave=False, disable=False)
    images, labels, markers = [], [], []
    streams = np.random.SeedSequence(seed).spawn(math.ceil(n / CHUNK))
    for i, stream in enumerate(streams):
        count = min(CHUNK, n - i * CHUNK)
        rng = np.random.default_rng(stream)
        labels.append(rng.permutation(np.arange(count) % 2))
        chunk_images, chunk_markers = _generate_chunk(config, labels[-1], rng)
        images.append(chunk_images)
        markers.append(chunk_markers)
        if progress:
            bar.update(count)
    if progress:
        bar.close()
    result = np.concatenate(images), np.concatenate(labels), np.concatenate(markers)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.npz")
        np.savez_compressed(partial, images=result[0], labels=result[1], markers=result[2])
        partial.replace(path)
    return result


@dataclass(frozen=True)
class Pathfinder:
    """The Pathfinder task: images with labels, and random patch pairs for the regularizer.

    Patches I and J of the regularizer are random non-overlapping ``patch_size``×``patch_size`` squares, drawn
    anew for every batch (the paper: 2×2). Validated at construction.

    Attributes
    ----------
    images : Tensor
        Shape (n, 1, H, W), uint8.
    labels : Tensor
        Shape (n,), float, 1 = both markers on the same snake.
    patch_size : int
        Side of the regularizer's square patches, in pixels. Default 2.

    Raises
    ------
    UsageError
        When ``images`` is not a 4-dimensional uint8 tensor or ``labels`` is not of shape (n,).
    ValueError
        When two ``patch_size``×``patch_size`` patches do not fit in an image.

    References
    ----------
    N. Razin, A. Maman, N. Cohen, "Implicit Regularization in Hierarchical Tensor Factorization and Deep
    Convolutional Neural Networks", ICML 2022, §5 (Pathfinder; the regularizer on random non-overlapping 2×2 patches).
    """

    images: Tensor
    labels: Tensor
    patch_size: int = 2

    def __post_init__(self) -> None:
        if self.images.dim() != 4 or self.images.dtype != torch.uint8:
            raise UsageError(f"images must be (n, 1, H, W) uint8, got {tuple(self.images.shape)} {self.images.dtype}")
        if self.labels.shape != (self.images.shape[0],):
            raise UsageError(f"labels must have shape ({self.images.shape[0]},), got {tuple(self.labels.shape)}")
        random_patch_pair(tuple(self.images.shape[2:]), self.patch_size, torch.Generator().manual_seed(0))

    @classmethod
    def generate(cls, config: PathfinderConfig, n: int, seed: int, cache_dir: str | Path | None = None,
                 patch_size: int = 2, progress: bool = False) -> Pathfinder:
        """Generate (or read from the cache) ``n`` images with :func:`cached_pathfinder`.

        Parameters
        ----------
        config : PathfinderConfig
            The geometry of the images, passed on to :func:`cached_pathfinder`.
        n : int
            The size of the task, at least 2.
        seed : int
            The seed of the images (the regularizer's patch pairs are drawn later, from :meth:`patches`'s
            generator).
        cache_dir : str or Path or None, optional
            The cache directory; ``None`` (the default) generates without caching.
        patch_size : int, optional
            Side of the regularizer's patches. Default 2.
        progress : bool, optional
            Show a progress bar while generating. Default False.

        Returns
        -------
        Pathfinder
            Images (n, 1, output_size, output_size) uint8 and labels (n,) float.
        """
        images, labels, _ = cached_pathfinder(config, n, seed, cache_dir, progress)
        return cls(torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels).float(), patch_size)

    def __len__(self) -> int:
        return len(self.labels)

    def patches(self, generator: torch.Generator) -> tuple[Box, Box]:
        """Patches I and J of the regularizer for one batch (see :func:`random_patch_pair`).

        Parameters
        ----------
        generator : torch.Generator
            The source of the random positions.

        Returns
        -------
        tuple of Box
            Two non-overlapping ``patch_size``×``patch_size`` squares at uniformly random positions.
        """
        return random_patch_pair(tuple(self.images.shape[2:]), self.patch_size, generator)

    def to(self, device: torch.device | str) -> Pathfinder:
        """The same task with its uint8 images and float labels on ``device``.

        Parameters
        ----------
        device : torch.device or str
            The device :meth:`batch` will index and return batches on.

        Returns
        -------
        Pathfinder
            A new task with the same ``patch_size``; ``self`` keeps its tensors where they were.
        """
        return Pathfinder(self.images.to(device), self.labels.to(device), self.patch_size)

    def batch(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """The images and labels at ``index``.

        Parameters
        ----------
        index : Tensor
            Shape (b,), long indices, on the task's device.

        Returns
        -------
        x : Tensor
            Shape (b, 1, H, W), float32 in [0, 1] (the stored bytes / 255).
        y : Tensor
            Shape (b,), float labels.
        """
        return self.images[index].float() / 255, self.labels[index]
