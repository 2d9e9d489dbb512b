"""Reading a checkpoint step outside a training run (init_from, the notebook's
analysis, the verify command): on any filesystem, onto one device, checked
against the checksums saved with it (checksums.py)."""

from __future__ import annotations

from typing import Any

import jax
import orbax.checkpoint as ocp

from big_vision_like import checksums
from big_vision_like import filesystem as fs
from big_vision_like.checkpoint_mirror import readable_step
from big_vision_like.checkpointing import CheckpointError, first_line, first_non_finite


def load_state(path: str, what: str = "a checkpoint") -> dict:
    """The saved train state of a checkpoint step folder (<workdir>/checkpoints/<step>,
    or its `state` subfolder) on any filesystem, every array on this process's first
    device: without a target orbax restores the saved shardings, which fails on
    another topology (a run saved over 8 devices, read by a notebook on 1). Checked
    against the checksums saved with it: damage is one CheckpointError line."""
    path = fs.absolute(path)
    with readable_step(path) as step_dir:
        state_dir = fs.join(step_dir, "state")
        if not fs.isdir(state_dir):
            state_dir, step_dir = step_dir, fs.parent(step_dir)
        if not fs.isdir(state_dir):
            raise CheckpointError(f"{what}: {path} does not exist; give a step folder of a "
                                  "checkpoints directory, e.g. <workdir>/checkpoints/1000.")
        restored, bad, _ = _read_checked(step_dir, state_dir)
    if bad is not None:
        raise CheckpointError(
            f"{what}: {path} is damaged: {bad}. Use another step of its workdir "
            "(`python -m big_vision_like.tools.verify_checkpoints <workdir>` lists "
            "which are intact).")
    if not isinstance(restored, dict) or "params" not in restored:
        raise CheckpointError(f"{what}: {path} holds no 'params'; give a step folder of a "
                              "checkpoints directory, e.g. <workdir>/checkpoints/1000.")
    return restored


def _read_step(step_dir: str, state_dir: str) -> tuple[Any, dict]:
    """(state on one device, data item: {} where the step has none)."""
    checkpointer = ocp.StandardCheckpointer()
    metadata = checkpointer.metadata(state_dir)
    tree = getattr(metadata, "item_metadata", metadata)
    one = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=one), tree)
    restored = checkpointer.restore(state_dir, target)
    data_dir = fs.join(step_dir, "data")
    data = (ocp.Checkpointer(ocp.JsonCheckpointHandler()).restore(
        data_dir, args=ocp.args.JsonRestore()) if fs.isdir(data_dir) else {})
    return restored, dict(data or {})


def _read_checked(step_dir: str, state_dir: str) -> tuple[Any, str | None, bool]:
    """(state, what is wrong or None, whether checksums were saved)."""
    try:
        restored, data = _read_step(step_dir, state_dir)
        bad = checksums.first_mismatch(restored, data)
        if bad is not None:
            bad += " differs from the checksum saved with it"
        else:
            non_finite = first_non_finite(restored)
            bad = None if non_finite is None else f"{non_finite} holds NaN or inf"
        return restored, bad, checksums.KEY in data
    except Exception as e:  # what orbax and TensorStore raise varies by damage
        return None, f"it cannot be read ({first_line(e)[:300]})", False


def verify_step(step_dir: str) -> tuple[bool, str]:
    """(intact, one line) for a checkpoint step folder on any filesystem."""
    with readable_step(fs.absolute(step_dir)) as local:
        state, bad, summed = _read_checked(local, fs.join(local, "state"))
    if bad is not None:
        return False, f"DAMAGED: {bad}"
    arrays = len(jax.tree.leaves(state))
    how = ("every array matches its checksum" if summed else
           "read back whole and finite (saved without checksums)")
    return True, f"intact: {arrays} arrays, {how}"
