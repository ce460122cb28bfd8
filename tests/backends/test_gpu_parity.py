"""CuPy parity (marked ``gpu``; skipped with the reason where CuPy or a GPU is missing): every
layer's forward and backward, both losses, and the Omniglot model's loss and gradients on the
GPU equal NumPy's within float32 tolerance, Winograd's transforms and the Mini-ImageNet model included;
trees move to the GPU and back unchanged."""
import numpy as np
import pytest

from fometa import models, tree
from fometa.backends import array_module, backend_of, kernels
from fometa.layers import BatchNorm, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Reshape, Tanh, mse, softmax_cross_entropy

pytestmark = pytest.mark.gpu


def assert_close32(gpu, cpu, what, rtol=1e-4, atol_scale=1e-5):
    """Host copy of a CuPy array vs a NumPy array, float32 tolerance relative to the data's scale."""
    assert array_module(gpu).__name__ == "cupy", f"{what}: expected a CuPy array, got {type(gpu)}"
    got = gpu.get()
    assert got.shape == cpu.shape and got.dtype == cpu.dtype, \
        f"{what}: {got.shape}/{got.dtype} vs {cpu.shape}/{cpu.dtype}"
    np.testing.assert_allclose(got, cpu, rtol=rtol, atol=atol_scale * (np.abs(cpu).max() + 1e-30), err_msg=what)


LAYERS = {  # name -> (layer, example shape (H, W, C) or (F,), forward kwargs)
    "conv3x3_s2_same": (Conv2D(3, 4, 3, stride=2, padding="same"), (7, 6, 3), {}),
    "conv2x4_valid": (Conv2D(2, 3, (2, 4), stride=1, padding="valid"), (5, 6, 2), {}),
    "maxpool2_same": (MaxPool2D(2, 2, "same"), (5, 7, 3), {}),
    "maxpool3_s1_valid": (MaxPool2D(3, 1, "valid"), (5, 6, 2), {}),
    "batchnorm": (BatchNorm(4), (3, 3, 4), {}),
    "batchnorm_stats2": (BatchNorm(4), (3, 3, 4), {"stats_batch": 2}),
    "dense": (Dense(6, 4), (6,), {}),
    "relu": (ReLU(), (3, 4, 2), {}),
    "tanh": (Tanh(), (3, 4, 2), {}),
    "flatten": (Flatten(), (3, 4, 2), {}),
    "reshape": (Reshape((4, 6)), (3, 4, 2), {}),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_matches_numpy(name, gpu_backend):
    layer, example, kw = LAYERS[name]
    rng = np.random.default_rng(0)
    t, b = 2, 4
    params = {k: rng.standard_normal((t,) + s).astype(np.float32) for k, s in layer.param_shapes().items()}
    x = rng.standard_normal((t, b) + example).astype(np.float32)
    y, cache = layer.forward(params, x, **kw)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, grads = layer.backward(params, cache, dy.copy())

    gparams = tree.to_backend(params, gpu_backend)
    gy, gcache = layer.forward(gparams, gpu_backend.asarray(x), **kw)
    gdx, ggrads = layer.backward(gparams, gcache, gpu_backend.asarray(dy))
    assert_close32(gy, y, f"{name}: forward")
    assert_close32(gdx, dx, f"{name}: dx")
    assert list(ggrads) == list(grads), f"{name}: gradient keys"
    for k in grads:
        assert_close32(ggrads[k], grads[k], f"{name}: grad {k!r}")


@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "mse"])
def test_loss_matches_numpy(loss, gpu_backend):
    mod = {"softmax_cross_entropy": softmax_cross_entropy, "mse": mse}[loss]
    rng = np.random.default_rng(1)
    pred = (3 * rng.standard_normal((3, 5, 4))).astype(np.float32)
    if loss == "softmax_cross_entropy":
        target = rng.integers(0, 4, (3, 5))
    else:
        target = rng.standard_normal((3, 5, 4)).astype(np.float32)
    w = rng.standard_normal(3).astype(np.float32)
    value, cache = mod.forward(pred, target)
    dpred = mod.backward(cache, w.copy())
    gvalue, gcache = mod.forward(gpu_backend.asarray(pred), gpu_backend.asarray(target))
    assert_close32(gvalue, value, f"{loss}: value")
    assert_close32(mod.backward(gcache, gpu_backend.asarray(w)), dpred, f"{loss}: d pred")


def test_omniglot_model_matches_numpy(gpu_backend):
    model = models.omniglot_cnn(5)
    rng = np.random.default_rng(2)
    params = tree.stack([model.init(rng) for _ in range(2)])
    x = rng.random((2, 5, 28, 28), dtype=np.float32)
    y = rng.integers(0, 5, (2, 5))
    loss, grads = model.loss_and_grad(params, x, y)
    gparams = tree.to_backend(params, gpu_backend)
    gx, gy = gpu_backend.asarray(x), gpu_backend.asarray(y)
    gloss, ggrads = model.loss_and_grad(gparams, gx, gy)
    assert_close32(gloss, loss, "omniglot: losses", rtol=1e-4)
    assert_close32(model.forward(gparams, gx), model.forward(params, x), "omniglot: logits")
    for k in grads:
        # conv biases before batch norm have a ~0 gradient: judged on the largest gradient's scale
        scale = max(np.abs(g).max() for g in grads.values())
        got = ggrads[k].get()
        np.testing.assert_allclose(got, grads[k], rtol=1e-3, atol=1e-4 * scale, err_msg=f"omniglot: grad {k!r}")


