"""Helpers shared by the packers and readers: the one user-facing error, atomic output files,
a plain-text progress bar, SHA-256 checksums and checked downloads.

Nothing here imports h5py or Pillow; those load inside the functions that need them.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import time
from pathlib import Path

from fometa.atomic import atomic_path

__all__ = [
    "DataError", "atomic_output", "Progress", "sha256_file", "sha256_tree", "array_sha256",
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


def dumps(obj) -> str:
    """Canonical JSON (sorted keys, no spaces) for attributes: equal inputs give equal strings."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


@contextlib.contextmanager
def atomic_output(out, force: bool = False):
    """Yield a temporary path beside ``out``; on success rename it to ``out``, else delete it.

    The temporary name is ``<out>.tmp<random>`` (ignored by git as ``*.h5.tmp*``), in the same
    folder so that the final ``os.replace`` is atomic: ``out`` is either absent, its old
    version, or complete, never partial. Raises :class:`DataError` if ``out`` exists and
    ``force`` is false, or is a folder.
    """
    out = Path(out)
    if out.is_dir():
        raise DataError(out, "output path is a folder")
    if out.exists() and not force:
        raise DataError(out, "output file exists (use --force to overwrite)")
    with contextlib.ExitStack() as stack:  # renames on success, removes the temporary file on any error
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = stack.enter_context(atomic_path(out))
        except OSError as exc:
            raise DataError(out, f"cannot create output: {exc.strerror or exc}") from None
        yield tmp


class Progress:
    """A plain-text progress bar on stderr: ``label [#####.....] 512/1000  51%  3.2 s``.

    On a terminal the line is redrawn in place (at most 10 times a second); otherwise one line
    is printed per 10% so logs stay short. ``enabled=False`` prints nothing.
    """

    def __init__(self, total: int, label: str, enabled: bool = True, stream=None, width: int = 30):
        self.total = max(int(total), 0)
        self.label = label
        self.enabled = enabled
        self.stream = sys.stderr if stream is None else stream
        self.width = width
        self.count = 0
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._last_decile = -1
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def _line(self) -> str:
        frac = self.count / self.total if self.total else 1.0
        filled = int(round(frac * self.width))
        elapsed = time.perf_counter() - self.start
        return (f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] "
                f"{self.count}/{self.total} {100 * frac:5.1f}% {elapsed:6.1f} s")

    def update(self, n: int = 1) -> None:
        self.count += n
        if not self.enabled:
            return
        if self._tty:
            now = time.perf_counter()
            if now - self._last_draw >= 0.1 or self.count >= self.total:
                self._last_draw = now
                self.stream.write("\r" + self._line())
                self.stream.flush()
        else:
            decile = (10 * self.count // self.total) if self.total else 10
            if decile != self._last_decile:
                self._last_decile = decile
                self.stream.write(self._line() + "\n")
                self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._tty:
            self.stream.write("\r" + self._line() + "\n")
            self.stream.flush()


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
    import numpy as np

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


def open_image(data: bytes, where: str):
    """Decode image bytes with Pillow (fully loaded); :class:`DataError` naming ``where`` if unreadable."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except UnidentifiedImageError:
        raise DataError(where, "not a readable image (format not recognized)") from None
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
