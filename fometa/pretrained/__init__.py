"""Trained models shipped with fometa, loaded by name.

``fometa models`` lists them; ``fometa eval NAME``, ``fometa predict NAME`` and
:class:`fometa.FewShotClassifier` (``FewShotClassifier(NAME)``) load them. A shipped model is a run's checkpoint
(meta-learned parameters *and* the inner optimizer's state, which evaluation and fine-tuning
start from) with an entry in a registry: a folder holding ``index.json`` and the checkpoint files.
The package's own registry is this folder (package data: an installation provides it);
``$FOMETA_MODELS`` may name more registry folders (separated by ``os.pathsep``), searched first.

``index.json``::

    {"format": "fometa-pretrained", "format_version": 1,
     "models": {"omniglot-5way": {
        "file": "omniglot-5way.h5",            # beside index.json
        "sha256": "...", "bytes": 1234567,     # of the file; null while it is not shipped yet
        "description": "...",
        "results": "docs/results/o5w1s-100k",  # where its numbers and training log are kept
        "preset": "omniglot-5way-1shot", "data": "omniglot", "ways": 5,
        "meta_iterations": 100000, "seconds": 6585.9,           # the training budget (its run's log)
        "accuracies": [{"split": "test", "shots": 1, "mode": "transductive",
                        "accuracy": 0.9756, "ci95": 0.0014, "tasks": 10000}, ...],
        "image_spec": {...}}}}                 # how a raw image becomes an input

``tools/ship_model.py RUN_DIR NAME --results docs/results/<run>`` adds a finished run. Every load
checks the file's SHA-256 against the entry before reading it (:func:`checkpoint_path`).
:func:`load_run` resolves what the commands accept as ``RUN``: a run folder, a checkpoint file or
a shipped model's name.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from fometa import checkpoint
from fometa.runfolder import RunFolder

__all__ = ["RegistryError", "ShippedModel", "FORMAT", "FORMAT_VERSION", "INDEX_FILE", "ENV", "registries",
           "read_index", "models", "get", "checkpoint_path", "load", "load_run", "file_sha256"]

FORMAT = "fometa-pretrained"
FORMAT_VERSION = 1
INDEX_FILE = "index.json"
#: environment variable naming more registry folders, searched before the package's
ENV = "FOMETA_MODELS"
PACKAGE_REGISTRY = Path(__file__).resolve().parent


class RegistryError(Exception):
    """An unknown model name, a shipped model whose file is missing or fails its SHA-256, or a broken index."""


@dataclass(frozen=True)
class ShippedModel:
    """One registry entry (see the module docstring); ``registry`` is the folder holding it."""

    name: str
    registry: Path
    file: str
    sha256: str | None
    bytes: int | None
    description: str
    entry: dict

    @property
    def path(self) -> Path:
        """Where its checkpoint file is (or will be)."""
        return self.registry / self.file

    @property
    def shipped(self) -> bool:
        """Whether its checkpoint has been added (the entry has its SHA-256)."""
        return self.sha256 is not None

    @property
    def available(self) -> bool:
        """Whether it can be loaded here: shipped, and its file present."""
        return self.shipped and self.path.is_file()

    def status(self) -> str:
        """``"available"``, or why it cannot be loaded: ``"not shipped yet"``, ``"file missing"``."""
        if not self.shipped:
            return "not shipped yet"
        return "available" if self.path.is_file() else "file missing"


def registries() -> list[Path]:
    """The registry folders, in search order: those of ``$FOMETA_MODELS``, then the package's."""
    extra = [Path(p) for p in os.environ.get(ENV, "").split(os.pathsep) if p]
    return extra + [PACKAGE_REGISTRY]


def read_index(folder) -> dict:
    """The ``index.json`` of registry ``folder`` (``{"models": {}}`` when it has none)."""
    path = Path(folder) / INDEX_FILE
    if not path.is_file():
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "models": {}}
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RegistryError(f"{path}: not a readable model index: {exc}") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT or not isinstance(index.get("models"), dict):
        raise RegistryError(f"{path}: not a fometa model index (format {FORMAT!r} with a 'models' table)")
    if index.get("format_version") != FORMAT_VERSION:
        raise RegistryError(f"{path}: model index version {index.get('format_version')!r} is not one this fometa "
                            f"reads (version {FORMAT_VERSION})")
    return index


