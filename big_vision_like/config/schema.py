"""The one schema of a training run's config: every run-level field the library
reads, with its type and default, documented once here.

    c = schema.base()            # a config file starts here, then sets its fields
    c.batch_size = 128
    c.input.data.name = "synthetic_jft/demo"

The trainer and the data layer read these fields and never invent defaults of
their own. Sections whose fields depend on a name (the optimizer's, the
schedule's) are completed from `OPTIMIZERS` / `SCHEDULES` by `optimizer()` and
`schedule()`: a field the named optimizer or schedule does not know is an
error that lists the ones it does. Durations may be given in steps, epochs or
examples (`<name>_steps`, `_epochs`, `_examples`; big_vision_like/durations.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import ml_collections
from ml_collections.config_dict import placeholder

UNITS = ("steps", "epochs", "examples")


def _duration(c: ml_collections.ConfigDict, name: str, steps: int | None = None,
              sequence: bool = False) -> None:
    """`<name>_steps` (default `steps`), `<name>_epochs`, `<name>_examples`."""
    kind = tuple if sequence else None
    c[f"{name}_steps"] = placeholder(kind or int) if steps is None else steps
    c[f"{name}_epochs"] = placeholder(kind or float)
    c[f"{name}_examples"] = placeholder(kind or int)


def base() -> ml_collections.ConfigDict:
    """Every run-level field, at its default."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    # The task in the one training loop: classification, segmentation, detection, pose.
    c.task = "classification"
    c.batch_size = placeholder(int)  # the global batch, split over processes and devices
    c.eval_batch_size = placeholder(int)  # unset: batch_size
    _duration(c, "total")  # how long to train (0: evaluate the initial model only)
    _duration(c, "log", 50)  # metrics every N steps ...
    c.log_every_seconds = 5.0  # ... and a progress line at most this often
    _duration(c, "ckpt", 1000)  # checkpoint every N steps (and at the end)
    c.keep_ckpts = 3  # checkpoints kept by the rotation
    _duration(c, "keep_ckpt_every")  # also keep every N-th step
    _duration(c, "keep_ckpt", sequence=True)  # also keep these steps
    c.preemption_check_every = 1  # steps between checks of an agreed SIGTERM stop

    # Devices: `data` splits the batch, `model` the head's classes (-1: the rest).
    c.mesh = dict(data=-1, model=1)
    c.sharding = "head"  # preset: head, fsdp or replicated (big_vision_like/sharding.py)
    c.sharding_rules = ()  # (regex, spec) pairs before the preset's

    c.input = ml_collections.ConfigDict()
    # The training data: a dataset name (input_pipeline/sources), its split, and which
    # part of it trains: a random fraction (nested, seeded) or the images carrying
    # one of `classes` (ids, or a file of ids or names) with only those outputs;
    # keep_image_ids / drop_image_ids: id lists (a file, one id a line, or a list)
    # choosing images by their image_id (input_pipeline/image_ids.py).
    c.input.data = dict(name=placeholder(str), split="train", data_dir=placeholder(str),
                        subset_fraction=placeholder(float), subset_seed=0,
                        classes=placeholder(object), keep_image_ids=placeholder(object),
                        drop_image_ids=placeholder(object))
    c.input.pp = placeholder(str)  # the training preprocessing string
    c.input.image_shape = placeholder(tuple)  # (height, width, channels) after pp
    c.input.hierarchy = "dataset"  # ancestors to fill in: dataset, none, or a file
    c.input.shuffle_buffer = 10_000
    c.input.skip_corrupt = True  # skip and count images that do not decode
    c.input.prefetch = 2  # batches kept on the devices ahead of the step

    c.model = dict(name="resnet")  # the model's own fields: its flax module's
    c.loss = "sigmoid_xent"  # classification's loss (per label; softmax_xent single-label)
    c.loss_kw = ml_collections.ConfigDict()  # the loss's extra arguments
    c.optimizer = dict(name="momentum")  # fields: OPTIMIZERS[name]
    c.schedule = dict(name="constant", base_lr=placeholder(float))  # fields: SCHEDULES[name]
    c.evals = ml_collections.ConfigDict()  # name -> an evaluator's config (evaluators/)

    # Fine-tuning: parameters matching `frozen` are not updated (their batch norms
    # run in inference mode); lr_mults scales matching parameters' updates;
    # init_from starts from a checkpoint step folder, `skip` matching variables fresh.
    c.frozen = placeholder(str)
    c.lr_mults = ()
    c.init_from = dict(checkpoint=placeholder(str), skip=placeholder(str))

    # A step's loss above `factor` x the median of the `window` before it is a spike;
    # checkpoints saved after one are not the fallback of a diverged run.
    c.loss_spike = dict(factor=3.0, window=100)
    # A profiler trace of `num_steps` steps from `start_step` (unset: none).
    c.profile = dict(start_step=placeholder(int), num_steps=5, all_processes=False,
                     perfetto=True)
    return c


