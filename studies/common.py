"""What the transfer studies share: the pre-trained checkpoint they start from, how
one run of a study is trained, and the command line."""

from __future__ import annotations

import json
import logging as pylogging
import time
from collections.abc import Callable, Mapping, Sequence

import ml_collections
from absl import app, flags, logging

from big_vision_like import filesystem as fs
from configs import demo


def pretrained_checkpoint(workdir: str, data_dir: str | None, given: str | None) -> str:
    """The given checkpoint, or that of configs/demo.py trained in <workdir>/pretrain."""
    from big_vision_like import trainer

    if given:
        if not fs.isdir(given):
            raise FileNotFoundError(f"--pretrained {given} does not exist; give a step "
                                    "folder such as workdirs/demo/checkpoints/1500.")
        return fs.absolute(given)
    config = demo.get_config()
    config.input.data.data_dir = data_dir
    pretrain_dir = fs.join(workdir, "pretrain")
    state = trainer.train(config, pretrain_dir)  # resumes; a finished run does nothing
    return fs.join(fs.absolute(pretrain_dir), "checkpoints", str(int(state.step)))


def train_run(study: str, key: str, config: ml_collections.ConfigDict, run_dir: str,
              seconds: dict[str, float]) -> dict[str, float]:
    """Trains one run of a study (resuming; a finished run does nothing), records its
    wall time as seconds[key] and returns its final metrics (trainer.summary)."""
    from big_vision_like import trainer

    t0 = time.time()
    logging.info("%s: %s in %s", study, key, run_dir)
    trainer.train(config, run_dir)
    seconds[key] = round(time.time() - t0, 1)
    return trainer.summary(run_dir)


def match_model(config: ml_collections.ConfigDict, checkpoint: str,
                keys: Sequence[str] = ("name", "depth", "width")) -> None:
    """Takes the pre-trained run's body (`keys` of its model) from its config.json."""
    path = fs.join(fs.parent(fs.normpath(checkpoint), 2), "config.json")
    if fs.exists(path):
        source = ml_collections.ConfigDict(read_json(path)).get("model", {})
        for key in keys:
            if key in source:
                config.model[key] = source[key]


def report_tables(workdir: str, report_again: Callable[[str], str],
                  readme: str | None) -> str:
    """A study's tables rendered again from its workdir (`report_again`), and put into
    `readme` between the markers named by the workdir's folder name."""
    from studies import readme_tables

    text = report_again(workdir)
    if readme:
        readme_tables.update(readme, fs.basename(fs.normpath(workdir)), text)
    return text


def read_json(path: str) -> dict:
    with fs.open(path) as f:
        return json.load(f)


def study_main(run_study: Callable[..., object], targets: Mapping[str, object],
               sizes: Sequence[str], report_again: Callable[[str], str]) -> None:
    """The command line of a study. Its flags are defined here, when a study runs
    as a program, so that the study modules can be imported side by side."""
    workdir = flags.DEFINE_string("workdir", None, "Where the study's runs and results go.")
    report_only = flags.DEFINE_bool(
        "report_only", False, "Train nothing: render results.md again from the workdir's "
        "results.json (a committed study's results folder works).")
    readme = flags.DEFINE_string(
        "readme", None, "With --report_only: also put the tables into this Markdown file, "
        "between its '<!-- generated: <workdir's name> -->' markers.")
    data_dir = flags.DEFINE_string("data_dir", None,
                                   "TFDS data_dir (datasets are generated).")
    pretrained = flags.DEFINE_string(
        "pretrained", None, "A pre-trained checkpoint step folder (<workdir>/checkpoints/"
        "<step>); default: train configs/demo.py into <workdir>/pretrain.")
    size = flags.DEFINE_enum("size", sizes[0], sizes, "demo: 64 px; tiny: 32 px, few steps "
                             "(needs --pretrained from synthetic_jft/tiny).")
    chosen = flags.DEFINE_list("targets", list(targets), "Which targets.")
    steps = flags.DEFINE_integer("total_steps", None, "Override every run's training steps.")

    def main(argv: Sequence[str]) -> None:
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {argv[1:]}")
        if report_only.value:
            print(report_tables(workdir.value, report_again, readme.value))
            return
        unknown = set(chosen.value) - set(targets)
        if unknown:
            raise app.UsageError(f"unknown targets {sorted(unknown)}; known: {list(targets)}")
        logging.set_verbosity(logging.INFO)
        logging.get_absl_handler().addFilter(  # orbax logs every save at INFO
            lambda r: r.levelno >= pylogging.WARNING or "/orbax/" not in r.pathname)
        run_study(workdir.value, data_dir.value, pretrained.value, size.value, chosen.value,
                  steps.value)

    flags.mark_flags_as_required(["workdir"])
    app.run(main)
