"""One module per ``fometa`` sub-command: ``add_arguments(parser)`` and ``run(args) -> int``."""


def add_threads_argument(p):
    """``--threads N``: task blocks on N threads, one BLAS thread each (:mod:`fometa.parallel`)."""
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="threads for task blocks, one BLAS thread each (default: $FOMETA_THREADS or the cores)")


def apply_threads(args) -> None:
    """Hand ``--threads`` to :func:`fometa.parallel.set_threads`; a bad value is a user error."""
    from fometa import parallel
    from fometa.cli import CLIError

    if getattr(args, "threads", None) is None:
        try:
            parallel.get_threads()  # reads FOMETA_THREADS: a bad value is a user error too
        except ValueError as exc:
            raise CLIError(str(exc)) from None
        return
    if args.threads < 1:
        raise CLIError(f"--threads must be at least 1, got {args.threads}")
    parallel.set_threads(args.threads)

