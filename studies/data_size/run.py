"""Section 4 in miniature, offline: performance against pre-training data size.

    python -m studies.data_size.run --workdir workdirs/data_size_study \
        --data_dir data/tfds

Pre-trains the demo ResNet (studies/data_size/config.py: 4 epochs of each
subset, as the paper read each JFT subset at its 4th epoch) on random nested
subsets of synthetic_jft/demo spanning 8x (1/8, 1/4, 1/2, all of its 50,000
training images) at depth 18, and at depth 50 on two of those sizes (the
capacity axis). Each run ends with fasteval mAP@100 and frozen-feature
transfer to real digits (linear probe, 10-shot). Then fits
`metric = a + b * log10(examples)` per depth and writes into the workdir
results.md, results.json and one Figure-4 plot per metric (<metric>.png).

The runs are one sweep (big_vision_like/tools/sweep.py): a finished run is not
run again and a killed study resumes where it stopped.
"""

from __future__ import annotations

import json
import logging as pylogging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from absl import app, flags, logging

from big_vision_like import filesystem as fs
from big_vision_like.tools import collect, sweep
from studies.common import read_json, report_tables

CONFIG = "studies/data_size/config.py"
METRICS = ("fasteval/map@100", "digits_probe/accuracy", "digits_fewshot/10shot")
CURVE = "model.depth"

def study_runs(workdir: str, fractions: Sequence[str], depth: int, second_depth: int,
               second_fractions: Sequence[str]) -> list[sweep.Run]:
    """The main depth on every fraction, then the second depth on its fractions."""
    def grid(d: int, fs: Sequence[str]) -> list[sweep.Run]:
        axes = [sweep.parse_axis(f"{CURVE}={d}"),
                sweep.parse_axis("input.data.subset_fraction=" + ",".join(fs))]
        return sweep.plan(axes, workdir)

    runs = grid(depth, fractions)
    if second_fractions:
        runs += grid(second_depth, second_fractions)
    return runs


def _tables(dirs: Sequence[str], examples_of: Callable[[dict], float] | None = None
            ) -> Iterator[tuple[str, list[collect.Point], dict, str]]:
    """(metric, points, fits, Markdown section) of each metric over the runs."""
    for metric in METRICS:
        points = collect.collect(dirs, metric, CURVE, split_examples=examples_of)
        fits = collect.fits_of(points)
        yield metric, points, fits, (f"### {metric}\n\n"
                                     + collect.markdown(points, fits, metric, CURVE, "examples"))


def report(workdir: str, runs: Sequence[sweep.Run], seconds: dict[str, float]) -> str:
    """results.md / results.json / <metric>.png from the finished runs."""
    sections, results = [], {"runs": [r.name for r in runs], "metrics": {}}
    for metric, points, fits, section in _tables([r.workdir for r in runs]):
        png = fs.join(workdir, metric.replace("/", "_") + ".png")
        collect.plot(points, fits, png, metric, CURVE, "examples")
        sections.append(section)
        results["metrics"][metric] = {
            "points": [dict(run=fs.basename(p.workdir), depth=p.curve,
                            examples=p.examples, value=p.value) for p in points],
            "fits": {str(k): None if f is None else dict(a=f.a, b=f.b, r2=f.r2, n=f.n)
                     for k, f in fits.items()}}
    results["seconds_this_invocation"] = seconds
    text = "\n".join(sections)
    with fs.open(fs.join(workdir, "results.md"), "w") as f:
        f.write(text)
    with fs.open(fs.join(workdir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    return text


def report_again(workdir: str) -> str:
    """results.md of a finished study, rendered again from its committed files alone:
    each run's config.json and metrics.jsonl, and the subset sizes its results.json
    recorded (so the dataset need not be on this machine); written beside them."""
    results = read_json(fs.join(workdir, "results.json"))
    sizes = {}
    for point in results["metrics"][METRICS[0]]["points"]:
        run = read_json(fs.join(workdir, point["run"], "config.json"))
        sizes[run["input"]["data"].get("subset_fraction")] = point["examples"]
    dirs = [fs.join(workdir, name) for name in results["runs"]]
    text = "\n".join(section for *_, section in _tables(
        dirs, lambda data: sizes[data.get("subset_fraction")]))
    with fs.open(fs.join(workdir, "results.md"), "w") as f:
        f.write(text)
    return text


def run_study(workdir: str, data_dir: str | None, runs: Sequence[sweep.Run],
              train_fn: Callable[..., Any] | None = None) -> str:
    """Trains the runs not finished yet (`train_fn`, default trainer.train), then
    writes the report; returns its Markdown."""
    base = [f"--config.input.data.data_dir={data_dir}"] if data_dir else []
    start = time.time()
    sweep.run_sweep(CONFIG, base, runs, workdir, train_fn)
    return report(workdir, runs, {"sweep": time.time() - start})


def cli() -> None:
    """The command line; its flags are defined here, when the study runs as a
    program, so that the module can be imported beside other studies."""
    workdir = flags.DEFINE_string("workdir", None, "The study's folder (a run per subfolder).")
    data_dir = flags.DEFINE_string("data_dir", None, "TFDS data_dir (datasets are generated).")
    fractions = flags.DEFINE_list("fractions", ["0.125", "0.25", "0.5", "1.0"],
                                  "Subset fractions of the main depth.")
    depth = flags.DEFINE_integer("depth", 18, "The depth trained on every fraction.")
    second_depth = flags.DEFINE_integer("second_depth", 50, "The capacity axis' other depth.")
    second_fractions = flags.DEFINE_list("second_fractions", ["0.125", "0.5"],
                                         "Fractions the second depth trains on (none: [])")
    report_only = flags.DEFINE_bool(
        "report_only", False, "Train nothing: render results.md again from the workdir's "
        "runs and results.json (the committed studies/data_size/results works).")
    readme = flags.DEFINE_string(
        "readme", None, "With --report_only: also put the tables into this Markdown file, "
        "between its '<!-- generated: <workdir's name> -->' markers.")

    def main(argv: Sequence[str]) -> None:
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {argv[1:]}")
        if report_only.value:
            print(report_tables(workdir.value, report_again, readme.value))
            return
        logging.set_verbosity(logging.INFO)  # the trainer's progress, as train.py shows it
        logging.get_absl_handler().addFilter(  # orbax logs every save at INFO
            lambda r: r.levelno >= pylogging.WARNING or "/orbax/" not in r.pathname)
        runs = study_runs(workdir.value, fractions.value, depth.value, second_depth.value,
                          second_fractions.value)
        print(run_study(workdir.value, data_dir.value, runs))

    flags.mark_flags_as_required(["workdir"])
    app.run(main)


if __name__ == "__main__":
    cli()
