"""How long the compiled kernels (the fast extra) take before their first use, cold and cached.

Usage: python tools/bench_compile.py [--repeat N] [--float32-only]

numba compiles each kernel on its first call and keeps the machine code on disk (``cache=True``),
so only the first process after an install (or an upgrade of numba or of the kernels) pays the
compile; later processes load the cache. Each measurement runs in a fresh process:
``cold`` with an empty cache folder (``NUMBA_CACHE_DIR`` pointing at a new temporary folder),
``cached`` with the cache the cold run left there. Both time importing the kernels and running
:func:`fometa.backends.numba_kernels.warm_up` for float32 (what training uses) and for
float32 and float64 together. Prints one JSON object per measurement.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CODE = """
import time, numpy as np
start = time.perf_counter()
from fometa.backends import numba_kernels
numba_kernels.warm_up({dtypes})
print(time.perf_counter() - start)
"""


def timed(cache: str, dtypes: str) -> float:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    out = subprocess.run([sys.executable, "-c", CODE.format(dtypes=dtypes)], env=env, capture_output=True, text=True,
                         check=True)
    return float(out.stdout.split()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--float32-only", action="store_true", help="skip the float32+float64 measurement")
    args = ap.parse_args(argv)
    cases = (("float32", "(np.float32,)"), ("float32+float64", "(np.float32, np.float64)"))
    for name, dtypes in cases[:1] if args.float32_only else cases:
        cold, cached = [], []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as cache:
                cold.append(timed(cache, dtypes))
                cached.append(timed(cache, dtypes))
        for kind, ts in (("cold", cold), ("cached", cached)):
            print(json.dumps({"what": "compile", "dtypes": name, "cache": kind, "median_s": sorted(ts)[len(ts) // 2],
                              "min_s": min(ts), "max_s": max(ts), "repeat": args.repeat}), flush=True)


if __name__ == "__main__":
    main()
