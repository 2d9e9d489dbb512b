"""Mean intersection-over-union of semantic segmentation (paper Sec. 5.3, Table 12).

One exact, padded pass over a split: the predict function's full-resolution
logits are turned into class ids and counted into a confusion matrix on the
devices (a jitted update; logits never leave them). Pixels labelled
IGNORE_LABEL (255) and the padding examples (`_mask` False) are not counted.

Yields `miou` (mean over the classes that occur in the labels or the
predictions), `pixel_accuracy`, and one `iou/<class name>` per class (names
from the config's `class_names`, else the dataset's metadata
`segmentation_class_names`, else its `class_names` when there is one per
class, else the class id); a class that occurs nowhere gives NaN.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from big_vision_like.tasks.segmentation import LABEL_KEY
from evaluators.bootstrap import interval_metrics
from evaluators.common import DEDUP_SUFFIX, IMAGE_ID_KEY, EvalContext, to_host
from input_pipeline.image_ids import load_ids
from input_pipeline.keys import IGNORE_LABEL, MASK_KEY

# Device counts are int32 (JAX's default); they move to int64 on the host
# before they could overflow.
_INT32_MAX = 2 ** 31 - 1


def confusion_update(counts: jax.Array, logits: jax.Array, labels: jax.Array,
                     mask: jax.Array | None) -> jax.Array:
    """counts [C + 1, C] plus this batch's (true class, predicted class) pixel counts.

    Row C counts labelled pixels whose label is not a class id (>= C, < 0): a
    mismatch between the data and model.num_classes, reported as an error.
    """
    num_classes = logits.shape[-1]
    if labels.ndim == logits.ndim:
        labels = labels[..., 0]
    labels = labels.astype(jnp.int32)
    valid = labels != IGNORE_LABEL
    if mask is not None:
        valid &= mask.astype(bool)[:, None, None]
    labels = jnp.where((labels >= 0) & (labels < num_classes), labels, num_classes)
    pred = logits.argmax(-1).astype(jnp.int32)
    index = (labels * num_classes + pred).ravel()
    flat = jnp.zeros(((num_classes + 1) * num_classes,), jnp.int32)
    flat = flat.at[index].add(valid.ravel().astype(jnp.int32))
    return counts + flat.reshape(num_classes + 1, num_classes)


def image_confusions(logits: jax.Array, labels: jax.Array, mask: jax.Array) -> jax.Array:
    """[B, C + 1, C]: each image's own counts (the bootstrap resamples images)."""
    c = logits.shape[-1]
    zeros = jnp.zeros((c + 1, c), jnp.int32)
    return jax.vmap(lambda lo, la, m: confusion_update(zeros, lo[None], la[None], m[None]))(
        logits, labels, mask)


def keep_not_excluded(mask: jax.Array | None, image_ids: jax.Array, excluded: jax.Array
                      ) -> jax.Array:
    """The real examples (`mask`) whose id is not among `excluded`, on the devices."""
    keep = ~jnp.isin(image_ids, excluded)
    return keep if mask is None else keep & mask.astype(bool)


def scores(confusion: np.ndarray) -> dict[str, Any]:
    """{'iou': per-class IoU (NaN where a class occurs nowhere), 'miou', 'pixel_accuracy'}
    of a [C, C] (true, predicted) confusion matrix."""
    confusion = confusion.astype(np.float64)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
    total = confusion.sum()
    return {"iou": iou,
            "miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
            "pixel_accuracy": float(tp.sum() / total) if total else float("nan")}


def metric_names(num_classes: int, class_names: Sequence[str] | None) -> list[str]:
    if class_names is None or len(class_names) != num_classes:
        return [str(i) for i in range(num_classes)]
    names = [re.sub(r"[^A-Za-z0-9_.-]+", "_", str(n)) for n in class_names]
    # Two names that read the same once cleaned keep their ids apart.
    return names if len(set(names)) == len(names) else [f"{i}_{n}" for i, n in
                                                        enumerate(names)]


