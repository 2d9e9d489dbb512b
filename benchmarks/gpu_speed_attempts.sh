#!/usr/bin/env bash
# Issue 14's GPU speed attempts, one device call, one process per attempt on
# the same card, most important first so a short lease still gives a table.
# The first call (BENCHMARKS.md) measured the base step, its profile, the
# space-to-depth stem (kept) and three dropped changes; this order spends the
# next lease on what is still unmeasured and on the targets:
#   1. ResNet-50 (224 px, bf16, batch 256) as the project runs it (the
#      space-to-depth stem is its default on GPUs), then the max pool's gather
#      gradient (models/speed_ops.py);
#   2. the winners (>= 1% faster) at batch 512 and 1024;
#   3. ResNet-101 299 px + 18,291-way sigmoid head with the winners at batch
#      512, and the torch.compile'd torchvision ResNet-50, the in-run baseline;
#   4. while time is left: XLA flags on ResNet-50 (convolutions forced to
#      NCHW, matmuls without Triton, GEMM fusions through cuDNN, no CUDA
#      graphs), the ResNet-101 step as is at batch 256 and its torch.compile
#      baseline, the plain 7x7 stem, the unchanged step again (drift), and
#      the RPN's NMS by tiles against the box-by-box loop.
# The profiler trace (benchmarks/trace_top_ops.py) is on for a step only when
# TRACE=1 (the first call's trace is in benchmarks/results/h200_attempts/).
# Then one table (benchmarks/attempts_table.py) and the torch table.
# ATTEMPTS_BUDGET_S (default 540) bounds the whole: each step's timeout fits
# in what is left, and a step that cannot fit is skipped and says so.
# Usage: bash benchmarks/gpu_speed_attempts.sh [OUT_DIR]
#        ONLY="base torch_r101_compile" ...   # run only these steps
#        BENCH_ARGS="--depth 18 --image_size 32 ..."  # appended: a CPU smoke run
# PYTHON (default python3) runs the benchmarks.
set -uo pipefail
out="${1:-${OUT:-/tmp}}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
py="${PYTHON:-python3}"
budget="${ATTEMPTS_BUDGET_S:-540}"
SECONDS=0
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv \
    2>/dev/null || true
# Autotuning results (convolution algorithms, GEMM tilings) on disk, shared by
# the attempts: most compile the same ResNet-50 convolutions, and autotuning
# them is much of each compile. Only where this jaxlib knows the flag (an
# unknown XLA flag aborts the process).
cache_dir="${AUTOTUNE_CACHE:-/tmp/bvl_autotune_cache}"
mkdir -p "$cache_dir"
cache_flag="--xla_gpu_per_fusion_autotune_cache_dir=$cache_dir"
if env XLA_FLAGS="$(echo "${XLA_FLAGS:-} $cache_flag" | xargs)" "$py" -c "import jax; jax.devices()" &>/dev/null; then
    export XLA_FLAGS="$(echo "${XLA_FLAGS:-} $cache_flag" | xargs)"
    echo "== autotuning results shared through $cache_dir"
fi

# fits CAP: prints the timeout for a step of at most CAP seconds, or nothing
fits() {
    local left=$((budget - SECONDS - 10))
    local limit=$((left < $1 ? left : $1))
    ((limit >= 30)) && echo "$limit"
}

# attempt NAME CAP "XLA flags" train_step_throughput args...
attempt() {
    local name=$1 cap=$2 flags=$3 limit
    shift 3
    if [[ -n "${ONLY:-}" && " $ONLY " != *" $name "* ]]; then return; fi
    if ! limit=$(fits "$cap"); then
        echo "== $name: skipped, the ${budget} s budget is spent (at ${SECONDS} s)"
        return
    fi
    echo "== $name (at ${SECONDS} s, timeout ${limit} s): XLA_FLAGS+='$flags' $*"
    # An XLA_FLAGS of blanks alone is read as a file name: leave it unset then.
    local xla_flags
    xla_flags=$(echo "${XLA_FLAGS:-} $flags" | xargs)
    # shellcheck disable=SC2086  # $BENCH_ARGS holds several flags
    env ${xla_flags:+XLA_FLAGS="$xla_flags"} timeout -k 10 "$limit" "$py" -m benchmarks.train_step_throughput \
        --image_size 224 --dtype bfloat16 --steps 30 --no_reference --matmul 8192 \
        "$@" ${BENCH_ARGS:-} --json "$out/attempt_$name.json" 2>&1 \
        | grep -v "Delay kernel timed out" | tee "$out/attempt_$name.log"
}

