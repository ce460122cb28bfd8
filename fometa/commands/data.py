"""``fometa data``: pack Omniglot, Mini-ImageNet or any image folder into HDF5, and inspect packed files.

``fometa data omniglot [--source PATH_OR_URL ...] [--out datasets/omniglot.h5]`` packs the two
official Omniglot zips. Each source is a local zip or folder, or a URL: a URL ending in ``/`` names
a folder holding ``images_background.zip`` and ``images_evaluation.zip``, any other URL one file.
Without ``--source`` the official archives are downloaded from github.com/brendenlake/omniglot.
Downloads go to ``--download-dir`` (default ``datasets/downloads``), show a progress bar and are
checked against the known SHA-256 of the official files (or ``--sha256``). A failed download (offline,
say) leaves nothing behind and its error names the files to give with ``--source`` instead. Packing
stops cleanly on Ctrl-C and SIGTERM alike, leaving no temporary file; one left by a pack killed outright
is removed by the next pack of the same output.

``fometa data miniimagenet --source PATH_OR_URL [--out datasets/miniimagenet.h5]`` packs a folder,
zip or tar of Mini-ImageNet (there is no official download; a URL is fetched as one file).

``fometa data folder --source PATH_OR_URL --out FILE.h5`` packs any folder, zip or tar of
``<class>/<image>`` or ``{train,val,test}/<class>/<image>`` (``fometa/data/pack_folder.py``).

``fometa data info FILE [--verify]`` prints what a packed file holds as JSON: its attributes,
split sizes, example shape, the :class:`~fometa.data.ImageSpec` for new inputs and every
dataset's shape and SHA-256. ``--verify`` recomputes those: a damaged file is reported, not refused, as
``"verified": false`` with the datasets that fail (``"damaged"``: the stored and the recomputed
checksum, or why a dataset cannot be read), one line on stderr and exit status 1.
"""
from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

from fometa.commands.options import CLIError
from fometa.data import DataError, describe_packed, pack_folder, pack_miniimagenet, pack_omniglot
from fometa.data._io import download, is_url
from fometa.data.schema import describe_findings

OMNIGLOT_URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/"
OMNIGLOT_FILES = ("images_background.zip", "images_evaluation.zip")
DOWNLOAD_DIR = "datasets/downloads"
#: what to do without a connection (a failed download's error says it)
OMNIGLOT_OFFLINE = ("to pack local copies instead (from github.com/brendenlake/omniglot, folder python/), give them "
                    f"with --source {' '.join(OMNIGLOT_FILES)}")


def add_arguments(p):
    sub = p.add_subparsers(dest="data_command", metavar="DATASET")
    sub.required = True
    o = sub.add_parser("omniglot", help="pack Omniglot (both official zips) into HDF5")
    o.add_argument("--source", nargs="+", default=[OMNIGLOT_URL], metavar="PATH_OR_URL",
                   help="images_background.zip and images_evaluation.zip (or their folders, or a folder holding "
                        f"them), or URLs (default: download from {OMNIGLOT_URL})")
    o.add_argument("--out", default="datasets/omniglot.h5", help="output file (default datasets/omniglot.h5)")
    _add_download_arguments(o)
    pack_omniglot.add_arguments(o)

    m = sub.add_parser("miniimagenet", help="pack Mini-ImageNet (folder, zip or tar) into HDF5")
    m.add_argument("--source", required=True, metavar="PATH_OR_URL", help="folder, .zip, .tar/.tar.gz or URL")
    m.add_argument("--out", default="datasets/miniimagenet.h5",
                   help="output file (default datasets/miniimagenet.h5)")
    _add_download_arguments(m)
    pack_miniimagenet.add_arguments(m)

    d = sub.add_parser("folder", help="pack any image folder (<class>/<image>, or split folders) into HDF5",
                       description="Pack a folder, .zip or .tar/.tar.gz of <class>/<image> or "
                                   "{train,val,test}/<class>/<image> into HDF5.")
    d.add_argument("--source", required=True, metavar="PATH_OR_URL", help="folder, .zip, .tar/.tar.gz or URL")
    d.add_argument("--out", required=True, help="output file, e.g. datasets/mydata.h5")
    _add_download_arguments(d)
    pack_folder.add_arguments(d)

    i = sub.add_parser("info", help="print what a packed file holds")
    i.add_argument("file", help="a packed .h5 file")
    i.add_argument("--verify", action="store_true",
                   help="recompute and check every dataset's SHA-256; a damaged file is reported (\"verified\": false, "
                        "what is \"damaged\") with exit status 1")


def _add_download_arguments(p):
    p.add_argument("--download-dir", default=DOWNLOAD_DIR, help=f"where downloads go (default {DOWNLOAD_DIR})")
    p.add_argument("--sha256", default=None, help="expected SHA-256 of a downloaded file (one URL only)")


def fetch_sources(sources, download_dir, sha256=None, progress=True, folder_files=(), offline=None):
    """Local paths for ``sources``: paths unchanged, URLs downloaded (a URL ending in ``/`` is a
    folder from which each of ``folder_files`` is fetched).

    A failed download leaves no partial file and removes the folders it made for it; its error says how
    to do without the network: ``offline``, or by default to give a local copy with ``--source``."""
    urls = []
    for source in sources:
        if is_url(source):
            urls.extend([source + name for name in folder_files] if source.endswith("/") else [source])
    if sha256 is not None and len(urls) != 1:
        raise CLIError(f"--sha256 needs exactly one URL source, got {len(urls)}")
    made = _missing_folders(Path(download_dir)) if urls else []
    out = []
    try:
        for source in sources:
            if not is_url(source):
                out.append(source)
                continue
            for url in ([source + name for name in folder_files] if source.endswith("/") else [source]):
                out.append(str(download(url, download_dir, sha256=sha256, progress=progress)))
    except DataError as exc:
        for folder in made:  # deepest first; those still empty (a download that did finish is kept)
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise CLIError(f"{exc}; {offline or 'to pack a local copy instead, give it with --source PATH'}") from None
    return out


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those above it that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def run(args) -> int:
    try:
        if args.data_command == "info":
            return _info(args)
        progress = not args.quiet
        if args.data_command == "omniglot":
            sources = fetch_sources(args.source, args.download_dir, args.sha256, progress, OMNIGLOT_FILES,
                                    offline=OMNIGLOT_OFFLINE)
            out = pack_omniglot.pack_omniglot(sources, args.out, pack_omniglot.config_from_args(args),
                                              force=args.force, progress=progress)
        elif args.data_command == "folder":
            config = pack_folder.config_from_args(args)
            (source,) = fetch_sources([args.source], args.download_dir, args.sha256, progress)
            out = pack_folder.pack_folder(source, args.out, config, force=args.force, progress=progress)
        else:
            (source,) = fetch_sources([args.source], args.download_dir, args.sha256, progress)
            out = pack_miniimagenet.pack_miniimagenet(source, args.out, pack_miniimagenet.config_from_args(args),
                                                      force=args.force, progress=progress)
    except DataError as exc:
        raise CLIError(str(exc)) from None
    if progress:
        print(f"wrote {out}", file=sys.stderr)
    return 0


def _info(args) -> int:
    info = describe_packed(args.file, verify=args.verify)
    print(json.dumps(info, indent=1, sort_keys=True), flush=True)
    if info.get("damaged"):  # a finding, not a failure to run: the report above, one line here, status 1
        print(f"fometa data info: {args.file}: {describe_findings(info['damaged'])}", file=sys.stderr)
        return 1
    return 0
