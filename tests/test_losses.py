import jax.numpy as jnp
import numpy as np
import pytest

from big_vision_like import losses


def sigmoid_xent_f64(logits, labels):
    logits, labels = np.float64(logits), np.float64(labels)
    # log(1 + exp(-|x|)) form: exact in float64 for any logit.
    per = np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))
    return per.sum(-1)


def test_sigmoid_xent_matches_float64_reference_even_for_extreme_logits():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 5, (16, 37)).astype(np.float32)
    logits[0, :4] = [100.0, -100.0, 80.0, -80.0]
    labels = rng.random((16, 37)) < 0.2
    got = losses.sigmoid_xent(jnp.asarray(logits), jnp.asarray(labels))
    np.testing.assert_allclose(got, sigmoid_xent_f64(logits, labels).mean(), rtol=1e-5)
    assert np.isfinite(got)


def test_mask_drops_padding_examples():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(8, 5)).astype(np.float32)
    labels = rng.random((8, 5)) < 0.5
    mask = np.array([1, 1, 1, 0, 1, 0, 0, 1], bool)
    got = losses.sigmoid_xent(logits, labels, mask)
    np.testing.assert_allclose(got, sigmoid_xent_f64(logits, labels)[mask].mean(), rtol=1e-5)


def test_softmax_xent_matches_float64_reference():
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 3, (8, 10))
    labels = np.eye(10)[rng.integers(0, 10, 8)]
    z = logits - logits.max(-1, keepdims=True)
    want = -(labels * (z - np.log(np.exp(z).sum(-1, keepdims=True)))).sum(-1).mean()
    np.testing.assert_allclose(losses.softmax_xent(logits.astype(np.float32), labels),
                               want, rtol=1e-5)


def test_losses_are_found_by_name_in_a_registry():
    assert losses.default_registry().get("sigmoid_xent") is losses.sigmoid_xent
    reg = losses.default_registry()
    assert list(reg) == ["sigmoid_xent", "softmax_xent"]
    reg.register("zero", lambda logits, labels, mask=None: jnp.zeros(()))
    assert float(reg.get("zero")(jnp.ones((2, 3)), jnp.ones((2, 3)))) == 0.0
    with pytest.raises(KeyError, match="unknown loss 'zero'; known: sigmoid_xent, softmax_xent"):
        losses.default_registry().get("zero")  # built afresh, unchanged
