"""The small model, optimizer and step the multi-process tests share."""

import jax
import optax

from big_vision_like import losses, sharding, train_step
from big_vision_like.models.resnet import ResNet

NUM_CLASSES, IMAGE_SHAPE = 16, (32, 32, 3)


def build(mesh, preset: str, seed: int = 0):
    """(state, shardings, jitted step) of a quarter-width ResNet-18 on `mesh`."""
    model = ResNet(depth=18, num_classes=NUM_CLASSES, width=0.25)
    tx = optax.sgd(0.1, momentum=0.9)
    state, shardings = train_step.create_train_state(
        model, tx, IMAGE_SHAPE, jax.random.key(seed), mesh, sharding.PRESETS[preset])
    step = train_step.jit_train_step(
        train_step.make_train_step(model, tx, losses.sigmoid_xent, mesh), shardings, mesh)
    return state, shardings, step
