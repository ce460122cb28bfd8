#!/usr/bin/env bash
# The figures of the README's Speed section, in one run: writes JSON lines to ${OUT:-bench-speed}/.
#
# Usage: bash tools/bench_speed.sh            (PyTorch is needed for the comparison: pip install torch)
#        OLD_PYTHON=/path/to/old/venv/bin/python bash tools/bench_speed.sh   (adds before/after figures,
#        timing another fometa installation with the same scripts)
#
# Runs on an otherwise idle machine; every comparison alternates its two sides round by round.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench-speed}"
PY="${PYTHON:-python}"
mkdir -p "$OUT"
export OPENBLAS_NUM_THREADS=1  # fometa's --threads sets its own; PyTorch gets torch.set_num_threads

echo "== sgemm peak and the conv products (1 core)"
"$PY" tools/bench_sgemm.py --repeat 20 | tee "$OUT/sgemm.jsonl"

for threads in 1 2; do
    echo "== fometa vs PyTorch, Omniglot 5-way meta-iteration, $threads thread(s)"
    "$PY" tools/bench_torch.py --model omniglot --threads "$threads" --repeat 30 | tee -a "$OUT/torch.jsonl"
    echo "== fometa vs PyTorch, Mini-ImageNet 5-way meta-iteration, $threads thread(s)"
    "$PY" tools/bench_torch.py --model miniimagenet --threads "$threads" --repeat 8 | tee -a "$OUT/torch.jsonl"
done

for threads in 1 2; do
    echo "== fometa bench meta, $threads thread(s)"
    "$PY" -m fometa bench meta --json --threads "$threads" --repeat 10 \
        --preset omniglot-5way-1shot,omniglot-20way-1shot,sine | tee -a "$OUT/meta.jsonl"
    "$PY" -m fometa bench meta --json --threads "$threads" --repeat 3 --algorithm reptile,fomaml \
        --preset miniimagenet-5way-1shot | tee -a "$OUT/meta.jsonl"
    echo "== fometa bench eval, $threads thread(s)"
    "$PY" -m fometa bench eval --json --threads "$threads" --repeat 2 \
        --preset omniglot-5way-1shot,omniglot-5way-5shot,omniglot-20way-1shot | tee -a "$OUT/eval.jsonl"
    "$PY" -m fometa bench eval --json --threads "$threads" --repeat 1 --chunk 10 \
        --preset miniimagenet-5way-1shot | tee -a "$OUT/eval.jsonl"
done

if [ -n "${OLD_PYTHON:-}" ]; then
    echo "== before/after: evaluation (tools/bench_evaluate.py) and meta-iteration (tools/bench_meta.py)"
    for threads in 1 2; do
        for side in old new; do
            py="$PY"; [ "$side" = old ] && py="$OLD_PYTHON"
            # the old version threads through BLAS only; the new one through task blocks
            OPENBLAS_NUM_THREADS=$([ "$side" = old ] && echo "$threads" || echo 1) FOMETA_THREADS="$threads" \
                "$py" tools/bench_evaluate.py --tasks 200 --repeat 2 | sed "s/^{/{\"side\": \"$side\", \"threads\": $threads, /" \
                | tee -a "$OUT/before_after.jsonl"
            OPENBLAS_NUM_THREADS=$([ "$side" = old ] && echo "$threads" || echo 1) FOMETA_THREADS="$threads" \
                "$py" tools/bench_meta.py --model omniglot --repeat 20 | grep '"reptile"' \
                | sed "s/^{/{\"side\": \"$side\", \"threads\": $threads, /" | tee -a "$OUT/before_after.jsonl"
        done
    done
fi
