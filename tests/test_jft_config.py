"""configs/jft300m_resnet101.py runs end to end (smoke size) and compiles at full size."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from big_vision_like import mesh as mesh_lib
from big_vision_like import optim, train_step, trainer
from big_vision_like import sharding as sharding_lib
from big_vision_like.durations import Durations
from big_vision_like.schedules import build_schedule
from configs import jft300m_resnet101 as jft
from input_pipeline.pp.recipes import paper_eval, paper_train

SMOKE = "synthetic_jft/jft_smoke"  # JFT's 18,291-class taxonomy, 32 px, few images


def smoke_config(data_dir: str):
    """The JFT recipe at smoke size: only sizes change, not the recipe's kind."""
    c = jft.get_config()
    c.input.data = dict(name=SMOKE, split="train", data_dir=data_dir)
    c.input.image_shape = (32, 32, 3)
    # The paper's 340 -> 299 ratio at 32 px.
    c.input.pp = paper_train(crop=32, resize=36) + "|multi_hot(18291)|keep('image', 'labels')"
    c.input.shuffle_buffer = 64
    c.batch_size = 16
    c.total_examples = None  # examples would override steps
    c.total_steps = 2
    c.keep_ckpt_examples = None  # Table 4's are far beyond 2 steps
    c.ckpt_steps = 2
    c.log_steps = 1
    c.mesh = dict(data=4, model=2)
    c.model.depth = 50
    c.model.width = 0.25
    ev = c.evals.fasteval
    ev.data = dict(name=SMOKE, split="fasteval", data_dir=data_dir)
    ev.pp = (paper_eval(crop=32, resize=36)
             + "|multi_hot(18291, fill_ancestors=False)|keep('image', 'labels')")
    c.eval_batch_size = 64
    return c


@pytest.mark.slow
def test_jft_config_trains_and_reports_map_at_100_on_the_jft_sized_dataset(tmp_path_factory):
    data_dir = os.environ.get("BVL_TEST_DATA_DIR") or str(tmp_path_factory.mktemp("tfds"))
    workdir = str(tmp_path_factory.mktemp("jft_smoke_run"))
    state = trainer.train(smoke_config(data_dir), workdir)
    assert int(state.step) == 2
    assert state.params["head"]["kernel"].shape[1] == 18_292  # 18,291 padded to model=2
    summary = trainer.summary(workdir)
    assert np.isfinite(summary["train/loss"])
    assert 0 < summary["fasteval/map@100"] <= 1


@pytest.mark.slow  # ~30 s of XLA:CPU compilation of ResNet-101 at 299 px, any batch
def test_full_size_jft_train_step_compiles():
    c = jft.get_config()
    mesh = mesh_lib.make_mesh(4, 2)
    total = Durations(c.batch_size, 300_000_000).steps(c, "total", allow_zero=True)
    tx = optim.build_optimizer(c.optimizer, build_schedule(c.schedule, total,
                                                                 c.batch_size))
    task = trainer.build_task(c, mesh, c.model.num_classes)
    rules = sharding_lib.rules_for(c.sharding, c.sharding_rules)
    compiled, abstract, _ = train_step.compile_abstract_step(
        task, tx, mesh, rules,
        {"image": ((c.batch_size, *c.input.image_shape), jnp.float32),
         "labels": ((c.batch_size, c.model.num_classes), jnp.float32)})
    assert abstract.params["head"]["kernel"].shape == (2048, 18_292)
    assert compiled.memory_analysis() is not None
    jax.clear_caches()
