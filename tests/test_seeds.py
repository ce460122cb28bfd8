"""Several seeds on one task axis (:mod:`fometa.seeds`): each run bit for bit the same seed trained alone."""
import os
import signal

import numpy as np
import pytest

from fometa import checkpoint, meta, models, optim, seeds
from fometa import config as C
from fometa import train as T
from fometa.backends import get_backend
from fometa.data import ArraySplit
from fometa.runfolder import RunFolder

QUIET = T.TrainOptions(progress=False)


def _quiet_until(stop_at):
    return T.TrainOptions(progress=False, stop_at=stop_at)


def _dataset(seed=0, classes=10, examples=8):
    rng = np.random.default_rng(seed)
    return ArraySplit([rng.random((examples, 28, 28), dtype=np.float32) for _ in range(classes)])


def _same(a, b):
    return list(a) == list(b) and all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)


def _same_state(a, b):
    if isinstance(a, optim.AdamState):
        return np.array_equal(a.count, b.count) and _same(a.mu, b.mu) and _same(a.nu, b.nu)
    return type(a) is type(b)


LEARNERS = {
    # name: (algorithm, inner optimizer, outer optimizer, inner and outer settings)
    "reptile-adam-carry": ("reptile", optim.Adam(1e-3), meta.Interpolate(1.0, 0.0, 4), {}),
    "fomaml-adam-reset": ("fomaml", optim.Adam(1e-3), meta.Interpolate(1.0, 0.0, 4), {"state_policy": "reset"}),
    "reptile-sgd-outer-adam": ("reptile", optim.SGD(0.05), meta.OuterAdam(1e-2), {}),
    "maml-sgd": ("maml", optim.SGD(0.05), meta.Interpolate(0.5, 0.5, 4), {}),
    "reptile-adam-serial": ("reptile", optim.Adam(1e-3), meta.Interpolate(1.0, 0.0, 4), {"batched": False}),
    "fomaml-adam-serial-reset": ("fomaml", optim.Adam(1e-3), meta.Interpolate(1.0, 0.0, 4),
                                 {"batched": False, "state_policy": "reset"}),
}


def _learner(name, filters=4):
    alg, inner, outer, conf = LEARNERS[name]
    model = models.conv_net("small", 5, (28, 28), filters=filters, blocks=4, stride=2)
    settings = C.InnerConfig(shots=4, batch=8, iters=3, state_policy=conf.get("state_policy", "carry")), \
        C.OuterConfig(meta_batch=3, batched=conf.get("batched", True))
    return meta.MetaLearner(model, meta.make_algorithm(alg), inner, outer, *settings)


def _alone(learner, ds, seed, iters):
    rng = np.random.default_rng(seed)
    state = learner.init(learner.model.init(rng))
    infos = []
    for _ in range(iters):
        state, info = learner.train_step(state, ds, rng)
        infos.append(info)
    return state, infos, rng


def _together(learner, ds, seed_list, iters):
    rngs = [np.random.default_rng(s) for s in seed_list]
    states = [learner.init(learner.model.init(r)) for r in rngs]
    infos = []
    for _ in range(iters):
        states, info = seeds.step(learner, states, [learner.sample(ds, r) for r in rngs])
        infos.append(info)
    return states, infos, rngs


def _set_block_bytes(monkeypatch, block_bytes):
    """Make the conv layers cut the task axis into blocks of about ``block_bytes`` of patches (None: one block).

    Both the layer-by-layer path (``Backend.chunk_bytes``, fometa/layers/conv2d.py) and, where it
    exists, the fused path (``fometa.models.fused.PATCH_BLOCK_BYTES``) block the task axis; the blocks
    differ between T = meta_batch and T = seeds * meta_batch.
    """
    monkeypatch.setattr(get_backend("numpy"), "chunk_bytes", block_bytes)
    from fometa.models import fused

    if block_bytes is not None:
        monkeypatch.setattr(fused, "PATCH_BLOCK_BYTES", block_bytes)


