"""Hand-written layers, one per module, each with ``forward`` and ``backward`` side by side.

Every layer is a frozen dataclass holding only its configuration. All arrays carry a leading
task axis ``T``: parameters ``(T, ...)``, activations ``(T, B, ...)``.

* ``forward(params, x) -> (y, cache)``
* ``backward(params, cache, dy) -> (dx, grads)``

The cache is returned, never stored on the layer. The losses
(:mod:`~fometa.layers.softmax_cross_entropy`, :mod:`~fometa.layers.mse`) are module-level
``forward(pred, target) -> (loss[T], cache)`` and ``backward(cache, dloss[T]) -> dpred``.
"""
from fometa.layers import mse, softmax_cross_entropy
from fometa.layers.batchnorm import BatchNorm
from fometa.layers.conv2d import Conv2D
from fometa.layers.dense import Dense
from fometa.layers.flatten import Flatten, Reshape
from fometa.layers.maxpool import MaxPool2D
from fometa.layers.relu import ReLU
from fometa.layers.tanh import Tanh

__all__ = [
    "BatchNorm", "Conv2D", "Dense", "Flatten", "MaxPool2D", "ReLU", "Reshape", "Tanh",
    "mse", "softmax_cross_entropy",
]
