"""Initialising a run from another run's checkpoint (fine-tuning, transfer).

All model variables are restored, batch-norm running statistics included
(restarting them at 0/1 changes the logits of the loaded model). Variables
are matched by path; a model's `load` hook may rename paths first (older
or foreign checkpoints). Optimizer state and the step are not taken.

Paths are '/'-joined with the collection first ('params/conv1/kernel',
'batch_stats/conv1_bn/mean'); the `skip` regex is matched against the path
without its collection ('head/kernel'), the same strings `frozen` and the
sharding rules see, so '^head/' keeps the whole head fresh.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from big_vision_like.checkpoint_reading import load_state
from big_vision_like.checkpointing import CheckpointError
from big_vision_like.sharding import path_str


@dataclasses.dataclass
class InitReport:
    loaded: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)  # fresh by `skip`
    missing: list[str] = dataclasses.field(default_factory=list)  # fresh: not in checkpoint
    unused: list[str] = dataclasses.field(default_factory=list)  # in checkpoint, not model

    def lines(self) -> list[str]:
        out = [f"loaded {len(self.loaded)}, kept fresh {len(self.skipped) + len(self.missing)}"
               f", unused {len(self.unused)}"]
        out += [f"loaded: {p}" for p in self.loaded]
        out += [f"kept fresh (skip pattern): {p}" for p in self.skipped]
        out += [f"kept fresh (not in checkpoint): {p}" for p in self.missing]
        out += [f"unused from checkpoint: {p}" for p in self.unused]
        return out


def _strip_collection(path: str) -> str:
    return path.partition("/")[2]


def load_variables(path: str) -> dict[str, np.ndarray]:
    """Model variables of a checkpoint step folder (<workdir>/checkpoints/<step>), flat
    by path. Reads this project's layout (`params` and `model_state/<collection>`)
    and the earlier one (`params` and `batch_stats` beside them)."""
    restored = load_state(path, what="init_from")
    collections = {"params": restored["params"]}
    collections.update(restored.get("model_state") or {})
    if "batch_stats" in restored:  # the earlier layout
        collections["batch_stats"] = restored["batch_stats"]
    return {path_str(p): np.asarray(v)
            for p, v in jax.tree_util.tree_leaves_with_path(collections)}


def merge(target: dict[str, Any], loaded: dict[str, np.ndarray], skip: str | None = None,
          load_hook: Callable[[dict[str, Any]], dict[str, Any]] | None = None
          ) -> tuple[dict[str, Any], InitReport]:
    """Copies `loaded` (flat, by path) into the variables `target` (params and other
    collections, arrays in their shardings). A shape mismatch that is not skipped is
    an error naming the path and both shapes."""
    if load_hook is not None:
        loaded = load_hook(dict(loaded))
    skip_re = re.compile(skip) if skip else None
    report = InitReport()
    used: set[str] = set()

    def pick(path, fresh):
        name = path_str(path)
        if skip_re and skip_re.search(_strip_collection(name)):
            report.skipped.append(name)
            return fresh
        if name not in loaded:
            report.missing.append(name)
            return fresh
        value = loaded[name]
        used.add(name)
        if tuple(value.shape) != tuple(fresh.shape):
            raise CheckpointError(
                f"init_from: {name} has shape {tuple(value.shape)} in the checkpoint but "
                f"{tuple(fresh.shape)} in the model; add a pattern matching it to "
                "init_from.skip to initialise it fresh.")
        report.loaded.append(name)
        return jax.device_put(np.asarray(value, fresh.dtype), fresh.sharding)

    merged = jax.tree_util.tree_map_with_path(pick, target)
    skipped_unused = {n for n in set(loaded) - used
                      if skip_re and skip_re.search(_strip_collection(n))}
    report.unused = sorted(set(loaded) - used - skipped_unused)
    if skip_re and not report.skipped and not skipped_unused:
        # As frozen and lr_mults: a pattern that matches nothing is a typo, and would
        # load what it was meant to keep fresh.
        some = ", ".join(sorted(_strip_collection(n) for n in loaded)[:3])
        raise CheckpointError(
            f"init_from.skip {skip!r} matches no variable of the model or the "
            f"checkpoint (names look like {some}); fix the pattern or unset it.")
    return merged, report