# None: one block; 1 MiB (the CPU default); 120 kB: the first layer takes two tasks at a time (so a
# run's third task is paired with its own second alone, with another run's first in the group);
# 1 byte: one image at a time.
@pytest.mark.parametrize("block_bytes", [None, 1 << 20, 120_000, 1])
@pytest.mark.parametrize("name", list(LEARNERS))
def test_each_run_is_bit_identical_to_its_seed_trained_alone(monkeypatch, name, block_bytes):
    _set_block_bytes(monkeypatch, block_bytes)
    learner, ds, seed_list, iters = _learner(name, filters=8), _dataset(), [0, 1, 7], 3
    states, infos, rngs = _together(learner, ds, seed_list, iters)
    for r, seed in enumerate(seed_list):
        alone, alone_infos, rng = _alone(learner, ds, seed, iters)
        assert _same(alone.params, states[r].params), f"{name}: seed {seed}'s parameters differ from its run alone"
        assert _same_state(alone.inner_state, states[r].inner_state), f"{name}: seed {seed}'s inner state differs"
        assert _same_state(alone.outer_state, states[r].outer_state), f"{name}: seed {seed}'s outer state differs"
        assert alone.iteration == states[r].iteration == iters
        assert [i[r] for i in infos] == alone_infos, f"{name}: seed {seed}'s losses differ"
        assert rng.bit_generator.state == rngs[r].bit_generator.state


def test_runs_are_independent_of_their_company():
    """A run's result does not depend on which other seeds share the task axis, nor on their order."""
    learner, ds = _learner("reptile-adam-carry"), _dataset()
    a, _, _ = _together(learner, ds, [3, 5], 2)
    b, _, _ = _together(learner, ds, [5, 9, 3], 2)
    assert _same(a[0].params, b[2].params) and _same(a[1].params, b[0].params)


def test_step_checks_its_arguments():
    learner, ds = _learner("reptile-adam-carry"), _dataset()
    state = learner.init(learner.model.init(np.random.default_rng(0)))
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="run states"):
        seeds.step(learner, [state, state], [learner.sample(ds, rng)])
    with pytest.raises(ValueError, match="meta-batch size"):
        seeds.step(learner, [state, state], [learner.sample(ds, rng), learner.sample(ds, rng)[:2]])


# ------------------------------------------------------------------------------------------
# the loop on disk: train_group against fometa.train.train
# ------------------------------------------------------------------------------------------
def _splits():
    return {"train": _dataset(0, 12), "test": _dataset(1, 8)}


def _cfg(**overrides) -> C.RunConfig:
    base = {"model.filters": 4, "inner.iters": 2, "inner.shots": 4, "inner.batch": 8, "eval.inner_iters": 3,
            "interval_tasks": 4, "meta_iters": 12, "eval_interval": 4, "checkpoint_every": 5}
    return C.apply_overrides(C.preset("omniglot-5way-1shot"), {**base, **overrides})


def _metrics(run):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in RunFolder(run).read_log()]


def _ckpt(run):
    return checkpoint.load(RunFolder(run).checkpoint_path)


def _assert_same_run(a, b):
    ca, cb = _ckpt(a), _ckpt(b)
    assert ca.iteration == cb.iteration
    assert _same(ca.params, cb.params), f"{b}: parameters differ from {a}"
    assert _same_state(ca.inner_state, cb.inner_state) and ca.rng_state == cb.rng_state
    assert ca.config == cb.config
    assert _metrics(a) == _metrics(b), f"{b}: log differs from {a}"


SEEDS = [0, 4, 2]


