"""``fometa samples [NAME] --out DIR``: copy the sample images that ship with fometa into a folder.

``fometa samples`` lists them; ``fometa samples omniglot --out samples`` writes ``samples/support/<class>/``
and ``samples/query/``, ready for ``fometa predict omniglot-5way --support samples/support --query
samples/query``.
"""
from __future__ import annotations

from fometa import samples
from fometa.commands.options import CLIError


def add_arguments(p):
    p.add_argument("name", nargs="?", default=None, help=f"which samples: {', '.join(samples.SAMPLES)}")
    p.add_argument("--out", default=None, metavar="DIR", help="a new folder to copy them to (default: ./NAME)")


def run(args) -> int:
    if args.name is None:
        for name, what in samples.SAMPLES.items():
            print(f"{name}: {what}")
        return 0
    try:
        out = samples.copy_to(args.name, args.out or args.name)
    except (KeyError, FileExistsError) as exc:
        raise CLIError(str(exc).strip("'\"")) from None
    print(out)
    return 0
