#!/usr/bin/env bash
# The figures of docs/performance.md (and the README's speed claims), in one run: JSON lines into
# ${OUT:-bench-speed}/. Every fometa bench figure carries its FLOP limit (the work counted from the
# network's shapes at the rate of a 2048 x 2048 sgemm measured in the same run) and its distance to it.
#
# Usage: bash tools/bench_speed.sh            (needs the fast extra for the compiled kernels and
#                                              PyTorch for the comparison: pip install torch)
#        OLD_PYTHON=/path/to/old/venv/bin/python bash tools/bench_speed.sh
#                                             (adds the previous fometa installation, timed with
#                                              the same commands right after the new one)
#
# Runs on an otherwise idle machine. Every comparison inside one process alternates its sides
# run by run (fometa on its compiled kernels, fometa on its NumPy code, PyTorch), so that a
# noisy machine slows them alike.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench-speed}"
PY="${PYTHON:-python}"
mkdir -p "$OUT"
export OPENBLAS_NUM_THREADS=1  # fometa's --threads sets its own; PyTorch gets torch.set_num_threads

echo "== sgemm peak and the conv products (1 core)"
"$PY" tools/bench_sgemm.py --repeat 20 | tee "$OUT/sgemm.jsonl"
"$PY" tools/bench_sgemm.py --repeat 20 --blocks --alternatives | tee "$OUT/sgemm-blocks.jsonl"

echo "== first-run compile time of the compiled kernels (cold cache, then cached)"
"$PY" tools/bench_compile.py --repeat 1 --float32-only | tee "$OUT/compile.jsonl"

for threads in 1 2; do
    echo "== fometa (compiled, NumPy) vs PyTorch, Omniglot 5-way meta-iteration, $threads thread(s)"
    "$PY" tools/bench_torch.py --model omniglot --threads "$threads" --repeat 30 --kernels numba,numpy \
        | tee -a "$OUT/torch.jsonl"
    echo "== fometa (compiled, NumPy) vs PyTorch, Mini-ImageNet 5-way meta-iteration, $threads thread(s)"
    "$PY" tools/bench_torch.py --model miniimagenet --threads "$threads" --repeat 7 --warmup 1 \
        --kernels numba,numpy \
        | tee -a "$OUT/torch.jsonl"
done

for threads in 1 2; do
    echo "== fometa bench meta against the FLOP limit, $threads thread(s)"
    "$PY" -m fometa bench meta --json --threads "$threads" --repeat 10 --algorithm reptile --mode batched \
        --preset omniglot-5way-1shot,omniglot-20way-1shot | tee -a "$OUT/meta.jsonl"
    "$PY" -m fometa bench meta --json --threads "$threads" --repeat 7 --algorithm reptile --mode batched \
        --conv winograd,im2col --preset miniimagenet-5way-1shot | tee -a "$OUT/meta.jsonl"
    echo "== fometa bench eval, $threads thread(s)"
    "$PY" -m fometa bench eval --json --threads "$threads" --repeat 2 --preset omniglot-5way-1shot \
        | tee -a "$OUT/eval.jsonl"
    "$PY" -m fometa bench eval --json --threads "$threads" --repeat 3 --chunk 10 --conv winograd,im2col \
        --preset miniimagenet-5way-1shot | tee -a "$OUT/eval.jsonl"
    echo "== peak memory of a Mini-ImageNet meta-iteration, $threads thread(s)"
    "$PY" tools/bench_memory.py --threads "$threads" | tee -a "$OUT/memory.jsonl"
done

if [ -n "${OLD_PYTHON:-}" ]; then
    echo "== the previous installation, same commands (run outside the repository, which would shadow it)"
    here="$(pwd)"
    old() { (cd "${TMPDIR:-/tmp}" && "$OLD_PYTHON" "$@"); }
    for threads in 1 2; do
        old -m fometa bench meta --json --threads "$threads" --repeat 10 --algorithm reptile \
            --mode batched --preset omniglot-5way-1shot,omniglot-20way-1shot \
            | sed 's/^{/{"side": "previous", /' | tee -a "$OUT/previous.jsonl"
        old -m fometa bench meta --json --threads "$threads" --repeat 7 --algorithm reptile \
            --mode batched --preset miniimagenet-5way-1shot \
            | sed 's/^{/{"side": "previous", /' | tee -a "$OUT/previous.jsonl"
        old -m fometa bench eval --json --threads "$threads" --repeat 2 \
            --preset omniglot-5way-1shot | sed 's/^{/{"side": "previous", /' \
            | tee -a "$OUT/previous.jsonl"
        old -m fometa bench eval --json --threads "$threads" --repeat 3 --chunk 10 \
            --preset miniimagenet-5way-1shot | sed 's/^{/{"side": "previous", /' | tee -a "$OUT/previous.jsonl"
        old "$here/tools/bench_memory.py" --threads "$threads" | sed 's/^{/{"side": "previous", /' \
            | tee -a "$OUT/previous.jsonl"
    done
fi

echo "== the tables of docs/performance.md"
"$PY" tools/speed_table.py "$OUT" | tee "$OUT/tables.md"