def test_group_writes_one_ordinary_run_per_seed_equal_to_the_seed_alone(tmp_path):
    cfgs = [_cfg(seed=s) for s in SEEDS]
    results = seeds.train_group(cfgs, [tmp_path / "g" / f"seed{s}" for s in SEEDS], _splits(), options=QUIET)
    assert [(r.status, r.iteration) for r in results] == [("finished", 12)] * 3
    for s in SEEDS:
        T.train(_cfg(seed=s), tmp_path / f"alone{s}", _splits(), options=QUIET)
        _assert_same_run(tmp_path / f"alone{s}", tmp_path / "g" / f"seed{s}")
        assert [r["iteration"] for r in RunFolder(tmp_path / "g" / f"seed{s}").read_log()] == [0, 4, 8, 12]


@pytest.mark.parametrize("stop_at", [5, 7])
def test_group_resumed_equals_uninterrupted(tmp_path, stop_at):
    cfgs = [_cfg(seed=s) for s in SEEDS]
    full = [tmp_path / "full" / f"seed{s}" for s in SEEDS]
    part = [tmp_path / "part" / f"seed{s}" for s in SEEDS]
    seeds.train_group(cfgs, full, _splits(), options=QUIET)
    stopped = seeds.train_group(cfgs, part, _splits(), options=_quiet_until(stop_at))
    assert [(r.status, r.iteration) for r in stopped] == [("stopped", stop_at)] * 3
    resumes = [_ckpt(d) for d in part]
    done = seeds.train_group(cfgs, part, _splits(), resumes=resumes, options=QUIET)
    assert [(r.status, r.iteration) for r in done] == [("finished", 12)] * 3
    for a, b in zip(full, part, strict=True):
        _assert_same_run(a, b)


def test_runs_at_different_iterations_catch_up_then_step_together(tmp_path):
    """A group resumed from checkpoints of different iterations (e.g. killed while writing them)."""
    cfgs = [_cfg(seed=s) for s in SEEDS]
    dirs = [tmp_path / "g" / f"seed{s}" for s in SEEDS]
    for cfg, d, stop in zip(cfgs, dirs, (5, 2, 9), strict=True):
        T.train(cfg, d, _splits(), options=_quiet_until(stop))
    seeds.train_group(cfgs, dirs, _splits(), resumes=[_ckpt(d) for d in dirs], options=QUIET)
    for s, d in zip(SEEDS, dirs, strict=True):
        T.train(_cfg(seed=s), tmp_path / f"alone{s}", _splits(), options=QUIET)
        _assert_same_run(tmp_path / f"alone{s}", d)


def test_a_run_of_a_group_resumes_alone(tmp_path):
    cfgs = [_cfg(seed=s) for s in SEEDS]
    dirs = [tmp_path / "g" / f"seed{s}" for s in SEEDS]
    seeds.train_group(cfgs, dirs, _splits(), options=_quiet_until(5))
    T.train(cfgs[1], dirs[1], _splits(), resume=_ckpt(dirs[1]), options=QUIET)
    T.train(cfgs[1], tmp_path / "alone", _splits(), options=QUIET)
    _assert_same_run(tmp_path / "alone", dirs[1])


def test_finished_group_is_not_trained_further(tmp_path):
    cfgs = [_cfg(seed=s, meta_iters=3) for s in SEEDS[:2]]
    dirs = [tmp_path / f"seed{s}" for s in SEEDS[:2]]
    seeds.train_group(cfgs, dirs, _splits(), options=QUIET)
    again = seeds.train_group(cfgs, dirs, _splits(), resumes=[_ckpt(d) for d in dirs], options=QUIET)
    assert [r.status for r in again] == ["already finished"] * 2


def test_non_finite_loss_names_the_seed_and_keeps_every_checkpoint(tmp_path):
    cfgs = [_cfg(seed=s, meta_iters=5) for s in SEEDS[:2]]
    dirs = [tmp_path / f"seed{s}" for s in SEEDS[:2]]
    seeds.train_group(cfgs, dirs, _splits(), options=QUIET)
    before = [RunFolder(d).checkpoint_path.read_bytes() for d in dirs]
    nan = {k: ArraySplit([np.full((8, 28, 28), np.nan, np.float32)] * len(v)) for k, v in _splits().items()}
    longer = [C.apply_overrides(c, {"meta_iters": 9}) for c in cfgs]
    with pytest.raises(T.TrainingError, match=r"seed 0 .*non-finite .*meta-iteration 6 .*iteration 5, is kept"):
        seeds.train_group(longer, dirs, nan, resumes=[_ckpt(d) for d in dirs], options=QUIET)
    assert [RunFolder(d).checkpoint_path.read_bytes() for d in dirs] == before


