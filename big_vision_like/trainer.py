"""The training loop: one loop for every task, driven by a config.

    state = train(config, workdir)

Builds the mesh, the input pipeline, the model and optimizer from the
config; resumes from the workdir's latest checkpoint (parameters, optimizer
state and the input stream's position) if there is one; trains, logging,
evaluating and checkpointing on the config's schedule.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from absl import logging

import evaluators
from big_vision_like import checkpointing, init_from, losses, models, optim, tasks, train_step
from big_vision_like import filesystem as fs
from big_vision_like import mesh as mesh_lib
from big_vision_like import sharding as sharding_lib
from big_vision_like.config import schema
from big_vision_like.config.validate import validate
from big_vision_like.durations import Durations
from big_vision_like.final_evals import FinalEvals
from big_vision_like.loss_watch import LossWatch
from big_vision_like.metrics import MetricWriter, Progress, read_metrics
from big_vision_like.preemption import Preempted, PreemptionWatch, StopRequested
from big_vision_like.profiling import ProfileWindow
from big_vision_like.registry import Registry
from big_vision_like.schedules import build_schedule
from big_vision_like.step_monitor import StepMonitor
from big_vision_like.tasks.base import Task, TaskContext
from big_vision_like.workdir_lock import hold_workdir
from evaluators.common import EvalContext
from input_pipeline import subsets
from input_pipeline.keys import MASK_KEY
from input_pipeline.run_data import RunData


def build_task(config: ml_collections.ConfigDict, mesh, num_classes: int | None,
               registry: Registry | None = None) -> Task:
    """The config's task (`config.task`, default 'classification')."""
    ctx = TaskContext(mesh=mesh, num_classes=num_classes, models=models.default_registry(),
                      losses=losses.default_registry())
    cls = (registry or tasks.default_registry()).get(config.task)
    return cls.from_config(config, ctx)


def write_config(config: ml_collections.ConfigDict, workdir: str) -> None:
    fs.makedirs(workdir)
    fs.write_atomic(fs.join(workdir, "config.json"),
                    config.to_json_best_effort(indent=2, sort_keys=True))


def read_config(workdir: str, what: str = "a training run's workdir"
                ) -> ml_collections.ConfigDict:
    """The config a run wrote into its workdir (config.json) over the schema's
    defaults (an older run's config lacks newer fields), shapes as tuples."""
    path = fs.join(workdir, "config.json")
    if not fs.exists(path):
        raise FileNotFoundError(f"{path} not found: give {what}, e.g. workdirs/demo "
                                "(the trainer writes config.json there when it starts).")
    return schema.from_json(fs.read_text(path))


def train(config: ml_collections.ConfigDict, workdir: str,
          resume_step: int | None = None) -> train_step.TrainState:
    """resume_step: go back to this checkpoint (the ones after it are set aside,
    not deleted), e.g. the last sane one a diverged run names; once done, the
    same value again resumes from the latest checkpoint as usual.

    On SIGTERM every process saves a checkpoint at one agreed step and
    `preemption.Preempted` is raised (see big_vision_like/preemption.py).

    Fields `config` lacks (a section replaced by a partial dict, say) take the
    schema's defaults (config/schema.py); config.json records them all."""
    config = schema.over_base(config)
    # One run per workdir; only process 0 writes its files, so only it locks.
    with hold_workdir(workdir, enabled=jax.process_index() == 0), \
            PreemptionWatch(config.preemption_check_every) as stop:
        return _train(config, workdir, resume_step, stop)


