"""The per-step check of the training loop: a finite loss and finite
parameters, the loss spike rule (loss_watch), progress and metric rows.
A diverged run stops with a message naming the checkpoint to resume from."""

from __future__ import annotations

import math

import jax
from absl import logging

from big_vision_like.profiling import StepTimer


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the checkpoint to resume from."""


class StepMonitor:
    """Checks each step's loss (one step late, so the host never waits on the
    device), logs it, and stops a diverged run naming where to resume."""

    def __init__(self, writer, progress, schedule, log_steps, train_iter, watch, ckpt, config):
        self.writer, self.progress, self.schedule = writer, progress, schedule
        self.log_steps, self.train_iter, self.watch = log_steps, train_iter, watch
        self.ckpt, self.config = ckpt, config
        self.timer = StepTimer()  # the loop times next(train_iter) with it

    def check_and_log(self, step: int, metrics: dict[str, jax.Array]) -> None:
        loss = float(jax.device_get(metrics["train/loss"]))
        if not math.isfinite(loss) or not bool(jax.device_get(metrics["train/params_finite"])):
            raise self._diverged(step, f"train loss is {loss}" if not math.isfinite(loss)
                                 else "the parameters became non-finite")
        if self.watch.observe(step, loss) and self.watch.first_spike_since_save() == step:
            logging.warning("step %d: train loss %.4g spiked above %gx its running median; "
                            "checkpoints until the next sane interval are not kept as the "
                            "fallback.", step, loss, self.watch.factor)
        lr = float(self.schedule(step - 1))
        self.progress.maybe_log(step, loss, lr)
        timing = self.timer.mark(step, report=step % self.log_steps == 0)  # loss read: step done
        if step % self.log_steps == 0:
            row = {k: float(v) for k, v in jax.device_get(metrics).items()}
            row.update(timing)
            row["train/lr"] = lr
            row["train/examples_seen"] = step * self.progress.batch
            row["input/skipped_records"] = (self.train_iter.host_state or {}).get("skipped", 0)
            self.writer.write(step, row)

    def _diverged(self, step: int, what: str) -> NonFiniteLossError:
        self.ckpt.wait()
        sane = self.ckpt.latest_sane_step()
        spiked = [s for s in self.ckpt.all_steps() if sane is None or s > sane]
        lr = self.config.schedule.base_lr
        fixes = (f"a lower learning rate (--config.schedule.base_lr, now {lr}), gradient "
                 "clipping (--config.optimizer.grad_clip_norm=1.0) or a longer warmup")
        rule = self.watch.rule()
        if sane is None:
            how = (f"No checkpoint was saved while the loss was sane ({rule}): start again "
                   f"in a new --workdir with {fixes}.")
        else:
            how = (f"Checkpoint {sane} is the newest saved while the loss was sane ({rule})"
                   + (f"; {', '.join(map(str, spiked))} came after the loss spiked"
                      if spiked else "")
                   + f". Rerun the same command with --resume_step={sane} and {fixes}.")
        return NonFiniteLossError(
            f"{what} at step {step}; stopping (nothing from this step on is saved). {how} "
            "If it diverges again, check the input data.")
