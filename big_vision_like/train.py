"""Command line: python -m big_vision_like.train --config configs/demo.py --workdir DIR

Any config field can be overridden: --config.batch_size=64
--config.schedule.base_lr=0.01. An unknown field is an error that names it.

A duration given on the command line in one unit replaces the file's value
in another: --config.total_epochs=2 on a config that sets total_examples
trains 2 epochs (the field must exist in the config, e.g. as a placeholder).
--print_config prints the config so resolved and exits without training.

A config that cannot run (an unknown name, a batch size the devices do not
divide, a regex that does not compile, ...) exits with status 2 and one line
per problem, before any dataset is opened (big_vision_like/config/validate.py).
"""

from __future__ import annotations

import logging as pylogging
import os
import signal
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from big_vision_like.config import cli as config_cli

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints and metrics go.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0, for several processes "
    "(not needed on TPU pods or Slurm; also JAX_COORDINATOR_ADDRESS).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's id, 0-based.")
_RESUME_STEP = flags.DEFINE_integer(
    "resume_step", None, "Go back to this checkpoint of the workdir (e.g. the last sane "
    "one a diverged run names); later ones are renamed <step>.after_<N>, not deleted. "
    "Rerunning with the same value after that resumes from the latest checkpoint.")
_PREEMPTION_EXIT_CODE = flags.DEFINE_integer(
    "preemption_exit_code", 128 + signal.SIGTERM,
    "Exit code after a SIGTERM made the run save a checkpoint and stop (default 143 = "
    "128 + SIGTERM, as a shell reports a SIGTERM-ed process); make the scheduler requeue "
    "on it. Errors exit with 1.", lower_bound=0, upper_bound=255)
_PRINT_CONFIG = flags.DEFINE_bool(
    "print_config", False, "Print the config, command-line overrides applied, and exit.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = _CONFIG.value
    cleared = config_cli.resolve(config, flags.FLAGS[_CONFIG.name])
    if _PRINT_CONFIG.value:
        sys.stdout.write(config.to_json_best_effort(indent=2, sort_keys=True) + "\n")
        return
    from big_vision_like import distributed  # after flags: jax starts here

    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    import jax

    from big_vision_like.config.validate import ConfigError, validate

    # Before the trainer (and TensorFlow) is even imported: a config that cannot
    # run is told in seconds. trainer.train checks again for callers of the API.
    try:
        validate(config, jax.device_count(), jax.process_count())
    except ConfigError as e:
        sys.stderr.write("".join(f"error: {line}\n" for line in e.problems))
        sys.exit(2)
    from big_vision_like import trainer

    logging.set_verbosity(logging.INFO if jax.process_index() == 0 else logging.WARNING)
    # orbax reports every save step at INFO; keep its warnings only.
    logging.get_absl_handler().addFilter(
        lambda r: r.levelno >= pylogging.WARNING or "/orbax/" not in r.pathname)
    if cleared:
        logging.info("units given on the command line replace %s", ", ".join(cleared))
    from big_vision_like import quiet_errors
    from big_vision_like.checkpointing import CheckpointError
    from big_vision_like.preemption import Preempted
    from big_vision_like.step_monitor import NonFiniteLossError
    from big_vision_like.workdir_lock import WorkdirLockedError

    logging.get_absl_handler().addFilter(quiet_errors.quiet_orbax_errors)
    sys.unraisablehook = quiet_errors.drop_closed_loop_errors(sys.unraisablehook)
    try:
        trainer.train(config, _WORKDIR.value, resume_step=_RESUME_STEP.value)
    except (CheckpointError, WorkdirLockedError, NonFiniteLossError) as e:
        quiet_errors.exit_with(f"error: {e}")
    except Preempted as e:
        # The checkpoint is committed: further SIGTERMs may not turn the exit
        # code into "killed". Everything is closed; a normal exit lets
        # jax.distributed leave the job cleanly on every process.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        logging.flush()
        sys.stderr.write(f"{e}\n")
        sys.exit(_PREEMPTION_EXIT_CODE.value)
    if jax.process_index() != 0:
        return
    for key, value in sorted(trainer.summary(_WORKDIR.value).items()):
        if "/" in key:
            print(f"{key}: {value}")


if __name__ == "__main__":
    app.run(main)
