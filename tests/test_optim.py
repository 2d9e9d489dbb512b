import jax.numpy as jnp
import numpy as np
import optax
import pytest

from big_vision_like import optim


def test_durations_in_steps_epochs_or_examples():
    assert optim.resolve_steps({"total_steps": 10}, "total", 32) == 10
    assert optim.resolve_steps({"total_examples": 100}, "total", 32) == 4
    assert optim.resolve_steps({"total_epochs": 2, "total_steps": None}, "total", 10, 55) == 11
    assert optim.resolve_steps({}, "warmup", 32, default=0) == 0
    assert optim.resolve_steps({"total_steps": 1, "total_epochs": 1}, "total", 8, 80) == 10
    with pytest.raises(ValueError, match="not \\['total_epochs', 'total_examples'\\]"):
        optim.resolve_steps({"total_examples": 1, "total_epochs": 1}, "total", 8, 80)
    with pytest.raises(ValueError, match="needs the training split's size"):
        optim.resolve_steps({"total_epochs": 1}, "total", 8)


def test_paper_staircase_schedule():
    # 1e-3, x0.9 every 3M examples, in steps of a 1600 batch.
    cfg = {"name": "staircase", "base_lr": 1e-3, "decay_factor": 0.9,
           "decay_every_examples": 3_200}
    fn = optim.build_schedule(cfg, total_steps=100, batch_size=1600)
    np.testing.assert_allclose([fn(0), fn(1), fn(2), fn(4)], [1e-3, 1e-3, 9e-4, 8.1e-4],
                               rtol=1e-6)


def test_warmup_then_cosine():
    fn = optim.build_schedule({"name": "cosine", "base_lr": 1.0, "warmup_steps": 10}, 110, 1)
    np.testing.assert_allclose([fn(0), fn(5), fn(10), fn(60), fn(110)],
                               [0, 0.5, 1.0, 0.5, 0.0], atol=1e-6)


def test_rmsprop_matches_tf1_float64_reference():
    # TF1 RMSPropOptimizer: ms starts at 1; ms = d ms + (1-d) g^2;
    # mom = m mom + lr g / sqrt(ms + eps); w -= mom; plus L2 wd*w on kernels.
    lr, d, m, eps, wd = 0.1, 0.9, 0.9, 1.0, 1e-2
    tx = optim.build_optimizer({"name": "rmsprop", "decay": d, "momentum": m, "eps": eps,
                                "weight_decay": wd}, lr)
    params = {"dense": {"kernel": jnp.array([1.0, -2.0]), "bias": jnp.array([0.5])}}
    state = tx.init(params)
    w = {k: np.float64(v) for k, v in params["dense"].items()}
    ms = {k: np.ones_like(v) for k, v in w.items()}
    mom = {k: np.zeros_like(v) for k, v in w.items()}
    for _ in range(5):
        grads = {"dense": {k: 2 * v for k, v in params["dense"].items()}}  # d/dw of w^2
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        for k in w:
            g = 2 * w[k] + (wd * w[k] if k == "kernel" else 0)
            ms[k] = d * ms[k] + (1 - d) * g * g
            mom[k] = m * mom[k] + lr * g / np.sqrt(ms[k] + eps)
            w[k] = w[k] - mom[k]
    for k in w:
        np.testing.assert_allclose(params["dense"][k], w[k], rtol=1e-5)


def test_weight_decay_only_on_kernels():
    params = {"conv": {"kernel": 1.0}, "bn": {"scale": 1.0, "bias": 1.0},
              "head": {"kernel": 1.0, "bias": 1.0}}
    assert optim.weight_decay_mask(params) == {
        "conv": {"kernel": True}, "bn": {"scale": False, "bias": False},
        "head": {"kernel": True, "bias": False}}


def test_unknown_names_are_errors():
    with pytest.raises(ValueError, match="unknown optimizer 'adam'"):
        optim.build_optimizer({"name": "adam"}, 0.1)
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        optim.build_schedule({"name": "linear", "base_lr": 1.0}, 10, 1)
