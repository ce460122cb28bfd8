"""A T-task batched call equals T separate single-task calls, for every model: outputs,
losses and gradients (each task with its own parameters, inputs and labels)."""
import numpy as np
import pytest
from model_helpers import perturbed_params, random_batch

from fometa import models, tree

MODELS = {
    "omniglot_cnn": (lambda: models.omniglot_cnn(5), 3, 2),  # (factory, tasks, batch)
    "miniimagenet_cnn": (lambda: models.miniimagenet_cnn(3), 2, 1),
    "sine_mlp": (models.sine_mlp, 4, 5),
    "conv_net_pool": (lambda: models.conv_net("small", 3, (9, 7, 2), 4, blocks=3, pool=True), 3, 3),
    "conv_net_stride": (lambda: models.conv_net("small", 2, (8, 8), 3, blocks=2, stride=2), 4, 2),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_batched_equals_separate_single_task_calls(name):
    factory, tasks, batch = MODELS[name]
    model = factory()
    rng = np.random.default_rng(7)
    per_task = [perturbed_params(model, rng) for _ in range(tasks)]
    x, y = random_batch(model, rng, batch, tasks)
    params = tree.stack(per_task)

    out = model.forward(params, x)
    losses, grads = model.loss_and_grad(params, x, y)
    assert out.shape == (tasks, batch) + tuple(model.output_shape), f"{name}: output shape {out.shape}"
    assert losses.shape == (tasks,), f"{name}: losses shape {losses.shape}"
    np.testing.assert_allclose(losses, model.loss_value(params, x, y), rtol=1e-13, err_msg=f"{name}: loss_value")
    for t in range(tasks):
        out1 = model.forward(per_task[t], x[t])
        loss1, grads1 = model.loss_and_grad(per_task[t], x[t], y[t])
        assert out1.shape == (batch,) + tuple(model.output_shape), f"{name}: single-task output shape {out1.shape}"
        assert np.ndim(loss1) == 0, f"{name}: single-task loss must be 0-d, got shape {np.shape(loss1)}"
        np.testing.assert_allclose(out[t], out1, rtol=1e-10, atol=1e-12, err_msg=f"{name}: outputs of task {t}")
        np.testing.assert_allclose(losses[t], loss1, rtol=1e-10, err_msg=f"{name}: loss of task {t}")
        for k in grads:
            assert grads1[k].shape == per_task[t][k].shape, f"{name}: single-task grad {k!r} shape"
            np.testing.assert_allclose(
                grads[k][t], grads1[k], rtol=1e-9, atol=1e-12 * np.abs(grads[k]).max(),
                err_msg=f"{name}: grad {k!r} of task {t}",
            )


@pytest.mark.parametrize("name", ["omniglot_cnn", "conv_net_pool"])
def test_batched_stats_batch_equals_separate_calls(name):
    """``forward(..., stats_batch=n)`` on T tasks equals T single-task calls, and its first n
    outputs equal a plain call on the first n examples (leak-free support statistics)."""
    factory, tasks, _ = MODELS[name]
    model = factory()
    rng = np.random.default_rng(11)
    per_task = [perturbed_params(model, rng) for _ in range(tasks)]
    x, _ = random_batch(model, rng, 5, tasks)
    out = model.forward(tree.stack(per_task), x, stats_batch=3)
    for t in range(tasks):
        np.testing.assert_allclose(
            out[t], model.forward(per_task[t], x[t], stats_batch=3), rtol=1e-10, atol=1e-12,
            err_msg=f"{name}: task {t} with stats_batch",
        )
        np.testing.assert_allclose(
            out[t, :3], model.forward(per_task[t], x[t, :3]), rtol=1e-10, atol=1e-12,
            err_msg=f"{name}: support outputs must not depend on the queries",
        )


def test_broadcast_params_give_identical_tasks():
    """The README's example: one tree broadcast to 4 tasks, the same batch on each."""
    model = models.omniglot_cnn(5)
    rng = np.random.default_rng(0)
    params = model.init(rng)
    x = rng.random((10, 28, 28), dtype=np.float32)
    y = rng.integers(0, 5, size=10)
    loss, grads = model.loss_and_grad(params, x, y)
    losses, grads4 = model.loss_and_grad(tree.broadcast(params, 4), np.stack([x] * 4), np.stack([y] * 4))
    assert losses.dtype == np.float32 and losses.shape == (4,), (losses.dtype, losses.shape)
    np.testing.assert_allclose(losses, np.full(4, loss), rtol=1e-5, err_msg="float32 losses of identical tasks")
    for k in grads:
        np.testing.assert_allclose(
            grads4[k], np.stack([grads[k]] * 4), rtol=1e-4, atol=1e-6 * np.abs(grads[k]).max(), err_msg=k
        )
