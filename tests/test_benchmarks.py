"""The benchmark scripts run end to end (tiny settings) and print their ratio."""

import subprocess
import sys

import pytest


def run(args, timeout=600):
    out = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                         timeout=timeout, cwd=".")
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
def test_input_pipeline_benchmark(tmp_path):
    out = run(["benchmarks.input_pipeline_throughput", "--images", "64",
               "--data_dir", str(tmp_path)])
    ratio = float(out.split("ratio pipeline / PIL:")[1].split()[0])
    assert ratio > 0


@pytest.mark.slow
def test_train_step_benchmark():
    out = run(["benchmarks.train_step_throughput", "--depth", "18", "--image_size", "32",
               "--batch_size", "8", "--steps", "1", "--matmul", "128", "--dtype", "float32"])
    row = [line for line in out.splitlines() if line.startswith("ResNet-18 32px")][-1]
    img_s, _ms, mfu, _ref, ratio = row.split()[-5:]
    assert float(img_s) > 0 and float(ratio) > 0 and mfu.endswith("%")