def _model(name: str, folder: Path, entry) -> ShippedModel:
    where = folder / INDEX_FILE
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) or not entry["file"] \
            or Path(entry["file"]).name != entry["file"]:
        raise RegistryError(f"{where}: the entry of {name!r} needs a 'file' name (beside the index)")
    return ShippedModel(name, folder, entry["file"], entry.get("sha256"), entry.get("bytes"),
                        str(entry.get("description", "")), entry)


def models() -> list[ShippedModel]:
    """Every model of every registry (a name found in an earlier registry hides later ones)."""
    found: dict[str, ShippedModel] = {}
    for folder in registries():
        for name, entry in read_index(folder)["models"].items():
            if name not in found:
                found[name] = _model(name, folder, entry)
    return list(found.values())


def get(name: str) -> ShippedModel:
    """The shipped model called ``name``; :class:`RegistryError` naming the known ones otherwise."""
    for model in models():
        if model.name == name:
            return model
    known = ", ".join(m.name for m in models()) or "none"
    raise RegistryError(f"no shipped model named {name!r} (known: {known}; fometa models lists them)")


def file_sha256(path) -> str:
    """SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_path(name: str) -> Path:
    """The checkpoint file of shipped model ``name``, after checking its SHA-256 against the index.

    :class:`RegistryError` for an unknown name, a model whose checkpoint is not shipped yet or not
    installed, or a file that fails its SHA-256 (damaged or replaced).
    """
    model = get(name)
    if not model.shipped:
        raise RegistryError(f"the shipped model {name!r} has no checkpoint yet ({model.file} is still to be added "
                            "to the registry); fometa models lists those that can be loaded")
    if not model.path.is_file():
        raise RegistryError(f"the shipped model {name!r} is listed, but its checkpoint file {model.path} is missing "
                            "(a broken installation?)")
    actual = file_sha256(model.path)
    if actual != model.sha256:
        raise RegistryError(f"{model.path}: fails its SHA-256 check (expected {model.sha256}, found {actual}): "
                            "a damaged or replaced file; reinstall fometa")
    return model.path


def load(name: str) -> checkpoint.Checkpoint:
    """The checkpoint of shipped model ``name`` (SHA-256 checked); see :func:`checkpoint_path`."""
    return _load_shipped(name, checkpoint_path(name))


def _load_shipped(name: str, path: Path) -> checkpoint.Checkpoint:
    try:
        return checkpoint.load(path)
    except checkpoint.CheckpointError as exc:
        raise RegistryError(f"the shipped model {name!r}: {exc}") from None


def load_run(ref, names: bool = True) -> tuple[checkpoint.Checkpoint, Path, str]:
    """``(checkpoint, file, note)`` of ``ref``: a run folder (its latest usable checkpoint; ``note`` says
    when the latest was passed over for the previous one), a checkpoint file, or (``names``) the name
    of a shipped model.

    Raises :class:`~fometa.checkpoint.CheckpointError` for an unusable folder or file and
    :class:`RegistryError` for a name that is neither a path nor a shipped model.
    """
    path = Path(ref)
    if path.is_dir():
        folder = RunFolder(path)
        ckpt, note = folder.load_checkpoint()
        return ckpt, (folder.previous_checkpoint_path if note else folder.checkpoint_path), note
    if path.exists() or not names or _looks_like_a_path(str(ref)):
        return checkpoint.load(path), path, ""
    if str(ref) not in {m.name for m in models()}:
        known = ", ".join(m.name for m in models()) or "none"
        raise RegistryError(f"{ref}: no such run folder or checkpoint file, nor a shipped model of that name "
                            f"(known: {known}; fometa models lists them)")
    path = checkpoint_path(str(ref))
    return _load_shipped(str(ref), path), path, ""


def _looks_like_a_path(ref: str) -> bool:
    return os.sep in ref or (os.altsep is not None and os.altsep in ref) or ref.endswith(".h5")
