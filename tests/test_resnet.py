import jax
import jax.numpy as jnp
import pytest

from big_vision_like.models.resnet import ResNet


def count(model, size=224):
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0),
                                                  jnp.zeros((1, size, size, 3))))
    return sum(x.size for x in jax.tree.leaves(variables["params"]))


@pytest.mark.parametrize("depth,want", [(18, 11_689_512), (50, 25_557_032),
                                        (101, 44_549_160), (152, 60_192_808)])
def test_parameter_counts_match_the_standard_ones(depth, want):
    assert count(ResNet(depth=depth, num_classes=1000)) == want


def test_jft_head_size():
    # The paper: 2048 x 18,291 head, "over 36M parameters".
    head = count(ResNet(depth=101, num_classes=18_291)) - count(ResNet(depth=101, num_classes=0))
    assert head == 2048 * 18_291 + 18_291


@pytest.mark.parametrize("output_stride,conv5", [(32, 2), (16, 4), (8, 8)])
def test_named_stage_outputs_and_atrous_variants(output_stride, conv5):
    model = ResNet(depth=18, num_classes=10, width=0.25, output_stride=output_stride)
    x = jnp.zeros((2, 64, 64, 3))
    variables = model.init(jax.random.key(0), x)
    logits, out = model.apply(variables, x)
    assert logits.shape == (2, 10)
    assert out["conv1"].shape[1] == 32 and out["conv2"].shape[1] == 16
    assert out["conv5"].shape[1:3] == (conv5, conv5)
    assert out["pre_logits"].shape == (2, 128)  # 512 * width
    assert count(model, 64) == count(ResNet(depth=18, num_classes=10, width=0.25), 64)


def test_head_bias_init_and_bfloat16_compute():
    model = ResNet(depth=18, num_classes=5, width=0.25, head_bias_init=-10.0,
                   dtype=jnp.bfloat16)
    x = jnp.ones((1, 32, 32, 3))
    variables = model.init(jax.random.key(0), x)
    assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(variables))
    logits, _ = model.apply(variables, x)
    assert jnp.allclose(logits, -10.0)
