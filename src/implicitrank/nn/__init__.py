"""Factorized layers for real networks: the implicit rank bias of depth put to work, then collapsed and compressed.

``DeepLinear`` and ``DeepConv2d`` are drop-in ``nn.Linear``/``nn.Conv2d`` stored as deep matrix
factorizations (Arora et al., NeurIPS 2019; ExpandNets, Guo et al., NeurIPS 2020); ``TensorizedLinear``
holds a large weight's tensorization as a CP or hierarchical tensor factorization. After training,
``collapse`` turns them back into plain layers, ``compress`` truncates every layer's SVD into two thin
layers, and ``layer_spectra`` / ``SpectraLog`` watch each layer's effective rank.

Examples
--------
>>> import torch
>>> from implicitrank.nn import DeepLinear, collapse
>>> layer = DeepLinear(4, 3, depth=3, init_scale=0.3, generator=torch.Generator().manual_seed(0))
>>> x = torch.randn(2, 4, generator=torch.Generator().manual_seed(1))
>>> bool(torch.allclose(collapse(layer)(x), layer(x), atol=1e-6))  # one plain layer computes the same
True
"""

from .collapse import CompressionReport, LayerCompression, collapse, compress
from .deep_conv import DeepConv2d
from .deep_linear import DeepLinear
from .spectra import LayerSpectrum, SpectraLog, layer_spectra
from .tensorized import TensorizedLinear

__all__ = [
    "CompressionReport", "DeepConv2d", "DeepLinear", "LayerCompression", "LayerSpectrum", "SpectraLog", "collapse",
    "TensorizedLinear", "compress", "layer_spectra",
]
