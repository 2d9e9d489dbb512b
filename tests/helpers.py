"""Configs, paths and subprocess settings the tests share."""

import os
import pathlib

from configs import demo

DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"


def xla_flags(devices: int) -> str:
    """This session's XLA_FLAGS (conftest's) with `devices` fake CPU devices, for a
    subprocess: its programs then compile as the test process's do."""
    kept = [f for f in os.environ.get("XLA_FLAGS", "").split()
            if not f.startswith(DEVICE_COUNT_FLAG)]
    return " ".join([*kept, f"{DEVICE_COUNT_FLAG}={devices}"])


def tiny_config(data_dir, **overrides):
    """configs/demo.py shrunk to synthetic_jft/tiny: 8 steps of 16 at 32 px."""
    c = demo.get_config()
    c.input.data.name = "synthetic_jft/tiny"
    c.input.data.data_dir = data_dir
    c.input.image_shape = (32, 32, 3)
    c.input.pp = ("decode|resize(36)|random_crop(32)|flip_lr|value_range(-1, 1)"
                  "|multi_hot|keep('image', 'labels')")
    c.input.shuffle_buffer = 100
    c.batch_size = 16
    c.total_steps = 8
    c.ckpt_steps = 4
    c.log_steps = 1
    c.schedule = dict(name="cosine", base_lr=0.05, warmup_steps=2)
    for ev in c.evals.values():
        ev.pp = ("decode|resize(36)|central_crop(32)|value_range(-1, 1)"
                 "|multi_hot(fill_ancestors=False)|keep('image', 'labels')")
        ev.every_steps = 4
    c.eval_batch_size = 64
    for k, v in overrides.items():
        c[k] = v
    return c


def tiny_config_file(path, data_dir, **overrides) -> str:
    """Writes a config file (for `--config` in a subprocess) that returns
    `tiny_config(data_dir, **overrides)`; returns its path. Overrides: literals."""
    path.write_text("from tests.helpers import tiny_config\n\n\ndef get_config():\n"
                    f"    return tiny_config({data_dir!r}, **{overrides!r})\n")
    return str(path)


def data_dir_of(source) -> str:
    """The data_dir a synthetic_jft source was opened from."""
    return source.builder.data_dir.split("/synthetic_jft")[0]


def train_steps_on(mesh, task, tx, batch: dict, image_shape=(32, 32, 3), steps: int = 2):
    """(state, metrics) after `steps` train steps of `task` on `batch`, sharded over
    `mesh` as the trainer shards them: run on 2x4 and on one device to compare."""
    import jax

    from big_vision_like import mesh as mesh_lib
    from big_vision_like import sharding, train_step

    state, shardings = train_step.create_train_state(
        task, tx, image_shape, jax.random.key(0), mesh, sharding.HEAD_SHARDED_RULES)
    step = train_step.jit_train_step(train_step.make_train_step(task, tx, mesh), shardings,
                                     mesh)
    batch = jax.device_put(batch, mesh_lib.batch_sharding(mesh))
    for _ in range(steps):
        state, metrics = step(state, batch)
    return state, metrics


def flip_a_bit_silently(step_dir) -> None:
    """Flips one bit of a checkpoint step's largest array file where orbax does not
    notice: the state reads back whole, finite and different (arrays are stored
    compressed, so the place is found by trying)."""
    import jax  # here: helpers is imported before XLA flags are set
    import numpy as np
    import orbax.checkpoint as ocp

    state_dir = pathlib.Path(step_dir) / "state"
    read = lambda: jax.tree.leaves(ocp.StandardCheckpointer().restore(state_dir))
    before = [np.asarray(x) for x in read()]
    data_file = max((p for p in state_dir.rglob("*") if p.is_file()),
                    key=lambda p: p.stat().st_size)
    original = data_file.read_bytes()
    for offset in range(len(original) // 2, len(original), 97):
        damaged = bytearray(original)
        damaged[offset] ^= 0x08
        data_file.write_bytes(bytes(damaged))
        try:
            after = [np.asarray(x) for x in read()]
        except Exception:  # this flip is loud (a read error): try another
            continue
        if (all(np.isfinite(a).all() for a in after if a.dtype.kind == "f")
                and any(not np.array_equal(a, b) for a, b in zip(after, before))):
            return
    data_file.write_bytes(original)
    raise AssertionError(f"no silent bit flip found in {data_file}")


def assert_resumes_exactly(make, whole, at: int) -> None:
    """A stream `make(start_index)` stopped after `at` batches and resumed from its
    saved position yields the rest of `whole` (the uninterrupted stream's
    image_id batches), batch for batch."""
    import numpy as np

    from input_pipeline.stream import batches

    probe = batches.HostIterator(make(0))
    for _ in range(at):
        next(probe)
    state = probe.state()
    resumed = batches.HostIterator(make(state["next_index"]), state=state)
    for expected in whole[at:]:
        np.testing.assert_array_equal(next(resumed)["image_id"], expected)
