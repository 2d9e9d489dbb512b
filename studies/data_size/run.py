"""Section 4 in miniature, offline: performance against pre-training data size, with
seeds, and with data kept apart from compute.

    python -m studies.data_size.run --workdir workdirs/data_size_study \
        --data_dir data/tfds

Pre-trains the demo ResNet (studies/data_size/config.py) on random nested
subsets of synthetic_jft/demo spanning 8x (by default 1/16 to 1/2 of its 50,000
training images), each size with several seeds, in two regimes:

- epochs (the paper's): every subset trains 4 epochs of itself, so larger
  subsets also train more steps;
- steps (compute-matched): every subset trains the steps of the largest one,
  with the same schedule; the largest subset's runs are the epoch regime's
  (the same training), so they are not run twice.

Warmup is 5% of each run's steps. Each run ends with fasteval mAP@100 and
frozen-feature transfer to real digits (linear probe, 10-shot), each with a 95%
bootstrap interval over the evaluation images. The report gives per size the
mean over seeds, their spread and intervals, the log-linear fit with its
slope's interval, and four curve forms judged on the held-out largest size
(big_vision_like/tools/curve_forms.py), per regime: results.md, results.json
and one plot per regime and metric.

Each regime is one sweep (big_vision_like/tools/sweep.py) in <workdir>/<regime>:
a finished run is not run again and a killed study resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from big_vision_like import filesystem as fs
from big_vision_like.config.cli import load_config
from big_vision_like.durations import Durations
from big_vision_like.tools import collect, sweep
from studies.common import add_report_flags, read_json, report_tables, show_training_progress

CONFIG = "studies/data_size/config.py"
METRICS = ("fasteval/map@100", "digits_probe/accuracy", "digits_fewshot/10shot")
CURVE = "model.depth"
REGIMES = {"epochs": "epoch-matched: each subset trains 4 of its own epochs (the paper's)",
           "steps": "compute-matched: every subset trains the largest one's steps, with "
                    "the same schedule"}


def study_runs(workdir: str, fractions: Sequence[str], seeds: Sequence[str], depth: int,
               second_depth: int, second_fractions: Sequence[str], regime: str = "epochs",
               steps: int | None = None) -> list[sweep.Run]:
    """The runs of one regime in <workdir>/<regime>: the main depth on every fraction,
    then the second depth on its fractions, each with every seed. In the steps
    regime the largest fraction is left out (it is the epoch regime's run)."""
    if regime not in REGIMES:
        raise ValueError(f"regime {regime!r}: use one of {sorted(REGIMES)}.")
    largest = max(fractions, key=float)

    def grid(d: int, fracs: Sequence[str]) -> list[sweep.Run]:
        if regime == "steps":
            fracs = [f for f in fracs if float(f) != float(largest)]
        if not fracs:
            return []
        axes = [sweep.parse_axis(f"total_steps={steps}")] if regime == "steps" else []
        axes += [sweep.parse_axis(f"{CURVE}={d}"),
                 sweep.parse_axis("input.data.subset_fraction=" + ",".join(fracs)),
                 sweep.parse_axis("seed=" + ",".join(seeds))]
        return sweep.plan(axes, fs.join(workdir, regime))

    runs = grid(depth, fractions)
    if second_fractions:
        runs += grid(second_depth, second_fractions)
    return runs


def matched_steps(base_args: Sequence[str], fraction: float, config_file: str = CONFIG
                  ) -> int:
    """The steps of `fraction`'s epoch-matched run, as the trainer counts them."""
    c, _ = load_config(config_file, base_args)
    data = {**c.input.data.to_dict(), "subset_fraction": fraction}
    examples = collect.examples_from_tfds(data)
    return Durations(c.batch_size, examples).to_steps(c.total_epochs, "epochs", "total")


def regime_dirs(workdir: str, runs: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Each regime's run folders; the steps regime borrows the epoch regime's runs
    at the largest size (the same training)."""
    out = {regime: list(dirs) for regime, dirs in runs.items()}
    if "steps" in out and "epochs" in out:
        fraction = lambda d: read_json(fs.join(workdir, d, "config.json"))["input"]["data"][
            "subset_fraction"]
        largest = max(fraction(d) for d in out["epochs"])
        out["steps"] += [d for d in out["epochs"] if fraction(d) == largest]
    return out


def render(workdir: str, runs: Mapping[str, Sequence[str]],
           examples_of: Callable[[dict], float] | None = None, plots: bool = False
           ) -> tuple[str, dict[str, Any]]:
    """(results.md text, results.json content) of the runs (paths relative to the
    workdir, by regime); with `plots`, <regime>_<metric>.png beside them."""
    sections, metrics = [], {}
    for regime, dirs in regime_dirs(workdir, runs).items():
        sections.append(f"## {REGIMES[regime].split(':')[0]}\n\n{REGIMES[regime]}.\n")
        metrics[regime] = {}
        for metric in METRICS:
            points = collect.collect([fs.join(workdir, d) for d in dirs], metric, CURVE,
                                     split_examples=examples_of)
            fits = collect.fits_of(points)
            sections.append(f"### {metric}\n\n"
                            + collect.markdown(points, fits, metric, CURVE, "examples"))
            if plots:
                png = f"{regime}_{metric.replace('/', '_')}.png"
                collect.plot(points, fits, fs.join(workdir, png), f"{metric} ({regime})",
                             CURVE, "examples")
            metrics[regime][metric] = {
                "points": [dict(run=d, depth=p.curve, seed=p.seed, examples=p.examples,
                                step=p.step, value=p.value, lo=p.lo, hi=p.hi)
                           for d, p in zip(dirs, points)],
                "fits": {str(k): None if f is None else dict(
                    a=f.a, b=f.b, b_lo=f.b_lo, b_hi=f.b_hi, r2=f.r2, n=f.n)
                    for k, f in fits.items()}}
    return "\n".join(sections), {"runs": {r: list(d) for r, d in runs.items()},
                                 "metrics": metrics}


def _write(workdir: str, name: str, text: str) -> None:
    with fs.open(fs.join(workdir, name), "w") as f:
        f.write(text)


def report(workdir: str, runs: Mapping[str, Sequence[sweep.Run]],
           seconds: dict[str, float]) -> str:
    """results.md / results.json / the plots from the finished runs."""
    relative = {r: [fs.join(r, run.name) for run in rs] for r, rs in runs.items()}
    text, results = render(workdir, relative, plots=True)
    sizes = {}
    for regime in results["metrics"].values():
        for point in regime[METRICS[0]]["points"]:
            data = read_json(fs.join(workdir, point["run"], "config.json"))["input"]["data"]
            sizes[str(data["subset_fraction"])] = point["examples"]
    results.update(sizes=sizes, seconds_this_invocation=seconds)
    _write(workdir, "results.md", text)
    _write(workdir, "results.json", json.dumps(results, indent=1))
    return text


def report_again(workdir: str) -> str:
    """results.md of a finished study, rendered again from its committed files alone:
    each run's config.json and metrics.jsonl, and the subset sizes its results.json
    recorded (so the dataset need not be on this machine); written beside them."""
    results = read_json(fs.join(workdir, "results.json"))
    if "sizes" in results:
        sizes = results["sizes"]
        runs = results["runs"]
    else:  # one regime, one seed (the study's first version, 2026-11-26)
        sizes = {}
        for point in results["metrics"][METRICS[0]]["points"]:
            run = read_json(fs.join(workdir, point["run"], "config.json"))
            sizes[str(run["input"]["data"]["subset_fraction"])] = point["examples"]
        runs = {"epochs": results["runs"]}
    text, _ = render(workdir, runs, lambda data: sizes[str(data["subset_fraction"])])
    _write(workdir, "results.md", text)
    return text


def run_study(workdir: str, data_dir: str | None, runs_of: Callable[..., list[sweep.Run]],
              regimes: Sequence[str], largest: float, train_fn: Callable[..., Any] | None = None,
              overrides: Sequence[str] = (), config_file: str = CONFIG) -> str:
    """Trains the runs not finished yet (`train_fn`, default trainer.train), regime by
    regime (`runs_of(regime, steps)`; `largest` the largest subset fraction), then
    writes the report; returns its Markdown. `overrides`: --config.x=y for every run;
    `config_file`: the study's config (CONFIG + ':tiny' for the tiny size)."""
    if "steps" in regimes and "epochs" not in regimes:
        raise ValueError("the steps regime borrows the epoch regime's largest runs; "
                         "run --regimes=epochs,steps.")
    base = [f"--config.input.data.data_dir={data_dir}"] if data_dir else []
    base += list(overrides)
    start, runs = time.time(), {}
    for regime in regimes:
        steps = matched_steps(base, largest, config_file) if regime == "steps" else None
        runs[regime] = runs_of(regime, steps)
        sweep.run_sweep(config_file, base, runs[regime], fs.join(workdir, regime), train_fn)
    return report(workdir, runs, {"sweep": time.time() - start})


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True,
                   help="The study's folder (a sweep per regime, a run per subfolder).")
    add_report_flags(p)
    p.add_argument("--data_dir", default=None, help="TFDS data_dir (datasets are generated).")
    p.add_argument("--fractions", default="0.0625,0.125,0.25,0.5",
                   help="Subset fractions of the main depth, comma-separated.")
    p.add_argument("--seeds", default="0,1,2", help="Seeds of every run, comma-separated.")
    p.add_argument("--regimes", default="epochs,steps",
                   help="epochs (epoch-matched), steps (compute-matched), or both.")
    p.add_argument("--depth", type=int, default=18, help="The depth trained on every fraction.")
    p.add_argument("--second_depth", type=int, default=50,
                   help="The capacity axis' other depth.")
    p.add_argument("--second_fractions", default="",
                   help="Fractions the second depth trains on, comma-separated (none: '').")
    p.add_argument("--size", default="demo", choices=("demo", "tiny"),
                   help="demo: 64 px; tiny: synthetic_jft/tiny at 32 px, a quarter epoch.")
    args = p.parse_args(argv)
    if args.report_only:
        print(report_tables(args.workdir, report_again, args.readme))
        return
    show_training_progress()
    split = lambda text: [f for f in text.split(",") if f]
    fractions = split(args.fractions)

    def runs_of(regime: str, steps: int | None) -> list[sweep.Run]:
        return study_runs(args.workdir, fractions, split(args.seeds), args.depth,
                          args.second_depth, split(args.second_fractions), regime, steps)
    print(run_study(args.workdir, args.data_dir, runs_of, split(args.regimes),
                    max(map(float, fractions)),
                    config_file=CONFIG + (":tiny" if args.size == "tiny" else "")))


if __name__ == "__main__":
    main()
