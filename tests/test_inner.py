"""fometa.inner.IndexedSteps: mini-batches gathered when a step runs give the inner loop the numbers of the
gathered list, on any number of threads and blocks."""
import numpy as np
import pytest

from fometa import inner, models, optim, parallel
from fometa.evaluate import support_steps
from fometa.models import fused

NET = models.conv_net("pool", 4, (11, 10, 3), filters=3, blocks=2, pool=True)
#: nets whose first layer runs on patches, which the steps reuse (a Winograd first layer has none)
PATCH_NETS = {
    "pool": models.conv_net("wide-pool", 4, (11, 10, 3), filters=8, blocks=2, pool=True),
    "stride2": models.conv_net("s2", 3, (9, 9), filters=4, blocks=3, stride=2),  # a reshape before the first layer
}


def _support(rng, tasks=5, n=6, iters=7, batch=4, net=NET):
    x = rng.random((tasks, n) + tuple(net.input_shape)).astype(np.float32)
    y = rng.integers(0, net.output_shape[0], size=(tasks, n))
    idx = np.stack([np.stack([rng.permutation(n)[:batch] for _ in range(iters)]) for _ in range(tasks)])
    return x, y, idx


def _gathered(x, y, idx):
    rows = np.arange(idx.shape[0])[:, None]
    return [(x[rows, idx[:, i]], y[rows, idx[:, i]]) for i in range(idx.shape[1])]


def _adapt_both(net, rng, threads):
    """The inner loop of 5 tasks on ``threads`` threads: ``(on IndexedSteps, on the gathered list)``."""
    x, y, idx = _support(rng, net=net)
    p = {k: np.repeat(v[None], 5, 0) for k, v in net.init(rng).items()}
    opt = optim.Adam(1e-2)
    before = parallel.get_threads()
    try:
        parallel.set_threads(threads)
        return tuple(inner.adapt(net, p, steps, opt, opt.init(p, tasks=5))
                     for steps in (support_steps(x, y, idx), _gathered(x, y, idx)))
    finally:
        parallel.set_threads(before)


def test_a_step_is_gathered_as_the_list_holds_it():
    x, y, idx = _support(np.random.default_rng(0))
    steps, listed = support_steps(x, y, idx), _gathered(x, y, idx)
    assert isinstance(steps, inner.IndexedSteps) and len(steps) == len(listed) == 7
    for (a, b), (c, d) in zip(steps, listed, strict=True):
        assert np.array_equal(a, c) and np.array_equal(b, d)
    assert np.array_equal(steps[-1][0], listed[-1][0])
    part = steps[2:5]
    assert isinstance(part, inner.IndexedSteps) and len(part) == 3
    assert all(np.array_equal(p[0], q[0]) for p, q in zip(part, listed[2:5], strict=True))
    sub = steps.take(slice(1, 3))
    assert all(np.array_equal(p[0], q[0][1:3]) and np.array_equal(p[1], q[1][1:3])
               for p, q in zip(sub, listed, strict=True))
    assert steps.task_batch_bytes() == listed[0][0][0].nbytes
    with pytest.raises(IndexError):
        steps[7]
    assert steps.examples()[0] is x and steps.examples()[1] is idx


def test_a_list_of_steps_offers_the_indexed_steps_methods():
    x, y, idx = _support(np.random.default_rng(0))
    listed = inner.StepList(_gathered(x, y, idx))
    indexed = support_steps(x, y, idx)
    assert len(listed) == 7 and isinstance(listed[1:3], inner.StepList) and len(listed[1:3]) == 2
    assert listed.task_batch_bytes() == indexed.task_batch_bytes()
    assert listed.examples() is None  # nothing to reuse: the inner loop builds each step's patches
    for (a, b), (c, d) in zip(listed.take(slice(1, 3)), indexed.take(slice(1, 3)), strict=True):
        assert np.array_equal(a, c) and np.array_equal(b, d)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("block_bytes", [1, inner.BLOCK_BYTES])
def test_the_inner_loop_on_indexed_steps_equals_it_on_the_list(threads, block_bytes, monkeypatch):
    monkeypatch.setattr(inner, "BLOCK_BYTES", block_bytes)  # 1: a block per task
    a, b = _adapt_both(NET, np.random.default_rng(1), threads)
    for k in a[0]:
        assert np.array_equal(a[0][k], b[0][k]), f"{k}: the indexed steps changed the adapted parameters"
        assert np.array_equal(a[1].nu[k], b[1].nu[k])
    for la, lb in zip(a[2].losses, b[2].losses, strict=True):
        assert np.array_equal(la, lb)


def test_tasks_per_block_keeps_a_block_within_its_budget():
    assert inner.tasks_per_block(1) == inner.BLOCK_BYTES // inner.ACTIVATION_FACTOR
    assert inner.tasks_per_block(10**12) == 1
    omniglot = 28 * 28 * 4 * 6  # an Omniglot 5-way per-query forward pass: 5 support images and the query
    assert inner.tasks_per_block(omniglot) == inner.BLOCK_BYTES // (omniglot * inner.ACTIVATION_FACTOR) > 1
    assert inner.tasks_per_block(84 * 84 * 3 * 4 * 26) == 1  # Mini-ImageNet 5-shot: a task a block


@pytest.mark.parametrize("name", sorted(PATCH_NETS))
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("patch_block", [1, fused.PATCH_BLOCK_BYTES])
def test_first_layer_patches_built_once_give_the_numbers_of_patches_built_each_step(name, threads, patch_block,
                                                                                    monkeypatch):
    """An evaluation's steps draw from the same support images again and again: the first layer's patches of
    every image are built once and gathered at each step, with the numbers of patches built at each step
    (``patch_block`` 1: a run of one image at a time, as Mini-ImageNet's first layer)."""
    net = PATCH_NETS[name]
    monkeypatch.setattr(fused, "PATCH_BLOCK_BYTES", patch_block)
    built = []
    first_patches = fused.FusedNet.first_patches
    monkeypatch.setattr(fused.FusedNet, "first_patches",
                        lambda self, x, max_bytes=None: built.append(first_patches(self, x, max_bytes)) or built[-1])
    a, b = _adapt_both(net, np.random.default_rng(2), threads)
    assert built and all(patches is not None for patches in built), "the patches were not built once"
    for k in a[0]:
        assert np.array_equal(a[0][k], b[0][k]), f"{k}: the reused patches changed the adapted parameters"
    for la, lb in zip(a[2].losses, b[2].losses, strict=True):
        assert np.array_equal(la, lb)
