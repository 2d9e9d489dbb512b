#!/usr/bin/env bash
# The GPU benchmark suite, one call: train-step throughput and MFU.
# Runs where JAX sees a GPU; needs no TensorFlow (model code only).
# Usage: bash benchmarks/gpu_suite.sh [OUT_DIR] [extra train_step_throughput flags]
set -uo pipefail
out="${1:-${OUT:-/tmp}}"
shift || true
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv || true
python3 -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())"
python3 -m benchmarks.train_step_throughput --depth 50 --image_size 224 --batch_size 256 \
    --dtype bfloat16 --steps 20 --jft_head --json "$out/train_step_bf16.json" "$@" 2>&1 \
    | grep -v "Delay kernel timed out" | tee "$out/train_step_bf16.log"
