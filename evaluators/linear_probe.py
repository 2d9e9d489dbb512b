"""Linear probe: multinomial logistic regression on frozen features, on the devices.

Features are standardised with the training set's statistics; the weights
get an L2 penalty (the bias does not); full-batch L-BFGS (optax) runs in a
jitted while-loop until the gradient norm falls below `tol` or `max_iter`.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.tree_utils as otu

from evaluators.bootstrap import mean_interval
from evaluators.common import EvalContext, frozen_features


@partial(jax.jit, static_argnames=("num_classes", "max_iter"))
def fit_logistic_regression(x: jax.Array, y: jax.Array, num_classes: int, l2: float,
                            max_iter: int = 1000, tol: float = 1e-6) -> dict:
    """argmin_w,b mean softmax-xent(xW + b, y) + l2/2 |W|^2, to convergence."""
    params = {"w": jnp.zeros((x.shape[1], num_classes), x.dtype),
              "b": jnp.zeros((num_classes,), x.dtype)}
    onehot = jax.nn.one_hot(y, num_classes, dtype=x.dtype)

    def objective(p):
        logits = x @ p["w"] + p["b"]
        return (optax.softmax_cross_entropy(logits, onehot).mean()
                + 0.5 * l2 * jnp.sum(p["w"] ** 2))

    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(objective)

    def step(carry):
        p, state = carry
        value, grad = value_and_grad(p, state=state)
        updates, state = opt.update(grad, state, p, value=value, grad=grad,
                                    value_fn=objective)
        return optax.apply_updates(p, updates), state

    def going(carry):
        _, state = carry
        count = otu.tree_get(state, "count")
        return (count == 0) | ((count < max_iter) & (otu.tree_norm(otu.tree_get(state, "grad"))
                                                     >= tol))

    params, _ = jax.lax.while_loop(going, step, (params, opt.init(params)))
    return params


def probe_hits(train_x, train_y, test_x, test_y, l2: float, max_iter: int = 1000
               ) -> np.ndarray:
    """Per test image, whether the probe fitted on the training split gets it right."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    classes, train_idx = np.unique(train_y, return_inverse=True)
    params = fit_logistic_regression(jnp.asarray((train_x - mean) / std, jnp.float32),
                                     jnp.asarray(train_idx), len(classes), l2, max_iter)
    logits = jnp.asarray((test_x - mean) / std, jnp.float32) @ params["w"] + params["b"]
    return classes[np.asarray(logits.argmax(1))] == test_y


class LinearProbeEvaluator:
    """config: data_train, data_test, pp (keeping 'image' and an integer
    'label'), l2 (default 1e-4), max_iter. Yields 'accuracy'."""

    def __init__(self, config, context: EvalContext):
        self.config, self.ctx = config, context

    def run(self, variables):
        train = frozen_features(self.ctx, variables, self.config, self.config.data_train)
        test = frozen_features(self.ctx, variables, self.config, self.config.data_test)
        hits = probe_hits(*train, *test, self.config.l2, self.config.max_iter)
        yield "accuracy", float(np.mean(hits))
        yield from mean_interval(hits, "accuracy", self.config.bootstrap)
