"""TensorFlow's padding rules, shared by convolution and pooling."""
from __future__ import annotations


def out_size_and_pads(size: int, kernel: int, stride: int, padding: str) -> tuple[int, int, int]:
    """Output length and (before, after) padding along one spatial axis.

    ``'same'``: ``out = ceil(size / stride)``, ``total = max((out - 1) * stride + kernel - size, 0)``,
    ``before = total // 2`` and the odd extra pixel goes *after* (TensorFlow's rule).
    ``'valid'``: ``out = floor((size - kernel) / stride) + 1``, no padding.
    """
    if kernel < 1 or stride < 1:
        raise ValueError(f"kernel size and stride must be positive, got {kernel} and {stride}")
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return out, total // 2, total - total // 2
    if padding == "valid":
        if size < kernel:
            raise ValueError(f"'valid' padding needs input size {size} >= kernel size {kernel}")
        return (size - kernel) // stride + 1, 0, 0
    raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
