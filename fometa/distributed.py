"""Several processes: data-parallel meta-training and evaluation on MPI ranks (mpi4py).

``mpiexec -n N fometa train ...`` and ``mpiexec -n N fometa eval ...`` run ``N`` copies of the
same command, one process (a *rank*) per core or GPU. Notation as in :mod:`fometa.meta`.

Meta-training: every rank draws the same meta-batch of ``n`` tasks from the run's one generator
(so the generator's stream, and every checkpoint, is the single process's) and adapts its share:
rank ``r`` takes the contiguous tasks ``[lo_r, hi_r)`` of :func:`fometa.parallel.share` (the
first ``n mod N`` ranks one more than the rest). :func:`task_results` is the provider that
:meth:`fometa.meta.MetaLearner.apply` takes its per-task results from: every rank gathers every
rank's per-task pseudo-gradients ``G_i``, final inner states and losses (``allgather`` of host
arrays) and joins them in rank order, which is task order. Each task's numbers do not depend on
how many tasks share its pass, so the joined results are the single process's, and the one
outer step reduces them in the same order: parameters, optimizer states and log records equal
the single process's bit for bit on NumPy, for every ``N`` up to the meta-batch, uneven shares
included. ``N > n`` is refused, and so is the serial meta-batch under ``carry``
(``outer.batched = false``: each task starts from the state the previous one left).

Evaluation: :func:`fometa.evaluate.evaluate` takes the world as ``comm`` and splits each round of
``chunk * N`` tasks the same way; the per-task accuracies are gathered in rank order, so the
result is the single process's, task by task.

Detection: :func:`world` reads the variables a launcher sets (``PMI_SIZE`` for MPICH's Hydra,
``OMPI_COMM_WORLD_SIZE`` for Open MPI, ``MV2_COMM_WORLD_SIZE`` for MVAPICH) and imports mpi4py
only when the world has more than one process, so ``import fometa`` and single-process runs never
load it. ``FOMETA_MPI=1`` forces MPI (another launcher), ``FOMETA_MPI=0`` ignores the variables.

Faults: rank 0 alone writes the run folder, logs and checkpoints (atomically). Any error on any
rank prints ``fometa: error: rank R: ...`` and aborts the whole job (``MPI_Abort``), so no rank
waits forever for a dead peer; a rank killed outright is torn down by the launcher (Hydra ends
the job with the signal's number). The last checkpoint stays valid either way.

GPUs: with the ``cupy`` backend rank ``r`` uses GPU ``local_rank mod visible GPUs``
(``cupy:N``), ``local_rank`` its rank among the processes on its node.
"""
from __future__ import annotations

import contextlib
import os
import sys
import traceback

from fometa import meta, parallel
from fometa.backends import ENV_VAR as BACKEND_VAR
from fometa.checkpoint import tree_digest
from fometa.config import ConfigError, InnerConfig, OuterConfig

__all__ = ["Single", "MPIWorld", "MPIError", "world", "world_size_from_env", "task_results", "ranks_provider",
           "make_step", "check_training", "check_same", "abort_on_error"]

#: launcher variables holding the world size: MPICH/Intel MPI (Hydra), Open MPI, MVAPICH
SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
ENV_VAR = "FOMETA_MPI"


class MPIError(RuntimeError):
    """Several processes were asked for but MPI cannot provide them (mpi4py missing, a bad setting)."""


def world_size_from_env(environ=None) -> int:
    """The number of processes a launcher started, from its variables (1 when none is set)."""
    env = os.environ if environ is None else environ
    for var in SIZE_VARS:
        value = env.get(var, "").strip()
        if value.isdigit() and int(value) >= 1:
            return int(value)
    return 1


# ------------------------------------------------------------------------------------------
# the world: one process, or the ranks of MPI_COMM_WORLD
# ------------------------------------------------------------------------------------------
class Single:
    """The world of a single-process run: rank 0 of 1; every collective is the identity."""

    rank, size, local_rank = 0, 1, 0
    label = ""  # prefix of error messages

    @property
    def is_root(self) -> bool:
        """Always ``True``: the one process is rank 0."""
        return True

    def allgather(self, obj) -> list:
        """``[obj]``: one process gathers its own object."""
        return [obj]

    def barrier(self) -> None:
        """Nothing to wait for."""
        pass

    def abort(self, code: int) -> None:
        """Nothing to take down: the caller returns its exit status."""

    def backend_name(self, name: str | None) -> str | None:
        """``name`` unchanged: one process needs no device of its own."""
        return name


