#!/usr/bin/env bash
# Issue 14's first attempt on a lent GPU: the ResNet-50 step (224 px, bf16)
# at global batches 128, 256 and 512 on one device, one process each, so the
# per-device batch that feeds the card best is measured in one run.
# Usage: bash benchmarks/gpu_batch_sweep.sh [OUT_DIR]
set -uo pipefail
out="${1:-${OUT:-/tmp}}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
for batch in 256 512 128; do
    timeout -k 10 100 python3 -m benchmarks.train_step_throughput --depth 50 --image_size 224 \
        --batch_size "$batch" --dtype bfloat16 --steps 20 --no_reference \
        --json "$out/r50_batch$batch.json" 2>&1 | grep -v "Delay kernel timed out" \
        | tee "$out/r50_batch$batch.log"
done
