"""A training run and its checkpoint: config, metrics, curves, restored model,
predictions over an evaluation split."""

from __future__ import annotations

import dataclasses
import functools
import os
import warnings
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from matplotlib.figure import Figure

from big_vision_like import filesystem as fs
from big_vision_like import init_from, trainer
from big_vision_like import mesh as mesh_lib
from big_vision_like.checkpointing import CheckpointError
from big_vision_like.metrics import read_metrics
from evaluators.common import EvalContext, collect_predictions
from input_pipeline.hierarchy import LabelHierarchy
from input_pipeline.run_data import RunData

# Metrics that count rather than measure: not worth a curve by default.
_NOT_CURVES = ("examples", "examples_seen", "count", "params_finite", "skipped_records")


@dataclasses.dataclass
class Run:
    """A training workdir: its resolved config, metrics rows and checkpoint steps."""

    workdir: str
    config: ml_collections.ConfigDict
    metrics: list[dict]
    steps: list[int]

    @functools.cached_property
    def data(self) -> RunData:
        """The run's datasets and preprocessing, as the trainer built them (one device)."""
        return RunData(self.config, _mesh(self.config))

    @property
    def class_names(self) -> list[str]:
        names = self.data.source.class_names
        return list(names) if names is not None else [str(c) for c in
                                                      range(self.data.num_classes or 0)]

    @property
    def hierarchy(self) -> LabelHierarchy | None:
        return self.data.pp_ctx.hierarchy


@dataclasses.dataclass
class Model:
    """A checkpoint restored into the run's task: `variables` for `task.forward`."""

    run: Run
    step: int
    task: Any
    variables: Any
    predict_fn: Any  # jitted (variables, batch) -> {"logits", "pre_logits"}


def open_workdir(workdir: str, data_dir: str | None = None) -> Run:
    """The run in `workdir` (config.json, metrics.jsonl, checkpoints/<step>).

    data_dir: where its dataset is; default the config's (a relative one is
    also looked for relative to the folder above `workdirs/`).
    """
    config = trainer.read_config(workdir)
    config.input.data.data_dir = _resolve_data_dir(
        data_dir or config.input.data.data_dir, workdir)
    return Run(fs.absolute(workdir), config, read_metrics(workdir),
               checkpoint_steps(workdir))


def _resolve_data_dir(data_dir: str | None, workdir: str) -> str | None:
    if not data_dir or fs.is_url(data_dir) or os.path.isabs(data_dir) or fs.isdir(data_dir):
        return data_dir
    # The demo is trained from the repository root with data_dir=data/tfds.
    beside = fs.normpath(fs.join(fs.parent(fs.absolute(workdir), 2), data_dir))
    return beside if fs.isdir(beside) else data_dir


def checkpoint_steps(workdir: str) -> list[int]:
    """Steps with a complete checkpoint, read from the folder names (an orbax
    manager would create and clean folders; this only reads)."""
    root = fs.join(workdir, "checkpoints")
    if not fs.isdir(root):
        return []
    return sorted(int(n) for n in fs.listdir(root)
                  if n.isdigit() and fs.isdir(fs.join(root, n, "state")))


def _mesh(config: ml_collections.ConfigDict):
    # One device on `data`; the head keeps the training run's `model` size, since
    # the class dimension was rounded up to a multiple of it.
    model = int(config.mesh.model)
    if model > jax.device_count():
        raise ValueError(f"the run sharded its head over mesh.model={model} devices; only "
                         f"{jax.device_count()} are visible.")
    return mesh_lib.make_mesh(1, model, devices=jax.devices()[:model])


