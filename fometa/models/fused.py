"""The fused network engine: a :class:`~fometa.models.Sequential` network's passes on the fast path.

The layers in :mod:`fometa.layers` are the specification: one layer per file, forward and
backward side by side, each a few readable array expressions. This module runs the same
network and computes the same numbers (bit for bit in most places, float32 round-off at
worst), with fewer, larger and in-place array calls:

* every [conv; batch norm; (2x2 max-pool); ReLU] run of layers is one :class:`ConvBlock`: the
  patch matrix is written straight from the unpadded input (no padded copy), batch norm and
  ReLU run in place on the matrix product's output, the pool keeps no index array, and the
  backward pass writes the input gradient straight into an unpadded array;
* parameter gradients go into one ``(T, P)`` buffer (:class:`fometa.tree.FlatLayout`), so an
  optimizer step on the whole tree is a handful of calls (the flat-buffer inner loop of
  :mod:`fometa.inner`);
* the network's first layer skips its input gradient.

Layers outside such runs (dense, tanh, flatten, ...) run their own ``forward``/``backward``.
Everything is written once against ``xp``; the backend's unpadded ``im2col``/``col2im``
kernels do the gathering. Where the backend has compiled kernels (:meth:`Backend.compiled
<fometa.backends.Backend.compiled>`: numba on the CPU), a block's bias, batch norm, pool and
ReLU run in them instead, a few passes over the conv output each way, with the numbers of the
NumPy code here. ``tests/models/test_fused.py`` checks each path against the layer-by-layer
one, which ``Sequential(..., fused=False)`` still runs.
"""
from __future__ import annotations

import functools
import os
from typing import Any, NamedTuple

from fometa import parallel, tree
from fometa.backends import array_module, backend_of, kernels
from fometa.layers import BatchNorm, Conv2D, Dense, MaxPool2D, ReLU, mse, softmax_cross_entropy
from fometa.layers.padding import out_size_and_pads

_LOSSES = {"softmax_cross_entropy": softmax_cross_entropy, "mse": mse}

#: A convolution's patch matrix for all tasks of a call is built at once, and kept for the
#: backward pass, when it holds at most this many bytes. Larger ones are built block by block
#: (whole tasks, or runs of one task's images), each block while the previous is still in the
#: cache, and rebuilt in the backward pass; no block depends on how many tasks the call holds.
PATCH_BLOCK_BYTES = 2 << 20
#: The first layer's patch matrices (of all its blocks) are kept for the backward pass up to this many
#: bytes: its backward pass computes only the kernel's gradient, from these patches.
FIRST_PATCH_BYTES = 8 << 20
WINOGRAD_ENV_VAR = "FOMETA_WINOGRAD"


# --------------------------------------------------------------------------------------
# a [conv; batch norm; (max-pool); ReLU] block
# --------------------------------------------------------------------------------------
class _BlockCache(NamedTuple):
    x: Any  # block input (T, B, H, W, C), to rebuild patches when they were not kept
    cols: Any  # patch matrix (T, B * pix, depth) or its blocks', Winograd's input tiles (T, 16, tiles, C), or None
    fast: Any  # the compiled kernels that ran the batch norm (then ``bn`` is theirs), or None
    bn: Any  # NumPy: (xhat (T, B * pix, C_out), 1 / sqrt(var + eps) (T, C_out), rows, pool, out)
    u: Any = None  # Winograd's transformed kernel (T, 16, C, C_out); None: the conv ran on patches


def winograd_enabled() -> bool:
    """Whether stride-1 3x3 convolutions run as Winograd F(2x2, 3x3) (``FOMETA_WINOGRAD``: unset or
    ``1``, the default; ``0`` runs them on patches, as the layer does). Read on every call, so that
    a benchmark or a test can run both in one process."""
    flag = os.environ.get(WINOGRAD_ENV_VAR, "").strip()
    if flag not in ("", "0", "1"):
        raise ValueError(f"{WINOGRAD_ENV_VAR} must be 0 (patches) or 1 (Winograd), got {flag!r}")
    return flag != "0"


