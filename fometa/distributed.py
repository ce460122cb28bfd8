"""Several processes: data-parallel meta-training and evaluation on MPI ranks (mpi4py).

``mpiexec -n N fometa train ...`` and ``mpiexec -n N fometa eval ...`` run ``N`` copies of the
same command, one process (a *rank*) per core or GPU. Notation as in :mod:`fometa.meta`.

Meta-training: every rank draws the same meta-batch of ``n`` tasks from the run's one generator
(so the generator's stream, and every checkpoint, is the single process's) and adapts its share:
rank ``r`` takes the contiguous tasks ``[lo_r, hi_r)`` of :func:`share` (``n_r`` tasks, the first
``n mod N`` ranks one more than the rest) on the task axis and gets their mean pseudo-gradient
``G_r`` and carried inner state. The ranks exchange ``n_r G_r`` as host arrays (``allgather``);
every rank sums them in rank order and divides by ``n``,

    G = (1/n) sum_r n_r G_r   (= the single process's mean over the meta-batch),

and the carried state of the ``carry`` policy (Adam's moments ``mu``, ``nu``) the same way. Every
rank then takes the same outer step on the same numbers, so all ranks hold identical parameters
(checked at each checkpoint). The sums run in the same order as the single process's mean when
every rank has one task (``n == N``): the parameters are then bit for bit the single process's on
NumPy; with several tasks a rank, ``n_r G_r`` rounds ``G_r``'s own mean, and they agree to
float32 round-off. ``N > n`` is refused, and so is the serial meta-batch under ``carry``
(``outer.batched = false``: each task starts from the state the previous one left).

Evaluation: the tasks are drawn in rounds of ``chunk * N``; every rank draws all of a round's
tasks from the one generator (the single process's task stream) and adapts and predicts only its
share, ``chunk`` or fewer tasks at once; the per-task accuracies are gathered in rank order, so
the result is the single process's, task by task.

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

import numpy as np

from fometa import optim, tree

__all__ = ["Single", "MPIWorld", "MPIError", "world", "world_size_from_env", "share", "weighted_mean",
           "make_step", "check_training", "evaluate", "abort_on_error"]

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


def share(n: int, rank: int, size: int) -> tuple[int, int]:
    """Rank ``rank``'s contiguous share ``[lo, hi)`` of ``n`` items split over ``size`` ranks.

    Shares differ by at most one item (the first ``n mod size`` ranks take one more), and
    concatenated in rank order they are ``range(n)``.
    """
    base, extra = divmod(n, size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


# ------------------------------------------------------------------------------------------
# the world: one process, or the ranks of MPI_COMM_WORLD
# ------------------------------------------------------------------------------------------
class Single:
    """The world of a single-process run: rank 0 of 1; every collective is the identity."""

    rank, size, local_rank = 0, 1, 0
    label = ""  # prefix of error messages

    @property
    def is_root(self) -> bool:
        return True

    def allgather(self, obj) -> list:
        return [obj]

    def barrier(self) -> None:
        pass

    def abort(self, code: int) -> None:
        """Nothing to take down: the caller returns its exit status."""

    def backend_name(self, name: str | None) -> str | None:
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
            from fometa import parallel

            parallel.set_threads(max(1, parallel.available_cores() // self.local_size))

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def allgather(self, obj) -> list:
        """Every rank's ``obj``, in rank order, on every rank."""
        return self.comm.allgather(obj)

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, code: int) -> None:
        """End every rank of the job at once with exit status ``code``."""
        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(code)

    def backend_name(self, name: str | None) -> str | None:
        """``cupy`` becomes ``cupy:N`` with ``N = local_rank mod visible GPUs``; other names stay."""
        from fometa.backends import ENV_VAR as BACKEND_VAR

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
# meta-training
# ------------------------------------------------------------------------------------------
def weighted_mean(parts, n: int):
    """``(1/n) sum_r c_r t_r`` over ``parts = [(c_r, t_r), ...]`` (trees of host arrays), summed in order.

    With every ``c_r == 1`` this is, operation for operation, NumPy's ``mean`` over a task axis.
    """
    total = None
    for count, t in parts:
        term = t if count == 1 else tree.scale(t, count)
        total = term if total is None else tree.add(total, term)
    return tree.map(lambda x: x / n, total)


