"""Checkpointer(keep_steps=...): listed steps survive the rotation, others go."""

import jax.numpy as jnp

from big_vision_like import checkpointing


def saved_steps(directory, steps, **kwargs):
    ckpt = checkpointing.Checkpointer(str(directory), asynchronous=False, **kwargs)
    for step in steps:
        ckpt.save(step, {"w": jnp.full(2, float(step))})
    ckpt.wait()
    kept = ckpt.all_steps()
    ckpt.close()
    return kept


def test_listed_steps_survive_keep_1_rotation(tmp_path):
    kept = saved_steps(tmp_path, range(1, 13), keep=1, keep_steps=(3, 7))
    assert kept == [3, 7, 12]  # the listed ones and the latest; every other step deleted
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.isdigit()) == ["12", "3", "7"]


def test_keep_steps_combine_with_keep_every(tmp_path):
    kept = saved_steps(tmp_path, range(1, 13), keep=2, keep_every=5, keep_steps=(3,))
    assert kept == [3, 5, 10, 11, 12]


def test_a_listed_step_that_is_never_saved_keeps_nothing_extra(tmp_path):
    # keep_steps cannot keep what was not saved: the trainer must save them.
    kept = saved_steps(tmp_path, range(2, 13, 2), keep=1, keep_steps=(3, 8))
    assert kept == [8, 12]


def test_kept_steps_survive_a_restart(tmp_path):
    saved_steps(tmp_path, range(1, 6), keep=1, keep_steps=(2,))
    kept = saved_steps(tmp_path, range(6, 9), keep=1, keep_steps=(2,))
    assert kept == [2, 8]
