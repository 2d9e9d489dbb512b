"""The small model, optimizer and step the multi-process tests share."""

import jax
import optax

from big_vision_like import sharding, train_step
from big_vision_like.models.resnet import ResNet
from big_vision_like.tasks.classification import ClassificationTask

NUM_CLASSES, IMAGE_SHAPE = 16, (32, 32, 3)


def build(mesh, preset: str, seed: int = 0):
    """(state, shardings, jitted step) of a quarter-width ResNet-18 on `mesh`."""
    task = ClassificationTask(ResNet(depth=18, num_classes=NUM_CLASSES, width=0.25),
                              NUM_CLASSES)
    tx = optax.sgd(0.1, momentum=0.9)
    state, shardings = train_step.create_train_state(
        task, tx, IMAGE_SHAPE, jax.random.key(seed), mesh, sharding.PRESETS[preset])
    step = train_step.jit_train_step(train_step.make_train_step(task, tx, mesh), shardings,
                                     mesh)
    return state, shardings, step