def metric_series(run: Run, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one metric, over the rows that have it."""
    rows = [r for r in run.metrics if key in r and r.get("step") is not None]
    return (np.array([r["step"] for r in rows], np.int64),
            np.array([r[key] for r in rows], np.float64))


def curve_keys(run: Run) -> list[str]:
    """train/loss and train/lr first, then every evaluation metric."""
    seen = dict.fromkeys(k for r in run.metrics for k in r if k != "step")
    evals = [k for k in seen if not k.startswith(("train/", "input/"))
             and k.rsplit("/", 1)[-1] not in _NOT_CURVES]
    return [k for k in ("train/loss", "train/lr") if k in seen] + evals


def plot_curves(run: Run, keys: Sequence[str] | None = None) -> Figure:
    """One panel per metric against the step (default: `curve_keys(run)`)."""
    keys = list(keys) if keys is not None else curve_keys(run)
    available = {k for r in run.metrics for k in r}
    missing = [k for k in keys if k not in available]
    if missing or not keys:
        raise ValueError(f"{run.workdir}/metrics.jsonl has no {missing or 'metrics'}; "
                         f"it has {sorted(available - {'step'})}.")
    cols = min(3, len(keys))
    rows = -(-len(keys) // cols)
    fig = Figure(figsize=(4.5 * cols, 3.2 * rows), layout="constrained")
    for i, key in enumerate(keys):
        ax = fig.add_subplot(rows, cols, i + 1)
        steps, values = metric_series(run, key)
        ax.plot(steps, values, marker="." if len(steps) < 30 else None)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    return fig


def load_model(run: Run, step: int | None = None) -> Model:
    """The checkpoint at `step` in the run's task and model; by default the newest
    intact one (a damaged newer one is named in a warning and passed over)."""
    if not run.steps:
        raise FileNotFoundError(f"{run.workdir} has no checkpoints; train the run first.")
    if step is None:
        for s in reversed(run.steps):
            try:
                return load_model(run, s)
            except CheckpointError as e:
                if " is damaged: " not in str(e) or s == run.steps[0]:
                    raise
                warnings.warn(f"{e} Loading the checkpoint before it.", stacklevel=2)
    step = int(step)
    if step not in run.steps:
        raise ValueError(f"{run.workdir} has no checkpoint at step {step}; it has "
                         f"{run.steps}.")
    data = run.data
    task = trainer.build_task(run.config, data.mesh, data.num_classes)
    # Shapes only: every variable comes from the checkpoint (checked below).
    shape = tuple(run.config.input.image_shape)
    fresh = jax.eval_shape(lambda rng: task.init(rng, shape), jax.random.key(0))
    path = fs.join(run.workdir, "checkpoints", str(step))
    variables, report = init_from.merge(fresh, init_from.load_variables(path))
    if report.missing or report.unused:
        raise CheckpointError(
            f"{path} does not fit the model of {run.workdir}/config.json: "
            + "; ".join(line for line in report.lines()[1:] if not line.startswith("loaded"))
            + ". Was config.json changed after training?")
    predict = task.predict_fns()["predict"]
    fn = jax.jit(lambda v, batch: predict(task.forward(v, batch, train=False), batch))
    return Model(run, step, task, variables, fn)


def predict(model: Model, images: np.ndarray) -> dict[str, np.ndarray]:
    """logits and pre_logits of preprocessed images [N, H, W, 3] (the eval pp's range)."""
    images = np.asarray(images, np.float32)
    want = tuple(model.run.config.input.image_shape)
    if images.ndim != 4 or images.shape[1:] != want:
        raise ValueError(f"images have shape {images.shape}; the model takes [N, *{want}] "
                         "preprocessed as the run's eval pp (e.g. value_range(-1, 1)).")
    out = model.predict_fn(model.variables, {"image": images})
    return {k: np.asarray(v) for k, v in out.items()}


def eval_pp(run: Run) -> str:
    """The first configured evaluator's pp string that keeps images and labels."""
    for cfg in run.config.evals.values():
        pp = cfg.get("pp") or ""
        if "'image'" in pp and "'labels'" in pp:
            return pp
    raise ValueError("no evaluator of the run keeps 'image' and 'labels'; pass pp=... "
                     "(e.g. \"decode|resize(72)|central_crop(64)|value_range(-1, 1)"
                     "|multi_hot(fill_ancestors=False)|keep('image', 'labels')\").")


def collect(model: Model, split: str = "test", pp: str | None = None,
            batch_size: int | None = None) -> dict[str, np.ndarray]:
    """logits, pre_logits and labels of every image of an evaluation split."""
    data = model.run.data
    ctx = EvalContext(mesh=data.mesh, predict_fns={"predict": model.predict_fn},
                      batch_loss=None, eval_batches=data.eval_batches,
                      batch_size=_eval_batch_size(model.run, batch_size))
    return collect_predictions(ctx, model.variables, _split(split), pp or eval_pp(model.run),
                               outputs=("logits", "pre_logits"))


def _eval_batch_size(run: Run, given: int | None) -> int:
    return given or run.config.eval_batch_size or run.config.batch_size


def _split(split: str) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({"split": split})  # the run's own dataset


def top_classes(logits: np.ndarray, names: Sequence[str], k: int = 5
                ) -> list[list[tuple[str, float]]]:
    """Per image, its k highest-scoring classes with their sigmoid probabilities."""
    logits = np.asarray(logits, np.float64)
    order = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    prob = 1 / (1 + np.exp(-logits))
    return [[(names[c], float(prob[i, c])) for c in row] for i, row in enumerate(order)]


def show_predictions(model: Model, split: str = "test", n: int = 6, k: int = 5,
                     pp: str | None = None) -> Figure:
    """The first `n` images of a split with their top-k predicted classes."""
    data = model.run.data
    # A whole evaluation batch, the shape `collect` compiles for.
    batches = data.eval_batches(_split(split), pp or eval_pp(model.run),
                                _eval_batch_size(model.run, None))
    try:
        batch = next(batches)
    finally:
        batches.close()  # stops the prefetch thread
    logits = np.asarray(model.predict_fn(model.variables, {"image": batch["image"]})["logits"])
    images = np.asarray(batch["image"])[:n]
    tops = top_classes(logits[:n], model.run.class_names, k)
    fig = Figure(figsize=(3.2 * len(images), 4.2), layout="constrained")
    for i, (image, top) in enumerate(zip(images, tops)):
        ax = fig.add_subplot(1, len(images), i + 1)
        lo, hi = image.min(), image.max()
        ax.imshow((image - lo) / max(hi - lo, 1e-6))
        ax.set_axis_off()
        ax.set_title("\n".join(f"{p:.2f} {name}" for name, p in top), fontsize=7,
                     loc="left")
    return fig
