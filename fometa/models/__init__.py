"""The paper's networks, built as :class:`~fometa.models.sequential.Sequential` chains.

Parameter layouts (single-task shapes; task-batched parameters add a leading ``T``):

``omniglot_cnn(ways)`` - input ``(B, 28, 28)`` in [0, 1], reshaped to ``(B, 28, 28, 1)``;
4 x [conv 3x3, 64 filters, stride 2, 'same'; batch norm; ReLU], flatten (2*2*64 = 256), dense:

* ``conv{i}/kernel`` ``(3, 3, C_in, 64)`` (HWIO, C_in = 1 for i = 0 else 64), ``conv{i}/bias`` ``(64,)``
* ``bn{i}/scale`` ``(64,)``, ``bn{i}/offset`` ``(64,)``
* ``dense/kernel`` ``(256, ways)``, ``dense/bias`` ``(ways,)``; the 256 features are the
  ``(2, 2, 64)`` map flattened in row-major (H, W, C) order.

``miniimagenet_cnn(ways)`` - input ``(B, 84, 84, 3)``; 4 x [conv 3x3, 32 filters, stride 1, 'same';
batch norm; 2x2 max-pool stride 2 'same'; ReLU], flatten (6*6*32 = 1152), dense:
``conv{i}/kernel`` ``(3, 3, C_in, 32)`` (C_in = 3 for i = 0), ``conv{i}/bias`` ``(32,)``, ``bn{i}/*`` ``(32,)``,
``dense/kernel`` ``(1152, ways)``, ``dense/bias`` ``(ways,)``.

``sine_mlp()`` - input ``(B, 1)``; dense 1->64, tanh, dense 64->64, tanh, dense 64->1; mean squared
error: ``fc{i}/kernel`` ``(in, out)``, ``fc{i}/bias`` ``(out,)`` for i = 0, 1, 2.

These follow openai/supervised-reptile's ``models.py`` (TensorFlow 1 ``tf.layers``): same layer
order, kernel layouts, initializers and batch-norm epsilon (1e-3, batch statistics).
"""
from __future__ import annotations

from typing import Any

from fometa.layers import BatchNorm, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Reshape, Tanh
from fometa.models.sequential import Sequential

__all__ = ["Sequential", "omniglot_cnn", "miniimagenet_cnn", "sine_mlp", "conv_net"]


def _check_ways(ways):
    if not isinstance(ways, int) or ways < 2:
        raise ValueError(f"ways must be an integer >= 2, got {ways!r}")


def conv_net(
    name: str,
    ways: int,
    input_shape: tuple[int, ...],
    filters: int,
    blocks: int = 4,
    stride: int = 1,
    pool: bool = False,
    init: str = "glorot",
) -> Sequential:
    """``blocks`` x [conv 3x3 'same'; batch norm; (max-pool 2x2); ReLU], flatten, dense.

    ``init`` (``"glorot"`` or ``"torch"``) is every conv and dense layer's initializer (see
    :meth:`Conv2D.init <fometa.layers.conv2d.Conv2D.init>`). Small instances (few filters, small
    inputs) serve tests of second-order MAML and theory.
    """
    _check_ways(ways)
    layers: list[tuple[str, Any]] = []
    if len(input_shape) == 2:
        layers.append(("reshape", Reshape(tuple(input_shape) + (1,))))
        channels = 1
    else:
        channels = input_shape[-1]
    for i in range(blocks):
        layers.append((f"conv{i}", Conv2D(channels, filters, 3, stride=stride, padding="same", init_scheme=init)))
        layers.append((f"bn{i}", BatchNorm(filters)))
        if pool:
            layers.append((f"pool{i}", MaxPool2D(2, 2, "same")))
        layers.append((f"relu{i}", ReLU()))
        channels = filters
    shape = tuple(input_shape) if len(input_shape) == 3 else tuple(input_shape) + (1,)
    for _, layer in layers[1 if len(input_shape) == 2 else 0 :]:
        shape = layer.output_shape(shape)
    features = int(shape[0] * shape[1] * shape[2])
    layers += [("flatten", Flatten()), ("dense", Dense(features, ways, init))]
    return Sequential(name, tuple(layers), tuple(input_shape), "softmax_cross_entropy")


def omniglot_cnn(ways: int, init: str = "glorot") -> Sequential:
    """The paper's Omniglot network (see the module docstring for the parameter layout)."""
    name = f"omniglot_cnn({ways})" if init == "glorot" else f"omniglot_cnn({ways}, init={init})"
    return conv_net(name, ways, (28, 28), filters=64, blocks=4, stride=2, init=init)


def miniimagenet_cnn(ways: int, init: str = "glorot") -> Sequential:
    """The paper's Mini-ImageNet network (see the module docstring for the parameter layout)."""
    name = f"miniimagenet_cnn({ways})" if init == "glorot" else f"miniimagenet_cnn({ways}, init={init})"
    return conv_net(name, ways, (84, 84, 3), filters=32, blocks=4, pool=True, init=init)


def sine_mlp(hidden: int = 64, init: str = "glorot") -> Sequential:
    """1-64-64-1 tanh regression network for the sine-wave toy problem (mean squared error).

    ``init="torch"`` draws weights and biases as PyTorch's ``nn.Linear`` (uniform within
    ``1/sqrt(fan_in)``), as the reference sine demo (a PyTorch script) does; the default is
    TensorFlow's (Glorot-uniform kernels, zero biases), like the other models.
    """
    layers = (
        ("fc0", Dense(1, hidden, init)),
        ("tanh0", Tanh()),
        ("fc1", Dense(hidden, hidden, init)),
        ("tanh1", Tanh()),
        ("fc2", Dense(hidden, 1, init)),
    )
    return Sequential("sine_mlp", layers, (1,), "mse")
