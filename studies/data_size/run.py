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

import argparse
import json
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from big_vision_like import filesystem as fs
from big_vision_like.tools import collect, sweep
from studies.common import add_report_flags, read_json, report_tables, show_training_progress

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


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True,
                   help="The study's folder (a run per subfolder).")
    add_report_flags(p)
    p.add_argument("--data_dir", default=None, help="TFDS data_dir (datasets are generated).")
    p.add_argument("--fractions", default="0.125,0.25,0.5,1.0",
                   help="Subset fractions of the main depth, comma-separated.")
    p.add_argument("--depth", type=int, default=18, help="The depth trained on every fraction.")
    p.add_argument("--second_depth", type=int, default=50,
                   help="The capacity axis' other depth.")
    p.add_argument("--second_fractions", default="0.125,0.5",
                   help="Fractions the second depth trains on, comma-separated (none: '').")
    args = p.parse_args(argv)
    if args.report_only:
        print(report_tables(args.workdir, report_again, args.readme))
        return
    show_training_progress()
    split = lambda text: [f for f in text.split(",") if f]
    runs = study_runs(args.workdir, split(args.fractions), args.depth, args.second_depth,
                      split(args.second_fractions))
    print(run_study(args.workdir, args.data_dir, runs))


if __name__ == "__main__":
    main()
