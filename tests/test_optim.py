import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from big_vision_like import optim
from big_vision_like.durations import Durations
from big_vision_like.schedules import build_schedule, default_schedule_registry
from big_vision_like.sharding import path_str


def test_durations_in_steps_epochs_or_examples():
    assert Durations(32).steps({"total_steps": 10}, "total", allow_zero=True) == 10
    assert Durations(32).steps({"total_examples": 100}, "total", allow_zero=True) == 4
    assert Durations(10, 55).steps({"total_epochs": 2, "total_steps": None}, "total") == 11
    assert Durations(32).steps({}, "warmup", 0, allow_zero=True) == 0
    assert Durations(8, 80).steps({"total_steps": 1, "total_epochs": 1}, "total") == 10
    with pytest.raises(ValueError, match="not \\['total_epochs', 'total_examples'\\]"):
        Durations(8, 80).steps({"total_examples": 1, "total_epochs": 1}, "total")
    with pytest.raises(ValueError, match="needs the training split's size"):
        Durations(8).steps({"total_epochs": 1}, "total", allow_zero=True)


def test_paper_staircase_schedule():
    # 1e-3, x0.9 every 3M examples, in steps of a 1600 batch.
    cfg = {"name": "staircase", "base_lr": 1e-3, "decay_factor": 0.9,
           "decay_every_examples": 3_200}
    fn = build_schedule(cfg, total_steps=100, batch_size=1600)
    np.testing.assert_allclose([fn(0), fn(1), fn(2), fn(4)], [1e-3, 1e-3, 9e-4, 8.1e-4],
                               rtol=1e-6)


def test_warmup_then_cosine():
    fn = build_schedule({"name": "cosine", "base_lr": 1.0, "warmup_steps": 10}, 110, 1)
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


def test_unknown_names_are_errors_that_list_the_known_ones():
    with pytest.raises(KeyError, match="unknown optimizer 'adam'; known: adamw, momentum, "
                                       "rmsprop"):
        optim.build_optimizer({"name": "adam"}, 0.1)
    with pytest.raises(KeyError, match="unknown schedule 'linear'; known: constant, cosine, "
                                       "piecewise, poly, staircase"):
        build_schedule({"name": "linear", "base_lr": 1.0}, 10, 1)


def test_an_optimizer_or_schedule_is_added_through_a_registry():
    opts = optim.default_optimizer_registry()
    opts.register("plain_sgd", lambda cfg, lr: optax.sgd(lr))
    tx = optim.build_optimizer({"name": "plain_sgd"}, 0.5, opts)
    params = {"w": jnp.array([1.0, 2.0])}
    updates, _ = tx.update({"w": jnp.array([1.0, -4.0])}, tx.init(params), params)
    np.testing.assert_array_equal(updates["w"], [-0.5, 2.0])
    assert "plain_sgd" not in optim.default_optimizer_registry()  # nothing global changed

    scheds = default_schedule_registry()
    scheds.register("half", lambda cfg, ctx: lambda step: ctx.base_lr / 2)
    fn = build_schedule({"name": "half", "base_lr": 0.4, "warmup_steps": 2}, 10,
                              Durations(8), registry=scheds)
    np.testing.assert_allclose([fn(0), fn(1), fn(2), fn(9)], [0.0, 0.2, 0.2, 0.2])


def tiny_params():
    rng = np.random.default_rng(0)
    return {"stem": {"kernel": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32),
                     "bias": jnp.asarray(rng.normal(size=(4,)), jnp.float32)},
            "head": {"kernel": jnp.asarray(rng.normal(size=(4, 2)), jnp.float32),
                     "bias": jnp.asarray(rng.normal(size=(2,)), jnp.float32)}}


def run_updates(tx, params, grads_seq):
    state = tx.init(params)
    for grads in grads_seq:
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return params, state


@pytest.mark.parametrize("name", ["rmsprop", "momentum", "adamw"])
def test_frozen_parameters_stay_bit_identical_and_hold_no_state(name):
    params = tiny_params()
    rng = np.random.default_rng(1)
    grads_seq = [jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)
                 for _ in range(4)]
    tx = optim.build_optimizer({"name": name, "weight_decay": 0.1, "grad_clip_norm": 1.0},
                               0.1, frozen="^stem/")
    new, state = run_updates(tx, params, grads_seq)
    for k in ("kernel", "bias"):
        np.testing.assert_array_equal(np.asarray(new["stem"][k]).view(np.uint32),
                                      np.asarray(params["stem"][k]).view(np.uint32))
        assert not np.allclose(new["head"][k], params["head"][k])
    leaves = [(path_str(p), x) for p, x in jax.tree_util.tree_flatten_with_path(state)[0]]
    assert not [p for p, _ in leaves if "stem" in p]
    assert [p for p, _ in leaves if "head/kernel" in p]
    # Slots (mu, nu, momentum, ...) exist only for the head's 10 of 26 parameters.
    unfrozen = optim.build_optimizer({"name": name, "weight_decay": 0.1}, 0.1)
    assert slot_sizes(state) * 26 == slot_sizes(unfrozen.init(params)) * 10 > 0


