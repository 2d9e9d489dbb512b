"""Two local processes x 4 CPU devices (gloo on 127.0.0.1) train like 1 x 8."""

import json
import os
import socket
import subprocess
import sys

import pytest

from tests.helpers import tiny_config, xla_flags

WORKER = os.path.join(os.path.dirname(__file__), "multiprocess", "train_steps.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(devices: int) -> dict:
    e = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=os.getcwd())
    e["XLA_FLAGS"] = xla_flags(devices)
    return e


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    single = tmp_path / "single.json"
    subprocess.run([sys.executable, WORKER, str(single)], env=env(8), check=True,
                   timeout=300, capture_output=True)
    multi = tmp_path / "multi.json"
    address = f"127.0.0.1:{free_port()}"
    procs = [subprocess.Popen([sys.executable, WORKER, str(multi), address, "2", str(i)],
                              env=env(4), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    a, b = json.loads(single.read_text()), json.loads(multi.read_text())
    assert len(a) == 3
    assert a == pytest.approx(b, rel=1e-5)


@pytest.mark.slow
def test_a_dead_process_stops_the_others_in_bounded_time(tmp_path):
    address = f"127.0.0.1:{free_port()}"
    procs = [subprocess.Popen([sys.executable, WORKER, str(tmp_path / "x.json"), address,
                               "2", str(i), "die"], env=env(4), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    _, err = procs[0].communicate(timeout=120)  # heartbeat timeout is 10 s
    procs[1].communicate(timeout=30)
    assert procs[1].returncode == 17
    assert procs[0].returncode != 0
    assert "another task died" in err and "stopped sending heartbeats" in err


@pytest.mark.slow
def test_checkpoint_restores_onto_other_topologies(tmp_path):
    """Saved from a 2x4 mesh of 8 devices; restored on 4 devices (4x1) and in
    2 processes (8x1 over 2 x 4 devices): every parameter identical."""
    import jax
    import numpy as np

    from big_vision_like import checkpointing, sharding
    from big_vision_like import mesh as mesh_lib
    from tests.multiprocess import small_setup

    mesh = mesh_lib.make_mesh(2, 4)
    state, _, step = small_setup.build(mesh, "head")
    rng = np.random.default_rng(0)
    batch = jax.device_put({"image": rng.normal(size=(8, 32, 32, 3)).astype(np.float32),
                            "labels": (rng.random((8, 16)) < 0.2).astype(np.float32)},
                           mesh_lib.batch_sharding(mesh))
    state, _ = step(state, batch)  # non-trivial values everywhere
    ckpt = checkpointing.Checkpointer(str(tmp_path / "ckpt"))
    ckpt.save(1, state)
    ckpt.close()
    np.savez(tmp_path / "ref.npz", **{sharding.path_str(p): np.asarray(x) for p, x in
                                      jax.tree_util.tree_leaves_with_path(state.params)})
    worker = os.path.join(os.path.dirname(__file__), "multiprocess", "restore.py")
    args = [str(tmp_path / "ckpt"), str(tmp_path / "ref.npz")]
    out = subprocess.run([sys.executable, worker, *args, "4", "1"], env=env(4),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "identical on mesh 4x1 of 4 devices" in out.stdout, \
        out.stderr[-3000:]
    address = f"127.0.0.1:{free_port()}"
    procs = [subprocess.Popen([sys.executable, worker, *args, "8", "1", address, "2", str(i)],
                              env=env(4), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(2)]
    for i, p in enumerate(procs):
        stdout, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        assert f"process {i}:" in stdout and "mesh 8x1 of 8 devices" in stdout


@pytest.mark.slow
def test_trainer_runs_in_two_processes(tiny_source, tmp_path):
    """The demo trainer, 2 processes x 4 devices: trains, evaluates, checkpoints;
    only process 0 writes the metric stream."""
    data_dir = tiny_source.builder.data_dir.split("/synthetic_jft")[0]
    workdir = tmp_path / "run"
    config = tiny_config(data_dir)
    overrides = [
        "--config.input.data.name=synthetic_jft/tiny", f"--config.input.data.data_dir={data_dir}",
        "--config.input.image_shape=(32, 32, 3)", f"--config.input.pp={config.input.pp}",
        "--config.batch_size=16",
        "--config.total_steps=4", "--config.ckpt_steps=2", "--config.log_steps=1",
        "--config.eval_batch_size=64", f"--config.evals.fasteval.pp={config.evals.fasteval.pp}",
        f"--config.evals.fasteval_loss.pp={config.evals.fasteval.pp}", "--config.sharding=fsdp"]
    address = f"127.0.0.1:{free_port()}"
    procs = [subprocess.Popen(
        [sys.executable, "-m", "big_vision_like.train", "--config", "configs/demo.py",
         "--workdir", str(workdir), *overrides, f"--coordinator_address={address}",
         "--num_processes=2", f"--process_id={i}"],
        env=env(4), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if "train/loss" in r]
    assert steps == [1, 2, 3, 4]  # once each: process 1 wrote nothing
    assert any("fasteval/map@100" in r for r in rows)
    assert sorted(os.listdir(workdir / "checkpoints"))[-2:] == ["2", "4"]
    assert "fasteval/map@100:" in outs[0][0] and "fasteval/" not in outs[1][0]
