#!/usr/bin/env bash
# The figures of docs/performance.md (and the README's speed claims), in one run: JSON lines into
# ${OUT:-bench-speed}/. Every fometa bench figure carries its FLOP limit (the work counted from the
# network's shapes at the rate of a 2048 x 2048 sgemm measured in the same run) and its distance to it.
#
# Usage: bash tools/bench_speed.sh            (needs the fast extra for the compiled kernels and
#                                              PyTorch for the comparison: pip install torch)
#        OLD_PYTHON=/path/to/old/venv/bin/python bash tools/bench_speed.sh
#                                             (adds the previous fometa installation, timed with
#                                              the same commands, each right after the new one's)
#
# Runs on an otherwise idle machine. Every comparison inside one process alternates its sides
# run by run (fometa on its compiled kernels, fometa on its NumPy code, PyTorch), so that a
# noisy machine slows them alike.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench-speed}"
PY="${PYTHON:-python}"
mkdir -p "$OUT"
rm -f "$OUT"/*.jsonl "$OUT"/tables.md  # one run's figures, never mixed with an earlier run's
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

# this installation and (with OLD_PYTHON) the previous one take turns command by command, so that a change
# in the machine's load falls on both
here="$(pwd)"
old() { (cd "${TMPDIR:-/tmp}" && "$OLD_PYTHON" "$@") | sed 's/^{/{"side": "previous", /' | tee -a "$OUT/previous.jsonl"; }
for threads in 1 2; do
    echo "== meta-iterations against the FLOP limit, $threads thread(s)"
    for preset in omniglot-5way-1shot omniglot-20way-1shot miniimagenet-5way-1shot; do
        repeat=$([ "$preset" = miniimagenet-5way-1shot ] && echo 7 || echo 30)
        conv=$([ "$preset" = miniimagenet-5way-1shot ] && echo "--conv winograd,im2col" || echo "")
        # shellcheck disable=SC2086
        "$PY" -m fometa bench meta --json --threads "$threads" --repeat "$repeat" --algorithm reptile \
            --mode batched $conv --preset "$preset" | tee -a "$OUT/meta.jsonl"
        if [ -n "${OLD_PYTHON:-}" ]; then
            old -m fometa bench meta --json --threads "$threads" --repeat "$repeat" --algorithm reptile \
                --mode batched --preset "$preset"
        fi
    done
    echo "== evaluation, $threads thread(s)"
    "$PY" -m fometa bench eval --json --threads "$threads" --repeat 3 --preset omniglot-5way-1shot \
        | tee -a "$OUT/eval.jsonl"
    [ -n "${OLD_PYTHON:-}" ] && old -m fometa bench eval --json --threads "$threads" --repeat 3 \
        --preset omniglot-5way-1shot
    "$PY" -m fometa bench eval --json --threads "$threads" --repeat 3 --chunk 10 --conv winograd,im2col \
        --preset miniimagenet-5way-1shot | tee -a "$OUT/eval.jsonl"
    [ -n "${OLD_PYTHON:-}" ] && old -m fometa bench eval --json --threads "$threads" --repeat 3 --chunk 10 \
        --preset miniimagenet-5way-1shot
    echo "== peak memory of a Mini-ImageNet meta-iteration, $threads thread(s)"
    "$PY" tools/bench_memory.py --threads "$threads" | tee -a "$OUT/memory.jsonl"
    [ -n "${OLD_PYTHON:-}" ] && old "$here/tools/bench_memory.py" --threads "$threads"
done

echo "== where a meta-iteration's time goes (1 thread, compiled kernels)"
for model in omniglot omniglot-20way miniimagenet; do
    "$PY" tools/bench_profile.py --model "$model" --kernels numba --repeat 10 | tee -a "$OUT/profile.jsonl"
done

echo "== the tables of docs/performance.md"
"$PY" tools/speed_table.py "$OUT" | tee "$OUT/tables.md"
