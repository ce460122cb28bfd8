"""The Omniglot and Mini-ImageNet nets compute exactly what openai/supervised-reptile's
``models.py`` (TensorFlow 1 ``tf.layers``) computes, given the same weights in the documented
layouts: compared with a naive loop implementation of that architecture and, where PyTorch is
installed, with a PyTorch implementation (weights transposed to NCHW / OIHW, TensorFlow's
asymmetric 'same' padding made explicit with ``F.pad``)."""
import importlib.util

import numpy as np
import pytest
from model_helpers import naive, perturbed_params

from fometa import models

NETS = {  # name -> (model factory, batch, naive reference function name)
    "omniglot": (lambda: models.omniglot_cnn(5), 3, "omniglot_logits"),
    "miniimagenet": (lambda: models.miniimagenet_cnn(5), 2, "miniimagenet_logits"),
}


def _weights_and_images(name, seed=0):
    factory, batch, _ = NETS[name]
    model = factory()
    rng = np.random.default_rng(seed)
    params = perturbed_params(model, rng, spread=0.2)
    x = rng.random((batch,) + tuple(model.input_shape))
    return model, params, x


@pytest.mark.parametrize("name", sorted(NETS))
def test_forward_matches_naive_reference_architecture(name):
    model, params, x = _weights_and_images(name)
    got = model.forward(params, x)
    want = getattr(naive, NETS[name][2])(params, x)
    assert got.shape == want.shape, f"{name}: logits {got.shape}, reference {want.shape}"
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, err_msg=f"{name}: logits vs naive reference net")


@pytest.mark.parametrize("name", sorted(NETS))
def test_float32_forward_is_close_to_the_float64_reference(name):
    """The default float32 weights and images give the reference's logits to float32 accuracy."""
    model, params, x = _weights_and_images(name, seed=1)
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    got = model.forward(p32, x.astype(np.float32))
    assert got.dtype == np.float32, got.dtype
    want = getattr(naive, NETS[name][2])(p32, x.astype(np.float32))
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * np.abs(want).max(), err_msg=f"{name}: float32")


# -- PyTorch -------------------------------------------------------------------------------------

def _torch():
    if importlib.util.find_spec("torch") is None:
        pytest.skip("PyTorch is not installed: the independent PyTorch comparison needs it (pip install torch)")
    import torch

    return torch


def _torch_logits(torch, name, params, x):
    import torch.nn.functional as F

    def tf_same_pad(t, k, s, value=0.0):
        """TensorFlow 'same': ceil(n / s) outputs; the odd padding cell goes after."""
        pads = []
        for n in (t.shape[3], t.shape[2]):  # F.pad takes (left, right, top, bottom)
            out = -(-n // s)
            total = max((out - 1) * s + k - n, 0)
            pads += [total // 2, total - total // 2]
        return F.pad(t, pads, value=value)

    p = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in params.items()}
    if name == "omniglot":
        out = torch.from_numpy(x).reshape(-1, 28, 28, 1).permute(0, 3, 1, 2)  # NHWC -> NCHW
        stride, pool = 2, False
    else:
        out = torch.from_numpy(x).permute(0, 3, 1, 2)
        stride, pool = 1, True
    for i in range(4):
        kernel = p[f"conv{i}/kernel"].permute(3, 2, 0, 1)  # HWIO -> OIHW
        out = F.conv2d(tf_same_pad(out, 3, stride), kernel, p[f"conv{i}/bias"], stride=stride)
        # training-mode batch norm: batch statistics, biased variance, eps as tf.layers
        out = F.batch_norm(out, None, None, p[f"bn{i}/scale"], p[f"bn{i}/offset"], training=True, eps=1e-3)
        if pool:
            out = F.max_pool2d(tf_same_pad(out, 2, 2, value=-float("inf")), 2, 2)
        out = F.relu(out)
    out = out.permute(0, 2, 3, 1).reshape(out.shape[0], -1)  # flatten in TensorFlow's (H, W, C) order
    return (out @ p["dense/kernel"] + p["dense/bias"]).numpy()


@pytest.mark.parametrize("name", sorted(NETS))
def test_forward_matches_pytorch(name):
    torch = _torch()
    model, params, x = _weights_and_images(name, seed=2)
    want = _torch_logits(torch, name, params, x)
    got = model.forward(params, x)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, err_msg=f"{name}: logits vs PyTorch")


def test_omniglot_gradients_match_pytorch_autograd():
    """Gradients of the mean cross-entropy through PyTorch's autograd equal ours."""
    torch = _torch()
    import torch.nn.functional as F

    model, params, x = _weights_and_images("omniglot", seed=3)
    y = np.random.default_rng(3).integers(0, 5, size=x.shape[0])
    leaves = {k: torch.from_numpy(v.copy()).requires_grad_(True) for k, v in params.items()}
    logits = _torch_logits_autograd(torch, leaves, x)
    F.cross_entropy(logits, torch.from_numpy(y)).backward()
    loss, grads = model.loss_and_grad(params, x, y)
    np.testing.assert_allclose(loss, F.cross_entropy(logits, torch.from_numpy(y)).item(), rtol=1e-10)
    for k in params:
        scale = np.abs(grads[k]).max() + 1e-30
        np.testing.assert_allclose(
            grads[k], leaves[k].grad.numpy(), rtol=1e-7, atol=1e-9 * max(scale, 1.0), err_msg=f"grad {k!r} vs autograd"
        )


def _torch_logits_autograd(torch, leaves, x):
    """The Omniglot net in PyTorch on autograd leaves (the weights in fometa's layouts)."""
    import torch.nn.functional as F

    out = torch.from_numpy(x).reshape(-1, 28, 28, 1).permute(0, 3, 1, 2)
    for i in range(4):
        n = out.shape[2]
        total = max((-(-n // 2) - 1) * 2 + 3 - n, 0)
        out = F.pad(out, [total // 2, total - total // 2] * 2)
        out = F.conv2d(out, leaves[f"conv{i}/kernel"].permute(3, 2, 0, 1), leaves[f"conv{i}/bias"], stride=2)
        out = F.batch_norm(out, None, None, leaves[f"bn{i}/scale"], leaves[f"bn{i}/offset"], training=True, eps=1e-3)
        out = F.relu(out)
    out = out.permute(0, 2, 3, 1).reshape(out.shape[0], -1)
    return out @ leaves["dense/kernel"] + leaves["dense/bias"]
