"""Natural data as tensor completion (Razin, Maman & Cohen 2021 §5.2): IDX files, digits, one-vs-all fits."""

import gzip
import struct

import numpy as np
import pytest
import torch

from implicitrank.factorizations import CPFactorization, generators
from implicitrank.optim import adam
from implicitrank.tasks.completion import Completion, minibatches
from implicitrank.tasks.natural import (
    VARIANTS,
    digits_one_vs_all,
    mnist_one_vs_all,
    one_vs_all_completion,
    one_vs_all_errors,
    quantize,
    read_idx,
)
from implicitrank.train import TrainConfig, train


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(struct.pack(">i", d) for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.fixture
def tiny_mnist(tmp_path):
    """Ten 4×4 uint8 images with labels, written as gzipped IDX (train) and plain IDX (test)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(10, 4, 4), dtype=np.uint8)
    labels = np.array([6, 1, 6, 2, 3, 6, 0, 9, 6, 5], dtype=np.uint8)
    (tmp_path / "train-images.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (tmp_path / "train-labels.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    (tmp_path / "test-images").write_bytes(idx_bytes(images[:4]))
    (tmp_path / "test-labels").write_bytes(idx_bytes(labels[:4]))
    return tmp_path, images, labels


def test_read_idx_reads_plain_and_gzipped_files_of_any_type(tiny_mnist, tmp_path):
    path, images, labels = tiny_mnist
    assert np.array_equal(read_idx(path / "train-images.gz"), images)
    assert np.array_equal(read_idx(path / "test-labels"), labels[:4])
    floats = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    (tmp_path / "floats").write_bytes(idx_bytes(floats, 0x0D))
    assert np.array_equal(read_idx(tmp_path / "floats"), floats)


def test_mnist_one_vs_all_binarizes_pixels_and_labels_the_class_two(tiny_mnist):
    path, images, labels = tiny_mnist
    task = mnist_one_vs_all(path / "train-images.gz", path / "train-labels.gz", test_images=path / "test-images",
                            test_labels=path / "test-labels", target_class=6)
    assert task.shape == (2,) * 16 and task.indices.dtype == torch.uint8
    assert np.array_equal(task.indices.numpy(), (images.reshape(10, 16) / 255.0 >= 0.5).astype(np.uint8))
    gray = mnist_one_vs_all(path / "train-images.gz", path / "train-labels.gz", levels=3)
    assert np.array_equal(gray.indices.numpy(), np.minimum(np.floor(images.reshape(10, 16) / 255.0 * 3), 2))
    assert task.values[0].tolist() == [2.0 if c == 6 else 0.0 for c in labels]
    assert task.test_indices.shape == (4, 16) and task.test_values.shape == (1, 4)


def test_k_gray_levels_split_intensities_evenly():
    assert quantize(np.array([0, 63, 64, 128, 191, 192, 255]), 4, 255).tolist() == [0, 0, 1, 2, 2, 3, 3]
    assert quantize(np.array([127, 128]), 2, 255).tolist() == [0, 1]  # binarized at 0.5
    assert quantize(np.array([7, 8, 16]), 2, 16).tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match="intensities"):
        quantize(np.array([0.5]), 2, 1)


def test_random_labels_permute_the_labels_and_random_images_replace_the_pixels():
    pixels, labels = np.random.default_rng(0).integers(0, 256, (50, 9)), np.arange(50) % 5
    common = {"max_value": 255, "levels": 3, "target_class": 2}
    original = one_vs_all_completion(pixels, labels, **common)
    shuffled = one_vs_all_completion(pixels, labels, **common, variant="random-labels", seed=1)
    noise = one_vs_all_completion(pixels, labels, **common, variant="random-images", seed=1)
    assert torch.equal(shuffled.indices, original.indices)
    assert sorted(shuffled.values[0].tolist()) == sorted(original.values[0].tolist())
    assert not torch.equal(shuffled.values, original.values)
    assert torch.equal(noise.values, original.values) and not torch.equal(noise.indices, original.indices)
    assert int(noise.indices.max()) == 2 and noise.shape == (3,) * 9


def test_digits_are_an_order_64_completion_with_a_held_out_part():
    task = digits_one_vs_all(6, levels=4, test_fraction=0.2)
    assert task.shape == (4,) * 64
    assert task.num_observations + task.test_indices.shape[0] == 1797
    assert 0.05 < (task.values == 2.0).float().mean().item() < 0.15


@pytest.mark.parametrize("content, match", [
    (b"\x00\x00\x08", "not an IDX file"),
    (b"\x01\x02\x08\x01" + struct.pack(">i", 3) + b"abc", "not an IDX file"),
    (b"\x00\x00\x08\x02" + struct.pack(">i", 3), "truncated"),
    (b"\x00\x00\x08\x01" + struct.pack(">i", 5) + b"abc", "needs"),
    (b"\x1f\x8b\x08\x00garbage", "corrupt gzip"),
    (gzip.compress(b"\x00\x00\x08\x01" + struct.pack(">i", 5) + b"abcdefgh"), "needs"),
])
def test_corrupt_idx_files_are_refused_clearly(tmp_path, content, match):
    (tmp_path / "bad").write_bytes(content)
    with pytest.raises(ValueError, match=match):
        read_idx(tmp_path / "bad", "images")


def test_bad_natural_data_input_is_refused(tiny_mnist, tmp_path):
    path, images, labels = tiny_mnist
    with pytest.raises(FileNotFoundError, match="images"):
        mnist_one_vs_all(tmp_path / "missing", path / "train-labels.gz")
    with pytest.raises(ValueError, match="labels"):
        mnist_one_vs_all(path / "train-images.gz", path / "test-labels")  # 4 labels for 10 images
    with pytest.raises(ValueError, match="uint8 images"):
        mnist_one_vs_all(path / "train-labels.gz", path / "train-labels.gz")
    for bad in (np.full(10, 200, np.uint8), np.full(10, 6.7, np.float32)):  # a class of its own; truncated to 6
        (tmp_path / "bad-labels").write_bytes(idx_bytes(bad, 0x08 if bad.dtype == np.uint8 else 0x0D))
        with pytest.raises(ValueError, match="labels in 0..9"):
            mnist_one_vs_all(path / "train-images.gz", tmp_path / "bad-labels")
    with pytest.raises(ValueError, match="together"):
        mnist_one_vs_all(path / "train-images.gz", path / "train-labels.gz", test_images=path / "test-images")
    with pytest.raises(ValueError, match="variant"):
        digits_one_vs_all(variant="shuffled")
    with pytest.raises(ValueError, match="levels"):
        digits_one_vs_all(levels=1)
    with pytest.raises(ValueError, match="target_class"):
        digits_one_vs_all(target_class=11)
    with pytest.raises(ValueError, match="test_fraction"):
        digits_one_vs_all(test_fraction=1.0)
    task = digits_one_vs_all()
    with pytest.raises(ValueError, match="shape"):
        train(CPFactorization((2,) * 63, components=1), task, [], adam(), 1e-2, TrainConfig(max_steps=1))


def test_digits_original_data_is_fit_at_rank_one_far_better_than_random_labels_or_images():
    # the three variants train side by side as one batch (each run its own indices and labels)
    tasks = [digits_one_vs_all(6, variant=v, seed=0) for v in VARIANTS]
    task = Completion(tasks[0].shape, torch.stack([t.indices for t in tasks]), torch.cat([t.values for t in tasks]))
    task = task.to(torch.float32)
    model = CPFactorization(task.shape, components=1, init_mean=1.0)
    params = model.init(3, model.scale_for_entry_std(1e-3), generators([0, 0, 0]))
    # a minibatch fit is the batched loop with a sampler; 5000 > 1797 entries: one batch per epoch, 80 epochs
    config = TrainConfig(max_steps=80, loss_threshold=0.0, record_per_decade=0, progress=False)
    result = train(model, task, params, adam(), torch.full((3,), 1e-2), config,
                   sample=minibatches(task, batch_size=5000), measure=one_vs_all_errors(model, task))
    original, random_labels, random_images = result.records[-1]["train_error"].tolist()
    label_variance = 0.1 * 0.9  # about 10% of the digits are 6s; error = MSE/4
    assert random_labels > 0.8 * label_variance and random_images > 0.8 * label_variance
    assert original < 0.4 * min(random_labels, random_images)
