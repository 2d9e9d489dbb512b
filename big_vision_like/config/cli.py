"""A config file plus `--config.field=value` overrides, resolved as the trainer's
command line resolves them (ml_collections' config_flags, then the precedence of
duration units from `durations.apply_override_precedence`).

train.py parses the process's own flags; tools that build several configs in one
process (tools/sweep.py) call `load_config` with each run's overrides.
"""

from __future__ import annotations

from collections.abc import Sequence

import ml_collections
from absl import flags
from ml_collections import config_flags

from big_vision_like import durations


def resolve(config: ml_collections.ConfigDict, config_flag: flags.Flag) -> list[str]:
    """Applies the duration-unit precedence to a parsed config flag's overrides;
    returns the dotted names of the fields so cleared."""
    return durations.apply_override_precedence(
        config, config_flags.get_override_values(config_flag))


def load_config(config_file: str, overrides: Sequence[str] = ()
                ) -> tuple[ml_collections.ConfigDict, list[str]]:
    """(config, cleared fields) of `config_file` with `overrides` such as
    '--config.model.depth=50', parsed exactly as `python -m big_vision_like.train
    --config config_file --config.model.depth=50` parses them."""
    bad = [a for a in overrides if not (a.startswith("--config.") and "=" in a)]
    if bad:
        raise ValueError(f"overrides {bad}: give each as --config.field=value.")
    # A private FlagValues: the process's own flags stay untouched, and each call
    # defines the override flags of its own config afresh.
    flag_values = flags.FlagValues()
    argv = ["load_config", f"--config={config_file}", *overrides]
    holder = config_flags.DEFINE_config_file("config", None, "Config file.",
                                             flag_values=flag_values, lock_config=True,
                                             sys_argv=argv)
    flag_values(argv)
    config = holder.value
    return config, resolve(config, flag_values["config"])
