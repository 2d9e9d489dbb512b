#!/usr/bin/env bash
# Issue 14's GPU speed attempts, one device call: the ResNet-50 step (224 px,
# bf16) under each attempt, one process per attempt on the same card, the
# unchanged step first and last (drift check), then one table of img/s and
# the ratio to the unchanged step (benchmarks/attempts_table.py).
# An XLA flag this jaxlib does not know aborts that process only: its row
# says "failed" and the others run.
# Usage: bash benchmarks/gpu_speed_attempts.sh [OUT_DIR]
#        ONLY="base bn_bf16" bash benchmarks/gpu_speed_attempts.sh OUT   # a subset
#        BENCH_ARGS="--depth 18 --image_size 32 ..."  # appended: a CPU smoke run
# PYTHON (default python3) runs the benchmarks.
set -uo pipefail
out="${1:-${OUT:-/tmp}}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true

# name | XLA_FLAGS added | train_step_throughput flags
attempts=(
  "base||--batch_size 256"
  "bn_bf16||--batch_size 256 --bf16_norm_stats"
  "b512||--batch_size 512"
  "b512_bn_bf16||--batch_size 512 --bf16_norm_stats"
  "no_triton_gemm|--xla_gpu_enable_triton_gemm=false|--batch_size 256"
  "exhaustive_tiling|--xla_gpu_exhaustive_tiling_search=true|--batch_size 256"
  "no_command_buffer|--xla_gpu_enable_command_buffer=|--batch_size 256"
  "base_again||--batch_size 256"
)
for spec in "${attempts[@]}"; do
    IFS="|" read -r name flags args <<<"$spec"
    if [[ -n "${ONLY:-}" && " $ONLY " != *" $name "* ]]; then continue; fi
    echo "== $name: XLA_FLAGS+='$flags' $args"
    # shellcheck disable=SC2086  # $args and $BENCH_ARGS hold several flags
    XLA_FLAGS="${XLA_FLAGS:-} $flags" timeout -k 10 120 "${PYTHON:-python3}" -m benchmarks.train_step_throughput \
        --depth 50 --image_size 224 --dtype bfloat16 --steps 20 --no_reference --matmul 8192 \
        $args ${BENCH_ARGS:-} --json "$out/attempt_$name.json" 2>&1 | grep -v "Delay kernel timed out" \
        | tee "$out/attempt_$name.log"
done
"${PYTHON:-python3}" -m benchmarks.attempts_table "$out" | tee "$out/attempts.md"