def _train(config: ml_collections.ConfigDict, workdir: str,
           resume_step: int | None, stop: PreemptionWatch) -> train_step.TrainState:
    is_main = jax.process_index() == 0
    validate(config, jax.device_count(), jax.process_count())
    mesh = mesh_lib.make_mesh(config.mesh.data, config.mesh.model)
    data = RunData(config, mesh)
    stop.check_before_start("the data opened")
    data.interrupt = stop.raise_if_agreed  # evaluations stop between batches
    batch = config.batch_size
    durations = Durations(batch, data.train_examples)
    total_steps = durations.steps(config, "total", allow_zero=True)
    schedule = build_schedule(config.schedule, total_steps, durations)
    frozen = config.frozen or None
    tx = optim.build_optimizer(config.optimizer, schedule, frozen=frozen,
                               lr_mults=config.lr_mults or None)
    subsets.check_head(config, data.subset)
    task = build_task(config, mesh, data.num_classes)
    image_shape = tuple(config.input.image_shape)
    rules = sharding_lib.rules_for(config.sharding, config.sharding_rules)

    state, shardings = train_step.create_train_state(
        task, tx, image_shape, jax.random.key(config.seed), mesh, rules)
    stop.check_before_start("the model initialised")
    keep_steps = _keep_steps(durations, config, total_steps)
    ckpt = checkpointing.Checkpointer(fs.join(workdir, "checkpoints"),
                                      keep=config.keep_ckpts,
                                      keep_every=durations.maybe_steps(config, "keep_ckpt_every"),
                                      keep_steps=keep_steps)
    if resume_step is not None:
        moved = ckpt.resume_from(resume_step)
        logging.info("resume_step=%d: %s", resume_step,
                     f"checkpoints {moved} set aside as <step>.after_{resume_step}" if moved
                     else "done before; resuming from the latest checkpoint")
    data_state = None
    watch = LossWatch(**config.loss_spike)
    restored = ckpt.restore_latest_intact(train_step.abstract_with_shardings(state, shardings))
    if restored is not None:
        latest, state, data_state = restored
        watch.resume(data_state.pop(checkpointing.HEALTH, None))
        logging.info("resumed from %s/%d at input position %s", ckpt.directory, latest,
                     data_state)
    elif config.init_from.checkpoint:
        state = _init_from(state, task, config.init_from, workdir if is_main else None)
    if total_steps == 0:  # e.g. the random-features baseline of the transfer study
        logging.warning("total_steps=0: nothing is trained; the evaluators run once on the "
                        "model as restored or initialised.")
    stop.check_before_start("the checkpoint restored")
    if is_main:  # only now: a resume that does not fit leaves the run's config as it was
        write_config(config, workdir)

    step_fn = train_step.jit_train_step(
        train_step.make_train_step(task, tx, mesh, config.seed, frozen), shardings, mesh)
    writer = MetricWriter(workdir, enabled=is_main)
    evals = _build_evaluators(config, task, mesh, shardings, data, durations)
    start = int(state.step)
    progress = Progress(total_steps, batch, start, config.log_every_seconds)
    log_steps = durations.steps(config, "log", default=50)
    ckpt_steps = durations.steps(config, "ckpt", default=1000)

    profile = ProfileWindow(config.profile, workdir, total_steps)
    train_iter = data.train_iterator(data_state)
    monitor = StepMonitor(writer, progress, schedule, log_steps, train_iter, watch, ckpt, config)
    profile.timer = monitor.timer  # starting and writing a trace is not step time
    pending = None  # (step, metrics) of the step before, checked one step late
    stop.start(start)
    try:
        for step in range(start + 1, total_steps + 1):
            batch_arrays = monitor.timer.next(train_iter)
            if step == start + 1:
                _check_batch(batch_arrays, task, image_shape, config.input.pp)
            host_state = train_iter.host_state
            profile.before_step(step, state)
            state, metrics = step_fn(state, batch_arrays)
            profile.after_step(step, (state, metrics))
            ckpt.check()  # a background save that failed stops the run now
            if pending is not None:
                monitor.check_and_log(*pending)
            pending = (step, metrics)
            saved = step % ckpt_steps == 0 or step == total_steps or step in keep_steps
            preempted = stop.should_stop(step)  # every step, on every process
            if saved or preempted:
                # Never save a state produced from a non-finite loss.
                monitor.check_and_log(*pending)
                pending = None
                ckpt.save(step, state, host_state, health=watch.saved())
                writer.flush()  # the metrics up to a checkpoint outlive a preemption
            if preempted:  # evaluations due now are skipped: the grace time is short
                raise stop.stopped(step, ckpt, writer)
            with monitor.timer.excluded():
                for name, (evaluator, every) in evals.items():
                    if step % every == 0 and step != total_steps:
                        try:
                            _run_eval(name, evaluator, state, step, writer)
                        except StopRequested:  # this evaluation is not written
                            if not saved:
                                monitor.check_and_log(*pending)
                                pending = None
                                ckpt.save(step, state, host_state, health=watch.saved())
                            raise stop.stopped(step, ckpt, writer) from None
        if pending is not None:
            monitor.check_and_log(*pending)
        # Every evaluator runs once at the end; a rerun runs the ones still owed.
        final = FinalEvals(workdir, total_steps)
        for name in final.owed(evals):
            try:
                _run_eval(name, evals[name][0], state, int(state.step), writer)
            except StopRequested:  # owed to the rerun, as after any interruption
                last = ckpt.latest_step()
                raise (stop.stopped(last, ckpt, writer) if last is not None
                       else Preempted(None, stop.exit_code)) from None
            writer.flush()
            final.mark_done(name)
        ckpt.wait()
    finally:
        profile.close()
        train_iter.close()
        writer.flush()
        ckpt.close()
    return state


