"""The config schema: every config starts from it, sections are completed from it,
a run's config.json is read over it."""

import importlib
import json
import pathlib

import pytest

from big_vision_like.config import schema
from big_vision_like.config.cli import load_config
from big_vision_like.optim import default_optimizer_registry
from big_vision_like.schedules import default_schedule_registry
from tests.test_configs import CONFIGS

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _paths(d, prefix=""):
    out = set()
    for k, v in d.items():
        if isinstance(v, dict) and v and k not in ("model", "optimizer", "schedule", "evals",
                                                    "loss_kw"):
            out |= _paths(v, f"{prefix}{k}.")
        else:
            out.add(prefix + k)
    return out


@pytest.mark.parametrize("name", [f"configs.{n}" for n in CONFIGS] + ["studies.data_size.config",
                                                          "studies.dense.heldout_pretrain"])
def test_every_config_has_every_schema_field(name):
    config = json.loads(importlib.import_module(name).get_config().to_json_best_effort())
    missing = _paths(json.loads(schema.base().to_json_best_effort())) - _paths(config)
    assert not missing, f"{name} lacks {sorted(missing)}: start it from schema.base()"
    # Its optimizer and schedule sections hold every field their names take.
    assert set(config["optimizer"]) == set(schema.optimizer(config["optimizer"]))
    assert set(config["schedule"]) == set(schema.schedule(config["schedule"]))


def test_sections_are_completed_and_checked():
    assert schema.optimizer({"name": "rmsprop", "decay": 0.8}) == {
        "name": "rmsprop", "decay": 0.8, "eps": 1.0, "momentum": 0.9, "weight_decay": 0.0,
        "grad_clip_norm": None}
    assert schema.optimizer({})["name"] == "momentum"
    with pytest.raises(ValueError, match=r"schedule: cosine takes no \['warmup_step'\]; its "
                                         r"fields are \['base_lr', 'end_factor', "):
        schema.schedule({"name": "cosine", "warmup_step": 3})
    # A name a caller registered takes the fields every one of its kind takes.
    assert schema.optimizer({"name": "mine", "beta": 2}) == {
        "name": "mine", "grad_clip_norm": None, "beta": 2}


def test_the_tables_cover_every_registered_name():
    assert set(schema.OPTIMIZERS) == set(default_optimizer_registry())
    assert set(schema.SCHEDULES) == set(default_schedule_registry())


def test_every_field_of_a_section_is_set_from_the_shell():
    c, _ = load_config("configs/demo.py", ["--config.schedule.warmup_epochs=0.5",
                                           "--config.optimizer.grad_clip_norm=1.0",
                                           "--config.optimizer.nesterov=True"])
    assert c.schedule.warmup_epochs == 0.5 and c.optimizer.grad_clip_norm == 1.0
    assert c.optimizer.nesterov is True


def test_an_older_runs_config_reads_with_the_defaults_it_lacks():
    # The config.json a data-size run wrote on 2026-11-26, before the schema existed.
    text = (ROOT / "tests/fixtures/config_2026-11-26.json").read_text()
    assert "preemption_check_every" not in json.loads(text)
    c = schema.from_json(text)
    assert c.preemption_check_every == 1 and c.input.image_shape == (64, 64, 3)
    assert c.model.depth == 18 and c.input.data.subset_fraction == 0.125


def test_an_evaluator_is_completed_from_its_type_and_checked():
    import evaluators

    assert set(schema.EVALUATORS) == set(evaluators.default_registry())
    got = schema.evaluator("fasteval", {"type": "map_at_k", "data": {"split": "x"}, "k": 5})
    assert (got.k, got.weights, got.pred, got.every_steps, got.batch_size) == (
        5, "uniform", "predict", 1000, None)
    assert schema.evaluator("probe", {"type": "linear_probe"}).pred == "features"
    with pytest.raises(ValueError, match=r"evals.test: coco_ap takes no \['class_names'\]"):
        schema.evaluator("test", {"type": "coco_ap", "class_names": ("a",)})
    # A type a caller registered keeps its own fields over the common ones.
    assert schema.evaluator("x", {"type": "mine", "depth": 3}).depth == 3


def test_a_task_section_is_completed_and_checked():
    assert schema.task_section("pose", {"num_keypoints": 17, "radius": 32.0})["decoder"] == \
        "argmax"
    weights = schema.task_section("detection", None)["loss_weights"]
    assert weights == {"rpn_objectness": 1.0, "rpn_box": 2.0, "box_classes": 1.0,
                       "box_refinement": 2.0}
    assert schema.task_section("classification", None) == {}
    with pytest.raises(ValueError, match=r"the segmentation task takes no \['crop'\]"):
        schema.task_section("segmentation", {"crop": 3})
