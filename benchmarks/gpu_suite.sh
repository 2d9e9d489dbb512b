#!/usr/bin/env bash
# The GPU benchmark suite, one call: train-step throughput and MFU of the JAX
# step, then a PyTorch baseline (torchvision ResNets, eager and torch.compile)
# on the same card, then one table of both.
# Runs where JAX sees a GPU; needs no TensorFlow (model code only); the torch
# part is skipped, with a note, where torch or torchvision is missing.
# Usage: bash benchmarks/gpu_suite.sh [OUT_DIR] [extra train_step_throughput flags]
# SUITE_BUDGET_S (default 480) bounds the whole suite: each torch run gets a
# timeout that fits in what is left, so a hung compile costs one row, not the suite.
set -uo pipefail
out="${1:-${OUT:-/tmp}}"
shift || true
mkdir -p "$out"
export PYTHONUNBUFFERED=1
budget="${SUITE_BUDGET_S:-480}"
SECONDS=0
jax_json="$out/train_step_bf16.json"
torch_json="$out/torch_baseline.json"
rm -f "$torch_json"  # rows from an earlier suite run would pass for this one's

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv || true
python3 -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())"
# JAX and torch run as separate processes, one after the other, so neither
# holds GPU memory while the other runs (JAX keeps its usual preallocation,
# which the earlier JAX figures were measured with).
python3 -m benchmarks.train_step_throughput --depth 50 --image_size 224 --batch_size 256 \
    --dtype bfloat16 --steps 20 --jft_head --json "$jax_json" "$@" 2>&1 \
    | grep -v "Delay kernel timed out" | tee "$out/train_step_bf16.log"
echo "JAX part done after ${SECONDS} s"

if python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, torch.cuda.get_device_name())"; then
    matmul=()  # the first torch process measures torch's matmul peak, the rest skip it
    for run in r50_eager r50_compile r101_eager r101_compile; do
        case "$run" in *_compile) cap=210 ;; *) cap=90 ;; esac
        left=$((budget - SECONDS - 15))  # 15 s kept for the table
        limit=$((left < cap ? left : cap))
        if ((limit < 30)); then
            reason="the suite's ${budget} s budget was spent"
            echo "torch $run: skipped, $reason"
            python3 -m benchmarks.torch_baseline --runs "$run" --note "skipped: $reason" \
                --json "$torch_json"
            continue
        fi
        echo "torch $run: timeout ${limit} s (suite at ${SECONDS} s)"
        timeout -k 10 "$limit" python3 -m benchmarks.torch_baseline --runs "$run" \
            --batch_size 256 --steps 20 --warmup 3 ${matmul[@]+"${matmul[@]}"} \
            --jax_json "$jax_json" --json "$torch_json" 2>&1 | tee -a "$out/torch_baseline.log"
        rc=${PIPESTATUS[0]}
        if ((rc == 124 || rc == 137)); then
            echo "torch $run: timed out after ${limit} s"
            python3 -m benchmarks.torch_baseline --runs "$run" --json "$torch_json" \
                --note "timed out after ${limit} s (suite budget ${budget} s)"
        elif ((rc != 0)); then
            echo "torch $run: exited with status $rc"
        fi
        matmul=(--matmul 0)
    done
else
    echo "torch, torchvision or a CUDA device missing: no PyTorch baseline"
fi

echo
echo "=== JAX vs PyTorch, global batch 256, bf16 (suite took ${SECONDS} s) ==="
python3 -m benchmarks.torch_baseline --table --jax_json "$jax_json" --json "$torch_json" \
    | tee "$out/combined_table.txt"
