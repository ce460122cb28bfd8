"""Initialization and parameter layout of the paper's networks, and input validation."""
import re

import numpy as np
import pytest

from fometa import models, tree


def _conv_layout(channels_in, filters, blocks=4):
    shapes = {}
    c = channels_in
    for i in range(blocks):
        shapes[f"conv{i}/kernel"] = (3, 3, c, filters)
        shapes[f"conv{i}/bias"] = (filters,)
        shapes[f"bn{i}/scale"] = (filters,)
        shapes[f"bn{i}/offset"] = (filters,)
        c = filters
    return shapes


LAYOUTS = {  # as documented in fometa/models/__init__.py
    "omniglot_cnn": (
        lambda: models.omniglot_cnn(5), (28, 28), (5,),
        {**_conv_layout(1, 64), "dense/kernel": (256, 5), "dense/bias": (5,)},
    ),
    "miniimagenet_cnn": (
        lambda: models.miniimagenet_cnn(5), (84, 84, 3), (5,),
        {**_conv_layout(3, 32), "dense/kernel": (1152, 5), "dense/bias": (5,)},
    ),
    "sine_mlp": (
        models.sine_mlp, (1,), (1,),
        {"fc0/kernel": (1, 64), "fc0/bias": (64,), "fc1/kernel": (64, 64), "fc1/bias": (64,),
         "fc2/kernel": (64, 1), "fc2/bias": (1,)},
    ),
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_documented_layout(name):
    factory, input_shape, output_shape, shapes = LAYOUTS[name]
    model = factory()
    params = model.init(np.random.default_rng(0))
    assert tuple(model.input_shape) == input_shape, f"{name}: input shape {model.input_shape}"
    assert tuple(model.output_shape) == output_shape, f"{name}: output shape {model.output_shape}"
    assert model.param_shapes() == shapes, f"{name}: param_shapes differ from the documented layout"
    assert list(params) == list(shapes), f"{name}: parameter order {list(params)}"
    assert {k: v.shape for k, v in params.items()} == shapes, f"{name}: init shapes differ from param_shapes"


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_init_glorot_zero_bias_unit_scale_float32(name):
    model = LAYOUTS[name][0]()
    params = model.init(np.random.default_rng(0))
    for k, v in params.items():
        assert v.dtype == np.float32, f"{name}: {k} is {v.dtype}, default must be float32"
        kind = k.split("/")[1]
        if kind == "kernel":
            kh, kw = v.shape[:2] if v.ndim == 4 else (1, 1)
            fan_in, fan_out = kh * kw * v.shape[-2], kh * kw * v.shape[-1]
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            assert np.abs(v).max() <= limit, f"{name}: {k} exceeds the Glorot-uniform limit {limit:.4f}"
            if v.size >= 500:  # a uniform draw this large reaches close to its limit and has std l/sqrt(3)
                assert np.abs(v).max() > 0.97 * limit, f"{name}: {k} spread too narrow for Glorot-uniform"
                np.testing.assert_allclose(v.std(), limit / np.sqrt(3), rtol=0.1, err_msg=f"{name}: {k} std")
                assert abs(v.mean()) < 0.1 * limit, f"{name}: {k} mean {v.mean()} is not ~0"
        elif kind == "bias" or kind == "offset":
            assert not v.any(), f"{name}: {k} must start at zero"
        elif kind == "scale":
            np.testing.assert_array_equal(v, np.ones_like(v), err_msg=f"{name}: {k} (gamma) must start at 1")
        else:
            pytest.fail(f"{name}: unexpected parameter {k}")


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_init_is_deterministic_in_the_generator(name):
    model = LAYOUTS[name][0]()
    a = model.init(np.random.default_rng(42))
    b = model.init(np.random.default_rng(42))
    c = model.init(np.random.default_rng(43))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=f"{name}: {k} differs for the same seed")
    assert any(not np.array_equal(a[k], c[k]) for k in a), f"{name}: different seeds gave identical weights"


def test_init_float64_on_request_and_needs_a_generator():
    model = models.omniglot_cnn(5)
    assert all(v.dtype == np.float64 for v in model.init(np.random.default_rng(0), dtype=np.float64).values())
    with pytest.raises(TypeError, match="Generator"):
        model.init(0)


@pytest.mark.parametrize("ways", [1, 0, 2.5, "5"])
def test_bad_ways_raise(ways):
    with pytest.raises(ValueError, match="ways"):
        models.omniglot_cnn(ways)


def _omniglot():
    model = models.omniglot_cnn(5)
    return model, model.init(np.random.default_rng(0))


@pytest.mark.parametrize(
    "x_shape, match",
    [
        ((3, 28, 27), r"examples must have shape \(28, 28\)"),
        ((3, 784), r"inputs must have shape"),
        ((2, 3, 4, 28, 28), r"inputs must have shape"),
        ((28, 28, 1), r"examples must have shape"),
    ],
)
def test_wrong_input_shapes_raise(x_shape, match):
    model, params = _omniglot()
    x = np.zeros(x_shape, dtype=np.float32)
    y = np.zeros(x_shape[:-2], dtype=int)
    for call in (lambda: model.forward(params, x), lambda: model.loss_and_grad(params, x, y),
                 lambda: model.loss_value(params, x, y)):
        with pytest.raises(ValueError, match=match):
            call()


def test_mismatched_task_axis_raises():
    model, params = _omniglot()
    x = np.zeros((3, 2, 28, 28), dtype=np.float32)
    with pytest.raises(ValueError, match=re.escape("task-batched (T=3)")):
        model.forward(tree.broadcast(params, 2), x)
    with pytest.raises(ValueError, match="single-task"):
        model.forward(tree.broadcast(params, 3), x[0])  # batched params, unbatched inputs


def test_wrong_parameter_names_raise():
    model, params = _omniglot()
    renamed = {("conv0/weights" if k == "conv0/kernel" else k): v for k, v in params.items()}
    with pytest.raises(ValueError, match="parameter names"):
        model.forward(renamed, np.zeros((1, 28, 28), dtype=np.float32))
    missing = dict(params)
    del missing["dense/bias"]
    with pytest.raises(ValueError, match="parameter names"):
        model.forward(missing, np.zeros((1, 28, 28), dtype=np.float32))


def test_wrong_label_shape_raises():
    model, params = _omniglot()
    with pytest.raises(ValueError, match="labels"):
        model.loss_and_grad(params, np.zeros((4, 28, 28), np.float32), np.zeros(3, dtype=int))


def test_sine_mlp_torch_init():
    """``sine_mlp(init="torch")``: the same layout, weights and biases uniform within 1/sqrt(fan_in)."""
    model = models.sine_mlp(init="torch")
    params = model.init(np.random.default_rng(0))
    assert {k: v.shape for k, v in params.items()} == LAYOUTS["sine_mlp"][3], "layout differs from the default init"
    for k, v in params.items():
        fan_in = LAYOUTS["sine_mlp"][3][k.split("/")[0] + "/kernel"][0]
        assert np.abs(v).max() <= 1 / np.sqrt(fan_in), f"{k} exceeds 1/sqrt({fan_in})"
        assert v.any(), f"{k}: PyTorch's init draws biases too"
