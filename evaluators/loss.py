"""Mean loss of the model on an evaluation split (every example once)."""

from __future__ import annotations

from collections.abc import Iterator

import jax
import jax.numpy as jnp

from evaluators.common import EvalContext


class LossEvaluator:
    def __init__(self, config, context: EvalContext):
        self.config, self.ctx = config, context

        def sums(variables, batch):
            logits, _ = context.predict(variables, batch["image"])
            mask = batch["_mask"].astype(jnp.float32)
            per_example = jax.vmap(lambda lg, lb: context.loss_fn(lg[None], lb[None]))(
                logits, batch["labels"])
            return (per_example * mask).sum(), mask.sum()
        self._sums = jax.jit(sums)

    def run(self, variables) -> Iterator[tuple[str, float]]:
        total = count = 0.0
        for batch in self.ctx.eval_batches(self.config.data, self.config.pp,
                                           self.config.get("batch_size") or self.ctx.batch_size):
            s, n = self._sums(variables, batch)
            total, count = total + s, count + n
        yield "loss", float(total / max(float(count), 1.0))
        yield "examples", float(count)