def _init_from(state, task, cfg, workdir: str | None):
    variables, report = init_from.merge(
        state.variables, init_from.load_variables(cfg.checkpoint), skip=cfg.skip,
        load_hook=task.load)
    lines = report.lines()
    logging.info("init_from %s: %s", cfg.checkpoint, lines[0])
    for line in lines[1:]:
        if not line.startswith("loaded:"):
            logging.warning("init_from %s: %s", cfg.checkpoint, line)
    if workdir is not None:
        fs.write_atomic(fs.join(workdir, "init_from_report.txt"),
                        f"init_from {cfg.checkpoint}\n" + "\n".join(lines) + "\n")
    params = variables.pop("params")
    return state.replace(params=params, model_state=variables)


def _keep_steps(durations, config, total_steps: int) -> tuple[int, ...]:
    """Steps kept past the rotation (keep_ckpt_steps/_epochs/_examples); each is
    also saved, so none is moved to a multiple of ckpt_steps."""
    steps = durations.steps_list(config, "keep_ckpt", default=())
    late = [s for s in steps if s > total_steps]
    if late:
        logging.warning("keep_ckpt: steps %s are past the last step %d and cannot be kept.",
                        late, total_steps)
    return tuple(sorted({s for s in steps if s <= total_steps}))


def _check_batch(batch, task, image_shape, pp: str) -> None:
    """The first batch has what the task reads, in the configured image shape."""
    missing = [k for k in task.batch_keys if k not in batch]
    if missing:
        raise ValueError(f"training batches have no {missing} (keys: {sorted(batch)}); "
                         f"the task needs {list(task.batch_keys)}: keep them at the end "
                         f"of input.pp ({pp!r}).")
    if "image" in batch and tuple(batch["image"].shape[1:]) != image_shape:
        raise ValueError(f"training images are {tuple(batch['image'].shape[1:])} but "
                         f"input.image_shape is {image_shape}; make the pp string "
                         f"({pp!r}) produce that size or change input.image_shape.")


def _run_eval(name, evaluator, state, step, writer):
    results = {f"{name}/{k}": v for k, v in evaluator.run(state.variables)}
    logging.info("step %d  %s", step, "  ".join(f"{k} {v:.4f}" for k, v in results.items()))
    writer.write(step, results)


def _build_evaluators(config, task, mesh, shardings, data, durations):
    var_shardings = {"params": shardings.params, **shardings.model_state}
    in_shardings = (var_shardings, mesh_lib.batch_sharding(mesh))

    def jitted(fn):
        def predict(variables, batch):
            with mesh_lib.tracing_on(mesh):
                return fn(task.forward(variables, batch, train=False), batch)
        return jax.jit(predict, in_shardings=in_shardings)

    def batch_loss(outputs, batch):
        # The task's loss is a mean over the real examples; times their count
        # it sums exactly over a padded pass.
        value, _ = task.loss(outputs, batch)
        count = batch[MASK_KEY].astype(jnp.float32).sum()
        return {"loss_sum": value * count, "count": count}

    predict_fns = {name: jitted(fn) for name, fn in task.predict_fns().items()}
    ctx = EvalContext(mesh=mesh, predict_fns=predict_fns, batch_loss=jitted(batch_loss),
                      eval_batches=data.eval_batches,
                      train_label_frequencies=data.train_label_frequencies,
                      dataset_metadata=data.metadata, classes=data.subset.classes,
                      all_classes=data.pp_ctx.num_classes,
                      batch_size=config.eval_batch_size or config.batch_size)
    registry = evaluators.default_registry()
    out = {}
    for name, cfg in config.evals.items():
        cfg = schema.evaluator(name, cfg)
        for key in ("data", "data_train", "data_test"):
            if cfg.get(key) is not None and cfg.pp is not None:
                try:
                    data.check_eval_input(cfg[key], cfg.pp)
                except (KeyError, ValueError) as e:
                    raise ValueError(f"evals.{name}.{key}: {e}") from e
        out[name] = (registry.get(cfg.type)(cfg, ctx), durations.steps(cfg, "every"))
    return out


def summary(workdir: str) -> dict[str, Any]:
    """Last value of each metric in the workdir's metrics.jsonl."""
    last: dict[str, Any] = {}
    for row in read_metrics(workdir):
        last.update(row)
    return last

