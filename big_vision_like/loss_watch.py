"""Which checkpoints were saved while the training loss was sane.

A run that diverges often stays finite for a while (loss 1e6, 1e12) before it
turns NaN, and checkpoints saved in that time hold diverged weights: resuming
from the latest one only diverges again. The rule kept here:

    step t's loss *spikes* when it is above `factor` times the median of the
    `window` losses before it (judged once `min_history` of them are known);
    a checkpoint is *sane* when no step since the checkpoint before it spiked.

The median follows a lasting change of level within `window / 2` steps, so
only a rise that keeps outrunning it (divergence) or a short spike marks
checkpoints; a loss that falls never does. The losses of the window travel
with each checkpoint, so a resumed run judges its first steps like the run
that saved it.
"""

from __future__ import annotations

import collections
import math
import statistics
from typing import Any


class LossWatch:
    def __init__(self, factor: float = 3.0, window: int = 100, min_history: int = 5):
        if not factor > 1:
            raise ValueError(f"loss_spike.factor={factor!r}: give a factor above 1 (a "
                             "loss this many times the running median is a spike).")
        if int(window) != window or window < 2:
            raise ValueError(f"loss_spike.window={window!r}: give at least 2 steps.")
        self.factor, self.min_history = float(factor), min(int(min_history), int(window))
        self._recent: collections.deque[float] = collections.deque(maxlen=int(window))
        self._spiked_since_save: int | None = None  # first spiking step since the last save

    def observe(self, step: int, loss: float) -> bool:
        """Records a finite loss; whether it spiked."""
        spike = (len(self._recent) >= self.min_history
                 and loss > self.factor * statistics.median(self._recent))
        if spike and self._spiked_since_save is None:
            self._spiked_since_save = step
        self._recent.append(loss)
        return spike

    def rule(self) -> str:
        return (f"no step's loss above {self.factor:g}x the median of the "
                f"{self._recent.maxlen} before it")

    def first_spike_since_save(self) -> int | None:
        return self._spiked_since_save

    def saved(self) -> dict[str, Any]:
        """What goes into the checkpoint being saved; starts the next interval."""
        record = {"sane": self._spiked_since_save is None,
                  "first_spike": self._spiked_since_save,
                  "recent_losses": list(self._recent)}
        self._spiked_since_save = None
        return record

    def resume(self, record: dict[str, Any] | None) -> None:
        """Takes up the window saved with the checkpoint a run resumes from."""
        losses = (record or {}).get("recent_losses") or ()
        self._recent.extend(float(x) for x in losses if math.isfinite(float(x)))
