"""ResNet18/34 written here: shapes, parameter counts of the standard networks, width and input channels."""

import pytest
import torch

from implicitrank.cnn import PlainCNN, resnet18, resnet34


def test_resnet18_and_resnet34_have_the_standard_parameter_counts_with_a_one_logit_head():
    # torchvision's resnet18 / resnet34 have 11,689,512 / 21,797,672 parameters with a 1000-way head (512·1000 +
    # 1000 of them); a single logit keeps 512 + 1 instead.
    head = 512 * 1000 + 1000
    assert sum(p.numel() for p in resnet18().parameters()) == 11_689_512 - head + 513
    assert sum(p.numel() for p in resnet34().parameters()) == 21_797_672 - head + 513


@pytest.mark.parametrize("stem, size", [("imagenet", 64), ("small", 12)])
def test_resnet_takes_any_channels_and_width_and_returns_one_logit_per_image(stem, size):
    model = resnet18(width=0.125, in_channels=5, stem=stem)
    assert model(torch.randn(3, 5, size, 2 * size)).shape == (3,)
    assert model.head.in_features == 64


def test_plain_cnn_returns_one_logit_per_image():
    model = PlainCNN(in_channels=3, width=4, depth=4)
    assert model(torch.randn(2, 3, 8, 40)).shape == (2,)


def test_bad_model_arguments_are_refused():
    with pytest.raises(ValueError, match="stem must be one of"):
        resnet18(stem="cifar")
    with pytest.raises(ValueError, match="width must be > 0"):
        resnet34(width=0)
    with pytest.raises(ValueError, match="in_channels"):
        PlainCNN(in_channels=0)
