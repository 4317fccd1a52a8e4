"""Locality bias of convolutional networks and the regularizer that counters it (Razin, Maman & Cohen 2022, §5).

Models (ResNet18/34 and a small plain CNN, one logit), the long-range tasks (Is Same Class on digits or CIFAR-10,
Pathfinder), the interaction regularizer R, and the training loop.

Examples
--------
>>> import torch
>>> from implicitrank.cnn import derangement
>>> permutation = derangement(5, torch.Generator().manual_seed(0))  # pairs each sample with another one
>>> sorted(permutation.tolist()), bool((permutation != torch.arange(5)).all())
([0, 1, 2, 3, 4], True)
"""

from .cifar import cifar10_source, read_cifar_batch
from .images import ImageSource, digits_source
from .is_same_class import IsSameClass, pair_slots, sample_pairs
from .pathfinder import Pathfinder, PathfinderConfig, cached_pathfinder, check_pathfinder_fits, generate_pathfinder
from .plain import PlainCNN
from .regularizer import (
    Box,
    derangement,
    frozen_batchnorm_statistics,
    interaction_regularizer,
    normalized_patch_gradient,
    random_patch_pair,
)
from .resnet import ResNet, resnet18, resnet34
from .training import TrainingConfig, accuracy, epoch_loop, measure_interaction, train_classifier, training_step

__all__ = [
    "Box",
    "ImageSource",
    "IsSameClass",
    "Pathfinder",
    "PathfinderConfig",
    "PlainCNN",
    "ResNet",
    "TrainingConfig",
    "accuracy",
    "cached_pathfinder",
    "check_pathfinder_fits",
    "cifar10_source",
    "derangement",
    "digits_source",
    "epoch_loop",
    "frozen_batchnorm_statistics",
    "generate_pathfinder",
    "interaction_regularizer",
    "measure_interaction",
    "normalized_patch_gradient",
    "pair_slots",
    "random_patch_pair",
    "read_cifar_batch",
    "resnet18",
    "resnet34",
    "sample_pairs",
    "train_classifier",
    "training_step",
]
