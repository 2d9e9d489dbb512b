"""Checkpoint failures leave earlier checkpoints intact and say what to do."""

import errno

import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from big_vision_like import checkpointing


def test_disk_full_during_save_is_a_clear_error_and_loses_nothing(tmp_path, monkeypatch):
    ckpt = checkpointing.Checkpointer(str(tmp_path), asynchronous=False)
    state = {"w": jnp.arange(4.0)}
    ckpt.save(1, state, {"next_index": 7})
    ckpt.wait()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ocp.CheckpointManager, "save", full)
    with pytest.raises(checkpointing.CheckpointError, match="free disk space"):
        ckpt.save(2, {"w": jnp.ones(4)}, {"next_index": 9})
    monkeypatch.undo()
    assert ckpt.latest_step() == 1
    restored, data = ckpt.restore(1, {"w": jnp.zeros(4)})
    np.testing.assert_array_equal(restored["w"], np.arange(4.0))
    assert data == {"next_index": 7}
    ckpt.close()


def test_keeps_the_last_k_and_every_nth(tmp_path):
    ckpt = checkpointing.Checkpointer(str(tmp_path), keep=2, keep_every=4,
                                      asynchronous=False)
    for step in range(1, 10):
        ckpt.save(step, {"w": jnp.full(2, float(step))})
    ckpt.wait()
    assert ckpt.all_steps() == [4, 8, 9]
    ckpt.close()
