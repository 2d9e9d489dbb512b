"""The benchmark scripts run end to end (tiny settings) and print their ratio."""

import json
import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from big_vision_like import checkpointing


def run(args, timeout=600):
    out = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                         timeout=timeout, cwd=".")
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
def test_input_pipeline_benchmark(tmp_path):
    out = run(["benchmarks.input_pipeline_throughput", "--images", "64",
               "--data_dir", str(tmp_path)])
    rates = {name: float(line.split()[-1]) for line in out.splitlines()
             for name in ("tf.data pipeline", "plain PIL loop") if line.startswith(name)}
    ratio = float(out.split("ratio pipeline / PIL:")[1].split()[0])
    assert math.isclose(ratio, rates["tf.data pipeline"] / rates["plain PIL loop"],
                        abs_tol=0.006)
    assert "(64 JPEGs, 340x340)" in out


@pytest.mark.slow
def test_photo_pipeline_benchmark(tmp_path):
    """The real-photo benchmark end to end on 14 photos: every row measured, the
    ratios and cores-per-accelerator consistent with the rates it reports."""
    out_json = tmp_path / "photos.json"
    rates = tmp_path / "rates.json"  # the accelerator's step rate is an input
    rates.write_text(json.dumps({"runs": [{"name": "R50", "img_per_s": 5000.0},
                                          {"name": "no rate"}]}))
    out = run(["benchmarks.photo_pipeline_throughput", "--images", "14", "--batch", "7",
               "--repeats", "1", "--quality_images", "4", "--data_dir", str(tmp_path),
               "--json", str(out_json), "--step_rates", str(rates)])
    res = json.loads(out_json.read_text())
    rows = {(r["recipe"], r["method"], r["shortcut"]): r for r in res["rows"]}
    methods = ("tf.data (project)", "PIL", "OpenCV")
    assert set(rows) == {*((rec, m, False) for rec in ("paper", "inception") for m in methods),
                         *(("paper", m, True) for m in methods),
                         ("inception", "tf.data (project)", True)}
    for (recipe, method, shortcut), r in rows.items():
        rate = r["img_per_s_per_core"]
        assert rate > 0 and r["img_per_s_wall"] > 0
        assert math.isclose(r["vs_PIL"] * rows[recipe, "PIL", False]["img_per_s_per_core"],
                            rate, rel_tol=1e-9)
        assert r["cores_per_accelerator"].keys() == {"R50"}
        assert math.isclose(r["cores_per_accelerator"]["R50"] * rate, 5000.0, rel_tol=1e-9)
        assert (f"{recipe:<10} {method:<18} {'yes' if shortcut else 'no':<9} "
                f"{rate:>10.1f}") in out
    assert res["photos"]["images"] == 14 and 0.5 < res["photos"]["mean_megapixels"] < 1.0
    quality = res["dct_shortcut_difference"]
    assert quality["images"] == 4 and 0 < quality["mean_abs"] < 3


@pytest.mark.slow
def test_train_step_benchmark():
    out = run(["benchmarks.train_step_throughput", "--depth", "18", "--image_size", "32",
               "--batch_size", "8", "--steps", "1", "--matmul", "128", "--dtype", "float32"])
    row = [line for line in out.splitlines() if line.startswith("ResNet-18 32px")][-1]
    img_s, ms, mfu, ref, ratio = row.split()[-5:]
    # The columns agree with each other: 8 images per step, the ratio of the rates.
    assert math.isclose(float(img_s) * float(ms) / 1000, 8, rel_tol=0.05)
    assert math.isclose(float(ratio), float(img_s) / float(ref), rel_tol=0.05)
    assert 0 < float(mfu.rstrip("%")) < 100


# ---- the PyTorch baseline and the GPU suite (torch is optional: CI has none)

