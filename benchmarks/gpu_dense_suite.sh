#!/usr/bin/env bash
# The transfer-task rows of the GPU benchmarks: DeepLab-ASPP-L at 513 px
# and Faster R-CNN at 1024 px, each beside classification at the same size in
# the same process, with MFU. Separate from gpu_suite.sh because both compile
# for minutes; each gets its own timeout so a slow one costs one row.
# On a fresh H200 the segmentation part needs ~400 s (three compiles) and the
# detection part ~280 s: under a 600 s limit per call, run them as two calls
# (PARTS=seg, then PARTS=det).
# PARTS=nms times the RPN's NMS (6,000 boxes x 8 images) by tiles against the
# box-by-box loop (benchmarks/nms_speed.py, seconds).
# Usage: [PARTS="seg det"] bash benchmarks/gpu_dense_suite.sh [OUT_DIR]
#        (SEG_S, DET_S: timeouts)
set -uo pipefail
out="${1:-${OUT:-/tmp}}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv || true
parts="${PARTS:-seg det}"
if [[ " $parts " == *" seg "* ]]; then
timeout -k 10 "${SEG_S:-420}" python3 -m benchmarks.segmentation_step --depth 101 \
    --image_size 513 --batch_size 8 --steps 5 --dtype bfloat16 --mfu \
    --json "$out/seg_step_gpu.json" 2>&1 | tee "$out/seg_step_gpu.log"
echo "segmentation rows: status ${PIPESTATUS[0]}"
fi
if [[ " $parts " == *" det "* ]]; then
timeout -k 10 "${DET_S:-280}" python3 -m benchmarks.detection_step --depth 101 \
    --image_size 1024 --batch_size 8 --steps 5 --dtype bfloat16 --mfu \
    --json "$out/det_step_gpu.json" 2>&1 | tee "$out/det_step_gpu.log"
echo "detection rows: status ${PIPESTATUS[0]}"
fi
if [[ " $parts " == *" nms "* ]]; then
timeout -k 10 "${NMS_S:-120}" python3 -m benchmarks.nms_speed --boxes 6000 --batch 8 \
    --json "$out/nms_speed_gpu.json" 2>&1 | tee "$out/nms_speed_gpu.log"
echo "nms rows: status ${PIPESTATUS[0]}"
fi
