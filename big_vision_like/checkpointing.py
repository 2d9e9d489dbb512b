"""orbax checkpoints of the train state and the input stream's position.

Saves are asynchronous (training goes on while arrays are written) and
atomic (orbax writes to a temporary folder and renames it), so a run killed
mid-save leaves the previous checkpoint as the latest. The last `keep`
checkpoints are kept, plus every `keep_every`-th step if set and the steps
listed in `keep_steps`. Every process takes part; each writes the shards it
holds.

A save that fails (read-only folder, full disk) surfaces at the next save
or `wait()` as one `CheckpointError` naming the step that failed, why, and
what the workdir still holds.

The folder may be local, `gs://` (orbax writes there directly) or any other
scheme TensorFlow's file systems know, through a local staging folder (see
checkpoint_mirror.py).
"""

from __future__ import annotations

import errno
import json
import re
from collections.abc import Sequence
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as preservation

from big_vision_like import checksums, library_workarounds
from big_vision_like import filesystem as fs
from big_vision_like.checkpoint_mirror import Mirror, orbax_writes_directly
from big_vision_like.sharding import path_str

HEALTH = "train_health"  # key of the loss record in a checkpoint's data item


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or does not fit the model."""


class DamagedCheckpoint(RuntimeError):
    """A checkpoint reads back other than it was saved (checksums.py)."""


class Checkpointer:
    def __init__(self, directory: str, keep: int | None = 3, keep_every: int | None = None,
                 asynchronous: bool = True, keep_steps: Sequence[int] = ()):
        """keep_steps: steps kept whatever the rotation (e.g. the paper's Table 4
        checkpoints); only steps that are saved can be kept."""
        # orbax deletes every checkpoint for max_to_keep=0, the one a rerun
        # would resume from included.
        if keep is not None and (isinstance(keep, bool) or int(keep) != keep or keep < 1):
            raise ValueError(
                f"keep_ckpts={keep!r}: keep at least the latest checkpoint "
                "(keep_ckpts >= 1), or None to keep them all; 0 would delete "
                "every checkpoint and a rerun would start again from step 0.")
        if keep_every is not None and keep_every < 1:
            raise ValueError(f"keep_ckpt_every_steps={keep_every!r}: give a step interval "
                             ">= 1, or leave it unset to keep no extra checkpoints.")
        self.directory = fs.absolute(directory)
        self._mirror: Mirror | None = None
        if not orbax_writes_directly(self.directory):
            if jax.process_count() > 1:
                raise CheckpointError(
                    f"{self.directory}: orbax cannot write this filesystem directly, and "
                    "the processes of a multi-host run must write one folder: put the "
                    "workdir on gs:// or on a disk every host mounts.")
            self._mirror = Mirror(self.directory)
        # Where orbax reads and writes: the folder itself, or its local staging copy.
        self._dir = self._mirror.local if self._mirror else self.directory
        self._pending: int | None = None  # step of the save still being written
        self._broken = False  # a save failed; the error was raised already
        # The newest checkpoint saved while the loss was sane outlives the
        # rotation, so a run that diverged for longer than `keep` checkpoints
        # still has one to go back to (see loss_watch).
        self._sane = _KeepStep()
        policies: list[Any] = [preservation.LatestN(keep) if keep is not None
                               else preservation.PreserveAll(), self._sane]
        if keep_steps:
            policies.append(preservation.CustomSteps([int(s) for s in keep_steps]))
        if keep_every:
            policies.append(preservation.EveryNSteps(keep_every))
        options = ocp.CheckpointManagerOptions(
            create=True, enable_async_checkpointing=asynchronous,
            cleanup_tmp_directories=True,
            preservation_policy=preservation.AnyPreservationPolicy(policies))
        try:
            self._manager = ocp.CheckpointManager(self._dir, options=options,
                                                  item_names=("state", "data"))
        except OSError as e:
            raise CheckpointError(
                f"cannot use {self.directory} for checkpoints: {first_line(e)}. "
                f"{_advice(e)}") from e
        self._sane.step = self.latest_sane_step()

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state: Any, data_state: dict | None = None,
             health: dict | None = None) -> None:
        """health: the loss record of `LossWatch.saved()`; its "sane" decides
        which checkpoint outlives the rotation."""
        # Finish the previous save first, so its failure is reported as its own.
        self.wait()
        data = dict(data_state or {})
        if health is not None:
            data[HEALTH] = health
        if (health or {}).get("sane", True):  # without a record: taken as sane
            self._sane.step = step
        data = checksums.with_checksums(data, state)
        try:
            self._manager.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data)),
                force=True)
        except Exception as e:
            raise self._failed(step, e) from e
        self._pending = step

    def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
        """Restores into the shardings of `abstract_state` (ShapeDtypeStructs),
        checked against the checksums saved with it (DamagedCheckpoint naming the
        first array that differs). The input state comes back with the loss record
        under HEALTH, if saved."""
        if self._mirror is not None:
            self._mirror.fetch(str(step))
        self._check_shapes(step, abstract_state)
        out = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
        data = dict(out["data"] or {})
        bad = checksums.first_mismatch(out["state"], data)
        if bad is not None:
            raise DamagedCheckpoint(f"{bad} differs from the checksum saved with it")
        return out["state"], checksums.without_checksums(data)

    def health(self, step: int) -> dict | None:
        """The loss record saved with `step`: {} for a checkpoint saved without
        one (taken as sane), None where it cannot be read."""
        try:
            out = self._manager.restore(step, args=ocp.args.Composite(
                data=ocp.args.JsonRestore()))
        except Exception:  # damaged: restore_latest_intact says what and moves it
            return None
        return dict((out["data"] or {}).get(HEALTH) or {})

    def latest_sane_step(self) -> int | None:
        """The newest checkpoint saved while the training loss was sane."""
        for step in sorted(self.all_steps(), reverse=True):
            record = self.health(step)
            if record is not None and record.get("sane", True):
                return step
        return None

    def resume_from(self, step: int) -> list[int]:
        """Makes `step` the latest checkpoint: the ones after it are renamed
        `<later step>.after_<step>` (kept, not deleted) and listed in
        resume_steps.json. Asked again for a step it already went back to, it
        does nothing, so rerunning the same command after a preemption resumes
        from the newest checkpoint instead of discarding the new ones."""
        record_path = fs.join(self._dir, "resume_steps.json")
        done = json.loads(fs.read_text(record_path)) if fs.exists(record_path) else []
        if any(entry["step"] == step for entry in done):
            return []
        steps = self.all_steps()
        if step not in steps:
            raise CheckpointError(
                f"resume_step={step}: {self.directory} has no checkpoint {step}; it has "
                f"{sorted(steps) or 'none'}.")
        later = sorted(s for s in steps if s > step)
        if jax.process_index() == 0:
            for s in later:
                self._rename(str(s), f"{s}.after_{step}")
            fs.write_atomic(record_path, json.dumps([*done, {"step": step, "moved": later}]))
            self._sync_mirror()
        _sync_processes("resume_from")
        self._manager.reload()
        self._sane.step = self.latest_sane_step()
        return later

    def restore_latest_intact(self, abstract_state: Any) -> tuple[int, Any, dict] | None:
        """(step, state, input state) of the newest checkpoint that reads back whole and
        finite, or None when there is none. A newer one that does not (a truncated
        file, missing metadata, an array unlike its checksum or NaN) is renamed
        `<step>.unreadable`, with a warning naming what was wrong: nothing is deleted,
        and the run resumes from the one before. A checkpoint of another model is an
        error, not a fallback."""
        from absl import logging

        moved = False
        for step in sorted(self.all_steps(), reverse=True):
            try:
                state, data = self.restore(step, abstract_state)
                bad = first_non_finite(state)
            except CheckpointError:
                raise
            except Exception as e:  # what orbax and TensorStore raise varies by damage
                problem = first_line(e)
            else:
                if bad is None:
                    if moved:  # orbax must forget the steps moved aside
                        self._manager.reload()
                        self._sane.step = self.latest_sane_step()
                    return step, state, data
                problem = f"{bad} holds NaN or infinite values"
            aside = fs.join(self.directory, f"{step}.unreadable")
            if jax.process_index() == 0:
                self._rename(str(step), f"{step}.unreadable")
                self._sync_mirror()
            moved = True
            logging.warning("checkpoint %d cannot be used: %s. Moved it to %s; resuming "
                            "from the checkpoint before it.", step, problem[:500], aside)
        if moved:
            self._manager.reload()
            self._sane.step = self.latest_sane_step()
        return None

    def _check_shapes(self, step: int, abstract_state: Any) -> None:
        """A workdir resumed with another model (another width, depth or head) names
        the first array that differs and both shapes, before orbax reads anything."""
        meta = ocp.StandardCheckpointer().metadata(fs.join(self._dir, str(step), "state"))
        meta = getattr(meta, "item_metadata", meta)
        saved = {path_str(p): tuple(m.shape) for p, m in
                 jax.tree_util.tree_leaves_with_path(getattr(meta, "tree", meta))
                 if hasattr(m, "shape")}
        for path, want in jax.tree_util.tree_leaves_with_path(abstract_state):
            name = path_str(path)
            if name in saved and saved[name] != tuple(want.shape):
                raise CheckpointError(
                    f"checkpoint {step} in {self.directory} holds {name} with shape "
                    f"{saved[name]}, but the model here has {tuple(want.shape)}: this "
                    "workdir was trained with another model. Resume with the config it "
                    "was started with (its config.json), or start a new --workdir "
                    "(with init_from.checkpoint to start from this one).")

    def check(self) -> None:
        """Raises now if the save in the background has failed; never blocks
        on the save itself, so it can run every step."""
        try:
            self._manager.check_for_errors()
        except Exception as e:
            step, self._pending = self._pending, None
            raise self._failed(step, e) from e
        if self._pending is not None and _save_thread_done(self._manager):
            self.wait()  # returns at once; raises what the finished save raised

    def wait(self) -> None:
        """Blocks until the last save is written; raises if it failed."""
        step, self._pending = self._pending, None
        try:
            self._manager.wait_until_finished()
            self._sync_mirror()
        except Exception as e:
            raise self._failed(step, e) from e

    def _rename(self, name: str, new_name: str) -> None:
        """Renames a step folder (the mirror's, so `sync` renames it remotely)."""
        if self._mirror is not None:
            self._mirror.rename(name, new_name)
        else:
            fs.rename(fs.join(self._dir, name), fs.join(self._dir, new_name))

    def _sync_mirror(self) -> None:
        if self._mirror is not None:
            self._mirror.sync()

    def _failed(self, step: int | None, error: Exception) -> CheckpointError:
        self._broken = True
        library_workarounds.release_orbax_waiting_save_threads()
        try:
            earlier = sorted(s for s in self._manager.all_steps() if step is None or s < step)
        except Exception:  # the folder may be unreadable too
            earlier = []
        what = f"checkpoint {step}" if step is not None else "a checkpoint"
        if earlier:
            kept = (f"Checkpoint {earlier[-1]}, the latest complete one, is untouched; "
                    "rerun the same command to resume from it.")
        else:
            kept = "No earlier checkpoint exists, so a rerun starts from the beginning."
        return CheckpointError(
            f"{what} could not be written to {self.directory}: {first_line(error)}. "
            f"{_advice(error)} {kept}")

    def close(self) -> None:
        try:
            self._manager.close()
            if not self._broken:
                self._sync_mirror()
        except Exception:
            if not self._broken:  # else: the failure is being reported already
                raise
        finally:
            if self._mirror is not None:
                self._mirror.close()


class _KeepStep:
    """Preserves one step, chosen by the Checkpointer (the latest sane one)."""

    step: int | None = None

    def should_preserve(self, checkpoints, *, context) -> list[bool]:
        return [info.step == self.step for info in checkpoints]


def _sync_processes(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def _save_thread_done(manager: ocp.CheckpointManager) -> bool:
    """Whether the manager's background save has ended, well or not.

    Some failures (a folder that cannot be created) never reach
    `check_for_errors`; they only surface when the save is waited for,
    which is instant once it has ended.
    """
    return not manager.is_saving_in_progress()


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_NO_PERMISSION = (errno.EACCES, errno.EPERM, errno.EROFS)


def first_non_finite(tree: Any) -> str | None:
    for path, x in jax.tree_util.tree_leaves_with_path(tree):
        if jax.numpy.issubdtype(x.dtype, jax.numpy.inexact) and not bool(
                jax.numpy.isfinite(x).all()):
            return path_str(path)
    return None


def _errno_of(error: BaseException) -> int | None:
    """The errno behind `error`: of an OSError in its chain, or of the
    `os_error_code` tensorstore puts in its messages."""
    seen = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            return seen.errno
        seen = seen.__cause__ or seen.__context__
    match = re.search(r"os_error_code='?(\d+)", str(error))
    return int(match.group(1)) if match else None


def _advice(error: BaseException) -> str:
    code = _errno_of(error)
    if code in _NO_SPACE or "RESOURCE_EXHAUSTED" in str(error):
        return ("The disk (or quota) is full: free disk space, lower keep_ckpts, "
                "or point --workdir at a disk with room.")
    if code in _NO_PERMISSION:
        return ("The folder is not writable (permissions, or a read-only file "
                "system): make it writable for this user or point --workdir at a "
                "writable folder.")
    return "Fix the cause above, or point --workdir elsewhere."


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
