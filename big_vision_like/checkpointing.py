"""orbax checkpoints of the train state and the input stream's position.

Saves are asynchronous (training goes on while arrays are written) and
atomic (orbax writes to a temporary folder and renames it), so a run killed
mid-save leaves the previous checkpoint as the latest. The last `keep`
checkpoints are kept, plus every `keep_every`-th step if set. Every process
takes part; each writes the shards it holds.
"""

from __future__ import annotations

import os
import re
from typing import Any

import jax
import orbax.checkpoint as ocp

from big_vision_like.sharding import path_str


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or does not fit the model."""


class Checkpointer:
    def __init__(self, directory: str, keep: int | None = 3, keep_every: int | None = None,
                 asynchronous: bool = True):
        # orbax deletes every checkpoint for max_to_keep=0, the one a rerun
        # would resume from included.
        if keep is not None and (isinstance(keep, bool) or int(keep) != keep or keep < 1):
            raise ValueError(
                f"keep_ckpts={keep!r}: keep at least the latest checkpoint "
                "(keep_ckpts >= 1), or None to keep them all; 0 would delete "
                "every checkpoint and a rerun would start again from step 0.")
        if keep_every is not None and keep_every < 1:
            raise ValueError(f"keep_ckpt_steps={keep_every!r}: give a step interval "
                             ">= 1, or leave it unset to keep no extra checkpoints.")
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, keep_period=keep_every, create=True,
            enable_async_checkpointing=asynchronous, cleanup_tmp_directories=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options,
                                              item_names=("state", "data"))

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state: Any, data_state: dict | None = None) -> None:
        try:
            self._manager.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                data=ocp.args.JsonSave(data_state or {})), force=True)
        except OSError as e:
            raise CheckpointError(
                f"saving checkpoint {step} to {self.directory} failed: {e}. Earlier "
                "checkpoints are untouched; free disk space or point --workdir "
                "elsewhere, then rerun to resume from the latest one.") from e

    def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
        """Restores into the shardings of `abstract_state` (ShapeDtypeStructs)."""
        out = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
        return out["state"], dict(out["data"] or {})

    def wait(self) -> None:
        try:
            self._manager.wait_until_finished()
        except OSError as e:
            raise CheckpointError(
                f"finishing a checkpoint in {self.directory} failed: {e}. Earlier "
                "checkpoints are untouched; free disk space and rerun to resume.") from e

    def close(self) -> None:
        self._manager.close()


def load_params(path: str) -> dict:
    """The `params` of a checkpoint step folder (e.g. <workdir>/checkpoints/1000)."""
    path = os.path.abspath(path)
    state_dir = os.path.join(path, "state") if os.path.isdir(os.path.join(path, "state")) \
        else path
    restored = ocp.StandardCheckpointer().restore(state_dir)
    params = restored.get("params") if isinstance(restored, dict) else None
    if params is None:
        raise CheckpointError(f"{path} holds no 'params'; give a step folder of a "
                              "checkpoints directory, e.g. <workdir>/checkpoints/1000.")
    return params


def merge_params(target: Any, loaded: Any, skip: str | None = None) -> tuple[Any, list[str]]:
    """Copies `loaded` into `target` by path; reports what did not transfer.

    Parameters matching the regex `skip` (e.g. '^head/' to re-initialise the
    head, as when initialising JFT training from an ImageNet model) keep
    their fresh values. Returns (merged, report lines). A shape mismatch that
    is not skipped is an error naming the parameter.
    """
    flat_loaded = {path_str(p): v for p, v in jax.tree_util.tree_leaves_with_path(loaded)}
    skip_re = re.compile(skip) if skip else None
    used, report = set(), []

    def pick(path, fresh):
        name = path_str(path)
        if skip_re and skip_re.search(name):
            report.append(f"kept fresh (skip pattern): {name}")
            return fresh
        if name not in flat_loaded:
            report.append(f"missing in checkpoint, kept fresh: {name}")
            return fresh
        value = flat_loaded[name]
        used.add(name)
        if tuple(value.shape) != tuple(fresh.shape):
            raise CheckpointError(
                f"init checkpoint: {name} has shape {tuple(value.shape)}, the model "
                f"expects {tuple(fresh.shape)}; add it to init_from.skip to "
                "re-initialise it.")
        return jax.device_put(value.astype(fresh.dtype), fresh.sharding)

    merged = jax.tree_util.tree_map_with_path(pick, target)
    report += [f"unused from checkpoint: {n}" for n in sorted(set(flat_loaded) - used)
               if not (skip_re and skip_re.search(n))]
    return merged, report
