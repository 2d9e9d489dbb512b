"""Top-1 / top-5 accuracy and softmax loss on a single-label split."""

from __future__ import annotations

import numpy as np

from evaluators.bootstrap import interval_metrics
from evaluators.common import (
    IMAGE_ID_KEY,
    EvalContext,
    collect_predictions,
    dedup_subsets,
)
from input_pipeline.image_ids import load_ids


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of examples whose label is among the k highest logits."""
    k = min(k, logits.shape[1])
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())


def softmax_loss(logits: np.ndarray, labels: np.ndarray) -> float:
    z = logits - logits.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(z).sum(axis=1))
    return float((log_z - z[np.arange(len(labels)), labels]).mean())


def classification_metrics(logits: np.ndarray, labels: np.ndarray,
                           keep: np.ndarray | None = None, suffix: str = ""
                           ) -> dict[str, float]:
    """prec@1, prec@5 and loss (names + `suffix`) of the examples `keep` selects."""
    if keep is not None:
        logits, labels = logits[keep], labels[keep]
    if not len(labels):
        raise ValueError(f"classification{suffix}: no examples left to score; exclude_ids "
                         "removes every evaluation example.")
    return {f"prec@1{suffix}": topk_accuracy(logits, labels, 1),
            f"prec@5{suffix}": topk_accuracy(logits, labels, 5),
            f"loss{suffix}": softmax_loss(logits, labels)}


class ClassificationEvaluator:
    """config: data, pp (keeping one-hot 'labels', and 'image_id' to exclude ids),
    batch_size, exclude_ids (file of ids or a list, e.g. near-duplicates of
    pre-training images). Yields prec@1, prec@5 and loss; with exclude_ids also
    excluded_examples and prec@1_dedup, prec@5_dedup, loss_dedup."""

    def __init__(self, config, context: EvalContext):
        self.config, self.ctx = config, context
        self.excluded = load_ids(config.exclude_ids)

    def run(self, variables):
        keys = ("labels", IMAGE_ID_KEY) if len(self.excluded) else ("labels",)
        got = collect_predictions(self.ctx, variables, self.config.data, self.config.pp,
                                  self.config.batch_size, keys=keys, pred=self.config.pred)
        logits = got["logits"].astype(np.float64)
        labels = got["labels"].argmax(axis=1)
        for suffix, keep in dedup_subsets(got.get(IMAGE_ID_KEY), self.excluded).items():
            if keep is not None:
                yield "excluded_examples", float((~keep).sum())
            yield from classification_metrics(logits, labels, keep, suffix).items()
            lk, ll = (logits, labels) if keep is None else (logits[keep], labels[keep])
            yield from interval_metrics(
                lambda idx, lk=lk, ll=ll, suffix=suffix: classification_metrics(
                    lk[idx], ll[idx], None, suffix), len(ll), self.config.bootstrap)
