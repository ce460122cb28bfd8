"""Packed data sets (HDF5) read as class-indexed splits for the task sampler.

Packing (once, offline; see ``datasets/README.md`` for the file schema)::

    python tools/pack_omniglot.py --out datasets/omniglot.h5 images_background.zip images_evaluation.zip
    python tools/pack_miniimagenet.py --out datasets/miniimagenet.h5 miniimagenet.tar.gz
    fometa data omniglot --source PATH_OR_URL      # the same, with downloads

or from Python: ``fometa.data.pack_omniglot.pack_omniglot(sources, out)`` and
``fometa.data.pack_miniimagenet.pack_miniimagenet(source, out)``.

Loading::

    splits = fometa.data.load_omniglot("datasets/omniglot.h5")        # {"train", "test"}
    splits = fometa.data.load_miniimagenet("datasets/miniimagenet.h5")  # {"train", "val", "test"}

The split interface (:class:`ClassSplit`) that samplers consume:

* ``len(split)``: number of classes ``C`` (classes are ``0 .. C-1``);
* ``split.num_examples(c)``: examples in class ``c``;
* ``split.get(c, indices)``: float32 ``(len(indices), *split.example_shape)`` in [0, 1];
* ``split.example_shape``: ``(28, 28)`` for Omniglot, ``(84, 84, 3)`` for Mini-ImageNet;
* ``split.names``: one name per class.

Anything with these members works; :func:`as_class_split` also turns a plain mapping
``{name: array (n, *shape)}``, a list of such arrays, or an array ``(C, n, *shape)`` into a split.

Errors in user data (missing, truncated or malformed inputs, wrong schema) raise
:class:`DataError`, whose message is the one line ``'<file>: <problem>'``.

Importing this package loads neither h5py nor Pillow; they load inside the functions that use them.
"""
from fometa.data._io import DataError
from fometa.data.miniimagenet import MiniImageNetSplit, load_miniimagenet
from fometa.data.omniglot import load_omniglot, omniglot_paper_split
from fometa.data import pack_miniimagenet, pack_omniglot  # modules: pack_*.pack_*() and main(argv)
from fometa.data.pack_miniimagenet import MiniImageNetPackConfig
from fometa.data.pack_omniglot import OmniglotPackConfig
from fometa.data.schema import SCHEMA_VERSION, PackedInfo, inspect_packed, open_packed, verify_packed
from fometa.data.splits import ArraySplit, ClassSplit, OmniglotSplit, as_class_split

__all__ = [
    "DataError", "ClassSplit", "ArraySplit", "OmniglotSplit", "MiniImageNetSplit", "as_class_split",
    "load_omniglot", "load_miniimagenet", "load_packed", "omniglot_paper_split",
    "pack_omniglot", "pack_miniimagenet", "OmniglotPackConfig", "MiniImageNetPackConfig",
    "open_packed", "inspect_packed", "verify_packed", "PackedInfo", "SCHEMA_VERSION",
]


def load_packed(path, **kwargs) -> dict:
    """Splits of any packed file: :func:`load_omniglot` or :func:`load_miniimagenet` by its kind."""
    kind = inspect_packed(path).kind
    return (load_omniglot if kind == "omniglot" else load_miniimagenet)(path, **kwargs)
