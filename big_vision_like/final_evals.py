"""Which evaluators have completed their final evaluation, kept in the workdir.

A run killed during its final evaluation (or whose evaluator crashed and was
then fixed) resumes at its last step with nothing left to train; the record
says which final evaluations are still owed, so the rerun runs exactly those
instead of printing the previous evaluation's numbers as final.
`<workdir>/final_evals.json` holds {"step": <last step>, "done": [names]};
process 0 keeps it and tells the others, so every process runs the same
evaluators (they take part in the same collectives) even where the workdir
is not shared.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import jax
import numpy as np

from big_vision_like import filesystem as fs


class FinalEvals:
    def __init__(self, workdir: str, step: int):
        self.path = fs.join(workdir, "final_evals.json")
        self.step = step
        self._done: set[str] = set()
        if jax.process_index() == 0 and fs.exists(self.path):
            record = json.loads(fs.read_text(self.path))
            if record.get("step") == step:
                self._done = set(record.get("done", ()))

    def owed(self, names: Iterable[str]) -> list[str]:
        """The names whose final evaluation has not completed, agreed by all processes."""
        names = list(names)
        mask = np.array([name not in self._done for name in names], bool)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            mask = np.asarray(multihost_utils.broadcast_one_to_all(mask))
        return [name for name, owed in zip(names, mask) if owed]

    def mark_done(self, name: str) -> None:
        self._done.add(name)
        if jax.process_index() != 0:
            return
        # A kill mid-write leaves the previous record.
        fs.write_atomic(self.path, json.dumps({"step": self.step, "done": sorted(self._done)}))