def check_training(comm: Single, meta_batch: int, batched: bool, state_policy: str) -> None:
    """Raise :class:`~fometa.config.ConfigError` (one line) when this meta-batch cannot be split over
    ``comm``'s ranks."""
    from fometa.config import ConfigError

    if comm.size == 1:
        return
    if comm.size > meta_batch:
        raise ConfigError(f"{comm.size} processes for a meta-batch of {meta_batch} tasks: each process adapts at "
                         f"least one task, so run at most {meta_batch} (mpiexec -n {meta_batch}) or raise "
                         "--meta-batch")
    if not batched and state_policy == "carry":
        raise ConfigError("the serial meta-batch (outer.batched = false) carries the inner state from task to task, "
                         "so it cannot be split over processes: use --batched or --state-policy reset")


def make_step(learner, comm: Single):
    """``step(state, tasks) -> (state, info)``: ``learner.step``, or on several ranks its
    data-parallel version (module docstring); raises as :func:`check_training`."""
    if comm.size == 1:
        return learner.step
    c = learner.config
    check_training(comm, c.meta_batch, c.batched, c.state_policy)
    carry = c.state_policy == "carry"

    def step(state, tasks):
        n = len(tasks)
        lo, hi = share(n, comm.rank, comm.size)
        g, inner, losses = learner.pseudo_gradient(state, tasks[lo:hi])
        mine = (hi - lo, tree.to_host(g), optim.state_to_host(inner) if carry else None, losses)
        parts = comm.allgather(mine)
        g = tree.to_backend(weighted_mean([(p[0], p[1]) for p in parts], n), learner.backend)
        if carry and isinstance(inner, optim.AdamState):  # every rank's count is the same
            mu = weighted_mean([(p[0], p[2].mu) for p in parts], n)
            nu = weighted_mean([(p[0], p[2].nu) for p in parts], n)
            inner = optim.AdamState(inner.count, tree.to_backend(mu, learner.backend),
                                    tree.to_backend(nu, learner.backend))
        losses = np.concatenate([p[3] for p in parts], axis=1)
        # the outer step, as MetaLearner.step takes it
        updates, outer = learner.outer_opt.update(g, state.outer_state, state.iteration,
                                                  learner.inner_opt.step_size(inner))
        params = tree.add(state.params, updates)
        info = {"loss_first": float(losses[0].mean()), "loss_last": float(losses[-1].mean())}
        return state._replace(params=params, inner_state=inner, outer_state=outer, iteration=state.iteration + 1), info

    return step


def check_same(comm: Single, params) -> None:
    """Raise :class:`RuntimeError` unless every rank holds bit for bit the same ``params``."""
    if comm.size == 1:
        return
    import hashlib

    digest = hashlib.sha256()
    for name, value in tree.to_host(params).items():
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    digests = comm.allgather(digest.hexdigest())
    if len(set(digests)) != 1:
        raise RuntimeError("the ranks' parameters differ (ranks " +
                           ", ".join(str(r) for r, d in enumerate(digests) if d != digests[0]) + " from rank 0)")


# ------------------------------------------------------------------------------------------
# evaluation
# ------------------------------------------------------------------------------------------
def evaluate(model, params, ds, rng: np.random.Generator, cfg, inner_opt, inner_state=None, *, tasks: int = 10_000,
             chunk: int = 250, backend=None, progress=None, modes=None, comm: Single | None = None, resume=None,
             on_chunk=None):
    """:func:`fometa.evaluate.evaluate` over the ranks of ``comm`` (default :func:`world`).

    Same arguments and results, on every rank; ``chunk`` is the tasks each rank adapts at once.
    ``progress`` is called on rank 0 only.
    """
    from fometa import evaluate as ev

    comm = world() if comm is None else comm
    return ev.evaluate(model, params, ds, rng, cfg, inner_opt, inner_state, tasks=tasks, chunk=chunk, backend=backend,
                       progress=progress, modes=modes, comm=None if comm.size == 1 else comm, resume=resume,
                       on_chunk=on_chunk)
