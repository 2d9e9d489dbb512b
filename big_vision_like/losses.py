"""Losses on logits, averaged over the examples a mask keeps.

Sigmoid cross-entropy is per label and independent per class, so on a
class-sharded head each device computes its classes' terms and only the
per-example sums cross the `model` axis.

Tasks look a loss up by name (`config.loss`) in `default_registry()`, or in a
registry passed to them.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from big_vision_like.registry import Registry

# (logits, labels, mask or None) -> scalar loss averaged over kept examples.
LossFn = Callable[..., jax.Array]


def _masked_mean(per_example: jax.Array, mask: jax.Array | None) -> jax.Array:
    if mask is None:
        return per_example.mean()
    mask = mask.astype(per_example.dtype)
    return (per_example * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def sigmoid_xent(logits: jax.Array, labels: jax.Array,
                 mask: jax.Array | None = None, *, negatives: jax.Array | None = None,
                 unknown_weight: float = 1.0) -> jax.Array:
    """Per-label logistic loss summed over classes, averaged over examples.

    Numerically stable for any logit (log-sigmoid form); labels are multi-hot.

    With human-verified negatives (`negatives`, multi-hot like `labels`), a
    label that is neither a positive nor a verified negative is unknown: the
    class may be in the image unlabelled. Its term weighs `unknown_weight`;
    positives and verified negatives weigh 1. The default 1.0 weighs every
    label alike, the paper's loss (then `negatives` changes nothing).
    Without `negatives`, every non-positive label counts as unknown.
    """
    per_label = optax.sigmoid_binary_cross_entropy(logits.astype(jnp.float32),
                                                   labels.astype(jnp.float32))
    if unknown_weight != 1.0:
        known = labels > 0
        if negatives is not None:
            known |= negatives > 0
        per_label = jnp.where(known, per_label, jnp.float32(unknown_weight) * per_label)
    return _masked_mean(per_label.sum(axis=-1), mask)


def softmax_xent(logits: jax.Array, labels: jax.Array,
                 mask: jax.Array | None = None) -> jax.Array:
    """Softmax cross-entropy on one-hot (or soft) labels, averaged over examples."""
    per_example = optax.softmax_cross_entropy(logits.astype(jnp.float32),
                                              labels.astype(jnp.float32))
    return _masked_mean(per_example, mask)


def default_registry() -> Registry[LossFn]:
    """The standard losses; build a fresh one and `register` more to add a loss."""
    reg: Registry[LossFn] = Registry("loss")
    reg.register("sigmoid_xent", sigmoid_xent)
    reg.register("softmax_xent", softmax_xent)
    return reg