def slot_sizes(opt_state):
    return sum(np.size(x) for x in jax.tree.leaves(opt_state) if np.ndim(x) > 0)


def test_frozen_through_build_optimizer():
    params = tiny_params()
    with pytest.raises(ValueError, match="set config.frozen instead"):
        optim.build_optimizer({"name": "momentum", "frozen": "head"}, 0.1)
    tx = optim.build_optimizer({"name": "momentum"}, 0.1, frozen="head")
    grads = jax.tree.map(jnp.ones_like, params)
    new, _ = run_updates(tx, params, [grads])
    np.testing.assert_array_equal(new["head"]["kernel"], params["head"]["kernel"])
    np.testing.assert_allclose(new["stem"]["bias"], params["stem"]["bias"] - 0.1, rtol=1e-6)


def test_lr_mults_scale_updates_first_matching_rule_wins():
    params = {"a": {"kernel": jnp.array([1.0, 2.0])}, "b": {"kernel": jnp.array([3.0, -1.0])},
              "c": {"bias": jnp.array([0.5, 0.5])}}
    grads = jax.tree.map(lambda _: jnp.array([0.3, -0.7]), params)
    tx = optim.build_optimizer({"name": "momentum", "momentum": 0.0}, 0.1,
                               lr_mults=(("^a/", 0.5), ("kernel", 3.0)))
    updates, _ = tx.update(grads, tx.init(params), params)
    plain = -0.1 * jnp.array([0.3, -0.7])
    np.testing.assert_array_equal(updates["c"]["bias"], plain)  # unmatched: 1.0
    np.testing.assert_array_equal(updates["a"]["kernel"], 0.5 * plain)
    np.testing.assert_allclose(updates["b"]["kernel"], 3.0 * plain, rtol=1e-6)
    as_dict = optim.build_optimizer({"name": "momentum", "momentum": 0.0}, 0.1,
                                    lr_mults={"^a/": 0.5})
    updates, _ = as_dict.update(grads, as_dict.init(params), params)
    np.testing.assert_array_equal(updates["a"]["kernel"], 0.5 * plain)
    np.testing.assert_array_equal(updates["b"]["kernel"], plain)


def test_a_regex_that_matches_nothing_is_an_error_naming_it():
    params = tiny_params()
    with pytest.raises(ValueError, match=r"frozen '\^stme/' matches no parameter; "
                                         r"parameters are e.g. head/bias"):
        optim.build_optimizer({"name": "momentum"}, 0.1, frozen="^stme/").init(params)
    with pytest.raises(ValueError, match=r"lr_mults rule 'haed' matches no parameter"):
        optim.build_optimizer({"name": "momentum"}, 0.1,
                              lr_mults=(("head", 2.0), ("haed", 2.0))).init(params)
    with pytest.raises(ValueError, match=r"frozen '\(' is not a valid regex"):
        optim.build_optimizer({"name": "momentum"}, 0.1, frozen="(")
    with pytest.raises(ValueError, match="multiplier must be a number >= 0"):
        optim.build_optimizer({"name": "momentum"}, 0.1, lr_mults=(("head", -1.0),))


@pytest.mark.parametrize("name", ["rmsprop", "momentum", "adamw"])
def test_grad_clip_norm_works_for_every_optimizer(name):
    # A huge first gradient clipped to norm 1 must act like that gradient
    # rescaled by hand; the second, small one passes unchanged. Adam is nearly
    # scale-invariant in one step, so two steps of different size tell.
    params = {"dense": {"kernel": jnp.array([1.0, -2.0, 3.0]), "bias": jnp.array([0.5])}}
    big = {"dense": {"kernel": jnp.array([300.0, -100.0, 50.0]), "bias": jnp.array([100.0])}}
    small = jax.tree.map(lambda g: g * 1e-3, big)
    norm = float(optax.global_norm(big))
    cfg = {"name": name, "weight_decay": 1e-2}
    clipped, _ = run_updates(optim.build_optimizer({**cfg, "grad_clip_norm": 1.0}, 0.1),
                             params, [big, small])
    by_hand, _ = run_updates(optim.build_optimizer(cfg, 0.1), params,
                             [jax.tree.map(lambda g: g / norm, big), small])
    unclipped, _ = run_updates(optim.build_optimizer(cfg, 0.1), params, [big, small])
    for k in ("kernel", "bias"):
        np.testing.assert_allclose(clipped["dense"][k], by_hand["dense"][k], rtol=1e-5)
        assert not np.allclose(clipped["dense"][k], unclipped["dense"][k], rtol=1e-3)
