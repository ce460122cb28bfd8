"""Read-only views of a folder, a ``.zip`` or a ``.tar``/``.tar.gz`` as one file tree.

Packers read archives in place (nothing is extracted to disk). A :class:`FileTree` lists its
regular files as sorted POSIX paths relative to its root and reads them as bytes, and lists its
folders (empty ones too, where the archive records them). Hidden entries (a path part starting
with ``.``) and ``__MACOSX/`` resource forks are skipped; a tar's leading ``./`` is dropped.
Every read failure becomes a one-line :class:`~fometa.data._io.DataError`.
"""
from __future__ import annotations

import os
import tarfile
import zipfile
import zlib
from pathlib import Path

from fometa.data._io import DataError, sha256_file, sha256_tree

__all__ = ["FileTree", "open_tree"]

_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
# what a truncated or corrupt archive raises while being read
_TEXT_SUFFIXES = (".csv", ".txt", ".json")
_TEXT_MAX = 16 << 20
_ARCHIVE_ERRORS = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError, ValueError)


def _member_name(name: str) -> str:
    """An archive member's path without leading ``./`` (``tar -C folder .`` writes those)."""
    while name.startswith("./"):
        name = name[2:]
    return name


def _skipped(name: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in name.split("/"))


class FileTree:
    """Files of a folder or archive: ``names`` (sorted), ``read(name)``, ``iter_read(names)``.

    ``kind`` is ``"folder"``, ``"zip"`` or ``"tar"``; ``path`` the folder or archive; ``display(name)``
    the path shown in errors (``<archive>/<member>``); ``dirs`` the sorted folder paths (no trailing
    ``/``): those holding files, and empty ones that the folder or archive records.
    """

    def __init__(self, path: Path, kind: str, names: list[str], dirs=()):
        self.path = Path(path)
        self.kind = kind
        self.names = names
        parents = {name.rsplit("/", 1)[0] for name in names if "/" in name}
        dirs = {d.rstrip("/") for d in dirs if d.rstrip("/") and not _skipped(d.rstrip("/"))} | parents
        self.dirs = sorted({"/".join(d.split("/")[:i]) for d in dirs for i in range(1, d.count("/") + 2)})

    def display(self, name: str = "") -> str:
        return str(self.path / name) if name else str(self.path)

    def read(self, name: str) -> bytes:
        raise NotImplementedError

    def iter_read(self, names):
        """Yield ``(name, bytes)`` for each of ``names`` in the order cheapest for the storage
        (archive order for tars, so a compressed tar is decompressed once)."""
        for name in names:
            yield name, self.read(name)

    def checksum(self) -> str:
        """SHA-256 of the archive file, or :func:`~fometa.data._io.sha256_tree` of a folder."""
        if self.kind == "folder":
            return sha256_tree(self.path, self.names)
        return sha256_file(self.path)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Folder(FileTree):
    def __init__(self, path: Path):
        names, dirs = [], []
        for dirpath, dirnames, filenames in os.walk(path, onerror=None):
            dirnames.sort()
            rel = Path(dirpath).relative_to(path).as_posix()
            if rel != ".":
                dirs.append(rel)
            for f in sorted(filenames):
                name = f if rel == "." else f"{rel}/{f}"
                if not _skipped(name) and os.path.isfile(os.path.join(dirpath, f)):
                    names.append(name)
        super().__init__(path, "folder", sorted(names), dirs)

    def read(self, name: str) -> bytes:
        try:
            return (self.path / name).read_bytes()
        except OSError as exc:
            raise DataError(self.display(name), f"cannot read: {exc.strerror or exc}") from None


class _Zip(FileTree):
    def __init__(self, path: Path):
        try:
            self._zip = zipfile.ZipFile(path)
            infos = self._zip.infolist()
        except _ARCHIVE_ERRORS as exc:
            raise DataError(path, f"not a readable zip archive (truncated or corrupt?): {exc}") from None
        names = sorted(i.filename for i in infos if not i.is_dir() and not _skipped(i.filename))
        super().__init__(path, "zip", names, [i.filename for i in infos if i.is_dir()])

    def read(self, name: str) -> bytes:
        try:
            return self._zip.read(name)
        except _ARCHIVE_ERRORS as exc:
            raise DataError(self.display(name), f"cannot read from archive (truncated or corrupt?): {exc}") from None

    def close(self) -> None:
        self._zip.close()


class _Tar(FileTree):
    """A tar, possibly compressed. Listing decompresses the stream once; ``iter_read`` streams it
    again in archive order, so memory holds one member at a time whatever the compression."""

    def __init__(self, path: Path):
        names, dirs = [], []
        self._text: dict[str, bytes] = {}
        try:
            with tarfile.open(path, "r|*") as tf:
                while (member := tf.next()) is not None:
                    # a stream keeps every TarInfo otherwise (TarFile.members: not in the type stubs)
                    tf.members.clear()  # type: ignore[attr-defined]
                    name = _member_name(member.name)
                    if member.isdir():
                        dirs.append(name)
                    if member.isfile() and not _skipped(name):
                        names.append(name)
                        if name.lower().endswith(_TEXT_SUFFIXES) and member.size <= _TEXT_MAX:
                            # index files (csv) are kept so reading them needs no second pass
                            reader = tf.extractfile(member)
                            assert reader is not None  # a regular file's member
                            self._text[name] = reader.read()
        except _ARCHIVE_ERRORS as exc:
            raise DataError(path, f"not a readable tar archive (truncated or corrupt?): {exc}") from None
        if len(set(names)) != len(names):
            raise DataError(path, "tar archive holds the same file name twice")
        super().__init__(path, "tar", sorted(names), dirs)

    def read(self, name: str) -> bytes:
        if name in self._text:
            return self._text[name]
        for _, data in self.iter_read([name]):
            return data
        raise DataError(self.display(name), "not in archive")

    def iter_read(self, names):
        wanted = set(names)
        current = str(self.path)
        try:
            with tarfile.open(self.path, "r|*") as tf:
                while (member := tf.next()) is not None:
                    tf.members.clear()  # type: ignore[attr-defined]  # as above
                    name = _member_name(member.name)
                    if name in wanted and member.isfile():
                        current = self.display(name)
                        f = tf.extractfile(member)
                        assert f is not None  # a regular file's member
                        data = f.read()
                        if len(data) != member.size:
                            raise EOFError("unexpected end of data")
                        wanted.discard(name)
                        yield name, data
                        if not wanted:
                            return
        except _ARCHIVE_ERRORS as exc:
            raise DataError(current, f"cannot read from archive (truncated or corrupt?): {exc}") from None
        if wanted:
            raise DataError(self.path, f"archive changed while reading: {sorted(wanted)[0]} missing")


def open_tree(path) -> FileTree:
    """Open a folder, ``.zip`` or tar (``.tar``, ``.tar.gz``, ``.tgz``, ...) read-only."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "no such file or folder")
    if path.is_dir():
        return _Folder(path)
    lower = path.name.lower()
    if lower.endswith(".zip"):
        return _Zip(path)
    if lower.endswith(_TAR_SUFFIXES):
        return _Tar(path)
    if zipfile.is_zipfile(path):
        return _Zip(path)
    raise DataError(path, "not a folder, .zip or .tar/.tar.gz archive")