class ConvBlock:
    """Conv2D, BatchNorm, optional MaxPool2D (2x2, stride 2), ReLU: ``relu(pool(bn(conv(x))))``."""

    def __init__(self, names, conv: Conv2D, bn: BatchNorm, pool: MaxPool2D | None):
        self.conv_name, self.bn_name = names[0], names[1]
        self.conv, self.bn, self.pool = conv, bn, pool
        # Winograd where its tiles and products (4 (C_in + C_out) values a pixel) move no more
        # memory than the patch matrix (9 C_in): every layer of Mini-ImageNet's net but the first
        self.winograd = (conv.kernel_hw == (3, 3) and conv.stride == 1
                         and 4 * (conv.in_channels + conv.out_channels) <= 9 * conv.in_channels)
        self.first = False  # the network's first layer with parameters (set by FusedNet): no input gradient
        self.param_keys = (f"{names[0]}/kernel", f"{names[0]}/bias", f"{names[1]}/scale", f"{names[1]}/offset")

    def _geometry(self, x):
        t, b, h, w, c = x.shape
        kh, kw = self.conv.kernel_hw
        oh, top, _ = out_size_and_pads(h, kh, self.conv.stride, self.conv.padding)
        ow, left, _ = out_size_and_pads(w, kw, self.conv.stride, self.conv.padding)
        return t, b, h, w, c, kh, kw, oh, ow, top, left

    def _patches(self, be, x, geometry):
        c, kh, kw, oh, ow, top, left = geometry[4:]
        cols = be.im2col_unpadded(x, kh, kw, self.conv.stride, top, left, oh, ow)
        return cols.reshape(x.shape[0], x.shape[1] * oh * ow, kh * kw * c)

    def forward(self, p, x, stats_batch=None, train=True, patches=None):
        """``(y, cache)``; ``patches``: a function giving the patch matrix ``(t1 - t0, (b1 - b0) * pix, depth)``
        of the tasks ``t0:t1`` and images ``b0:b1`` of ``x``, gathered from patches built beforehand
        (:meth:`FusedNet.first_patches`), used instead of building them (the same numbers)."""
        xp, be = array_module(x), backend_of(x)
        fast = be.compiled()
        geo = self._geometry(x)
        t, b, h, w, c, kh, kw, oh, ow, top, left = geo
        co = self.conv.out_channels
        kernel = p[self.param_keys[0]]
        pix = oh * ow
        whole = be.chunk_bytes is None
        cols: Any = None
        u: Any = None

        def patches_of(t0, t1, b0, b1):
            if patches is not None:
                return patches(t0, t1, b0, b1)
            return self._patches(be, x[t0:t1, b0:b1], geo)

        if patches is None and self.winograd and winograd_enabled():
            z, cols, u = self._winograd_forward(be, x, kernel, geo, whole)
        elif len(blocks := self._conv_blocks(geo, self._patch_bytes(geo, x.itemsize), whole)) == 1:
            cols = patches_of(0, t, 0, b)
            z = xp.matmul(cols, kernel.reshape(t, kh * kw * c, co))
        else:
            kmat = kernel.reshape(t, kh * kw * c, co)
            z = xp.empty((t, b * pix, co), dtype=xp.result_type(x.dtype, kmat.dtype))
            # the first layer keeps its blocks' patches for its kernel gradient (its only product back)
            keep = self.first and train and (patches is not None
                                             or t * b * self._patch_bytes(geo, x.itemsize) <= FIRST_PATCH_BYTES)
            cols = [] if keep else None
            for t0, t1, b0, b1 in blocks:
                cb = patches_of(t0, t1, b0, b1)
                xp.matmul(cb, kmat[t0:t1], out=z[t0:t1, b0 * pix : b1 * pix])
                if keep:
                    cols.append(cb)
        m = b * pix
        rows = m if stats_batch is None or stats_batch >= b else stats_batch * pix
        if rows < 1:
            raise ValueError(f"stats_batch must be at least 1, got {stats_batch}")
        bias, scale, offset = (p[k] for k in self.param_keys[1:])
        if fast is not None:  # bias, batch norm, pool and ReLU in three reads of z and one write
            y, saved = fast.bn_act_forward(z, bias, scale, offset, self.bn.eps, rows, (b, oh, ow),
                                           self.pool is not None, train)
            return y, (_BlockCache(x, cols, fast, saved, u) if train else None)
        z += bias[:, None, :]
        # batch norm on the batch's statistics (the first ``stats_batch`` examples' when given),
        # computed exactly as fometa.layers.batchnorm does, in place on z
        mu = xp.einsum("tmc->tc", z[:, :rows]) / rows
        z -= mu[:, None, :]
        ref = z[:, :rows]
        var = xp.einsum("tmc,tmc->tc", ref, ref) / rows
        inv = 1.0 / xp.sqrt(var + self.bn.eps)
        z *= inv[:, None, :]
        y = z * scale[:, None, :]
        y += offset[:, None, :]
        y = y.reshape(t, b, oh, ow, co)
        pool = None
        if self.pool is not None:
            y, winner = _pool_forward(y, with_winner=train)
            pool = (winner, (t, b, oh, ow, co))
        xp.maximum(y, 0, out=y)
        if not train:
            return y, None
        return y, _BlockCache(x, cols, None, (z, inv, rows, pool, y), u)

    def backward(self, p, cache: _BlockCache, dy, need_dx=True, kernel_out=None):
        """``(dx, grads)`` with grads ``{key: (T, ...)}`` for the block's four parameters; with
        ``kernel_out`` (a ``(T, kh * kw * C_in, C_out)`` array of the gradient's dtype, such as
        a view into the flat gradient buffer) the kernel's gradient is written there instead."""
        xp, be = array_module(dy), backend_of(dy)
        geo = self._geometry(cache.x)
        t, b, h, w, c, kh, kw, oh, ow, top, left = geo
        co = self.conv.out_channels
        if cache.fast is not None:
            dz, dbias, dscale, doffset = cache.fast.bn_act_backward(cache.bn, *(p[k] for k in self.param_keys[1:]), dy)
            grads = {self.param_keys[2]: dscale, self.param_keys[3]: doffset, self.param_keys[1]: dbias}
        else:
            xhat, inv, rows, pool, out = cache.bn
            d = dy * (out > 0)
            if self.pool is not None:
                winner, pooled_shape = pool
                d = _pool_backward(winner, pooled_shape, d)
            # batch norm's own backward pass (fometa/layers/batchnorm.py) on the cached statistics
            dz, bn_grads = self.bn.backward({"scale": p[self.param_keys[2]]}, (xhat, inv, rows), d)
            dz = dz.reshape(xhat.shape)
            grads = {self.param_keys[2]: bn_grads["scale"], self.param_keys[3]: bn_grads["offset"],
                     self.param_keys[1]: xp.einsum("tmc->tc", dz)}
        kernel = p[self.param_keys[0]]
        if cache.u is not None:
            return self._winograd_backward(be, cache, dz, geo, need_dx, kernel_out, grads, be.chunk_bytes is None)
        pix, depth = oh * ow, kh * kw * c
        kmat = kernel.reshape(t, depth, co)
        transposed = need_dx and self.conv.stride == 1 and (oh, ow) == (h, w)
        if transposed:  # dx is the 'same' convolution of dz with the flipped, transposed kernel
            kflip = xp.ascontiguousarray(kernel[:, ::-1, ::-1].transpose(0, 1, 2, 4, 3)).reshape(t, kh * kw * co, c)
            dz5 = dz.reshape(t, b, oh, ow, co)
            ftop, fleft = kh - 1 - top, kw - 1 - left
        if cache.cols is not None and not isinstance(cache.cols, list):
            dkernel = xp.matmul(cache.cols.transpose(0, 2, 1), dz, out=kernel_out)
            if kernel_out is None:
                grads[self.param_keys[0]] = dkernel.reshape(kernel.shape)
            if not need_dx:
                return None, grads
            if transposed:
                cols = be.im2col_unpadded(dz5, kh, kw, 1, ftop, fleft, h, w).reshape(t, b * h * w, kh * kw * co)
                return xp.matmul(cols, kflip).reshape(cache.x.shape), grads
            dcols = xp.matmul(dz, kmat.transpose(0, 2, 1)).reshape(t, b, oh, ow, kh * kw, c)
            return be.col2im_unpadded(dcols, cache.x.shape, kh, kw, self.conv.stride, top, left), grads
        dkernel = xp.empty((t, depth, co), dtype=dz.dtype) if kernel_out is None else kernel_out
        dx: Any = xp.empty(cache.x.shape, dtype=dz.dtype) if need_dx else None
        blocks = self._conv_blocks(geo, self._patch_bytes(geo, cache.x.itemsize), be.chunk_bytes is None)
        for i, (t0, t1, b0, b1) in enumerate(blocks):
            cb = cache.cols[i] if cache.cols is not None else self._patches(be, cache.x[t0:t1, b0:b1], geo)
            dzb = dz[t0:t1, b0 * pix : b1 * pix]
            if b0 == 0:
                xp.matmul(cb.transpose(0, 2, 1), dzb, out=dkernel[t0:t1])
            else:  # a later run of the same task's images
                dkernel[t0:t1] += xp.matmul(cb.transpose(0, 2, 1), dzb)
            if transposed:
                cols = be.im2col_unpadded(dz5[t0:t1, b0:b1], kh, kw, 1, ftop, fleft, h, w)
                dxb = dx[t0:t1, b0:b1].reshape(t1 - t0, (b1 - b0) * h * w, c)
                xp.matmul(cols.reshape(t1 - t0, (b1 - b0) * h * w, kh * kw * co), kflip[t0:t1], out=dxb)
            elif need_dx:
                dcols = xp.matmul(dzb, kmat[t0:t1].transpose(0, 2, 1)).reshape(t1 - t0, b1 - b0, oh, ow, kh * kw, c)
                be.col2im_unpadded(dcols, (t1 - t0, b1 - b0, h, w, c), kh, kw, self.conv.stride, top, left,
                                   out=dx[t0:t1, b0:b1])
        if kernel_out is None:
            grads[self.param_keys[0]] = dkernel.reshape(kernel.shape)
        return dx, grads

    # -- Winograd F(2x2, 3x3) (fometa.backends.kernels): stride-1 3x3 convolutions ------------
    def _winograd_geometry(self, geo):
        oh, ow = geo[7], geo[8]
        return kernels.winograd_tiles(oh, ow)

    def _winograd_bytes(self, geo, itemsize):
        """Bytes of one image's input tiles and products (the per-image temporaries)."""
        th, tw = self._winograd_geometry(geo)
        return 16 * th * tw * (geo[4] + self.conv.out_channels) * itemsize

    def _winograd_forward(self, be, x, kernel, geo, whole):
        """``(z, kept input tiles or None, U)``: the conv output ``(T, B * oh * ow, C_out)`` as
        16 matrix products per block of images, between the input and output transforms."""
        xp = array_module(x)
        t, b, h, w, c, kh, kw, oh, ow, top, left = geo
        th, tw = self._winograd_geometry(geo)
        ops = be.kernels()
        u = ops.winograd_kernel(kernel)
        pix = oh * ow
        blocks = self._conv_blocks(geo, self._winograd_bytes(geo, x.itemsize), whole)
        z = xp.empty((t, b * pix, self.conv.out_channels), dtype=xp.result_type(x.dtype, u.dtype))
        kept = None
        for t0, t1, b0, b1 in blocks:
            v = ops.winograd_input(x[t0:t1, b0:b1], top, left, th, tw)
            ops.winograd_output(xp.matmul(v, u[t0:t1]), b1 - b0, oh, ow, out=z[t0:t1, b0 * pix : b1 * pix])
            if len(blocks) == 1:
                kept = v
        return z, kept, u

    def _winograd_backward(self, be, cache, dz, geo, need_dx, kernel_out, grads, whole):
        """The kernel's gradient (into ``kernel_out`` when given, else into ``grads``) and, with
        ``need_dx``, the input's: ``dM = A dY A^T``, then ``dU = V^T dM`` (summed over a task's
        blocks in order) and ``dV = dM U^T`` per block, 16 products each."""
        xp = array_module(dz)
        t, b, h, w, c, kh, kw, oh, ow, top, left = geo
        th, tw = self._winograd_geometry(geo)
        co, pix = self.conv.out_channels, oh * ow
        du = xp.empty((t, 16, c, co), dtype=dz.dtype)
        ut: Any = xp.ascontiguousarray(cache.u.transpose(0, 1, 3, 2)) if need_dx else None
        dx: Any = xp.empty(cache.x.shape, dtype=dz.dtype) if need_dx else None
        ops = be.kernels()
        for t0, t1, b0, b1 in self._conv_blocks(geo, self._winograd_bytes(geo, cache.x.itemsize), whole):
            v = cache.cols if cache.cols is not None else ops.winograd_input(cache.x[t0:t1, b0:b1], top, left, th, tw)
            dm = ops.winograd_output_grad(dz[t0:t1, b0 * pix : b1 * pix], b1 - b0, oh, ow)
            if b0 == 0:
                xp.matmul(v.transpose(0, 1, 3, 2), dm, out=du[t0:t1])
            else:  # a later run of the same task's images
                du[t0:t1] += xp.matmul(v.transpose(0, 1, 3, 2), dm)
            if need_dx:
                ops.winograd_input_grad(xp.matmul(dm, ut[t0:t1]), (t1 - t0, b1 - b0, h, w, c), top, left, th, tw,
                                        out=dx[t0:t1, b0:b1])
        dkernel = ops.winograd_kernel_grad(du)
        if kernel_out is None:
            grads[self.param_keys[0]] = dkernel
        else:
            kernel_out[...] = dkernel.reshape(kernel_out.shape)
        return dx, grads

    # -- blocks ------------------------------------------------------------------------------
    def _patch_bytes(self, geo, itemsize):
        """Bytes of one image's patch matrix."""
        t, b, h, w, c, kh, kw, oh, ow, top, left = geo
        return oh * ow * kh * kw * c * itemsize

    def _conv_blocks(self, geo, per_image, whole=False):
        """``(t0, t1, b0, b1)`` blocks of tasks and images whose temporaries (``per_image`` bytes
        an image: patch matrices, or Winograd's tiles and products) hold at most
        :data:`PATCH_BLOCK_BYTES`: runs of whole tasks when one task fits, else runs of equal
        numbers of one task's images. Which block a task lands in never changes its numbers:
        each task's matrix products are separate calls either way. ``whole`` (a GPU backend,
        which wants one launch per product): a single block."""
        t, b = geo[0], geo[1]
        if whole:
            return [(0, t, 0, b)]
        if b * per_image <= PATCH_BLOCK_BYTES:
            step = max(1, PATCH_BLOCK_BYTES // max(1, b * per_image))
            return [(t0, min(t, t0 + step), 0, b) for t0 in range(0, t, step)]
        step = max(1, PATCH_BLOCK_BYTES // per_image)
        step = -(-b // -(-b // step))  # equal runs: 10 images at most 6 a run go as 5 + 5
        return [(i, i + 1, b0, min(b, b0 + step)) for i in range(t) for b0 in range(0, b, step)]


def _pool_geometry(shape):
    h, w = shape[2], shape[3]
    return -(-h // 2), -(-w // 2)


def _pool_windows(y):
    """The four 2x2-window offsets of ``y`` (T, B, H, W, C) as strided views, padding odd sizes
    with -inf at the bottom/right (TensorFlow's 'same' rule for a 2x2 pool of stride 2)."""
    xp = array_module(y)
    oh, ow = _pool_geometry(y.shape)
    if (2 * oh, 2 * ow) != y.shape[2:4]:
        padded = xp.full(y.shape[:2] + (2 * oh, 2 * ow) + y.shape[4:], -xp.inf, dtype=y.dtype)
        padded[:, :, : y.shape[2], : y.shape[3]] = y
        y = padded
    return y, [y[:, :, di::2, dj::2, :] for di in (0, 1) for dj in (0, 1)]


def _pool_forward(y, with_winner=False):
    """Window maxima of ``y``, and (``with_winner``) which offset holds each window's first
    maximum in row-major order, TensorFlow's rule for the gradient: ``(out, winner or None)``."""
    xp = array_module(y)
    _, (v0, v1, v2, v3) = _pool_windows(y)
    top, bottom = xp.maximum(v0, v1), xp.maximum(v2, v3)
    out = xp.maximum(top, bottom)
    if not with_winner:
        return out, None
    # first maximum: the right one of a pair only if strictly larger; the bottom pair only if
    # its maximum is strictly larger than the top pair's
    # (arithmetic on uint8: several times faster than a masked copy or ``where``)
    winner = (v1 > v0).view(xp.uint8)  # 0 or 1
    lower = (v3 > v2).view(xp.uint8)
    lower += 2  # 2 or 3
    lower -= winner
    lower *= (bottom > top).view(xp.uint8)
    winner += lower
    return out, winner


def _pool_backward(winner, shape, dout):
    """Route ``dout`` to each window's winning offset (see :func:`_pool_forward`)."""
    xp = array_module(dout)
    oh, ow = _pool_geometry(shape)
    grad = xp.empty(shape[:2] + (2 * oh, 2 * ow) + shape[4:], dtype=dout.dtype)
    for k in range(4):
        xp.multiply(dout, winner == k, out=grad[:, :, k // 2 :: 2, k % 2 :: 2, :])
    return grad[:, :, : shape[2], : shape[3]]


# --------------------------------------------------------------------------------------
# any other layer runs its own forward/backward
# --------------------------------------------------------------------------------------
class LayerOp:
    def __init__(self, name, layer):
        self.name, self.layer = name, layer
        self.param_keys = tuple(f"{name}/{k}" for k in layer.param_shapes())

    def _local(self, p):
        return {k.split("/", 1)[1]: p[k] for k in self.param_keys}

    def forward(self, p, x, stats_batch=None, train=True):
        if isinstance(self.layer, BatchNorm):
            return self.layer.forward(self._local(p), x, stats_batch=stats_batch)
        return self.layer.forward(self._local(p), x)

    def backward(self, p, cache, dy, need_dx=True, kernel_out=None):
        if isinstance(self.layer, (Conv2D, Dense)):
            dx, grads = self.layer.backward(self._local(p), cache, dy, need_dx=need_dx)
        else:
            dx, grads = self.layer.backward(self._local(p), cache, dy)
        return dx, {f"{self.name}/{k}": v for k, v in grads.items()}


def _compile(layers):
    ops: list[ConvBlock | LayerOp] = []
    i = 0
    while i < len(layers):
        name, layer = layers[i]
        if isinstance(layer, Conv2D) and i + 2 < len(layers) and isinstance(layers[i + 1][1], BatchNorm):
            j = i + 2
            pool = None
            if isinstance(layers[j][1], MaxPool2D) and _fusable_pool(layers[j][1]):
                pool, j = layers[j][1], j + 1
            if j < len(layers) and isinstance(layers[j][1], ReLU):
                ops.append(ConvBlock((name, layers[i + 1][0]), layer, layers[i + 1][1], pool))
                i = j + 1
                continue
        ops.append(LayerOp(name, layer))
        i += 1
    return tuple(ops)


def _fusable_pool(pool: MaxPool2D) -> bool:
    return pool.pool == 2 and pool.stride == 2 and pool.padding == "same"


# --------------------------------------------------------------------------------------
# the network
# --------------------------------------------------------------------------------------
class FusedNet:
    """A :class:`~fometa.models.Sequential`'s passes on task-batched parameters ``{key: (T, ...)}``."""

    def __init__(self, model):
        self.model = model
        self.layout = tree.FlatLayout(model.param_shapes())
        self.ops = _compile(model.layers)
        self.loss = _LOSSES[model.loss]
        first = next((i for i, op in enumerate(self.ops) if op.param_keys), 0)
        self._first_with_params = first
        if isinstance(self.ops[first], ConvBlock):
            self.ops[first].first = True

    def _forward(self, p, x, stats_batch, train, first_patches=None):
        caches = []
        for i, op in enumerate(self.ops):
            if first_patches is not None and i == self._first_with_params:
                x, cache = op.forward(p, x, stats_batch, train, patches=first_patches)
            else:
                x, cache = op.forward(p, x, stats_batch, train)
            caches.append(cache)
        return x, caches

    def first_patches(self, x, max_bytes: int | None = None):
        """The first layer's patch matrices of every image of ``x`` ``(T, N, ...)``: ``(T, N, pix, depth)``, for
        inner steps that draw their mini-batches from the same images again and again (an evaluation's 50 steps
        on its support set: :func:`fometa.inner.adapt_flat`), to pass on as :meth:`loss_and_grad`'s
        ``first_patches``. ``None`` where the first layer runs on no patches (a Winograd layer, not a conv
        block) or they would hold more than ``max_bytes``."""
        first = self.ops[self._first_with_params]
        if not isinstance(first, ConvBlock) or (first.winograd and winograd_enabled()):
            return None
        for op in self.ops[: self._first_with_params]:  # layers without parameters, such as a reshape
            x, _ = op.forward({}, x, None, False)
        geo = first._geometry(x)
        t, b = geo[0], geo[1]
        if max_bytes is not None and t * b * first._patch_bytes(geo, x.itemsize) > max_bytes:
            return None
        return first._patches(backend_of(x), x, geo).reshape(t, b, geo[7] * geo[8], -1)

    def forward(self, p, x, stats_batch=None):
        """Outputs ``(T, B, out)`` of task-batched ``x`` ``(T, B, ...)``."""
        return self._forward(p, x, stats_batch, train=False)[0]

    def loss_value(self, p, x, y):
        out = self.forward(p, x)
        return self.loss.forward(out, y)[0]

    def loss_and_grad(self, p, x, y, first_patches=None):
        """Losses ``(T,)`` and the gradient as one ``(T, P)`` buffer in :attr:`layout` order; ``first_patches``:
        the first layer's patches of ``x``'s images, gathered from :meth:`first_patches` (see
        :meth:`ConvBlock.forward`; the same numbers)."""
        xp = array_module(x)
        out, caches = self._forward(p, x, None, train=True, first_patches=first_patches)
        loss, lcache = self.loss.forward(out, y)
        d = self.loss.backward(lcache, xp.ones_like(loss))
        t = x.shape[0]
        flat = xp.empty((t, self.layout.size), dtype=xp.result_type(d.dtype, *(p[k].dtype for k in self.layout.shapes)))
        for i in range(len(self.ops) - 1, self._first_with_params - 1, -1):
            op = self.ops[i]
            kernel_out = None
            if isinstance(op, ConvBlock) and flat.dtype == d.dtype:  # the kernel gradient straight into flat
                kernel_out = flat[:, self.layout.slices[op.param_keys[0]]].reshape(t, -1, op.conv.out_channels)
            d, grads = op.backward(p, caches[i], d, need_dx=i > self._first_with_params, kernel_out=kernel_out)
            caches[i] = None
            for key, g in grads.items():
                flat[:, self.layout.slices[key]] = g.reshape(t, -1)
        return loss, flat


@functools.lru_cache(maxsize=64)
def net_for(model) -> FusedNet:
    """The (cached) fused form of ``model``; the first call also tunes the allocator
    (:func:`fometa.parallel.tune_allocator`)."""
    parallel.tune_allocator()
    return FusedNet(model)