class MPIWorld(Single):
    """The ranks of ``MPI_COMM_WORLD`` (mpi4py, imported here)."""

    def __init__(self):
        try:
            from mpi4py import MPI
        except ImportError as exc:
            raise MPIError(f"{world_size_from_env()} processes were started, but mpi4py cannot be imported "
                           f"({exc}); install it with: pip install 'fometa[mpi]'") from None
        self.comm = MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED)  # the ranks sharing this node's memory
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        self.label = f"rank {self.rank}: "
        if not os.environ.get("FOMETA_THREADS", "").strip():
            # the node's cores are shared among its ranks (--threads still overrides this)
            parallel.set_threads(max(1, parallel.available_cores() // self.local_size))

    @property
    def is_root(self) -> bool:
        """Whether this process is rank 0, the one that writes and prints."""
        return self.rank == 0

    def allgather(self, obj) -> list:
        """Every rank's ``obj``, in rank order, on every rank."""
        return self.comm.allgather(obj)

    def barrier(self) -> None:
        """Wait until every rank is here."""
        self.comm.Barrier()

    def abort(self, code: int) -> None:
        """End every rank of the job at once with exit status ``code``."""
        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(code)

    def backend_name(self, name: str | None) -> str | None:
        """``cupy`` becomes ``cupy:N`` with ``N = local_rank mod visible GPUs``; other names stay."""
        resolved = name or os.environ.get(BACKEND_VAR) or "numpy"
        if resolved.strip().lower() != "cupy":
            return name
        try:
            import cupy

            count = cupy.cuda.runtime.getDeviceCount()
        except Exception:  # noqa: BLE001 - no CuPy or no GPU: get_backend("cupy") says why
            return name
        return f"cupy:{self.local_rank % count}" if count else name


_WORLD: list = []


def world() -> Single:
    """This process's world: :class:`MPIWorld` when launched as several processes, else :class:`Single`.

    Decided once per process from the launcher's variables (see the module docstring); raises
    :class:`MPIError` when several processes were launched but mpi4py is missing.
    """
    if not _WORLD:
        forced = os.environ.get(ENV_VAR, "").strip()
        wanted = forced == "1" or (forced != "0" and world_size_from_env() > 1)
        _WORLD.append(MPIWorld() if wanted else Single())
    return _WORLD[0]


@contextlib.contextmanager
def abort_on_error(comm: Single):
    """On several ranks, an exception escaping the block prints ``fometa: error: rank R: ...``
    (with its traceback) and aborts the job, so no other rank is left waiting for this one."""
    if comm.size == 1:
        yield
        return
    try:
        yield
    except SystemExit as exc:
        if exc.code not in (None, 0):
            comm.abort(exc.code if isinstance(exc.code, int) else 1)
        raise
    except BaseException as exc:  # noqa: BLE001 - re-raised as a job abort
        traceback.print_exc()
        print(f"fometa: error: {comm.label}{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        comm.abort(1)
        raise


# ------------------------------------------------------------------------------------------
# meta-training: a provider of per-task results
# ------------------------------------------------------------------------------------------
def check_training(comm: Single, inner: InnerConfig, outer: OuterConfig) -> None:
    """Raise :class:`~fometa.config.ConfigError` (one line) when the meta-batch of a run with these inner and
    outer settings cannot be split over ``comm``'s ranks."""
    if comm.size == 1:
        return
    if comm.size > outer.meta_batch:
        n = outer.meta_batch
        raise ConfigError(f"{comm.size} processes for a meta-batch of {n} tasks: each process adapts at least one "
                          f"task, so run at most {n} (mpiexec -n {n}) or raise --outer-meta-batch")
    if not outer.batched and inner.state_policy == "carry":
        raise ConfigError("the serial meta-batch (outer.batched = false) carries the inner state from task to task, "
                          "so it cannot be split over processes: use --outer-batched or --inner-state-policy reset")


def task_results(learner, comm: Single, state, tasks) -> meta.TaskResults:
    """Every task's results of the meta-batch ``tasks``, this rank adapting its share (module docstring)."""
    if comm.size == 1:
        return learner.task_results(state, tasks)
    lo, hi = parallel.share(len(tasks), comm.rank, comm.size)
    mine = meta.results_to_host(learner.task_results(state, tasks[lo:hi]))
    return meta.results_to_backend(meta.concat_results(comm.allgather(mine)), learner.backend)


def ranks_provider(comm: Single):
    """The provider of per-task results (:func:`fometa.train.train_runs`) of ``comm``'s ranks: each run's
    meta-batch shared by them (:func:`task_results`)."""

    def ranks_task_results(learner, states, task_lists) -> list:
        return [task_results(learner, comm, s, t) for s, t in zip(states, task_lists, strict=True)]

    return ranks_task_results


def make_step(learner, comm: Single):
    """``step(state, tasks) -> (state, info)``: :meth:`~fometa.meta.MetaLearner.step` with this world's
    ranks sharing the tasks; raises as :func:`check_training`."""
    check_training(comm, learner.inner, learner.outer)
    return lambda state, tasks: learner.apply(state, task_results(learner, comm, state, tasks))


def check_same(comm: Single, params) -> None:
    """Raise :class:`RuntimeError` unless every rank holds bit for bit the same ``params``."""
    if comm.size == 1:
        return
    digests = comm.allgather(tree_digest(params))
    if len(set(digests)) != 1:
        raise RuntimeError("the ranks' parameters differ (ranks " +
                           ", ".join(str(r) for r, d in enumerate(digests) if d != digests[0]) + " from rank 0)")
