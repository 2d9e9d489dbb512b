"""orbax checkpoints of the train state and the input stream's position.

Saves are asynchronous (training goes on while arrays are written) and
atomic (orbax writes to a temporary folder and renames it), so a run killed
mid-save leaves the previous checkpoint as the latest. The last `keep`
checkpoints are kept, plus every `keep_every`-th step if set and the steps
listed in `keep_steps`. Every process takes part; each writes the shards it
holds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as preservation


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or does not fit the model."""


class Checkpointer:
    def __init__(self, directory: str, keep: int = 3, keep_every: int | None = None,
                 asynchronous: bool = True, keep_steps: Sequence[int] = ()):
        """keep_steps: steps kept whatever the rotation (e.g. the paper's Table 4
        checkpoints); only steps that are saved can be kept."""
        self.directory = os.path.abspath(directory)
        retention: dict[str, Any] = dict(max_to_keep=keep, keep_period=keep_every)
        if keep_steps:
            # orbax takes an explicit list only as a policy, which then replaces
            # max_to_keep and keep_period: rebuild those as policies beside it.
            policies = [preservation.LatestN(keep),
                        preservation.CustomSteps([int(s) for s in keep_steps])]
            if keep_every:
                policies.append(preservation.EveryNSteps(keep_every))
            retention = dict(preservation_policy=preservation.AnyPreservationPolicy(policies))
        options = ocp.CheckpointManagerOptions(
            create=True, enable_async_checkpointing=asynchronous,
            cleanup_tmp_directories=True, **retention)
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

