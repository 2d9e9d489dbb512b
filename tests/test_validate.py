"""validate(): what a config gets wrong is found before any dataset is opened, one
line per problem naming the field and the fix; the command line exits 2."""

import importlib
import os
import subprocess
import sys
import time

import pytest

from big_vision_like.config.validate import ConfigError, validate
from configs import demo
from tests.helpers import xla_flags
from tests.test_configs import CONFIGS, ROOT

# The paper's batch of 6 (DeepLab on VOC) runs on 1, 2, 3 or 6 devices, not 8.
NOT_ON_8 = {"configs.transfer.deeplab_voc12_resnet101"}


@pytest.mark.parametrize("name", [f"configs.{n}" for n in CONFIGS] + ["studies.data_size.config",
                                                          "studies.dense.heldout_pretrain"])
def test_every_shipped_config_is_valid(name):
    c = importlib.import_module(name).get_config()
    validate(c, num_devices=1)
    if name in NOT_ON_8:
        with pytest.raises(ConfigError, match="batch_size: 6 is not divisible"):
            validate(c, num_devices=8)
    else:
        validate(c, num_devices=8)


def _problems(num_devices=8, num_processes=1, **fields) -> list[str]:
    c = demo.get_config()
    for path, value in fields.items():
        *parents, leaf = path.split("__")
        node = c
        for p in parents:
            node = node[p]
        node[leaf] = value
    with pytest.raises(ConfigError) as e:
        validate(c, num_devices, num_processes)
    return e.value.problems


@pytest.mark.parametrize("fields, want", [
    ({"task": "clasification"}, "config.task: unknown name 'clasification'; use one of "
                                "classification, detection, pose, segmentation."),
    ({"model__name": "resnt"}, "config.model.name: unknown name 'resnt'"),
    ({"loss": "sigmoid"}, "config.loss: unknown name 'sigmoid'; use one of sigmoid_xent"),
    ({"optimizer__name": "adam"}, "config.optimizer.name: unknown name 'adam'; use one of "
                                  "adamw, momentum, rmsprop."),
    ({"schedule__name": "linear"}, "config.schedule.name: unknown name 'linear'"),
    ({"optimizer__nesterv": True}, "config.optimizer: momentum takes no ['nesterv']; its "
                                   "fields are ['grad_clip_norm', 'momentum', 'nesterov', "),
    ({"schedule__warmup_step": 5}, "config.schedule: cosine takes no ['warmup_step']"),
    ({"sharding": "zero3"}, "config.sharding: unknown name 'zero3'; use one of fsdp"),
    ({"evals__fasteval__type": "mAP"}, "config.evals.fasteval.type: unknown name 'mAP'"),
    ({"evals__fasteval__kk": 5}, "config.evals.fasteval: map_at_k takes no ['kk']; its "
                                 "fields are ['baseline', 'batch_size', 'bootstrap', "),
    ({"task": "pose", "pose": {"radius": 3.0, "decodr": "hough"}},
     "config.pose: the pose task takes no ['decodr']; its fields are ['decoder', "),
    ({"batch_size": 100}, "config.batch_size: 100 is not divisible by the 1 process(es) x "
                          "8 device(s) on the data axis; use a multiple of 8."),
    ({"batch_size": 0}, "config.batch_size: 0: give a positive whole number."),
    ({"eval_batch_size": 20}, "config.eval_batch_size: 20 is not divisible"),
    ({"mesh__model": 3}, "config.mesh.model: 3 does not divide the 8 devices"),
    ({"mesh__data": 4}, "config.mesh: data=4 x model=1 is 4 devices but there are 8; set "
                        "mesh.data=-1 to use the rest."),
    ({"mesh__data": 0}, "config.mesh.data: 0: give a positive number of devices"),
    ({"total_steps": -1}, "config.total_steps: -1: give a number of steps, 0 or more."),
    ({"log_steps": 0}, "config.log_steps: 0: give a number of steps, more than 0."),
    ({"ckpt_steps": -5}, "config.ckpt_steps: -5: give a number of steps, more than 0."),
    ({"keep_ckpts": 0}, "config.keep_ckpts: 0: keep at least 1 checkpoint."),
    ({"evals__fasteval__every_steps": 0}, "config.evals.fasteval.every_steps: 0: give a "
                                          "number of steps, more than 0."),
    ({"schedule__base_lr": 0.0}, "config.schedule.base_lr: 0.0: give a learning rate above 0."),
    ({"schedule__warmup_steps": -1}, "config.schedule.warmup_steps: -1: give 0 or more steps."),
    ({"frozen": "conv[1"}, "config.frozen: 'conv[1' is not a regular expression"),
    ({"init_from__skip": "(head"}, "config.init_from.skip: '(head' is not a regular"),
    ({"lr_mults": (("head/(", 10.0),)}, "config.lr_mults[0]: 'head/(' is not a regular"),
    ({"sharding_rules": (("*", None),)}, "config.sharding_rules[0]: '*' is not a regular"),
    ({"lr_mults": ("head",)}, "config.lr_mults[0]: 'head': give (regex, value) pairs."),
    ({"input__pp": "decode|resize(72"}, "config.input.pp: the preprocessing string does "
                                        "not parse"),
    ({"evals__fasteval__pp": "decode|keep(image)"}, "config.evals.fasteval.pp: the "
                                                    "preprocessing string does not parse"),
    ({"input__image_shape": (64, 64)}, "config.input.image_shape: (64, 64): give (height, "
                                       "width, channels)"),
])
def test_each_problem_is_one_line_naming_the_field_and_the_fix(fields, want):
    problems = _problems(**fields)
    assert len(problems) == 1, problems
    assert problems[0].startswith(want), problems[0]
    assert "\n" not in problems[0]


def test_the_devices_and_processes_decide_what_divides():
    assert "use a multiple of 16" in _problems(num_devices=8, num_processes=2,
                                               batch_size=8)[0]
    validate(demo.get_config(), num_devices=4)  # 128 on 4 devices is fine
    assert _problems(num_devices=6, batch_size=128)[0].startswith(
        "config.batch_size: 128 is not divisible by the 1 process(es) x 6 device(s)")


def test_every_problem_is_reported_at_once():
    problems = _problems(task="x", batch_size=-1, frozen="(", schedule__base_lr=-0.1)
    assert [p.split(":")[0] for p in problems] == [
        "config.task", "config.batch_size", "config.schedule.base_lr", "config.frozen"]


def test_the_command_line_exits_2_in_seconds_before_any_data_is_opened(tmp_path):
    env = {**os.environ, "XLA_FLAGS": xla_flags(8), "JAX_PLATFORMS": "cpu"}
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "big_vision_like.train", "--config", "configs/demo.py",
         "--workdir", str(tmp_path / "w"), "--config.batch_size=100",
         f"--config.input.data.data_dir={tmp_path / 'tfds'}", "--config.frozen=conv[",
         "--config.evals.fasteval.type=mapk"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - start
    assert out.returncode == 2, out.stderr[-2000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert [e.split(":")[1].strip() for e in errors] == [
        "config.evals.fasteval.type", "config.batch_size", "config.frozen"]
    assert not (tmp_path / "tfds").exists() and not (tmp_path / "w").exists()
    assert "Traceback" not in out.stderr
    assert seconds < 30  # about 3 s alone on 2 cores; the bound allows a loaded machine
