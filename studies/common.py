"""What the transfer studies share: the pre-trained checkpoint they start from, how
one run of a study is trained, and the command line."""

from __future__ import annotations

import argparse
import json
import logging as pylogging
import sys
import time
from collections.abc import Callable, Mapping, Sequence

import ml_collections
from absl import flags, logging

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


def latest_checkpoint(run: str) -> str:
    """The absolute step folder of a run's newest checkpoint."""
    folder = fs.join(run, "checkpoints")
    steps = [int(s) for s in fs.listdir(folder) if s.isdigit()] if fs.isdir(folder) else []
    if not steps:
        raise FileNotFoundError(f"{run} has no checkpoint; finish its training first.")
    return fs.join(fs.absolute(run), "checkpoints", str(max(steps)))


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


def add_report_flags(parser: argparse.ArgumentParser) -> None:
    """--report_only and --readme: a finished study's tables rendered again."""
    parser.add_argument("--report_only", action="store_true",
                        help="Train nothing: render results.md again from the workdir's "
                             "results (a committed study's results folder works).")
    parser.add_argument("--readme", default=None,
                        help="With --report_only: also put the tables into this Markdown "
                             "file, between its '<!-- generated: <workdir's name> -->' "
                             "markers.")


def show_training_progress() -> None:
    """The trainer's progress on stderr, as train.py shows it; orbax's saves at INFO
    left out."""
    flags.FLAGS.mark_as_parsed()  # absl's logging asks; studies have no absl flags
    logging.use_absl_handler()
    logging.set_verbosity(logging.INFO)
    logging.get_absl_handler().addFilter(
        lambda r: r.levelno >= pylogging.WARNING or "/orbax/" not in r.pathname)


def study_main(run_study: Callable[..., object], targets: Mapping[str, object],
               sizes: Sequence[str], report_again: Callable[[str], str],
               argv: Sequence[str] | None = None) -> None:
    """The command line of a transfer study."""
    p = argparse.ArgumentParser(description=sys.modules["__main__"].__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True, help="Where the study's runs and results go.")
    add_report_flags(p)
    p.add_argument("--data_dir", default=None, help="TFDS data_dir (datasets are generated).")
    p.add_argument("--pretrained", default=None,
                   help="A pre-trained checkpoint step folder (<workdir>/checkpoints/<step>); "
                        "default: train configs/demo.py into <workdir>/pretrain.")
    p.add_argument("--size", default=sizes[0], choices=sizes,
                   help="demo: 64 px; tiny: 32 px, few steps (needs --pretrained from "
                        "synthetic_jft/tiny).")
    p.add_argument("--targets", default=",".join(targets),
                   help=f"Which targets, comma-separated (of {', '.join(targets)}).")
    p.add_argument("--total_steps", type=int, default=None,
                   help="Override every run's training steps.")
    args = p.parse_args(argv)
    if args.report_only:
        print(report_tables(args.workdir, report_again, args.readme))
        return
    chosen = [t for t in args.targets.split(",") if t]
    unknown = set(chosen) - set(targets)
    if unknown:
        p.error(f"unknown targets {sorted(unknown)}; known: {list(targets)}")
    show_training_progress()
    run_study(args.workdir, args.data_dir, args.pretrained, args.size, chosen,
              args.total_steps)
