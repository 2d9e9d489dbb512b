"""Durations in steps, epochs or examples, and the command line's unit winning."""

import os
import subprocess
import sys

import ml_collections
import pytest
from ml_collections.config_dict import placeholder

from big_vision_like.durations import Durations, apply_override_precedence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_unit_rounds_up_to_whole_steps():
    d = Durations(batch_size=8, examples_per_epoch=60)
    assert d.steps({"log_steps": 7}, "log") == 7
    assert d.steps({"log_examples": 17}, "log") == 3
    assert d.steps({"log_epochs": 0.5}, "log") == 4  # 30 examples
    assert d.steps({"log_steps": 7, "log_epochs": 2}, "log") == 15  # steps are the default
    assert d.steps({}, "log", default=50) == 50
    assert d.maybe_steps({"keep_ckpt_steps": None}, "keep_ckpt") is None
    # Decimal epochs as typed: 0.3 * 10 examples / batch 3 is one step, not two.
    assert Durations(3, 10).steps({"x_epochs": 0.3}, "x") == 1


def test_bad_durations_name_the_field():
    d = Durations(batch_size=8, examples_per_epoch=60)
    with pytest.raises(ValueError, match="log_steps=0 is 0 steps; it must be at least one"):
        d.steps({"log_steps": 0}, "log")
    with pytest.raises(ValueError, match="every_examples=-8 is -1 steps"):
        d.steps({"every_examples": -8}, "every")
    assert d.steps({"warmup_steps": 0}, "warmup", allow_zero=True) == 0
    with pytest.raises(ValueError, match="warmup_epochs=-1 is -7 steps; it must be zero or"):
        d.steps({"warmup_epochs": -1}, "warmup", allow_zero=True)
    with pytest.raises(ValueError, match="log_steps=2.5 is not a whole number of steps"):
        d.steps({"log_steps": 2.5}, "log")
    with pytest.raises(ValueError, match="set log_steps, log_epochs or log_examples"):
        d.steps({}, "log")
    with pytest.raises(ValueError, match="give one of total_steps/_epochs/_examples"):
        d.steps({"total_epochs": 1, "total_examples": 8}, "total")
    with pytest.raises(ValueError, match="total_epochs needs the training split's size"):
        Durations(8).steps({"total_epochs": 1}, "total")


def test_lists_in_any_unit():
    d = Durations(batch_size=10, examples_per_epoch=100)
    assert d.steps_list({"keep_ckpt_steps": [5, 20]}, "keep_ckpt") == (5, 20)
    assert d.steps_list({"keep_ckpt_epochs": (1, 2.5)}, "keep_ckpt") == (10, 25)
    assert d.steps_list({"keep_ckpt_examples": (1, 101)}, "keep_ckpt") == (1, 11)
    assert d.steps_list({}, "keep_ckpt", default=()) == ()
    with pytest.raises(ValueError, match=r"keep_ckpt_epochs\[1\]=0 is 0 steps"):
        d.steps_list({"keep_ckpt_epochs": (1, 0)}, "keep_ckpt")
    with pytest.raises(ValueError, match="keep_ckpt_steps=5 should be a sequence"):
        d.steps_list({"keep_ckpt_steps": 5}, "keep_ckpt")


def test_works_on_config_dicts():
    c = ml_collections.ConfigDict({"total_steps": 100, "total_epochs": placeholder(float),
                                   "evals": {"a": {"every_epochs": 1}}})
    d = Durations(batch_size=4, examples_per_epoch=10)
    assert d.steps(c, "total") == 100
    assert d.steps(c.evals.a, "every") == 3


def demo_like_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.total_steps = placeholder(int)
    c.total_epochs = placeholder(float)
    c.total_examples = 2_880_000  # a plain int, not a placeholder
    c.log_steps = 50
    c.schedule = dict(base_lr=0.1, warmup_steps=100, warmup_epochs=placeholder(float))
    c.evals = ml_collections.ConfigDict()
    c.evals.fast = dict(every_steps=500, every_epochs=placeholder(float))
    c.lock()
    return c


def test_the_unit_given_on_the_command_line_wins():
    c = demo_like_config()
    c.total_epochs = 2.0  # what config_flags has already done with the overrides
    c.schedule.warmup_epochs = 1.0
    c.evals.fast.every_epochs = 0.5
    cleared = apply_override_precedence(
        c, ["total_epochs", "schedule.warmup_epochs", "evals.fast.every_epochs", "log_steps"])
    assert sorted(cleared) == ["evals.fast.every_steps", "schedule.warmup_steps",
                               "total_examples"]
    assert c.total_examples is None and c.total_steps is None and c.total_epochs == 2.0
    assert c.schedule.warmup_steps is None and c.evals.fast.every_steps is None
    assert c.log_steps == 50
    d = Durations(batch_size=100, examples_per_epoch=1000)
    assert d.steps(c, "total") == 20
    assert d.steps(c.schedule, "warmup") == 10
    # A locked config still takes the cleared field back, with its type checked.
    c.total_examples = 5
    with pytest.raises(TypeError):
        c.total_examples = "five"


def test_two_units_of_one_name_on_the_command_line_are_an_error():
    with pytest.raises(ValueError, match="--config.total_epochs and --config.total_examples"):
        apply_override_precedence(demo_like_config(), ["total_epochs", "total_examples"])


def test_command_line_total_epochs_replaces_the_files_total_steps(tmp_path):
    # demo.py sets total_steps; --print_config exits before jax or training start.
    cmd = [sys.executable, "-m", "big_vision_like.train", "--config", "configs/demo.py",
           "--workdir", str(tmp_path), "--config.total_epochs=2",
           "--config.evals.fasteval.every_steps=7", "--print_config"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True,
                         timeout=120).stdout
    c = ml_collections.ConfigDict(__import__("json").loads(out))
    assert c.total_epochs == 2.0 and c.total_steps is None and c.total_examples is None
    assert c.evals.fasteval.every_steps == 7