# Each optimizer's fields and defaults (big_vision_like/optim.py).
_CLIP = {"grad_clip_norm": None}  # clip the global gradient norm (None: no clipping)
OPTIMIZERS: dict[str, dict[str, Any]] = {
    # The paper's: TF1 RMSProp, mean square starting at 1, eps inside the sqrt.
    "rmsprop": {"decay": 0.9, "eps": 1.0, "momentum": 0.9, "weight_decay": 0.0, **_CLIP},
    "momentum": {"momentum": 0.9, "nesterov": False, "weight_decay": 0.0, **_CLIP},
    "adamw": {"b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 0.0, **_CLIP},
}


def _durations(name: str, default: Any = None) -> dict[str, Any]:
    return {f"{name}_steps": default, f"{name}_epochs": None, f"{name}_examples": None}


# Each schedule's fields and defaults (big_vision_like/schedules.py); every one
# also takes base_lr and a linear warmup, as a duration or as a fraction of the
# run's steps (warmup_fraction: the same share of a short and a long run).
_COMMON = {"base_lr": None, **_durations("warmup", 0), "warmup_fraction": None}
SCHEDULES: dict[str, dict[str, Any]] = {
    "constant": dict(_COMMON),
    "staircase": {**_COMMON, "decay_factor": 0.1, **_durations("decay_every")},
    "piecewise": {**_COMMON, "factors": (), **_durations("boundaries")},
    "cosine": {**_COMMON, "end_factor": 0.0},
    "poly": {**_COMMON, "end_lr": 0.0, "power": 0.9},
}


# Each evaluator's fields and defaults (evaluators/); every one also takes
# `_EVAL_COMMON`. `data`, `data_train`, `data_test` name a split of the training
# dataset or another ({split, name, data_dir}; evaluators/common.py).
_EVAL_COMMON = {"type": None, "pp": None, "batch_size": None,  # batch_size unset: eval_batch_size
                **_durations("every", 1000)}
# bootstrap: N > 0 also yields each metric's 95% interval over N resamples of the
# evaluation images (map@k: a 20-group jackknife; evaluators/bootstrap.py says
# why); exclude_ids: a file or a list.
_ONE_SPLIT = {"data": None, "pred": "predict", "exclude_ids": None, "bootstrap": 0}
_DETECTIONS = {**_ONE_SPLIT, "results_json": None, "category_ids": None}
_FEATURES = {"data_train": None, "data_test": None, "pred": "features", "bootstrap": 0}
EVALUATORS: dict[str, dict[str, Any]] = {
    "loss": {"data": None},
    # weights: uniform, train_frequency, or a file of one weight per class.
    "map_at_k": {**_ONE_SPLIT, "k": 100, "weights": "uniform", "per_image": False,
                 "baseline": False},
    "classification": dict(_ONE_SPLIT),
    # l2_regs None: evaluators/fewshot.py's DEFAULT_L2 grid.
    "fewshot": {**_FEATURES, "shots": (1, 5, 10, 25), "seeds": 3, "l2_regs": None},
    "linear_probe": {**_FEATURES, "l2": 1e-4, "max_iter": 1000},
    "miou": {**_ONE_SPLIT, "class_names": None},  # class_names None: the dataset's
    "coco_ap": dict(_DETECTIONS),
    "voc_ap": {**_DETECTIONS, "class_names": None},
    # detections: a COCO results JSON of person boxes (None: the ground truth's);
    # sigmas None: COCO's 17 keypoints' (evaluators/keypoint_ap.py).
    "keypoint_ap": {**_ONE_SPLIT, "detections": None, "sigmas": None, "nms_threshold": 0.5},
}

# The sections a task reads besides `model` (big_vision_like/tasks/).
TASK_SECTIONS: dict[str, dict[str, Any]] = {
    # Weights of the four Faster R-CNN loss terms.
    "detection": {"loss_weights": {"rpn_objectness": 1.0, "rpn_box": 2.0, "box_classes": 1.0,
                                   "box_refinement": 2.0}},
    # num_keypoints and radius (the disk's, in input pixels) have no default.
    "pose": {"num_keypoints": None, "radius": None, "heatmap_weight": 4.0,
             "offset_weight": 1.0, "huber_delta": 1.0, "decoder": "argmax"},
}


def _complete(section: str, tables: Mapping[str, Mapping[str, Any]], common: Mapping[str, Any],
              default_name: str, cfg: Mapping[str, Any]) -> dict[str, Any]:
    cfg = dict(cfg or {})
    name = cfg.pop("name", None) or default_name
    if name not in tables:  # one registered by a caller: the fields all of them take
        return {"name": name, **common, **cfg}
    unknown = sorted(set(cfg) - set(tables[name]))
    if unknown:
        raise ValueError(f"{section}: {name} takes no {unknown}; its fields are "
                         f"{sorted(tables[name])}.")
    return {"name": name, **tables[name], **cfg}


# The types of fields whose default is None: a config's placeholder takes them
# from the command line.
_TYPES = {"grad_clip_norm": float, "base_lr": float, "factors": tuple,
          "warmup_fraction": float}
_SEQUENCES = ("boundaries",)


def _type_of(field: str) -> type:
    if field in _TYPES:
        return _TYPES[field]
    name, _, unit = field.rpartition("_")
    if name in _SEQUENCES:
        return tuple
    return {"steps": int, "epochs": float, "examples": int}[unit]


def section(complete: dict[str, Any]) -> ml_collections.ConfigDict:
    """A completed optimizer or schedule as a config section: every field present, so
    each can be set from the shell, None ones as typed placeholders."""
    return ml_collections.ConfigDict({
        k: placeholder(_type_of(k)) if v is None else v for k, v in complete.items()})


def optimizer_section(name: str, **fields: Any) -> ml_collections.ConfigDict:
    """A config's `optimizer`: `name` with `fields`, the rest at their defaults."""
    return section(optimizer({"name": name, **fields}))


def schedule_section(name: str, **fields: Any) -> ml_collections.ConfigDict:
    """A config's `schedule`: `name` with `fields`, the rest at their defaults."""
    return section(schedule({"name": name, **fields}))


def optimizer(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """`cfg` with the named optimizer's defaults filled in (default: momentum)."""
    return _complete("optimizer", OPTIMIZERS, _CLIP, "momentum", cfg)


def schedule(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """`cfg` with the named schedule's defaults filled in (default: constant)."""
    return _complete("schedule", SCHEDULES, _COMMON, "constant", cfg)


def evaluator(name: str, cfg: Mapping[str, Any]) -> ml_collections.ConfigDict:
    """`evals.<name>` with its type's defaults filled in; a field its type does not
    take is an error naming the ones it does. A type registered by a caller
    (not in EVALUATORS) keeps its fields as given, over the common ones."""
    cfg = dict(cfg or {})
    kind = cfg.get("type")
    table = EVALUATORS.get(kind)
    if table is None:
        return ml_collections.ConfigDict({**_EVAL_COMMON, **cfg})
    fields = {**_EVAL_COMMON, **table}
    unknown = sorted(set(cfg) - set(fields))
    if unknown:
        raise ValueError(f"evals.{name}: {kind} takes no {unknown}; its fields are "
                         f"{sorted(fields)}.")
    return ml_collections.ConfigDict({**fields, **cfg})


def eval_data(split: str, **fields: Any) -> ml_collections.ConfigDict:
    """An evaluator's `data` with every field present, so each can be set from the
    shell: `name`/`data_dir` unset read the training dataset's; id lists choose
    images as input.data's do (input_pipeline/image_ids.py)."""
    return ml_collections.ConfigDict({
        "split": split, "name": placeholder(str), "data_dir": placeholder(str),
        "keep_image_ids": placeholder(object), "drop_image_ids": placeholder(object),
        **fields})


def task_section(task: str, cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """The task's own section (`config.<task>`) with its defaults filled in."""
    table = TASK_SECTIONS.get(task, {})
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(table))
    if unknown:
        raise ValueError(f"{task}: the {task} task takes no {unknown}; its fields are "
                         f"{sorted(table)}.")
    return {**table, **cfg}


def over_base(values: Mapping[str, Any]) -> ml_collections.ConfigDict:
    """`values` (a config, or what a run wrote) over `base()`: fields it lacks take
    their defaults; its own fields, whatever they are, are kept."""
    c = base()
    c.unlock()
    _merge(c, values)
    return c


def from_json(text: str) -> ml_collections.ConfigDict:
    """The config a run wrote (config.json), over `base()`, shapes as tuples."""
    c = over_base(json.loads(text))
    c.input.image_shape = tuple(c.input.image_shape) if c.input.image_shape else None
    return c


def _merge(c: ml_collections.ConfigDict, values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        if (isinstance(value, (Mapping, ml_collections.ConfigDict))
                and isinstance(c.get(key), ml_collections.ConfigDict)):
            _merge(c[key], value)
        else:
            c[key] = value