# torch_run RUN CAP JAX_JSON: torch_baseline's run, its row merged into torch_baseline.json
torch_run() {
    local run=$1 cap=$2 limit
    if [[ -n "${ONLY:-}" && " $ONLY " != *" torch_$run "* ]]; then return; fi
    if ! "$py" -c "import torch, torchvision" 2>/dev/null; then
        echo "== torch $run: torch or torchvision missing"; return
    fi
    if ! limit=$(fits "$cap"); then
        echo "== torch $run: skipped, the ${budget} s budget is spent (at ${SECONDS} s)"
        "$py" -m benchmarks.torch_baseline --runs "$run" --json "$out/torch_baseline.json" \
            --note "skipped: the attempts' ${budget} s budget was spent"
        return
    fi
    echo "== torch $run (at ${SECONDS} s, timeout ${limit} s)"
    timeout -k 10 "$limit" "$py" -m benchmarks.torch_baseline --runs "$run" --batch_size 256 \
        --steps 20 --warmup 3 --matmul 0 --jax_json "$3" --json "$out/torch_baseline.json" 2>&1 \
        | tee -a "$out/torch_baseline.log"
    local rc=${PIPESTATUS[0]}
    if ((rc == 124 || rc == 137)); then
        "$py" -m benchmarks.torch_baseline --runs "$run" --json "$out/torch_baseline.json" \
            --note "timed out after ${limit} s"
    fi
}

r50=(--depth 50 --batch_size 256)
trace=()
[[ "${TRACE:-0}" == 1 ]] && trace=(--profile_dir "$out/profile")
attempt base 80 "" "${r50[@]}" ${trace[@]+"${trace[@]}"}
attempt maxpool_gather 80 "" "${r50[@]}" --no_flops --max_pool_gather_grad
read -r -a won <<<"$("$py" -m benchmarks.attempts_table "$out" --winners)"
echo "== winners: ${won[*]:-none}"
attempt combined_b512 90 "" --depth 50 --batch_size 512 --no_flops ${won[@]+"${won[@]}"}
attempt combined_b1024 100 "" --depth 50 --batch_size 1024 --no_flops ${won[@]+"${won[@]}"}
attempt jft_combined_b512 160 "" --batch_size 512 --only_jft ${won[@]+"${won[@]}"}
torch_run r50_compile 120 "$out/attempt_base.json"
attempt xla_conv_nchw 70 "--xla_gpu_force_conv_nchw=true" "${r50[@]}" --no_flops \
    ${won[@]+"${won[@]}"}
attempt xla_no_triton_gemm 70 "--xla_gpu_enable_triton_gemm=false" "${r50[@]}" --no_flops \
    ${won[@]+"${won[@]}"}
attempt xla_cudnn_gemm_fusion 70 "--xla_gpu_cudnn_gemm_fusion_level=3" "${r50[@]}" --no_flops \
    ${won[@]+"${won[@]}"}
attempt xla_no_command_buffer 70 "--xla_gpu_enable_command_buffer=" "${r50[@]}" --no_flops \
    ${won[@]+"${won[@]}"}
attempt jft_base 150 "" --batch_size 256 --only_jft
torch_run r101_compile 150 "$out/attempt_jft_base.json"
attempt plain_stem 80 "" "${r50[@]}" --no_flops --plain_stem
attempt base_again 70 "" "${r50[@]}" --no_flops
# The RPN's NMS by tiles against the box-by-box loop (Faster R-CNN's 6,000
# boxes x 8 images): seconds, so it goes last, while any time is left.
if [[ -z "${ONLY:-}" || " $ONLY " == *" nms "* ]] && limit=$(fits 40); then
    echo "== nms (at ${SECONDS} s, timeout ${limit} s)"
    timeout -k 10 "$limit" "$py" -m benchmarks.nms_speed --boxes 6000 --batch 8 \
        --json "$out/nms_speed.json" 2>&1 | tee "$out/nms_speed.log"
fi

echo "== tables (at ${SECONDS} s)"
"$py" -m benchmarks.attempts_table "$out" | tee "$out/attempts.md"
if [[ -f "$out/torch_baseline.json" ]]; then
    "$py" -m benchmarks.torch_baseline --table --jax_json "$out/attempt_base.json" \
        --json "$out/torch_baseline.json" | tee "$out/torch_table.txt"
fi
