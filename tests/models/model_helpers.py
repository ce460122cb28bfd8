"""Helpers shared by the model tests (imported by name: pytest puts this folder on sys.path).

The naive layer references and the gradient-check helper of ``tests/layers`` are loaded by
path (the test folders are not packages) and re-exported: ``naive`` and ``assert_gradients``.
"""

import numpy as np
from load_by_path import load_module


def _load(name):
    return load_module(f"tests/layers/{name}.py", f"fometa_tests_{name}")


naive = _load("naive_reference")
assert_gradients = _load("layer_harness").assert_gradients


def perturbed_params(model, rng, dtype=np.float64, spread=0.3):
    """``model.init`` plus noise on every parameter, so that biases, batch-norm scales and
    offsets all differ from their initial constants and every one of them matters."""
    params = model.init(rng, dtype=dtype)
    return {k: (v + spread * rng.standard_normal(v.shape)).astype(dtype) for k, v in params.items()}


def random_batch(model, rng, batch, tasks=None, dtype=np.float64):
    """Inputs in [0, 1) and labels (or regression targets), with a task axis when ``tasks`` is set."""
    lead = (batch,) if tasks is None else (tasks, batch)
    x = rng.random(lead + tuple(model.input_shape)).astype(dtype)
    if model.loss == "mse":
        y = rng.standard_normal(lead + tuple(model.output_shape)).astype(dtype)
    else:
        y = rng.integers(0, model.output_shape[0], size=lead)
    return x, y
