"""A chain of layers with named parameters, a loss, and an explicit backward pass.

Parameters are one ordered ``dict`` named ``"<layer>/<param>"`` (for example
``"conv0/kernel"``). Every method accepts either

* single-task arrays: params as built by :meth:`Sequential.init`, ``x`` ``(B, *input_shape)``; or
* task-batched arrays: a leading task axis ``T`` on every parameter and on ``x``
  (``(T, B, *input_shape)``), as made by :func:`fometa.tree.broadcast` or :func:`fometa.tree.stack`.

Task ``t`` of a batched call computes exactly what a single-task call on task ``t`` computes.

The passes run on the fused fast path (:mod:`fometa.models.fused`) unless ``fused=False``, which runs
the layers one by one as written in :mod:`fometa.layers`: the specification that the fused
path is tested against.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fometa.backends import array_module, get_backend
from fometa.layers import BatchNorm, Conv2D, Dense, mse, softmax_cross_entropy
from fometa.models.fused import net_for

_LOSSES = {"softmax_cross_entropy": softmax_cross_entropy, "mse": mse}


@dataclass(frozen=True)
class Sequential:
    """A network called ``name``: ``layers`` as ``((layer name, layer), ...)`` on examples of ``input_shape``,
    with the ``loss`` (``softmax_cross_entropy`` or ``mse``); ``fused`` runs the fast engine
    (:mod:`fometa.models.fused`), ``False`` the layer-by-layer specification. See the module docstring."""
    name: str
    layers: tuple  # ((layer_name, layer), ...)
    input_shape: tuple[int, ...]
    loss: str = "softmax_cross_entropy"
    fused: bool = True  # False: the layer-by-layer reference passes
    #: the shape of one example's outputs, from the layers (set at construction)
    output_shape: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.loss not in _LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; expected one of {sorted(_LOSSES)}")
        shape = tuple(self.input_shape)
        for _, layer in self.layers:  # validates the geometry once, at construction
            shape = layer.output_shape(shape)
        object.__setattr__(self, "output_shape", shape)

    # -- parameters ----------------------------------------------------------
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Single-task shape of every parameter, in order."""
        return {
            f"{lname}/{pname}": tuple(shape)
            for lname, layer in self.layers
            for pname, shape in layer.param_shapes().items()
        }

    def init(self, rng: np.random.Generator, dtype=np.float32, backend=None) -> dict:
        """Fresh single-task parameters (TensorFlow's default initializers), drawn from ``rng``."""
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"init needs a numpy.random.Generator, got {type(rng).__name__}")
        be = get_backend(backend) if backend is not None else None
        params = {}
        for lname, layer in self.layers:
            for pname, value in layer.init(rng, dtype).items():
                params[f"{lname}/{pname}"] = be.asarray(value) if be is not None else value
        return params

    # -- task axis handling --------------------------------------------------
    def _batched(self, params, x):
        """Return (params, x, single) with a task axis added where the input has none."""
        shapes = self.param_shapes()
        if list(params.keys()) != list(shapes.keys()):
            raise ValueError(
                f"{self.name}: parameter names {list(params.keys())} do not match the model's {list(shapes.keys())}"
            )
        nd_in = len(self.input_shape)
        if x.ndim == nd_in + 1:
            single = True
        elif x.ndim == nd_in + 2:
            single = False
        else:
            raise ValueError(
                f"{self.name}: inputs must have shape (B, {', '.join(map(str, self.input_shape))}) "
                f"or (T, B, ...), got {tuple(x.shape)}"
            )
        if tuple(x.shape[-nd_in:]) != tuple(self.input_shape):
            raise ValueError(f"{self.name}: examples must have shape {self.input_shape}, got {tuple(x.shape[-nd_in:])}")
        out = {}
        for key, shape in shapes.items():
            p = params[key]
            want = shape if single else (x.shape[0],) + shape
            if tuple(p.shape) != want:
                form = "single-task" if single else f"task-batched (T={x.shape[0]})"
                raise ValueError(
                    f"{self.name}: parameter {key!r} has shape {tuple(p.shape)}, expected {want} for {form} inputs"
                )
            out[key] = p[None] if single else p
        return out, (x[None] if single else x), single

    # -- passes --------------------------------------------------------------
    def _net(self):
        return net_for(self)

    def _forward(self, params, x, stats_batch=None):
        caches = []
        for lname, layer in self.layers:
            local = {k.split("/", 1)[1]: v for k, v in params.items() if k.startswith(lname + "/")}
            if isinstance(layer, BatchNorm):
                x, cache = layer.forward(local, x, stats_batch=stats_batch)
            else:
                x, cache = layer.forward(local, x)
            caches.append((local, cache))
        return x, caches

    def _backward(self, caches, dy, need_input_grad: bool = False):
        """Parameter gradients, and the input gradient when ``need_input_grad`` (else ``None``).

        Without the input gradient, the backward pass stops at the first layer with
        parameters, which (a convolution or dense layer) skips its own input gradient.
        """
        grads = {}
        first = next((i for i, (_, layer) in enumerate(self.layers) if layer.param_shapes()), 0)
        for i in range(len(self.layers) - 1, -1, -1):
            (lname, layer), (local, cache) = self.layers[i], caches[i]
            if i == first and not need_input_grad and isinstance(layer, (Conv2D, Dense)):
                dy, g = layer.backward(local, cache, dy, need_dx=False)
            else:
                dy, g = layer.backward(local, cache, dy)
            for pname in reversed(list(g)):
                grads[f"{lname}/{pname}"] = g[pname]
            if i == first and not need_input_grad:
                dy = None
                break
        ordered = {k: grads[k] for k in self.param_shapes()}
        return ordered, dy

    def forward(self, params, x, *, stats_batch: int | None = None):
        """Model outputs (logits, or regression outputs): ``(B, out)`` or ``(T, B, out)``.

        ``stats_batch=n`` makes every batch-norm layer take its statistics from the first
        ``n`` examples of each batch (see :mod:`fometa.layers.batchnorm`).
        """
        params, x, single = self._batched(params, x)
        if self.fused:
            y = self._net().forward(params, x, stats_batch)
        else:
            y, _ = self._forward(params, x, stats_batch)
        return y[0] if single else y

    def loss_and_grad(self, params, x, y):
        """Loss and its gradient with respect to every parameter.

        Single-task: a 0-d loss and grads shaped like ``params``. Task-batched: losses ``(T,)``
        and grads ``(T, ...)``, where task ``t``'s gradient is that of its own loss.
        Labels are integers ``(B,)``/``(T, B)`` for classifiers, targets ``(B, out)``/``(T, B, out)``
        for regression.
        """
        params, x, single = self._batched(params, x)
        y = y[None] if single else y
        if self.fused:
            net = self._net()
            loss, flat = net.loss_and_grad(params, x, y)
            grads = net.layout.views(flat)
            if single:
                return loss[0], {k: v[0] for k, v in grads.items()}
            return loss, grads
        out, caches = self._forward(params, x)
        lossmod = _LOSSES[self.loss]
        loss, lcache = lossmod.forward(out, y)
        dout = lossmod.backward(lcache, array_module(out).ones_like(loss))
        grads, _ = self._backward(caches, dout)
        if single:
            return loss[0], {k: v[0] for k, v in grads.items()}
        return loss, grads

    def loss_value(self, params, x, y):
        """The loss alone (0-d single-task, ``(T,)`` batched)."""
        params, x, single = self._batched(params, x)
        y = y[None] if single else y
        out = self._net().forward(params, x) if self.fused else self._forward(params, x)[0]
        loss, _ = _LOSSES[self.loss].forward(out, y)
        return loss[0] if single else loss

    def describe(self) -> str:
        """A readable summary: one line per layer with its output shape."""
        lines = [f"{self.name}: input {self.input_shape} -> output {self.output_shape}"]
        shape = tuple(self.input_shape)
        for lname, layer in self.layers:
            shape = layer.output_shape(shape)
            lines.append(f"  {lname:8s} {layer!r:60s} -> {shape}")
        return "\n".join(lines)
