"""ResNet18 and ResNet34 (He et al. 2016) with a width multiplier, any number of input channels and one logit.

Written here so the package needs no torchvision. ``stem="imagenet"`` is the standard 7×7 stride-2 convolution and
3×3 max-pool (the network Razin, Maman & Cohen 2022 §5 trained on 224×224 canvases); ``stem="small"`` is a 3×3
stride-1 convolution without pooling, for small canvases. The head is global average pooling and a linear map to a
single logit f(x), trained with binary cross-entropy.
"""

from __future__ import annotations

from torch import Tensor, nn

STEMS = ("imagenet", "small")
STAGE_WIDTHS = (64, 128, 256, 512)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with batch normalization and an identity (or 1×1 projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(self.conv1(x)).relu()
        out = self.bn2(self.conv2(out))
        return (out + self.shortcut(x)).relu()


class ResNet(nn.Module):
    """A ResNet of basic blocks with one logit: stem, four stages, global average pooling, a linear map.

    Each basic block is two 3×3 convolutions with batch normalization and an identity shortcut (a 1×1
    projection with batch normalization where the shape changes). The first block of stages 2–4 has stride 2.
    Convolution weights are initialized Kaiming-normal (fan-out, ReLU gain).

    Parameters
    ----------
    blocks : tuple of int
        Basic blocks per stage, four positive counts, e.g. (2, 2, 2, 2) for ResNet18.
    width : float, optional
        Multiplier of the stage widths 64, 128, 256, 512 (each rounded, at least 1). Default 1.
    in_channels : int, optional
        Channels of the input images. Default 3.
    stem : str, optional
        ``"imagenet"`` (the default): a 7×7 stride-2 convolution and a 3×3 stride-2 max-pool, as for 224×224
        inputs; ``"small"``: a 3×3 stride-1 convolution without pooling, for small canvases.

    Raises
    ------
    ValueError
        When ``blocks`` is not four positive counts, ``width`` <= 0, ``in_channels`` < 1 or ``stem`` is unknown.

    References
    ----------
    K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual Learning for Image Recognition", CVPR 2016, §3.3 and
    Table 1 (architectures).

    N. Razin, A. Maman, N. Cohen, "Implicit Regularization in Hierarchical Tensor Factorization and Deep
    Convolutional Neural Networks", ICML 2022, §5 (ResNet18 trained from scratch with one logit on the locality tasks).
    """

    def __init__(self, blocks: tuple[int, ...], *, width: float = 1.0, in_channels: int = 3,
                 stem: str = "imagenet") -> None:
        super().__init__()
        if len(blocks) != 4 or min(blocks) < 1:
            raise ValueError(f"blocks must be four positive block counts, got {blocks}")
        if not width > 0:
            raise ValueError(f"width must be > 0, got {width}")
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
        widths = [max(1, round(w * width)) for w in STAGE_WIDTHS]
        if stem == "imagenet":
            self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 7, 2, 3, bias=False),
                                      nn.BatchNorm2d(widths[0]), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        else:
            self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
                                      nn.BatchNorm2d(widths[0]), nn.ReLU())
        layers, channels = [], widths[0]
        for stage, (count, out_channels) in enumerate(zip(blocks, widths)):
            for i in range(count):
                layers.append(BasicBlock(channels, out_channels, 2 if (i == 0 and stage > 0) else 1))
                channels = out_channels
        self.stages = nn.Sequential(*layers)
        self.head = nn.Linear(channels, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        """The logit f(x): stem, the four stages, average over the spatial positions, linear head.

        Parameters
        ----------
        x : Tensor
            Images, shape (batch, in_channels, H, W), downsampled 32-fold (``"imagenet"`` stem) or 8-fold
            (``"small"``) before the pooling.

        Returns
        -------
        Tensor
            One logit per image, shape (batch,) (the head's single output squeezed).
        """
        return self.head(self.stages(self.stem(x)).mean(dim=(2, 3))).squeeze(1)


def resnet18(*, width: float = 1.0, in_channels: int = 3, stem: str = "imagenet") -> ResNet:
    """ResNet18: a :class:`ResNet` with basic blocks (2, 2, 2, 2) per stage.

    Parameters
    ----------
    width : float, optional
        Scales the 64/128/256/512 channels of the four two-block stages; 1 (default) is the paper's ResNet18.
    in_channels : int, optional
        Channels of the first (stem) convolution: 3 (default) for RGB canvases, 1 for grey ones.
    stem : str, optional
        ``"imagenet"`` (default, the 224×224 stem) or ``"small"`` for small canvases; see :class:`ResNet`.

    Returns
    -------
    ResNet
        A freshly initialized ResNet18 (17 convolutions on the main path, then the linear head) mapping each
        image to one logit.

    References
    ----------
    K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual Learning for Image Recognition", CVPR 2016, §3.3 and
    Table 1 (18-layer column).
    """
    return ResNet((2, 2, 2, 2), width=width, in_channels=in_channels, stem=stem)


def resnet34(*, width: float = 1.0, in_channels: int = 3, stem: str = "imagenet") -> ResNet:
    """ResNet34: a :class:`ResNet` with basic blocks (3, 4, 6, 3) per stage.

    Parameters
    ----------
    width : float, optional
        Multiplier of the channels of the 3-, 4-, 6- and 3-block stages (64, 128, 256, 512 at the default 1).
    in_channels : int, optional
        How many channels each input image has (3, the default, for colour).
    stem : str, optional
        Which stem precedes the 16 blocks: ``"imagenet"`` (default) or ``"small"``, as in :class:`ResNet`.

    Returns
    -------
    ResNet
        A new, deeper sibling of :func:`resnet18`: 33 convolutions on the main path, one logit per image.

    References
    ----------
    K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual Learning for Image Recognition", CVPR 2016, §3.3 and
    Table 1 (34-layer column).
    """
    return ResNet((3, 4, 6, 3), width=width, in_channels=in_channels, stem=stem)
