"""Packed data sets (HDF5) read as class-indexed splits for the task sampler.

Packing (once, offline; see ``datasets/README.md`` for the file schema)::

    python tools/pack_omniglot.py --out datasets/omniglot.h5 images_background.zip images_evaluation.zip
    python tools/pack_miniimagenet.py --out datasets/miniimagenet.h5 miniimagenet.tar.gz
    fometa data omniglot --source PATH_OR_URL      # the same, with downloads
    fometa data folder --source path/to/images --out datasets/mydata.h5   # any <class>/<image> folder

or from Python: ``fometa.data.pack_omniglot.pack_omniglot(sources, out)``,
``fometa.data.pack_miniimagenet.pack_miniimagenet(source, out)``,
``fometa.data.pack_folder.pack_folder(source, out)`` and :func:`pack_arrays` (``{class: array}``).

Loading::

    splits = fometa.data.load_omniglot("datasets/omniglot.h5")        # {"train", "test"}
    splits = fometa.data.load_miniimagenet("datasets/miniimagenet.h5")  # {"train", "val", "test"}
    splits = fometa.data.load_packed("datasets/mydata.h5")            # any kind: the splits it holds

How raw images become inputs like a file's examples (for new images, fine-tuning, predicting)::

    spec = fometa.data.ImageSpec.for_packed("datasets/omniglot.h5")
    x = spec.prepare(["path/to/drawing.png"])                         # float32 (1, 28, 28)

The split interface (:class:`ClassSplit`) that samplers consume:

* ``len(split)``: number of classes ``C`` (classes are ``0 .. C-1``);
* ``split.num_examples(c)``: examples in class ``c``;
* ``split.get(c, indices)``: float32 ``(len(indices), *split.example_shape)`` in [0, 1];
* ``split.example_shape``: ``(28, 28)`` for Omniglot, ``(84, 84, 3)`` for Mini-ImageNet, ``(H, W)``
  or ``(H, W, 3)`` for a folder;
* ``split.names``: one name per class.

Anything with these members works; :func:`as_class_split` also turns a plain mapping
``{name: array (n, *shape)}``, a list of such arrays, or an array ``(C, n, *shape)`` into a split.

Errors in user data (missing, truncated or malformed inputs, wrong schema, a damaged file) raise
:class:`DataError`, whose message is the one line ``'<file>: <problem>'``; :func:`check_packed` lists what
is damaged in a packed file, dataset by dataset.

Importing this package loads neither h5py nor Pillow; they load inside the functions that use them.
"""
from collections.abc import Callable

from fometa.data import pack_folder, pack_miniimagenet, pack_omniglot  # modules: pack_*.pack_*() and main(argv)
from fometa.data._io import DataError
from fometa.data.describe import describe_packed
from fometa.data.folder import FolderSplit, load_folder
from fometa.data.images import ImageSpec
from fometa.data.miniimagenet import MiniImageNetSplit, load_miniimagenet
from fometa.data.omniglot import load_omniglot, omniglot_paper_split
from fometa.data.pack_folder import FolderPackConfig, pack_arrays
from fometa.data.pack_miniimagenet import MiniImageNetPackConfig
from fometa.data.pack_omniglot import OmniglotPackConfig
from fometa.data.schema import SCHEMA_VERSION, PackedInfo, check_packed, inspect_packed, open_packed, verify_packed
from fometa.data.splits import ArraySplit, ClassSplit, OmniglotSplit, as_class_split

__all__ = [
    "DataError", "ClassSplit", "ArraySplit", "OmniglotSplit", "MiniImageNetSplit", "FolderSplit", "as_class_split",
    "load_omniglot", "load_miniimagenet", "load_folder", "load_packed", "omniglot_paper_split",
    "pack_omniglot", "pack_miniimagenet", "pack_folder", "pack_arrays",
    "OmniglotPackConfig", "MiniImageNetPackConfig", "FolderPackConfig", "ImageSpec",
    "open_packed", "inspect_packed", "verify_packed", "check_packed", "describe_packed", "PackedInfo", "SCHEMA_VERSION",
]

_LOADERS: dict[str, Callable[..., dict]] = {"omniglot": load_omniglot, "miniimagenet": load_miniimagenet,
                                             "folder": load_folder}


def load_packed(path, **kwargs) -> dict:
    """Splits of any packed file, by its kind: :func:`load_omniglot` (``{"train", "test"}``),
    :func:`load_miniimagenet` or :func:`load_folder` (the splits the file holds); ``kwargs`` go
    to that loader."""
    return _LOADERS[inspect_packed(path).kind](path, **kwargs)
