"""Losses on logits, averaged over the examples a mask keeps.

Sigmoid cross-entropy is per label and independent per class, so on a
class-sharded head each device computes its classes' terms and only the
per-example sums cross the `model` axis.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from big_vision_like.registry import Registry


def _masked_mean(per_example: jax.Array, mask: jax.Array | None) -> jax.Array:
    if mask is None:
        return per_example.mean()
    mask = mask.astype(per_example.dtype)
    return (per_example * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def sigmoid_xent(logits: jax.Array, labels: jax.Array,
                 mask: jax.Array | None = None) -> jax.Array:
    """Per-label logistic loss summed over classes, averaged over examples.

    Numerically stable for any logit (log-sigmoid form); labels are multi-hot.
    """
    per_label = optax.sigmoid_binary_cross_entropy(logits.astype(jnp.float32),
                                                   labels.astype(jnp.float32))
    return _masked_mean(per_label.sum(axis=-1), mask)


def softmax_xent(logits: jax.Array, labels: jax.Array,
                 mask: jax.Array | None = None) -> jax.Array:
    """Softmax cross-entropy on one-hot (or soft) labels, averaged over examples."""
    per_example = optax.softmax_cross_entropy(logits.astype(jnp.float32),
                                              labels.astype(jnp.float32))
    return _masked_mean(per_example, mask)


def default_registry() -> Registry:
    return Registry("loss", {"sigmoid_xent": sigmoid_xent, "softmax_xent": softmax_xent})


def get_loss(name: str, registry: Registry | None = None):
    return (registry or default_registry()).get(name)
