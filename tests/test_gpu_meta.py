"""On a GPU: a meta-iteration, MAML's HVP-based meta-gradient and an evaluation give NumPy's results.

Skipped with the reason where CuPy or a GPU is missing (see tests/conftest.py).
"""
import numpy as np
import pytest

from fometa import config as C
from fometa import evaluate as E
from fometa import meta, models, optim, tree
from fometa.tasks import ArrayClasses

pytestmark = pytest.mark.gpu


def _setup():
    net = models.omniglot_cnn(5)
    rng = np.random.default_rng(0)
    ds = ArrayClasses([rng.random((12, 28, 28), dtype=np.float32) for _ in range(8)])
    return net, ds, net.init(rng)


@pytest.mark.parametrize("algorithm", ["reptile", "fomaml", "maml"])
def test_meta_step_matches_numpy(gpu_backend, algorithm):
    net, ds, init = _setup()
    conf = C.InnerConfig(shots=2, batch=5, iters=3), C.OuterConfig(meta_batch=3)
    results = []
    for backend in ("numpy", gpu_backend):
        # plain SGD: Adam would blow the rounding noise of the conv biases' (exactly zero)
        # gradients up to full-size steps, which differ between any two float32 computations
        learner = meta.MetaLearner(net, meta.make_algorithm(algorithm), optim.SGD(0.05),
                                   meta.Interpolate(1.0, 0.0, 10), *conf, backend=backend)
        state = learner.init(init)
        rng = np.random.default_rng(1)
        for _ in range(2):
            state, _ = learner.train_step(state, ds, rng)
        results.append(tree.to_host(state.params))
    step_cpu = tree.sub(results[0], init)
    step_gpu = tree.sub(results[1], init)
    err = float(tree.norm(tree.sub(step_cpu, step_gpu)) / tree.norm(step_cpu))
    # on the CPU, float32 against float64 of these steps differs by 2e-6 to 8e-6
    assert err < 1e-3, f"{algorithm}: CuPy meta-update differs from NumPy's by {err:.2e} (relative)"


def test_evaluation_matches_numpy(gpu_backend):
    net, ds, init = _setup()
    cfg = E.EvaluationConfig(shots=1, inner_batch=5, inner_iters=5)
    out = [
        E.evaluate(net, init, ds, np.random.default_rng(2), cfg, optim.Adam(1e-3), tasks=40, chunk=20,
                   backend=b, modes=E.MODES)
        for b in ("numpy", gpu_backend)
    ]
    for mode in E.MODES:
        agree = np.mean(out[0][mode].per_task == out[1][mode].per_task)
        assert agree >= 0.9, f"{mode}: only {agree:.0%} of tasks scored alike on CuPy and NumPy"
