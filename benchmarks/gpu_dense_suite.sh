#!/usr/bin/env bash
# The transfer-task rows of the GPU benchmarks, one call: DeepLab-ASPP-L at 513 px
# and Faster R-CNN at 1024 px, each beside classification at the same size in
# the same process, with MFU. Separate from gpu_suite.sh because both compile
# for minutes; each gets its own timeout so a slow one costs one row.
# Usage: bash benchmarks/gpu_dense_suite.sh [OUT_DIR]   (SEG_S, DET_S: timeouts)
set -uo pipefail
out="${1:-${OUT:-/tmp}}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv || true
timeout -k 10 "${SEG_S:-300}" python3 -m benchmarks.segmentation_step --depth 101 \
    --image_size 513 --batch_size 8 --steps 5 --dtype bfloat16 --mfu \
    --json "$out/seg_step_gpu.json" 2>&1 | tee "$out/seg_step_gpu.log"
echo "segmentation rows: status ${PIPESTATUS[0]}"
timeout -k 10 "${DET_S:-280}" python3 -m benchmarks.detection_step --depth 101 \
    --image_size 1024 --batch_size 8 --steps 5 --dtype bfloat16 --mfu \
    --json "$out/det_step_gpu.json" 2>&1 | tee "$out/det_step_gpu.log"
echo "detection rows: status ${PIPESTATUS[0]}"
