"""Packaging: ``import fometa`` stays light, the repository's helper folders are never
importable as top-level modules, and ``fometa.backends`` is the package's own ``fometa/backends/``."""
import json
import subprocess
import sys
from pathlib import Path

import fometa.backends

REPO = Path(__file__).resolve().parents[1]
OPTIONAL = ("h5py", "cupy", "matplotlib", "PIL", "mpi4py", "sklearn", "joblib")


def _python(code, cwd):
    """Run ``code`` in a fresh interpreter (this environment's) with ``cwd`` as its directory,
    so that the repository root is not on sys.path; return its JSON output."""
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, f"subprocess failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_fometa_loads_no_optional_dependency(tmp_path):
    loaded = _python(
        "import json, sys, fometa, fometa.layers, fometa.models, fometa.tree, fometa.gradcheck, fometa.cli, "
        "fometa.distributed; "
        f"print(json.dumps(sorted(m for m in {OPTIONAL!r} if m in sys.modules)))",
        tmp_path,
    )
    assert loaded == [], f"import fometa pulled in optional dependencies: {loaded}"


def test_the_few_shot_classifier_loads_no_scikit_learn(tmp_path):
    loaded = _python(
        "import json, sys, pickle, fometa.fewshot as f; c = f.FewShotClassifier(); c.set_params(steps=3); "
        "pickle.loads(pickle.dumps(c)); "
        "print(json.dumps(sorted(m for m in ('sklearn', 'joblib') if m in sys.modules)))",
        tmp_path,
    )
    assert loaded == [], f"fometa.fewshot pulled in {loaded}"


def test_no_top_level_helper_modules(tmp_path):
    found = _python(
        "import importlib.util, json; "
        "print(json.dumps({n: importlib.util.find_spec(n) is not None for n in ('backends', 'datasets', 'tools')}))",
        tmp_path,
    )
    assert found == {"backends": False, "datasets": False, "tools": False}, (
        f"importable as top-level modules from outside the repository: {[n for n, v in found.items() if v]}"
    )


def test_fometa_backends_is_the_package_folder(tmp_path):
    where = _python(
        "import fometa, fometa.backends, fometa.backends.kernels as k, json; "
        "print(json.dumps([fometa.__file__, fometa.backends.__file__, k.__file__]))",
        tmp_path,
    )
    assert Path(where[0]).resolve() == REPO / "fometa" / "__init__.py", f"fometa comes from {where[0]}"
    assert Path(where[1]).resolve() == REPO / "fometa" / "backends" / "__init__.py", \
        f"fometa.backends comes from {where[1]}"
    assert Path(where[2]).resolve() == REPO / "fometa" / "backends" / "kernels.py", \
        f"fometa.backends.kernels from {where[2]}"
    assert Path(fometa.backends.__file__).resolve() == REPO / "fometa" / "backends" / "__init__.py", (
        f"in the test process, fometa.backends comes from {fometa.backends.__file__}"
    )
