"""A small plain convolutional network with one logit, for tests and quick runs.

``depth`` blocks of 3×3 convolution (stride 2 from the second block on), batch normalization and ReLU, then global
average pooling and a linear map to one logit. Each stride-2 block doubles the receptive field, so a deep enough
network sees the whole canvas, while its hierarchy still favours local interactions (Razin, Maman & Cohen 2022).
"""

from __future__ import annotations

from torch import Tensor, nn


class PlainCNN(nn.Module):
    """A plain CNN with one logit: conv-BN-ReLU blocks, global average pooling, a linear map.

    Block i = 0..depth−1 is a 3×3 convolution (padding 1; stride 1 for the first block, 2 for the others) with
    ``width``·2^⌊i/2⌋ output channels, then batch normalization (when ``batch_norm``; the convolution has a
    bias only without it) and ReLU.

    Parameters
    ----------
    in_channels : int, optional
        Channels of the input images. Default 1.
    width : int, optional
        Channels of the first block. Default 16.
    depth : int, optional
        Number of blocks. Default 4.
    batch_norm : bool, optional
        Batch normalization after every convolution. Default True.

    Raises
    ------
    ValueError
        When ``in_channels``, ``width`` or ``depth`` is below 1.
    """

    def __init__(self, *, in_channels: int = 1, width: int = 16, depth: int = 4, batch_norm: bool = True) -> None:
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        layers: list[nn.Module] = []
        channels = in_channels
        for i in range(depth):
            out_channels = width * 2 ** (i // 2)
            layers.append(nn.Conv2d(channels, out_channels, 3, 1 if i == 0 else 2, 1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU())
            channels = out_channels
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        """The logit f(x) of the conv-BN-ReLU blocks after global average pooling.

        Parameters
        ----------
        x : Tensor
            A batch of (batch, in_channels, H, W) images; any H and W, the pooling removes them.

        Returns
        -------
        Tensor
            Shape (batch,): f(x) for each image, the input to binary cross-entropy.
        """
        return self.head(self.features(x).mean(dim=(2, 3))).squeeze(1)