class MeanIoUEvaluator:
    """config: data, pp (keeping 'image' and 'segmentation'), batch_size, pred (a
    predict function giving full-resolution 'logits'; default 'predict'),
    class_names (optional), exclude_ids (file of ids or a list; the pp string
    then keeps 'image_id' too)."""

    def __init__(self, config, context: EvalContext):
        self.config, self.ctx = config, context
        self._update = jax.jit(confusion_update, donate_argnums=0)
        self._keep = jax.jit(keep_not_excluded)
        self._images = jax.jit(image_confusions)
        self.excluded = load_ids(config.exclude_ids)

    def _zeros(self, shape: tuple[int, ...]) -> jax.Array:
        # Replicated over the whole mesh: a global array on every process.
        return jax.device_put(np.zeros(shape, np.int32), NamedSharding(self.ctx.mesh, P()))

    def _class_names(self, num_classes: int) -> Sequence[str] | None:
        if self.config.class_names:
            names = list(self.config.class_names)
            if len(names) != num_classes:
                raise ValueError(f"miou: class_names has {len(names)} names but the model "
                                 f"predicts {num_classes} classes; give one per class.")
            return names
        meta = self.ctx.dataset_metadata(self.config.data) if self.ctx.dataset_metadata \
            else {}
        for key in ("segmentation_class_names", "class_names"):
            names = (meta or {}).get(key)
            if names is not None and len(names) == num_classes:
                return list(names)
        return None

    def _intervals(self, per_image: list, suffix: str) -> Iterator[tuple[str, float]]:
        counts = np.concatenate([c for c, _ in per_image]).astype(np.int64)
        if suffix:
            counts = counts[~np.isin(np.concatenate([i for _, i in per_image]), self.excluded)]

        def statistic(idx: np.ndarray) -> dict[str, float]:
            s = scores(counts[idx].sum(0)[:-1])
            return {f"miou{suffix}": s["miou"], f"pixel_accuracy{suffix}": s["pixel_accuracy"]}
        yield from interval_metrics(statistic, len(counts), self.config.bootstrap)

    def confusion(self, variables) -> np.ndarray:
        """The [C, C] (true, predicted) pixel counts of one pass, int64."""
        return self.confusions(variables)[""]

    def confusions(self, variables, per_image: list | None = None) -> dict[str, np.ndarray]:
        """Metric-name suffix -> [C, C] pixel counts of one pass: '' all images and,
        with exclude_ids, '_dedup' the images not excluded. With a `per_image` list,
        appends (each real image's [C + 1, C] counts, their image ids or None)."""
        predict = self.ctx.predict_fn(self.config.pred)
        suffixes = ("", DEDUP_SUFFIX) if len(self.excluded) else ("",)
        excluded = jax.device_put(self.excluded, NamedSharding(self.ctx.mesh, P()))
        total: dict[str, np.ndarray] = {}
        counts: dict[str, jax.Array] = {}
        pending = 0
        for batch in self.ctx.eval_batches(self.config.data, self.config.pp,
                                           self.config.batch_size or self.ctx.batch_size):
            if LABEL_KEY not in batch:
                raise KeyError(f"miou: evaluation batches have no {LABEL_KEY!r}; keep it in "
                               f"the evaluator's pp string (keep('image', '{LABEL_KEY}')).")
            if len(suffixes) > 1 and IMAGE_ID_KEY not in batch:
                raise KeyError(f"miou: exclude_ids needs {IMAGE_ID_KEY!r} in the batches; "
                               f"keep it in the pp string (keep(..., '{IMAGE_ID_KEY}')).")
            out = predict(variables, batch)
            if "logits" not in out:
                raise KeyError(f"miou: predict function gives {sorted(out)}, not 'logits'; "
                               "choose one that does with pred=... .")
            logits, labels = out["logits"], batch[LABEL_KEY]
            if logits.shape[:3] != labels.shape[:3]:
                raise ValueError(f"miou: logits {logits.shape[:3]} and labels "
                                 f"{labels.shape[:3]} differ; the predict function must "
                                 "give logits at the label maps' resolution.")
            if not counts:
                c = logits.shape[-1]
                total = {s: np.zeros((c + 1, c), np.int64) for s in suffixes}
                counts = {s: self._zeros((c + 1, c)) for s in suffixes}
            pixels = int(np.prod(labels.shape[:3]))
            if pending + pixels > _INT32_MAX:
                for s in suffixes:
                    total[s] += to_host(counts[s])
                    counts[s] = self._zeros(counts[s].shape)
                pending = 0
            mask = batch.get(MASK_KEY)
            if per_image is not None:
                real = np.ones(len(labels), bool) if mask is None else to_host(mask)
                counts_each = to_host(self._images(logits, labels, jnp.asarray(real)))
                ids = batch.get(IMAGE_ID_KEY)
                per_image.append((counts_each[real], None if ids is None else to_host(ids)[real]))
            masks = {"": mask}
            if len(suffixes) > 1:
                masks[DEDUP_SUFFIX] = self._keep(mask, batch[IMAGE_ID_KEY], excluded)
            for s in suffixes:
                counts[s] = self._update(counts[s], logits, labels, masks[s])
            pending += pixels
        if not counts:
            raise ValueError("miou: the evaluation split gave no batches.")
        for s in suffixes:
            total[s] += to_host(counts[s])
        unknown = int(total[""][-1].sum())
        if unknown:
            raise ValueError(f"miou: {unknown} labelled pixels have a label outside 0..."
                             f"{total[''].shape[1] - 1} (and not {IGNORE_LABEL}, the ignore "
                             "label); make model.num_classes match the dataset's classes.")
        return {s: t[:-1] for s, t in total.items()}

    def run(self, variables) -> Iterator[tuple[str, float]]:
        per_image: list | None = [] if self.config.bootstrap else None
        for suffix, confusion in self.confusions(variables, per_image).items():
            s = scores(confusion)
            yield f"miou{suffix}", s["miou"]
            yield f"pixel_accuracy{suffix}", s["pixel_accuracy"]
            if per_image:
                yield from self._intervals(per_image, suffix)
            names = metric_names(len(s["iou"]), self._class_names(len(s["iou"])))
            for name, value in zip(names, s["iou"]):
                yield f"iou{suffix}/{name}", float(value)
