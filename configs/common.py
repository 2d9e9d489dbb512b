"""Fields every training config sets the same way."""

import ml_collections
from ml_collections.config_dict import placeholder


def set_mesh_and_sharding(c: ml_collections.ConfigDict, sharding: str = "head") -> None:
    """mesh: all devices on `data` unless overridden (--config.mesh.model=8).

    sharding: "head" puts the head's class dimension over `model`; "fsdp"
    also splits the backbone and its optimizer state over `data`;
    "replicated" splits nothing. (regex, spec) pairs in sharding_rules take
    precedence over the preset's.
    """
    c.mesh = dict(data=-1, model=1)
    c.sharding = sharding
    c.sharding_rules = ()


def data_fields(name: str, split: str) -> dict:
    """`input.data`: the dataset and split, and which part of the split trains.

    subset_fraction: a random fraction of the split (0.1: 10%; unset: all),
    drawn with subset_seed; nested (the 10% subset lies in the 30% one) and
    the same for any number of hosts. classes: class ids (a tuple) or a text
    file of ids or names, one per line: trains on the images carrying one of
    them, with a head of len(classes) outputs (input_pipeline/subsets.py).
    """
    return dict(name=name, split=split, data_dir=placeholder(str),
                subset_fraction=placeholder(float), subset_seed=0,
                classes=placeholder(object))


def set_transfer_fields(c: ml_collections.ConfigDict) -> None:
    """Fine-tuning fields, so any config takes them from the shell.

    task: the task in the one training loop ('classification' here).
    frozen: regex over parameter paths ('^(conv1|conv[2-4])'); those are not
    updated and their batch norms run in inference mode.
    lr_mults: ((regex, multiplier), ...) scaling the updates of matching
    parameters. init_from: a checkpoint step folder to start from, and a
    `skip` regex of variables kept fresh.
    """
    c.task = "classification"
    c.frozen = placeholder(str)
    c.lr_mults = ()
    c.init_from = dict(checkpoint=placeholder(str), skip=placeholder(str))


def set_recovery_fields(c: ml_collections.ConfigDict) -> None:
    """loss_spike: a step's loss above `factor` x the median of the `window`
    losses before it is a spike; checkpoints saved after a spike are not kept
    as the fallback a diverged run resumes from (big_vision_like/loss_watch.py).

    profile: a JAX profiler trace of `num_steps` steps from `start_step` (unset:
    none) into <workdir>/profile, for TensorBoard's profile tab or Perfetto;
    only process 0 traces unless `all_processes` (big_vision_like/profiling.py).
    """
    c.loss_spike = dict(factor=3.0, window=100)
    c.profile = dict(start_step=placeholder(int), num_steps=5, all_processes=False,
                     perfetto=True)


def set_run_fields(c: ml_collections.ConfigDict, *, batch_size: int, total_steps: int,
                   log_steps: int, log_every_seconds: float, ckpt_steps: int,
                   keep_ckpts: int) -> None:
    """Seed, batch, duration, logging and checkpoint fields, and the mesh, as the
    transfer configs set them; total_epochs/_examples are there to be given from
    the shell instead of total_steps."""
    c.seed = 0
    c.batch_size = batch_size
    c.total_steps = total_steps
    c.total_epochs = placeholder(float)
    c.total_examples = placeholder(int)
    c.log_steps = log_steps
    c.log_every_seconds = log_every_seconds
    c.ckpt_steps = ckpt_steps
    c.keep_ckpts = keep_ckpts
    set_mesh_and_sharding(c)