def test_tree_round_trip(gpu_backend):
    params = models.omniglot_cnn(5).init(np.random.default_rng(3))
    for target in (gpu_backend, "cupy", gpu_backend.name):
        on_gpu = tree.to_backend(params, target)
        assert list(on_gpu) == list(params), "to_backend must keep the key order"
        for k, v in on_gpu.items():
            assert array_module(v).__name__ == "cupy", f"{k} did not move to the GPU"
            assert backend_of(v) is gpu_backend, f"{k}: backend_of gives {backend_of(v)}"
        back = tree.to_host(on_gpu)
        for k in params:
            assert type(back[k]) is np.ndarray, f"{k}: to_host gave {type(back[k])}"
            np.testing.assert_array_equal(back[k], params[k], err_msg=f"{k} changed on the round trip")
            assert back[k].dtype == params[k].dtype, f"{k}: dtype {back[k].dtype}"


def test_tree_arithmetic_on_gpu(gpu_backend):
    rng = np.random.default_rng(4)
    a = {"w": rng.standard_normal((3, 4, 5)), "b": rng.standard_normal((3, 5))}
    b = {"w": rng.standard_normal((3, 4, 5)), "b": rng.standard_normal((3, 5))}
    ga, gb = tree.to_backend(a, gpu_backend), tree.to_backend(b, gpu_backend)
    for what, got, want in [
        ("lerp", tree.lerp(ga, gb, 0.3), tree.lerp(a, b, 0.3)),
        ("mean_tasks", tree.mean_tasks(ga), tree.mean_tasks(a)),
        ("broadcast", tree.broadcast(tree.mean_tasks(ga), 2), tree.broadcast(tree.mean_tasks(a), 2)),
        ("zeros_like", tree.zeros_like(ga), tree.zeros_like(a)),
    ]:
        assert tree.allclose(got, want, rtol=1e-12, atol=1e-12), f"tree.{what} on the GPU differs from NumPy"
    np.testing.assert_allclose(float(tree.dot(ga, gb)), tree.dot(a, b), rtol=1e-12, err_msg="tree.dot")
    np.testing.assert_allclose(tree.norm(ga, per_task=True).get(), tree.norm(a, per_task=True), rtol=1e-12)


def test_im2col_col2im_match_numpy(gpu_backend):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 7, 6, 2)).astype(np.float32)
    cols = kernels.im2col(x, 3, 2, 2, 3, 3)
    gcols = gpu_backend.im2col(gpu_backend.asarray(x), 3, 2, 2, 3, 3)
    np.testing.assert_array_equal(gcols.get(), cols, err_msg="im2col on the GPU")
    c = rng.standard_normal(cols.shape).astype(np.float32)
    assert_close32(gpu_backend.col2im(gpu_backend.asarray(c), x.shape, 3, 2, 2), kernels.col2im(c, x.shape, 3, 2, 2),
                   "col2im")


def test_miniimagenet_model_with_winograd_matches_numpy(gpu_backend):
    """Mini-ImageNet's network runs its stride-1 layers as Winograd F(2x2, 3x3) on both sides: the generic
    transforms (whole task axis in one launch) on the GPU, the compiled or generic ones on the CPU."""
    model = models.miniimagenet_cnn(5)
    rng = np.random.default_rng(4)
    params = tree.stack([model.init(rng) for _ in range(2)])
    x = rng.random((2, 4, 84, 84, 3), dtype=np.float32)
    y = rng.integers(0, 5, (2, 4))
    loss, grads = model.loss_and_grad(params, x, y)
    gloss, ggrads = model.loss_and_grad(tree.to_backend(params, gpu_backend), gpu_backend.asarray(x),
                                        gpu_backend.asarray(y))
    assert_close32(gloss, loss, "miniimagenet: losses", rtol=1e-4)
    scale = max(np.abs(g).max() for g in grads.values())
    for k in grads:
        np.testing.assert_allclose(ggrads[k].get(), grads[k], rtol=1e-3, atol=1e-4 * scale,
                                   err_msg=f"miniimagenet: grad {k!r}")


def test_winograd_transforms_match_numpy(gpu_backend):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 7, 6, 4)).astype(np.float32)
    g = rng.standard_normal((2, 3, 3, 4, 5)).astype(np.float32)
    th, tw = kernels.winograd_tiles(7, 6)
    gx, gg = gpu_backend.asarray(x), gpu_backend.asarray(g)
    v, u = kernels.winograd_input(x, 1, 1, th, tw), kernels.winograd_kernel(g)
    gv, gu = kernels.winograd_input(gx, 1, 1, th, tw), kernels.winograd_kernel(gg)
    assert_close32(gv, v, "input transform")
    assert_close32(gu, u, "kernel transform")
    m = np.matmul(v, u)
    z = kernels.winograd_output(m, 3, 7, 6)
    assert_close32(kernels.winograd_output(gpu_backend.asarray(m), 3, 7, 6), z, "output transform")
    dm = kernels.winograd_output_grad(z, 3, 7, 6)
    assert_close32(kernels.winograd_output_grad(gpu_backend.asarray(z), 3, 7, 6), dm, "output gradient")
    assert_close32(kernels.winograd_input_grad(gpu_backend.asarray(v), x.shape, 1, 1, th, tw),
                   kernels.winograd_input_grad(v, x.shape, 1, 1, th, tw), "input gradient")
    assert_close32(kernels.winograd_kernel_grad(gpu_backend.asarray(u)), kernels.winograd_kernel_grad(u),
                   "kernel gradient")
