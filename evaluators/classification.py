"""Top-1 / top-5 accuracy and softmax loss on a single-label split."""

from __future__ import annotations

import numpy as np

from evaluators.common import EvalContext, collect_predictions


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of examples whose label is among the k highest logits."""
    k = min(k, logits.shape[1])
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())


def softmax_loss(logits: np.ndarray, labels: np.ndarray) -> float:
    z = logits - logits.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(z).sum(axis=1))
    return float((log_z - z[np.arange(len(labels)), labels]).mean())


class ClassificationEvaluator:
    """config: data, pp (keeping one-hot 'labels'), batch_size. Yields
    prec@1, prec@5 and loss."""

    def __init__(self, config, context: EvalContext):
        self.config, self.ctx = config, context

    def run(self, variables):
        got = collect_predictions(self.ctx, variables, self.config.data, self.config.pp,
                                  self.config.get("batch_size"),
                                  pred=self.config.get("pred", "predict"))
        logits = got["logits"].astype(np.float64)
        labels = got["labels"].argmax(axis=1)
        yield "prec@1", topk_accuracy(logits, labels, 1)
        yield "prec@5", topk_accuracy(logits, labels, 5)
        yield "loss", softmax_loss(logits, labels)
