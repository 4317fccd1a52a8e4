"""implicitrank: implicit rank regularization in deep matrix, tensor and hierarchical tensor factorizations."""

__version__ = "0.1.0"
