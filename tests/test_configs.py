"""The paper's recipes, as configs: fields, schedules and models resolve as documented."""

import importlib
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from big_vision_like import mesh as mesh_lib
from big_vision_like import optim, trainer

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Every module in configs/ that builds a config.
CONFIGS = sorted(p.stem for p in (ROOT / "configs").glob("*.py")
                 if "def get_config(" in p.read_text())
REQUIRED = ["total_steps", "batch_size", "seed", "ckpt_steps"]


@pytest.mark.parametrize("name", CONFIGS)
def test_config_has_the_common_fields_and_builds_its_model(name):
    c = importlib.import_module(f"configs.{name}").get_config()
    for field in REQUIRED:
        assert field in c
    model = trainer.build_model(c.model, 600, mesh_lib.make_mesh(1, 8))
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0),
                                                  jnp.zeros((1, *c.input.image_shape))))
    assert variables["params"]["head"]["kernel"].shape[1] % 8 == 0


def test_jft_recipe_translates_the_paper_schedule_into_examples():
    c = importlib.import_module("configs.jft300m_resnet101").get_config()
    assert c.batch_size == 1600 and c.model.num_classes == 18_291
    total = optim.resolve_steps(c, "total", c.batch_size, 300_000_000)
    assert total == 90_000_000 * 32 // 1600 == 1_800_000
    lr = optim.build_schedule(c.schedule, total, c.batch_size)
    every = 3_000_000 * 32 // 1600  # 60,000 steps of 1600 = 3M worker steps of 32
    assert float(lr(every - 1)) == pytest.approx(1e-3)
    assert float(lr(every)) == pytest.approx(9e-4)
    assert float(lr(total)) == pytest.approx(1e-3 * 0.9 ** 30)


def test_imagenet_recipe_divides_by_ten_every_30_epochs():
    c = importlib.import_module("configs.imagenet_resnet101").get_config()
    epoch = 1_281_167
    lr = optim.build_schedule(c.schedule, 10 ** 6, c.batch_size, epoch)
    step_30_epochs = -(-30 * epoch // c.batch_size)
    assert float(lr(step_30_epochs - 1)) == pytest.approx(0.05)
    assert float(lr(step_30_epochs)) == pytest.approx(0.005)


def test_head_is_padded_to_the_model_axis():
    c = importlib.import_module("configs.jft300m_resnet101").get_config()
    for model_axis, width in [(1, 18_291), (2, 18_292), (4, 18_292), (8, 18_296)]:
        mesh = mesh_lib.make_mesh(8 // model_axis, model_axis)
        assert trainer.build_model(c.model, 18_291, mesh).num_classes == width


def test_configs_are_the_three_recipes_at_least():
    assert {"demo", "jft300m_resnet101", "imagenet_resnet101"} <= set(CONFIGS)


def test_every_config_loads_without_tensorflow():
    # Reading a config (the command line, a notebook, a tool) must not need
    # TensorFlow: None in sys.modules makes any import of it fail.
    code = ("import importlib, sys\n"
            "sys.modules['tensorflow'] = None\n"
            "sys.modules['tensorflow_datasets'] = None\n"
            f"for name in {CONFIGS!r}:\n"
            "    importlib.import_module('configs.' + name).get_config()\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