JAX_RESULTS = {  # the shape of train_step_throughput's JSON (an H200 run)
    "device": "NVIDIA H200", "devices": 1, "dtype": "bfloat16", "peak_matmul_tflops": 800.0,
    "runs": [{"name": "ResNet-50 224px softmax 1000", "img_per_s": 6400.0, "step_ms": 40.0,
              "tflops_per_step": 6.4, "mfu_vs_measured_peak": 0.2,
              "reference_img_per_s": 6553.6, "ratio_framework_over_reference": 0.977},
             {"name": "ResNet-101 299px sigmoid 18291 (JFT)", "img_per_s": 2560.0,
              "step_ms": 100.0, "tflops_per_step": 20.0, "mfu_vs_measured_peak": 0.25}]}
TORCH_RESULTS = {
    "device": "NVIDIA H200",
    "runs": [{"id": "r50_eager", "status": "ok", "img_per_s": 4000.0, "step_ms": 64.0,
              "tflops_per_step": 6.4, "mfu": 0.125},
             {"id": "r50_compile", "status": "ok", "img_per_s": 5120.0, "step_ms": 50.0,
              "tflops_per_step": 6.4, "mfu": 0.16},
             {"id": "r101_eager", "status": "failed: OutOfMemoryError: CUDA out of memory"},
             {"id": "r101_compile", "status": "running"}]}


def test_nms_speed_benchmark_checks_tiles_against_the_box_by_box_loop(tmp_path):
    out = tmp_path / "nms.json"
    run(["benchmarks.nms_speed", "--boxes", "200", "--batch", "2", "--keep", "50",
         "--tile", "32", "--repeats", "1", "--json", str(out)])
    result = json.loads(out.read_text())  # written only after the indices matched
    assert result["tile"] == 32 and result["boxes"] == 200
    assert 0 < result["kept_per_image"] <= 50
    assert result["tiled_ms"] > 0 and result["speedup"] > 0
    # 7 tiles of 29 boxes, each one step plus at least one pass.
    assert 14 <= result["dependent_steps_tiled"] < result["dependent_steps_box_by_box"] == 200


def test_nms_sharded_benchmark_finds_the_loop_all_reduce_only_when_vmapped(tmp_path):
    out = tmp_path / "nms_sharded.json"
    run(["benchmarks.nms_sharded", "--per_device", "1", "--boxes", "300", "--keep", "50",
         "--repeats", "1", "--json", str(out)])
    result = json.loads(out.read_text())  # written only after the indices matched
    assert result["devices"] == 8 and result["images"] == 8
    assert result["collectives_in_loops"] == {"vmapped": {"all-reduce": 1}, "per_shard": {}}
    # Two tiles of 150 boxes, at least one pass each.
    assert 2 <= result["passes_per_call_slowest_device"] <= result["passes_per_call_vmapped"]
    assert result["per_shard_ms"] > 0


