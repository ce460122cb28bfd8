"""A repository file that is no installed module (a script of ``tools/``, the docs' hook, a helper of another
test folder), loaded by its path: the test folders are not packages. Imported by name (pytest puts ``tests/``,
the folder of its ``conftest.py``, on ``sys.path``)."""
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_module(relative: str, name: str):
    """The module in ``REPO / relative``, executed afresh under ``name``."""
    spec = importlib.util.spec_from_file_location(name, REPO / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
