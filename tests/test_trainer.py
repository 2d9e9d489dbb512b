"""The training loop: determinism, preemption and resume, NaN handling, evals."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from big_vision_like import checkpoint_reading, checkpointing, trainer
from big_vision_like.config.validate import ConfigError
from big_vision_like.step_monitor import NonFiniteLossError
from tests.helpers import data_dir_of, flip_a_bit_silently, tiny_config, tiny_config_file


def losses_by_step(workdir):
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    return [(r["step"], r["train/loss"]) for r in rows if "train/loss" in r]


@pytest.fixture(scope="module")
def uninterrupted(pretrained_tiny):
    return pretrained_tiny


class Preempted(Exception):
    pass


@pytest.mark.slow
def test_killed_and_resumed_run_ends_with_the_same_parameters(
        tiny_source, uninterrupted, tmp_path, monkeypatch):
    data_dir = tiny_source.builder.data_dir.split("/synthetic_jft")[0]
    workdir = str(tmp_path / "run_b")
    real_save = checkpointing.Checkpointer.save

    def save_then_die(self, step, state, data_state=None, **kwargs):
        real_save(self, step, state, data_state, **kwargs)
        if step == 4:
            raise Preempted  # the process dies right after checkpoint 4 was issued

    monkeypatch.setattr(checkpointing.Checkpointer, "save", save_then_die)
    with pytest.raises(Preempted):
        trainer.train(tiny_config(data_dir), workdir)
    monkeypatch.setattr(checkpointing.Checkpointer, "save", real_save)
    resumed = trainer.train(tiny_config(data_dir), workdir)

    a_dir, a_state = uninterrupted
    for x, y in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(a_state.params)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # Same seed, same losses; the metric stream was appended across the resume.
    assert losses_by_step(workdir) == losses_by_step(a_dir)
    assert [s for s, _ in losses_by_step(workdir)] == list(range(1, 9))
    config = json.load(open(os.path.join(workdir, "config.json")))
    assert config["batch_size"] == 16


def test_run_writes_metrics_evals_and_checkpoints(tiny_source, uninterrupted):
    workdir, state = uninterrupted
    assert int(state.step) == 8
    summary = trainer.summary(workdir)
    assert np.isfinite(summary["train/loss"]) and summary["fasteval_loss/examples"] == 500
    assert 0 < summary["fasteval/map@100"] <= 1 and 0 < summary["fasteval/map_all"] <= 1
    assert 0 < summary["fasteval/map@100_frequency_baseline"] < 1
    assert summary["train/examples_seen"] == 8 * 16
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints")))[-2:] == ["4", "8"]
    assert os.listdir(os.path.join(workdir, "tensorboard"))
    # Started again, a finished run resumes at its end and adds nothing.
    rows = losses_by_step(workdir)
    size = os.path.getsize(os.path.join(workdir, "metrics.jsonl"))
    again = trainer.train(tiny_config(tiny_source.builder.data_dir.split("/synthetic_jft")[0]),
                          workdir)
    assert int(again.step) == 8 and losses_by_step(workdir) == rows
    assert os.path.getsize(os.path.join(workdir, "metrics.jsonl")) == size


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_source, tmp_path):
    data_dir = tiny_source.builder.data_dir.split("/synthetic_jft")[0]
    config = tiny_config(data_dir, ckpt_steps=1, total_steps=6, evals={})
    config.schedule = dict(name="constant", base_lr=1e30)
    with pytest.raises(NonFiniteLossError, match="lower learning rate"):
        trainer.train(config, str(tmp_path))
    ckpts = checkpointing.Checkpointer(str(tmp_path / "checkpoints"))
    steps = ckpts.all_steps()
    ckpts.close()
    assert steps and max(steps) < 6  # some saved before the blow-up, none after
    for step in steps:
        params = checkpoint_reading.load_state(str(tmp_path / "checkpoints" / str(step)))["params"]
        assert all(np.isfinite(np.asarray(p)).all() for p in jax.tree.leaves(params))


def test_unknown_config_key_is_a_clear_error(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "big_vision_like.train", "--config", "configs/demo.py",
         "--workdir", str(tmp_path), "--config.batchsize=3"],
        capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "batchsize" in out.stderr


def test_init_from_checkpoint_reports_and_skips_by_name(tiny_source, uninterrupted, tmp_path):
    data_dir = tiny_source.builder.data_dir.split("/synthetic_jft")[0]
    source, source_state = uninterrupted
    ckpt = os.path.join(source, "checkpoints", "8")
    config = tiny_config(data_dir, total_steps=0, evals={})
    config.init_from = dict(checkpoint=ckpt, skip="^head/")
    state = trainer.train(config, str(tmp_path / "init"))
    np.testing.assert_array_equal(np.asarray(state.params["conv1"]["kernel"]),
                                  np.asarray(source_state.params["conv1"]["kernel"]))
    assert not np.asarray(state.params["head"]["kernel"]).any()  # fresh: zero-initialised

    config.model.width = 0.5
    with pytest.raises(checkpointing.CheckpointError,
                       match=r"conv1_bn/mean has shape \(16,\) in the checkpoint but \(32,\) "):
        trainer.train(config, str(tmp_path / "mismatch"))


@pytest.mark.slow
def test_evaluators_plug_in_by_name(tiny_source, uninterrupted, tmp_path):
    """classification, fewshot, linear_probe and map_at_k with excluded ids."""
    data_dir = tiny_source.builder.data_dir.split("/synthetic_jft")[0]
    source, _ = uninterrupted
    config = tiny_config(data_dir, total_steps=0)
    config.init_from = dict(checkpoint=os.path.join(source, "checkpoints", "8"), skip=None)
    single = ("decode|central_crop(32)|value_range(-1, 1)|object_label"
              "|keep('image', 'label')")
    ids_file = tmp_path / "duplicates.txt"
    ids_file.write_text("\n".join(str(i) for i in range(0, 500, 5)))  # 100 of 500
    config.evals = {
        "cls": dict(type="classification", data=dict(split="test"), every_steps=1,
                    pp=single.replace("keep('image', 'label')",
                                      "onehot(64, key='label')|keep('image', 'labels')")),
        "few": dict(type="fewshot", data_train=dict(split="train[:1000]"),
                    data_test=dict(split="test"), pp=single, shots=[1, 5], seeds=2,
                    every_steps=1),
        "probe": dict(type="linear_probe", data_train=dict(split="train[:1000]"),
                      data_test=dict(split="test"), pp=single, every_steps=1),
        "map": dict(type="map_at_k", data=dict(split="fasteval"), every_steps=1,
                    pp=("decode|central_crop(32)|value_range(-1, 1)"
                        "|multi_hot(fill_ancestors=False)|keep('image', 'labels', 'image_id')"),
                    exclude_ids=str(ids_file), weights="train_frequency", per_image=True),
    }
    trainer.train(config, str(tmp_path / "evals"))
    got = trainer.summary(str(tmp_path / "evals"))
    chance = 1 / 40
    assert got["cls/prec@5"] >= got["cls/prec@1"] >= 0
    assert got["few/5shot"] > chance and got["probe/accuracy"] > chance
    assert got["map/excluded_examples"] == 100
    assert 0 < got["map/map@100_dedup"] <= 1 and 0 < got["map/map@100_per_image"] <= 1


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_ends_with_the_same_parameters(tiny_source, tmp_path):
    """A real preemption: SIGKILL at whatever point the run has reached once a
    checkpoint exists (possibly mid-save); the resumed run must still end
    exactly where an uninterrupted one does."""
    import signal
    import time

    # No evaluations: only the parameters are compared.
    config_file = tiny_config_file(tmp_path / "config.py", data_dir_of(tiny_source),
                                   total_steps=16, ckpt_steps=2, evals={})

    def command(workdir):
        return [sys.executable, "-m", "big_vision_like.train", "--config", config_file,
                "--workdir", str(workdir)]

    killed = tmp_path / "killed"
    proc = subprocess.Popen(command(killed), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (killed / "checkpoints" / "2").exists() and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    subprocess.run(command(killed), check=True, capture_output=True, timeout=600)
    # The reference saves once, at the end: checkpoints do not change the parameters.
    subprocess.run([*command(tmp_path / "straight"), "--config.ckpt_steps=1000"], check=True,
                   capture_output=True, timeout=600)
    a = checkpoint_reading.load_state(str(killed / "checkpoints" / "16"))["params"]
    b = checkpoint_reading.load_state(str(tmp_path / "straight" / "checkpoints" / "16"))["params"]
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.slow  # a whole run; the unit conversions are test_durations' contract
def test_duration_fields_take_steps_epochs_or_examples(tiny_source, tmp_path):
    """log, ckpt, keep-list and eval schedules in other units than steps; kept
    steps are saved and survive the rotation. 2,000 examples, batch 16."""
    config = tiny_config(tiny_source.builder.data_dir.split("/synthetic_jft")[0], keep_ckpts=1)
    config.total_examples = 128  # 8 steps
    config.log_examples = 32  # every 2 steps
    config.ckpt_epochs = 0.032  # 64 examples: every 4 steps
    config.keep_ckpt_examples = (48,)  # step 3
    config.evals = {"fasteval": dict(config.evals.fasteval, every_examples=64,
                                     every_steps=None)}
    trainer.train(config, str(tmp_path))
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["step"] for r in rows if "train/loss" in r] == [2, 4, 6, 8]
    assert [r["step"] for r in rows if "fasteval/map@100" in r] == [4, 8]
    assert sorted(int(s) for s in os.listdir(tmp_path / "checkpoints")) == [3, 8]


@pytest.mark.slow
def test_a_final_evaluation_that_did_not_finish_runs_on_the_rerun(tiny_source, tmp_path,
                                                                  monkeypatch):
    """The run reached its last step but its final evaluation crashed: the rerun
    has nothing to train, runs the owed evaluations (not skips them), and a
    third run adds nothing."""
    from evaluators.map_at_k import MapAtKEvaluator

    config = tiny_config(tiny_source.builder.data_dir.split("/synthetic_jft")[0], total_steps=2,
                         ckpt_steps=2)
    real_run = MapAtKEvaluator.run

    def crash(self, variables):
        raise RuntimeError("evaluator bug")
        yield

    monkeypatch.setattr(MapAtKEvaluator, "run", crash)
    with pytest.raises(RuntimeError, match="evaluator bug"):
        trainer.train(config, str(tmp_path))
    assert "fasteval/map@100" not in trainer.summary(str(tmp_path))
    monkeypatch.setattr(MapAtKEvaluator, "run", real_run)
    trainer.train(config, str(tmp_path))
    got = trainer.summary(str(tmp_path))
    assert got["step"] == 2 and 0 < got["fasteval/map@100"] <= 1
    assert got["fasteval_loss/examples"] == 500
    size = os.path.getsize(tmp_path / "metrics.jsonl")
    trainer.train(config, str(tmp_path))
    assert os.path.getsize(tmp_path / "metrics.jsonl") == size


def test_resuming_with_another_model_names_the_array_and_keeps_the_config(tiny_source,
                                                                          tmp_path):
    config = tiny_config(tiny_source.builder.data_dir.split("/synthetic_jft")[0], total_steps=2,
                         ckpt_steps=2, evals={})
    trainer.train(config, str(tmp_path))
    config.total_steps = 4
    config.model.width = 0.5
    with pytest.raises(checkpointing.CheckpointError,
                       match=r"holds params/conv1/kernel with shape \(7, 7, 3, 16\), but the "
                             r"model here has \(7, 7, 3, 32\)"):
        trainer.train(config, str(tmp_path))
    saved = json.load(open(tmp_path / "config.json"))
    assert saved["model"]["width"] == 0.25 and saved["total_steps"] == 2


@pytest.mark.parametrize("field,value", [("batch_size", 0), ("batch_size", -16),
                                         ("eval_batch_size", 0)])
def test_a_batch_size_below_one_is_a_config_error(tiny_source, tmp_path, field, value):
    config = tiny_config(tiny_source.builder.data_dir.split("/synthetic_jft")[0])
    config[field] = value
    with pytest.raises(ConfigError, match=f"config.{field}: {value}: give a positive whole"):
        trainer.train(config, str(tmp_path))
    assert not (tmp_path / "checkpoints").exists()


def test_a_negative_total_steps_is_a_config_error(tiny_source, tmp_path):
    config = tiny_config(tiny_source.builder.data_dir.split("/synthetic_jft")[0], total_steps=-1)
    with pytest.raises(ConfigError, match=r"config.total_steps: -1: give a number of steps"):
        trainer.train(config, str(tmp_path))
    assert not (tmp_path / "metrics.jsonl").exists()


@pytest.mark.parametrize("field,value,message", [
    ("split", "fastevl", r"evals.fasteval.data: split 'fastevl' of synthetic_jft/tiny: .*"
                         r"it has \['fasteval', 'test', 'train'\]"),
    ("pp", "decode|centre_crop(32)", r"evals.fasteval.data: .*centre_crop"),
])
def test_evaluator_settings_are_checked_before_the_first_step(tiny_source, tmp_path, field,
                                                              value, message):
    config = tiny_config(tiny_source.builder.data_dir.split("/synthetic_jft")[0])
    if field == "split":
        config.evals.fasteval.data.split = value
    else:
        config.evals.fasteval.pp = value
    with pytest.raises(ValueError, match=message):
        trainer.train(config, str(tmp_path))
    assert not (tmp_path / "metrics.jsonl").exists()


def _damage(step_dir, how):
    files = sorted((p for p in step_dir.rglob("*") if p.is_file()),
                   key=lambda p: p.stat().st_size)
    if how == "truncated":
        biggest = files[-1]
        biggest.write_bytes(biggest.read_bytes()[: biggest.stat().st_size // 2])
    elif how == "bit_flipped":  # reads back as other finite values: only checksums see it
        flip_a_bit_silently(step_dir)
    else:  # the state's metadata gone
        for p in files:
            if p.name.startswith("_") and "state" in p.parts:
                p.unlink()


@pytest.mark.slow
def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before(tiny_source, tmp_path,
                                                                  caplog):
    import shutil

    config = tiny_config(tiny_source.builder.data_dir.split("/synthetic_jft")[0], evals={})
    straight = trainer.train(config, str(tmp_path / "straight"))
    for how in ("truncated", "metadata_missing", "bit_flipped"):
        workdir = tmp_path / how
        shutil.copytree(tmp_path / "straight", workdir)
        (workdir / "run.lock").unlink(missing_ok=True)
        _damage(workdir / "checkpoints" / "8", how)
        resumed = trainer.train(config, str(workdir))
        assert "checkpoint 8 cannot be used" in caplog.text
        assert (workdir / "checkpoints" / "8.unreadable").is_dir()  # kept, not deleted
        for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(straight.params)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        caplog.clear()
