"""The ``fometa`` command line: ``fometa <command> [options]``.

Each command lives in its own module under :mod:`fometa.commands` exposing
``add_arguments(parser)`` and ``run(args) -> int``; the CLI only parses, sets the threads of the
commands that take ``--threads`` (:func:`fometa.commands.options.apply_threads`), and hands over. Building
the parser imports every command's module, which defines its arguments and nothing heavy: h5py,
matplotlib, Pillow, mpi4py and the like load inside ``run()``, when a command needs them.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from fometa import __version__, distributed
from fometa.backends import BackendError
from fometa.commands.options import CLIError, apply_threads
from fometa.signals import Terminated

# name -> (module under fometa.commands, one-line help)
COMMANDS = {
    "bench": ("bench", "time forward+backward passes, meta-iterations and evaluation tasks"),
    "data": ("data", "pack Omniglot, Mini-ImageNet or any image folder into HDF5"),
    "sine": ("sine", "meta-train the sine-wave MLP (the paper's Figure 1)"),
    "experiment": ("experiment", "the paper's Section 6 experiments on Omniglot (combinations, fomaml-tail)"),
    "train": ("train", "meta-train from a preset, or resume a run (checkpoints, logs)"),
    "eval": ("eval", "few-shot accuracy of a run's checkpoint on many tasks (JSON)"),
    "plot": ("plot", "learning curves of a run as PNG"),
    "predict": ("predict", "fine-tune a trained model on a few labelled images, then label new ones (JSON)"),
    "models": ("models", "the trained models shipped with fometa: budgets, accuracies, files"),
    "samples": ("samples", "copy the sample images that ship with fometa (Omniglot test characters) into a folder"),
    "demo": ("demo", "a local web page: draw a few characters, watch a trained model learn them"),
}

#: the commands that split their work over the ranks of ``mpiexec -n N fometa ...`` (fometa.distributed)
PARALLEL = ("train", "eval")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fometa", description="First-order meta-learning (Reptile, FOMAML).")
    parser.add_argument("--version", action="version", version=f"fometa {__version__}",
                        help="print fometa's version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        # argument definitions are cheap; the heavy imports happen inside run()
        importlib.import_module(f"fometa.commands.{module}").add_arguments(p)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    module = importlib.import_module(f"fometa.commands.{args._module}")
    try:
        comm = distributed.world()  # one process, or the ranks of mpiexec -n N (mpi4py only then)
    except distributed.MPIError as exc:
        print(f"fometa: error: {exc}", file=sys.stderr)
        return 2
    with distributed.abort_on_error(comm):  # several ranks: an error on one ends them all
        try:
            if comm.size > 1 and args.command not in PARALLEL:
                raise CLIError(f"fometa {args.command} runs as one process; only {' and '.join(PARALLEL)} "
                               "run on several (mpiexec -n N)")
            if hasattr(args, "threads"):  # a command that runs task blocks on threads (--threads)
                apply_threads(args)
            return int(module.run(args) or 0)
        except (CLIError, BackendError) as exc:
            print(f"fometa: error: {comm.label}{exc}", file=sys.stderr)
            comm.abort(2)
            return 2
        except KeyboardInterrupt as exc:  # Ctrl-C; or SIGTERM where a command asked for it (fometa.signals)
            status, what = (143, "terminated") if isinstance(exc, Terminated) else (130, "interrupted")
            print(f"fometa: {comm.label}{what}", file=sys.stderr)
            comm.abort(status)
            return status
        except BrokenPipeError:  # the reader went away (`fometa data info F | head`): stop quietly, as cat does
            _silence_stdout()
            return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by the closed pipe


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing what is left at exit does not raise again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # not a real file (a test's capture)
        sys.stdout = open(os.devnull, "w")


if __name__ == "__main__":
    sys.exit(main())
