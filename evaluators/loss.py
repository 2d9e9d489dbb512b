"""Mean loss of the model on an evaluation split (every example once)."""

from __future__ import annotations

from collections.abc import Iterator

from evaluators.common import EvalContext


class LossEvaluator:
    """The task's own loss, averaged over every real example of a split."""

    def __init__(self, config, context: EvalContext):
        self.config, self.ctx = config, context

    def run(self, variables) -> Iterator[tuple[str, float]]:
        total = count = 0.0
        for batch in self.ctx.eval_batches(self.config.data, self.config.pp,
                                           self.config.batch_size or self.ctx.batch_size):
            sums = self.ctx.batch_loss(variables, batch)
            total, count = total + sums["loss_sum"], count + sums["count"]
        yield "loss", float(total / max(float(count), 1.0))
        yield "examples", float(count)
