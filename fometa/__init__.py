"""fometa: first-order meta-learning (Reptile, FOMAML) on hand-written, task-batched layers.

Importing fometa needs only NumPy; h5py, CuPy, matplotlib and Pillow load where used.
"""
__version__ = "0.1.0"  # first: modules imported below may read it

from fometa import layers, models, tree  # noqa: E402 - after __version__, which they read
from fometa.backends import Backend, BackendError, get_backend  # noqa: E402 - after __version__, which they read

__all__ = ["Backend", "BackendError", "FewShotClassifier", "get_backend", "layers", "models", "tree", "__version__"]


def __getattr__(name):
    # fometa.FewShotClassifier loads on first use (it brings the training and data modules with it)
    if name == "FewShotClassifier":
        from fometa.fewshot import FewShotClassifier

        return FewShotClassifier
    raise AttributeError(f"module 'fometa' has no attribute {name!r}")