class _SignalingSplit(ArraySplit):
    """Sends ``signum`` to this process on the ``at``-th example read (mid-iteration)."""

    def __init__(self, arrays, signum, at):
        super().__init__(arrays)
        self.signum, self.at, self.reads = signum, at, 0

    def get(self, c, indices):
        self.reads += 1
        if self.reads == self.at:
            os.kill(os.getpid(), self.signum)
        return super().get(c, indices)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_finishes_the_iteration_checkpoints_every_run_and_returns(tmp_path, signum):
    splits = _splits()
    train = splits["train"]
    # 5 classes x meta-batch 5 x 2 seeds = 50 reads per iteration: the signal arrives during iteration 2
    splits["train"] = _SignalingSplit([train.get(c, np.arange(8)) for c in range(len(train))], signum, at=60)
    handler = signal.getsignal(signum)
    cfgs = [_cfg(seed=s, checkpoint_every=0, eval_interval=0) for s in SEEDS[:2]]
    dirs = [tmp_path / f"seed{s}" for s in SEEDS[:2]]
    results = seeds.train_group(cfgs, dirs, splits, options=QUIET)
    name = signal.Signals(signum).name
    assert [(r.status, r.iteration, r.signal) for r in results] == [("interrupted", 2, name)] * 2
    assert [_ckpt(d).iteration for d in dirs] == [2, 2]
    assert signal.getsignal(signum) is handler, "the signal handler was not restored"


def test_a_group_must_differ_in_its_seeds_only(tmp_path):
    with pytest.raises(C.ConfigError, match=r"differ only in their seed; inner.lr"):
        T.check_group([_cfg(seed=0), _cfg(seed=1, **{"inner.lr": 0.01})])
    with pytest.raises(C.ConfigError, match="distinct seeds"):
        T.check_group([_cfg(seed=0), _cfg(seed=0)])



def _relative_step_differences(backend):
    """Per seed, |step alone - step in the group| / |step alone| of the paper's Omniglot net on ``backend``."""
    from fometa import tree

    model = models.omniglot_cnn(5)
    # plain SGD: Adam would blow rounding noise on exactly-zero gradients up to full steps
    learner = meta.MetaLearner(model, meta.Reptile(), optim.SGD(0.05), meta.Interpolate(1.0, 0.0, 4),
                               C.InnerConfig(shots=4, batch=8, iters=3), C.OuterConfig(meta_batch=3), backend=backend)
    ds, seed_list = _dataset(), [0, 1, 2]
    states, _, _ = _together(learner, ds, seed_list, 2)
    out = []
    for r, seed in enumerate(seed_list):
        alone, _, _ = _alone(learner, ds, seed, 2)
        init = model.init(np.random.default_rng(seed))
        a = tree.sub(tree.to_host(alone.params), init)
        b = tree.sub(tree.to_host(states[r].params), init)
        out.append(float(tree.norm(tree.sub(a, b)) / tree.norm(a)))
    return out


def test_relative_step_differences_are_zero_on_numpy():
    assert _relative_step_differences("numpy") == [0.0, 0.0, 0.0]


@pytest.mark.gpu
def test_on_a_gpu_each_run_matches_its_seed_alone(gpu_backend):
    """On CuPy a per-task kernel may depend on the task count (cuBLAS picks batched-GEMM algorithms by
    shape): the runs must agree with each seed alone to float32 round-off."""
    errors = _relative_step_differences(gpu_backend)
    assert max(errors) < 1e-4, f"relative differences of the steps per seed: {errors}"
