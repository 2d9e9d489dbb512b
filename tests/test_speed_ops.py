"""models/speed_ops.py: each other form computes what the op it replaces
computes, with the same parameters (float32: only summation order differs)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from big_vision_like.models import speed_ops
from big_vision_like.models.resnet import ResNet


@pytest.mark.parametrize("height,width", [(16, 16), (15, 17), (224, 224)])
def test_space_to_depth_stem_is_the_7x7_stride_2_convolution(height, width):
    x = jax.random.normal(jax.random.key(3), (2, height, width, 3))
    fast = speed_ops.SpaceToDepthStemConv(4)
    reference = nn.Conv(4, (7, 7), (2, 2), padding=[(3, 3), (3, 3)], use_bias=False)
    params = reference.init(jax.random.key(0), x)
    fast_params = fast.init(jax.random.key(0), x)
    assert jax.tree.map(jnp.shape, fast_params) == jax.tree.map(jnp.shape, params)
    for a, b in zip(jax.tree.leaves(fast_params), jax.tree.leaves(params)):
        np.testing.assert_array_equal(a, b)  # same initialiser, same key
    # A distinctive kernel, so a transposed or shifted tap cannot pass.
    params = jax.tree.map(lambda p: jax.random.normal(jax.random.key(1), p.shape), params)
    want = reference.apply(params, x)
    got = fast.apply(params, x)
    assert got.shape == want.shape == (2, (height + 1) // 2, (width + 1) // 2, 4)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(jnp.abs(want).max()))


@pytest.mark.parametrize("size,dtype", [(8, jnp.float32), (9, jnp.float32),
                                        (8, jnp.bfloat16)])
def test_max_pool_gather_grad_is_max_pool_with_its_gradient(size, dtype):
    # Small integers: many ties inside windows, where the first maximum (row-major)
    # must get the gradient, as XLA's select-and-scatter gives it.
    x = jax.random.randint(jax.random.key(4), (2, size, size, 3), -3, 3).astype(dtype)
    reference = lambda x: nn.max_pool(x, (3, 3), (2, 2), padding="SAME")
    fast = lambda x: speed_ops.max_pool_gather_grad(x, 3, 2)
    np.testing.assert_array_equal(fast(x), reference(x))
    cotangent = jax.random.normal(jax.random.key(5), reference(x).shape).astype(dtype)
    grads = [jax.jit(jax.grad(lambda x, f=f: jnp.sum(f(x) * cotangent).astype(jnp.float32)))(x)
             for f in (fast, reference)]
    assert grads[0].dtype == dtype
    # The same inputs get gradient; where windows overlap, the sums' order differs.
    np.testing.assert_array_equal(grads[0] != 0, grads[1] != 0)
    rtol = 1e-6 if dtype == jnp.float32 else 1e-2
    np.testing.assert_allclose(np.asarray(grads[0], np.float32), np.asarray(grads[1], np.float32),
                               rtol=rtol, atol=rtol)
    assert float(jnp.abs(grads[1].astype(jnp.float32)).sum()) > 0


@pytest.mark.slow  # each op is checked alone above; this trains the whole model
def test_resnet_with_every_speed_op_trains_like_the_plain_ops():
    """Same parameter tree and initial values, and the same loss, gradients and
    batch statistics of a train step (the ops are the stem's: ResNet-18 at a
    small width carries them as ResNet-50 does)."""
    images = jax.random.normal(jax.random.key(6), (4, 32, 32, 3))
    models = [ResNet(depth=18, num_classes=7, width=0.25, head_bias_init=0.1,
                     stem_space_to_depth=False),
              ResNet(depth=18, num_classes=7, width=0.25, head_bias_init=0.1,
                     stem_space_to_depth=True, max_pool_gather_grad=True)]
    variables = [jax.jit(lambda r, m=m: m.init(r, images, train=False))(jax.random.key(0))
                 for m in models]
    assert jax.tree.structure(variables[0]) == jax.tree.structure(variables[1])
    for a, b in zip(jax.tree.leaves(variables[0]), jax.tree.leaves(variables[1])):
        np.testing.assert_array_equal(a, b)
    # Non-zero block-final scales and head, so every path carries gradient.
    params = jax.tree.map(lambda p: p + 0.1, variables[0]["params"])

    def loss(params, model):
        (logits, _), new = model.apply({"params": params,
                                        "batch_stats": variables[0]["batch_stats"]},
                                       images, train=True, mutable=["batch_stats"])
        return jnp.sum(jnp.sin(logits)), new

    step = jax.jit(jax.value_and_grad(loss, has_aux=True), static_argnums=1)
    results = [step(params, m) for m in models]
    (loss_a, stats_a), grads_a = results[0]
    (loss_b, stats_b), grads_b = results[1]
    np.testing.assert_allclose(loss_b, loss_a, rtol=1e-4)
    for a, b in zip(jax.tree.leaves((grads_a, stats_a)), jax.tree.leaves((grads_b, stats_b))):
        np.testing.assert_allclose(b, a, rtol=2e-3, atol=2e-3 * float(jnp.abs(a).max()) + 1e-5)


def test_resnet_stem_form_by_default_follows_the_backend():
    """Plain 7x7 convolution on the CPU (faster there), space-to-depth on GPUs/TPUs."""
    images = jax.random.normal(jax.random.key(7), (2, 16, 16, 3))
    default = ResNet(depth=18, num_classes=3, width=0.25)
    variables = default.init(jax.random.key(0), images)
    assert jax.default_backend() == "cpu"
    for form, want_equal in ((False, True), (True, False)):
        got = ResNet(depth=18, num_classes=3, width=0.25, stem_space_to_depth=form).apply(
            variables, images)[1]["conv1"]
        same = bool(jnp.array_equal(got, default.apply(variables, images)[1]["conv1"]))
        assert same == want_equal  # s2d differs by summation order only
