#!/usr/bin/env bash
# GPU check for a machine with CuPy and a GPU, which installs nothing (a minute or two).
#
#   bash tools/gpu_check.sh          # PYTHON=... to pick the interpreter (default python3)
#
# 1. puts the repository first on PYTHONPATH, so that its fometa/ imports without pip;
# 2. prints the GPU's name (nvidia-smi);
# 3. runs the GPU tests: python3 -m pytest -q -m gpu tests/ (HYPOTHESIS_PROFILE=dev);
# 4. benchmarks forward+backward on NumPy and on CuPy (fometa bench --tasks 1 5 --batch 10).
#
# Where CuPy or a GPU is missing, the GPU tests skip with the reason and the CuPy benchmark
# prints why it did not run; the script then exits 0. It exits non-zero if the tests fail or
# a benchmark that could run fails.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
status=0

export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
export HYPOTHESIS_PROFILE=dev
cd "$REPO" || exit 1

echo "== GPU"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "nvidia-smi failed"
else
    echo "nvidia-smi not found: no NVIDIA driver on this machine"
fi

echo "== fometa (from the repository, not installed)"
if ! "$PY" -c 'import fometa, fometa.backends as b, numpy; print("fometa", fometa.__version__, "from", fometa.__file__); print("fometa.backends from", b.__file__); print("numpy", numpy.__version__)'; then
    echo "FAILED: cannot import fometa from the repository"
    exit 1
fi

echo "== GPU tests: pytest -q -m gpu tests/"
"$PY" -m pytest -q -rs -p no:cacheprovider -m gpu tests/
rc=$?
if [ "$rc" -ne 0 ]; then
    echo "FAILED: GPU tests (pytest exit status $rc)"
    status=1
fi

echo "== bench --backend numpy"
if ! "$PY" -m fometa bench --json --tasks 1 5 --batch 10 --backend numpy; then
    echo "FAILED: numpy benchmark"
    status=1
fi

echo "== bench --backend cupy"
why="$("$PY" - <<'EOF'
import importlib.util

if importlib.util.find_spec("cupy") is None:
    print("CuPy not installed")
else:
    from fometa import BackendError, get_backend

    try:
        get_backend("cupy")
    except BackendError as exc:
        print(exc)
EOF
)"
if [ -n "$why" ]; then
    echo "cupy bench skipped: $why"
elif ! "$PY" -m fometa bench --json --tasks 1 5 --batch 10 --backend cupy; then
    echo "FAILED: cupy benchmark"
    status=1
fi

if [ "$status" -eq 0 ]; then echo "== gpu_check: OK"; else echo "== gpu_check: FAILED"; fi
exit "$status"
