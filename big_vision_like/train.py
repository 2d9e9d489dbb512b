"""Command line: python -m big_vision_like.train --config configs/demo.py --workdir DIR

Any config field can be overridden: --config.batch_size=64
--config.schedule.base_lr=0.01. An unknown field is an error that names it.
"""

from __future__ import annotations

import logging as pylogging
import os

from absl import app, flags, logging
from ml_collections import config_flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints and metrics go.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from big_vision_like import trainer  # after flags: jax starts here

    logging.set_verbosity(logging.INFO)
    # orbax reports every save step at INFO; keep its warnings only.
    logging.get_absl_handler().addFilter(
        lambda r: r.levelno >= pylogging.WARNING or "/orbax/" not in r.pathname)
    trainer.train(_CONFIG.value, _WORKDIR.value)
    for key, value in sorted(trainer.summary(_WORKDIR.value).items()):
        if "/" in key:
            print(f"{key}: {value}")


if __name__ == "__main__":
    app.run(main)
