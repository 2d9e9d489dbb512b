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

import argparse
import logging as pylogging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from absl import flags, logging

from big_vision_like.config import cli as config_cli

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parser() -> argparse.ArgumentParser:
    """The command line: its own flags; `--config.<field>=<value>` arguments are the
    config's (config/cli.py)."""
    p = argparse.ArgumentParser(
        prog="python -m big_vision_like.train", description=__doc__.split("\n\n")[0],
        epilog="--config.<field>=<value> overrides any field of the config file "
               "(--print_config lists them), e.g. --config.batch_size=64.")
    p.add_argument("--config", required=True,
                   help="A config file (configs/*.py), with an argument after ':' where "
                        "it takes one (configs/transfer/digits.py:tiny).")
    p.add_argument("--workdir", required=True, help="Where checkpoints and metrics go.")
    p.add_argument("--coordinator_address", default=None,
                   help="host:port of process 0, for several processes (not needed on TPU "
                        "pods or Slurm; also JAX_COORDINATOR_ADDRESS).")
    p.add_argument("--num_processes", type=int, default=None, help="Processes in the job.")
    p.add_argument("--process_id", type=int, default=None, help="This process's id, 0-based.")
    p.add_argument("--resume_step", type=int, default=None,
                   help="Go back to this checkpoint of the workdir (e.g. the last sane one a "
                        "diverged run names); later ones are renamed <step>.after_<N>, not "
                        "deleted. Rerunning with the same value after that resumes from the "
                        "latest checkpoint.")
    p.add_argument("--preemption_exit_code", type=int, default=128 + signal.SIGTERM,
                   choices=range(256), metavar="0..255",
                   help="Exit code after a SIGTERM made the run save a checkpoint and stop "
                        "(default 143 = 128 + SIGTERM, as a shell reports a SIGTERM-ed "
                        "process); make the scheduler requeue on it. Errors exit with 1.")
    p.add_argument("--print_config", action="store_true",
                   help="Print the config, command-line overrides applied, and exit.")
    return p


def _innermost(error: BaseException) -> str:
    """ml_collections wraps a misspelt field's KeyError in an AttributeError."""
    while error.args and isinstance(error.args[0], BaseException):
        error = error.args[0]
    text = str(error.args[0]) if error.args else str(error)
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None,
         interrupted: Callable[[], bool] = lambda: False) -> None:
    p = parser()
    args, rest = p.parse_known_args(argv)
    unknown = [a for a in rest if not a.startswith("--config.")]
    if unknown:
        p.error(f"unexpected arguments: {unknown}")
    try:
        config, cleared = config_cli.load_config(args.config, rest)
    except (flags.Error, ValueError, TypeError, AttributeError, KeyError) as e:
        p.error(f"{args.config}: {_innermost(e)}")
    if args.print_config:
        sys.stdout.write(config.to_json_best_effort(indent=2, sort_keys=True) + "\n")
        return
    flags.FLAGS.mark_as_parsed()  # absl's logging asks; this command has no absl flags
    logging.use_absl_handler()
    from big_vision_like import distributed  # after flags: jax starts here

    distributed.initialize(args.coordinator_address, args.num_processes, args.process_id)
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
    from big_vision_like import preemption, quiet_errors
    from big_vision_like.checkpointing import CheckpointError
    from big_vision_like.preemption import Preempted
    from big_vision_like.step_monitor import NonFiniteLossError
    from big_vision_like.workdir_lock import WorkdirLockedError

    logging.get_absl_handler().addFilter(quiet_errors.quiet_orbax_errors)
    sys.unraisablehook = quiet_errors.drop_closed_loop_errors(sys.unraisablehook)
    if interrupted():  # a Ctrl-C during start-up that Python dropped
        raise KeyboardInterrupt
    try:
        trainer.train(config, args.workdir, resume_step=args.resume_step)
    except (CheckpointError, WorkdirLockedError, NonFiniteLossError) as e:
        quiet_errors.exit_with(f"error: {e}")
    except Preempted as e:
        # The checkpoint is committed: further SIGTERMs may not turn the exit
        # code into "killed". Everything is closed; a normal exit lets
        # jax.distributed leave the job cleanly on every process.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        logging.flush()
        sys.stderr.write(f"{e}\n")
        sys.exit(args.preemption_exit_code if e.exit_code == preemption.EXIT_CODE
                 else e.exit_code)
    if jax.process_index() != 0:
        return
    for key, value in sorted(trainer.summary(args.workdir).items()):
        if "/" in key:
            print(f"{key}: {value}")


def run() -> None:
    """main(), with a Ctrl-C outside training (imports, start-up before the run's
    handler is installed) one line and exit status 130 instead of a traceback."""
    seen: list[int] = []

    def on_sigint(signum: int, frame: Any) -> None:
        # The KeyboardInterrupt can land in a garbage-collection callback (jax
        # has one), where Python drops it: `seen` keeps the request.
        seen.append(signum)
        raise KeyboardInterrupt

    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not SIG_IGN
        signal.signal(signal.SIGINT, on_sigint)
    passed_on = sys.unraisablehook

    def drop_dropped_interrupts(unraisable: Any) -> None:
        # Python reports the KeyboardInterrupt it dropped with a traceback; `seen`
        # has it, and the run ends with one line.
        if not (seen and isinstance(unraisable.exc_value, KeyboardInterrupt)):
            passed_on(unraisable)

    sys.unraisablehook = drop_dropped_interrupts
    try:
        main(interrupted=lambda: bool(seen))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted (Ctrl-C) before training started; nothing to "
                         "save.\n")
        sys.exit(128 + signal.SIGINT)


if __name__ == "__main__":
    run()
