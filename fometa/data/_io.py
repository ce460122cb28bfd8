"""Helpers shared by the packers and readers: the one user-facing error, atomic output files,
a plain-text progress bar, SHA-256 checksums and checked downloads.

Nothing here imports h5py or Pillow; those load inside the functions that need them.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from fometa.atomic import atomic_path
from fometa.progress import ProgressBar
from fometa.signals import Terminated, terminate_interrupts

__all__ = [
    "DataError", "run_pack", "atomic_output", "Progress", "sha256_file", "sha256_tree", "array_sha256",
    "verify_sha256", "download", "is_url", "open_image", "KNOWN_SHA256", "dumps",
]

# SHA-256 of the official archives (github.com/brendenlake/omniglot, python/*.zip).
KNOWN_SHA256 = {
    "images_background.zip": "8957c4242dbed119ab7b9695bcb98ddd65e008a000742e201db6a7d95a8ac7ba",
    "images_evaluation.zip": "e018389b68a6b5a8dcaa8e07ab2f94755828953e63ec8398a49159bfb233f250",
}

_CHUNK = 1 << 20


class DataError(Exception):
    """A problem with a user's data file: ``str(exc)`` is the one-line ``'<file>: <problem>'``.

    ``exc.file`` and ``exc.problem`` hold the two parts. Tools print ``error: <str(exc)>`` and
    exit non-zero, without a traceback.
    """

    def __init__(self, file, problem: str):
        self.file = str(file)
        self.problem = " ".join(str(problem).split())  # always one line
        super().__init__(f"{self.file}: {self.problem}")


def run_pack(pack, quiet: bool) -> int:
    """A packing script's exit status: ``pack(progress=...)`` writes the file and returns its path;
    a :class:`DataError` is printed as ``error: ...`` (status 1), never as a traceback."""
    try:
        out = pack(progress=not quiet)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the temporary file is gone already
        print("terminated" if isinstance(exc, Terminated) else "interrupted", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    if not quiet:
        print(f"wrote {out}", file=sys.stderr)
    return 0


def dumps(obj) -> str:
    """Canonical JSON (sorted keys, no spaces) for attributes: equal inputs give equal strings."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


@contextlib.contextmanager
def atomic_output(out, force: bool = False):
    """Yield a temporary path beside ``out``; on success rename it to ``out``, else delete it.

    The temporary name is ``<out>.tmp<pid>-<random>`` (ignored by git as ``*.h5.tmp*``), in the same
    folder so that the final ``os.replace`` is atomic: ``out`` is either absent, its old
    version, or complete, never partial. The temporary file is removed on any error, on Ctrl-C
    and on SIGTERM; one left by a pack killed outright is removed by the next pack of ``out``
    (:func:`fometa.atomic.remove_stale`). Raises :class:`DataError` if ``out`` exists and
    ``force`` is false, or is a folder.
    """
    out = Path(out)
    if out.is_dir():
        raise DataError(out, "output path is a folder")
    if out.exists() and not force:
        raise DataError(out, "output file exists (use --force to overwrite)")
    with contextlib.ExitStack() as stack:  # renames on success, removes the temporary file on any error
        stack.enter_context(terminate_interrupts())  # SIGTERM too: as Ctrl-C, it leaves no temporary file
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = stack.enter_context(atomic_path(out))
        except OSError as exc:
            raise DataError(out, f"cannot create output: {exc.strerror or exc}") from None
        yield tmp


class Progress:
    """A :class:`fometa.progress.ProgressBar` counting by increments, for packing and download loops.

    ``Progress(total, label)``; ``update(n)`` advances by ``n``; ``close()`` ends the line.
    """

    def __init__(self, total: int, label: str, enabled: bool = True, stream=None):
        self.bar = ProgressBar(max(int(total), 0), label=label, unit="items", stream=stream, enabled=enabled)

    def update(self, n: int = 1) -> None:
        """Advance by ``n`` items (the last one is always drawn)."""
        self.bar.update(advance=n, force=self.bar.count + n >= self.bar.total)

    def close(self) -> None:
        """End the line."""
        self.bar.close()