@pytest.mark.parametrize("script", ["gpu_suite.sh", "gpu_dense_suite.sh", "gpu_speed_attempts.sh"])
def test_gpu_suite_script_parses(script):
    out = subprocess.run(["bash", "-n", f"benchmarks/{script}"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_step_compare_runs_selects_jobs_in_order():
    from benchmarks.step_compare import selected

    order = ("cls os32", "cls os8", "deeplab os8")
    assert selected(order, None) == order
    assert selected(order, "deeplab os8, cls os32") == ("cls os32", "deeplab os8")
    with pytest.raises(SystemExit, match="unknown job.*deeplab"):
        selected(order, "deeplab")


def test_torch_baseline_imports_without_torch():
    # The suite's table step and the tests below must not need torch.
    code = ("import sys, benchmarks.torch_baseline; "
            "assert 'torch' not in sys.modules, 'torch imported at module level'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr


def test_combined_rows_ratios_and_notes():
    from benchmarks.torch_baseline import combined_rows

    rows = {(r["model"].split()[0], r["run"]): r
            for r in combined_rows(JAX_RESULTS, TORCH_RESULTS)}
    assert [k[1] for k in rows if k[0] == "ResNet-50"] == [
        "JAX framework step", "plain-flax reference", "torch eager", "torch.compile"]
    assert [k[1] for k in rows if k[0] == "ResNet-101"] == [
        "JAX framework step", "torch eager", "torch.compile"]
    r50 = {k[1]: v for k, v in rows.items() if k[0] == "ResNet-50"}
    assert r50["JAX framework step"]["vs_torch_compile"] == pytest.approx(1.25)
    assert r50["torch eager"]["vs_torch_compile"] == pytest.approx(4000 / 5120)
    assert r50["torch.compile"]["vs_torch_compile"] == pytest.approx(1.0)
    # The reference row's step time and MFU follow from its img/s and the batch (256).
    ref = r50["plain-flax reference"]
    assert ref["step_ms"] == pytest.approx(256 / 6553.6 * 1e3)
    assert ref["mfu"] == pytest.approx(6.4 / (ref["step_ms"] / 1e3) / 800.0)
    r101 = {k[1]: v for k, v in rows.items() if k[0] == "ResNet-101"}
    assert r101["JAX framework step"]["vs_torch_compile"] is None  # nothing to compare to
    assert "OutOfMemoryError" in r101["torch eager"]["note"]
    assert "killed" in r101["torch.compile"]["note"]


def test_format_table_without_results():
    from benchmarks.torch_baseline import format_table

    table = format_table(JAX_RESULTS, TORCH_RESULTS)
    assert "  1.250" in table and "OutOfMemoryError" in table
    # A suite whose JAX part failed still gets a table that says so.
    empty = format_table(None, None)
    assert empty.count("no result") == 6


def test_table_cli_and_merge_row(tmp_path):
    from benchmarks.torch_baseline import merge_row

    path = str(tmp_path / "torch.json")
    merge_row(path, {"device": "d"}, {"id": "r101_eager", "status": "running"})
    merge_row(path, {"device": "d"}, {"id": "r50_compile", "status": "running"})
    merge_row(path, {"device": "d"}, {"id": "r101_eager", "status": "failed: X"})
    with open(path) as f:
        saved = json.load(f)
    assert [(r["id"], r["status"]) for r in saved["runs"]] == [
        ("r50_compile", "running"), ("r101_eager", "failed: X")]
    jax_path = tmp_path / "jax.json"
    jax_path.write_text(json.dumps(JAX_RESULTS))
    out = run(["benchmarks.torch_baseline", "--table", "--jax_json", str(jax_path),
               "--json", path])
    assert "JAX framework step" in out and "failed: X" in out
    run(["benchmarks.torch_baseline", "--runs", "r101_compile", "--note", "skipped: no time",
         "--json", path])
    out = run(["benchmarks.torch_baseline", "--table", "--json", path])
    assert "skipped: no time" in out


@pytest.mark.slow
def test_torch_baseline_cpu_smoke(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    path = tmp_path / "torch.json"
    out = run(["benchmarks.torch_baseline", "--device", "cpu", "--batch_size", "2",
               "--image_size", "32", "--steps", "1", "--warmup", "1", "--runs", "r50_eager",
               "--json", str(path)])
    assert "r50_eager:" in out
    row = json.loads(path.read_text())["runs"][0]
    assert row["status"] == "ok" and row["img_per_s"] > 0
    assert math.isfinite(row["final_loss"]) and row["torch_counted_tflops_per_step"] > 0


@pytest.mark.slow
def test_torch_baseline_failure_is_recorded(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    path = tmp_path / "torch.json"
    # Batch 1 at 32 px leaves batch norm one value per channel: training mode refuses.
    out = subprocess.run([sys.executable, "-m", "benchmarks.torch_baseline", "--device", "cpu",
                          "--batch_size", "1", "--image_size", "32", "--steps", "1",
                          "--warmup", "1", "--runs", "r50_eager", "--json", str(path)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 1, out.stderr[-3000:]
    row = json.loads(path.read_text())["runs"][0]
    assert row["id"] == "r50_eager" and row["status"].startswith("failed: ValueError")


def test_attempts_table_ratios_per_model_derived_mfu_and_winners(tmp_path):
    from benchmarks.attempts_table import read_attempts, table, winners

    gather = {"max_pool_gather_grad": True}
    runs = [("base", 100.0, {}, 0.2), ("maxpool_gather", 125.0, gather, None),
            ("plain_stem", 100.5, {"stem_space_to_depth": False}, None),
            ("broken", None, {}, None), ("jft_base", 40.0, {}, 0.3),
            ("jft_combined", 50.0, gather, None)]
    for name, img_s, options, mfu in runs:
        (tmp_path / f"attempt_{name}.log").write_text("")
        if img_s is not None:
            row = {"img_per_s": img_s, "step_ms": 256e3 / img_s}
            if mfu is not None:
                row["mfu_vs_measured_peak"] = mfu
            (tmp_path / f"attempt_{name}.json").write_text(json.dumps({
                "device": "NVIDIA H200", "batch_size": 256, **options,
                # The script's autotuning cache is on for all: not an attempt's flag.
                "xla_flags": ("--xla_gpu_per_fusion_autotune_cache_dir=/tmp/c"
                              + (" --x=1" if name == "maxpool_gather" else "")),
                "runs": [row]}))
    rows = read_attempts(str(tmp_path))
    text = table(rows)
    assert "device: NVIDIA H200" in text
    # MFU scaled from base's by the speed-up; JFT attempts compare with jft_base.
    assert ("| maxpool_gather | 256 | max_pool_gather_grad | `--x=1` | 125 | 2048.0 | 25.0% "
            "| 1.250 |" in text)
    assert ("| jft_combined | 256 | max_pool_gather_grad | `-` | 50 | 5120.0 | 37.5% | 1.250 |"
            in text)
    assert "| broken | | | | failed" in text
    assert winners(rows) == ["--max_pool_gather_grad"]
    rows["maxpool_gather"]["img_per_s"] = 100.5  # under 1% faster: not a win
    assert winners(rows) == []


def test_trace_top_ops_sums_a_real_trace_by_op_and_kind(tmp_path):
    from benchmarks import trace_top_ops

    x = jnp.ones((256, 256))
    step = jax.jit(lambda x: jnp.tanh(jax.lax.conv_general_dilated(
        x[None, :, :, None], jnp.ones((3, 3, 1, 4)), (1, 1), "SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"))).sum())
    step(x).block_until_ready()
    with jax.profiler.trace(str(tmp_path)):
        for _ in range(2):
            step(x).block_until_ready()
    path = trace_top_ops.latest_xplane(str(tmp_path))
    times = trace_top_ops.op_times(path)
    assert times and all(ns >= 0 for ns, _ in times.values())
    assert any(trace_top_ops.kind(name, op) == "convolution" for name, (_, op) in times.items())
    text = trace_top_ops.report(path, steps=2)
    assert "| convolution |" in text and "ms of device ops per step (2 steps)" in text
    assert trace_top_ops.kind("convert_reduce_fusion", "") == "reduction"
    assert trace_top_ops.kind("sm90_xmma_wgrad_implicit_gemm", "command_buffer_3") == "convolution"
    with pytest.raises(FileNotFoundError, match="No .xplane.pb"):
        trace_top_ops.latest_xplane(str(tmp_path / "empty"))
    assert trace_top_ops.kind("nvjet_sm90_tst_128x128_64x6_1x2_h_bz_splitK_NTT") == "matmul"
    assert trace_top_ops.kind("input_scatter_fusion") == "scatter"
    assert trace_top_ops.kind("nvjet_sm90_tst_256x128", "cudnn-conv.132") == "convolution"
    assert trace_top_ops.kind("wrapped_convert", "wrapped_convert.39") == "other"


@pytest.mark.slow
def test_mirror_resume_bytes_benchmark(tmp_path):
    """Three steps of an 8 MB array (about 7.4 compressed): a resume stages one."""
    ckpt = checkpointing.Checkpointer(str(tmp_path / "ckpt"), keep=None, asynchronous=False)
    rng = np.random.default_rng(0)
    for step in (1, 2, 3):  # random: orbax compresses
        ckpt.save(step, {"w": rng.standard_normal(2_000_000, np.float32)})
    ckpt.close()
    res = json.loads(run(["benchmarks.mirror_resume_bytes", str(tmp_path / "ckpt")]))
    assert res["steps"] == [1, 2, 3] and res["remote_mb"] > 20
    assert res["staged_at_open_mb"] < 1
    assert 6 < res["staged_for_resume_mb"] < res["remote_mb"] / 3 + 1
