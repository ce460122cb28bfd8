"""fometa.distributed without MPI: shares, and data-parallel steps and evaluation on ranks simulated
by threads (the real ``mpiexec`` runs are in tests/commands/test_mpi.py)."""
import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fometa import config as C
from fometa import distributed, meta, models, optim, parallel, tree
from fometa import evaluate as E
from fometa.tasks import ArrayClasses


@given(n=st.integers(0, 50), size=st.integers(1, 9))
def test_shares_are_contiguous_balanced_and_in_rank_order(n, size):
    shares = [parallel.share(n, r, size) for r in range(size)]
    assert [i for lo, hi in shares for i in range(lo, hi)] == list(range(n))
    counts = [hi - lo for lo, hi in shares]
    assert max(counts) - min(counts) <= 1 and counts == sorted(counts, reverse=True)


def test_world_size_from_env():
    assert distributed.world_size_from_env({}) == 1
    assert distributed.world_size_from_env({"PMI_SIZE": "4"}) == 4
    assert distributed.world_size_from_env({"OMPI_COMM_WORLD_SIZE": "3"}) == 3
    assert distributed.world_size_from_env({"PMI_SIZE": "x"}) == 1


def test_import_and_single_process_world_never_load_mpi4py():
    code = ("import sys, fometa, fometa.cli, fometa.distributed as d; w = d.world(); "
            "assert w.size == 1 and w.is_root, w; assert 'mpi4py' not in sys.modules, 'mpi4py was imported'")
    for env in ({}, {"PMI_SIZE": "1", "PMI_RANK": "0"}):
        done = subprocess.run([sys.executable, "-c", code], env={"PATH": "/usr/bin:/bin", **env},
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr


def test_several_processes_without_mpi4py_is_a_one_line_error():
    code = ("import sys; sys.modules['mpi4py'] = None; from fometa.cli import main; "
            "sys.exit(main(['eval', 'no-such-run']))")
    done = subprocess.run([sys.executable, "-c", code], env={"PATH": "/usr/bin:/bin", "PMI_SIZE": "2", "PMI_RANK": "0"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("fometa: error: 2 processes were started, but mpi4py cannot be imported")
    assert len(done.stderr.splitlines()) == 1, done.stderr


# ------------------------------------------------------------------------------------------
# ranks simulated by threads: the same collectives, in one process
# ------------------------------------------------------------------------------------------
class ThreadComm(distributed.Single):
    """Rank ``rank`` of ``size`` threads; ``allgather`` meets the others at a barrier."""

    def __init__(self, rank, size, slots, barrier):
        self.rank, self.size, self.local_rank = rank, size, rank
        self.slots, self.sync = slots, barrier
        self.label = f"rank {rank}: "

    @property
    def is_root(self):
        return self.rank == 0

    def allgather(self, obj):
        self.slots[self.rank] = obj
        self.sync.wait()
        out = list(self.slots)
        self.sync.wait()
        return out


def on_ranks(size, fn):
    """``[fn(comm_r) for r in range(size)]``, the ranks running at once in threads."""
    slots, barrier = [None] * size, threading.Barrier(size, timeout=120)
    results, errors = [None] * size, []

    def run(r):
        try:
            results[r] = fn(ThreadComm(r, size, slots, barrier))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


MLP = models.sine_mlp(hidden=6)


def _regression_tasks(rng, n, k=3, batch=4):
    return [[(rng.uniform(-5, 5, (batch, 1)), rng.standard_normal((batch, 1))) for _ in range(k)] for _ in range(n)]


def _learner(inner, policy, meta_batch, batched=True, outer=None):
    return meta.MetaLearner(MLP, meta.Reptile(), inner, outer or meta.Interpolate(0.5, 0.1, 10),
                            C.InnerConfig(shots=1, batch=4, iters=3, state_policy=policy),
                            C.OuterConfig(meta_batch=meta_batch, batched=batched))


@settings(max_examples=15)
@given(seed=st.integers(0, 2**32 - 1), meta_batch=st.integers(1, 6), size=st.integers(1, 4),
       policy=st.sampled_from(["carry", "reset"]), adam_outer=st.booleans(), batched=st.booleans())
def test_data_parallel_steps_equal_one_process(seed, meta_batch, size, policy, adam_outer, batched):
    """Any shares, uneven ones included: parameters, carried Adam state and losses are one process's, bit for bit."""
    if size > 1 and (size > meta_batch or (not batched and policy == "carry")):
        with pytest.raises(ValueError, match="meta-batch"):
            distributed.make_step(_learner(optim.Adam(0.01), policy, meta_batch, batched),
                                  ThreadComm(0, size, [], None))
        return
    rng = np.random.default_rng(seed)
    learner = _learner(optim.Adam(0.01), policy, meta_batch, batched, meta.OuterAdam(0.01) if adam_outer else None)
    phi = tree.astype(MLP.init(rng), np.float64)
    batches = [_regression_tasks(rng, meta_batch) for _ in range(3)]

    def run(step):
        state, infos = learner.init(phi), []
        for tasks in batches:
            state, info = step(state, tasks)
            infos.append(info)
        return state, infos

    one, one_infos = run(learner.step)
    ranks = on_ranks(size, lambda comm: run(distributed.make_step(learner, comm)))
    for state, infos in ranks:
        assert tree.allclose(state.params, one.params, rtol=1e-12, atol=1e-14), "parameters differ from one process's"
        assert tree.allclose(state.inner_state.mu, one.inner_state.mu, rtol=1e-12, atol=1e-14)
        assert tree.allclose(state.inner_state.nu, one.inner_state.nu, rtol=1e-12, atol=1e-14)
        assert int(state.inner_state.count) == int(one.inner_state.count) and state.iteration == 3
        for a, b in zip(infos, one_infos, strict=True):
            assert a == pytest.approx(b, rel=1e-12)
    for state, _ in ranks[1:]:  # every rank holds bit for bit rank 0's numbers
        assert all(np.array_equal(state.params[k], ranks[0][0].params[k]) for k in phi)
    for state, infos in ranks:  # the per-task results are joined in task order and reduced as one process does
        assert all(np.array_equal(state.params[k], one.params[k]) for k in phi), "parameters not bit for bit"
        assert all(np.array_equal(state.inner_state.nu[k], one.inner_state.nu[k]) for k in phi), "Adam's nu"
        assert all(np.array_equal(state.inner_state.mu[k], one.inner_state.mu[k]) for k in phi), "Adam's mu"
        assert infos == one_infos, "the losses differ"


NET = models.conv_net("tiny", 3, (6, 6), filters=4, blocks=2, stride=2)


@settings(max_examples=10)
@given(seed=st.integers(0, 2**32 - 1), tasks=st.integers(1, 13), chunk=st.integers(1, 5), size=st.integers(1, 4))
def test_data_parallel_evaluation_gives_one_process_per_task_results(seed, tasks, chunk, size):
    rng = np.random.default_rng(seed)
    protos = rng.random((5, 6, 6)).astype(np.float32)
    ds = ArrayClasses([protos[c] + 0.3 * rng.standard_normal((6, 6, 6)).astype(np.float32) for c in range(5)])
    params, opt = NET.init(rng), optim.Adam(0.01)
    cfg = E.EvaluationConfig(shots=2, inner_batch=3, inner_iters=4)
    modes = ("transductive", "per-query")
    one = E.evaluate(NET, params, ds, np.random.default_rng(seed), cfg, opt, tasks=tasks, chunk=chunk, modes=modes)
    calls = []

    def run(comm):
        return E.evaluate(NET, params, ds, np.random.default_rng(seed), cfg, opt, tasks=tasks, chunk=chunk,
                          modes=modes, comm=comm, progress=lambda done, total: calls.append(comm.rank))

    for res in on_ranks(size, run):
        for mode in modes:
            assert np.array_equal(res[mode].per_task, one[mode].per_task), f"{mode}: per-task results differ"
            assert res[mode].accuracy == one[mode].accuracy
            np.testing.assert_equal(res[mode].ci95, one[mode].ci95)  # NaN for a single task
    assert set(calls) == {0}, "progress is reported on rank 0 only"
