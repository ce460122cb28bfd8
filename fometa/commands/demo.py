"""``fometa demo``: a local web page to draw a few characters and watch a trained model learn them.

Loads ``--model`` (a shipped model's name, default ``omniglot-5way``, a run folder or a checkpoint
file), adapts it once to warm it up, serves the page on ``--host``:``--port`` (default
``127.0.0.1:8000``: this machine only) and prints its address; Ctrl+C stops it. The page and its API are described in
:mod:`fometa.demo`. Needs Pillow (``pip install 'fometa[demo]'``).
"""
from __future__ import annotations

import signal
import sys
import warnings

from fometa import checkpoint, pretrained
from fometa.commands.options import CLIError
from fometa.demo import Demo, address, make_server
from fometa.fewshot import FewShotClassifier

DEFAULT_MODEL = "omniglot-5way"


def add_arguments(p):
    p.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME|RUN",
                   help=f"a shipped model's name (fometa models lists them), a run folder or a checkpoint file "
                        f"(default {DEFAULT_MODEL})")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: only this machine; 0.0.0.0: every network)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port)")
    p.add_argument("--log-requests", action="store_true", help="print one line per request on stderr")


def load(model: str):
    """``(classifier, its name for the page)`` of ``--model``: a run folder, a checkpoint file or a shipped model."""
    try:
        import PIL  # noqa: F401 - imported to see that it is installed
    except ImportError:
        raise CLIError("fometa demo needs Pillow (pip install 'fometa[demo]')") from None
    try:
        with warnings.catch_warnings(record=True) as notes:  # e.g. a run's previous checkpoint taken
            warnings.simplefilter("always")
            clf = FewShotClassifier(model).load()
    except (ValueError, checkpoint.CheckpointError, pretrained.RegistryError) as exc:
        raise CLIError(str(exc)) from None
    for note in notes:
        print(f"fometa demo: {note.message}", file=sys.stderr)
    return clf, str(model)


def _stop(signum, frame):
    raise KeyboardInterrupt


def run(args) -> int:
    # Ctrl+C (and SIGTERM) stop the server, even where the shell started it with SIGINT ignored
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, _stop)
    if not 0 <= args.port <= 65535:
        raise CLIError(f"--port must be in 0..65535, got {args.port}")
    clf, name = load(args.model)
    demo = Demo(clf, name, clf.ways)
    try:
        server = make_server(demo, args.host, args.port, quiet=not args.log_requests)
    except OSError as exc:
        raise CLIError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    with server:
        demo.warm_up()
        print(f"fometa demo: {name} at {address(server)} (Ctrl+C stops)", flush=True)
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print(f"fometa demo: listening on {args.host}: other machines can reach the page", file=sys.stderr)
        server.serve_forever()
    return 0
