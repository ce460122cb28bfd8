"""``init``: TensorFlow's (Glorot-uniform kernels, zero biases; the reference's) or PyTorch's
(``nn.Conv2d``/``nn.Linear``: kernels and biases uniform on +-1/sqrt(fan_in), fan_in = kh*kw*C_in)."""
import numpy as np
import pytest

from fometa import models
from fometa.layers import Conv2D, Dense


def _fans(kernel):
    kh, kw = kernel.shape[:2] if kernel.ndim == 4 else (1, 1)
    return kh * kw * kernel.shape[-2], kh * kw * kernel.shape[-1]


def _check_uniform(v, bound, what):
    assert np.abs(v).max() <= bound, f"{what}: exceeds the bound {bound:.4f}"
    if v.size >= 500:  # a uniform draw this large comes close to its bound and has std bound/sqrt(3)
        assert np.abs(v).max() > 0.97 * bound, f"{what}: spread too narrow for U(+-{bound:.4f})"
        np.testing.assert_allclose(v.std(), bound / np.sqrt(3), rtol=0.1, err_msg=f"{what}: std")
    else:
        assert np.abs(v).max() > 0.5 * bound, f"{what}: spread too narrow for U(+-{bound:.4f})"


def test_conv2d_torch_init_uses_fan_in_kh_kw_cin_for_kernel_and_bias():
    layer = Conv2D(8, 16, 3, init_scheme="torch")
    p = layer.init(np.random.default_rng(0))
    bound = 1 / np.sqrt(3 * 3 * 8)
    assert p["kernel"].shape == (3, 3, 8, 16) and p["bias"].shape == (16,)
    assert p["kernel"].dtype == p["bias"].dtype == np.float32
    _check_uniform(p["kernel"], bound, "kernel")
    _check_uniform(p["bias"], bound, "bias")
    assert np.all(p["bias"] != 0), "torch init draws the bias"
    glorot = Conv2D(8, 16, 3).init(np.random.default_rng(0))
    assert not glorot["bias"].any(), "the default (glorot) bias starts at zero"
    with pytest.raises(ValueError, match="init scheme"):
        Conv2D(1, 1, init_scheme="he").init(np.random.default_rng(0))


@pytest.mark.parametrize("factory", [lambda i: models.omniglot_cnn(5, init=i),
                                     lambda i: models.miniimagenet_cnn(5, init=i),
                                     lambda i: models.conv_net("small", 3, (9, 9, 2), filters=4, init=i)])
def test_every_layer_of_a_network_follows_its_init(factory):
    torch, glorot = factory("torch"), factory("glorot")
    assert torch.param_shapes() == glorot.param_shapes()
    pt, pg = torch.init(np.random.default_rng(0)), glorot.init(np.random.default_rng(0))
    for name, v in pt.items():
        layer, kind = name.split("/")
        if layer.startswith("bn"):  # batch norm: scale 1, offset 0 under both
            np.testing.assert_array_equal(v, pg[name], err_msg=name)
            continue
        kernel = pt[f"{layer}/kernel"]
        fan_in, fan_out = _fans(kernel)
        _check_uniform(v, 1 / np.sqrt(fan_in), f"torch {name}")
        if kind == "bias":
            assert np.all(v != 0), f"torch {name} must be drawn, not zero"
            assert not pg[name].any(), f"glorot {name} must be zero"
        else:
            _check_uniform(pg[name], np.sqrt(6 / (fan_in + fan_out)), f"glorot {name}")


def test_default_init_is_glorot():
    a = models.omniglot_cnn(5).init(np.random.default_rng(3))
    b = models.omniglot_cnn(5, init="glorot").init(np.random.default_rng(3))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert all(layer.init_scheme == "glorot" for _, layer in models.omniglot_cnn(5).layers
               if isinstance(layer, (Conv2D, Dense)))
