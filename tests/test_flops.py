"""fometa.flops: the work counted from a network's shapes, against the products the layers actually run."""
import dataclasses

import numpy as np
import pytest

from fometa import flops, models


class MatmulCounter:
    """Counts the multiply-adds of every ``numpy.matmul`` call (the layers' only products)."""

    def __init__(self, monkeypatch):
        self.macs = 0
        real = np.matmul

        def counting(a, b, *args, **kwargs):
            out = real(a, b, *args, **kwargs)
            self.macs += int(np.prod(out.shape)) * a.shape[-1]
            return out

        monkeypatch.setattr(np, "matmul", counting)


NETS = {
    "omniglot": lambda: models.omniglot_cnn(5),
    "miniimagenet": lambda: models.miniimagenet_cnn(5),
    "small-pool": lambda: models.conv_net("p", 3, (9, 7, 2), filters=4, blocks=2, pool=True),
    "sine": models.sine_mlp,
}


def test_paper_networks_layer_by_layer():
    # out_h * out_w * 3 * 3 * C_in * C_out: Omniglot 28 -> 14 -> 7 -> 4 -> 2 (stride 2), Mini-ImageNet
    # 84 -> 42 -> 21 -> 11 at its four convolutions (each pooled after), then dense
    assert flops.layer_macs(models.omniglot_cnn(5)) == [
        ("conv0", 14 * 14 * 9 * 64), ("conv1", 7 * 7 * 9 * 64 * 64), ("conv2", 4 * 4 * 9 * 64 * 64),
        ("conv3", 2 * 2 * 9 * 64 * 64), ("dense", 256 * 5)]
    assert flops.layer_macs(models.miniimagenet_cnn(5)) == [
        ("conv0", 84 * 84 * 27 * 32), ("conv1", 42 * 42 * 9 * 32 * 32), ("conv2", 21 * 21 * 9 * 32 * 32),
        ("conv3", 11 * 11 * 9 * 32 * 32), ("dense", 6 * 6 * 32 * 5)]


@pytest.mark.parametrize("name", sorted(NETS))
def test_counts_equal_the_products_the_layers_run(monkeypatch, name):
    """A forward pass and a training step of the layer-by-layer specification run exactly the
    counted multiply-adds (a first layer's input gradient is not computed)."""
    model = dataclasses.replace(NETS[name](), fused=False)
    rng = np.random.default_rng(0)
    params = model.init(rng)
    batch = 3
    x = rng.random((batch,) + tuple(model.input_shape), dtype=np.float32)
    y = (rng.standard_normal((batch, 1)).astype(np.float32) if model.loss == "mse"
         else rng.integers(0, model.output_shape[0], size=batch))
    counter = MatmulCounter(monkeypatch)
    model.forward(params, x)
    assert 2 * counter.macs == flops.forward_flops(model, batch)
    counter.macs = 0
    model.loss_and_grad(params, x, y)
    assert 2 * counter.macs == flops.step_flops(model, batch)


def test_meta_iteration_and_evaluation_work():
    model = models.miniimagenet_cnn(5)
    step = flops.step_flops(model, 10)
    assert flops.meta_iteration_flops(model, 5, 8, 10) == 40 * step
    assert abs(flops.meta_iteration_flops(model, 5, 8, 10) / 1e9 - 61.2) < 0.05  # the paper's setting
    assert abs(flops.meta_iteration_flops(models.omniglot_cnn(5), 5, 5, 10) / 1e9 - 3.93) < 0.01
    fwd = flops.forward_flops(model, 1)
    assert flops.eval_task_flops(model, 50, 5, 5, 5, ["transductive"]) == 50 * flops.step_flops(model, 5) + 5 * fwd
    assert flops.eval_task_flops(model, 50, 5, 5, 5, ["per-query", "support-stats"]) == (
        50 * flops.step_flops(model, 5) + 5 * 6 * fwd + 10 * fwd)
    with pytest.raises(ValueError, match="unknown evaluation mode"):
        flops.eval_task_flops(model, 1, 1, 1, 1, ["both"])


def test_sgemm_rate_is_a_positive_rate():
    rate = flops.sgemm_rate(1, n=256, repeat=3)
    assert np.isfinite(rate) and rate > 0