def sha256_file(path, progress: Progress | None = None) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
                if progress is not None:
                    progress.update(len(chunk))
    except OSError as exc:
        raise DataError(path, f"cannot read: {exc.strerror or exc}") from None
    return h.hexdigest()


def sha256_tree(root, names) -> str:
    """SHA-256 of an extracted folder: of the lines ``<sha256 of file>  <relative path>\\n`` over
    ``names`` sorted (the format of ``sha256sum``), so it names both contents and layout."""
    h = hashlib.sha256()
    for name in sorted(names):
        h.update(f"{sha256_file(Path(root) / name)}  {name}\n".encode())
    return h.hexdigest()


def array_sha256(arr) -> str:
    """SHA-256 of an array as stored: C-order little-endian bytes for numbers; for strings, the
    canonical JSON list of the flattened values (UTF-8)."""
    arr = np.asarray(arr)
    if arr.dtype.kind in "OUS":
        values = [v.decode() if isinstance(v, bytes) else str(v) for v in arr.ravel().tolist()]
        return hashlib.sha256(dumps(values).encode()).hexdigest()
    return hashlib.sha256(np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()).hexdigest()


def verify_sha256(path, expected: str) -> str:
    """Return the file's SHA-256; raise :class:`DataError` if it differs from ``expected``."""
    actual = sha256_file(path)
    if actual != expected.lower():
        raise DataError(path, f"checksum mismatch: SHA-256 is {actual}, expected {expected.lower()}")
    return actual


def open_image(data: bytes, where: str, load: bool = True):
    """Decode image bytes with Pillow (fully loaded, or only the header with ``load=False``);
    :class:`DataError` naming ``where`` if unreadable."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
        if load:
            img.load()
    except UnidentifiedImageError:
        raise DataError(where, "not a readable image (format not recognized)") from None
    except Image.DecompressionBombError as exc:
        raise DataError(where, f"image too large: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DataError(where, f"not a readable image: {exc}") from None
    return img


def is_url(source) -> bool:
    return isinstance(source, str) and source.split("://", 1)[0].lower() in ("http", "https", "ftp", "file")


def download(url: str, dest_dir, sha256: str | None = None, progress: bool = True) -> Path:
    """Download ``url`` into ``dest_dir`` (kept under its own file name) and return the path.

    The expected SHA-256 is ``sha256`` or, for the official archives, :data:`KNOWN_SHA256`;
    a mismatch raises :class:`DataError` and leaves nothing behind. A file already present with
    the expected checksum is reused. Without a known checksum the computed one is printed.
    """
    import urllib.error
    import urllib.parse
    import urllib.request

    name = Path(urllib.parse.urlparse(url).path).name
    if not name:
        raise DataError(url, "URL names no file")
    expected = (sha256 or KNOWN_SHA256.get(name) or "").lower() or None
    dest = Path(dest_dir) / name
    if dest.is_file() and expected is not None and sha256_file(dest) == expected:
        return dest
    with atomic_output(dest, force=True) as tmp:
        h = hashlib.sha256()
        try:
            with urllib.request.urlopen(url) as response, open(tmp, "wb") as f:
                total = int(response.headers.get("Content-Length") or 0)
                bar = Progress(total, f"download {name}", enabled=progress)
                while chunk := response.read(_CHUNK):
                    f.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
                bar.close()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
            raise DataError(url, f"download failed: {reason}") from None
        actual = h.hexdigest()
        if expected is not None and actual != expected:
            raise DataError(url, f"checksum mismatch: SHA-256 is {actual}, expected {expected}")
        if expected is None and progress:
            print(f"{name}: SHA-256 {actual} (no known checksum to compare with)", file=sys.stderr)
    return dest
