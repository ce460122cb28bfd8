"""fometa: first-order meta-learning (Reptile, FOMAML) on hand-written, task-batched layers.

Importing fometa needs only NumPy; h5py, CuPy, matplotlib and Pillow load where used.
"""
from fometa import layers, models, tree
from fometa.backends import Backend, BackendError, get_backend

__version__ = "0.1.0"
__all__ = ["Backend", "BackendError", "get_backend", "layers", "models", "tree", "__version__"]
