"""Whole-model gradient checks in float64: ``loss_and_grad`` against central differences of
``loss_value`` along random directions, for every parameter of every model.

Conv biases before batch norm have an exactly-zero gradient (the batch mean absorbs them), so
their difference quotient is pure round-off, about ``eps |f| / h`` times the net's amplification,
up to ~1e-9 of the largest gradient here. The conv nets are therefore checked with
``floor = 1e-2``: a gradient below 1% of the largest one is judged on the absolute scale
``|fd - an| < 1e-6 * 1e-2 * max|an|``; larger ones keep the plain relative test.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from model_helpers import assert_gradients, perturbed_params, random_batch

from fometa import models, tree

FEW = min(settings().max_examples, 12)  # whole networks: a few examples even under the ci profile
CONV_FLOOR = 1e-2  # see the module docstring


def check_model_gradients(model, params, x, y, rng, **gradcheck):
    loss, grads = model.loss_and_grad(params, x, y)
    np.testing.assert_allclose(
        loss, model.loss_value(params, x, y), rtol=1e-13, err_msg=f"{model.name}: loss_and_grad vs loss_value"
    )
    assert list(grads) == list(params), f"{model.name}: gradient keys differ from parameter keys"
    for k in params:
        assert grads[k].shape == params[k].shape, f"{model.name}: grad {k!r} {grads[k].shape} != {params[k].shape}"
        assert grads[k].dtype == np.float64, f"{model.name}: grad {k!r} is {grads[k].dtype}"

    def f(p):
        return float(np.sum(model.loss_value(p, x, y)))

    return assert_gradients(f, params, grads, rng, **gradcheck)


@given(tasks=st.one_of(st.none(), st.integers(1, 4)), batch=st.integers(1, 5), hidden=st.integers(1, 8),
       seed=st.integers(0, 2**32 - 1))
def test_sine_mlp(tasks, batch, hidden, seed):
    rng = np.random.default_rng(seed)
    model = models.sine_mlp(hidden)
    params = perturbed_params(model, rng)
    if tasks is not None:
        params = tree.stack([perturbed_params(model, rng) for _ in range(tasks)])
    x, y = random_batch(model, rng, batch, tasks)
    check_model_gradients(model, params, x, y, rng)


@settings(max_examples=FEW)
@given(
    ways=st.integers(2, 4),
    input_shape=st.one_of(
        st.tuples(st.integers(3, 7), st.integers(3, 7)),
        st.tuples(st.integers(3, 7), st.integers(3, 7), st.integers(1, 2)),
    ),
    filters=st.integers(1, 3),
    blocks=st.integers(1, 3),
    stride=st.integers(1, 2),
    pool=st.booleans(),
    tasks=st.one_of(st.none(), st.integers(1, 2)),
    batch=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_small_conv_nets(ways, input_shape, filters, blocks, stride, pool, tasks, batch, seed):
    rng = np.random.default_rng(seed)
    model = models.conv_net("small", ways, input_shape, filters, blocks, stride, pool)
    params = perturbed_params(model, rng)
    if tasks is not None:
        params = tree.stack([perturbed_params(model, rng) for _ in range(tasks)])
    x, y = random_batch(model, rng, batch, tasks)
    check_model_gradients(model, params, x, y, rng, floor=CONV_FLOOR)


@pytest.mark.parametrize("tasks, batch", [(None, 3), (2, 2)])
def test_omniglot_cnn(tasks, batch):
    rng = np.random.default_rng(2018)
    model = models.omniglot_cnn(5)
    params = perturbed_params(model, rng)
    if tasks is not None:
        params = tree.stack([perturbed_params(model, rng) for _ in range(tasks)])
    x, y = random_batch(model, rng, batch, tasks)
    errors = check_model_gradients(model, params, x, y, rng, floor=CONV_FLOOR)
    assert set(errors) == set(model.param_shapes()), "every parameter must be checked"


@pytest.mark.parametrize("batch", [1, 2])
def test_miniimagenet_cnn(batch):
    """The full net, T = 1, batch 1-2. ``h = 1e-7`` keeps the difference step clear of its many
    ReLU and max-pool kinks (the round-off it adds is what ``floor`` allows for)."""
    rng = np.random.default_rng(1803 + batch)
    model = models.miniimagenet_cnn(5)
    params = perturbed_params(model, rng, spread=0.1)
    x, y = random_batch(model, rng, batch)
    errors = check_model_gradients(model, params, x, y, rng, h=1e-7, floor=CONV_FLOOR)
    assert set(errors) == set(model.param_shapes()), "every parameter must be checked"


def test_conv_bias_before_batch_norm_has_zero_gradient():
    """Batch norm subtracts the batch mean, so a conv bias feeding it cannot change the loss."""
    rng = np.random.default_rng(0)
    model = models.omniglot_cnn(5)
    params = perturbed_params(model, rng)
    x, y = random_batch(model, rng, 4)
    _, grads = model.loss_and_grad(params, x, y)
    scale = max(np.abs(g).max() for g in grads.values())
    for i in range(4):
        assert np.abs(grads[f"conv{i}/bias"]).max() <= 1e-12 * scale, f"conv{i}/bias gradient is not ~0"
