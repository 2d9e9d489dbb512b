"""A diverged run names the last checkpoint saved while the loss was sane, keeps it
past the rotation, and resumes from it when told (--resume_step)."""

import os
import re

import jax.numpy as jnp
import numpy as np
import pytest

from big_vision_like import checkpointing, trainer
from big_vision_like.loss_watch import LossWatch
from big_vision_like.metrics import read_metrics
from big_vision_like.step_monitor import NonFiniteLossError
from tests.helpers import data_dir_of, tiny_config


def test_a_loss_above_factor_times_the_running_median_is_a_spike():
    watch = LossWatch(factor=3.0, window=6, min_history=3)
    # Too little history to judge, then a falling loss: never a spike.
    assert not any(watch.observe(s, x) for s, x in enumerate([50.0, 1.0, 9.0, 1.0, 1.0, 1.0]))
    assert watch.saved()["sane"]
    assert not watch.observe(6, 2.9)  # the median of (50, 1, 9, 1, 1, 1) is 1
    assert watch.observe(7, 3.1)
    record = watch.saved()
    assert record["sane"] is False and record["first_spike"] == 7
    assert watch.saved()["sane"]  # each interval is judged on its own
    # A lasting change of level becomes the new normal within window / 2 steps.
    flags = [watch.observe(8 + i, 10.0) for i in range(6)]
    assert flags == [True] * 3 + [False] * 3


def test_the_window_travels_with_the_checkpoint():
    watch = LossWatch(factor=3.0, window=4, min_history=4)
    for s, x in enumerate([1.0, 1.0, 1.0, 1.0]):
        watch.observe(s, x)
    resumed = LossWatch(factor=3.0, window=4, min_history=4)
    resumed.resume(watch.saved())
    assert resumed.observe(5, 3.5)  # judged at once, like the run that saved it


@pytest.mark.parametrize("factor, window", [(1.0, 10), (3.0, 1)])
def test_spike_settings_are_checked(factor, window):
    with pytest.raises(ValueError, match="loss_spike"):
        LossWatch(factor=factor, window=window)


def test_the_last_sane_checkpoint_outlives_the_rotation_and_resume_from_sets_later_aside(
        tmp_path):
    ckpt = checkpointing.Checkpointer(str(tmp_path), keep=2, asynchronous=False)
    for step in range(1, 7):
        ckpt.save(step, {"w": jnp.full(2, float(step))}, {"next_index": step},
                  health={"sane": step <= 2})
    ckpt.wait()
    assert ckpt.all_steps() == [2, 5, 6] and ckpt.latest_sane_step() == 2
    ckpt.close()

    ckpt = checkpointing.Checkpointer(str(tmp_path), keep=2, asynchronous=False)
    assert ckpt.latest_sane_step() == 2  # read back from the checkpoints themselves
    assert ckpt.resume_from(2) == [5, 6]
    assert ckpt.latest_step() == 2
    assert sorted(os.listdir(tmp_path)) == ["2", "5.after_2", "6.after_2", "resume_steps.json"]
    state, data = ckpt.restore(2, {"w": jnp.zeros(2)})
    np.testing.assert_array_equal(state["w"], [2.0, 2.0])
    assert data[checkpointing.HEALTH]["sane"] and data["next_index"] == 2
    ckpt.save(3, {"w": jnp.zeros(2)}, health={"sane": True})
    ckpt.wait()
    # The same instruction again (a rerun after a preemption) keeps the new ones.
    assert ckpt.resume_from(2) == [] and ckpt.all_steps() == [2, 3]
    with pytest.raises(checkpointing.CheckpointError, match=r"no checkpoint 4; it has \[2, 3\]"):
        ckpt.resume_from(4)
    ckpt.close()


@pytest.mark.slow
def test_a_diverging_run_recovers_by_following_the_printed_advice(tiny_source, tmp_path):
    """Warmup to a learning rate far too high: the loss climbs for several
    checkpoints (finite, diverged) before it is NaN. The advice names an
    earlier checkpoint; resuming there with the learning rate lowered ends well."""
    config = tiny_config(data_dir_of(tiny_source), total_steps=24, ckpt_steps=2,
                         keep_ckpts=2, evals={})
    config.schedule = dict(name="constant", base_lr=20.0, warmup_steps=30)
    workdir = str(tmp_path)
    with pytest.raises(NonFiniteLossError) as diverged:
        trainer.train(config, workdir)
    advice = str(diverged.value)
    resume = int(re.search(r"--resume_step=(\d+)", advice).group(1))
    lr = float(re.search(r"--config\.schedule\.base_lr, now ([0-9.e+-]+)\)", advice).group(1))
    losses = {r["step"]: r["train/loss"] for r in read_metrics(workdir)}
    later = [int(s) for s in os.listdir(os.path.join(workdir, "checkpoints")) if s.isdigit()]
    assert [s for s in later if s > resume], "the latest checkpoints should be diverged"
    assert max(losses[s] for s in later if s > resume) > 1e3 * losses[resume]

    # 20 is 400x the tiny config's rate: at a tenth of it training stays on the
    # edge (losses swinging 26-260 in the last steps, the end a matter of
    # rounding), at a hundredth it settles.
    config.schedule.base_lr = lr / 100
    state = trainer.train(config, workdir, resume_step=resume)
    assert int(state.step) == 24
    recovered = {r["step"]: r["train/loss"] for r in read_metrics(workdir)}
    assert all(np.isfinite(recovered[s]) for s in range(resume + 1, 25))
    assert recovered[24] < 2 * losses[resume]
    assert all(f"{s}.after_{resume}" in os.listdir(os.path.join(workdir, "checkpoints"))
               for s in later if s > resume)
